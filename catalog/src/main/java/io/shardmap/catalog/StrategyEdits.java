package io.shardmap.catalog;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Txn;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The map edits of one strategy, one class each ({@link RangeEdits}, {@link HashEdits}, {@link RingEdits},
 * {@link DirectoryEdits}, {@link GeoEdits}); {@link MapEdits#forStrategy} is the registry. What every
 * strategy's class does is writing a new keyspace's initial layout; the edits particular to a strategy
 * (split, reassign a bucket, ...) are methods of its class, reached through {@link MapEdits}' typed
 * accessors.
 */
public interface StrategyEdits {
  Strategy strategy();

  /**
   * Writes the initial layout of new keyspace {@code spec} (validated) from the request's fields for this
   * strategy into {@code txn}, and adds the shards it names to {@code owners}. Refusals are INVALID_ARGUMENT
   * or NOT_FOUND naming the request field; a field of another strategy is refused.
   *
   * @param maxTxnOps etcd's limit of operations per transaction, which bounds what one create may write
   */
  void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
              Set<String> owners, int maxTxnOps);

  /** Refuses the request fields that do not apply to the keyspace's strategy ({@code allowed}: comma-separated). */
  static void requireOnly(CreateKeyspaceRequest req, String allowed) {
    Map<String, Boolean> set = new TreeMap<>();
    set.put("ranges", req.getRangesCount() > 0);
    set.put("range_shards", req.getRangeShardsCount() > 0);
    set.put("hash_buckets", req.getHashBucketsCount() > 0);
    set.put("ring_shards", req.getRingShardsCount() > 0);
    set.put("fallback_shard", !req.getFallbackShard().isEmpty());
    set.put("regions", req.getRegionsCount() > 0);
    set.put("default_region", !req.getDefaultRegion().isEmpty());
    Set<String> ok = new HashSet<>(List.of(allowed.split(",")));
    if (allowed.equals("regions")) {
      ok.add("default_region");
    }
    for (Map.Entry<String, Boolean> e : set.entrySet()) {
      if (e.getValue() && !ok.contains(e.getKey())) {
        throw ShardmapException.invalid(e.getKey(), "does not apply to " + req.getSpec().getStrategy()
            + " keyspaces (use " + String.join(" or ", ok) + ")");
      }
    }
  }
}
