package io.shardmap.client.internal;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.shardmap.client.DataOptions;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Shard;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;

/**
 * One HikariCP pool per shard primary and per replica, kept in step with the map: a registered shard gets
 * pools, a shard whose endpoints change gets new ones (the old are closed in the background once their
 * borrowed connections come back), a deregistered shard's pools are closed.
 *
 * <p>The pool table is an immutable map swapped by one writer at a time; callers read it without a lock.
 * A caller can route with a map newer than the table (the table is updated by a listener that runs just
 * after the map is published); {@link #get} then catches the table up before answering.
 *
 * <p>Each endpoint's pool has a circuit breaker ({@link EndpointBreaker}) created with it: a shard whose
 * endpoints change gets closed breakers with its new pools, and a failed endpoint's record goes with its pool.
 */
public final class ShardPools implements AutoCloseable {
  private static final Logger log = Logger.getLogger(ShardPools.class.getName());

  /** The pools of one shard, for one set of endpoints. */
  public static final class ShardPool {
    private final String shard;
    private final Endpoint primaryEndpoint;
    private final List<Endpoint> replicaEndpoints;
    private final HikariDataSource primary;
    private final HikariDataSource[] replicas;
    private final boolean followsPatroni;
    private final long primaryTerm;
    private final EndpointBreaker primaryBreaker;
    private final EndpointBreaker[] replicaBreakers;
    private final BreakerBoard board;

    private ShardPool(String shard, Endpoint primaryEndpoint, List<Endpoint> replicaEndpoints,
        HikariDataSource primary, HikariDataSource[] replicas, boolean followsPatroni, long primaryTerm,
        EndpointBreaker primaryBreaker, EndpointBreaker[] replicaBreakers, BreakerBoard board) {
      this.shard = shard;
      this.followsPatroni = followsPatroni;
      this.primaryTerm = primaryTerm;
      this.primaryEndpoint = primaryEndpoint;
      this.replicaEndpoints = replicaEndpoints;
      this.primary = primary;
      this.replicas = replicas;
      this.primaryBreaker = primaryBreaker;
      this.replicaBreakers = replicaBreakers;
      this.board = board;
    }

    /** The circuit breaker of the primary, named {@code shard-<shard>-primary}. */
    public CircuitBreaker primaryBreaker() {
      return primaryBreaker.breaker();
    }

    /** The circuit breaker of replica {@code i} (registration order), named {@code shard-<shard>-replica<i>}. */
    public CircuitBreaker replicaBreaker(int i) {
      return replicaBreakers[i].breaker();
    }

    /**
     * Takes a permission to call the endpoint of {@code pool} (the primary or one of the replicas of this
     * shard), or throws a {@link NotRunException} of a {@link CircuitOpenException} (nothing ran) when its
     * breaker is open. A permission taken must be followed by one {@link #record}.
     */
    public void acquire(HikariDataSource pool) throws NotRunException {
      if (!tryAcquire(pool)) {
        throw new NotRunException(breakerOf(pool).refusal(this));
      }
    }

    /** {@link #acquire}, answering false instead of throwing (a read skipping a replica whose breaker is open). */
    public boolean tryAcquire(HikariDataSource pool) {
      if (breakerOf(pool).tryAcquire()) {
        return true;
      }
      if (board != null) {
        board.refused();
      }
      return false;
    }

    /**
     * Reports the outcome of a call on the endpoint of {@code pool} that took a permission, timed from
     * {@code startNanos}; {@code failure} null when it returned. Only connection-class failures count against
     * the endpoint (see {@link EndpointBreaker#isEndpointFailure}).
     */
    public void record(HikariDataSource pool, long startNanos, Throwable failure) {
      breakerOf(pool).record(startNanos, failure);
    }

    private EndpointBreaker breakerOf(HikariDataSource pool) {
      if (pool == primary) {
        return primaryBreaker;
      }
      for (int i = 0; i < replicas.length; i++) {
        if (pool == replicas[i]) {
          return replicaBreakers[i];
        }
      }
      throw new IllegalArgumentException("pool " + pool.getPoolName() + " is not one of shard " + shard + "'s");
    }

    /** Each endpoint's breaker state by breaker name (CLOSED, OPEN, HALF_OPEN; DISABLED when off). */
    void breakerStates(Map<String, String> into) {
      into.put(primaryBreaker.breaker().getName(), primaryBreaker.breaker().getState().name());
      for (EndpointBreaker b : replicaBreakers) {
        into.put(b.breaker().getName(), b.breaker().getState().name());
      }
    }

    private void unregisterBreakers() {
      if (board != null) {
        board.remove(primaryBreaker);
        for (EndpointBreaker b : replicaBreakers) {
          board.remove(b);
        }
      }
    }

    public String shard() {
      return shard;
    }

    public HikariDataSource primary() {
      return primary;
    }

    /** The primary's endpoint these pools were opened for. */
    public Endpoint primaryEndpoint() {
      return primaryEndpoint;
    }

    /** The replicas' endpoints these pools were opened for, in the order of {@link #replicas()}. */
    public List<Endpoint> replicaEndpoints() {
      return replicaEndpoints;
    }

    /** Replica pools in registration order; empty when the shard has none. */
    public HikariDataSource[] replicas() {
      return replicas;
    }

    /** True once closed (replaced or deregistered); a caller holding it should look the shard up again. */
    public boolean isClosed() {
      return primary.isClosed();
    }

    /** Whether Patroni manages the shard (its record has a Patroni source): a failed primary gets replaced. */
    public boolean followsPatroni() {
      return followsPatroni;
    }

    /** The shard's primary term when this pool was opened (0 for fixed shards). */
    public long primaryTerm() {
      return primaryTerm;
    }

    /** host:port/database of the primary. */
    public String describePrimary() {
      return describe(primaryEndpoint);
    }

    /**
     * Marks every idle connection of the primary pool evicted at once and every borrowed one to be closed
     * when returned (HikariCP's soft eviction): after a failure that says the node is gone or demoted, no
     * caller should be handed a connection to it again.
     */
    public void softEvictPrimary() {
      if (!primary.isClosed()) {
        var bean = primary.getHikariPoolMXBean();
        if (bean != null) {
          bean.softEvictConnections();
        }
      }
    }

    /** Same endpoints and, for Patroni shards, the same primary term (a new term gets fresh connections). */
    boolean sameEndpoints(Shard s) {
      return primaryEndpoint.equals(s.getPrimary()) && replicaEndpoints.equals(s.getReplicasList())
          && followsPatroni == s.hasPatroni() && primaryTerm == s.getPrimaryTerm();
    }

    void close() {
      primary.close();
      for (HikariDataSource r : replicas) {
        r.close();
      }
    }
  }

  private final DataOptions options;
  /** "" for the single-key pools, "query-" for cross-shard queries' own: part of each pool's name. */
  private final String purpose;
  private final int maxPoolSize;
  /** Where the pools' breakers are published; null: the breakers are disabled (pools the SDK does not guard). */
  private final BreakerBoard board;
  private final CircuitBreakerConfig breakerConfig;
  private final ScheduledExecutorService housekeeping;
  private final ExecutorService closer;
  private final AtomicInteger opened = new AtomicInteger();
  private final AtomicInteger closed = new AtomicInteger();
  /** Pools by shard, and the map revision they reflect; replaced whole. */
  private record Table(Map<String, ShardPool> pools, long revision) {}

  private volatile Table table = new Table(Map.of(), -1);
  private boolean shutDown;
  /** Replica checks of the single-key pools (see {@link ReplicaHealth}); null for other pools. */
  private final ReplicaHealth health;
  private final ScheduledThreadPoolExecutor healthExecutor;

  /**
   * The pools of single-key calls: {@link DataOptions#maxPoolSize()} connections each, and their replicas'
   * health checked every {@link DataOptions#replicaCheckInterval()} ({@link #replicaHealth()}); without
   * breakers.
   */
  public ShardPools(DataOptions options) {
    this(options, "", options.maxPoolSize(), null, true);
  }

  /**
   * The pools of single-key calls: {@link DataOptions#maxPoolSize()} connections each, their replicas' health
   * checked, and a circuit breaker per endpoint (unless {@link DataOptions#breakerEnabled()} is false)
   * published on {@code board}.
   */
  public ShardPools(DataOptions options, BreakerBoard board) {
    this(options, "", options.maxPoolSize(), board, true);
  }

  /**
   * Pools of their own for one kind of work ({@code purpose}, e.g. {@code "query"}), with
   * {@code maxPoolSize} connections each, so that work cannot take the connections of the others.
   */
  public ShardPools(DataOptions options, String purpose, int maxPoolSize) {
    this(options, purpose, maxPoolSize, null, false);
  }

  private ShardPools(DataOptions options, String purpose, int maxPoolSize, BreakerBoard board,
      boolean checkReplicas) {
    this.options = options;
    this.board = board;
    this.breakerConfig = EndpointBreaker.config(options);
    this.purpose = purpose.isEmpty() ? "" : purpose + "-";
    this.maxPoolSize = maxPoolSize;
    // One housekeeping thread for every pool instead of HikariCP's one per pool: a fleet has many shards.
    ScheduledThreadPoolExecutor hk = new ScheduledThreadPoolExecutor(1, daemon("shardmap-" + this.purpose + "pool-housekeeping"));
    hk.setRemoveOnCancelPolicy(true);
    this.housekeeping = hk;
    // Closing a pool waits for its borrowed connections; never on the map follower's thread.
    this.closer = Executors.newSingleThreadExecutor(daemon("shardmap-" + this.purpose + "pool-closer"));
    if (checkReplicas) {
      // Two threads: one hung server (a check waits up to its timeout) does not hold up the other shards'.
      ScheduledThreadPoolExecutor x = new ScheduledThreadPoolExecutor(2, daemon("shardmap-" + this.purpose
          + "replica-check"));
      x.setRemoveOnCancelPolicy(true);
      this.healthExecutor = x;
      this.health = new ReplicaHealth(this::pools, options, x, System::nanoTime);
      health.start();
    } else {
      this.healthExecutor = null;
      this.health = null;
    }
  }

  /** Health and lag of the replicas, or null when these pools' replicas are not checked. */
  public ReplicaHealth replicaHealth() {
    return health;
  }

  /**
   * The shard's pools as of {@code map} (the map the caller routed with), or null when {@code map} has no
   * such shard. If the table lags {@code map} (the listener has not run yet) and the shard's endpoints
   * differ, the table is brought up to {@code map} first, so a call never uses an endpoint older than its
   * route.
   */
  public ShardPool get(String shard, DirectorySnapshot map) {
    Table t = table;
    ShardPool p = t.pools.get(shard);
    if (map.revision() <= t.revision) {
      return p;
    }
    Shard s = map.shards().get(shard);
    if (s == null) {
      return null;
    }
    if (p != null && p.sameEndpoints(s)) {
      return p;
    }
    sync(map);
    return table.pools.get(shard);
  }

  /** Brings the table in line with {@code map}'s shard registrations; an older map than the table's is ignored. */
  public synchronized void sync(DirectorySnapshot map) {
    Table t = table;
    if (shutDown || map.revision() <= t.revision) {
      return;
    }
    Map<String, ShardPool> current = t.pools;
    Map<String, ShardPool> next = new HashMap<>();
    for (Shard s : map.shards().values()) {
      ShardPool old = current.get(s.getName());
      if (old != null && old.sameEndpoints(s)) {
        next.put(s.getName(), old);
      } else {
        next.put(s.getName(), open(s));
        if (old != null) {
          closeLater(old, "its endpoints changed in the map at revision " + map.revision());
        }
      }
    }
    for (ShardPool old : current.values()) {
      if (!next.containsKey(old.shard)) {
        closeLater(old, "it was deregistered at revision " + map.revision());
      }
    }
    table = new Table(Map.copyOf(next), map.revision());
  }

  /**
   * A connection of {@code pool}'s primary. For a Patroni shard the wait goes in slices
   * ({@link #PATRONI_BORROW_SLICE}) and ends, with {@link NotRunException}, as soon as the map has another
   * pool for the shard (a new primary), or after {@link DataOptions#connectionTimeout()}: a failover must
   * not hold callers on the dead primary's pool after the map named the next one. {@code current} gives
   * the shard's pool as the map names it now.
   */
  public java.sql.Connection borrowPrimary(ShardPool pool, java.util.function.Supplier<ShardPool> current)
      throws java.sql.SQLException {
    if (!pool.followsPatroni()) {
      return pool.primary().getConnection();
    }
    long deadline = System.nanoTime() + options.connectionTimeout().toNanos();
    while (true) {
      try {
        return pool.primary().getConnection();
      } catch (java.sql.SQLException e) {
        if (pool.isClosed() || current.get() != pool || System.nanoTime() - deadline >= 0) {
          throw new NotRunException(e);
        }
      }
    }
  }

  /** Shards with open pools. */
  public Map<String, ShardPool> pools() {
    return table.pools;
  }

  /** The breaker state of every endpoint of the open pools, by breaker name (see {@link ShardPool#primaryBreaker}). */
  public Map<String, String> breakerStates() {
    Map<String, String> states = new TreeMap<>();
    for (ShardPool p : table.pools.values()) {
      p.breakerStates(states);
    }
    return states;
  }

  /** Pools opened so far (primaries and replicas). */
  public int openedCount() {
    return opened.get();
  }

  /** Pools closed so far. */
  public int closedCount() {
    return closed.get();
  }

  private ShardPool open(Shard s) {
    HikariDataSource primary = dataSource(s.getName(), "primary", s.getPrimary(), false, s.hasPatroni());
    HikariDataSource[] replicas = new HikariDataSource[s.getReplicasCount()];
    EndpointBreaker[] replicaBreakers = new EndpointBreaker[replicas.length];
    for (int i = 0; i < replicas.length; i++) {
      replicas[i] = dataSource(s.getName(), "replica" + i, s.getReplicas(i), true, false);
      replicaBreakers[i] = breaker(s.getName(), "replica" + i, s.getReplicas(i));
    }
    EndpointBreaker primaryBreaker = breaker(s.getName(), "primary", s.getPrimary());
    log.info("shardmap data: opened " + purpose + "pools for shard " + s.getName() + " (primary " + describe(s.getPrimary())
        + (replicas.length == 0 ? "" : ", " + replicas.length + " replicas") + ")");
    return new ShardPool(s.getName(), s.getPrimary(), List.copyOf(s.getReplicasList()), primary, replicas,
        s.hasPatroni(), s.getPrimaryTerm(), primaryBreaker, replicaBreakers, board);
  }

  private EndpointBreaker breaker(String shard, String role, Endpoint e) {
    boolean enabled = board != null && options.breakerEnabled();
    EndpointBreaker b = EndpointBreaker.create(breakerConfig, options, shard, role, describe(e), enabled);
    if (enabled) {
      board.add(b);
    }
    return b;
  }

  /**
   * HikariCP's wait for a connection of a Patroni shard's primary, per try. A borrower stuck on a dead
   * primary's pool is not woken when the map names the next one (closing a pool does not end its waits),
   * so such borrows wait in slices of this length and look at the map between them
   * ({@link #borrowPrimary}), up to {@link DataOptions#connectionTimeout()} in all. HikariCP's minimum.
   */
  public static final Duration PATRONI_BORROW_SLICE = Duration.ofMillis(250);

  private HikariDataSource dataSource(String shard, String role, Endpoint e, boolean replica, boolean patroni) {
    HikariConfig c = new HikariConfig();
    c.setPoolName("shardmap-" + purpose + shard + "-" + role);
    c.setJdbcUrl(jdbcUrl(e));
    c.setUsername(options.user());
    if (options.password() != null) {
      c.setPassword(options.password());
    }
    c.setMaximumPoolSize(maxPoolSize);
    c.setMinimumIdle(Math.min(options.minIdle(), maxPoolSize));
    long timeout = (replica ? options.replicaConnectionTimeout() : options.connectionTimeout()).toMillis();
    c.setConnectionTimeout(patroni ? Math.min(timeout, PATRONI_BORROW_SLICE.toMillis()) : timeout);
    // A shard that is down when its pool opens must not fail the map update; calls to it fail instead.
    c.setInitializationFailTimeout(-1);
    c.setReadOnly(replica);
    c.setScheduledExecutor(housekeeping);
    c.setThreadFactory(daemon("shardmap-" + purpose + "pool-" + shard + "-" + role));
    c.setIdleTimeout(options.idleTimeout().toMillis());
    c.setMaxLifetime(options.maxLifetime().toMillis());
    c.setKeepaliveTime(options.keepaliveTime().toMillis());
    c.setValidationTimeout(options.validationTimeout().toMillis());
    if (options.connectionInitSql() != null) {
      c.setConnectionInitSql(options.connectionInitSql());
    }
    options.properties().forEach(c::addDataSourceProperty);
    opened.incrementAndGet();
    return new HikariDataSource(c);
  }

  private void closeLater(ShardPool p, String why) {
    // Idle connections go at once; borrowed ones as they come back (close() below waits for them).
    p.softEvictPrimary();
    log.info("shardmap data: closing pools of shard " + p.shard + " because " + why);
    p.unregisterBreakers();
    closer.execute(() -> {
      p.close();
      closed.addAndGet(1 + p.replicas.length);
    });
  }

  /** The PostgreSQL JDBC URL of an endpoint. */
  static String jdbcUrl(Endpoint e) {
    return "jdbc:postgresql://" + hostForUrl(e.getHost()) + ":" + e.getPort() + "/" + e.getDatabase();
  }

  private static String hostForUrl(String host) {
    return host.indexOf(':') >= 0 && !host.startsWith("[") ? "[" + host + "]" : host;
  }

  private static String describe(Endpoint e) {
    return e.getHost() + ":" + e.getPort() + "/" + e.getDatabase();
  }

  private static ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  @Override
  public void close() {
    if (health != null) {
      health.close(); // before the pools, so no check runs against a closed table
    }
    Map<String, ShardPool> last;
    synchronized (this) {
      shutDown = true;
      last = table.pools;
      table = new Table(Map.of(), Long.MAX_VALUE);
    }
    for (ShardPool p : last.values()) {
      p.unregisterBreakers();
      p.close();
      closed.addAndGet(1 + p.replicas.length);
    }
    closer.shutdown();
    try {
      closer.awaitTermination(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    housekeeping.shutdownNow();
    if (healthExecutor != null) {
      // Not shutdownNow: a running check must finish (within its timeout) to close its connections.
      healthExecutor.shutdown();
      try {
        healthExecutor.awaitTermination(2L * ReplicaHealth.CHECK_TIMEOUT_SECONDS + 1, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
