package io.shardmap.core;

/**
 * Where a key lives: the owning shard and the epoch of the map entry that routed it (range, bucket,
 * ring segment, directory entry or region). Immutable and shared: lookups return existing instances,
 * never allocate one.
 *
 * @param range the range, for STRATEGY_RANGE routes; {@code null} for the other strategies
 * @param modRevision the etcd revision that last wrote the entry (0 where unknown, e.g. in an SDK)
 */
public record Route(String shard, long epoch, KeyRange range, long modRevision) {
  public Route {
    if (shard == null || shard.isEmpty()) {
      throw new ShardmapException(ErrorCode.INTERNAL, "a map entry without an owning shard");
    }
    // A map has few shards and many entries: one String per shard name, not one per entry.
    shard = shard.intern();
  }
}
