package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.Records;
import io.shardmap.core.Ring;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingNodeUnit;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * A virtual node joining or leaving a consistent-hash ring, and the arc that changes owner with it. One at a
 * time per keyspace (one marker). The cutover reads the ring again and requires the same arc, successor
 * and epoch as planned.
 */
final class RingNodeMove extends UnitKindBase {
  RingNodeMove() {
    super(Strategy.STRATEGY_CONSISTENT_HASH, MigrationUnit.KindCase.RING_NODE, "ring node", "a ring node joining or leaving", true);
  }

  @Override
  public boolean requested(MoveSpec spec) {
    return spec.ringJoin() || spec.ringLeave() != null;
  }

  @Override
  public String field(MoveSpec spec) {
    return spec.ringJoin() ? "ringJoin" : "ringLeave";
  }

  @Override
  public Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ctx.paths();
    KeyValue kv = BucketMove.layout(ctx, ks);
    RingLayout layout = Records.decode(kv, RingLayout.parser());
    KeyValue marker = ctx.one(paths.movingRing(ks.getName()));
    String field = field(spec);
    if (marker != null) {
      throw ShardmapException.precondition(field + ": a ring node of keyspace '" + ks.getName() + "' is already "
          + "joining or leaving (migration '" + marker.valueUtf8() + "'); nodes join and leave one at a time");
    }
    RingNodes.Change c;
    String source;
    String target;
    long epoch;
    if (spec.ringJoin()) {
      target = spec.target();
      ctx.requireShard("target", target);
      if (RingNodes.vnodes(layout, target) >= Ring.MAX_VNODES_PER_SHARD) {
        throw ShardmapException.precondition("ringJoin: shard '" + target + "' already has the most virtual nodes a "
            + "shard can have (" + Ring.MAX_VNODES_PER_SHARD + ")");
      }
      c = RingNodes.join(layout, target);
      String node = target + "#" + c.node().vnode();
      if (c.collides()) {
        throw ShardmapException.precondition("ringJoin: ring node " + node + " would sit at the position of "
            + c.successor().shard() + "#" + c.successor().vnode() + "; give the shard another name");
      }
      if (c.successor().shard().equals(target)) {
        throw ShardmapException.precondition("ringJoin: ring node " + node + " would take its arc from "
            + target + "#" + c.successor().vnode() + ", a node of the same shard, so no data moves; add it with "
            + "shardmapctl (AddRingNodes)");
      }
      source = c.successor().shard();
      epoch = c.successor().epoch();
    } else {
      source = spec.ringLeave();
      c = RingNodes.leave(layout, source);
      if (c == null) {
        throw ShardmapException.notFound("ringLeave: shard '" + source + "' has no node on the ring of keyspace '"
            + ks.getName() + "'");
      }
      String node = source + "#" + c.node().vnode();
      if (c.successor().equals(c.node())) {
        throw ShardmapException.precondition("ringLeave: " + node + " is the last node of the ring of keyspace '"
            + ks.getName() + "'; a ring needs one");
      }
      target = c.successor().shard();
      if (target.equals(source)) {
        throw ShardmapException.precondition("ringLeave: ring node " + node + " hands its arc to " + source + "#"
            + c.successor().vnode() + ", a node of the same shard, so no data moves; remove it with shardmapctl "
            + "(RemoveRingNodes)");
      }
      if (spec.target() != null && !spec.target().equals(target)) {
        throw ShardmapException.precondition("target: ring node " + node + " hands its arc to the shard of the node "
            + "after it, '" + target + "', not '" + spec.target() + "'; leave the target out");
      }
      ctx.requireShard("target", target);
      epoch = c.node().epoch();
    }
    MigrationUnit unit = MigrationUnit.newBuilder().setRingNode(RingNodeUnit.newBuilder()
        .setShard(c.node().shard()).setVnode(c.node().vnode()).setRemove(!spec.ringJoin())
        .setArcAfter(c.after()).setArcUpTo(c.upTo()).setSuccessorShard(c.successor().shard())
        .setSuccessorVnode(c.successor().vnode())).build();
    return new Proposal(source, target, epoch, kv.modRevision(), null, unit,
        List.of(Compare.modRevision(paths.layout(ks.getName()), kv.modRevision())),
        List.of(paths.movingRing(ks.getName())), List.of());
  }

  @Override
  public List<String> markers(CatalogPaths paths, Migration m) {
    return List.of(paths.movingRing(m.getKeyspace()));
  }

  @Override
  public String handOver(CutoverContext ctx, Migration m, Txn.Builder txn) {
    String ks = m.getKeyspace();
    KeyValue kv = ctx.one(ctx.paths().layout(ks));
    if (kv == null) {
      return "the keyspace's layout record is gone";
    }
    RingLayout layout = Records.decode(kv, RingLayout.parser());
    RingNodeUnit u = m.getUnit().getRingNode();
    RingNodes.Change now = u.getRemove() ? RingNodes.leave(layout, u.getShard()) : RingNodes.join(layout, u.getShard());
    long epoch = now == null ? -1 : u.getRemove() ? now.node().epoch() : now.successor().epoch();
    if (now == null || now.node().vnode() != u.getVnode() || now.after() != u.getArcAfter()
        || now.upTo() != u.getArcUpTo() || !now.successor().shard().equals(u.getSuccessorShard())
        || now.successor().vnode() != u.getSuccessorVnode() || epoch != m.getRangeEpoch()) {
      return "the ring no longer has ring node " + u.getShard() + "#" + u.getVnode() + "'s arc as planned";
    }
    ctx.edits().ring().handOverRingNode(txn, ks, layout, kv.modRevision(), u.getShard(), !u.getRemove());
    return null;
  }

  @Override
  public MoveUnit unit(Migration m) {
    return new MoveUnit.Arc(m.getUnit().getRingNode().getArcAfter(), m.getUnit().getRingNode().getArcUpTo());
  }

  @Override
  public String describe(Migration m) {
    RingNodeUnit r = m.getUnit().getRingNode();
    return "ring node " + r.getShard() + "#" + r.getVnode() + (r.getRemove() ? " leaves" : " joins");
  }

  /**
   * A node leaving hands its arc to its successor at max(both epochs) + 1, which is only known at the
   * switch: there no bound (any epoch above the fence's).
   */
  @Override
  public long returnEpoch(Migration m) {
    return m.getUnit().getRingNode().getRemove() ? Long.MAX_VALUE : m.getRangeEpoch() + 1;
  }

  @Override
  public String fenceWording(Migration m) {
    RingNodeUnit u = m.getUnit().getRingNode();
    return "ring node " + u.getShard() + "#" + u.getVnode() + "'s arc";
  }
}
