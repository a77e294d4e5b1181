package io.shardmap.catalog;

import static io.shardmap.catalog.MapEdits.keyspaceOf;
import static io.shardmap.catalog.MapEdits.registered;

import io.shardmap.catalog.MapEdits.Edit;
import io.shardmap.catalog.MapEdits.LayoutChange;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.Ring;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.Set;

/**
 * The map edits of consistent-hash keyspaces: the initial ring, adding and removing virtual nodes, and a
 * move's cutover of one node. Each edit is a pure plan over a snapshot and the keyspace's moving markers
 * (see {@link MapEdits} for the rules every edit keeps); reached through {@link MapEdits#forStrategy} or the
 * typed accessor.
 */
public final class RingEdits extends StrategyEditsBase {
  RingEdits(MapEdits edits) {
    super(edits, Strategy.STRATEGY_CONSISTENT_HASH);
  }

  @Override
  public void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
                     Set<String> owners, int maxTxnOps) {
    StrategyEdits.requireOnly(req, "ring_shards");
    if (req.getRingShardsCount() == 0) {
      throw ShardmapException.invalid("ring_shards", "a consistent-hash keyspace needs at least one shard");
    }
    RingLayout.Builder ring = RingLayout.newBuilder();
    for (int i = 0; i < req.getRingShardsCount(); i++) {
      String s = registered(snap, "ring_shards[" + i + "]", req.getRingShards(i));
      if (!owners.add(s)) {
        throw ShardmapException.invalid("ring_shards[" + i + "]", "shard '" + s + "' is listed twice");
      }
      RingShard.Builder rs = RingShard.newBuilder().setShard(s);
      for (int v = 0; v < spec.getDefaultVnodes(); v++) {
        rs.addVnodeEpochs(1);
      }
      ring.addShards(rs);
    }
    Ring.of(ring.build(), 0);
    txn.put(paths.layout(spec.getName()), bytes(ring.build()));
  }

  /**
   * Adds {@code count} virtual nodes of registered shard {@code shard} to a ring. Refused while a ring
   * node joins or leaves by migration; the transaction compares that marker absent.
   *
   * @param field the request field naming the keyspace in a refusal
   */
  public Edit<LayoutChange<RingLayout>> addRingNodes(DirectorySnapshot snap, MovingMarkers markers,
                                                     ReferenceTables refs, String ks, String shard, int count,
                                                     String field) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_CONSISTENT_HASH);
    registered(snap, "shard", shard);
    markers.refuse(paths.movingRing(ks), field, "a ring node");
    if (count < 1 || count > Ring.MAX_VNODES_PER_SHARD) {
      throw ShardmapException.invalid("vnodes", "must be 1-" + Ring.MAX_VNODES_PER_SHARD + ", got " + count);
    }
    Ring before = k.ring();
    RingLayout layout = before.withAddedNodes(shard, count);
    double moved = Ring.movedFraction(before, Ring.of(layout, 0));
    Txn.Builder txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(ks)));
    guardOwners(txn, ks, Set.of(shard), refs);
    return new Edit<>(txn.build(), new LayoutChange<>(layout, moved));
  }

  /** Removes {@code count} (0: all) virtual nodes of {@code shard} from a ring; see {@link #addRingNodes}. */
  public Edit<LayoutChange<RingLayout>> removeRingNodes(DirectorySnapshot snap, MovingMarkers markers, String ks,
                                                        String shard, int count, String field) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_CONSISTENT_HASH);
    Names.shard("shard", shard);
    markers.refuse(paths.movingRing(ks), field, "a ring node");
    if (count < 0) {
      throw ShardmapException.invalid("vnodes", "must be 0 (all) or a positive count, got " + count);
    }
    Ring before = k.ring();
    RingLayout layout = before.withRemovedNodes(shard, count);
    double moved = Ring.movedFraction(before, Ring.of(layout, 0));
    Txn txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(ks))).build();
    return new Edit<>(txn, new LayoutChange<>(layout, moved));
  }

  /** The cutover of one ring node of {@code shard} joining (or leaving) the ring read at {@code layoutRevision}. */
  public Txn.Builder handOverRingNode(Txn.Builder txn, String ks, RingLayout layout, long layoutRevision,
                                      String shard, boolean join) {
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision))
        .put(paths.layout(ks), bytes(ringStep(layout, shard, join)));
  }

  /** The layout after one node of {@code shard} joins (or leaves): the epoch rules of Add/RemoveRingNodes. */
  public static RingLayout ringStep(RingLayout layout, String shard, boolean join) {
    Ring ring = Ring.of(layout, 0);
    return join ? ring.withAddedNodes(shard, 1) : ring.withRemovedNodes(shard, 1);
  }
}
