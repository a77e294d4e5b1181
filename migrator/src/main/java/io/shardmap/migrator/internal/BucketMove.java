package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.Records;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashBucketUnit;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * One bucket of a hash keyspace. It lives in the layout record, which other buckets' cutovers rewrite while
 * it moves: the cutover reads the layout again and checks the bucket still has the planned owner and epoch.
 */
final class BucketMove extends UnitKindBase {
  BucketMove() {
    super(Strategy.STRATEGY_HASH, MigrationUnit.KindCase.BUCKET, "bucket", "a bucket", true);
  }

  @Override
  public boolean requested(MoveSpec spec) {
    return spec.bucket() != null;
  }

  static KeyValue layout(PlanContext ctx, KeyspaceSpec ks) {
    KeyValue kv = ctx.one(ctx.paths().layout(ks.getName()));
    if (kv == null) {
      throw new ShardmapException(io.shardmap.core.ErrorCode.INTERNAL, "keyspace: '" + ks.getName()
          + "' has no layout record");
    }
    return kv;
  }

  @Override
  public Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ctx.paths();
    KeyValue kv = layout(ctx, ks);
    HashLayout h = Records.decode(kv, HashLayout.parser());
    int i = spec.bucket();
    if (i >= h.getBucketsCount()) {
      throw ShardmapException.invalid("bucket", "keyspace '" + ks.getName() + "' has buckets 0-"
          + (h.getBucketsCount() - 1) + ", got " + i);
    }
    KeyValue marker = ctx.one(paths.movingBucket(ks.getName(), i));
    if (marker != null) {
      throw ShardmapException.precondition("bucket: bucket " + i + " of keyspace '" + ks.getName()
          + "' is already being moved by migration '" + marker.valueUtf8() + "'");
    }
    BucketAssignment b = h.getBuckets(i);
    ctx.requireShard("target", spec.target());
    if (b.getShard().equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns bucket " + i
          + " of keyspace '" + ks.getName() + "'");
    }
    MigrationUnit unit = MigrationUnit.newBuilder().setBucket(HashBucketUnit.newBuilder().setBucket(i)
        .setBuckets(h.getBucketsCount())).build();
    return new Proposal(b.getShard(), spec.target(), b.getEpoch(), kv.modRevision(), null, unit,
        List.of(Compare.modRevision(paths.layout(ks.getName()), kv.modRevision())),
        List.of(paths.movingBucket(ks.getName(), i)), List.of());
  }

  @Override
  public List<String> markers(CatalogPaths paths, Migration m) {
    return List.of(paths.movingBucket(m.getKeyspace(), m.getUnit().getBucket().getBucket()));
  }

  @Override
  public String handOver(CutoverContext ctx, Migration m, Txn.Builder txn) {
    String ks = m.getKeyspace();
    KeyValue kv = ctx.one(ctx.paths().layout(ks));
    if (kv == null) {
      return "the keyspace's layout record is gone";
    }
    HashLayout h = Records.decode(kv, HashLayout.parser());
    HashBucketUnit u = m.getUnit().getBucket();
    if (h.getBucketsCount() != u.getBuckets()) {
      return "the keyspace now has " + h.getBucketsCount() + " buckets, not " + u.getBuckets();
    }
    BucketAssignment b = h.getBuckets(u.getBucket());
    if (!b.getShard().equals(m.getSource()) || b.getEpoch() != m.getRangeEpoch()) {
      return "bucket " + u.getBucket() + " is now owned by '" + b.getShard() + "' at epoch " + b.getEpoch();
    }
    ctx.edits().hash().handOverBucket(txn, ks, h, kv.modRevision(), u.getBucket(), m.getTarget());
    return null;
  }

  @Override
  public MoveUnit unit(Migration m) {
    return new MoveUnit.Bucket(m.getUnit().getBucket().getBucket(), m.getUnit().getBucket().getBuckets());
  }

  @Override
  public String describe(Migration m) {
    return "bucket " + m.getUnit().getBucket().getBucket() + " of " + m.getUnit().getBucket().getBuckets();
  }
}
