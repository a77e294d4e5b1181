package io.shardmap.client;

import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Immutable client settings from {@link #builder()}, which rejects bad values at once with a message
 * naming the option.
 */
public final class ClientOptions {
  private final List<String> targets;
  private final Set<String> keyspaces;
  private final Duration rpcTimeout;
  private final Duration startTimeout;
  private final Duration maxStaleness;
  private final Duration initialBackoff;
  private final Duration maxBackoff;

  private ClientOptions(Builder b) {
    targets = List.copyOf(b.targets);
    keyspaces = Set.copyOf(b.keyspaces);
    rpcTimeout = b.rpcTimeout;
    startTimeout = b.startTimeout;
    maxStaleness = b.maxStaleness;
    initialBackoff = b.initialBackoff;
    maxBackoff = b.maxBackoff;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Directory servers as host:port, tried in order, moving on when one fails. */
  public List<String> targets() { return targets; }
  public Set<String> keyspaces() { return keyspaces; }
  public Duration rpcTimeout() { return rpcTimeout; }
  public Duration startTimeout() { return startTimeout; }
  /** Null when lookups never fail for staleness. */
  public Duration maxStaleness() { return maxStaleness; }
  public Duration initialBackoff() { return initialBackoff; }
  public Duration maxBackoff() { return maxBackoff; }

  public static final class Builder {
    private List<String> targets;
    private final Set<String> keyspaces = new LinkedHashSet<>();
    private Duration rpcTimeout = Duration.ofSeconds(5);
    private Duration startTimeout = Duration.ofSeconds(30);
    private Duration maxStaleness;
    private Duration initialBackoff = Duration.ofMillis(50);
    private Duration maxBackoff = Duration.ofSeconds(2);

    private Builder() {}

    /** One or more directory servers, {@code host:port}. */
    public Builder targets(List<String> hostPorts) {
      if (hostPorts == null || hostPorts.isEmpty()) {
        throw new IllegalArgumentException("targets: at least one directory server (host:port) is required");
      }
      for (String t : hostPorts) {
        int c = t == null ? -1 : t.lastIndexOf(':');
        if (c <= 0 || !t.substring(c + 1).matches("\\d{1,5}")) {
          throw new IllegalArgumentException("targets: '" + t + "' is not host:port");
        }
      }
      this.targets = List.copyOf(hostPorts);
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
     * UNAVAILABLE instead of answering from an old map. Unset: always answer from the last map.
     */
    public Builder maxStaleness(Duration d) {
      this.maxStaleness = positive("maxStaleness", d);
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

    public ClientOptions build() {
      if (targets == null) {
        throw new IllegalArgumentException("targets: at least one directory server (host:port) is required");
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
