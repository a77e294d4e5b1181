package io.shardmap.client;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * One immutable version of the client's map: the followed keyspaces and the registered shards at one etcd
 * revision ({@link ShardmapClient#snapshot()}, and both sides of a {@link MapListener} call). Routing through
 * it answers as the client did at that revision; it never changes.
 *
 * <p>A directory keyspace the client holds lazily appears with its spec and fallback only:
 * {@link KeyspaceInfo#heldWhole()} is false, and {@link #route} refuses its keys with FAILED_PRECONDITION
 * rather than answer with the fallback for a key that has an entry (use {@link ShardmapClient#route}).
 */
public final class MapView {
  private final DirectorySnapshot map;

  MapView(DirectorySnapshot map) {
    this.map = map;
  }

  /** The etcd revision of the last change this map applied. */
  public long revision() {
    return map.revision();
  }

  /** Names of the followed keyspaces that exist at this revision. */
  public Set<String> keyspaces() {
    return map.keyspaces().keySet();
  }

  /** A keyspace of this map; empty when it does not exist (or is not followed). */
  public Optional<KeyspaceInfo> keyspace(String name) {
    KeyspaceMap k = map.keyspaces().get(name);
    if (k == null) {
      return Optional.empty();
    }
    boolean whole = k.strategy() != Strategy.STRATEGY_DIRECTORY || k.broken() != null || !k.hasLayout()
        || k.directory().entriesHeld();
    return Optional.of(new KeyspaceInfo(k.name(), k.strategy().name().replaceFirst("^STRATEGY_", ""),
        k.keyType() == KeyType.KEY_TYPE_INT64, whole));
  }

  /** The registered shards by name, sorted. */
  public Map<String, ShardInfo> shards() {
    Map<String, ShardInfo> out = new TreeMap<>();
    for (Shard s : map.shards().values()) {
      out.put(s.getName(), ShardInfo.of(s));
    }
    return out;
  }

  /**
   * A registered shard.
   *
   * @throws ShardmapException NOT_FOUND when no shard of that name is registered at this revision
   */
  public ShardInfo shard(String name) {
    return ShardInfo.of(map.shard(name));
  }

  /**
   * Where {@code key} lives in this map.
   *
   * @throws ShardmapException NOT_FOUND for a keyspace this map does not have; INVALID_ARGUMENT for a key of
   *     the other kind; FAILED_PRECONDITION for a keyspace held lazily (see the class comment) or broken
   */
  public ShardRoute route(String keyspace, ShardKey key) {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    KeyspaceMap k = map.keyspace(keyspace);
    boolean integer = k.keyType() == KeyType.KEY_TYPE_INT64;
    if (key.isInteger() != integer) {
      throw ShardmapException.invalid("key", "keyspace '" + keyspace + "' has "
          + (integer ? "INT64" : "BYTES") + " keys, got " + (key.isInteger() ? "an integer" : "a byte string"));
    }
    Route r = integer ? k.route(key.intValue()) : k.route(key.bytesUnsafe());
    return ShardRoute.of(k.name(), integer, r);
  }

  /**
   * The ranges of a range keyspace in key order, each as the route of its keys; empty for the other
   * strategies.
   *
   * @throws ShardmapException NOT_FOUND for a keyspace this map does not have
   */
  public List<ShardRoute> ranges(String keyspace) {
    KeyspaceMap k = map.keyspace(keyspace);
    if (k.strategy() != Strategy.STRATEGY_RANGE || k.broken() != null || !k.hasLayout()) {
      return List.of();
    }
    boolean integer = k.keyType() == KeyType.KEY_TYPE_INT64;
    List<ShardRoute> out = new ArrayList<>();
    for (Route r : k.ranges().routes()) {
      out.add(ShardRoute.of(k.name(), integer, r));
    }
    return List.copyOf(out);
  }

  /** The core map, for this package's tests and internals. */
  DirectorySnapshot core() {
    return map;
  }

  @Override
  public String toString() {
    return "MapView[revision " + map.revision() + ", keyspaces " + keyspaces() + ", shards "
        + map.shards().keySet() + "]";
  }
}
