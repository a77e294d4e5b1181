package io.shardmap.server.internal;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.WatchResponse;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Logger;

/**
 * Client watch streams. Each stream has a bounded queue drained when the transport is ready; a client
 * that falls more than {@code maxQueued} messages behind is told to re-read (resync_required) and
 * dropped, so one slow client can never make the server buffer without bound.
 */
public final class WatchStreams implements AutoCloseable {
  private static final Logger log = Logger.getLogger(WatchStreams.class.getName());

  private final DirectoryState state;
  private final int maxQueued;
  private final Set<Stream> open = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;

  public WatchStreams(DirectoryState state, int maxQueued) {
    this.state = state;
    this.maxQueued = maxQueued;
  }

  public void open(ServerCallStreamObserver<WatchResponse> observer, Set<String> keyspaces, long after) {
    if (closed) {
      observer.onError(Status.UNAVAILABLE.withDescription("directory server shutting down").asRuntimeException());
      return;
    }
    Stream s = new Stream(observer, keyspaces, after);
    // Handlers must be set before this call returns, even when the stream starts later (below).
    observer.setOnCancelHandler(s::close);
    observer.setOnReadyHandler(s::drain);
    open.add(s);
    CompletableFuture<Void> check = state.checkReached(after);
    if (check.isDone() && !check.isCompletedExceptionally()) {
      s.start(after);
    } else {
      // A revision past this server's snapshot: etcd answers whether it exists (off the transport thread).
      check.whenComplete((ok, error) -> {
        if (error == null) {
          s.start(after);
        } else {
          s.refuse(error instanceof CompletionException && error.getCause() != null ? error.getCause() : error);
        }
      });
    }
  }

  public int size() {
    return open.size();
  }

  @Override
  public void close() {
    closed = true;
    for (Stream s : open) {
      s.shutdown();
    }
  }

  private final class Stream implements DirectoryState.ChangeSink {
    private final ServerCallStreamObserver<WatchResponse> observer;
    private final Set<String> keyspaces;
    private final ArrayDeque<WatchResponse> queue = new ArrayDeque<>();
    private long sentRevision;
    private boolean finishing;
    private boolean done;
    volatile AutoCloseable subscription;
    /** Set by {@link #close}; a subscription made after it is closed at once. */
    private volatile boolean closed;

    Stream(ServerCallStreamObserver<WatchResponse> observer, Set<String> keyspaces, long after) {
      this.observer = observer;
      this.keyspaces = keyspaces;
      this.sentRevision = after;
    }

    @Override
    public synchronized void onChanges(long revision, List<MapChange> changes) {
      if (finishing || revision <= sentRevision) {
        return;
      }
      List<MapChange> mine = ReadService.filter(changes, keyspaces);
      if (mine.isEmpty()) {
        return;
      }
      sentRevision = revision;
      if (queue.size() >= maxQueued) {
        log.warning("a watch client fell " + queue.size() + " messages behind; telling it to re-read");
        queue.clear();
        resyncLocked();
        return;
      }
      queue.add(WatchResponse.newBuilder().setRevision(revision).addAllChanges(mine)
          .setFreshness(state.freshness()).build());
      drain();
    }

    @Override
    public synchronized void onProgress(long revision) {
      if (finishing || !queue.isEmpty()) {
        return;
      }
      sentRevision = Math.max(sentRevision, revision);
      queue.add(WatchResponse.newBuilder().setRevision(sentRevision).setProgress(true)
          .setFreshness(state.freshness()).build());
      drain();
    }

    @Override
    public synchronized void onResync() {
      if (!finishing) {
        resyncLocked();
      }
    }

    private void resyncLocked() {
      finishing = true;
      queue.add(WatchResponse.newBuilder().setResyncRequired(true).setRevision(state.snapshot().revision())
          .setFreshness(state.freshness()).build());
      drain();
    }

    void start(long after) {
      subscription = state.subscribe(after, this);
      if (closed || isDone()) {
        // Cancelled or finished before the subscription was recorded.
        close();
      }
      drain();
    }

    /** Ends the stream with the error of the revision check, unless it already ended. */
    synchronized void refuse(Throwable error) {
      if (!done) {
        done = true;
        try {
          observer.onError(Errors.toStatus(error));
        } catch (RuntimeException ignored) {
          // already cancelled
        }
      }
      close();
    }

    synchronized boolean isDone() {
      return done;
    }

    synchronized void drain() {
      if (done) {
        return;
      }
      try {
        while (!queue.isEmpty() && observer.isReady()) {
          observer.onNext(queue.poll());
        }
        if (finishing && queue.isEmpty()) {
          done = true;
          observer.onCompleted();
          close();
        }
      } catch (RuntimeException e) {
        // The call was cancelled under us; the cancel handler cleans up.
        done = true;
        close();
      }
    }

    synchronized void shutdown() {
      if (!done) {
        done = true;
        try {
          observer.onError(Status.UNAVAILABLE.withDescription("directory server shutting down")
              .asRuntimeException());
        } catch (RuntimeException ignored) {
          // already cancelled
        }
      }
      close();
    }

    void close() {
      closed = true;
      open.remove(this);
      AutoCloseable sub = subscription;
      if (sub != null) {
        try {
          sub.close();
        } catch (Exception ignored) {
          // closing a subscription only removes it from a set
        }
      }
    }
  }
}
