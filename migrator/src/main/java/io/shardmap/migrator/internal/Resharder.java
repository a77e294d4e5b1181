package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.KeyspaceRead;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.Records;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Ring;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.KeyValue;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Decides the moves that add a shard to, or remove one from, a hash or consistent-hash keyspace.
 *
 * <p>Hash: adding gives the new shard N / (owners + 1) buckets, each taken from the shard that owns the
 * most at that point; removing gives each of the shard's buckets to the shard that owns the fewest. The
 * list is fixed up front (buckets move independently).
 *
 * <p>Ring: adding joins the shard's nodes one at a time, removing makes its nodes leave one at a time,
 * each step decided on the layout as the previous step left it (a node's arc depends on its neighbours).
 * A node whose arc stays within its own shard (its successor is a node of the same shard) moves no data:
 * its layout change is written here directly, by the admin API's own edit ({@link MapEdits}).
 */
public final class Resharder {
  private final MigrationStore ms;

  public Resharder(MigrationStore ms) {
    this.ms = ms;
  }

  /** One bucket to move and where. */
  public record BucketMove(int bucket, String from, String to) {}

  /** The next ring step: a node joining or leaving, and whether data moves (else it is applied already). */
  public record RingStep(String shard, int vnode, boolean join, String from, String to, boolean movesData) {}

  public KeyspaceSpec spec(String keyspace, Strategy... allowed) {
    KeyValue kv = UnitRecords.planningRead(ms, ms.paths().spec(keyspace));
    if (kv == null) {
      throw ShardmapException.notFound("keyspace: no keyspace '" + keyspace + "'");
    }
    KeyspaceSpec spec = Records.decode(kv, KeyspaceSpec.parser());
    if (!List.of(allowed).contains(spec.getStrategy())) {
      throw ShardmapException.precondition("keyspace: '" + keyspace + "' uses " + spec.getStrategy()
          + "; resharding adds or removes shards of STRATEGY_HASH and STRATEGY_CONSISTENT_HASH keyspaces");
    }
    return spec;
  }

  private KeyValue layout(String keyspace) {
    KeyValue kv = UnitRecords.planningRead(ms, ms.paths().layout(keyspace));
    if (kv == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace: '" + keyspace + "' has no layout record");
    }
    return kv;
  }

  /** The bucket moves that add {@code shard} to (or remove it from) a hash keyspace. */
  public List<BucketMove> hashMoves(String keyspace, String shard, boolean add) {
    HashLayout h = Records.decode(layout(keyspace), HashLayout.parser());
    Map<String, List<Integer>> owned = new LinkedHashMap<>();
    for (int i = 0; i < h.getBucketsCount(); i++) {
      owned.computeIfAbsent(h.getBuckets(i).getShard(), s -> new ArrayList<>()).add(i);
    }
    List<BucketMove> out = new ArrayList<>();
    if (add) {
      if (owned.containsKey(shard)) {
        throw ShardmapException.precondition("shard: '" + shard + "' already owns buckets " + owned.get(shard)
            + " of keyspace '" + keyspace + "'");
      }
      int share = h.getBucketsCount() / (owned.size() + 1);
      if (share == 0) {
        throw ShardmapException.precondition("shard: keyspace '" + keyspace + "' has " + h.getBucketsCount()
            + " buckets, too few to give one to a shard beside " + owned.size() + " owners; reshard it to more "
            + "buckets first (ReshardHash)");
      }
      for (int n = 0; n < share; n++) {
        // Take from the most loaded owner (ties: the first listed), its highest bucket.
        String from = owned.entrySet().stream().max(Comparator.comparingInt(e -> e.getValue().size()))
            .orElseThrow().getKey();
        List<Integer> b = owned.get(from);
        out.add(new BucketMove(b.remove(b.size() - 1), from, shard));
      }
      return out;
    }
    List<Integer> mine = owned.remove(shard);
    if (mine == null) {
      throw ShardmapException.notFound("shard: '" + shard + "' owns no bucket of keyspace '" + keyspace + "'");
    }
    if (owned.isEmpty()) {
      throw ShardmapException.precondition("shard: '" + shard + "' owns every bucket of keyspace '" + keyspace
          + "'; there is no other shard to move them to");
    }
    for (int b : mine) {
      String to = owned.entrySet().stream().min(Comparator.comparingInt(e -> e.getValue().size())).orElseThrow()
          .getKey();
      owned.get(to).add(b);
      out.add(new BucketMove(b, shard, to));
    }
    return out;
  }

  /** How many nodes {@code shard} has on the ring. */
  public int vnodes(String keyspace, String shard) {
    return RingNodes.vnodes(Records.decode(layout(keyspace), RingLayout.parser()), shard);
  }

  /** The share of the ring (hash space) that changes owner if {@code shard} gets {@code count} more nodes, or loses all. */
  public double ringMovedFraction(String keyspace, String shard, boolean add, int count) {
    Ring before = Ring.of(Records.decode(layout(keyspace), RingLayout.parser()), 0);
    Ring after = Ring.of(add ? before.withAddedNodes(shard, count) : before.withRemovedNodes(shard, 0), 0);
    return Ring.movedFraction(before, after);
  }

  /**
   * The next node of {@code shard} to join (or leave) the ring. When its arc stays with its own shard, the
   * layout change is written here ({@link MapEdits#addRingNodes} / {@link MapEdits#removeRingNodes} of one
   * node, the admin API's edits with their guards) and the step says no data moves; otherwise the caller
   * moves it with a migration.
   */
  public RingStep nextRingStep(String keyspace, String shard, boolean join) {
    RingStep[] moves = {null};
    RingStep written = ms.txns(16).build().update("ring node of " + keyspace + (join ? " joining" : " leaving"), () -> {
      spec(keyspace, Strategy.STRATEGY_CONSISTENT_HASH);
      KeyspaceRead read = ms.readKeyspace(keyspace);
      RingLayout layout = read.snapshot().keyspace(keyspace).ring().layout();
      RingNodes.Change c = join ? RingNodes.join(layout, shard) : RingNodes.leave(layout, shard);
      if (c == null) {
        throw ShardmapException.notFound("shard: '" + shard + "' has no node on the ring of keyspace '" + keyspace + "'");
      }
      if (c.collides()) {
        throw ShardmapException.precondition("shard: ring node " + shard + "#" + c.node().vnode() + " would sit at the "
            + "position of " + c.successor().shard() + "#" + c.successor().vnode());
      }
      if (!join && c.successor().equals(c.node())) {
        throw ShardmapException.precondition("shard: '" + shard + "' holds the last node of the ring of keyspace '"
            + keyspace + "'; a ring needs one");
      }
      String other = c.successor().shard();
      if (!other.equals(shard)) {
        moves[0] = new RingStep(shard, c.node().vnode(), join, join ? other : shard, join ? shard : other, true);
        return null;
      }
      MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = join
          ? ms.edits().ring().addRingNodes(read.snapshot(), read.markers(), read.references(), keyspace, shard, 1, "shard")
          : ms.edits().ring().removeRingNodes(read.snapshot(), read.markers(), keyspace, shard, 1, "shard");
      return new CatalogTxns.Plan<>(e.txn(), rev -> new RingStep(shard, c.node().vnode(), join, shard, shard, false));
    }, CatalogTxns.FRESH_READS);
    return written != null ? written : moves[0];
  }
}
