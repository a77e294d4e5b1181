package io.shardmap.client;

import com.google.protobuf.ByteString;
import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.ids.LeasedIds;
import io.shardmap.client.internal.LazyDirectory;
import io.shardmap.client.internal.MapFollower;
import io.shardmap.client.internal.MicrometerMetrics;
import io.shardmap.client.internal.SnapshotListener;
import io.shardmap.client.internal.load.LoadMeter;
import io.shardmap.core.Backoff;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdClock;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Strategy;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Routes keys locally. The client keeps a copy of the followed keyspaces' maps, loaded once from a
 * directory server and then kept current by its watch stream; a lookup reads an immutable snapshot (no
 * lock, no RPC) and, for INT64 keys of range, hash and consistent-hash keyspaces, allocates nothing.
 *
 * <p>When every directory server is unreachable the client keeps routing with its last map and reports
 * its age ({@link #staleness()}); with {@link ClientOptions.Builder#maxStaleness} set, lookups past that
 * age fail with UNAVAILABLE rather than guess.
 *
 * <p>A directory keyspace with more entries than {@link ClientOptions.Builder#directoryCacheSize} is held
 * <em>lazily</em>: {@link #route} serves it from a bounded cache kept current by the watch stream, and a
 * key that is not cached costs one RPC to a directory server (UNAVAILABLE, naming the key, if none
 * answers within the RPC timeout). See {@link #snapshot()} for what the map holds for such a keyspace.
 *
 * <p>Keys are {@link ShardKey}s; {@link #route(String, long)} is the allocation-free lookup for integer keys.
 * Public signatures use the SDK's own value types ({@link ShardRoute}, {@link ShardInfo}, {@link MapView},
 * {@link ClientStats}); the routing code underneath is the directory server's ({@code io.shardmap.core}).
 */
public final class ShardmapClient implements AutoCloseable {
  private final ClientOptions options;
  private final String clientId;
  private final MapFollower follower;
  private final long maxStalenessNanos;
  /**
   * Set while the map is older than maxStaleness, by a timer every {@link #stalenessCheckNanos}, so a lookup
   * reads one volatile flag instead of the clock (lookups may answer up to one period past the limit).
   */
  private volatile boolean stale;
  private final long stalenessCheckNanos;
  private final java.util.concurrent.ScheduledExecutorService stalenessTimer;
  private final Counters stats = new Counters();
  /** The load accounting (docs/client-sdk.md, "Load accounting"); null when it is off. */
  private final LoadMeter load;
  /** The adapter registered with the follower for each public listener. */
  private final java.util.Map<MapListener, SnapshotListener> listeners =
      new java.util.concurrent.ConcurrentHashMap<>();
  /** Removes the Micrometer meters; null without a registry (Micrometer classes are then never loaded). */
  private volatile AutoCloseable metrics;

  private ShardmapClient(ClientOptions options) {
    this.options = options;
    this.clientId = options.clientId() != null ? options.clientId() : defaultClientId();
    this.load = options.loadAccounting()
        ? new LoadMeter(options.loadSlots(), options.loadSampleEvery(), System::currentTimeMillis, stats) : null;
    this.follower = new MapFollower(options, clientId, stats, System::nanoTime, load);
    if (load != null) {
      follower.addListener((before, after, resync) -> load.sync(after));
    }
    this.maxStalenessNanos = options.maxStaleness() == null ? Long.MAX_VALUE : options.maxStaleness().toNanos();
    this.stalenessCheckNanos = Math.max(TimeUnit.MILLISECONDS.toNanos(1),
        Math.min(TimeUnit.MILLISECONDS.toNanos(20), maxStalenessNanos / 20));
    if (options.maxStaleness() == null) {
      this.stalenessTimer = null;
    } else {
      this.stalenessTimer = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "shardmap-client-staleness");
        t.setDaemon(true);
        return t;
      });
      stalenessTimer.scheduleAtFixedRate(() -> stale = follower.ageNanos() > maxStalenessNanos,
          stalenessCheckNanos, stalenessCheckNanos, TimeUnit.NANOSECONDS);
    }
  }

  /**
   * Connects and waits for the first full map.
   *
   * @throws ShardmapException UNAVAILABLE if no directory server delivered a map within the start timeout
   */
  public static ShardmapClient start(ClientOptions options) throws InterruptedException {
    ShardmapClient c = new ShardmapClient(options);
    if (options.meterRegistry() != null) {
      c.metrics = MicrometerMetrics.bind(options.meterRegistry(), c.stats, c.follower);
    }
    c.follower.start();
    if (!c.follower.awaitFirstLoad(options.startTimeout().toNanos(), TimeUnit.NANOSECONDS)) {
      c.close();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "no directory server of " + options.targets()
          + " delivered the maps within " + options.startTimeout().toMillis() + " ms");
    }
    return c;
  }

  /**
   * Routes an integer key of an INT64 keyspace: the allocation-free lookup (for range, hash and
   * consistent-hash keyspaces it returns a shared {@link ShardRoute} and allocates nothing). From the local
   * map, except for a key of a lazily held directory keyspace that is not cached (see the class comment).
   *
   * @throws ShardmapException NOT_FOUND for a keyspace that does not exist or is not followed;
   *     INVALID_ARGUMENT for a BYTES keyspace; UNAVAILABLE past {@link ClientOptions.Builder#maxStaleness}
   */
  public ShardRoute route(String keyspace, long key) {
    return ShardRoute.of(keyspace, true, coreRoute(keyspace, key));
  }

  /**
   * Routes a key: an integer key of an INT64 keyspace, or a byte-string (text, region) key of a BYTES
   * keyspace. As {@link #route(String, long)}, which integer keys may use to avoid making a {@link ShardKey}.
   *
   * @throws ShardmapException as {@link #route(String, long)}, and INVALID_ARGUMENT for a key of the other kind
   */
  public ShardRoute route(String keyspace, ShardKey key) {
    Route r = coreRoute(keyspace, key);
    return ShardRoute.of(keyspace, key.isInteger(), r);
  }

  /** The core route of an INT64 key, for this package (no SDK type made). */
  Route coreRoute(String keyspace, long key) {
    stats.lookup();
    KeyspaceMap k = keyspace(keyspace);
    if (k.strategy() == Strategy.STRATEGY_DIRECTORY && !k.directory().entriesHeld()) {
      return lazy(k).route(key);
    }
    return k.route(key);
  }

  /** The core route of any key, for this package. */
  Route coreRoute(String keyspace, ShardKey key) {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    if (key.isInteger()) {
      return coreRoute(keyspace, key.intValue());
    }
    stats.lookup();
    KeyspaceMap k = keyspace(keyspace);
    if (k.keyType() != KeyType.KEY_TYPE_BYTES) {
      throw ShardmapException.invalid("key", "keyspace '" + keyspace + "' has INT64 keys");
    }
    byte[] bytes = key.bytesUnsafe();
    if (k.strategy() == Strategy.STRATEGY_DIRECTORY && !k.directory().entriesHeld()) {
      return lazy(k).route(bytes);
    }
    return k.route(bytes);
  }

  /**
   * Counts one call an application made itself (its own SQL on a connection it got for a {@link #route} of
   * this key) in the client's load accounting, as {@link ShardmapData} counts its calls: per unit of the map,
   * sent with the client's presence reports to the directory (docs/client-sdk.md, "Load accounting").
   * Lock-free and allocation-free; does nothing when {@link ClientOptions.Builder#loadAccounting} is off, or
   * for a keyspace the client does not follow or whose keys are not INT64.
   *
   * @param write whether the call wrote (anything but a read-only call)
   * @param nanos the call's time, from asking for a connection to its end, in nanoseconds (at least 0)
   * @param failed whether the call failed
   * @throws ShardmapException INVALID_ARGUMENT for negative {@code nanos}
   */
  public void recordLoad(String keyspace, long key, boolean write, long nanos, boolean failed) {
    if (nanos < 0) {
      throw ShardmapException.invalid("nanos", "a call's time is at least 0, got " + nanos);
    }
    if (load != null) {
      load.record(keyspace, key, write, nanos, failed);
    }
  }

  /** {@link #recordLoad(String, long, boolean, long, boolean)} for any key (an integer or a byte-string one). */
  public void recordLoad(String keyspace, ShardKey key, boolean write, long nanos, boolean failed) {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    if (nanos < 0) {
      throw ShardmapException.invalid("nanos", "a call's time is at least 0, got " + nanos);
    }
    if (load == null) {
      return;
    }
    if (key.isInteger()) {
      load.record(keyspace, key.intValue(), write, nanos, failed);
    } else {
      load.record(keyspace, key.bytesUnsafe(), write, nanos, failed);
    }
  }

  /** The load accounting, for this package; null when it is off. */
  LoadMeter loadMeter() {
    return load;
  }

  /**
   * Asks a directory server, not the local map, where a key lives: for refreshing one route after a shard
   * said the local one is stale. Starts at the server the client follows and fails over between the
   * targets, all within {@link ClientOptions#rpcTimeout()}; prefers a server whose map is at least as new as
   * the client's. For a lazily held directory keyspace the answer also refreshes the cache. Works for
   * keyspaces the client does not follow too.
   *
   * @throws ShardmapException UNAVAILABLE when no server answered in time; the server's code (NOT_FOUND,
   *     INVALID_ARGUMENT, ...) when it refused the question
   */
  public ShardRoute lookupRemote(String keyspace, ShardKey key) {
    Route r = coreLookupRemote(keyspace, key);
    return ShardRoute.of(keyspace, key.isInteger(), r);
  }

  /** {@link #lookupRemote} with the core route, for this package. */
  Route coreLookupRemote(String keyspace, ShardKey key) {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    if (key.isInteger()) {
      LazyDirectory d = lazyOrNull(keyspace, KeyType.KEY_TYPE_INT64);
      if (d != null) {
        return d.refresh(key.intValue());
      }
      return follower.rpc().lookup(keyspace, Key.newBuilder().setIntKey(key.intValue()).build(), localRevision());
    }
    LazyDirectory d = lazyOrNull(keyspace, KeyType.KEY_TYPE_BYTES);
    if (d != null) {
      return d.refresh(key.bytesUnsafe());
    }
    return follower.rpc().lookup(keyspace, Key.newBuilder().setBytesKey(ByteString.copyFrom(key.bytesUnsafe()))
        .build(), localRevision());
  }

  private long localRevision() {
    DirectorySnapshot s = current();
    return s == null ? 0 : s.revision();
  }

  /**
   * The lazy cache of keyspace, when the current map holds it lazily and its keys are of the given type
   * (otherwise the server's Lookup answers, and refuses a key of the wrong type itself).
   */
  private LazyDirectory lazyOrNull(String keyspace, KeyType keyType) {
    DirectorySnapshot s = current();
    KeyspaceMap k = s == null ? null : s.keyspaces().get(keyspace);
    if (k == null || k.broken() != null || !k.hasLayout() || k.strategy() != Strategy.STRATEGY_DIRECTORY
        || k.keyType() != keyType || k.directory().entriesHeld()) {
      return null;
    }
    return follower.lazy(keyspace);
  }

  private LazyDirectory lazy(KeyspaceMap k) {
    LazyDirectory d = follower.lazy(k.name());
    if (d == null) {
      // The keyspace was dropped (and its cache with it) after this lookup read the map.
      throw ShardmapException.notFound("keyspace '" + k.name() + "' does not exist");
    }
    return d;
  }

  /**
   * The registration of a shard (its PostgreSQL endpoints), as of the current map.
   *
   * @throws ShardmapException NOT_FOUND when no shard of that name is registered
   */
  public ShardInfo shard(String name) {
    return ShardInfo.of(current().shard(name));
  }

  /**
   * The current map; immutable (see {@link MapView}). For a lazily held directory keyspace it holds the spec
   * and fallback but no entries, and routing such a keyspace's keys through it fails with
   * FAILED_PRECONDITION; use {@link #route}. {@link MapListener}s see the spec and fallback changes of such
   * keyspaces, not their entry changes (which only update the cache).
   */
  public MapView snapshot() {
    return new MapView(current());
  }

  /** The current core map, for this package. */
  DirectorySnapshot coreSnapshot() {
    return current();
  }

  /**
   * The current core map, checked as a lookup of {@code keyspace} is: UNAVAILABLE past {@code maxStaleness},
   * NOT_FOUND when the map has no such keyspace (for this package: cross-shard queries pin it).
   */
  DirectorySnapshot coreSnapshotFor(String keyspace) {
    keyspace(keyspace);
    DirectorySnapshot s = current();
    if (s.keyspaces().get(keyspace) == null) { // dropped in between
      throw ShardmapException.notFound("keyspace '" + keyspace + "' does not exist");
    }
    return s;
  }

  /**
   * The id this client reports its applied map revision under (see docs/client-sdk.md, "Acknowledged
   * revisions"): {@link ClientOptions.Builder#clientId}, or {@code hostname-pid-random} made at start.
   */
  public String clientId() {
    return clientId;
  }

  private volatile String txnNamespace;

  /**
   * The cluster's cross-shard transaction namespace, asked of a directory server the first time and kept
   * (it follows from the cluster's etcd prefix, which does not change while the cluster lives).
   */
  String txnNamespace() {
    String ns = txnNamespace;
    if (ns == null) {
      ns = io.shardmap.core.TxnId.requireNamespace(follower.rpc().txnNamespace());
      txnNamespace = ns;
    }
    return ns;
  }

  /** The reference table records of {@code keyspace}, read by a directory server from etcd (quorum read). */
  io.shardmap.proto.v1.ListReferenceTablesResponse referenceTables(String keyspace) {
    return follower.rpc().referenceTables(keyspace);
  }

  /** The lease TTL of {@link #ids(String, IdLayout)}: the id service's default. */
  public static final Duration DEFAULT_ID_LEASE_TTL = Duration.ofSeconds(10);

  /** {@link #ids(String, IdLayout)} with {@link IdLayout#defaults()}. */
  public GlobalIds ids(String generator) {
    return ids(generator, IdLayout.defaults(), DEFAULT_ID_LEASE_TTL);
  }

  /** {@link #ids(String, IdLayout, Duration)} with a lease TTL of {@link #DEFAULT_ID_LEASE_TTL}. */
  public GlobalIds ids(String generator, IdLayout layout) {
    return ids(generator, layout, DEFAULT_ID_LEASE_TTL);
  }

  /**
   * A global id generator named {@code generator}: acquires a worker id of that generator from a directory
   * server (lowest free one), renews it every third of {@code leaseTtl} through any server, and issues ids
   * of {@code layout} with it (see {@link GlobalIds} and docs/ids.md, "Using it from the SDK"). Every process
   * of one generator must use the same layout. The worker id is held as this client's {@link #clientId()}.
   *
   * @param leaseTtl how long a worker id stays held without a renewal (1 s..300 s): the longest a process cut
   *     off from the directory servers keeps issuing, and how long a crashed process's worker id stays taken
   * @throws ShardmapException INVALID_ARGUMENT naming the field (generator: 1-63 of [a-z0-9_-] starting with a
   *     letter; layout.workerBits: at most 22, the id service's cap; leaseTtl); UNAVAILABLE when every worker
   *     id of the generator is held (the message says so) or no directory server answered within the RPC timeout
   */
  public GlobalIds ids(String generator, IdLayout layout, Duration leaseTtl) {
    return ids(generator, layout, leaseTtl, IdClock.SYSTEM);
  }

  /**
   * {@link #ids(String, IdLayout, Duration)} on the given clock. Not API: the seam through which this
   * package's tests step a generator's clock (GlobalIdsStressTest's child processes); applications get the
   * system clock.
   */
  GlobalIds ids(String generator, IdLayout layout, Duration leaseTtl, IdClock clock) {
    return new GlobalIds(new LeasedIds(follower.rpc(), generator, clientId, layout, leaseTtl,
        options.rpcTimeout(), Backoff.exponential(options.initialBackoff(), options.maxBackoff()), clock));
  }

  /** {@link #sequence(String, int)} with the sequence's default block size (set when it was created). */
  public GlobalSequence sequence(String name) {
    return sequence(name, 0);
  }

  /**
   * Numbers of the dense sequence {@code name} (created beforehand by an admin: {@code shardmapctl sequence
   * create}), reserved {@code blockSize} at a time through any directory server; the first block is reserved
   * here. See {@link GlobalSequence} and docs/ids.md, "Dense sequences". Close it before the client.
   *
   * @param blockSize numbers per reservation, 1..1,000,000, or 0 for the sequence's default. A larger block
   *     means fewer reservations and a larger gap when this process stops (fewer than two blocks)
   * @throws ShardmapException INVALID_ARGUMENT naming the field (name: 1-63 of [a-z0-9_-] starting with a letter;
   *     blockSize); NOT_FOUND when the sequence does not exist; UNAVAILABLE when no directory server answered
   *     within the RPC timeout
   */
  public GlobalSequence sequence(String name, int blockSize) {
    return new GlobalSequence(new io.shardmap.client.internal.ids.RemoteSequence(follower.rpc(), name, blockSize,
        options.rpcTimeout()));
  }

  /**
   * The etcd revision the client's map reflects: that of the last change it applied. Later revisions that
   * changed nothing the client follows (other keyspaces, the directory servers' client presence records)
   * reach it as watch heartbeats and do not change this number; the revision the client reports as applied
   * (see docs/client-sdk.md, "Acknowledged revisions") includes them.
   */
  public long revision() {
    return current().revision();
  }

  /** Time since a directory server last confirmed the map current. */
  public Duration staleness() {
    return Duration.ofNanos(follower.ageNanos());
  }

  /** Adds a listener of map changes (see {@link MapListener} for the threading rules). */
  public void addListener(MapListener listener) {
    SnapshotListener adapter = (before, after, resync) ->
        listener.onChange(before == null ? null : new MapView(before), new MapView(after), resync);
    if (listeners.putIfAbsent(listener, adapter) == null) {
      follower.addListener(adapter);
    }
  }

  /** Removes a listener added with {@link #addListener}; it may still receive a change already under way. */
  public void removeListener(MapListener listener) {
    SnapshotListener adapter = listeners.remove(listener);
    if (adapter != null) {
      follower.removeListener(adapter);
    }
  }

  /** A listener of this package on the core maps (ShardmapData's pools), with no adapter between. */
  void addCoreListener(SnapshotListener listener) {
    follower.addListener(listener);
  }

  void removeCoreListener(SnapshotListener listener) {
    follower.removeListener(listener);
  }

  /** A reading of the client's counters and map state (see {@link ClientStats}); cheap, takes no lock. */
  public ClientStats stats() {
    DirectorySnapshot s = current();
    return new ClientStats(s == null ? 0 : s.revision(), follower.appliedRevision(), staleness(),
        follower.watchLagRevisions(), follower.reconnects(), follower.resyncs(), follower.failovers(),
        stats.lookups(), stats.directoryHits(), stats.directoryMisses(), follower.lazyCacheSize(), stats.reports(),
        stats.reportFailures());
  }

  /** The live counters, shared with the shard-access layer and the metrics binder. */
  Counters counters() {
    return stats;
  }

  ClientOptions options() {
    return options;
  }

  /** For tests of this package: the follower's lazy caches and counters. */
  MapFollower follower() {
    return follower;
  }

  private static String defaultClientId() {
    String random = Long.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextLong() >>> 16);
    return io.shardmap.core.Names.localHostName("client") + "-" + ProcessHandle.current().pid() + "-" + random;
  }

  private DirectorySnapshot current() {
    return follower.snapshot();
  }

  private KeyspaceMap keyspace(String name) {
    if (stale) {
      // The flag may be a period old: confirm with the clock before refusing.
      long age = follower.ageNanos();
      if (age > maxStalenessNanos) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "the client's shard map is "
            + TimeUnit.NANOSECONDS.toMillis(age) + " ms old, past the configured maximum staleness of "
            + options.maxStaleness().toMillis() + " ms (no directory server of " + options.targets()
            + " has confirmed it)");
      }
    }
    KeyspaceMap k = current().keyspaces().get(name);
    if (k == null) {
      throw ShardmapException.notFound(options.keyspaces().contains(name)
          ? "keyspace '" + name + "' does not exist"
          : "keyspace '" + name + "' is not followed by this client (followed: " + options.keyspaces() + ")");
    }
    return k;
  }

  @Override
  public void close() {
    if (stalenessTimer != null) {
      stalenessTimer.shutdownNow();
    }
    AutoCloseable m = metrics;
    metrics = null;
    try {
      if (m != null) {
        m.close();
      }
    } catch (Exception e) {
      throw new IllegalStateException("removing the client's meters failed", e);
    } finally {
      follower.close();
    }
  }
}
