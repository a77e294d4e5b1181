package io.shardmap.catalog;

import static io.shardmap.catalog.MapEdits.keyspaceOf;
import static io.shardmap.catalog.MapEdits.registered;

import io.shardmap.catalog.MapEdits.Edit;
import io.shardmap.catalog.MapEdits.LayoutChange;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The map edits of hash keyspaces: the initial buckets, reassigning a bucket, resharding, and a move's
 * cutover of a bucket. Each edit is a pure plan over a snapshot and the keyspace's moving markers (see
 * {@link MapEdits} for the rules every edit keeps); reached through {@link MapEdits#forStrategy} or the
 * typed accessor.
 */
public final class HashEdits extends StrategyEditsBase {
  HashEdits(MapEdits edits) {
    super(edits, Strategy.STRATEGY_HASH);
  }

  @Override
  public void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
                     Set<String> owners, int maxTxnOps) {
    StrategyEdits.requireOnly(req, "hash_buckets");
    if (req.getHashBucketsCount() == 0 || req.getHashBucketsCount() > HashTable.MAX_BUCKETS) {
      throw ShardmapException.invalid("hash_buckets", "a hash keyspace needs 1 to "
          + HashTable.MAX_BUCKETS + " buckets (one shard name each), got " + req.getHashBucketsCount());
    }
    HashLayout.Builder h = HashLayout.newBuilder();
    for (int i = 0; i < req.getHashBucketsCount(); i++) {
      String s = registered(snap, "hash_buckets[" + i + "]", req.getHashBuckets(i));
      owners.add(s);
      h.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(1));
    }
    txn.put(paths.layout(spec.getName()), bytes(h.build()));
  }

  /** Gives hash bucket {@code bucket} to {@code target} at epoch + 1. */
  public Edit<BucketAssignment> reassignBucket(DirectorySnapshot snap, MovingMarkers markers, ReferenceTables refs,
                                               String ks, int bucket, String target, long expectedEpoch) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_HASH);
    HashLayout h = k.hash().layout();
    if (bucket < 0 || bucket >= h.getBucketsCount()) {
      throw ShardmapException.invalid("bucket", "must be 0-" + (h.getBucketsCount() - 1) + ", got " + bucket);
    }
    registered(snap, "shard", target);
    BucketAssignment b = h.getBuckets(bucket);
    String marker = paths.movingBucket(ks, bucket);
    markers.refuse(marker, "bucket", "bucket " + bucket);
    if (expectedEpoch != 0 && expectedEpoch != b.getEpoch()) {
      throw ShardmapException.precondition("expected_epoch: bucket " + bucket + " is at epoch "
          + b.getEpoch() + ", not " + expectedEpoch);
    }
    if (b.getShard().equals(target)) {
      throw ShardmapException.precondition("shard: bucket " + bucket + " is already owned by '" + target + "'");
    }
    BucketAssignment nb = BucketAssignment.newBuilder().setShard(target).setEpoch(b.getEpoch() + 1).build();
    HashLayout next = h.toBuilder().setBuckets(bucket, nb).build();
    // Race-free like a range's: the migrator's marker transaction compares the layout's mod revision.
    Txn.Builder txn = layoutTxn(k, next).compare(Compare.absent(marker));
    guardOwners(txn, ks, Set.of(target), refs);
    return new Edit<>(txn.build(), nb);
  }

  /** Replaces every bucket (the new list names a registered shard per bucket); every epoch passes all old ones. */
  public Edit<LayoutChange<HashLayout>> reshardHash(DirectorySnapshot snap, MovingMarkers markers,
                                                    ReferenceTables refs, String ks, List<String> buckets) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_HASH);
    HashLayout h = k.hash().layout();
    markers.refuseAny("buckets");
    int n = buckets.size();
    if (n == 0 || n > HashTable.MAX_BUCKETS) {
      throw ShardmapException.invalid("buckets", "1 to " + HashTable.MAX_BUCKETS + " buckets, got " + n);
    }
    Set<String> owners = new LinkedHashSet<>();
    List<String> before = new ArrayList<>();
    long maxEpoch = 0;
    for (BucketAssignment b : h.getBucketsList()) {
      before.add(b.getShard());
      maxEpoch = Math.max(maxEpoch, b.getEpoch());
    }
    for (int i = 0; i < n; i++) {
      owners.add(registered(snap, "buckets[" + i + "]", buckets.get(i)));
    }
    if (before.equals(buckets)) {
      throw ShardmapException.precondition("buckets: the keyspace already has exactly these buckets");
    }
    // Every bucket's keys may have changed owner, so every epoch moves past all previous ones.
    HashLayout.Builder next = HashLayout.newBuilder();
    for (String s : buckets) {
      next.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(maxEpoch + 1));
    }
    double moved = HashTable.movedFraction(before, buckets);
    HashLayout layout = next.build();
    Txn.Builder txn = layoutTxn(k, layout).compare(markers.unchangedSince(paths));
    guardOwners(txn, ks, owners, refs);
    return new Edit<>(txn.build(), new LayoutChange<>(layout, moved));
  }

  /** The cutover of hash bucket {@code bucket} (as read at {@code layoutRevision}) to {@code target}, epoch + 1. */
  public Txn.Builder handOverBucket(Txn.Builder txn, String ks, HashLayout h, long layoutRevision, int bucket,
                                    String target) {
    BucketAssignment b = h.getBuckets(bucket);
    HashLayout next = h.toBuilder().setBuckets(bucket, BucketAssignment.newBuilder().setShard(target)
        .setEpoch(b.getEpoch() + 1)).build();
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision)).put(paths.layout(ks), bytes(next));
  }
}
