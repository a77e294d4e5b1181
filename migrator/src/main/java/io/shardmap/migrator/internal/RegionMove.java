package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.Records;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.GeoRegionUnit;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.List;

/**
 * One region of a geographic keyspace: the rows whose key is the region's name, and for the default region
 * every row whose key names no listed region. It lives in the layout record, which other regions' cutovers
 * rewrite while it moves: the cutover reads the layout again and checks the region still has the planned
 * owner and epoch and, for the default region, that it is still the default with the same other regions
 * (the admin API refuses SetRegion and RemoveRegion while any region of the keyspace is marked, so only a
 * hand edit could change those).
 */
final class RegionMove extends UnitKindBase {
  RegionMove() {
    super(Strategy.STRATEGY_GEOGRAPHIC, MigrationUnit.KindCase.REGION, "region", "a region", true);
  }

  @Override
  public boolean requested(MoveSpec spec) {
    return spec.region() != null;
  }

  @Override
  public Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ctx.paths();
    String region = Names.region("region", spec.region());
    KeyValue kv = BucketMove.layout(ctx, ks);
    GeoLayout g = Records.decode(kv, GeoLayout.parser());
    RegionAssignment r = find(g, region);
    if (r == null) {
      throw ShardmapException.notFound("region: '" + region + "' is not a region of keyspace '" + ks.getName()
          + "' (unlisted names route with the default region '" + g.getDefaultRegion() + "': move that, or list "
          + "the region first)");
    }
    KeyValue marker = ctx.one(paths.movingRegion(ks.getName(), region));
    if (marker != null) {
      throw ShardmapException.precondition("region: region '" + region + "' of keyspace '" + ks.getName()
          + "' is already being moved by migration '" + marker.valueUtf8() + "'");
    }
    ctx.requireShard("target", spec.target());
    if (r.getShard().equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns region '" + region
          + "' of keyspace '" + ks.getName() + "'");
    }
    boolean isDefault = region.equals(g.getDefaultRegion());
    GeoRegionUnit.Builder u = GeoRegionUnit.newBuilder().setRegion(region).setDefaultRegion(isDefault);
    if (isDefault) {
      u.addAllOtherRegions(others(g, region));
    }
    return new Proposal(r.getShard(), spec.target(), r.getEpoch(), kv.modRevision(), null,
        MigrationUnit.newBuilder().setRegion(u).build(),
        List.of(Compare.modRevision(paths.layout(ks.getName()), kv.modRevision())),
        List.of(paths.movingRegion(ks.getName(), region)), List.of());
  }

  private static RegionAssignment find(GeoLayout g, String region) {
    for (RegionAssignment r : g.getRegionsList()) {
      if (r.getRegion().equals(region)) {
        return r;
      }
    }
    return null;
  }

  private static List<String> others(GeoLayout g, String region) {
    List<String> out = new ArrayList<>();
    for (RegionAssignment r : g.getRegionsList()) {
      if (!r.getRegion().equals(region)) {
        out.add(r.getRegion());
      }
    }
    return out;
  }

  @Override
  public List<String> markers(CatalogPaths paths, Migration m) {
    return List.of(paths.movingRegion(m.getKeyspace(), m.getUnit().getRegion().getRegion()));
  }

  @Override
  public String handOver(CutoverContext ctx, Migration m, Txn.Builder txn) {
    String ks = m.getKeyspace();
    KeyValue kv = ctx.one(ctx.paths().layout(ks));
    if (kv == null) {
      return "the keyspace's layout record is gone";
    }
    GeoLayout g = Records.decode(kv, GeoLayout.parser());
    GeoRegionUnit u = m.getUnit().getRegion();
    RegionAssignment r = find(g, u.getRegion());
    if (r == null) {
      return "region '" + u.getRegion() + "' is no longer listed";
    }
    if (!r.getShard().equals(m.getSource()) || r.getEpoch() != m.getRangeEpoch()) {
      return "region '" + u.getRegion() + "' is now owned by '" + r.getShard() + "' at epoch " + r.getEpoch();
    }
    boolean isDefault = u.getRegion().equals(g.getDefaultRegion());
    if (isDefault != u.getDefaultRegion()
        || (isDefault && !new java.util.HashSet<>(others(g, u.getRegion())).equals(new java.util.HashSet<>(u.getOtherRegionsList())))) {
      return "the regions of the keyspace changed since region '" + u.getRegion() + "' was planned, and with them "
          + "the keys it holds";
    }
    ctx.edits().geo().handOverRegion(txn, ks, g, kv.modRevision(), u.getRegion(), m.getTarget());
    return null;
  }

  @Override
  public MoveUnit unit(Migration m) {
    GeoRegionUnit u = m.getUnit().getRegion();
    return new MoveUnit.Region(u.getRegion(), u.getDefaultRegion(), u.getOtherRegionsList());
  }

  @Override
  public String describe(Migration m) {
    GeoRegionUnit u = m.getUnit().getRegion();
    return "region '" + u.getRegion() + "'" + (u.getDefaultRegion() ? " (default)" : "");
  }
}
