package io.shardmap.client;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Immutable client settings from {@link #builder()}, which rejects bad values at once with a message
 * naming the option.
 */
public final class ClientOptions {
  /** Default of {@link Builder#directoryCacheSize}. */
  public static final int DEFAULT_DIRECTORY_CACHE_SIZE = 100_000;
  /** Default of {@link Builder#reportInterval}. */
  public static final Duration DEFAULT_REPORT_INTERVAL = Duration.ofSeconds(2);
  /** The longest {@link Builder#reportInterval}: half of the directory servers' default client report timeout. */
  public static final Duration MAX_REPORT_INTERVAL = Duration.ofSeconds(5);
  /** Default of {@link Builder#loadSlots}. */
  public static final int DEFAULT_LOAD_SLOTS = 1024;
  /** Default of {@link Builder#loadSampleEvery}. */
  public static final int DEFAULT_LOAD_SAMPLE_EVERY = 64;

  /**
   * The default {@link Builder#channelFactory}: plaintext gRPC over Netty to {@code host:port}, with a keepalive
   * ping every 10 s (5 s to answer) so a dead path is noticed even on an idle stream.
   */
  public static final ChannelFactory PLAINTEXT = target -> {
    int c = target.lastIndexOf(':');
    return NettyChannelBuilder.forAddress(target.substring(0, c), Integer.parseInt(target.substring(c + 1)))
        .usePlaintext()
        .keepAliveTime(10, java.util.concurrent.TimeUnit.SECONDS)
        .keepAliveTimeout(5, java.util.concurrent.TimeUnit.SECONDS);
  };

  private final List<String> targets;
  private final Set<String> keyspaces;
  private final Duration rpcTimeout;
  private final Duration startTimeout;
  private final Duration maxStaleness;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final Duration watchIdleTimeout;
  private final int directoryCacheSize;
  private final Object meterRegistry;
  private final String clientId;
  private final Duration reportInterval;
  private final ChannelFactory channelFactory;
  private final boolean loadAccounting;
  private final int loadSlots;
  private final int loadSampleEvery;

  private ClientOptions(Builder b) {
    targets = List.copyOf(b.targets);
    keyspaces = Set.copyOf(b.keyspaces);
    rpcTimeout = b.rpcTimeout;
    startTimeout = b.startTimeout;
    maxStaleness = b.maxStaleness;
    initialBackoff = b.initialBackoff;
    maxBackoff = b.maxBackoff;
    watchIdleTimeout = b.watchIdleTimeout;
    directoryCacheSize = b.directoryCacheSize;
    meterRegistry = b.meterRegistry;
    clientId = b.clientId;
    reportInterval = b.reportInterval;
    channelFactory = b.channelFactory;
    loadAccounting = b.loadAccounting;
    loadSlots = b.loadSlots;
    loadSampleEvery = b.loadSampleEvery;
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * Directory servers, tried in order, moving on when one fails: {@code host:port} with the default channel
   * factory, any name the {@link #channelFactory()} understands otherwise.
   */
  public List<String> targets() { return targets; }
  public Set<String> keyspaces() { return keyspaces; }
  public Duration rpcTimeout() { return rpcTimeout; }
  public Duration startTimeout() { return startTimeout; }
  /** Null when lookups never fail for staleness. */
  public Duration maxStaleness() { return maxStaleness; }
  public Duration initialBackoff() { return initialBackoff; }
  public Duration maxBackoff() { return maxBackoff; }
  /** A watch stream silent for this long is treated as dead and the client moves to another server. */
  public Duration watchIdleTimeout() { return watchIdleTimeout; }
  /** See {@link Builder#directoryCacheSize}. */
  public int directoryCacheSize() { return directoryCacheSize; }
  /**
   * The Micrometer {@code MeterRegistry} given to {@link Builder#meterRegistry}, or null. Typed Object so
   * that this class, and the client, never load a Micrometer class unless a registry was given.
   */
  public Object meterRegistry() { return meterRegistry; }
  /**
   * The id given to {@link Builder#clientId}, or null: each {@link ShardmapClient} then makes its own
   * ({@link ShardmapClient#clientId()}).
   */
  public String clientId() { return clientId; }
  /** See {@link Builder#reportInterval}. */
  public Duration reportInterval() { return reportInterval; }
  /** See {@link Builder#channelFactory}; {@link #PLAINTEXT} unless set. */
  public ChannelFactory channelFactory() { return channelFactory; }
  /** See {@link Builder#loadAccounting}; on unless turned off. */
  public boolean loadAccounting() { return loadAccounting; }
  /** See {@link Builder#loadSlots}. */
  public int loadSlots() { return loadSlots; }
  /** See {@link Builder#loadSampleEvery}. */
  public int loadSampleEvery() { return loadSampleEvery; }

  public static final class Builder {
    private List<String> targets;
    private final Set<String> keyspaces = new LinkedHashSet<>();
    private Duration rpcTimeout = Duration.ofSeconds(5);
    private Duration startTimeout = Duration.ofSeconds(30);
    private Duration maxStaleness;
    private Duration initialBackoff = Duration.ofMillis(50);
    private Duration maxBackoff = Duration.ofSeconds(2);
    private Duration watchIdleTimeout = Duration.ofSeconds(6);
    private int directoryCacheSize = DEFAULT_DIRECTORY_CACHE_SIZE;
    private Object meterRegistry;
    private String clientId;
    private Duration reportInterval = DEFAULT_REPORT_INTERVAL;
    private ChannelFactory channelFactory = PLAINTEXT;
    private boolean loadAccounting = true;
    private int loadSlots = DEFAULT_LOAD_SLOTS;
    private int loadSampleEvery = DEFAULT_LOAD_SAMPLE_EVERY;

    private Builder() {}

    /**
     * One or more directory servers: {@code host:port} for the default channel factory (checked by
     * {@link #build}), any non-blank name for a factory of your own.
     */
    public Builder targets(List<String> hostPorts) {
      if (hostPorts == null || hostPorts.isEmpty()) {
        throw new IllegalArgumentException("targets: at least one directory server (host:port) is required");
      }
      for (String t : hostPorts) {
        if (t == null || t.isBlank()) {
          throw new IllegalArgumentException("targets: '" + t + "' is not a directory server");
        }
      }
      this.targets = List.copyOf(hostPorts);
      return this;
    }

    /**
     * How the client makes its channel to each target (default {@link ClientOptions#PLAINTEXT}): for TLS,
     * e.g. {@code t -> NettyChannelBuilder.forTarget(t).sslContext(...)}, or for tests
     * {@code InProcessChannelBuilder::forName}.
     */
    public Builder channelFactory(ChannelFactory factory) {
      if (factory == null) {
        throw new IllegalArgumentException("channelFactory: must not be null (leave it unset for plaintext Netty)");
      }
      this.channelFactory = factory;
      return this;
    }

    public Builder targets(String... hostPorts) {
      return targets(List.of(hostPorts));
    }

    /** Keyspaces to follow; lookups in other keyspaces fail with NOT_FOUND. */
    public Builder keyspaces(String... names) {
      for (String n : names) {
        if (n == null || !n.matches("[a-z][a-z0-9_]{0,62}")) {
          throw new IllegalArgumentException("keyspaces: '" + n + "' is not a keyspace name");
        }
        keyspaces.add(n);
      }
      return this;
    }

    public Builder rpcTimeout(Duration d) {
      this.rpcTimeout = positive("rpcTimeout", d);
      return this;
    }

    /** How long {@link ShardmapClient#start} waits for the first full map. */
    public Builder startTimeout(Duration d) {
      this.startTimeout = positive("startTimeout", d);
      return this;
    }

    /**
     * Past this age (time since a directory server last confirmed the map current), lookups fail with
     * UNAVAILABLE instead of answering from an old map. Unset: always answer from the last map. The age is
     * judged by a timer every min(20 ms, maxStaleness / 20), so lookups read a flag rather than the clock
     * and may still answer for up to one such period past the limit.
     */
    public Builder maxStaleness(Duration d) {
      this.maxStaleness = positive("maxStaleness", d);
      return this;
    }

    /**
     * How long a watch stream may stay silent before the client gives up on that directory server and
     * fails over (default 6 s). Servers send a heartbeat on every idle stream (their
     * {@code --watch-heartbeat}, default 2 s), so this should be about three heartbeats: it is what finds
     * a replica that hangs or is partitioned away without closing its connections (a crash is seen at
     * once). With servers at {@code --watch-heartbeat 500ms}, 1.5 s here recovers from a frozen replica
     * in under 2 s (docs/benchmarks.md, watch-recovery).
     */
    public Builder watchIdleTimeout(Duration d) {
      if (d == null || d.compareTo(Duration.ofMillis(100)) < 0) {
        throw new IllegalArgumentException("watchIdleTimeout: must be at least 100 ms, got " + d);
      }
      this.watchIdleTimeout = d;
      return this;
    }

    public Builder backoff(Duration initial, Duration max) {
      this.initialBackoff = positive("backoff initial", initial);
      this.maxBackoff = positive("backoff max", max);
      if (max.compareTo(initial) < 0) {
        throw new IllegalArgumentException("backoff: max " + max + " is below initial " + initial);
      }
      return this;
    }

    /**
     * The most directory entries the client holds for one directory keyspace (default
     * {@value ClientOptions#DEFAULT_DIRECTORY_CACHE_SIZE}). This decides, per directory keyspace, how it
     * is held:
     *
     * <ul>
     *   <li>a directory with at most this many entries when it is loaded (at start and at every re-read)
     *       is held whole, like every other strategy: lookups never make an RPC;
     *   <li>a bigger one is loaded <em>lazily</em>: the client reads only its spec and fallback, and keeps
     *       at most this many per-key answers (entries, and keys that have none) in a cache. A lookup that
     *       misses asks a directory server (BatchLookup, bounded by {@link #rpcTimeout}, failing over
     *       between targets) and fails with UNAVAILABLE naming the key if none answers; the watch stream
     *       keeps cached answers current. Eviction is approximately least-recently-used (CLOCK).
     * </ul>
     *
     * A directory held whole that grows past this size through the watch turns lazy at once; a lazy one
     * that shrinks stays lazy until the next re-read. Why a size rather than a switch: a small directory
     * costs no more memory held whole than a full cache would, and then no lookup ever waits for an RPC.
     * {@code Integer.MAX_VALUE} holds every directory whole (the behaviour before lazy loading).
     */
    public Builder directoryCacheSize(int maxEntries) {
      if (maxEntries < 1) {
        throw new IllegalArgumentException("directoryCacheSize: must be at least 1 entry, got " + maxEntries);
      }
      this.directoryCacheSize = maxEntries;
      return this;
    }

    /**
     * Publishes the client's metrics ({@code shardmap.client.*}: lookups, shard calls and their failures,
     * retries by cause, reconnects, resyncs, failovers, watch lag, map age and revision, lazy directory
     * cache hits, misses and size) to this Micrometer registry. Micrometer is an optional dependency of
     * the SDK: without this option none of its classes are loaded. The meters read the client's own
     * counters when the registry is scraped (nothing is recorded on the lookup path) and are removed
     * when the client closes. Give each client its own registry, or only the first one's meters appear.
     */
    public Builder meterRegistry(io.micrometer.core.instrument.MeterRegistry registry) {
      if (registry == null) {
        throw new IllegalArgumentException("meterRegistry: must not be null (leave it unset for no metrics)");
      }
      this.meterRegistry = registry;
      return this;
    }

    /**
     * The id under which the client reports its applied map revision to the directory servers, shown to
     * operators and the migrator when the client holds a cleanup back: 1-128 characters of
     * [A-Za-z0-9._:-]. Unset (the default), each client makes one: {@code hostname-pid-random}. Two
     * live clients must not share an id (the servers would take them for one).
     */
    public Builder clientId(String id) {
      if (id == null || !id.matches("[A-Za-z0-9._:-]{1,128}")) {
        throw new IllegalArgumentException("clientId: must be 1-128 characters of [A-Za-z0-9._:-], got '"
            + id + "'");
      }
      this.clientId = id;
      return this;
    }

    /**
     * How often the client reports its applied revision to the directory server it follows even when
     * nothing changed (default 2 s); a new revision is reported within 100 ms anyway. Directory servers
     * forget a client that has not reported for their {@code --client-report-timeout} (default 10 s), and
     * the migrator no longer waits for a forgotten client, so this is 100 ms to 5 s: a few heartbeats fit
     * in the timeout. With a shorter server timeout, make this at most half of it.
     */
    public Builder reportInterval(Duration d) {
      if (d == null || d.compareTo(Duration.ofMillis(100)) < 0 || d.compareTo(MAX_REPORT_INTERVAL) > 0) {
        throw new IllegalArgumentException("reportInterval: must be 100 ms to " + MAX_REPORT_INTERVAL.toSeconds()
            + " s (well below the directory servers' client report timeout, 10 s by default), got " + d);
      }
      this.reportInterval = d;
      return this;
    }

    /**
     * Whether the client counts the load its calls put on each unit of the map (reads, writes, time, errors
     * per range, bucket, arc, region or entry group) and sends it with its presence reports, for the
     * directory's heatmap and balancing suggestions (docs/client-sdk.md, "Load accounting"). On by default;
     * off, no counters are allocated and a call pays one branch.
     */
    public Builder loadAccounting(boolean on) {
      this.loadAccounting = on;
      return this;
    }

    /**
     * The most counter slots per keyspace (default {@value ClientOptions#DEFAULT_LOAD_SLOTS}), 16 to 65536:
     * a map with more units than this counts adjacent units together in one slot, so the client's memory
     * for load stays bounded however many ranges the map has. Each slot costs 32 bytes per stripe.
     */
    public Builder loadSlots(int slots) {
      if (slots < 16 || slots > 65536) {
        throw new IllegalArgumentException("loadSlots: must be 16 to 65536, got " + slots);
      }
      this.loadSlots = slots;
      return this;
    }

    /**
     * One call in this many (at random; default {@value ClientOptions#DEFAULT_LOAD_SAMPLE_EVERY}),
     * 1 to 1,000,000, has its key sent with the load (at most 1024 keys per keyspace and report): where a
     * hot range's load halves, for a split point.
     */
    public Builder loadSampleEvery(int every) {
      if (every < 1 || every > 1_000_000) {
        throw new IllegalArgumentException("loadSampleEvery: must be 1 to 1000000 (one call in that many is "
            + "sampled), got " + every);
      }
      this.loadSampleEvery = every;
      return this;
    }

    public ClientOptions build() {
      if (targets == null) {
        throw new IllegalArgumentException("targets: at least one directory server (host:port) is required");
      }
      if (channelFactory == PLAINTEXT) {
        for (String t : targets) {
          int c = t.lastIndexOf(':');
          if (c <= 0 || !t.substring(c + 1).matches("\\d{1,5}")) {
            throw new IllegalArgumentException("targets: '" + t + "' is not host:port");
          }
        }
      }
      if (keyspaces.isEmpty()) {
        throw new IllegalArgumentException("keyspaces: follow at least one keyspace");
      }
      return new ClientOptions(this);
    }

    private static Duration positive(String name, Duration d) {
      if (d == null || d.isZero() || d.isNegative()) {
        throw new IllegalArgumentException(name + ": must be a positive duration, got " + d);
      }
      return d;
    }
  }
}
