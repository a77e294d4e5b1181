package io.shardmap.catalog;

import static io.shardmap.catalog.MapEdits.keyspaceOf;
import static io.shardmap.catalog.MapEdits.registered;

import io.shardmap.catalog.MapEdits.Edit;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.GeoTable;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.Set;

/**
 * The map edits of geographic keyspaces: the initial regions, setting and removing a region, and a move's
 * cutover of a region. Each edit is a pure plan over a snapshot and the keyspace's moving markers (see
 * {@link MapEdits} for the rules every edit keeps); reached through {@link MapEdits#forStrategy} or the
 * typed accessor.
 */
public final class GeoEdits extends StrategyEditsBase {
  GeoEdits(MapEdits edits) {
    super(edits, Strategy.STRATEGY_GEOGRAPHIC);
  }

  @Override
  public void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
                     Set<String> owners, int maxTxnOps) {
    StrategyEdits.requireOnly(req, "regions");
    if (req.getRegionsCount() == 0) {
      throw ShardmapException.invalid("regions", "a geographic keyspace needs at least one region");
    }
    GeoLayout.Builder g = GeoLayout.newBuilder();
    for (int i = 0; i < req.getRegionsCount(); i++) {
      RegionAssignment r = req.getRegions(i);
      Names.region("regions[" + i + "].region", r.getRegion());
      owners.add(registered(snap, "regions[" + i + "].shard", r.getShard()));
      g.addRegions(RegionAssignment.newBuilder().setRegion(r.getRegion()).setShard(r.getShard())
          .setEpoch(1));
    }
    String def = req.getDefaultRegion().isEmpty() ? req.getRegions(0).getRegion() : req.getDefaultRegion();
    Names.region("default_region", def);
    g.setDefaultRegion(def);
    GeoTable.of(g.build(), 0);
    txn.put(paths.layout(spec.getName()), bytes(g.build()));
  }

  /**
   * Routes {@code region} to registered {@code shard} (adding the region if new), and makes it the default
   * region if asked: unknown regions then change owner with it, so its epoch passes every epoch they could
   * have had. Refused while any region of the keyspace is being moved: listing a region, or changing the
   * default, changes which keys the default region's unit holds (the guard compare makes it race-free).
   */
  public Edit<GeoLayout> setRegion(DirectorySnapshot snap, MovingMarkers markers, ReferenceTables refs, String ks,
                                   String regionName, String shardName, boolean makeDefault) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_GEOGRAPHIC);
    markers.refuseAny("region");
    String region = Names.region("region", regionName);
    String shard = registered(snap, "shard", shardName);
    GeoLayout g = k.geo().layout();
    Route current = k.geo().route(region);
    boolean known = k.geo().regions().containsKey(region);
    if (known && current.shard().equals(shard) && (!makeDefault || g.getDefaultRegion().equals(region))) {
      throw ShardmapException.precondition("region '" + region + "' already routes to '" + shard + "'");
    }
    long epoch = current.shard().equals(shard) ? current.epoch() : current.epoch() + 1;
    GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(makeDefault ? region : g.getDefaultRegion());
    boolean replaced = false;
    for (RegionAssignment r : g.getRegionsList()) {
      if (r.getRegion().equals(region)) {
        next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
        replaced = true;
      } else {
        next.addRegions(r);
      }
    }
    if (!replaced) {
      next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
    }
    GeoLayout layout = next.build();
    if (makeDefault && !g.getDefaultRegion().equals(region)) {
      // Unknown regions change owner with the default: bump past every epoch they could have had.
      long max = 0;
      for (RegionAssignment r : layout.getRegionsList()) {
        max = Math.max(max, r.getEpoch());
      }
      GeoLayout.Builder bumped = layout.toBuilder();
      for (int i = 0; i < bumped.getRegionsCount(); i++) {
        if (bumped.getRegions(i).getRegion().equals(region)) {
          bumped.setRegions(i, bumped.getRegions(i).toBuilder().setEpoch(max + 1));
        }
      }
      layout = bumped.build();
    }
    Txn.Builder txn = layoutTxn(k, layout).compare(markers.unchangedSince(paths));
    guardOwners(txn, ks, Set.of(shard), refs);
    return new Edit<>(txn.build(), layout);
  }

  /**
   * Removes a region (not the default one): its keys route to the default region, whose epoch passes theirs.
   * Refused while any region of the keyspace is being moved, as {@link #setRegion}.
   */
  public Edit<GeoLayout> removeRegion(DirectorySnapshot snap, MovingMarkers markers, String ks, String regionName) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_GEOGRAPHIC);
    markers.refuseAny("region");
    String region = Names.region("region", regionName);
    GeoLayout g = k.geo().layout();
    Route removed = k.geo().regions().get(region);
    if (removed == null) {
      throw ShardmapException.notFound("region: '" + region + "' is not a region of keyspace '" + ks + "'");
    }
    if (g.getDefaultRegion().equals(region)) {
      throw ShardmapException.precondition("region: '" + region + "' is the default region; make "
          + "another region the default first");
    }
    GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(g.getDefaultRegion());
    for (RegionAssignment r : g.getRegionsList()) {
      if (r.getRegion().equals(region)) {
        continue;
      }
      if (r.getRegion().equals(g.getDefaultRegion())) {
        // The removed region's keys now route here: its epoch passes theirs.
        next.addRegions(r.toBuilder().setEpoch(Math.max(r.getEpoch(), removed.epoch()) + 1));
      } else {
        next.addRegions(r);
      }
    }
    GeoLayout layout = next.build();
    return new Edit<>(layoutTxn(k, layout).compare(markers.unchangedSince(paths)).build(), layout);
  }

  /**
   * The cutover of geographic region {@code region} (as read at {@code layoutRevision}) to {@code target} at
   * its epoch + 1. For the default region the unlisted names move with it and route at that epoch too.
   */
  public Txn.Builder handOverRegion(Txn.Builder txn, String ks, GeoLayout g, long layoutRevision, String region,
                                    String target) {
    GeoLayout.Builder next = g.toBuilder();
    for (int i = 0; i < next.getRegionsCount(); i++) {
      RegionAssignment r = next.getRegions(i);
      if (r.getRegion().equals(region)) {
        next.setRegions(i, r.toBuilder().setShard(target).setEpoch(r.getEpoch() + 1));
      }
    }
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision)).put(paths.layout(ks), bytes(next.build()));
  }
}
