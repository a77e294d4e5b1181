package io.shardmap.client;

import io.shardmap.client.internal.ClientStats;
import io.shardmap.client.internal.MapFollower;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Shard;
import java.nio.charset.StandardCharsets;
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
 */
public final class ShardmapClient implements AutoCloseable {
  private final ClientOptions options;
  private final MapFollower follower;
  private final long maxStalenessNanos;
  private final ClientStats stats = new ClientStats();

  private ShardmapClient(ClientOptions options) {
    this.options = options;
    this.follower = new MapFollower(options, System::nanoTime);
    this.maxStalenessNanos = options.maxStaleness() == null ? Long.MAX_VALUE : options.maxStaleness().toNanos();
  }

  /**
   * Connects and waits for the first full map.
   *
   * @throws ShardmapException UNAVAILABLE if no directory server delivered a map within the start timeout
   */
  public static ShardmapClient start(ClientOptions options) throws InterruptedException {
    ShardmapClient c = new ShardmapClient(options);
    c.follower.start();
    if (!c.follower.awaitFirstLoad(options.startTimeout().toNanos(), TimeUnit.NANOSECONDS)) {
      c.close();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "no directory server of " + options.targets()
          + " delivered the maps within " + options.startTimeout());
    }
    return c;
  }

  /** Routes an INT64 key. */
  public Route route(String keyspace, long key) {
    return keyspace(keyspace).route(key);
  }

  /** Routes a string key (its UTF-8 bytes) of a BYTES keyspace; for a geographic keyspace, a region. */
  public Route route(String keyspace, String key) {
    return route(keyspace, key.getBytes(StandardCharsets.UTF_8));
  }

  /** Routes a byte-string key of a BYTES keyspace. */
  public Route route(String keyspace, byte[] key) {
    KeyspaceMap k = keyspace(keyspace);
    if (k.keyType() != KeyType.KEY_TYPE_BYTES) {
      throw ShardmapException.invalid("key", "keyspace '" + keyspace + "' has INT64 keys");
    }
    return k.route(Keys.checkBytesKey(key, "key"));
  }

  /** The registration of a shard (its PostgreSQL endpoints), as of the current map. */
  public Shard shard(String name) {
    return current().shard(name);
  }

  /** The current map; immutable. */
  public DirectorySnapshot snapshot() {
    return current();
  }

  /** The etcd revision the client's map reflects. */
  public long revision() {
    return current().revision();
  }

  /** Time since a directory server last confirmed the map current. */
  public Duration staleness() {
    return Duration.ofNanos(follower.ageNanos());
  }

  /** Adds a listener of map changes (see {@link MapListener} for the threading rules). */
  public void addListener(MapListener listener) {
    follower.addListener(listener);
  }

  /** Removes a listener added with {@link #addListener}; it may still receive a change already under way. */
  public void removeListener(MapListener listener) {
    follower.removeListener(listener);
  }

  /** Watch streams that failed and were re-opened. */
  public long reconnects() {
    return follower.reconnects();
  }

  /** Full re-reads the directory asked for. */
  public long resyncs() {
    return follower.resyncs();
  }

  /** Moves to another directory server. */
  public long failovers() {
    return follower.failovers();
  }

  /** A key range in the keyspace's spec syntax, for callers that take ranges from configuration. */
  public KeyRange parseRange(String keyspace, String spec) {
    return KeyRange.parse(keyspace(keyspace).keyType(), spec, "range");
  }

  /** Counters shared with the shard-access layer and the metrics binder. */
  ClientStats stats() {
    return stats;
  }

  ClientOptions options() {
    return options;
  }

  private DirectorySnapshot current() {
    return follower.snapshot();
  }

  private KeyspaceMap keyspace(String name) {
    if (maxStalenessNanos != Long.MAX_VALUE) {
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
    follower.close();
  }
}
