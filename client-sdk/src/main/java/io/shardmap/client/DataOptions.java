package io.shardmap.client;

import com.zaxxer.hikari.HikariConfig;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiConsumer;

/**
 * Immutable settings of {@link ShardmapData} from {@link #builder()}, which rejects bad values at once
 * with a message naming the option. Credentials are not part of the map (etcd holds endpoints only).
 */
public final class DataOptions {
  private final String user;
  private final String password;
  private final int maxPoolSize;
  private final int minIdle;
  private final Duration connectionTimeout;
  private final Duration replicaConnectionTimeout;
  private final Duration staleRouteTimeout;
  private final int maxAttempts;
  private final Map<String, String> properties;
  private final BiConsumer<String, HikariConfig> poolCustomizer;

  private DataOptions(Builder b) {
    user = b.user;
    password = b.password;
    maxPoolSize = b.maxPoolSize;
    minIdle = b.minIdle;
    connectionTimeout = b.connectionTimeout;
    replicaConnectionTimeout = b.replicaConnectionTimeout;
    staleRouteTimeout = b.staleRouteTimeout;
    maxAttempts = b.maxAttempts;
    properties = Map.copyOf(b.properties);
    poolCustomizer = b.poolCustomizer;
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
  /** Runs of one call at most, first run included. */
  public int maxAttempts() { return maxAttempts; }
  /** PostgreSQL JDBC driver properties applied to every pool. */
  public Map<String, String> properties() { return properties; }
  /** Null, or a hook called with (shard, config) before each pool is created. */
  public BiConsumer<String, HikariConfig> poolCustomizer() { return poolCustomizer; }

  public static final class Builder {
    private String user;
    private String password;
    private int maxPoolSize = 10;
    private int minIdle = 0;
    private Duration connectionTimeout = Duration.ofSeconds(5);
    private Duration replicaConnectionTimeout = Duration.ofMillis(500);
    private Duration staleRouteTimeout = Duration.ofSeconds(5);
    private int maxAttempts = 5;
    private final Map<String, String> properties = new LinkedHashMap<>();
    private BiConsumer<String, HikariConfig> poolCustomizer;

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

    /** Adjusts each pool's HikariCP config before it opens; called with the shard name. */
    public Builder poolCustomizer(BiConsumer<String, HikariConfig> customizer) {
      this.poolCustomizer = Objects.requireNonNull(customizer, "poolCustomizer");
      return this;
    }

    public DataOptions build() {
      if (user == null) {
        throw new IllegalArgumentException("user: a PostgreSQL role name is required");
      }
      if (minIdle > maxPoolSize) {
        throw new IllegalArgumentException("minIdle: " + minIdle + " is above maxPoolSize " + maxPoolSize);
      }
      return new DataOptions(this);
    }

    private static Duration atLeast(String name, Duration d, Duration min) {
      if (d == null || d.compareTo(min) < 0) {
        throw new IllegalArgumentException(name + ": must be at least " + min.toMillis() + " ms, got " + d);
      }
      return d;
    }
  }
}
