package io.shardmap.migrator;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * How a {@link Migrator} reaches etcd and the shards. Immutable; built by {@link #builder()}, which
 * validates every value when it is set.
 */
public final class MigratorOptions {
  private final List<String> etcdEndpoints;
  private final String etcdPrefix;
  private final Duration etcdTimeout;
  private final Duration etcdRetryFor;
  private final String pgUser;
  private final String pgPassword;
  private final Duration pgConnectTimeout;
  private final String workerName;
  private final Duration leaseTtl;
  private final Duration pollInterval;
  private final Clock clock;
  private final LongSupplier ticker;
  private final Consumer<String> faultPoints;

  private MigratorOptions(Builder b) {
    if (b.etcdEndpoints == null || b.etcdEndpoints.isEmpty()) {
      throw new IllegalArgumentException("etcdEndpoints: at least one etcd endpoint is required");
    }
    etcdEndpoints = List.copyOf(b.etcdEndpoints);
    etcdPrefix = b.etcdPrefix;
    etcdTimeout = b.etcdTimeout;
    etcdRetryFor = b.etcdRetryFor;
    pgUser = Objects.requireNonNull(b.pgUser, "pgUser: the PostgreSQL user is required");
    pgPassword = b.pgPassword;
    pgConnectTimeout = b.pgConnectTimeout;
    workerName = b.workerName != null ? b.workerName : defaultWorkerName();
    leaseTtl = b.leaseTtl;
    pollInterval = b.pollInterval;
    clock = b.clock;
    ticker = b.ticker;
    faultPoints = b.faultPoints;
  }

  /**
   * {@code host-pid}. The host name is the kernel's (no name-service lookup: InetAddress.getLocalHost
   * resolves the name, which on a host missing from /etc/hosts waits for DNS timeouts, seconds before
   * every command), and the pid comes from ProcessHandle (the JMX runtime bean cost ~100 ms of class loading).
   */
  static String defaultWorkerName() {
    String host = null;
    try {
      host = Files.readString(Path.of("/proc/sys/kernel/hostname"), StandardCharsets.UTF_8).trim();
    } catch (Exception e) {
      // Not Linux: the environment's name, if the shell exported one.
    }
    if (host == null || host.isEmpty()) {
      host = System.getenv().getOrDefault("HOSTNAME", System.getenv().getOrDefault("COMPUTERNAME", "localhost"));
    }
    return host + "-" + ProcessHandle.current().pid();
  }

  public static Builder builder() {
    return new Builder();
  }

  public List<String> etcdEndpoints() { return etcdEndpoints; }
  public String etcdPrefix() { return etcdPrefix; }
  public Duration etcdTimeout() { return etcdTimeout; }
  public Duration etcdRetryFor() { return etcdRetryFor; }
  public String pgUser() { return pgUser; }
  public String pgPassword() { return pgPassword; }
  public Duration pgConnectTimeout() { return pgConnectTimeout; }
  public String workerName() { return workerName; }
  public Duration leaseTtl() { return leaseTtl; }
  public Duration pollInterval() { return pollInterval; }
  public Clock clock() { return clock; }
  /** Monotonic nanoseconds: every deadline, pause and duration the migrator measures. */
  public LongSupplier ticker() { return ticker; }
  public Consumer<String> faultPoints() { return faultPoints; }

  public static final class Builder {
    private List<String> etcdEndpoints;
    private String etcdPrefix = "/shardmap";
    private Duration etcdTimeout = Duration.ofSeconds(5);
    private Duration etcdRetryFor = Duration.ofSeconds(30);
    private String pgUser;
    private String pgPassword;
    private Duration pgConnectTimeout = Duration.ofSeconds(5);
    private String workerName;
    private Duration leaseTtl = Duration.ofSeconds(10);
    private Duration pollInterval = Duration.ofMillis(200);
    private Clock clock = Clock.systemUTC();
    private LongSupplier ticker = System::nanoTime;
    private Consumer<String> faultPoints = p -> { };

    private Builder() {}

    /** etcd client URLs, e.g. {@code http://127.0.0.1:2379}. */
    public Builder etcdEndpoints(List<String> endpoints) {
      if (endpoints == null || endpoints.isEmpty() || endpoints.stream().anyMatch(e -> e == null || e.isBlank())) {
        throw new IllegalArgumentException("etcdEndpoints: at least one non-empty endpoint is required");
      }
      this.etcdEndpoints = List.copyOf(endpoints);
      return this;
    }

    /** The key prefix of the Shardmap directory in etcd (the directory servers' --etcd-prefix). */
    public Builder etcdPrefix(String prefix) {
      if (prefix == null || !prefix.startsWith("/") || prefix.endsWith("/")) {
        throw new IllegalArgumentException("etcdPrefix: must start with '/' and not end with '/', got '" + prefix + "'");
      }
      this.etcdPrefix = prefix;
      return this;
    }

    /** Deadline of each etcd request (default 5 s). */
    public Builder etcdTimeout(Duration d) {
      this.etcdTimeout = positive("etcdTimeout", d);
      return this;
    }

    /**
     * How long an idempotent etcd read (and the read-back of a write whose outcome is unknown) is retried
     * after failing transiently, unavailable or unanswered within {@link #etcdTimeout}, before the command
     * gives up (default 30 s; 0 to never retry, at most 1 h).
     */
    public Builder etcdRetryFor(Duration d) {
      if (d == null || d.isNegative() || d.compareTo(Duration.ofHours(1)) > 0) {
        throw new IllegalArgumentException("etcdRetryFor: must be 0 to 1h, got " + d);
      }
      this.etcdRetryFor = d;
      return this;
    }

    /** The PostgreSQL role used on every shard: it needs to create tables, triggers and functions. */
    public Builder pgUser(String user) {
      if (user == null || user.isBlank()) {
        throw new IllegalArgumentException("pgUser: must not be empty");
      }
      this.pgUser = user;
      return this;
    }

    public Builder pgPassword(String password) {
      this.pgPassword = password;
      return this;
    }

    public Builder pgConnectTimeout(Duration d) {
      this.pgConnectTimeout = positive("pgConnectTimeout", d);
      return this;
    }

    /** How this worker names itself in the owner keys (default host-pid). */
    public Builder workerName(String name) {
      if (name == null || name.isBlank()) {
        throw new IllegalArgumentException("workerName: must not be empty");
      }
      this.workerName = name;
      return this;
    }

    /**
     * TTL of the lease under which this worker holds its migrations: after a crash, another worker takes
     * over at most this long later. At least 2 s (renewals happen every third of it).
     */
    public Builder leaseTtl(Duration d) {
      if (d == null || d.compareTo(Duration.ofSeconds(2)) < 0) {
        throw new IllegalArgumentException("leaseTtl: must be at least 2s, got " + d);
      }
      this.leaseTtl = d;
      return this;
    }

    /** How often waiting steps (client acknowledgements, a busy owner) look again. */
    public Builder pollInterval(Duration d) {
      this.pollInterval = positive("pollInterval", d);
      return this;
    }

    /** Wall time written into migration records (created, updated, cutover times). */
    public Builder clock(Clock clock) {
      this.clock = Objects.requireNonNull(clock, "clock");
      return this;
    }

    /** Monotonic nanoseconds (default {@code System::nanoTime}): deadlines, pauses, measured durations. */
    public Builder ticker(LongSupplier ticker) {
      this.ticker = Objects.requireNonNull(ticker, "ticker");
      return this;
    }

    /**
     * For tests: called with the name of each point a crash can happen at ("copying:chunk",
     * "cutting-over:fenced", ...); an exception thrown here ends the worker as a crash would (no cleanup,
     * lease left to expire).
     */
    public Builder faultPoints(Consumer<String> points) {
      this.faultPoints = Objects.requireNonNull(points, "faultPoints");
      return this;
    }

    public MigratorOptions build() {
      return new MigratorOptions(this);
    }

    private static Duration positive(String field, Duration d) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(field + ": must be positive, got " + d);
      }
      return d;
    }
  }
}
