package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.ChangeDecoder;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.StoreErrors;
import io.grpc.Status;
import io.shardmap.core.Backoff;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.EtcdQuorum;
import io.shardmap.proto.v1.Freshness;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArraySet;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The server's watched copy of the maps. One etcd watch feeds it; each revision becomes a new immutable
 * {@link DirectorySnapshot} published through a volatile field, so lookups read it without locking.
 *
 * <p>It also keeps a bounded history of recent changes (so client watches resume after a reconnect
 * without a full re-read), and proves its freshness: every probe interval a quorum read gives the current
 * etcd revision P; once the watch has delivered (or the store confirmed progress up to) P, the snapshot is
 * known to have been current at the probe's start. {@link #freshness()} reports that age. While no quorum
 * read succeeds, etcd counts as unreachable: lookups go on from the last snapshot and writes are refused.
 *
 * <p>etcd's revision never goes down, except when etcd is restored from a backup: a quorum read below the
 * snapshot (or a new cluster id on the watch) makes this copy re-read everything and every client watch
 * re-read, at the lower revision. Client watches from a revision etcd has not reached are refused
 * ({@link #checkReached}).
 */
public final class DirectoryState implements AutoCloseable {
  private static final Logger log = Logger.getLogger(DirectoryState.class.getName());

  /** What a client watch stream receives. Calls for one sink never overlap. */
  public interface ChangeSink {
    void onChanges(long revision, List<MapChange> changes);

    /** Nothing relevant happened up to {@code revision} beyond what was already sent. */
    void onProgress(long revision);

    /** The requested revision cannot be served contiguously: the client must re-read. Last call. */
    void onResync();
  }

  private record Batch(long revision, List<MapChange> changes) {}

  private final MetaStore store;
  private final CatalogPaths paths;
  private final ChangeDecoder decoder;
  /**
   * Between failed full reads of the maps: 100 ms doubling to 5 s as before, now jittered down by up to
   * half, so that replicas which lost etcd together do not all re-read it at the same instants.
   */
  static final Backoff LOAD_BACKOFF = Backoff.exponential(Duration.ofMillis(100), Duration.ofSeconds(5));
  /** The store with every etcd round trip timed into {@code shardmap.etcd.requests}. */
  private final MeteredMetaStore metered;
  private final ScheduledExecutorService scheduler;
  private final AtomicBoolean reloadQueued = new AtomicBoolean();
  private final Object reloadLock = new Object();
  private final LongSupplier nanoTime;
  private final Duration requestTimeout;
  private final Duration probeInterval;
  private final int historyLimit;
  private final ServerMetrics metrics;
  /** Worker ids held per id generator, from the same read and watch (a gauge; no extra etcd traffic). */
  private final WorkerCensus workers;

  private volatile DirectorySnapshot snapshot;
  private volatile boolean etcdReachable = true;
  private volatile long confirmedAtNanos;
  private volatile long unreachableSinceNanos;
  /** etcd's revision as the last quorum read (probe or watch check) found it; 0 before the first. */
  private volatile long etcdRevision;

  private final Object lock = new Object();
  private final ArrayDeque<Batch> history = new ArrayDeque<>();
  private long historyFloor;
  private final Set<ChangeSink> sinks = new CopyOnWriteArraySet<>();
  private final LinkedHashMap<Long, DirectorySnapshot> pinned = new LinkedHashMap<>(16, 0.75f, true);

  // Freshness proofs in progress (guarded by lock): probes whose etcd revision the watch has not yet
  // reached, oldest first. Each is confirmed as soon as progress covers it; keeping only the newest would
  // starve confirmation while etcd keeps moving (every answer would cover an older probe than the last).
  private long progressRevision;
  private final ArrayDeque<long[]> pendingProbes = new ArrayDeque<>();

  private volatile Watch watch;
  private ScheduledFuture<?> probeTask;
  private volatile boolean closed;

  public DirectoryState(MetaStore store, CatalogPaths paths, ScheduledExecutorService scheduler,
                        LongSupplier nanoTime, Duration requestTimeout, Duration probeInterval,
                        int historyLimit, ServerMetrics metrics) {
    this.store = store;
    this.paths = paths;
    this.decoder = new ChangeDecoder(paths);
    this.workers = new WorkerCensus(paths, metrics);
    this.scheduler = scheduler;
    this.nanoTime = nanoTime;
    this.requestTimeout = requestTimeout;
    this.probeInterval = probeInterval;
    this.historyLimit = historyLimit;
    this.metrics = metrics;
    this.metered = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
  }

  /** Loads the maps and starts following etcd; retries the first load until it succeeds or close(). */
  public void start() throws InterruptedException {
    Backoff.Attempts pauses = LOAD_BACKOFF.start();
    while (!closed) {
      try {
        loadAndWatch(false);
        break;
      } catch (ShardmapException e) {
        long pauseMs = TimeUnit.NANOSECONDS.toMillis(pauses.nextPauseNanos());
        log.warning("initial load of the maps from etcd failed (" + e.getMessage() + "); retrying in "
            + pauseMs + " ms");
        Thread.sleep(pauseMs);
      }
    }
    long period = probeInterval.toMillis();
    probeTask = scheduler.scheduleWithFixedDelay(this::probe, period, period, TimeUnit.MILLISECONDS);
  }

  public boolean isLoaded() {
    return snapshot != null;
  }

  /** The current snapshot; fails with UNAVAILABLE before the first load. */
  public DirectorySnapshot snapshot() {
    DirectorySnapshot s = snapshot;
    if (s == null) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE,
          "the directory server has not loaded the maps from etcd yet");
    }
    return s;
  }

  public Freshness freshness() {
    return freshness(snapshot);
  }

  /**
   * Freshness of an answer computed from {@code answeredFrom}, which may already be older than the
   * current snapshot: the revision must be the one the answer reflects, or a client ordering answers by
   * revision (the SDK's lazy directory cache) would take an old answer for a newer one.
   */
  public Freshness freshness(DirectorySnapshot answeredFrom) {
    DirectorySnapshot s = answeredFrom;
    return Freshness.newBuilder()
        .setRevision(s == null ? 0 : s.revision())
        .setAgeMillis(ageNanos() / 1_000_000)
        // Both states are non-zero enum values, so protobuf JSON shows the alarm (see types.proto).
        .setEtcdQuorum(etcdReachable ? EtcdQuorum.ETCD_QUORUM_REACHABLE : EtcdQuorum.ETCD_QUORUM_UNREACHABLE)
        .build();
  }

  long ageNanos() {
    return Math.max(0, nanoTime.getAsLong() - confirmedAtNanos);
  }

  public boolean etcdReachable() {
    return etcdReachable;
  }

  /** Fails fast with UNAVAILABLE while the last quorum probe failed. */
  public void checkWritable() {
    if (!etcdReachable) {
      long s = (nanoTime.getAsLong() - unreachableSinceNanos) / 1_000_000_000L;
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "etcd has no reachable quorum (for " + s
          + " s): map changes are refused until it recovers; lookups are served from revision "
          + snapshot().revision());
    }
  }

  /**
   * Waits (bounded) until this copy holds every map change up to {@code revision}: the snapshot reached
   * it, or the watch confirmed progress past it. Unlike {@link #awaitRevision}, this ends for a revision
   * made by keys outside our prefix (an etcd shared with other users), which never reaches the snapshot.
   * On etcd before 3.4.25 / 3.5.8 a progress answer can precede events of its revision by a moment
   * (see {@code WatchListener#onProgress}), so use it only where an early answer costs a retry, not
   * correctness: after a failed compare, say. False on timeout.
   */
  public boolean awaitObserved(long revision, Duration timeout) throws InterruptedException {
    long deadline = nanoTime.getAsLong() + timeout.toNanos();
    while (true) {
      synchronized (lock) {
        if (snapshot != null && (snapshot.revision() >= revision || progressRevision >= revision)) {
          return true;
        }
      }
      long left = deadline - nanoTime.getAsLong();
      if (left <= 0 || closed) {
        return false;
      }
      Watch w = watch;
      if (w != null) {
        w.requestProgress();
      }
      synchronized (lock) {
        if (snapshot == null || (snapshot.revision() < revision && progressRevision < revision)) {
          // Re-ask now and then: an answer given before the watch was in sync is dropped by the store.
          lock.wait(Math.max(1, Math.min(100, left / 1_000_000)));
        }
      }
    }
  }

  /** Waits (bounded) until the snapshot reflects {@code revision}; false on timeout. */
  public boolean awaitRevision(long revision, Duration timeout) throws InterruptedException {
    long deadline = nanoTime.getAsLong() + timeout.toNanos();
    synchronized (lock) {
      while (snapshot == null || snapshot.revision() < revision) {
        long left = deadline - nanoTime.getAsLong();
        if (left <= 0 || closed) {
          return false;
        }
        lock.wait(Math.max(1, left / 1_000_000), 0);
      }
    }
    return true;
  }

  /**
   * Completes once a client may watch from {@code afterRevision}: at once when this server's snapshot, or
   * the last quorum read of etcd's revision, has reached it; otherwise after a quorum read of etcd's
   * current revision. Fails with OUT_OF_RANGE when etcd has not reached {@code afterRevision} (a revision
   * from the future is one no change can ever be delivered after: such a watch would claim that revision
   * in its heartbeats and miss every change up to it, as after etcd was restored from a backup), and with
   * UNAVAILABLE when etcd cannot be asked. A replica that merely lags etcd thus accepts a revision another
   * replica served, and streams the changes after it once it has caught up.
   */
  public CompletableFuture<Void> checkReached(long afterRevision) {
    DirectorySnapshot s = snapshot;
    if (s == null || afterRevision <= Math.max(s.revision(), etcdRevision)) {
      return CompletableFuture.completedFuture(null);
    }
    long snapshotBefore = s.revision();
    CompletableFuture<Long> read;
    try {
      read = metered.as("watch_check").currentRevision().orTimeout(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (RuntimeException e) {
      read = CompletableFuture.failedFuture(e);
    }
    return read.handle((current, error) -> {
      if (error != null) {
        Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        throw Status.UNAVAILABLE.withDescription("after_revision: " + afterRevision + " is past this server's "
            + "snapshot (revision " + snapshotBefore + ") and etcd could not be asked whether it has reached it ("
            + (cause instanceof java.util.concurrent.TimeoutException ? "no answer within "
            + requestTimeout.toMillis() + " ms" : cause.getMessage()) + "); try another directory server")
            .asRuntimeException();
      }
      observeEtcdRevision(current, snapshotBefore);
      if (afterRevision > current) {
        throw Status.OUT_OF_RANGE.withDescription("after_revision: " + afterRevision + " is past etcd's "
            + "current revision " + current + " (this server's snapshot is at revision " + snapshot().revision()
            + "); watch from a revision this cluster gave you (GetMap, ListShards, Watch). A client ahead of "
            + "etcd usually means etcd was restored from a backup: re-read the maps with GetMap and watch "
            + "from their revision").asRuntimeException();
      }
      return null;
    });
  }

  /**
   * A quorum read found etcd at revision {@code current}; {@code snapshotBefore} is this server's snapshot
   * revision from before the read was sent. etcd's revision never goes down, and a linearizable read sent
   * after the snapshot was taken answers at least its revision, so an answer below it means etcd was
   * restored from a backup (or the endpoints now reach another cluster): its revisions after {@code current}
   * will not be the ones this server holds, so re-read everything and make every client watch re-read.
   */
  private boolean observeEtcdRevision(long current, long snapshotBefore) {
    etcdRevision = current;
    if (current >= snapshotBefore) {
      return false;
    }
    log.warning("etcd is at revision " + current + ", behind this server's snapshot at revision "
        + snapshotBefore + ": etcd went back in time (restored from a backup, or another cluster behind the "
        + "same endpoints); re-reading the maps and telling every client watch to re-read");
    scheduleReload("etcd went back to revision " + current);
    return true;
  }

  /**
   * Streams every change after {@code afterRevision} to the sink, then live ones. If the history no longer
   * reaches back that far, the sink gets {@link ChangeSink#onResync} at once. Callers check
   * {@link #checkReached} first.
   */
  public AutoCloseable subscribe(long afterRevision, ChangeSink sink) {
    synchronized (lock) {
      if (snapshot == null || afterRevision < historyFloor) {
        sink.onResync();
        return () -> { };
      }
      for (Batch b : history) {
        if (b.revision > afterRevision) {
          sink.onChanges(b.revision, b.changes);
        }
      }
      sinks.add(sink);
    }
    metrics.watchStreams(sinks.size());
    return () -> {
      sinks.remove(sink);
      metrics.watchStreams(sinks.size());
    };
  }

  /** Tells every sink the revision it is current to (it has been sent every change up to it). */
  public void heartbeat() {
    synchronized (lock) {
      if (snapshot == null) {
        return;
      }
      long rev = snapshot.revision();
      for (ChangeSink s : sinks) {
        s.onProgress(rev);
      }
    }
  }

  /**
   * Where {@code revision} falls among the revisions that changed the maps, as far as this server knows:
   * {@code [0]} is the newest revision at or before it that changed them (or the revision the maps were
   * loaded at, when no later change is held), {@code [1]} the oldest one after it ({@link Long#MAX_VALUE}
   * when none is known yet). A revision past this server's snapshot is treated like the snapshot's (the
   * changes in between are not known here, so {@code [0]} may be below the true value, never above).
   * When the history does not reach back to {@code revision}, nothing is rounded: {@code [0]} is the
   * revision itself and {@code [1]} the next one.
   *
   * <p>Revisions that changed nothing the maps are made of (client presence records, migration state)
   * have no batch in the history: the map at such a revision is the map at {@code [0]}.
   */
  public long[] changeBracket(long revision) {
    synchronized (lock) {
      if (snapshot == null || revision < historyFloor) {
        return new long[] {revision, revision + 1};
      }
      long next = Long.MAX_VALUE;
      java.util.Iterator<Batch> it = history.descendingIterator();
      while (it.hasNext()) {
        Batch b = it.next();
        if (b.revision <= revision) {
          return new long[] {b.revision, next};
        }
        next = b.revision;
      }
      return new long[] {historyFloor, next};
    }
  }

  /** Keeps a snapshot reachable by revision for paged reads; returns it. */
  public DirectorySnapshot pin(DirectorySnapshot s) {
    synchronized (lock) {
      pinned.put(s.revision(), s);
      while (pinned.size() > 16) {
        Long eldest = pinned.keySet().iterator().next();
        pinned.remove(eldest);
      }
    }
    return s;
  }

  /** A pinned snapshot, or ABORTED if it has been evicted. */
  public DirectorySnapshot pinned(long revision) {
    synchronized (lock) {
      DirectorySnapshot s = pinned.get(revision);
      if (s == null) {
        throw new ShardmapException(ErrorCode.ABORTED, "page_token: the map at revision " + revision
            + " is no longer held by this server; restart the read without a page token");
      }
      return s;
    }
  }

  private void loadAndWatch(boolean reload) {
    RangeResult all;
    // The copy is confirmed current as of when this read was sent.
    long t0 = nanoTime.getAsLong();
    try {
      all = metered.getPrefix(paths.rootPrefix()).get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStore("reading the maps from etcd", e);
    }
    DirectorySnapshot loaded = DirectorySnapshot.empty(0).apply(all.revision(), decoder.toChanges(all.kvs()));
    workers.reset(all.kvs());
    List<ChangeSink> dropped;
    synchronized (lock) {
      snapshot = loaded;
      history.clear();
      historyFloor = all.revision();
      progressRevision = all.revision();
      // Probes still waiting belong to the old copy (after a restore, to revisions etcd may never reach
      // again, which would block every later confirmation); this read itself proves the copy current.
      pendingProbes.clear();
      etcdRevision = all.revision();
      confirmedAtNanos = t0;
      dropped = new ArrayList<>(sinks);
      sinks.clear();
      lock.notifyAll();
    }
    for (ChangeSink s : dropped) {
      s.onResync();
    }
    metrics.snapshot(loaded.revision());
    metrics.resync();
    logBroken(loaded);
    if (reload) {
      log.warning("reloaded the maps from etcd at revision " + all.revision() + " ("
          + loaded.keyspaces().size() + " keyspaces, " + loaded.shards().size() + " shards); "
          + dropped.size() + " client watches told to re-read");
    } else {
      log.info("loaded the maps from etcd at revision " + all.revision() + " ("
          + loaded.keyspaces().size() + " keyspaces, " + loaded.shards().size() + " shards)");
    }
    Watch old = watch;
    if (old != null) {
      old.close();
    }
    watch = store.watch(paths.rootPrefix(), all.revision(), new Listener());
  }

  private void logBroken(DirectorySnapshot s) {
    for (KeyspaceMap k : s.keyspaces().values()) {
      if (k.broken() != null) {
        log.severe("keyspace '" + k.name() + "' is inconsistent in etcd: " + k.broken());
      }
    }
  }

  private final class Listener implements WatchListener {
    private boolean inOutage;

    @Override
    public void onBatch(long revision, List<WatchEvent> events) {
      if (closed) {
        return;
      }
      if (inOutage) {
        inOutage = false;
        log.info("etcd watch resumed at revision " + revision);
      }
      DirectorySnapshot current = snapshot;
      if (revision <= current.revision()) {
        return;
      }
      workers.apply(events);
      List<MapChange> changes;
      DirectorySnapshot next;
      try {
        changes = decoder.toChanges(events, name -> {
          KeyspaceMap k = current.keyspaces().get(name);
          return k == null ? null : k.spec();
        });
        next = current.apply(revision, changes);
      } catch (RuntimeException e) {
        // Undecodable records are a bug or a hand edit; skipping them would silently diverge, so re-read.
        log.log(Level.SEVERE, "could not apply etcd revision " + revision + "; re-reading the maps", e);
        scheduleReload("an unreadable change");
        return;
      }
      synchronized (lock) {
        snapshot = next;
        if (!changes.isEmpty()) {
          history.addLast(new Batch(revision, changes));
          while (history.size() > historyLimit) {
            historyFloor = history.removeFirst().revision;
          }
        }
        progressRevision = Math.max(progressRevision, revision);
        confirmPendingLocked();
        // Sinks only enqueue, so dispatching under the lock is cheap, and it orders every change
        // before any heartbeat that claims its revision (see heartbeat()).
        if (!changes.isEmpty()) {
          for (ChangeSink s : sinks) {
            s.onChanges(revision, changes);
          }
        }
        lock.notifyAll();
      }
      metrics.snapshot(revision);
      String touchedBroken = null;
      for (MapChange c : changes) {
        KeyspaceMap k = next.keyspaces().get(c.getKeyspace());
        if (k != null && k.broken() != null) {
          touchedBroken = k.name();
          if (current.keyspaces().get(k.name()) != k) {
            log.severe("keyspace '" + k.name() + "' became inconsistent at revision " + revision + ": "
                + k.broken());
          }
          break;
        }
      }
      if (touchedBroken != null) {
        // Our writers keep every keyspace whole in etcd, so a batch that breaks one (or lands on one
        // already broken) most likely means this copy missed a change, or a hand edit is under way.
        // Either way only a full read tells; it also tells every client watch to re-read.
        scheduleReload("a change to inconsistent keyspace '" + touchedBroken + "'");
      }
    }

    @Override
    public void onProgress(long revision) {
      synchronized (lock) {
        progressRevision = Math.max(progressRevision, revision);
        confirmPendingLocked();
        lock.notifyAll();
      }
    }

    @Override
    public void onCompacted(long compactRevision) {
      log.warning("etcd compacted revision " + compactRevision + " before this server read it; "
          + "re-reading the maps");
      scheduleReload("compaction");
    }

    @Override
    public void onHistoryReset(long storeRevision, String reason) {
      log.warning("etcd no longer continues the history this server followed (" + reason + "); re-reading "
          + "the maps and telling every client watch to re-read");
      scheduleReload("etcd's history reset");
    }

    @Override
    public void onTransientError(StoreException error) {
      metrics.watchError();
      if (!inOutage) {
        inOutage = true;
        log.warning("etcd watch interrupted (" + error.getMessage() + "); resuming by itself");
      }
    }
  }

  /**
   * Re-reads the maps on the scheduler. Triggers that arrive while a re-read is queued join it; one
   * that arrives once it has started queues another, because the running read may predate its cause.
   */
  private void scheduleReload(String why) {
    if (reloadQueued.compareAndSet(false, true)) {
      scheduler.execute(() -> reloadAfter(why));
    }
  }

  private void reloadAfter(String why) {
    synchronized (reloadLock) {
      reloadQueued.set(false);
      Backoff.Attempts pauses = LOAD_BACKOFF.start();
      while (!closed) {
        try {
          loadAndWatch(true);
          return;
        } catch (ShardmapException e) {
          log.warning("re-reading the maps after " + why + " failed (" + e.getMessage() + "); retrying");
          try {
            TimeUnit.NANOSECONDS.sleep(pauses.nextPauseNanos());
          } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            return;
          }
        }
      }
    }
  }

  private void confirmPendingLocked() {
    while (!pendingProbes.isEmpty() && pendingProbes.peekFirst()[0] <= progressRevision) {
      confirmedAtNanos = Math.max(confirmedAtNanos, pendingProbes.pollFirst()[1]);
    }
  }

  /** One freshness probe: a quorum read, then (if needed) a progress request on the watch. */
  void probe() {
    if (closed) {
      return;
    }
    long t0 = nanoTime.getAsLong();
    DirectorySnapshot before = snapshot;
    long current;
    try {
      current = metered.as("probe").currentRevision().get(probeTimeoutMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      if (!closed) {
        // A probe cut short by our own shutdown says nothing about etcd.
        markUnreachable(e);
      }
      return;
    }
    markReachable();
    if (observeEtcdRevision(current, before == null ? 0 : before.revision())) {
      return; // this copy is from another history: nothing to confirm until the re-read
    }
    boolean needProgress;
    synchronized (lock) {
      metrics.watchLag(current - progressRevision);
      if (progressRevision >= current) {
        confirmedAtNanos = Math.max(confirmedAtNanos, t0);
        needProgress = false;
      } else {
        pendingProbes.addLast(new long[] {current, t0});
        while (pendingProbes.size() > 64) {
          pendingProbes.pollFirst();
        }
        needProgress = true;
      }
    }
    Watch w = watch;
    if (needProgress && w != null) {
      w.requestProgress();
    }
    metrics.freshness(ageNanos(), etcdReachable);
  }

  /**
   * A probe gets the whole request timeout: with one member down the client needs time to fail over, and
   * a shorter probe would declare a healthy cluster unreachable and refuse writes for nothing.
   */
  private long probeTimeoutMillis() {
    return requestTimeout.toMillis();
  }

  private void markUnreachable(Exception e) {
    if (etcdReachable) {
      unreachableSinceNanos = nanoTime.getAsLong();
      etcdReachable = false;
      Throwable cause = e.getCause() != null ? e.getCause() : e;
      String why = cause instanceof java.util.concurrent.TimeoutException
          ? "no answer to a quorum read within " + probeTimeoutMillis() + " ms" : String.valueOf(cause.getMessage());
      log.warning("etcd quorum unreachable (" + why + "): serving lookups from revision "
          + (snapshot == null ? 0 : snapshot.revision()) + " and refusing map changes until it returns");
    }
    metrics.freshness(ageNanos(), false);
  }

  private void markReachable() {
    if (!etcdReachable) {
      etcdReachable = true;
      long s = (nanoTime.getAsLong() - unreachableSinceNanos) / 1_000_000;
      log.info("etcd quorum reachable again after " + s + " ms; catching up from revision "
          + snapshot().revision());
    }
  }

  @Override
  public void close() {
    closed = true;
    if (probeTask != null) {
      probeTask.cancel(false);
    }
    Watch w = watch;
    if (w != null) {
      w.close();
    }
    synchronized (lock) {
      lock.notifyAll();
    }
  }
}
