package io.shardmap.server;

import java.time.Duration;
import java.util.List;

/**
 * Immutable directory-server settings, built by {@link #builder()}, which rejects bad values at once with
 * a message naming the option.
 */
public final class ServerOptions {
  private final String host;
  private final int port;
  private final String metricsHost;
  private final int metricsPort;
  private final List<String> etcdEndpoints;
  private final String etcdPrefix;
  private final Duration etcdTimeout;
  private final Duration probeInterval;
  private final Duration watchHeartbeat;
  private final int watchHistory;
  private final int watchQueueLimit;
  private final int maxTxnOps;
  private final String serverId;
  private final Duration clientReportTimeout;
  private final List<Duration> loadRetention;
  private final int loadMaxBands;
  private final Duration loadPublishInterval;
  private final String resolverDbUser;
  private final String resolverDbPassword;
  private final Duration txnResolveInterval;
  private final Duration txnAbortAfter;
  private final Duration txnResolverLeaseTtl;
  private final Duration sizeInterval;

  private ServerOptions(Builder b) {
    host = b.host;
    port = b.port;
    metricsHost = b.metricsHost;
    metricsPort = b.metricsPort;
    etcdEndpoints = List.copyOf(b.etcdEndpoints);
    etcdPrefix = b.etcdPrefix;
    etcdTimeout = b.etcdTimeout;
    probeInterval = b.probeInterval;
    watchHeartbeat = b.watchHeartbeat;
    watchHistory = b.watchHistory;
    watchQueueLimit = b.watchQueueLimit;
    maxTxnOps = b.maxTxnOps;
    serverId = b.serverId;
    clientReportTimeout = b.clientReportTimeout;
    loadRetention = b.loadRetention;
    loadMaxBands = b.loadMaxBands;
    loadPublishInterval = b.loadPublishInterval;
    resolverDbUser = b.resolverDbUser;
    resolverDbPassword = b.resolverDbPassword;
    txnResolveInterval = b.txnResolveInterval;
    txnAbortAfter = b.txnAbortAfter;
    txnResolverLeaseTtl = b.txnResolverLeaseTtl;
    sizeInterval = b.sizeInterval;
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * The settings every test and benchmark fleet starts from, in one place: gRPC on a free loopback port, no
   * metrics HTTP endpoint, a 2 s etcd timeout, probes every 200 ms, watch heartbeats every 300 ms and
   * transactions of up to 1024 operations (large test maps), on {@code etcdEndpoints} under
   * {@code prefix}. Short intervals make failover and heartbeat-driven behaviour quick to observe; they are
   * not production values. Callers override what their test is about.
   */
  public static Builder loopbackForTests(List<String> etcdEndpoints, String prefix) {
    return builder().listen("127.0.0.1", 0).metrics(null, 0).etcdEndpoints(etcdEndpoints).etcdPrefix(prefix)
        .etcdTimeout(Duration.ofSeconds(2)).probeInterval(Duration.ofMillis(200))
        .watchHeartbeat(Duration.ofMillis(300)).maxTxnOps(1024);
  }

  public String host() { return host; }
  public int port() { return port; }
  /** Null when the metrics endpoint is off. */
  public String metricsHost() { return metricsHost; }
  public int metricsPort() { return metricsPort; }
  public List<String> etcdEndpoints() { return etcdEndpoints; }
  public String etcdPrefix() { return etcdPrefix; }
  public Duration etcdTimeout() { return etcdTimeout; }
  public Duration probeInterval() { return probeInterval; }
  public Duration watchHeartbeat() { return watchHeartbeat; }
  public int watchHistory() { return watchHistory; }
  public int watchQueueLimit() { return watchQueueLimit; }
  public int maxTxnOps() { return maxTxnOps; }
  /**
   * The id this server publishes its clients' acknowledgements under ({@code {prefix}/clients/{id}}), or
   * null for the default: {@code hostname:port-random}, unique per run.
   */
  public String serverId() { return serverId; }
  /** A client that has not reported its applied revision for this long is forgotten (not waited for). */
  public Duration clientReportTimeout() { return clientReportTimeout; }
  /**
   * How long the load history keeps its 1-minute, 10-minute and 1-hour columns (default 6 hours, 4 days,
   * 28 days; docs/load.md).
   */
  public List<Duration> loadRetention() { return loadRetention; }
  /** At most this many bands per load column (default 4096): the load history's memory bound. */
  public int loadMaxBands() { return loadMaxBands; }
  /** How often this server publishes its part of the recent load columns to etcd (default 5 s). */
  public Duration loadPublishInterval() { return loadPublishInterval; }
  /**
   * The PostgreSQL role the transaction resolver connects to the shards as, or null: then this server runs
   * no resolver.
   */
  public String resolverDbUser() { return resolverDbUser; }
  /** Its password, or null for none. */
  public String resolverDbPassword() { return resolverDbPassword; }
  /** How often the resolver scans the shards while this server holds the role. */
  public Duration txnResolveInterval() { return txnResolveInterval; }
  /** A prepared transaction with no decision this old is aborted by the resolver. */
  public Duration txnAbortAfter() { return txnAbortAfter; }
  /** The TTL of the lease under which one server holds the resolver role ({@code {prefix}/txn-resolver}). */
  public Duration txnResolverLeaseTtl() { return txnResolverLeaseTtl; }
  /**
   * How often the server holding the size-sampler role takes every keyspace's sizes (docs/sizes.md), as the
   * role {@link #resolverDbUser()}; without that role no server takes sizes.
   */
  public Duration sizeInterval() { return sizeInterval; }

  public static final class Builder {
    private String host = "127.0.0.1";
    private int port = 7700;
    private String metricsHost = "127.0.0.1";
    private int metricsPort = 7701;
    private List<String> etcdEndpoints = List.of("http://127.0.0.1:2379");
    private String etcdPrefix = "/shardmap";
    private Duration etcdTimeout = Duration.ofSeconds(3);
    private Duration probeInterval = Duration.ofSeconds(1);
    private Duration watchHeartbeat = Duration.ofSeconds(2);
    private int watchHistory = 10_000;
    private int watchQueueLimit = 10_000;
    private int maxTxnOps = 128;
    private String serverId;
    private Duration clientReportTimeout = Duration.ofSeconds(10);
    private List<Duration> loadRetention = List.of(Duration.ofHours(6), Duration.ofDays(4), Duration.ofDays(28));
    private int loadMaxBands = 4096;
    private Duration loadPublishInterval = Duration.ofSeconds(5);
    private String resolverDbUser;
    private String resolverDbPassword;
    private Duration txnResolveInterval = Duration.ofSeconds(1);
    private Duration txnAbortAfter = Duration.ofSeconds(2);
    private Duration txnResolverLeaseTtl = Duration.ofSeconds(5);
    private Duration sizeInterval = Duration.ofMinutes(5);

    private Builder() {}

    /** Where gRPC listens; port 0 picks a free port. */
    public Builder listen(String host, int port) {
      this.host = requireText("listen host", host);
      this.port = requirePort("listen port", port);
      return this;
    }

    /** Where /metrics and /healthz are served; {@code null} host turns it off. Port 0 picks one. */
    public Builder metrics(String host, int port) {
      this.metricsHost = host;
      this.metricsPort = requirePort("metrics port", port);
      return this;
    }

    public Builder etcdEndpoints(List<String> endpoints) {
      if (endpoints == null || endpoints.isEmpty()) {
        throw new IllegalArgumentException("etcd-endpoints: at least one endpoint is required");
      }
      for (String e : endpoints) {
        if (!e.matches("https?://[^/\\s]+(:\\d+)?/?")) {
          throw new IllegalArgumentException("etcd-endpoints: '" + e + "' is not http(s)://host:port");
        }
      }
      this.etcdEndpoints = List.copyOf(endpoints);
      return this;
    }

    public Builder etcdPrefix(String prefix) {
      if (prefix == null || !prefix.matches("(/[A-Za-z0-9_.-]+)+")) {
        throw new IllegalArgumentException("etcd-prefix: must look like /name or /a/b (no trailing /), got '"
            + prefix + "'");
      }
      this.etcdPrefix = prefix;
      return this;
    }

    public Builder etcdTimeout(Duration d) {
      this.etcdTimeout = requirePositive("etcd-timeout", d);
      return this;
    }

    public Builder probeInterval(Duration d) {
      this.probeInterval = requirePositive("probe-interval", d);
      return this;
    }

    public Builder watchHeartbeat(Duration d) {
      this.watchHeartbeat = requirePositive("watch-heartbeat", d);
      return this;
    }

    public Builder watchHistory(int n) {
      this.watchHistory = requireRange("watch-history", n, 1, 10_000_000);
      return this;
    }

    public Builder watchQueueLimit(int n) {
      this.watchQueueLimit = requireRange("watch-queue-limit", n, 1, 10_000_000);
      return this;
    }

    /** Must not exceed the etcd cluster's --max-txn-ops (128 by default). */
    public Builder maxTxnOps(int n) {
      this.maxTxnOps = requireRange("max-txn-ops", n, 16, 1_000_000);
      return this;
    }

    /**
     * The id of this server in client presence records, 1-128 characters of [A-Za-z0-9._:-]; it must be
     * unique among the servers of one etcd prefix (two servers with one id overwrite each other's
     * record). Default: {@code hostname:port-random}, new on every start.
     */
    public Builder serverId(String id) {
      if (id == null || !id.matches("[A-Za-z0-9._:-]{1,128}")) {
        throw new IllegalArgumentException("server-id: must be 1-128 characters of [A-Za-z0-9._:-], got '"
            + id + "'");
      }
      this.serverId = id;
      return this;
    }

    /**
     * How long a client may go without reporting its applied revision before this server forgets it
     * (default 10 s). The SDK reports every {@code ClientOptions.reportInterval} (default 2 s), so this
     * should be several of those. A forgotten client is no longer waited for by the migrator.
     */
    public Builder clientReportTimeout(Duration d) {
      this.clientReportTimeout = requirePositive("client-report-timeout", d);
      return this;
    }

    /**
     * How long the load history keeps its 1-minute, 10-minute and 1-hour columns (default 6 h, 4 days, 28
     * days). Each at least its column width, and none shorter than the one before.
     */
    public Builder loadRetention(Duration minuteColumns, Duration tenMinuteColumns, Duration hourColumns) {
      requirePositive("load-retention", minuteColumns);
      requirePositive("load-retention", tenMinuteColumns);
      requirePositive("load-retention", hourColumns);
      if (minuteColumns.compareTo(Duration.ofMinutes(1)) < 0 || tenMinuteColumns.compareTo(minuteColumns) < 0
          || tenMinuteColumns.compareTo(Duration.ofMinutes(10)) < 0 || hourColumns.compareTo(tenMinuteColumns) < 0
          || hourColumns.compareTo(Duration.ofHours(1)) < 0) {
        throw new IllegalArgumentException("load-retention: each at least its column (1 min, 10 min, 1 h) and "
            + "none shorter than the one before, got " + minuteColumns + ", " + tenMinuteColumns + ", " + hourColumns);
      }
      this.loadRetention = List.of(minuteColumns, tenMinuteColumns, hourColumns);
      return this;
    }

    /** At most this many bands per load column (default 4096, 16-65536). */
    public Builder loadMaxBands(int n) {
      this.loadMaxBands = requireRange("load-max-bands", n, 16, 65536);
      return this;
    }

    /** How often this server publishes its part of the recent load columns (default 5 s, 100 ms-60 s). */
    public Builder loadPublishInterval(Duration d) {
      requirePositive("load-publish-interval", d);
      if (d.toMillis() < 100 || d.compareTo(Duration.ofSeconds(60)) > 0) {
        throw new IllegalArgumentException("load-publish-interval: must be 100 ms-60 s, got " + d);
      }
      this.loadPublishInterval = d;
      return this;
    }

    /**
     * Runs the transaction resolver, connecting to every shard's primary as {@code user} (the role the
     * applications' coordinators prepare as, or a superuser: only they may finish a prepared transaction)
     * with {@code password} (null: none). Without it this server runs no resolver.
     */
    public Builder resolver(String user, String password) {
      if (user == null || user.isBlank() || user.length() > 63 || user.chars().anyMatch(Character::isISOControl)) {
        throw new IllegalArgumentException("resolver-db-user: must be a PostgreSQL role name (1-63 characters, "
            + "not blank), got '" + user + "'");
      }
      this.resolverDbUser = user;
      this.resolverDbPassword = password;
      return this;
    }

    /** How often the resolver scans (default 1 s). */
    public Builder txnResolveInterval(Duration d) {
      this.txnResolveInterval = requirePositive("txn-resolve-interval", d);
      return this;
    }

    /** A prepared transaction undecided this long is aborted (default 2 s). */
    public Builder txnAbortAfter(Duration d) {
      this.txnAbortAfter = requirePositive("txn-abort-after", d);
      return this;
    }

    /**
     * The TTL of the resolver role's lease (default 5 s; etcd counts whole seconds, rounded up): how long the
     * role stays with a server that died without giving it up.
     */
    public Builder txnResolverLeaseTtl(Duration d) {
      this.txnResolverLeaseTtl = requirePositive("txn-resolver-lease-ttl", d);
      return this;
    }

    /** How often sizes are taken (default 5 minutes; 1 s to 168 h). */
    public Builder sizeInterval(Duration d) {
      if (d == null || d.compareTo(Duration.ofSeconds(1)) < 0 || d.compareTo(Duration.ofDays(7)) > 0) {
        throw new IllegalArgumentException("size-interval: must be 1s to 168h (7 days), got " + d);
      }
      this.sizeInterval = d;
      return this;
    }

    public ServerOptions build() {
      if (resolverDbUser != null) {
        try {
          io.shardmap.core.TxnId.namespaceOf(etcdPrefix);
        } catch (io.shardmap.core.ShardmapException e) {
          throw new IllegalArgumentException("etcd-prefix: the transaction resolver needs a prefix that makes a "
              + "transaction namespace: " + e.getMessage(), e);
        }
      }
      return new ServerOptions(this);
    }

    private static String requireText(String name, String v) {
      if (v == null || v.isBlank()) {
        throw new IllegalArgumentException(name + ": required");
      }
      return v;
    }

    private static int requirePort(String name, int p) {
      return requireRange(name, p, 0, 65535);
    }

    private static int requireRange(String name, int v, int min, int max) {
      if (v < min || v > max) {
        throw new IllegalArgumentException(name + ": must be " + min + "-" + max + ", got " + v);
      }
      return v;
    }

    private static Duration requirePositive(String name, Duration d) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + ": must be a positive duration, got " + d);
      }
      return d;
    }
  }
}
