package io.shardmap.client;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Immutable settings of {@link ShardmapData} from {@link #builder()}, which rejects bad values at once
 * with a message naming the option. Credentials are not part of the map (etcd holds endpoints only).
 *
 * <p>The pool settings are the SDK's own: the pool implementation (HikariCP today) is not part of the API.
 * Every pool (one per shard primary and per replica) gets the same settings.
 */
public final class DataOptions {
  private final String user;
  private final String password;
  private final int maxPoolSize;
  private final int minIdle;
  private final Duration connectionTimeout;
  private final Duration replicaConnectionTimeout;
  private final Duration staleRouteTimeout;
  private final Duration crossShardLockTimeout;
  private final boolean crossShardCommitWait;
  private final int maxAttempts;
  private final Map<String, String> properties;
  private final Duration idleTimeout;
  private final Duration maxLifetime;
  private final Duration keepaliveTime;
  private final Duration validationTimeout;
  private final String connectionInitSql;
  private final int queryPoolSize;
  private final Duration failoverBufferWindow;
  private final int failoverBufferSize;
  private final Duration failoverProbeInterval;
  private final boolean resolveUnknownCommits;
  private final Duration maxReplicaLag;
  private final Duration replicaCheckInterval;
  private final boolean breakerEnabled;
  private final int breakerFailureRateThreshold;
  private final int breakerWindowSize;
  private final int breakerMinimumCalls;
  private final Duration breakerOpenDuration;
  private final int breakerHalfOpenCalls;
  private final Duration breakerSlowCallThreshold;

  private DataOptions(Builder b) {
    user = b.user;
    password = b.password;
    maxPoolSize = b.maxPoolSize;
    minIdle = b.minIdle;
    connectionTimeout = b.connectionTimeout;
    replicaConnectionTimeout = b.replicaConnectionTimeout;
    staleRouteTimeout = b.staleRouteTimeout;
    crossShardLockTimeout = b.crossShardLockTimeout;
    crossShardCommitWait = b.crossShardCommitWait;
    maxAttempts = b.maxAttempts;
    properties = Map.copyOf(b.properties);
    idleTimeout = b.idleTimeout;
    maxLifetime = b.maxLifetime;
    keepaliveTime = b.keepaliveTime;
    validationTimeout = b.validationTimeout;
    connectionInitSql = b.connectionInitSql;
    queryPoolSize = b.queryPoolSize;
    failoverBufferWindow = b.failoverBufferWindow;
    failoverBufferSize = b.failoverBufferSize;
    failoverProbeInterval = b.failoverProbeInterval;
    resolveUnknownCommits = b.resolveUnknownCommits;
    maxReplicaLag = b.maxReplicaLag;
    replicaCheckInterval = b.replicaCheckInterval;
    breakerEnabled = b.breakerEnabled;
    breakerFailureRateThreshold = b.breakerFailureRateThreshold;
    breakerWindowSize = b.breakerWindowSize;
    breakerMinimumCalls = b.breakerMinimumCalls;
    breakerOpenDuration = b.breakerOpenDuration;
    breakerHalfOpenCalls = b.breakerHalfOpenCalls;
    breakerSlowCallThreshold = b.breakerSlowCallThreshold;
  }

  public static Builder builder() {
    return new Builder();
  }

  public String user() { return user; }
  /** Null when the servers need none (trust or peer authentication). */
  public String password() { return password; }
  /** Connections per pool: one pool per shard primary and one per replica. */
  public int maxPoolSize() { return maxPoolSize; }
  /** Idle connections kept open per pool; 0 opens connections only when used (large fleets). */
  public int minIdle() { return minIdle; }
  /** How long a call waits for a primary connection before failing. */
  public Duration connectionTimeout() { return connectionTimeout; }
  /** How long a read waits for a replica connection before going to the next replica or the primary. */
  public Duration replicaConnectionTimeout() { return replicaConnectionTimeout; }
  /** How long a call refused by a fence waits for the map to name the new owner. */
  public Duration staleRouteTimeout() { return staleRouteTimeout; }

  /**
   * The {@code lock_timeout} of the statements a cross-shard transaction runs once it has two or more shards
   * open (zero: none). PostgreSQL detects deadlocks within one server only; two transfers locking the same
   * rows on two shards in opposite orders would wait for each other forever. With this bound one of them
   * fails with SQLSTATE 55P03 (nothing committed, safe to run again). Default 5 s.
   */
  public Duration crossShardLockTimeout() { return crossShardLockTimeout; }

  /**
   * Whether {@code acrossShards} returns only once every shard that wrote has committed (true, the default:
   * what the caller reads next on any shard shows its writes), or as soon as the decision is durable
   * (false: the call saves a round trip and a WAL flush, and the other shards commit a round trip later, so
   * a read there right after the call may still see the old rows; a write to those rows waits for them).
   * Either way the transaction is atomic and durable once the call returns.
   */
  public boolean crossShardCommitWait() { return crossShardCommitWait; }
  /** Runs of one call at most, first run included. */
  public int maxAttempts() { return maxAttempts; }
  /** PostgreSQL JDBC driver properties applied to every pool. */
  public Map<String, String> properties() { return properties; }
  /** How long a connection above {@link #minIdle()} may sit idle before it is closed; zero: never. */
  public Duration idleTimeout() { return idleTimeout; }
  /** The longest a pooled connection lives before it is replaced (when not in use); zero: no limit. */
  public Duration maxLifetime() { return maxLifetime; }
  /** How often an idle connection is tested to keep it (and the path to the shard) alive; zero: never. */
  public Duration keepaliveTime() { return keepaliveTime; }
  /** How long testing a connection for liveness may take. */
  public Duration validationTimeout() { return validationTimeout; }
  /** SQL run once on every new connection before it is used (e.g. {@code SET search_path ...}); null: none. */
  public String connectionInitSql() { return connectionInitSql; }
  /**
   * Connections per shard (primary and each replica) reserved for cross-shard queries
   * ({@link ShardmapData#query}): their own pools, so queries never take the connections of single-key
   * calls. Each running query holds one per shard it reads from until its result is closed.
   */
  public int queryPoolSize() { return queryPoolSize; }

  /**
   * How long a call to a Patroni shard waits, in all, for a primary when the one it tried is gone or was
   * demoted (the failover buffer): long enough for Patroni to promote a standby after a crash (a loop or
   * two, about 2-3 s with loop_wait 1) and for a switchover, short enough that callers learn of a shard
   * without a primary. Default 10 s (as vtgate's buffer window). Only calls that provably did not run wait.
   */
  public Duration failoverBufferWindow() { return failoverBufferWindow; }

  /** At most this many calls wait in the failover buffer at once; more fail at once. Default 1000. */
  public int failoverBufferSize() { return failoverBufferSize; }

  /**
   * While buffered, a call tries its shard's primary again this often (besides running at once when the map
   * names a new primary): so a primary that recovers in place is used again, and a newly named one is used
   * as soon as its promotion completes (the map names it when Patroni takes the leader key, a moment before
   * PostgreSQL accepts writes). Default 100 ms.
   */
  public Duration failoverProbeInterval() { return failoverProbeInterval; }

  /**
   * Whether a transaction on a Patroni shard whose connection breaks inside COMMIT while the primary stays up
   * (a dropped connection, a killed backend) has its outcome looked up on that same server instead of failing
   * as unknown: committed answers the call, provably not committed runs it again. Across a failover or a
   * restart the outcome stays unknown (transaction ids repeat there; docs/patroni.md, "Commits cut while the
   * primary stays up"). Costs one short statement before each such COMMIT. Default true.
   */
  public boolean resolveUnknownCommits() { return resolveUnknownCommits; }

  /**
   * How far behind its primary a replica may be and still serve {@link ShardmapData#read}s; default 5 s.
   * A replica is used while it is in recovery and has either replayed everything its primary had written
   * when last checked (lag 0) or replays transactions committed at most this long ago; beyond it reads go
   * to another replica or the primary. The default tolerates a replica briefly busy replaying (a large
   * transaction, a vacuum) while keeping reads seconds-fresh. Zero is refused: a read that must see the
   * latest commit belongs on the primary ({@code inTransaction}, {@code withConnection}), since no
   * replica can promise it. The bound holds as of the last check: a replica can fall a further
   * {@link #replicaCheckInterval()} behind before the SDK notices.
   */
  public Duration maxReplicaLag() { return maxReplicaLag; }

  /**
   * How often each replica's health and lag are checked (on a thread of the SDK, never a caller's);
   * default 500 ms, at least 50 ms. A replica whose last successful check is older than a few intervals
   * counts as unusable, so this also bounds how long a hung or lagging replica keeps serving reads. Each
   * check is two short statements (the primary's WAL position, the replica's replay position and time).
   */
  public Duration replicaCheckInterval() { return replicaCheckInterval; }

  /**
   * Whether each shard endpoint (primary, each replica) has a circuit breaker. Default true: without one, a
   * shard that hangs or is gone costs every call to it a full {@link #connectionTimeout()} and holds the
   * caller's thread that long; with one, once the breaker has seen the shard fail, calls to it fail at once
   * (a {@code CircuitOpenException}, SQLSTATE 08001, nothing ran) until a probe finds it back. Only failures
   * of the connection count (connection lost, no connection within the timeout, server shutting down) and
   * calls slower than {@link #breakerSlowCallThreshold()}; the work's own SQL errors (constraint violations
   * and the like) show a shard that answers. Calls to other shards never wait on it either way.
   */
  public boolean breakerEnabled() { return breakerEnabled; }

  /**
   * Percent (1..100) of the calls in the window that must fail (or be slow) to open an endpoint's breaker.
   * Default 50: a shard failing half its calls is down or flapping for its callers; a few failures among
   * many successes (a killed backend, one slow query) leave it closed.
   */
  public int breakerFailureRateThreshold() { return breakerFailureRateThreshold; }

  /**
   * Calls (count-based sliding window) over which an endpoint's failure rate is measured. Default 20:
   * database calls come by hundreds per second, so 20 calls is a fraction of a second of traffic, and a
   * failing shard is seen within that, where Resilience4j's stock 100-call window is far slower at low rates.
   */
  public int breakerWindowSize() { return breakerWindowSize; }

  /**
   * Calls an endpoint's breaker needs in its window before it may open (at most {@link #breakerWindowSize()}).
   * Default 5: enough not to open on one or two unlucky calls, few enough that a dead shard costs callers
   * at most five connection timeouts before they fail fast.
   */
  public int breakerMinimumCalls() { return breakerMinimumCalls; }

  /**
   * How long an open breaker refuses calls before letting {@link #breakerHalfOpenCalls()} probe calls
   * through (half-open). Default 1 s, where Resilience4j's stock 60 s is far too slow for databases: a
   * restarted or failed-over PostgreSQL is back within seconds, and an open breaker costs nothing but one
   * probe per second while the shard stays down.
   */
  public Duration breakerOpenDuration() { return breakerOpenDuration; }

  /**
   * Probe calls let through by a half-open breaker; all must succeed (at the failure rate threshold) to
   * close it, one failing too many opens it again for {@link #breakerOpenDuration()}. Default 2: one
   * lucky call does not reopen the gate for every waiting caller at once. Until the probes end, other calls
   * are still refused; give the driver a {@code socketTimeout} ({@link Builder#property}) so that a probe sent
   * to a shard that hangs ends too.
   */
  public int breakerHalfOpenCalls() { return breakerHalfOpenCalls; }

  /**
   * A call on an endpoint that takes longer than this (borrowing included) counts as slow; slow calls open
   * the breaker at {@link #breakerFailureRateThreshold()} like failures. Default 2 s: far above any healthy
   * single-key call, and below the default {@link #connectionTimeout()} of 5 s, so a shard that hangs but
   * still answers at a crawl is cut off too. Calls that are slow by design (reports, batch work) count as
   * well: raise it above the slowest call the application makes on purpose.
   */
  public Duration breakerSlowCallThreshold() { return breakerSlowCallThreshold; }

  public static final class Builder {
    private String user;
    private String password;
    private int maxPoolSize = 10;
    private int minIdle = 0;
    private Duration connectionTimeout = Duration.ofSeconds(5);
    private Duration replicaConnectionTimeout = Duration.ofMillis(500);
    private Duration staleRouteTimeout = Duration.ofSeconds(5);
    private Duration crossShardLockTimeout = Duration.ofSeconds(5);
    private boolean crossShardCommitWait = true;
    private int maxAttempts = 5;
    private final Map<String, String> properties = new LinkedHashMap<>();
    private Duration idleTimeout = Duration.ofMinutes(10);
    private Duration maxLifetime = Duration.ofMinutes(30);
    private Duration keepaliveTime = Duration.ZERO;
    private Duration validationTimeout = Duration.ofSeconds(5);
    private String connectionInitSql;
    private int queryPoolSize = 4;
    private Duration failoverBufferWindow = Duration.ofSeconds(10);
    private int failoverBufferSize = 1000;
    private Duration failoverProbeInterval = Duration.ofMillis(100);
    private boolean resolveUnknownCommits = true;
    private Duration maxReplicaLag = Duration.ofSeconds(5);
    private Duration replicaCheckInterval = Duration.ofMillis(500);
    private boolean breakerEnabled = true;
    private int breakerFailureRateThreshold = 50;
    private int breakerWindowSize = 20;
    private int breakerMinimumCalls = 5;
    private Duration breakerOpenDuration = Duration.ofSeconds(1);
    private int breakerHalfOpenCalls = 2;
    private Duration breakerSlowCallThreshold = Duration.ofSeconds(2);

    private Builder() {}

    public Builder user(String user) {
      if (user == null || user.isBlank()) {
        throw new IllegalArgumentException("user: a PostgreSQL role name is required");
      }
      this.user = user;
      return this;
    }

    public Builder password(String password) {
      this.password = password;
      return this;
    }

    public Builder maxPoolSize(int n) {
      if (n < 1 || n > 10_000) {
        throw new IllegalArgumentException("maxPoolSize: must be 1..10000, got " + n);
      }
      this.maxPoolSize = n;
      return this;
    }

    public Builder minIdle(int n) {
      if (n < 0) {
        throw new IllegalArgumentException("minIdle: must be >= 0, got " + n);
      }
      this.minIdle = n;
      return this;
    }

    public Builder connectionTimeout(Duration d) {
      this.connectionTimeout = atLeast("connectionTimeout", d, Duration.ofMillis(250));
      return this;
    }

    public Builder replicaConnectionTimeout(Duration d) {
      this.replicaConnectionTimeout = atLeast("replicaConnectionTimeout", d, Duration.ofMillis(250));
      return this;
    }

    public Builder staleRouteTimeout(Duration d) {
      this.staleRouteTimeout = atLeast("staleRouteTimeout", d, Duration.ofMillis(1));
      return this;
    }

    /** Default 5 s; zero (no bound) or at least 10 ms. See {@link DataOptions#crossShardLockTimeout()}. */
    public Builder crossShardLockTimeout(Duration d) {
      if (d != null && d.isZero()) {
        this.crossShardLockTimeout = d;
        return this;
      }
      this.crossShardLockTimeout = atLeast("crossShardLockTimeout", d, Duration.ofMillis(10));
      return this;
    }

    /** Default true. See {@link DataOptions#crossShardCommitWait()}. */
    public Builder crossShardCommitWait(boolean wait) {
      this.crossShardCommitWait = wait;
      return this;
    }

    public Builder maxAttempts(int n) {
      if (n < 1 || n > 100) {
        throw new IllegalArgumentException("maxAttempts: must be 1..100, got " + n);
      }
      this.maxAttempts = n;
      return this;
    }

    /** A PostgreSQL JDBC driver property (e.g. {@code ssl}, {@code socketTimeout}) for every pool. */
    public Builder property(String name, String value) {
      if (name == null || name.isBlank() || value == null) {
        throw new IllegalArgumentException("property: name and value are required, got " + name + "=" + value);
      }
      properties.put(name, value);
      return this;
    }

    /** Default 10 min; zero keeps idle connections forever, otherwise at least 10 s. */
    public Builder idleTimeout(Duration d) {
      this.idleTimeout = zeroOrAtLeast("idleTimeout", d, Duration.ofSeconds(10));
      return this;
    }

    /** Default 30 min; zero for no limit, otherwise at least 30 s. Keep it below any server or proxy limit. */
    public Builder maxLifetime(Duration d) {
      this.maxLifetime = zeroOrAtLeast("maxLifetime", d, Duration.ofSeconds(30));
      return this;
    }

    /** Default zero (off); otherwise at least 30 s and below {@link #maxLifetime}. */
    public Builder keepaliveTime(Duration d) {
      this.keepaliveTime = zeroOrAtLeast("keepaliveTime", d, Duration.ofSeconds(30));
      return this;
    }

    /** Default 5 s; at least 250 ms. */
    public Builder validationTimeout(Duration d) {
      this.validationTimeout = atLeast("validationTimeout", d, Duration.ofMillis(250));
      return this;
    }

    /** SQL run once on every new connection of every pool before it is handed out. */
    public Builder connectionInitSql(String sql) {
      if (sql == null || sql.isBlank()) {
        throw new IllegalArgumentException("connectionInitSql: must be a non-blank SQL statement, got '" + sql + "'");
      }
      this.connectionInitSql = sql;
      return this;
    }

    /** Default 4; 1..10000. See {@link DataOptions#queryPoolSize()}. */
    public Builder queryPoolSize(int n) {
      if (n < 1 || n > 10_000) {
        throw new IllegalArgumentException("queryPoolSize: must be 1..10000, got " + n);
      }
      this.queryPoolSize = n;
      return this;
    }

    /** Default 10 s; zero turns buffering off (a call fails as soon as the primary does). */
    public Builder failoverBufferWindow(Duration d) {
      this.failoverBufferWindow = zeroOrAtLeast("failoverBufferWindow", d, Duration.ofMillis(100));
      return this;
    }

    /** Default 1000; 1..100000. */
    public Builder failoverBufferSize(int n) {
      if (n < 1 || n > 100_000) {
        throw new IllegalArgumentException("failoverBufferSize: must be 1..100000 calls, got " + n);
      }
      this.failoverBufferSize = n;
      return this;
    }

    /** Default true. See {@link DataOptions#resolveUnknownCommits()}. */
    public Builder resolveUnknownCommits(boolean on) {
      this.resolveUnknownCommits = on;
      return this;
    }

    /** Default 100 ms; at least 10 ms. */
    public Builder failoverProbeInterval(Duration d) {
      this.failoverProbeInterval = atLeast("failoverProbeInterval", d, Duration.ofMillis(10));
      return this;
    }

    /**
     * Default 5 s; more than zero (reads that must not lag use the primary). See
     * {@link DataOptions#maxReplicaLag()}.
     */
    public Builder maxReplicaLag(Duration d) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException("maxReplicaLag: must be more than zero (reads that must not lag "
            + "belong on the primary: inTransaction or withConnection), got " + d);
      }
      this.maxReplicaLag = d;
      return this;
    }

    /** Default 500 ms; at least 50 ms. See {@link DataOptions#replicaCheckInterval()}. */
    public Builder replicaCheckInterval(Duration d) {
      this.replicaCheckInterval = atLeast("replicaCheckInterval", d, Duration.ofMillis(50));
      return this;
    }

    /** Default true. See {@link DataOptions#breakerEnabled()}. */
    public Builder breakerEnabled(boolean enabled) {
      this.breakerEnabled = enabled;
      return this;
    }

    /** Default 50; a percent, 1..100. See {@link DataOptions#breakerFailureRateThreshold()}. */
    public Builder breakerFailureRateThreshold(int percent) {
      this.breakerFailureRateThreshold = within("breakerFailureRateThreshold", percent, 1, 100);
      return this;
    }

    /** Default 20; 1..10000 calls. See {@link DataOptions#breakerWindowSize()}. */
    public Builder breakerWindowSize(int calls) {
      this.breakerWindowSize = within("breakerWindowSize", calls, 1, 10_000);
      return this;
    }

    /** Default 5; 1..10000 and at most the window size (checked by {@link #build}). */
    public Builder breakerMinimumCalls(int calls) {
      this.breakerMinimumCalls = within("breakerMinimumCalls", calls, 1, 10_000);
      return this;
    }

    /** Default 1 s; at least 10 ms. See {@link DataOptions#breakerOpenDuration()}. */
    public Builder breakerOpenDuration(Duration d) {
      this.breakerOpenDuration = atLeast("breakerOpenDuration", d, Duration.ofMillis(10));
      return this;
    }

    /** Default 2; 1..1000 calls. See {@link DataOptions#breakerHalfOpenCalls()}. */
    public Builder breakerHalfOpenCalls(int calls) {
      this.breakerHalfOpenCalls = within("breakerHalfOpenCalls", calls, 1, 1000);
      return this;
    }

    /** Default 2 s; at least 1 ms. See {@link DataOptions#breakerSlowCallThreshold()}. */
    public Builder breakerSlowCallThreshold(Duration d) {
      this.breakerSlowCallThreshold = atLeast("breakerSlowCallThreshold", d, Duration.ofMillis(1));
      return this;
    }

    public DataOptions build() {
      if (user == null) {
        throw new IllegalArgumentException("user: a PostgreSQL role name is required");
      }
      if (minIdle > maxPoolSize) {
        throw new IllegalArgumentException("minIdle: " + minIdle + " is above maxPoolSize " + maxPoolSize);
      }
      if (!keepaliveTime.isZero() && !maxLifetime.isZero() && keepaliveTime.compareTo(maxLifetime) >= 0) {
        throw new IllegalArgumentException("keepaliveTime: " + keepaliveTime.toSeconds() + " s must be below "
            + "maxLifetime (" + maxLifetime.toSeconds() + " s)");
      }
      if (breakerMinimumCalls > breakerWindowSize) {
        throw new IllegalArgumentException("breakerMinimumCalls: " + breakerMinimumCalls + " must be at most "
            + "breakerWindowSize (" + breakerWindowSize + "), the calls the breaker remembers");
      }
      return new DataOptions(this);
    }

    private static int within(String name, int n, int min, int max) {
      if (n < min || n > max) {
        throw new IllegalArgumentException(name + ": must be " + min + ".." + max + ", got " + n);
      }
      return n;
    }

    private static Duration zeroOrAtLeast(String name, Duration d, Duration min) {
      if (d != null && d.isZero()) {
        return d;
      }
      if (d == null || d.compareTo(min) < 0) {
        throw new IllegalArgumentException(name + ": must be zero (off) or at least " + (min.toMillis() % 1000 == 0
            ? min.toSeconds() + " s" : min.toMillis() + " ms") + ", got " + d);
      }
      return d;
    }

    private static Duration atLeast(String name, Duration d, Duration min) {
      if (d == null || d.compareTo(min) < 0) {
        throw new IllegalArgumentException(name + ": must be at least " + min.toMillis() + " ms, got " + d);
      }
      return d;
    }
  }
}
