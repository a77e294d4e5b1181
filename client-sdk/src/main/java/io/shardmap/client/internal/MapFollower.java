package io.shardmap.client.internal;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.MapListener;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.GetMapRequest;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.ListShardsResponse;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.WatchRequest;
import io.shardmap.proto.v1.WatchResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Keeps the client's copy of the maps: a full read, then the directory's watch stream applied in
 * revision order with the same core code the server uses. One thread does all of it, so snapshots are
 * published in order; lookups read the volatile snapshot and never wait.
 *
 * <p>Consistency of the first read: the shard list is read first (revision R0), then each keyspace
 * (revision Rk ≥ R0). The watch starts after R0; a change of keyspace k at a revision ≤ Rk is already in
 * its map and is skipped, so no keyspace ever sees changes applied out of order.
 *
 * <p>Faults: any stream or RPC failure moves to the next directory server after a jittered exponential
 * backoff, resuming from the last applied revision; {@code resync_required} triggers a full re-read; a
 * stream silent for longer than the idle limit (the server sends heartbeats) is abandoned as dead.
 */
public final class MapFollower implements AutoCloseable {
  private static final Logger log = Logger.getLogger(MapFollower.class.getName());

  private final ClientOptions options;
  private final LongSupplier nanoTime;
  private final List<ManagedChannel> channels = new ArrayList<>();
  private final List<MapListener> listeners = new CopyOnWriteArrayList<>();
  private final CountDownLatch firstLoad = new CountDownLatch(1);
  private final Thread worker;
  private final long idleLimitNanos;

  private volatile DirectorySnapshot snapshot;
  /** Local time at which a directory server last vouched that the map was current. */
  private volatile long confirmedAtNanos;
  private volatile boolean closed;
  private volatile Context.CancellableContext streamContext;
  private volatile long lastMessageNanos;

  private final AtomicLong reconnects = new AtomicLong();
  private final AtomicLong resyncs = new AtomicLong();
  private final AtomicLong failovers = new AtomicLong();

  public MapFollower(ClientOptions options, LongSupplier nanoTime) {
    this.options = options;
    this.nanoTime = nanoTime;
    // Heartbeats arrive every few seconds; several missed in a row means the server or path is dead.
    this.idleLimitNanos = TimeUnit.SECONDS.toNanos(15);
    for (String t : options.targets()) {
      int c = t.lastIndexOf(':');
      channels.add(NettyChannelBuilder.forAddress(t.substring(0, c), Integer.parseInt(t.substring(c + 1)))
          .usePlaintext()
          .keepAliveTime(10, TimeUnit.SECONDS)
          .keepAliveTimeout(5, TimeUnit.SECONDS)
          .maxInboundMessageSize(64 << 20)
          .build());
    }
    this.worker = new Thread(this::run, "shardmap-client-follower");
    this.worker.setDaemon(true);
  }

  public void start() {
    worker.start();
  }

  /** Waits for the first full map; false on timeout. */
  public boolean awaitFirstLoad(long timeout, TimeUnit unit) throws InterruptedException {
    return firstLoad.await(timeout, unit);
  }

  /** The current map, or null before the first load. */
  public DirectorySnapshot snapshot() {
    return snapshot;
  }

  public long ageNanos() {
    return Math.max(0, nanoTime.getAsLong() - confirmedAtNanos);
  }

  public void addListener(MapListener l) {
    listeners.add(l);
  }

  public void removeListener(MapListener l) {
    listeners.remove(l);
  }

  public long reconnects() {
    return reconnects.get();
  }

  public long resyncs() {
    return resyncs.get();
  }

  public long failovers() {
    return failovers.get();
  }

  private void run() {
    int target = 0;
    long backoff = options.initialBackoff().toNanos();
    boolean needLoad = true;
    String lastFailure = null;
    while (!closed) {
      ShardMapServiceGrpc.ShardMapServiceBlockingStub stub = ShardMapServiceGrpc.newBlockingStub(channels.get(target));
      try {
        if (needLoad) {
          load(stub, snapshot != null);
          needLoad = false;
        }
        boolean resync = follow(stub);
        if (resync) {
          needLoad = true;
          resyncs.incrementAndGet();
          log.info("shardmap client: directory " + options.targets().get(target) + " asked for a full "
              + "re-read (our revision " + snapshot.revision() + " is no longer in its history)");
        }
        backoff = options.initialBackoff().toNanos();
        lastFailure = null;
      } catch (StatusRuntimeException e) {
        if (closed) {
          break;
        }
        String failure = options.targets().get(target) + ": " + e.getStatus().getCode() + " "
            + e.getStatus().getDescription();
        if (!failure.equals(lastFailure)) {
          log.warning("shardmap client: lost directory " + failure + "; serving lookups from revision "
              + (snapshot == null ? "(none yet)" : snapshot.revision()) + " and trying "
              + options.targets().get((target + 1) % channels.size()));
        }
        lastFailure = failure;
        reconnects.incrementAndGet();
        if (channels.size() > 1) {
          failovers.incrementAndGet();
          target = (target + 1) % channels.size();
        }
        sleepNanos(ThreadLocalRandom.current().nextLong(backoff / 2, backoff + 1));
        backoff = Math.min(backoff * 2, options.maxBackoff().toNanos());
      }
    }
  }

  /** A full read: shards at R0, then every followed keyspace at its own revision. */
  private void load(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, boolean reload) {
    ListShardsResponse shardsResp = stub.withDeadlineAfter(options.rpcTimeout().toNanos(), TimeUnit.NANOSECONDS)
        .listShards(ListShardsRequest.getDefaultInstance());
    Map<String, Shard> shards = new HashMap<>();
    for (Shard s : shardsResp.getShardsList()) {
      shards.put(s.getName(), s);
    }
    Map<String, KeyspaceMap> keyspaces = new HashMap<>();
    Map<String, Long> loadedAt = new HashMap<>();
    for (String ks : options.keyspaces()) {
      try {
        KeyspaceRead read = readKeyspace(stub, ks);
        keyspaces.put(ks, read.map);
        loadedAt.put(ks, read.revision);
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
          throw e;
        }
        // Not created yet: the watch will bring its spec and layout when it is.
      }
    }
    DirectorySnapshot before = snapshot;
    DirectorySnapshot loaded = new DirectorySnapshot(shardsResp.getRevision(), keyspaces, shards);
    this.keyspaceLoadRevisions = loadedAt;
    publish(before, loaded, true);
    log.info("shardmap client: " + (reload ? "re-read" : "loaded") + " " + keyspaces.size() + " keyspaces at "
        + "revision " + loaded.revision());
    firstLoad.countDown();
  }

  private Map<String, Long> keyspaceLoadRevisions = Map.of();

  private record KeyspaceRead(KeyspaceMap map, long revision) {}

  private KeyspaceRead readKeyspace(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, String ks) {
    List<MapChange> changes = new ArrayList<>();
    String token = "";
    GetMapResponse first = null;
    do {
      GetMapResponse page = stub.withDeadlineAfter(options.rpcTimeout().toNanos(), TimeUnit.NANOSECONDS)
          .getMap(GetMapRequest.newBuilder().setKeyspace(ks).setPageToken(token).build());
      if (first == null) {
        first = page;
        confirm(page.getFreshness());
        switch (page.getSpec().getStrategy()) {
          case STRATEGY_HASH -> changes.add(layout(ks).setHash(page.getHash()).build());
          case STRATEGY_CONSISTENT_HASH -> changes.add(layout(ks).setRing(page.getRing()).build());
          case STRATEGY_GEOGRAPHIC -> changes.add(layout(ks).setGeo(page.getGeo()).build());
          case STRATEGY_DIRECTORY -> changes.add(layout(ks).setDirectory(page.getDirectory()).build());
          default -> { }
        }
      }
      for (RangeAssignment r : page.getRangesList()) {
        changes.add(layout(ks).setRange(r).build());
      }
      for (DirectoryEntry e : page.getEntriesList()) {
        changes.add(layout(ks).setEntry(e).build());
      }
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    KeyspaceMap map = KeyspaceMap.withoutLayout(first.getSpec(), first.getRevision())
        .apply(first.getRevision(), changes);
    return new KeyspaceRead(map, first.getRevision());
  }

  private static MapChange.Builder layout(String ks) {
    return MapChange.newBuilder().setKeyspace(ks);
  }

  /** Follows the watch stream; returns true when the server asks for a full re-read. */
  private boolean follow(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub) {
    Context.CancellableContext ctx = Context.current().withCancellation();
    streamContext = ctx;
    lastMessageNanos = nanoTime.getAsLong();
    Thread watchdog = new Thread(() -> {
      while (!ctx.isCancelled()) {
        if (nanoTime.getAsLong() - lastMessageNanos > idleLimitNanos) {
          ctx.cancel(Status.UNAVAILABLE.withDescription("no message from the directory for "
              + TimeUnit.NANOSECONDS.toSeconds(idleLimitNanos) + " s").asRuntimeException());
          return;
        }
        sleepNanos(TimeUnit.MILLISECONDS.toNanos(200));
      }
    }, "shardmap-client-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    try {
      return ctx.call(() -> {
        Iterator<WatchResponse> it = stub.watch(WatchRequest.newBuilder()
            .addAllKeyspaces(options.keyspaces()).setAfterRevision(snapshot.revision()).build());
        while (it.hasNext()) {
          WatchResponse r = it.next();
          lastMessageNanos = nanoTime.getAsLong();
          confirm(r.getFreshness());
          if (r.getResyncRequired()) {
            return true;
          }
          if (!r.getProgress() && r.getRevision() > snapshot.revision()) {
            apply(r);
          }
        }
        throw Status.UNAVAILABLE.withDescription("the directory ended the watch stream").asRuntimeException();
      });
    } catch (StatusRuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw Status.INTERNAL.withDescription("applying a map change failed: " + e).withCause(e)
          .asRuntimeException();
    } finally {
      ctx.cancel(null);
      watchdog.interrupt();
    }
  }

  /** A server's word that its map was current {@code age_millis} ago (only while it reaches etcd). */
  private void confirm(io.shardmap.proto.v1.Freshness f) {
    if (f.getEtcdReachable()) {
      confirmedAtNanos = Math.max(confirmedAtNanos,
          nanoTime.getAsLong() - TimeUnit.MILLISECONDS.toNanos(f.getAgeMillis()));
    }
  }

  private void apply(WatchResponse r) {
    long rev = r.getRevision();
    List<MapChange> changes = r.getChangesList();
    Map<String, Long> loadedAt = keyspaceLoadRevisions;
    if (!loadedAt.isEmpty()) {
      List<MapChange> kept = new ArrayList<>(changes.size());
      for (MapChange c : changes) {
        Long at = loadedAt.get(c.getKeyspace());
        if (at == null || rev > at) {
          kept.add(c);
        }
      }
      changes = kept;
      if (loadedAt.values().stream().allMatch(at -> at <= rev)) {
        keyspaceLoadRevisions = Map.of();
      }
    }
    DirectorySnapshot before = snapshot;
    publish(before, before.apply(rev, changes), false);
  }

  private void publish(DirectorySnapshot before, DirectorySnapshot after, boolean resync) {
    snapshot = after;
    for (MapListener l : listeners) {
      try {
        l.onChange(before, after, resync);
      } catch (RuntimeException e) {
        log.warning("shardmap client: a map listener threw " + e + "; it keeps receiving changes");
      }
    }
  }

  private void sleepNanos(long nanos) {
    try {
      TimeUnit.NANOSECONDS.sleep(nanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    closed = true;
    Context.CancellableContext ctx = streamContext;
    if (ctx != null) {
      ctx.cancel(null);
    }
    worker.interrupt();
    for (ManagedChannel c : channels) {
      c.shutdownNow();
    }
    try {
      worker.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
