package io.shardmap.store;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An in-memory {@link MetaStore} with etcd's semantics, for fast deterministic tests.
 *
 * <p>What it reproduces from etcd: a global revision that starts at 1 on an empty store and grows by
 * exactly one per transaction that changes something (a transaction that fails its compares, or whose
 * writes change nothing, leaves it alone and reports the current revision); per-key create/mod
 * revision and version; etcd's transaction checks (at most {@link #DEFAULT_MAX_TXN_OPS} compares and
 * as many writes, at most {@link #DEFAULT_MAX_REQUEST_BYTES} of keys and values, no key written twice
 * and no put inside a deleted range, a put's lease must exist); watches with etcd's ordering (history
 * replay then live, one batch per revision, events of a revision in write order); compaction (history
 * below the compaction revision is dropped, a watch that still needs it gets
 * {@link WatchListener#onCompacted} once); leases on an injected clock, expired on every access or
 * when {@link #expireLeases()} is called.
 *
 * <p>Several clients can share one in-memory cluster ({@link #newClient()}), each with its own watches
 * and its own fault injection, which is how a test partitions one server while others keep writing.
 * Faults: {@link #setUnavailable}, {@link #failNext}.
 *
 * <p>Threading: all state sits behind one lock; futures are already complete when returned; listener
 * calls run on the executor given to the constructor (or on threads this client owns), serialized per
 * watch, and never while the lock is held.
 */
public final class InMemoryMetaStore implements MetaStore {

  /** etcd's default {@code --max-txn-ops}. */
  public static final int DEFAULT_MAX_TXN_OPS = 128;
  /** etcd's default {@code --max-request-bytes} (1.5 MiB). */
  public static final int DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024;

  private static final Logger LOG = LoggerFactory.getLogger(InMemoryMetaStore.class);
  /** Batches a watch takes out of history per lock acquisition; bounds lock hold time for long replays. */
  private static final int MAX_BATCHES_PER_PULL = 256;
  private static final long FIRST_LEASE_ID = 0x694d_0000_0000L;
  private static final AtomicInteger THREAD_COUNTER = new AtomicInteger();

  private final Cluster cluster;
  private final Executor listenerExecutor;
  /** Non-null when this client created its own listener threads and must stop them on close. */
  private final ExecutorService ownedExecutor;

  // Guarded by cluster (the single lock).
  private final Set<FakeWatch> watches = new HashSet<>();
  private boolean closed;
  private boolean unavailable;
  private long outageEpoch;
  private int failRemaining;
  private StoreException.Kind failKind = StoreException.Kind.UNAVAILABLE;

  /** A store on the system clock, delivering watch events on threads it owns. */
  public InMemoryMetaStore() {
    this(System::nanoTime, null);
  }

  /** A store whose leases expire by {@code nanoTime} (a monotonic clock in nanoseconds, like {@link System#nanoTime}). */
  public InMemoryMetaStore(LongSupplier nanoTime) {
    this(nanoTime, null);
  }

  /**
   * A store whose leases expire by {@code nanoTime} and whose watch listeners run on
   * {@code listenerExecutor} (serialized per watch); {@code null} means threads owned by this store.
   */
  public InMemoryMetaStore(LongSupplier nanoTime, Executor listenerExecutor) {
    this(new Cluster(Objects.requireNonNull(nanoTime, "nanoTime")), listenerExecutor);
  }

  private InMemoryMetaStore(Cluster cluster, Executor listenerExecutor) {
    this.cluster = cluster;
    if (listenerExecutor == null) {
      this.ownedExecutor = Executors.newCachedThreadPool(daemonThreads());
      this.listenerExecutor = ownedExecutor;
    } else {
      this.ownedExecutor = null;
      this.listenerExecutor = listenerExecutor;
    }
    synchronized (cluster) {
      cluster.clients.add(this);
    }
  }

  /**
   * Another client of the same in-memory cluster: same keys, revisions, leases and clock; its own
   * watches, fault injection and lifecycle. Listener threads are owned by the new client.
   */
  public InMemoryMetaStore newClient() {
    return newClient(null);
  }

  /** Like {@link #newClient()}, delivering watch events on {@code listenerExecutor} ({@code null}: own threads). */
  public InMemoryMetaStore newClient(Executor listenerExecutor) {
    return new InMemoryMetaStore(cluster, listenerExecutor);
  }

  // ---------------------------------------------------------------------------------------------
  // MetaStore
  // ---------------------------------------------------------------------------------------------

  @Override
  public CompletableFuture<RangeResult> get(String key) {
    Objects.requireNonNull(key, "key");
    return call(() -> {
      requireKey(key);
      KeyValue kv = cluster.data.get(key);
      return new RangeResult(cluster.revision, kv == null ? List.of() : List.of(copyOf(kv)));
    });
  }

  @Override
  public CompletableFuture<RangeResult> getPrefix(String prefix) {
    Objects.requireNonNull(prefix, "prefix");
    return call(() -> {
      List<KeyValue> kvs = new ArrayList<>();
      for (KeyValue kv : cluster.underPrefix(prefix).values()) {
        kvs.add(copyOf(kv));
      }
      return new RangeResult(cluster.revision, kvs);
    });
  }

  @Override
  public CompletableFuture<TxnResult> commit(Txn txn) {
    Objects.requireNonNull(txn, "txn");
    return call(() -> cluster.applyTxn(txn));
  }

  @Override
  public CompletableFuture<Long> currentRevision() {
    return call(() -> cluster.revision);
  }

  @Override
  public Watch watch(String prefix, long afterRevision, WatchListener listener) {
    Objects.requireNonNull(prefix, "prefix");
    Objects.requireNonNull(listener, "listener");
    if (afterRevision < 0) {
      throw new IllegalArgumentException("afterRevision must not be negative: " + afterRevision);
    }
    FakeWatch watch = new FakeWatch(prefix, afterRevision, listener);
    synchronized (cluster) {
      if (closed) {
        throw new StoreException(StoreException.Kind.CLOSED, "in-memory store is closed", null);
      }
      watches.add(watch);
    }
    watch.wake();
    return watch;
  }

  @Override
  public CompletableFuture<Long> grantLease(Duration ttl) {
    long seconds = LeaseTtl.wholeSeconds(ttl);
    return call(() -> cluster.grant(seconds));
  }

  @Override
  public CompletableFuture<Void> keepAliveOnce(long leaseId) {
    return call(() -> {
      Lease lease = cluster.leases.get(leaseId);
      if (lease == null) {
        throw new StoreException(StoreException.Kind.NOT_FOUND, "lease " + Long.toHexString(leaseId)
            + " not found (expired or revoked)", null);
      }
      lease.deadlineNanos = cluster.nanoTime.getAsLong() + lease.ttlNanos;
      return null;
    });
  }

  @Override
  public CompletableFuture<Void> revokeLease(long leaseId) {
    return call(() -> {
      Lease lease = cluster.leases.get(leaseId);
      if (lease != null) {
        cluster.revokeLocked(lease);
      }
      return null;
    });
  }

  /**
   * Closes this client: its watches stop (no listener call starts after this returns), later calls
   * fail with {@link StoreException.Kind#CLOSED}. The shared cluster and its other clients live on.
   */
  @Override
  public void close() {
    List<FakeWatch> toClose;
    synchronized (cluster) {
      if (closed) {
        return;
      }
      closed = true;
      toClose = new ArrayList<>(watches);
      watches.clear();
      cluster.clients.remove(this);
    }
    for (FakeWatch w : toClose) {
      w.close();
    }
    if (ownedExecutor != null) {
      ownedExecutor.shutdown();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Test controls
  // ---------------------------------------------------------------------------------------------

  /**
   * Compacts the shared history at {@code revision}, like etcd's Compact: events of revisions below
   * it are dropped, {@code revision} becomes the oldest one a watch can start from. A watch whose next
   * needed revision is below it (it lags, or starts there) gets {@link WatchListener#onCompacted} once.
   *
   * @throws StoreException {@link StoreException.Kind#COMPACTED} if already compacted at or past it
   * @throws IllegalArgumentException if {@code revision} is in the future
   */
  public void compact(long revision) {
    synchronized (cluster) {
      if (revision > cluster.revision) {
        throw new IllegalArgumentException("cannot compact at future revision " + revision
            + "; current revision is " + cluster.revision);
      }
      if (revision <= cluster.compactRevision) {
        throw new StoreException(StoreException.Kind.COMPACTED, "revision " + revision
            + " is already compacted", null, cluster.compactRevision);
      }
      cluster.compactRevision = revision;
      cluster.history.headMap(revision, false).clear();
    }
    wakeAllWatches();
  }

  /**
   * Expires every lease whose deadline has passed on the clock, deleting its keys (one revision per
   * lease, keys in order, as etcd's lessor does). Calls do this by themselves on entry; tests call it
   * to make expiry visible to watches without another call. Returns the number of leases expired.
   */
  public int expireLeases() {
    int expired;
    synchronized (cluster) {
      expired = cluster.expireLeasesLocked();
    }
    if (expired > 0) {
      wakeAllWatches();
    }
    return expired;
  }

  /**
   * Simulates losing the cluster (this client only). While on, every call fails with
   * {@link StoreException.Kind#UNAVAILABLE} and watches deliver nothing; each watch reports the outage
   * once through {@link WatchListener#onTransientError}. When turned off, watches resume after their
   * last delivered revision and deliver whatever other clients wrote meanwhile, in order.
   */
  public void setUnavailable(boolean unavailable) {
    synchronized (cluster) {
      if (unavailable && !this.unavailable) {
        outageEpoch++;
      }
      this.unavailable = unavailable;
    }
    wakeOwnWatches();
  }

  /**
   * Makes the next {@code n} calls of this client that would otherwise have been served fail with
   * {@code kind}, without touching any state (a failed commit writes nothing). Calls refused because
   * the client is closed or unavailable do not count. {@code n == 0} cancels pending failures.
   */
  public void failNext(int n, StoreException.Kind kind) {
    Objects.requireNonNull(kind, "kind");
    if (n < 0) {
      throw new IllegalArgumentException("n must not be negative: " + n);
    }
    synchronized (cluster) {
      failRemaining = n;
      failKind = kind;
    }
  }

  /** Sets the cluster's limit on compares and on writes per transaction (etcd's {@code --max-txn-ops}). */
  public void setMaxTxnOps(int maxTxnOps) {
    if (maxTxnOps < 1) {
      throw new IllegalArgumentException("maxTxnOps must be positive: " + maxTxnOps);
    }
    synchronized (cluster) {
      cluster.maxTxnOps = maxTxnOps;
    }
  }

  /** Sets the cluster's limit on the bytes of keys and values in one transaction (etcd's {@code --max-request-bytes}). */
  public void setMaxRequestBytes(int maxRequestBytes) {
    if (maxRequestBytes < 1) {
      throw new IllegalArgumentException("maxRequestBytes must be positive: " + maxRequestBytes);
    }
    synchronized (cluster) {
      cluster.maxRequestBytes = maxRequestBytes;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Internals
  // ---------------------------------------------------------------------------------------------

  /**
   * Runs one call under the lock after the admission checks, then wakes watches outside the lock if
   * the revision moved. Failures become failed futures; nothing is thrown to the caller.
   */
  private <T> CompletableFuture<T> call(Supplier<T> body) {
    T result = null;
    StoreException failure = null;
    boolean changed;
    synchronized (cluster) {
      StoreException refused = admitLocked();
      if (refused != null) {
        return CompletableFuture.failedFuture(refused);
      }
      long before = cluster.revision;
      try {
        cluster.expireLeasesLocked();
        result = body.get();
      } catch (StoreException e) {
        failure = e;
      }
      // A failed call may still have expired leases on entry; those deletions must reach watches.
      changed = cluster.revision != before;
    }
    if (changed) {
      wakeAllWatches();
    }
    return failure != null ? CompletableFuture.failedFuture(failure) : CompletableFuture.completedFuture(result);
  }

  private StoreException admitLocked() {
    if (closed) {
      return new StoreException(StoreException.Kind.CLOSED, "in-memory store is closed", null);
    }
    if (unavailable) {
      return new StoreException(StoreException.Kind.UNAVAILABLE,
          "in-memory store is unavailable (fault injected by setUnavailable)", null);
    }
    if (failRemaining > 0) {
      failRemaining--;
      return new StoreException(failKind, "injected failure (failNext, " + failRemaining + " left)", null,
          failKind == StoreException.Kind.COMPACTED ? cluster.compactRevision : 0);
    }
    return null;
  }

  private static void requireKey(String key) {
    if (key.isEmpty()) {
      throw new StoreException(StoreException.Kind.INTERNAL, "key is not provided (etcd rejects empty keys)", null);
    }
  }

  private void wakeAllWatches() {
    List<InMemoryMetaStore> clients;
    synchronized (cluster) {
      clients = new ArrayList<>(cluster.clients);
    }
    for (InMemoryMetaStore client : clients) {
      client.wakeOwnWatches();
    }
  }

  private void wakeOwnWatches() {
    List<FakeWatch> snapshot;
    synchronized (cluster) {
      snapshot = new ArrayList<>(watches);
    }
    for (FakeWatch w : snapshot) {
      w.wake();
    }
  }

  private static KeyValue copyOf(KeyValue kv) {
    return new KeyValue(kv.key(), kv.value().clone(), kv.createRevision(), kv.modRevision(), kv.version(),
        kv.lease());
  }

  private static ThreadFactory daemonThreads() {
    return runnable -> {
      Thread t = new Thread(runnable, "inmemory-metastore-watch-" + THREAD_COUNTER.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** The shared state of one in-memory cluster. Its monitor is the single lock of every client. */
  private static final class Cluster {
    final LongSupplier nanoTime;
    final TreeMap<String, KeyValue> data = new TreeMap<>(KeyOrder.CODE_POINT);
    /** Every event of every revision at or above the compaction revision, in write order. */
    final TreeMap<Long, List<WatchEvent>> history = new TreeMap<>();
    final Map<Long, Lease> leases = new TreeMap<>();
    final Set<InMemoryMetaStore> clients = new HashSet<>();
    long revision = 1;
    long compactRevision;
    long nextLeaseId = FIRST_LEASE_ID;
    int maxTxnOps = DEFAULT_MAX_TXN_OPS;
    int maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES;

    Cluster(LongSupplier nanoTime) {
      this.nanoTime = nanoTime;
    }

    NavigableMap<String, KeyValue> underPrefix(String prefix) {
      if (prefix.isEmpty()) {
        return data;
      }
      String end = prefixEnd(prefix);
      return end == null ? data.tailMap(prefix, true) : data.subMap(prefix, true, end, false);
    }

    TxnResult applyTxn(Txn txn) {
      checkLimits(txn);
      checkWriteSet(txn);
      for (Compare c : txn.compares()) {
        KeyValue kv = data.get(c.key());
        boolean holds = kv == null ? c.test(0, 0, 0) : c.test(kv.version(), kv.createRevision(), kv.modRevision());
        if (!holds) {
          return new TxnResult(false, revision);
        }
      }
      for (Txn.Write w : txn.writes()) {
        if (w instanceof Txn.Put put && put.lease() != 0 && !leases.containsKey(put.lease())) {
          throw new StoreException(StoreException.Kind.NOT_FOUND, "lease " + Long.toHexString(put.lease())
              + " not found (expired or revoked); put of " + put.key() + " refused", null);
        }
      }
      long next = revision + 1;
      List<WatchEvent> events = new ArrayList<>();
      for (Txn.Write w : txn.writes()) {
        if (w instanceof Txn.Put put) {
          KeyValue old = data.get(put.key());
          detachLease(old);
          KeyValue kv = new KeyValue(put.key(), put.value().clone(), old == null ? next : old.createRevision(),
              next, old == null ? 1 : old.version() + 1, put.lease());
          data.put(put.key(), kv);
          if (put.lease() != 0) {
            leases.get(put.lease()).keys.add(put.key());
          }
          events.add(new WatchEvent(WatchEvent.Type.PUT, kv));
        } else if (w instanceof Txn.Delete del) {
          deleteKey(del.key(), next, events);
        } else if (w instanceof Txn.DeletePrefix dp) {
          for (String key : new ArrayList<>(underPrefix(dp.prefix()).keySet())) {
            deleteKey(key, next, events);
          }
        }
      }
      if (events.isEmpty()) {
        return new TxnResult(true, revision);
      }
      revision = next;
      history.put(next, List.copyOf(events));
      return new TxnResult(true, next);
    }

    private void checkLimits(Txn txn) {
      if (txn.compares().size() > maxTxnOps || txn.writes().size() > maxTxnOps) {
        throw new StoreException(StoreException.Kind.TOO_LARGE, "too many operations in txn request: "
            + txn.compares().size() + " compares, " + txn.writes().size() + " writes; the limit is "
            + maxTxnOps + " of each", null);
      }
      long bytes = 0;
      for (Compare c : txn.compares()) {
        bytes += KeyOrder.utf8Length(c.key());
      }
      for (Txn.Write w : txn.writes()) {
        if (w instanceof Txn.Put put) {
          bytes += KeyOrder.utf8Length(put.key()) + (long) put.value().length;
        } else if (w instanceof Txn.Delete del) {
          bytes += KeyOrder.utf8Length(del.key());
        } else if (w instanceof Txn.DeletePrefix dp) {
          bytes += 2L * KeyOrder.utf8Length(dp.prefix());
        }
      }
      if (bytes > maxRequestBytes) {
        throw new StoreException(StoreException.Kind.TOO_LARGE, "request is too large: " + bytes
            + " bytes of keys and values; the limit is " + maxRequestBytes, null);
      }
    }

    /** etcd's checkIntervals: no key put twice, no put inside a key or range deleted by the same txn. */
    private static void checkWriteSet(Txn txn) {
      Set<String> deletedKeys = new HashSet<>();
      List<String> deletedPrefixes = new ArrayList<>();
      for (Txn.Write w : txn.writes()) {
        if (w instanceof Txn.Delete del) {
          requireKey(del.key());
          deletedKeys.add(del.key());
        } else if (w instanceof Txn.DeletePrefix dp) {
          deletedPrefixes.add(dp.prefix());
        }
      }
      Set<String> puts = new HashSet<>();
      for (Txn.Write w : txn.writes()) {
        if (w instanceof Txn.Put put) {
          requireKey(put.key());
          boolean deleted = deletedKeys.contains(put.key())
              || deletedPrefixes.stream().anyMatch(put.key()::startsWith);
          if (!puts.add(put.key()) || deleted) {
            throw new StoreException(StoreException.Kind.INTERNAL,
                "duplicate key given in txn request: " + put.key(), null);
          }
        }
      }
    }

    private void deleteKey(String key, long rev, List<WatchEvent> events) {
      KeyValue old = data.remove(key);
      if (old == null) {
        return;
      }
      detachLease(old);
      events.add(new WatchEvent(WatchEvent.Type.DELETE, new KeyValue(key, new byte[0], 0, rev, 0, 0)));
    }

    private void detachLease(KeyValue old) {
      if (old != null && old.lease() != 0) {
        Lease lease = leases.get(old.lease());
        if (lease != null) {
          lease.keys.remove(old.key());
        }
      }
    }

    long grant(long ttlSeconds) {
      long id = nextLeaseId++;
      Lease lease = new Lease(id, ttlSeconds * 1_000_000_000L);
      lease.deadlineNanos = nanoTime.getAsLong() + lease.ttlNanos;
      leases.put(id, lease);
      return id;
    }

    void revokeLocked(Lease lease) {
      leases.remove(lease.id);
      if (lease.keys.isEmpty()) {
        return;
      }
      long next = revision + 1;
      List<WatchEvent> events = new ArrayList<>();
      for (String key : lease.keys) {
        deleteKey(key, next, events);
      }
      revision = next;
      history.put(next, List.copyOf(events));
    }

    int expireLeasesLocked() {
      long now = nanoTime.getAsLong();
      List<Lease> expired = new ArrayList<>();
      for (Lease lease : leases.values()) {
        if (now - lease.deadlineNanos >= 0) {
          expired.add(lease);
        }
      }
      for (Lease lease : expired) {
        revokeLocked(lease);
      }
      return expired.size();
    }
  }

  /** Smallest string greater than every string starting with {@code prefix}; null when there is none. */
  private static String prefixEnd(String prefix) {
    int[] cps = prefix.codePoints().toArray();
    for (int i = cps.length - 1; i >= 0; i--) {
      if (cps[i] < Character.MAX_CODE_POINT) {
        int bumped = cps[i] + 1;
        if (bumped >= Character.MIN_SURROGATE && bumped <= Character.MAX_SURROGATE) {
          bumped = Character.MAX_SURROGATE + 1;
        }
        return new String(cps, 0, i) + new String(Character.toChars(bumped));
      }
    }
    return null;
  }

  private static final class Lease {
    final long id;
    final long ttlNanos;
    final TreeSet<String> keys = new TreeSet<>(KeyOrder.CODE_POINT);
    long deadlineNanos;

    Lease(long id, long ttlNanos) {
      this.id = id;
      this.ttlNanos = ttlNanos;
    }
  }

  /**
   * One watch. {@code position} is the highest revision this watch is done with: every event under
   * the prefix up to it was handed to the listener (or there was none). A pull takes the next batches
   * out of history under the lock; the listener gets them outside it, on the watch's serial executor,
   * which is also where every pull runs, so calls never overlap and stay in revision order.
   */
  private final class FakeWatch implements Watch {
    private final String prefix;
    private final WatchListener listener;
    private final SerialExecutor serial;
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private volatile boolean closed;

    // Guarded by cluster.
    private long position;
    private boolean ended;
    private boolean progressRequested;
    private long reportedOutage;

    FakeWatch(String prefix, long afterRevision, WatchListener listener) {
      this.prefix = prefix;
      this.listener = listener;
      this.serial = new SerialExecutor(listenerExecutor);
      this.position = afterRevision;
    }

    void wake() {
      if (!closed && scheduled.compareAndSet(false, true)) {
        serial.execute(this::drain);
      }
    }

    @Override
    public void requestProgress() {
      synchronized (cluster) {
        progressRequested = true;
      }
      wake();
    }

    @Override
    public void close() {
      closed = true;
      synchronized (cluster) {
        watches.remove(this);
      }
    }

    private void drain() {
      // Cleared before reading state: a write after this point schedules another drain, so no wake-up
      // is lost; a redundant drain finds nothing and returns.
      scheduled.set(false);
      boolean more = true;
      while (more) {
        List<Runnable> calls = new ArrayList<>();
        synchronized (cluster) {
          more = pullLocked(calls);
        }
        for (Runnable call : calls) {
          if (closed) {
            return;
          }
          try {
            call.run();
          } catch (RuntimeException e) {
            LOG.warn("watch listener for prefix {} threw; the watch continues", prefix, e);
          }
        }
      }
    }

    /** Collects the next listener calls; returns true when more history is waiting. */
    private boolean pullLocked(List<Runnable> calls) {
      if (closed || ended || InMemoryMetaStore.this.closed) {
        return false;
      }
      if (unavailable) {
        if (reportedOutage != outageEpoch) {
          reportedOutage = outageEpoch;
          StoreException error = new StoreException(StoreException.Kind.UNAVAILABLE,
              "in-memory store is unavailable (fault injected by setUnavailable); the watch resumes after revision "
                  + position, null);
          calls.add(() -> listener.onTransientError(error));
        }
        return false;
      }
      if (position + 1 < cluster.compactRevision) {
        ended = true;
        long compactRevision = cluster.compactRevision;
        calls.add(() -> listener.onCompacted(compactRevision));
        return false;
      }
      int batches = 0;
      for (Map.Entry<Long, List<WatchEvent>> entry : cluster.history.tailMap(position, false).entrySet()) {
        if (batches == MAX_BATCHES_PER_PULL) {
          return true;
        }
        List<WatchEvent> matching = new ArrayList<>();
        for (WatchEvent e : entry.getValue()) {
          if (e.kv().key().startsWith(prefix)) {
            matching.add(new WatchEvent(e.type(), copyOf(e.kv())));
          }
        }
        long rev = entry.getKey();
        position = rev;
        if (!matching.isEmpty()) {
          List<WatchEvent> batch = List.copyOf(matching);
          calls.add(() -> listener.onBatch(rev, batch));
          batches++;
        }
      }
      position = Math.max(position, cluster.revision);
      if (progressRequested) {
        progressRequested = false;
        long rev = position;
        calls.add(() -> listener.onProgress(rev));
      }
      return false;
    }
  }
}
