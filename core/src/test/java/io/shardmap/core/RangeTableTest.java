package io.shardmap.core;

import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.assertError;
import static io.shardmap.core.TestData.range;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.proto.v1.KeyType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class RangeTableTest {

  private static final byte[] NONE = new byte[0];

  // ------------------------------------------------------------------ build validation

  @Test
  void buildAcceptsRoutesInAnyOrder() {
    RangeTable t = RangeTable.build(INT64, List.of(
        range(INT64, "100..", "c", 1), range(INT64, "..0", "a", 1), range(INT64, "0..100", "b", 1)), "ranges");
    assertEquals(3, t.size());
    assertEquals(List.of("a", "b", "c"), t.routes().stream().map(Route::shard).toList(), "sorted by start");
    assertEquals(1, RangeTable.build(BYTES, List.of(new Route("a", 1, KeyRange.FULL, 0)), "r").size());
  }

  @Test
  void buildRejectsGap() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "..0", "a", 1), range(INT64, "10..", "b", 1)), "create.ranges"),
        "create.ranges:", "gap", "0..10");
  }

  @Test
  void buildRejectsOverlap() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "..10", "a", 1), range(INT64, "0..", "b", 1)), "create.ranges"),
        "create.ranges:", "overlap", "..10", "0..");
    // Two ranges with the same start.
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "..5", "a", 1), range(INT64, "..", "b", 1)), "ranges"), "ranges:", "overlap");
    // A range without end that is not the last one.
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "..", "a", 1), range(INT64, "5..", "b", 1)), "ranges"), "ranges:", "overlap");
  }

  @Test
  void buildRejectsUncoveredEnds() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "-5..0", "a", 1), range(INT64, "0..", "b", 1)), "create.ranges"),
        "create.ranges:", "below -5", "first range must have no start");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(
        range(INT64, "..0", "a", 1), range(INT64, "0..7", "b", 1)), "create.ranges"),
        "create.ranges:", "from 7", "last range must have no end");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> RangeTable.build(INT64, List.of(), "create.ranges"),
        "create.ranges:", "at least one range");
  }

  // ------------------------------------------------------------------ routing

  @Test
  void routesByHalfOpenRangesIncludingExtremes() {
    RangeTable t = TestData.intTable(range(INT64, "..-100", "a", 1), range(INT64, "-100..0", "b", 2),
        range(INT64, "0..100", "c", 3), range(INT64, "100..", "d", 4));
    long[] keys = {Long.MIN_VALUE, -101, -100, -1, 0, 99, 100, Long.MAX_VALUE};
    String[] owners = {"a", "a", "b", "b", "c", "c", "d", "d"};
    for (int i = 0; i < keys.length; i++) {
      assertEquals(owners[i], t.route(keys[i]).shard(), "route(" + keys[i] + ")");
      assertSame(t.route(keys[i]), t.route(Keys.encodeInt64(keys[i])), "route(long) vs route(bytes) for " + keys[i]);
    }
    assertEquals(2, t.indexOf(Keys.encodeInt64(0)));
    assertEquals(2, t.indexOfStart(Keys.encodeInt64(0)));
    assertEquals(-1, t.indexOfStart(Keys.encodeInt64(1)));
    assertEquals(0, t.indexOfStart(NONE), "the first range starts at the empty (unbounded) start");
  }

  @Test
  void rangesStartingAtExtremeValuesRouteConsistently() {
    // (-inf, MIN) holds no INT64 key; [MIN, MIN+1) holds exactly MIN; [MAX, +inf) holds exactly MAX.
    RangeTable t = TestData.intTable(
        TestData.route(NONE, Keys.encodeInt64(Long.MIN_VALUE), "empty", 1),
        TestData.route(Keys.encodeInt64(Long.MIN_VALUE), Keys.encodeInt64(Long.MIN_VALUE + 1), "min", 1),
        TestData.route(Keys.encodeInt64(Long.MIN_VALUE + 1), Keys.encodeInt64(Long.MAX_VALUE), "mid", 1),
        TestData.route(Keys.encodeInt64(Long.MAX_VALUE), NONE, "max", 1));
    for (long k : new long[] {Long.MIN_VALUE, Long.MIN_VALUE + 1, 0, Long.MAX_VALUE - 1, Long.MAX_VALUE}) {
      Route naive = naiveRoute(t.routes(), Keys.encodeInt64(k));
      assertSame(naive, t.route(k), "route(long " + k + ")");
      assertSame(naive, t.route(Keys.encodeInt64(k)), "route(bytes " + k + ")");
    }
    assertEquals("min", t.route(Long.MIN_VALUE).shard());
    assertEquals("max", t.route(Long.MAX_VALUE).shard());
  }

  @Test
  void intRouteOnBytesTableIsRejected() {
    RangeTable t = RangeTable.build(BYTES, List.of(new Route("a", 1, KeyRange.FULL, 0)), "r");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> t.route(5L), "key", "KEY_TYPE_BYTES");
  }

  // ------------------------------------------------------------------ apply

  @Test
  void applySplit() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 3), range(INT64, "0..", "b", 5));
    RangeTable s = t.apply(List.of(), List.of(range(INT64, "0..50", "b", 5), range(INT64, "50..", "b", 5)));
    assertEquals(List.of(range(INT64, "..0", "a", 3), range(INT64, "0..50", "b", 5), range(INT64, "50..", "b", 5)),
        s.routes());
    assertSame(t.get(0), s.get(0), "untouched routes are shared");
    assertEquals(2, t.size(), "the old table is unchanged");
  }

  @Test
  void applyMerge() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 3), range(INT64, "0..50", "b", 5),
        range(INT64, "50..", "b", 7));
    RangeTable m = t.apply(List.of(Keys.encodeInt64(50)), List.of(range(INT64, "0..", "b", 7)));
    assertEquals(List.of(range(INT64, "..0", "a", 3), range(INT64, "0..", "b", 7)), m.routes());
    assertEquals("b", m.route(Long.MAX_VALUE).shard());
    assertEquals(7, m.route(10).epoch());
    assertEquals(3, t.size(), "the old table is unchanged");
  }

  @Test
  void applyMergeOfTheFirstTwoRanges() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 1), range(INT64, "0..50", "a", 2),
        range(INT64, "50..", "b", 1));
    RangeTable m = t.apply(List.of(Keys.encodeInt64(0)), List.of(range(INT64, "..50", "a", 2)));
    assertEquals(List.of(range(INT64, "..50", "a", 2), range(INT64, "50..", "b", 1)), m.routes());
  }

  @Test
  void applyReassign() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 3), range(INT64, "0..", "b", 5));
    RangeTable r = t.apply(List.of(), List.of(range(INT64, "..0", "c", 4)));
    assertEquals(List.of(range(INT64, "..0", "c", 4), range(INT64, "0..", "b", 5)), r.routes());
    assertEquals("a", t.route(-1).shard(), "the old table still routes to the old owner");
    assertEquals("c", r.route(-1).shard());
  }

  @Test
  void applyPutWinsOverRemovalOfTheSameStart() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 1), range(INT64, "0..", "b", 1));
    RangeTable r = t.apply(List.of(Keys.encodeInt64(0)), List.of(range(INT64, "0..", "c", 2)));
    assertEquals(List.of(range(INT64, "..0", "a", 1), range(INT64, "0..", "c", 2)), r.routes());
  }

  @Test
  void applyRejectsResultsThatBreakCoverage() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 1), range(INT64, "0..10", "b", 1),
        range(INT64, "10..", "c", 1));
    // Removing a range without widening a neighbour leaves a gap; a half split overlaps.
    assertThrowsShardmap(() -> t.apply(List.of(Keys.encodeInt64(0)), List.of()), "gap");
    assertThrowsShardmap(() -> t.apply(List.of(), List.of(range(INT64, "5..10", "d", 1))), "overlap");
    assertThrowsShardmap(() -> t.apply(List.of(), List.of(range(INT64, "0..5", "d", 1))), "gap");
    assertThrowsShardmap(() -> t.apply(List.of(), List.of(range(INT64, "10..20", "d", 1))), "no end");
    RangeTable one = TestData.intTable(range(INT64, "..", "a", 1));
    assertError(ErrorCode.INTERNAL, () -> one.apply(List.of(NONE), List.of()), "empty");
  }

  private static void assertThrowsShardmap(org.junit.jupiter.api.function.Executable call, String fragment) {
    try {
      call.execute();
      fail("expected a ShardmapException containing '" + fragment + "'");
    } catch (ShardmapException e) {
      assertTrue(e.getMessage().contains(fragment), "message should contain '" + fragment + "': " + e.getMessage());
    } catch (Throwable t) {
      fail("expected a ShardmapException, got " + t, t);
    }
  }

  /**
   * RangeTable.apply's Javadoc: "@throws ShardmapException INTERNAL if the result would break the coverage
   * invariant". A broken invariant after applying stored records is an inconsistency in stored data
   * (INTERNAL), not a bad request argument.
   */
  @Test
  void applyReportsBrokenCoverageAsInternalAsDocumented() {
    RangeTable t = TestData.intTable(range(INT64, "..0", "a", 1), range(INT64, "0..10", "b", 1),
        range(INT64, "10..", "c", 1));
    assertError(ErrorCode.INTERNAL, () -> t.apply(List.of(Keys.encodeInt64(0)), List.of()), "gap");
  }

  // ------------------------------------------------------------------ randomized: apply == build, route == scan

  @Test
  void randomOperationsViaApplyEqualRebuildInt64() {
    randomOperationsViaApplyEqualRebuild(INT64, 20240601L);
  }

  @Test
  void randomOperationsViaApplyEqualRebuildBytes() {
    randomOperationsViaApplyEqualRebuild(BYTES, 777L);
  }

  private void randomOperationsViaApplyEqualRebuild(KeyType type, long seed) {
    Random rnd = new Random(seed);
    List<Route> model = new ArrayList<>(List.of(new Route("s0", 1, KeyRange.FULL, 0)));
    RangeTable table = RangeTable.build(type, model, "ranges");
    int splits = 0;
    int merges = 0;
    int reassigns = 0;
    for (int step = 0; step < 600; step++) {
      Op op = randomOp(type, rnd, model, step < 150 ? 0.7 : 0.4);
      if (op == null) {
        continue;
      }
      switch (op.kind) {
        case SPLIT -> splits++;
        case MERGE -> merges++;
        case REASSIGN -> reassigns++;
      }
      // Several ops are sometimes batched into one apply, as etcd revisions may carry several.
      table = table.apply(op.removed, op.puts);
      model = op.after;
      String where = "step " + step + " (" + op.kind + ")";
      RangeTable rebuilt = RangeTable.build(type, model, "ranges");
      assertEquals(rebuilt.routes(), table.routes(), "apply vs build after " + where);
      assertEquals(model, table.routes(), "apply vs model after " + where);
      checkRoutesAgainstScan(type, table, rnd, 40, where);
    }
    assertTrue(splits > 50 && merges > 50 && reassigns > 50,
        "the random walk should exercise every operation: splits=" + splits + " merges=" + merges
            + " reassigns=" + reassigns);
    checkRoutesAgainstScan(type, table, rnd, 20_000, "final table of " + table.size() + " ranges");
  }

  private static void checkRoutesAgainstScan(KeyType type, RangeTable t, Random rnd, int n, String where) {
    List<Route> routes = t.routes();
    List<byte[]> probes = new ArrayList<>();
    if (type == INT64) {
      for (long k : new long[] {Long.MIN_VALUE, Long.MIN_VALUE + 1, -1, 0, 1, Long.MAX_VALUE - 1, Long.MAX_VALUE}) {
        probes.add(Keys.encodeInt64(k));
      }
    } else {
      probes.add(new byte[] {0});
      probes.add(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
    }
    for (Route r : routes) {
      // Every boundary, and the key just below it.
      if (!r.range().unboundedBelow()) {
        byte[] s = r.range().start();
        probes.add(s);
        if (type == INT64) {
          long v = Keys.decodeInt64(s);
          if (v != Long.MIN_VALUE) {
            probes.add(Keys.encodeInt64(v - 1));
          }
        }
      }
    }
    for (int i = 0; i < n; i++) {
      probes.add(randomKey(type, rnd));
    }
    for (byte[] k : probes) {
      Route expected = naiveRoute(routes, k);
      Route got = t.route(k);
      if (got != expected) {
        assertSame(expected, got, where + ": route(" + Keys.describe(type, k) + ")");
      }
      if (type == INT64) {
        Route gotLong = t.route(Keys.decodeInt64(k));
        if (gotLong != expected) {
          assertSame(expected, gotLong, where + ": route(long " + Keys.decodeInt64(k) + ")");
        }
      }
    }
  }

  /** The one route whose range contains the key, by linear scan; fails if not exactly one. */
  static Route naiveRoute(List<Route> routes, byte[] key) {
    Route found = null;
    for (Route r : routes) {
      if (r.range().contains(key)) {
        assertNull(found, "two ranges contain key 0x" + Keys.hex(key) + ": " + found + " and " + r);
        found = r;
      }
    }
    assertNotNull(found, "no range contains key 0x" + Keys.hex(key));
    return found;
  }

  static byte[] randomKey(KeyType type, Random rnd) {
    if (type == INT64) {
      int pick = rnd.nextInt(20);
      long v = switch (pick) {
        case 0 -> Long.MIN_VALUE + rnd.nextInt(3);
        case 1 -> Long.MAX_VALUE - rnd.nextInt(3);
        case 2, 3 -> rnd.nextInt(2001) - 1000;
        default -> rnd.nextLong();
      };
      return Keys.encodeInt64(v);
    }
    // Short keys over a small alphabet, so boundaries and prefixes collide often.
    byte[] b = new byte[1 + rnd.nextInt(4)];
    for (int i = 0; i < b.length; i++) {
      int c = rnd.nextInt(6);
      b[i] = (byte) (c == 0 ? 0 : c == 5 ? 0xff : 'a' + c);
    }
    return b;
  }

  // ------------------------------------------------------------------ random operations

  enum Kind { SPLIT, MERGE, REASSIGN }

  /** One map change: the records it writes, and the full list of routes after it. */
  record Op(Kind kind, List<byte[]> removed, List<Route> puts, List<Route> after) {}

  static final String[] SHARDS = {"s0", "s1", "s2", "s3", "s4"};

  /**
   * A random split, merge (of two neighbours with the same owner: the merged range takes the larger epoch)
   * or reassign (epoch + 1), following the admin API's rules. Null when the chosen operation is impossible.
   */
  static Op randomOp(KeyType type, Random rnd, List<Route> model, double splitBias) {
    double x = rnd.nextDouble();
    if (x < splitBias || model.size() == 1) {
      int i = rnd.nextInt(model.size());
      Route r = model.get(i);
      byte[] at = splitKey(type, rnd, r.range());
      if (at == null) {
        return null;
      }
      Route left = new Route(r.shard(), r.epoch(), KeyRange.of(r.range().start(), at, "split"), 0);
      Route right = new Route(r.shard(), r.epoch(), KeyRange.of(at, r.range().end(), "split"), 0);
      List<Route> after = new ArrayList<>(model);
      after.set(i, left);
      after.add(i + 1, right);
      List<Route> puts = rnd.nextBoolean() ? List.of(left, right) : List.of(right, left);
      return new Op(Kind.SPLIT, List.of(), puts, after);
    }
    if (x < splitBias + (1 - splitBias) / 2) {
      List<Integer> candidates = new ArrayList<>();
      for (int i = 0; i + 1 < model.size(); i++) {
        if (model.get(i).shard().equals(model.get(i + 1).shard())) {
          candidates.add(i);
        }
      }
      if (candidates.isEmpty()) {
        return null;
      }
      int i = candidates.get(rnd.nextInt(candidates.size()));
      Route l = model.get(i);
      Route r = model.get(i + 1);
      Route merged = new Route(l.shard(), Math.max(l.epoch(), r.epoch()),
          KeyRange.of(l.range().start(), r.range().end(), "merge"), 0);
      List<Route> after = new ArrayList<>(model);
      after.set(i, merged);
      after.remove(i + 1);
      return new Op(Kind.MERGE, List.of(r.range().start()), List.of(merged), after);
    }
    int i = rnd.nextInt(model.size());
    Route r = model.get(i);
    String to;
    do {
      to = SHARDS[rnd.nextInt(SHARDS.length)];
    } while (to.equals(r.shard()));
    // Bias reassignments towards a neighbour's owner, so merges become possible.
    if (rnd.nextBoolean() && i + 1 < model.size() && !model.get(i + 1).shard().equals(r.shard())) {
      to = model.get(i + 1).shard();
    }
    Route moved = new Route(to, r.epoch() + 1, r.range(), 0);
    List<Route> after = new ArrayList<>(model);
    after.set(i, moved);
    return new Op(Kind.REASSIGN, List.of(), List.of(moved), after);
  }

  /** A key strictly inside the range (so both halves are non-empty ranges), or null. */
  static byte[] splitKey(KeyType type, Random rnd, KeyRange r) {
    for (int attempt = 0; attempt < 30; attempt++) {
      byte[] k = randomKey(type, rnd);
      if (type == INT64 && attempt > 20 && !r.unboundedBelow() && !r.unboundedAbove()) {
        long s = Keys.decodeInt64(r.start());
        long e = Keys.decodeInt64(r.end());
        k = Keys.encodeInt64(s + (e - s) / 2);
      }
      boolean aboveStart = r.unboundedBelow() || Keys.compare(k, r.start()) > 0;
      boolean belowEnd = r.unboundedAbove() || Keys.compare(k, r.end()) < 0;
      if (aboveStart && belowEnd) {
        return k;
      }
    }
    return null;
  }

  @Test
  void routesListIsACopy() {
    RangeTable t = TestData.intTable(range(INT64, "..", "a", 1));
    List<Route> l = t.routes();
    try {
      l.clear();
    } catch (UnsupportedOperationException expected) {
      // fine: an unmodifiable view is as good as a copy
    }
    assertEquals(1, t.size());
    assertEquals(1, t.routes().size(), "routes() must not expose the table's array");
    assertTrue(Arrays.asList(t.routes().toArray()).contains(t.get(0)));
  }
}
