package io.shardmap.core.balance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.UnitSpace;
import io.shardmap.core.balance.BalanceInput.Unit;
import io.shardmap.core.balance.BalancePlan.Kind;
import io.shardmap.core.balance.BalancePlan.Step;
import io.shardmap.core.balance.BalancePlan.Stop;
import io.shardmap.proto.v1.Strategy;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The greedy planner: convergence, hysteresis, split points, weighting, and the policy's validation. */
@Tag("unit")
class BalancePlannerTest {

  private static byte[] k(long v) {
    return Keys.encodeInt64(v);
  }

  /** Range units cut at the given integer bounds (n bounds make n + 1 units), owners and loads given. */
  private static BalanceInput.Builder ranges(long[] bounds, String[] owners, double[] load, long[] bytes) {
    BalanceInput.Builder b = BalanceInput.builder(Strategy.STRATEGY_RANGE);
    for (int i = 0; i <= bounds.length; i++) {
      byte[] s = i == 0 ? UnitSpace.START : k(bounds[i - 1]);
      byte[] e = i == bounds.length ? UnitSpace.END : k(bounds[i]);
      b.unit(new Unit(s, e, "u" + i, owners[i], load[i] / 2, load[i] / 2, bytes[i] / 100, bytes[i], true));
    }
    return b;
  }

  /** Hash buckets 0..n-1 with the given owners, loads and bytes. */
  private static BalanceInput.Builder buckets(String[] owners, double[] load, long[] bytes) {
    BalanceInput.Builder b = BalanceInput.builder(Strategy.STRATEGY_HASH);
    for (int i = 0; i < owners.length; i++) {
      byte[] e = i + 1 == owners.length ? UnitSpace.END : UnitSpace.int32(i + 1);
      b.unit(new Unit(UnitSpace.int32(i), e, "bucket " + i, owners[i], load[i], 0, bytes[i] / 100, bytes[i],
          true));
    }
    return b;
  }

  /** The skew of one dimension recomputed from the units alone (the test's own arithmetic). */
  private static double skew(BalanceInput in, boolean load) {
    Map<String, Double> per = new HashMap<>();
    for (String s : in.shards().keySet()) {
      per.put(s, 0.0);
    }
    double total = 0;
    for (Unit u : in.units()) {
      double v = load ? u.load() : u.bytes();
      per.merge(u.shard(), v, Double::sum);
      total += v;
    }
    double max = per.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
    return total == 0 ? 0 : max * per.size() / total - 1;
  }

  private static BalancePolicy.Builder policy() {
    return BalancePolicy.builder();
  }

  @Test
  void skewedBucketsConvergeUnderTheTarget() {
    Random rnd = new Random(7);
    int n = 48;
    String[] owners = new String[n];
    double[] load = new double[n];
    long[] bytes = new long[n];
    for (int i = 0; i < n; i++) {
      owners[i] = i < 32 ? "a" : i < 44 ? "b" : "c";
      load[i] = 10 + rnd.nextInt(40);
      bytes[i] = 1_000_000 + rnd.nextInt(3_000_000);
    }
    BalanceInput in = buckets(owners, load, bytes).shard("d").build();
    BalancePolicy p = policy().targetSkew(0.2).maxMoves(100).build();
    BalancePlan plan = BalancePlanner.plan(in, p);

    assertTrue(plan.skewBefore() > 1, "the input is skewed: " + plan.skewBefore());
    assertEquals(Stop.TARGET_REACHED, plan.stop());
    assertTrue(plan.skewAfter() <= 0.2, "converged under the target: " + plan.skewAfter());
    assertFalse(plan.steps().isEmpty());
    for (Step s : plan.steps()) {
      assertEquals(Kind.MOVE, s.kind(), "buckets move whole");
      assertNull(s.splitAt());
    }
    // The skews the plan reports are those of the state it hands back, recomputed from its units.
    assertEquals(skew(plan.after(), true), plan.loadSkewAfter(), 1e-9);
    assertEquals(skew(plan.after(), false), plan.sizeSkewAfter(), 1e-9);
    assertEquals(skew(in, true), plan.loadSkewBefore(), 1e-9);
    // Both dimensions weigh: neither is left far off.
    assertTrue(plan.loadSkewAfter() < 0.4 && plan.sizeSkewAfter() < 0.4,
        plan.loadSkewAfter() + " " + plan.sizeSkewAfter());
    // The empty shard d took units.
    assertTrue(plan.steps().stream().anyMatch(s -> s.target().equals("d")));
  }

  @Test
  void balancedInputGivesAnEmptyPlan() {
    BalanceInput in = buckets(new String[] {"a", "b", "a", "b"}, new double[] {10, 10, 11, 10},
        new long[] {1000, 1000, 1000, 1050}).build();
    BalancePlan plan = BalancePlanner.plan(in, policy().build());
    assertTrue(plan.steps().isEmpty());
    assertEquals(Stop.TARGET_REACHED, plan.stop());
    assertTrue(plan.skewBefore() < 0.25);
  }

  @Test
  void hysteresisRefusesAStepThatOnlyTradesPlaces() {
    // a: 10.5 calls/s, b: 9.5; moving a unit of 0.5 evens them out, gaining 0.5 of a mean of 10 = 0.05.
    BalanceInput in = buckets(new String[] {"a", "a", "b"}, new double[] {10, 0.5, 9.5},
        new long[] {0, 0, 0}).build();
    BalancePlan held = BalancePlanner.plan(in, policy().targetSkew(0).minGain(0).hysteresis(0.05).build());
    assertTrue(held.steps().isEmpty(), "a gain of exactly the hysteresis is not enough");
    assertEquals(Stop.NO_GAIN, held.stop());
    BalancePlan moved = BalancePlanner.plan(in, policy().targetSkew(0).minGain(0).hysteresis(0.04).build());
    assertEquals(1, moved.steps().size());
    assertEquals("bucket 1", moved.steps().get(0).label());
    assertEquals(0, moved.skewAfter(), 1e-9);
  }

  @Test
  void planningAgainAfterAPlanGivesNothing() {
    Random rnd = new Random(42);
    for (int round = 0; round < 200; round++) {
      int n = 2 + rnd.nextInt(40);
      String[] shards = {"a", "b", "c", "d", "e"};
      int used = 2 + rnd.nextInt(4);
      String[] owners = new String[n];
      double[] load = new double[n];
      long[] bytes = new long[n];
      long[] bounds = new long[n - 1];
      for (int i = 0; i < n; i++) {
        // Skewed: most units on the first shards, loads with a heavy tail.
        owners[i] = shards[Math.min(used - 1, (int) (Math.abs(rnd.nextGaussian()) * used / 2))];
        load[i] = rnd.nextInt(4) == 0 ? rnd.nextInt(1000) : rnd.nextInt(20);
        bytes[i] = rnd.nextInt(1_000_000);
        if (i > 0) {
          bounds[i - 1] = i * 1000L;
        }
      }
      BalanceInput.Builder b = ranges(bounds, owners, load, bytes);
      for (int i = 0; i < used; i++) {
        b.shard(shards[i]);
      }
      for (int s = 0; s < 300; s++) {
        b.sample(k(rnd.nextInt(n * 1000)), 1 + rnd.nextInt(3));
      }
      BalanceInput in = b.build();
      BalancePolicy p = policy().maxMoves(1000).targetSkew(rnd.nextInt(3) * 0.1)
          .loadWeight(rnd.nextInt(3)).sizeWeight(1).build();
      BalancePlan plan = BalancePlanner.plan(in, p);
      assertTrue(plan.stop() != Stop.MAX_MOVES, "round " + round);
      BalancePlan again = BalancePlanner.plan(plan.after(), p);
      assertTrue(again.steps().isEmpty(), "round " + round + ": a second plan moved " + again.steps() + " after " + plan + " policy " + p);
      // Within the plan no part goes back to a shard it was on (labels are the planner's hex bounds).
      Map<String, Set<String>> visited = new HashMap<>();
      for (Step s : plan.steps()) {
        Set<String> v = new HashSet<>(visited.getOrDefault(s.label(), Set.of()));
        v.add(s.source());
        assertFalse(v.contains(s.target()), "round " + round + ": " + s.label() + " moved back to " + s.target());
        if (s.kind() == Kind.SPLIT_AND_MOVE) {
          visited.put(hexLabel(s.start(), s.splitAt()), new HashSet<>(v));
        }
        v.add(s.target());
        visited.put(s.movedLabel(), v);
      }
      if (!plan.steps().isEmpty()) {
        assertTrue(plan.skewBefore() - plan.skewAfter() >= p.minGain(), "round " + round);
      }
    }
  }

  @Test
  void aHotRangeSplitsWhereItsSampledLoadHalvesNotAtItsMiddleKey() {
    // One range [0, 100) of shard a (plus the ranges around it, idle); shard b owns an idle range.
    BalanceInput.Builder b = ranges(new long[] {0, 100, 200}, new String[] {"a", "a", "b", "b"},
        new double[] {0, 120, 0, 0}, new long[] {0, 0, 0, 0});
    // Keys 0..59 one call each, keys 60..79 three each: 60 calls below 60 and 60 from 60 on. The middle key
    // would be 50.
    for (int key = 0; key < 80; key++) {
      b.sample(k(key), key < 60 ? 1 : 3);
    }
    BalancePlan plan = BalancePlanner.plan(b.build(), policy().sizeWeight(0).build(),
        key -> Long.toString(Keys.decodeInt64(key)));
    assertEquals(1, plan.steps().size(), plan.steps().toString());
    Step s = plan.steps().get(0);
    assertEquals(Kind.SPLIT_AND_MOVE, s.kind());
    assertArrayEquals(k(60), s.splitAt(), "split where the load halves");
    assertEquals("u1", s.label());
    assertEquals("[60, 100)", s.movedLabel());
    assertEquals("a", s.source());
    assertEquals("b", s.target());
    assertEquals(60, s.movedLoadPerSecond(), 1e-9);
    assertEquals(0, s.loadSkewAfter(), 1e-9);
    assertEquals(1, plan.loadSkewBefore(), 1e-9);
  }

  @Test
  void aSingleHotKeyIsNotSplitAndOtherStrategiesNeverSplit() {
    BalanceInput.Builder r = ranges(new long[] {100}, new String[] {"a", "b"}, new double[] {100, 0},
        new long[] {0, 0});
    r.sample(k(7), 50);
    BalancePlan one = BalancePlanner.plan(r.build(), policy().sizeWeight(0).build());
    assertTrue(one.steps().isEmpty(), "moving the only hot range whole just moves the hot spot: " + one.steps());

    BalanceInput.Builder h = buckets(new String[] {"a", "b"}, new double[] {100, 0}, new long[] {0, 0});
    for (int i = 0; i < 50; i++) {
      h.sample(UnitSpace.int32(0), 1);
    }
    BalancePlan hash = BalancePlanner.plan(h.build(), policy().sizeWeight(0).build());
    assertTrue(hash.steps().stream().noneMatch(s -> s.kind() == Kind.SPLIT_AND_MOVE));
  }

  @Test
  void sizeOnlyAndLoadOnlyWeightingMoveDifferentUnits() {
    // a owns a hot small bucket (0), a cold big one (1) and a middling one (2); b and c own little.
    BalanceInput in = buckets(new String[] {"a", "a", "a", "b", "c"}, new double[] {50, 10, 15, 30, 5},
        new long[] {1_000, 6_000_000, 1_000_000, 2_000_000, 1_000_000}).build();
    BalancePlan byLoad = BalancePlanner.plan(in, policy().sizeWeight(0).targetSkew(0.1).build());
    BalancePlan bySize = BalancePlanner.plan(in, policy().loadWeight(0).targetSkew(0.1).build());
    Step load = byLoad.steps().get(0);
    Step size = bySize.steps().get(0);
    assertEquals("bucket 0", load.label(), byLoad.steps().toString());
    assertFalse(size.label().equals("bucket 0"), "moving 1 KB does nothing for size: " + bySize.steps());
    assertTrue(size.movedBytes() >= 1_000_000);
    assertEquals("c", load.target());
    assertTrue(byLoad.loadSkewAfter() < byLoad.loadSkewBefore());
    assertTrue(bySize.sizeSkewAfter() < bySize.sizeSkewBefore());
    // Each weighting evens out its own dimension better than the other does.
    assertTrue(byLoad.loadSkewAfter() < bySize.loadSkewAfter(), byLoad.loadSkewAfter() + " " + bySize.loadSkewAfter());
    assertTrue(bySize.sizeSkewAfter() < byLoad.sizeSkewAfter(), bySize.sizeSkewAfter() + " " + byLoad.sizeSkewAfter());
  }

  @Test
  void directoryKeyspacesAreOnlyReported() {
    BalanceInput.Builder b = BalanceInput.builder(Strategy.STRATEGY_DIRECTORY);
    b.unit(new Unit(UnitSpace.int32(0), UnitSpace.int32(1), "group 0", null, 500, 0, 10, 1000, false));
    b.unit(new Unit(UnitSpace.int32(1), UnitSpace.END, "group 1", "a", 500, 0, 10, 1000, true));
    b.shard("a", 1000, 2000);
    b.shard("b");
    BalancePlan plan = BalancePlanner.plan(b.build(), policy().build());
    assertTrue(plan.steps().isEmpty());
    assertEquals(Stop.NOT_MOVABLE, plan.stop());
    assertEquals(1, plan.loadSkewBefore(), 1e-9);
  }

  @Test
  void maxMovesAndMinGainLimitThePlan() {
    String[] owners = {"a", "a", "a", "a", "a", "a"};
    double[] load = {10, 10, 10, 10, 10, 10};
    long[] bytes = {0, 0, 0, 0, 0, 0};
    BalanceInput in = buckets(owners, load, bytes).shard("b").shard("c").build();
    BalancePlan two = BalancePlanner.plan(in, policy().maxMoves(2).build());
    assertEquals(2, two.steps().size());
    assertEquals(Stop.MAX_MOVES, two.stop());
    BalancePlan none = BalancePlanner.plan(in, policy().maxMoves(0).build());
    assertTrue(none.steps().isEmpty());
    assertEquals(2, none.skewBefore(), 1e-9);

    // [10, 10, 0] in units of 5: the best reachable is [10, 5, 5], whose skew is the same 0.5; not worth it.
    BalanceInput tie = buckets(new String[] {"a", "a", "b", "b"}, new double[] {5, 5, 5, 5},
        new long[] {0, 0, 0, 0}).shard("c").build();
    BalancePlan useless = BalancePlanner.plan(tie, policy().build());
    assertTrue(useless.steps().isEmpty(), useless.steps().toString());
    assertEquals(Stop.NO_GAIN, useless.stop());
    assertEquals(tie.units().get(0).shard(), useless.after().units().get(0).shard());
  }

  @Test
  void impossiblePoliciesAreRefusedNamingTheField() {
    assertInvalid("targetSkew", () -> policy().targetSkew(-0.1).build());
    assertInvalid("targetSkew", () -> policy().targetSkew(Double.NaN).build());
    assertInvalid("loadWeight", () -> policy().loadWeight(0).sizeWeight(0).build());
    assertInvalid("sizeWeight", () -> policy().sizeWeight(-1).build());
    assertInvalid("maxMoves", () -> policy().maxMoves(-1).build());
    assertInvalid("hysteresis", () -> policy().hysteresis(-0.01).build());
    assertInvalid("hysteresis", () -> policy().hysteresis(1).build());
    assertInvalid("minGain", () -> policy().minGain(-1).build());
    BalancePolicy d = BalancePolicy.defaults();
    assertEquals(0.25, d.targetSkew());
    assertEquals(0.05, d.hysteresis());
    assertEquals(5, d.maxMoves());
  }

  @Test
  void unitsOutOfOrderOrNegativeAreRefused() {
    BalanceInput.Builder b = BalanceInput.builder(Strategy.STRATEGY_RANGE);
    b.unit(new Unit(k(10), k(20), "x", "a", 1, 1, 1, 1, true));
    assertInvalid("units", () -> b.unit(new Unit(k(15), k(30), "y", "a", 1, 1, 1, 1, true)));
    assertInvalid("readsPerSecond", () -> new Unit(k(1), k(2), "z", "a", -1, 0, 0, 0, true));
    assertInvalid("unit.end", () -> new Unit(k(2), k(2), "z", "a", 0, 0, 0, 0, true));
    assertInvalid("strategy", () -> BalanceInput.builder(Strategy.STRATEGY_UNSPECIFIED));
  }

  private static String hexLabel(byte[] start, byte[] end) {
    return "[" + (start.length == 0 ? "-inf" : Keys.hex(start)) + ", " + (end.length == 0 ? "+inf" : Keys.hex(end))
        + ")";
  }

  private static void assertInvalid(String field, Runnable r) {
    ShardmapException e = assertThrows(ShardmapException.class, r::run);
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith(field + ":"), e.getMessage());
  }
}
