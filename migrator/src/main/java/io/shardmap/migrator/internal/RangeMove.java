package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.Records;
import io.shardmap.core.KeyRange;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * A key range of a range keyspace (exactly one range of the map, split out first with {@code --split}). Its
 * record belongs to it alone and the admin API refuses to change it while it is marked, so the cutover
 * compares the mod revision it was planned at.
 */
final class RangeMove extends UnitKindBase {
  RangeMove() {
    super(Strategy.STRATEGY_RANGE, MigrationUnit.KindCase.KIND_NOT_SET, "range", "a range", false);
  }

  @Override
  public boolean requested(MoveSpec spec) {
    return spec.range() != null;
  }

  @Override
  public Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ctx.paths();
    KeyType type = ks.getKeyType();
    KeyRange range = KeyRange.parse(type, spec.range(), "range");
    if (spec.split()) {
      ctx.splitAt(ks.getName(), range.start());
      ctx.splitAt(ks.getName(), range.end());
    }
    KeyValue rangeKv = ctx.one(paths.range(ks.getName(), range.start()));
    Route r = rangeKv == null ? null : KeyspaceMap.rangeRoute(type, Records.decode(rangeKv, RangeAssignment.parser()), 0);
    if (r == null || !r.range().equals(range)) {
      throw ShardmapException.notFound("range: " + range.format(type) + " is not a range of keyspace '"
          + ks.getName() + "'" + (r == null ? "" : " (the range starting there is " + r.range().format(type) + ")")
          + "; pass --split to split it out first");
    }
    KeyValue marker = ctx.one(paths.moving(ks.getName(), range.start()));
    if (marker != null) {
      throw ShardmapException.precondition("range: " + range.format(type) + " of keyspace '" + ks.getName()
          + "' is already being moved by migration '" + marker.valueUtf8() + "'");
    }
    ctx.requireShard("target", spec.target());
    if (r.shard().equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns range "
          + range.format(type) + " of keyspace '" + ks.getName() + "'");
    }
    return new Proposal(r.shard(), spec.target(), r.epoch(), rangeKv.modRevision(), range, null,
        List.of(Compare.modRevision(paths.range(ks.getName(), range.start()), rangeKv.modRevision())),
        List.of(paths.moving(ks.getName(), range.start())), List.of());
  }

  private static KeyRange range(Migration m) {
    return KeyRange.fromProto(m.getKeyType(), m.getRange(), "range");
  }

  @Override
  public List<String> markers(CatalogPaths paths, Migration m) {
    return List.of(paths.moving(m.getKeyspace(), range(m).start()));
  }

  @Override
  public String handOver(CutoverContext ctx, Migration m, Txn.Builder txn) {
    ctx.edits().range().handOverRange(txn, m.getKeyspace(), m.getKeyType(), range(m), m.getRangeModRevision(),
        m.getTarget(), m.getRangeEpoch() + 1);
    return null;
  }

  @Override
  public MoveUnit unit(Migration m) {
    return new MoveUnit.Range(range(m));
  }

  @Override
  public String describe(Migration m) {
    return range(m).format(m.getKeyType());
  }

  @Override
  public String name(Migration m) {
    return "range " + describe(m);
  }

  @Override
  public String fenceWording(Migration m) {
    return unit(m).fenceWording(m.getKeyType() == KeyType.KEY_TYPE_INT64 ? KeyKind.INT64 : KeyKind.BYTEA);
  }
}
