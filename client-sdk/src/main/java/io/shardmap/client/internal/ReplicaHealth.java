package io.shardmap.client.internal;

import io.shardmap.client.DataOptions;
import io.shardmap.client.internal.ShardPools.ShardPool;
import io.shardmap.proto.v1.Endpoint;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Whether each replica of each shard may serve reads, and how far it lags: one per {@link ShardPools} (the
 * single-key calls' pools), checking the shards of that object's current pool table.
 *
 * <p>Every {@link DataOptions#replicaCheckInterval()} each shard that has replicas is checked on the
 * injected executor, never on a caller's thread: first the primary's {@code pg_current_wal_lsn()}, then on
 * each replica {@code pg_is_in_recovery()}, {@code pg_last_wal_replay_lsn()} and
 * {@code now() - pg_last_xact_replay_timestamp()}. A replica is usable when the check reached it, it is in
 * recovery, and it either has replayed at least the primary's sampled position (caught up: lag 0, which is
 * also how an idle primary's replica, whose last replayed transaction is old, stays usable) or lags at most
 * {@link DataOptions#maxReplicaLag()}. Its lag is the smaller of two upper bounds of how old its data is:
 * the age of its last replayed transaction, and the age of the newest earlier sample of the primary's
 * position it has replayed (the first overstates the lag right after an idle period, when a new commit
 * has not been replayed yet; the second is only as fine as the interval). When the primary cannot be
 * asked, only the replayed transaction's age decides. A server that is not in recovery (a promoted former replica, or an endpoint that never
 * was one) is never used for replica reads: its data may have forked from the primary's.
 *
 * <p>Checks use connections of their own (one per endpoint, kept open, with a short connect and socket
 * timeout), not the pools': a pool exhausted by callers must not make its replica look dead, and checks
 * must not take callers' connections. A shard whose previous check is still running is skipped, so a hung
 * server ties up one thread at most {@link #CHECK_TIMEOUT_SECONDS} per shard.
 *
 * <p>Results are immutable per shard and replaced whole; {@link #usable} and {@link #lagNanos} read them
 * without a lock. A result older than {@link #staleAfterNanos()} (checks stopped answering) counts as
 * unusable. Results belong to one {@link ShardPool} object: a shard whose endpoints changed gets new pools,
 * and its replicas are unusable until their first check (at most one interval), so reads go to the primary
 * meanwhile rather than trusting an older endpoint's result. Pools that left the table are no longer
 * checked, and their check connections are closed on the next round.
 */
public final class ReplicaHealth implements AutoCloseable {
  private static final Logger log = Logger.getLogger(ReplicaHealth.class.getName());

  /**
   * Connect and socket timeout of a check, in seconds (the PostgreSQL driver's granularity). Short, so a
   * hung server frees its check thread soon; the staleness bound marks it unusable even sooner.
   */
  static final int CHECK_TIMEOUT_SECONDS = 2;

  /** Samples of a primary's WAL position kept per shard at most (see {@code sampledLag}). */
  private static final int MAX_SAMPLES = 1024;

  /** The value of {@link #lagNanos} for a replica that is unusable or whose lag is unknown. */
  public static final long UNKNOWN = -1;

  private static final String PRIMARY_SQL = "select pg_current_wal_lsn()::text";
  private static final String REPLICA_SQL = "select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
      + "(extract(epoch from (now() - pg_last_xact_replay_timestamp())) * 1000000)::bigint";

  /** One replica as of its last check. {@code lagNanos} is {@link #UNKNOWN} when not measured. */
  record Replica(boolean usable, long lagNanos, long checkedAtNanos, String why) {}

  /** The replicas of one shard's pools as of one check; {@code replicas} is never written after publication. */
  private record ShardHealth(ShardPool pool, Replica[] replicas) {}

  private final Supplier<Map<String, ShardPool>> pools;
  private final DataOptions options;
  private final ScheduledExecutorService executor;
  private final LongSupplier nanoTime;
  private final long maxLagNanos;
  private final long staleAfterNanos;
  /** Published results by shard; each value immutable, swapped whole. */
  private final Map<String, ShardHealth> health = new ConcurrentHashMap<>();
  /** Check state (connections, in-flight flag) by shard; touched by the round and its shard's check. */
  private final Map<String, Checker> checkers = new ConcurrentHashMap<>();
  private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
  private volatile boolean closed;
  private ScheduledFuture<?> rounds;

  /**
   * Checks the shards {@code pools} returns (read at every round) on {@code executor}, which this object
   * schedules its rounds on and runs its checks on; it does not shut the executor down. {@code nanoTime}
   * is the clock results are aged with.
   */
  public ReplicaHealth(Supplier<Map<String, ShardPool>> pools, DataOptions options,
      ScheduledExecutorService executor, LongSupplier nanoTime) {
    this.pools = pools;
    this.options = options;
    this.executor = executor;
    this.nanoTime = nanoTime;
    this.maxLagNanos = options.maxReplicaLag().toNanos();
    long interval = options.replicaCheckInterval().toNanos();
    // A few intervals, so one late round on a busy machine does not flap every replica; at least 1 s.
    this.staleAfterNanos = Math.max(4 * interval, TimeUnit.SECONDS.toNanos(1));
  }

  /** Starts the periodic checks (the first at once). */
  public synchronized void start() {
    if (rounds == null && !closed) {
      long interval = options.replicaCheckInterval().toNanos();
      rounds = executor.scheduleWithFixedDelay(this::round, 0, interval, TimeUnit.NANOSECONDS);
    }
  }

  /** How old a result may be and still count. */
  public long staleAfterNanos() {
    return staleAfterNanos;
  }

  /**
   * Whether replica {@code i} of {@code pool} may serve reads now: its last check, made for this very pool
   * object and no older than {@link #staleAfterNanos()}, found it reachable, in recovery and within
   * {@link DataOptions#maxReplicaLag()}. Lock-free and allocation-free.
   */
  public boolean usable(ShardPool pool, int i) {
    Replica r = current(pool.shard(), pool, i);
    return r != null && r.usable;
  }

  /** {@link #usable(ShardPool, int)} for the shard's current pools, by shard name. */
  public boolean usable(String shard, int i) {
    Replica r = current(shard, null, i);
    return r != null && r.usable;
  }

  /**
   * The replay lag of replica {@code i} of {@code shard} (0 when it had replayed all its primary had
   * written) in nanoseconds, or {@link #UNKNOWN} when it is unusable or was not measured.
   */
  public long lagNanos(String shard, int i) {
    Replica r = current(shard, null, i);
    return r == null || !r.usable ? UNKNOWN : r.lagNanos;
  }

  /** The replica's last fresh result, or null; {@code pool} null accepts the shard's current pools. */
  private Replica current(String shard, ShardPool pool, int i) {
    ShardHealth h = health.get(shard);
    if (h == null || (pool != null && h.pool != pool) || i < 0 || i >= h.replicas.length) {
      return null;
    }
    Replica r = h.replicas[i];
    return nanoTime.getAsLong() - r.checkedAtNanos > staleAfterNanos ? null : r;
  }

  /**
   * {@link #lagNanos} of every replica of every shard of the current pool table, keyed
   * {@code "shard/replicaN"} (N from 0, in registration order), sorted. A replica not checked yet is
   * {@link #UNKNOWN}.
   */
  public Map<String, Long> lags() {
    Map<String, Long> out = new TreeMap<>();
    for (ShardPool p : pools.get().values()) {
      for (int i = 0; i < p.replicas().length; i++) {
        Replica r = current(p.shard(), p, i);
        out.put(key(p.shard(), i), r == null || !r.usable ? UNKNOWN : r.lagNanos);
      }
    }
    return out;
  }

  /** The replica count of every shard with replicas in the current pool table: one metrics row each. */
  public Map<String, Integer> replicaCounts() {
    Map<String, Integer> out = new TreeMap<>();
    for (ShardPool p : pools.get().values()) {
      if (p.replicas().length > 0) {
        out.put(p.shard(), p.replicas().length);
      }
    }
    return out;
  }

  /** The key of replica {@code i} of {@code shard} in {@link #lags()}. */
  public static String key(String shard, int i) {
    return shard + "/replica" + i;
  }

  /**
   * Runs {@code r} on a check thread after every round (a metrics binding follows the set of replicas with
   * it); it must be quick.
   */
  public void afterEachRound(Runnable r) {
    listeners.add(r);
  }

  /** One round: start a check of every shard with replicas whose previous check is done; drop the rest. */
  private void round() {
    if (closed) {
      return;
    }
    try {
      Map<String, ShardPool> table = pools.get();
      for (Checker c : checkers.values()) {
        ShardPool p = table.get(c.pool.shard());
        if (p != c.pool || p.replicas().length == 0) {
          checkers.remove(c.pool.shard(), c);
          health.remove(c.pool.shard());
          c.retire();
        }
      }
      for (ShardPool p : table.values()) {
        if (p.replicas().length == 0) {
          continue;
        }
        Checker c = checkers.get(p.shard());
        if (c == null) {
          c = new Checker(p);
          checkers.put(p.shard(), c);
        }
        if (c.running.compareAndSet(false, true)) {
          Checker k = c;
          try {
            executor.execute(k::check);
          } catch (RejectedExecutionException e) {
            k.running.set(false); // shutting down
          }
        }
      }
      fire();
    } catch (RuntimeException e) {
      // Never let one bad round cancel the schedule (a periodic task that throws is not run again).
      log.log(Level.WARNING, "shardmap data: replica check round failed", e);
    }
  }

  private void fire() {
    for (Runnable r : listeners) {
      try {
        r.run();
      } catch (RuntimeException e) {
        log.log(Level.WARNING, "shardmap data: replica health listener failed", e);
      }
    }
  }

  /** The checks of one shard's pools: its own connections to the primary and to each replica. */
  private final class Checker {
    final ShardPool pool;
    final AtomicBoolean running = new AtomicBoolean();
    private Connection primary;
    private final Connection[] replicas;
    /** Per replica: whether "not in recovery" was logged since it last was in recovery (log once). */
    private final boolean[] warnedPromoted;
    private final Replica[] last;
    /** Recent samples of the primary's position: {nanoTime, lsn}, oldest first; the check thread's only. */
    private final java.util.ArrayDeque<long[]> samples = new java.util.ArrayDeque<>();
    private volatile boolean retired;

    Checker(ShardPool pool) {
      this.pool = pool;
      int n = pool.replicas().length;
      this.replicas = new Connection[n];
      this.warnedPromoted = new boolean[n];
      this.last = new Replica[n];
    }

    void check() {
      try {
        if (retired || closed) {
          return;
        }
        long sampledAt = nanoTime.getAsLong(); // before the query: the primary had at most its answer then
        long primaryLsn = primaryLsn();
        if (primaryLsn >= 0) {
          remember(sampledAt, primaryLsn);
        }
        Replica[] out = new Replica[replicas.length];
        for (int i = 0; i < replicas.length; i++) {
          out[i] = checkReplica(i, primaryLsn);
          logChange(i, out[i]);
        }
        if (retired || closed) {
          return;
        }
        health.put(pool.shard(), new ShardHealth(pool, out));
      } catch (RuntimeException e) {
        log.log(Level.WARNING, "shardmap data: replica check of shard " + pool.shard() + " failed", e);
      } finally {
        // In this order: retire() closes the connections itself only when it sees no check running.
        running.set(false);
        if (retired || closed) {
          closeConnections(); // retired while this check ran: nothing else will close them
        }
      }
    }

    /** Records a sample of the primary's position, dropping those too old to bound a usable lag. */
    private void remember(long at, long lsn) {
      samples.addLast(new long[] {at, lsn});
      while (samples.size() > MAX_SAMPLES || at - samples.peekFirst()[0] > maxLagNanos + staleAfterNanos) {
        samples.removeFirst();
      }
    }

    /**
     * How long ago, at most, the primary had no more than the replica has replayed: the age of the newest
     * sample of the primary's position the replica has reached; {@link #UNKNOWN} when it reached none kept.
     */
    private long sampledLag(long replayLsn, long now) {
      if (replayLsn < 0) {
        return UNKNOWN;
      }
      for (java.util.Iterator<long[]> it = samples.descendingIterator(); it.hasNext(); ) {
        long[] sample = it.next();
        if (Long.compareUnsigned(sample[1], replayLsn) <= 0) {
          return Math.max(0, now - sample[0]);
        }
      }
      return UNKNOWN;
    }

    /** The primary's current WAL position, or -1 when it cannot be had (unreachable, in recovery). */
    private long primaryLsn() {
      for (int attempt = 0; attempt < 2; attempt++) {
        boolean reused = primary != null;
        try {
          if (primary == null) {
            primary = connect(pool.primaryEndpoint(), false);
          }
          try (Statement s = primary.createStatement(); ResultSet rs = s.executeQuery(PRIMARY_SQL)) {
            rs.next();
            return parseLsn(rs.getString(1));
          }
        } catch (SQLException e) {
          primary = closeQuietly(primary);
          if (!reused || !SqlStates.isConnectionLoss(e)) {
            return -1;
          }
          // A kept connection broke (a restart since the last round): once more on a new one.
        }
      }
      return -1;
    }

    private Replica checkReplica(int i, long primaryLsn) {
      SQLException failure = null;
      for (int attempt = 0; attempt < 2; attempt++) {
        boolean reused = replicas[i] != null;
        try {
          if (replicas[i] == null) {
            replicas[i] = connect(pool.replicaEndpoints().get(i), true);
          }
          try (Statement s = replicas[i].createStatement(); ResultSet rs = s.executeQuery(REPLICA_SQL)) {
            rs.next();
            boolean inRecovery = rs.getBoolean(1);
            String replay = rs.getString(2);
            long lagMicros = rs.getLong(3);
            boolean lagKnown = !rs.wasNull();
            return judge(i, inRecovery, replay == null ? -1 : parseLsn(replay), primaryLsn,
                lagKnown ? Math.max(0, TimeUnit.MICROSECONDS.toNanos(lagMicros)) : UNKNOWN);
          }
        } catch (SQLException e) {
          failure = e;
          replicas[i] = closeQuietly(replicas[i]);
          if (!reused || !SqlStates.isConnectionLoss(e)) {
            break;
          }
        }
      }
      return new Replica(false, UNKNOWN, nanoTime.getAsLong(), "its check failed: " + failure.getMessage());
    }

    private Replica judge(int i, boolean inRecovery, long replayLsn, long primaryLsn, long lagNanos) {
      long now = nanoTime.getAsLong();
      if (!inRecovery) {
        if (!warnedPromoted[i]) {
          warnedPromoted[i] = true;
          log.warning("shardmap data: replica " + i + " of shard " + pool.shard() + " ("
              + describe(pool.replicaEndpoints().get(i)) + ") is not in recovery (promoted, or not a replica): "
              + "reads do not use it until it is a replica again or the shard's registration changes");
        }
        return new Replica(false, UNKNOWN, now, "it is not in recovery");
      }
      warnedPromoted[i] = false;
      if (primaryLsn >= 0 && replayLsn >= 0 && Long.compareUnsigned(replayLsn, primaryLsn) >= 0) {
        return new Replica(true, 0, now, "caught up");
      }
      // Both are upper bounds of the replica's staleness; the replay timestamp's overstates it after the
      // primary was idle (it counts from the last commit), the samples' is only as fine as the interval.
      long sampled = sampledLag(replayLsn, now);
      if (sampled != UNKNOWN && (lagNanos == UNKNOWN || sampled < lagNanos)) {
        lagNanos = sampled;
      }
      if (lagNanos == UNKNOWN) {
        return new Replica(false, UNKNOWN, now, "its replay lag is unknown (no transaction replayed yet) and it "
            + "has not replayed the primary's WAL position");
      }
      if (lagNanos > maxLagNanos) {
        return new Replica(false, lagNanos, now, "it lags " + TimeUnit.NANOSECONDS.toMillis(lagNanos)
            + " ms, beyond maxReplicaLag " + options.maxReplicaLag().toMillis() + " ms");
      }
      return new Replica(true, lagNanos, now, "within maxReplicaLag");
    }

    /** Logs a replica becoming unusable or usable again (transitions only, so a steady state is quiet). */
    private void logChange(int i, Replica now) {
      Replica before = last[i];
      last[i] = now;
      if (before == null ? !now.usable : before.usable != now.usable) {
        log.info("shardmap data: replica " + i + " of shard " + pool.shard() + " ("
            + describe(pool.replicaEndpoints().get(i)) + ") is " + (now.usable ? "usable again" : "not used for "
            + "reads because " + now.why));
      }
    }

    private Connection connect(Endpoint e, boolean replica) throws SQLException {
      Properties p = new Properties();
      options.properties().forEach(p::setProperty);
      p.setProperty("user", options.user());
      if (options.password() != null) {
        p.setProperty("password", options.password());
      }
      String t = Integer.toString(CHECK_TIMEOUT_SECONDS);
      p.setProperty("connectTimeout", t);
      p.setProperty("loginTimeout", t);
      p.setProperty("socketTimeout", t);
      p.setProperty("ApplicationName", "shardmap-replica-check");
      p.setProperty("readOnly", Boolean.toString(replica));
      Connection c = DRIVER.connect(ShardPools.jdbcUrl(e), p);
      if (c == null) {
        throw new SQLException("the PostgreSQL driver does not accept " + ShardPools.jdbcUrl(e));
      }
      c.setAutoCommit(true);
      return c;
    }

    /** Stops checking (the pool was replaced or removed); its connections close once no check runs. */
    void retire() {
      retired = true;
      if (running.compareAndSet(false, true)) {
        try {
          executor.execute(() -> {
            closeConnections();
            running.set(false);
          });
        } catch (RejectedExecutionException e) {
          closeConnections();
        }
      }
    }

    private synchronized void closeConnections() {
      primary = closeQuietly(primary);
      for (int i = 0; i < replicas.length; i++) {
        replicas[i] = closeQuietly(replicas[i]);
      }
    }
  }

  private static final java.sql.Driver DRIVER = new org.postgresql.Driver();

  private static Connection closeQuietly(Connection c) {
    if (c != null) {
      try {
        c.close();
      } catch (SQLException ignored) {
        // already broken: nothing to release
      }
    }
    return null;
  }

  /** A {@code pg_lsn} text ({@code "16/B374D848"}) as an unsigned 64-bit position. */
  static long parseLsn(String lsn) {
    int slash = lsn.indexOf('/');
    return (Long.parseUnsignedLong(lsn.substring(0, slash), 16) << 32)
        | Long.parseUnsignedLong(lsn.substring(slash + 1), 16);
  }

  private static String describe(Endpoint e) {
    return e.getHost() + ":" + e.getPort() + "/" + e.getDatabase();
  }

  /** Stops the checks; running checks finish (bounded by their timeout) and close their connections. */
  @Override
  public void close() {
    List<Checker> all;
    synchronized (this) {
      closed = true;
      if (rounds != null) {
        rounds.cancel(false);
      }
      all = new ArrayList<>(checkers.values());
      checkers.clear();
    }
    health.clear();
    for (Checker c : all) {
      c.retire();
    }
  }
}
