package io.shardmap.core;

import static io.shardmap.core.TestData.INT64;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Acceptance property: for every key, the epoch of its route never decreases, and whenever its owner
 * changes the epoch strictly increases. (Clients rely on it to discard stale cached routes.)
 */
@Tag("unit")
class EpochMonotonicityTest {
  private static final int STEPS = 200;
  private static final int PROBES = 2_000;

  private static long[] probes(long seed) {
    Random rnd = new Random(seed);
    long[] p = new long[PROBES];
    p[0] = Long.MIN_VALUE;
    p[1] = Long.MAX_VALUE;
    p[2] = 0;
    p[3] = -1;
    for (int i = 4; i < PROBES; i++) {
      p[i] = rnd.nextLong();
    }
    return p;
  }

  private static void check(long[] probes, Route[] prev, Route[] next, String step) {
    for (int i = 0; i < probes.length; i++) {
      Route a = prev[i];
      Route b = next[i];
      if (b.epoch() < a.epoch()) {
        fail(step + ": key " + probes[i] + " epoch decreased " + a.epoch() + " -> " + b.epoch() + " (" + a.shard()
            + " -> " + b.shard() + ")");
      }
      if (!a.shard().equals(b.shard()) && b.epoch() <= a.epoch()) {
        fail(step + ": key " + probes[i] + " moved " + a.shard() + " -> " + b.shard()
            + " but its epoch did not increase (" + a.epoch() + " -> " + b.epoch() + ")");
      }
    }
  }

  @Test
  void ringEpochsAreMonotonicUnderRandomAddsAndRemoves() {
    for (long seed : new long[] {1, 2, 3}) {
      Random rnd = new Random(seed);
      long[] probes = probes(seed * 1000);
      Ring ring = Ring.of(TestData.ring(32, "s1", "s2"), 1);
      Route[] prev = routeAll(ring, probes);
      int adds = 0;
      int removes = 0;
      int ownerChanges = 0;
      for (int step = 0; step < STEPS; step++) {
        RingLayout layout = ring.layout();
        boolean add = layout.getShardsCount() < 2 || rnd.nextDouble() < 0.55;
        String what;
        RingLayout next;
        if (add) {
          String shard = "s" + (1 + rnd.nextInt(8));
          int count = 1 + rnd.nextInt(48);
          int have = 0;
          for (RingShard s : layout.getShardsList()) {
            have += s.getShard().equals(shard) ? s.getVnodeEpochsCount() : 0;
          }
          if (have + count > 256) {
            count = Math.max(1, 256 - have);
          }
          what = "add " + count + " to " + shard;
          next = ring.withAddedNodes(shard, count);
          adds++;
        } else {
          RingShard victim = layout.getShards(rnd.nextInt(layout.getShardsCount()));
          int count = rnd.nextInt(3) == 0 ? 0 : 1 + rnd.nextInt(victim.getVnodeEpochsCount());
          what = "remove " + (count == 0 ? "all" : count) + " of " + victim.getShard() + "'s "
              + victim.getVnodeEpochsCount();
          next = ring.withRemovedNodes(victim.getShard(), count);
          removes++;
        }
        Ring nextRing = Ring.of(next, step + 2);
        Route[] routes = routeAll(nextRing, probes);
        for (int i = 0; i < probes.length; i++) {
          ownerChanges += routes[i].shard().equals(prev[i].shard()) ? 0 : 1;
        }
        check(probes, prev, routes, "seed " + seed + " step " + step + " (" + what + ")");
        ring = nextRing;
        prev = routes;
      }
      assertTrue(adds > 50 && removes > 50 && ownerChanges > 10_000,
          "the walk must exercise the ring: adds=" + adds + " removes=" + removes + " owner changes=" + ownerChanges);
    }
  }

  private static Route[] routeAll(Ring r, long[] probes) {
    Route[] out = new Route[probes.length];
    for (int i = 0; i < probes.length; i++) {
      out[i] = r.route(probes[i]);
    }
    return out;
  }

  @Test
  void rangeEpochsAreMonotonicUnderRandomSplitsMergesAndReassigns() {
    for (long seed : new long[] {4, 5, 6}) {
      Random rnd = new Random(seed);
      long[] probes = probes(seed * 1000);
      List<Route> model = new ArrayList<>(List.of(new Route("s0", 1, KeyRange.FULL, 0)));
      RangeTable table = RangeTable.build(INT64, model, "ranges");
      Route[] prev = routeAll(table, probes);
      int[] kinds = new int[3];
      int ownerChanges = 0;
      for (int step = 0; step < STEPS; step++) {
        RangeTableTest.Op op = RangeTableTest.randomOp(INT64, rnd, model, step < 60 ? 0.6 : 0.34);
        if (op == null) {
          continue;
        }
        kinds[op.kind().ordinal()]++;
        table = table.apply(op.removed(), op.puts());
        model = op.after();
        Route[] routes = routeAll(table, probes);
        for (int i = 0; i < probes.length; i++) {
          ownerChanges += routes[i].shard().equals(prev[i].shard()) ? 0 : 1;
          if (op.kind() != RangeTableTest.Kind.REASSIGN && !routes[i].shard().equals(prev[i].shard())) {
            fail("seed " + seed + " step " + step + ": a " + op.kind() + " changed the owner of key " + probes[i]);
          }
        }
        check(probes, prev, routes, "seed " + seed + " step " + step + " (" + op.kind() + ")");
        prev = routes;
      }
      assertTrue(kinds[0] > 20 && kinds[1] > 10 && kinds[2] > 20 && ownerChanges > 1_000,
          "the walk must exercise every operation: splits=" + kinds[0] + " merges=" + kinds[1] + " reassigns="
              + kinds[2] + " owner changes=" + ownerChanges);
    }
  }

  private static Route[] routeAll(RangeTable t, long[] probes) {
    Route[] out = new Route[probes.length];
    for (int i = 0; i < probes.length; i++) {
      out[i] = t.route(probes[i]);
    }
    return out;
  }
}
