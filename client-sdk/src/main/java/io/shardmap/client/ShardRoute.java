package io.shardmap.client;

import io.shardmap.core.Route;

/**
 * Where a key lives, as of the map that routed it: the owning shard and the epoch of the map entry that
 * routed the key (a range, hash bucket, ring segment, directory entry or region). Immutable. The epoch
 * of a key's entry never decreases and grows whenever its owner changes, so of two routes of one key the
 * one with the higher epoch is the newer. A shard's endpoints are in {@link ShardmapClient#shard(String)}.
 *
 * <p>Routes of the local map are shared: {@link ShardmapClient#route(String, long)} returns the same
 * instance for every key of one map entry, and allocates nothing.
 *
 * @param keyspace the keyspace of the key
 * @param shard the name of the owning shard
 * @param epoch the epoch of the map entry that routed the key
 * @param range the entry's key range, for keyspaces of the range strategy; null for the other strategies
 * @param entryRevision the etcd revision that last wrote the entry; 0 when the client does not know it
 */
public record ShardRoute(String keyspace, String shard, long epoch, KeyRangeView range, long entryRevision) {

  /** The SDK's route for a core route of {@code keyspace}, made once per map entry (see {@link Route#derived}). */
  static ShardRoute of(String keyspace, boolean integerKeys, Route r) {
    ShardRoute kept = r.derived(ShardRoute.class);
    if (kept != null) {
      return kept; // the lookup path: no allocation
    }
    return r.derived(ShardRoute.class, x -> new ShardRoute(keyspace, x.shard(), x.epoch(),
        x.range() == null ? null : new KeyRangeView(x.range(), integerKeys), x.modRevision()));
  }
}
