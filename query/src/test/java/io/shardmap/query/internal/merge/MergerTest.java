package io.shardmap.query.internal.merge;

import static io.shardmap.query.internal.merge.FakeSource.row;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.ColumnType.Collation;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.RowSource;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Aggregation;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import io.shardmap.query.internal.merge.MergeSpec.SortKey;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class MergerTest {
  static final Collation C = new Collation("C", 'c', "C", true);
  static final ColumnType INT4 = new ColumnType("int4", null);
  static final ColumnType INT8 = new ColumnType("int8", null);
  static final ColumnType NUMERIC = new ColumnType("numeric", null);
  static final ColumnType FLOAT8 = new ColumnType("float8", null);
  static final ColumnType TEXT = new ColumnType("text", C);

  static MergeOptions options(long cap, ColumnType... types) {
    return new MergeOptions(cap, List.of(types));
  }

  static List<Object[]> drain(RowSource s) throws SQLException {
    List<Object[]> out = new ArrayList<>();
    Object[] r;
    while ((r = s.next()) != null) {
      out.add(r);
    }
    s.close();
    return out;
  }

  static List<Integer> cols(int n) {
    List<Integer> c = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      c.add(i);
    }
    return c;
  }

  static MergeSpec plain(int width, List<SortKey> order, Bound offset, Bound limit) {
    return new MergeSpec(width, order, null, List.of(), offset, limit, cols(width));
  }

  static MergeSpec grouped(int width, Aggregation agg, int groupRowWidth, List<SortKey> finalOrder,
                           Bound offset, Bound limit) {
    return new MergeSpec(width, List.of(), agg, finalOrder, offset, limit, cols(groupRowWidth));
  }

  // ---- k-way merge ----------------------------------------------------------------------------------

  /** Independent of the code under test: ints numerically, text by UTF-8 bytes, NULLs where the key says. */
  static Comparator<Object[]> reference(List<SortKey> keys) {
    return (a, b) -> {
      for (SortKey k : keys) {
        Object x = a[k.column()];
        Object y = b[k.column()];
        if (x == null && y == null) {
          continue;
        }
        if (x == null || y == null) {
          return (x == null) == k.nullsFirst() ? -1 : 1;
        }
        int c = x instanceof String
            ? Arrays.compareUnsigned(((String) x).getBytes(StandardCharsets.UTF_8),
                ((String) y).getBytes(StandardCharsets.UTF_8))
            : Long.compare(((Number) x).longValue(), ((Number) y).longValue());
        if (k.descending()) {
          c = -c;
        }
        if (c != 0) {
          return c;
        }
      }
      return 0;
    };
  }

  @Test
  void kWayMergeEqualsAStableSortOfTheConcatenationUnderEverySortKeyCombination() throws SQLException {
    String[] words = {"", "a", "B", "b", "é", "e", "\uFFFD", "\uD83D\uDE00", "日本", "ab"};
    List<List<Integer>> columnSets = List.of(List.of(0), List.of(1), List.of(0, 1), List.of(1, 0),
        List.of(2, 0));
    SplittableRandom rnd = new SplittableRandom(12);
    int cases = 0;
    for (List<Integer> columns : columnSets) {
      for (int flags = 0; flags < (1 << (2 * columns.size())); flags++) {
        List<SortKey> keys = new ArrayList<>();
        for (int i = 0; i < columns.size(); i++) {
          keys.add(new SortKey(columns.get(i), (flags >> (2 * i) & 1) == 1, (flags >> (2 * i + 1) & 1) == 1));
        }
        for (int rep = 0; rep < 8; rep++) {
          int shards = 1 + rnd.nextInt(7);
          List<List<Object[]>> parts = new ArrayList<>();
          List<Object[]> all = new ArrayList<>();
          for (int s = 0; s < shards; s++) {
            List<Object[]> part = new ArrayList<>();
            int n = rnd.nextInt(30);
            for (int i = 0; i < n; i++) {
              Object num = rnd.nextInt(6) == 0 ? null : (Object) (long) rnd.nextInt(5);
              Object text = rnd.nextInt(6) == 0 ? null : words[rnd.nextInt(words.length)];
              Object mixed = rnd.nextInt(8) == 0 ? null : (rnd.nextBoolean() ? (Object) rnd.nextInt(3)
                  : (Object) (long) rnd.nextInt(3));
              part.add(row(num, text, mixed, s * 1000 + i));
            }
            part.sort(reference(keys));
            parts.add(part);
            all.addAll(part);
          }
          List<Object[]> expected = new ArrayList<>(all);
          expected.sort(reference(keys)); // stable: ties keep shard order, then each shard's order
          List<RowSource> sources = new ArrayList<>();
          for (List<Object[]> p : parts) {
            sources.add(new FakeSource(p));
          }
          RowSource merged = Merger.open(plain(4, keys, Bound.NONE, Bound.NONE), sources, List.of(),
              options(1, INT8, TEXT, INT4, INT4));
          List<Object[]> actual = drain(merged);
          assertEquals(expected.size(), actual.size());
          for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), "keys " + keys + " row " + i);
          }
          cases++;
        }
      }
    }
    assertTrue(cases > 300);
  }

  @Test
  void shardRowsOutOfTheMergeOrderFailInsteadOfMisordering() {
    FakeSource bad = FakeSource.of(row(2L), row(1L));
    FakeSource ok = FakeSource.of(row(1L));
    RowSource merged = Merger.open(plain(1, List.of(new SortKey(0, false, false)), Bound.NONE, Bound.NONE),
        List.of(bad, ok), List.of(), options(1, INT8));
    ShardmapException e = assertThrows(ShardmapException.class, () -> drain(merged));
    assertTrue(e.getMessage().contains("out of the merge's ORDER BY"), e.getMessage());
    assertEquals(1, bad.closes);
    assertEquals(1, ok.closes);
  }

  // ---- offset and limit -----------------------------------------------------------------------------

  static List<RowSource> roundRobin(int shards, int rows) {
    List<List<Object[]>> parts = new ArrayList<>();
    for (int s = 0; s < shards; s++) {
      parts.add(new ArrayList<>());
    }
    for (int i = 0; i < rows; i++) {
      parts.get(i % shards).add(row((long) i));
    }
    List<RowSource> out = new ArrayList<>();
    for (List<Object[]> p : parts) {
      out.add(new FakeSource(p));
    }
    return out;
  }

  static List<Long> values(List<Object[]> rows) {
    List<Long> out = new ArrayList<>();
    for (Object[] r : rows) {
      out.add((Long) r[0]);
    }
    return out;
  }

  static final List<SortKey> ASC = List.of(new SortKey(0, false, false));

  @Test
  void offsetAndLimitSkipExactlyAndKeepExactly() throws SQLException {
    assertEquals(List.of(5L, 6L, 7L, 8L, 9L, 10L, 11L), values(drain(Merger.open(
        plain(1, ASC, Bound.of(5), Bound.of(7)), roundRobin(3, 30), List.of(), options(1, INT8)))));
    assertEquals(List.of(28L, 29L), values(drain(Merger.open(
        plain(1, ASC, Bound.of(28), Bound.of(7)), roundRobin(3, 30), List.of(), options(1, INT8)))));
    assertEquals(List.of(), values(drain(Merger.open(
        plain(1, ASC, Bound.of(30), Bound.NONE), roundRobin(3, 30), List.of(), options(1, INT8)))));
    assertEquals(List.of(0L), values(drain(Merger.open(
        plain(1, ASC, Bound.NONE, Bound.of(1)), roundRobin(3, 30), List.of(), options(1, INT8)))));
    assertEquals(List.of(29L), values(drain(Merger.open(
        plain(1, ASC, Bound.of(29), Bound.NONE), roundRobin(3, 30), List.of(), options(1, INT8)))));
  }

  @Test
  void limitZeroReadsNothingAndLimitStopsReading() throws SQLException {
    List<RowSource> shards = roundRobin(3, 300);
    assertEquals(0, drain(Merger.open(plain(1, ASC, Bound.of(10), Bound.of(0)), shards, List.of(),
        options(1, INT8))).size());
    assertEquals(0, shards.stream().mapToInt(s -> ((FakeSource) s).pulled).sum());
    List<RowSource> more = roundRobin(3, 300);
    RowSource merged = Merger.open(plain(1, ASC, Bound.NONE, Bound.of(4)), more, List.of(), options(1, INT8));
    assertEquals(List.of(0L, 1L, 2L, 3L), values(drain(merged)));
    assertTrue(more.stream().mapToInt(s -> ((FakeSource) s).pulled).sum() <= 4 + 3);
  }

  @Test
  void deepOffsetIsSkippedWhileMergingHoldingOneRowPerShard() throws SQLException {
    int shards = 4;
    List<RowSource> sources = roundRobin(shards, 40_000);
    // A cap of one row proves nothing is buffered: a plain merge takes nothing from the budget.
    RowSource merged = Merger.open(plain(1, ASC, Bound.param(0), Bound.param(1)), sources,
        List.of(30_000L, 3), options(1, INT8));
    assertEquals(30_000L, merged.next()[0]);
    int pulled = sources.stream().mapToInt(s -> ((FakeSource) s).pulled).sum();
    assertTrue(pulled <= 30_001 + shards, "read " + pulled + " rows for the first answer row");
    assertEquals(30_001L, merged.next()[0]);
    assertEquals(30_002L, merged.next()[0]);
    assertNull(merged.next());
    merged.close();
  }

  @Test
  void boundsFromParametersMustBeNonNegativeIntegers() throws SQLException {
    MergeSpec spec = plain(1, ASC, Bound.param(1), Bound.param(0));
    assertEquals(List.of(2L, 3L), values(drain(Merger.open(spec, roundRobin(2, 10),
        Arrays.asList(2, new BigDecimal("2")), options(1, INT8)))));
    // NULL is PostgreSQL's LIMIT ALL / OFFSET 0.
    assertEquals(10, drain(Merger.open(spec, roundRobin(2, 10), Arrays.asList(null, null),
        options(1, INT8))).size());
    for (Object bad : new Object[] {-1, -1L, "3", 2.5, new BigDecimal("2.5")}) {
      List<RowSource> shards = roundRobin(2, 10);
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> Merger.open(spec, shards, Arrays.asList(bad, 0), options(1, INT8)));
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      assertTrue(e.getMessage().contains("parameter 1 (LIMIT) must be a non-negative integer"),
          e.getMessage());
      shards.forEach(s -> assertEquals(1, ((FakeSource) s).closes, "refused before merging: closed"));
    }
    assertThrows(ShardmapException.class, () -> Merger.open(spec, roundRobin(2, 10), List.of(1),
        options(1, INT8)));
  }

  @Test
  void projectionPicksColumnsDroppingHiddenSortColumns() throws SQLException {
    MergeSpec spec = new MergeSpec(3, List.of(new SortKey(2, true, true)), null, List.of(), Bound.NONE,
        Bound.NONE, List.of(1, 0));
    List<Object[]> out = drain(Merger.open(spec,
        List.of(FakeSource.of(row(1L, "a", null), row(2L, "b", 5L)), FakeSource.of(row(3L, "c", 7L))),
        List.of(), options(1, INT8, TEXT, INT8)));
    assertArrayEquals(row("a", 1L), out.get(0)); // DESC NULLS FIRST
    assertArrayEquals(row("c", 3L), out.get(1));
    assertArrayEquals(row("b", 2L), out.get(2));
  }

  @Test
  void unorderedPlainMergeConcatenatesAllShards() throws SQLException {
    assertEquals(30, drain(Merger.open(plain(1, List.of(), Bound.NONE, Bound.NONE), roundRobin(3, 30),
        List.of(), options(1, INT8))).size());
  }

  // ---- aggregation ----------------------------------------------------------------------------------

  /** Shard rows: [group, count, sum, min, max, avgSum, avgCount]. */
  static final Aggregation ALL_KINDS = new Aggregation(List.of(0), List.of(
      new Aggregate(Kind.COUNT, 1, -1), new Aggregate(Kind.SUM, 2, -1), new Aggregate(Kind.MIN, 3, -1),
      new Aggregate(Kind.MAX, 4, -1), new Aggregate(Kind.AVG, 5, 6)), null, null);

  @Test
  void partialAggregatesCombinePerGroupAsOneDatabaseWould() throws SQLException {
    FakeSource s1 = FakeSource.of(row("x", 2L, 10L, "b", "m", 10L, 2L), row(null, 1L, null, null, null, null, 0L));
    FakeSource s2 = FakeSource.of(row("x", 1L, 5L, "a", "z", 5L, 1L), row("y", 3L, 7L, "q", "q", 7L, 3L));
    FakeSource s3 = FakeSource.of(row(null, 4L, 1L, "k", "k", 1L, 1L));
    List<Object[]> out = drain(Merger.open(grouped(7, ALL_KINDS, 6, List.of(new SortKey(0, false, false)),
        Bound.NONE, Bound.NONE), List.of(s1, s2, s3), List.of(), options(10, TEXT, INT8, INT8, TEXT, TEXT,
        INT8, INT8)));
    assertEquals(3, out.size());
    assertArrayEquals(row("x", 3L, 15L, "a", "z", new BigDecimal("5.0000000000000000")), out.get(0));
    assertArrayEquals(row("y", 3L, 7L, "q", "q", new BigDecimal("2.3333333333333333")), out.get(1));
    assertArrayEquals(row(null, 5L, 1L, "k", "k", new BigDecimal("1.00000000000000000000")), out.get(2));
  }

  @Test
  void avgIsTheSumOfSumsOverTheSumOfCountsWithNumericScale() throws SQLException {
    // Averaging the shards' averages would give (1 + 5) / 2 = 3; the true average is 16 / 4 = 4.
    Aggregation avg = new Aggregation(List.of(), List.of(new Aggregate(Kind.AVG, 0, 1)), null, null);
    List<Object[]> out = drain(Merger.open(grouped(2, avg, 1, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(new BigDecimal("1.0"), 1L)), FakeSource.of(row(new BigDecimal("15.00"), 3L))),
        List.of(), options(1, NUMERIC, INT8)));
    assertEquals(new BigDecimal("4.0000000000000000"), out.get(0)[0]);
    assertEquals(16, ((BigDecimal) out.get(0)[0]).scale());
    // float8: double division; a count of 0 gives NULL.
    assertEquals(2.5, drain(Merger.open(grouped(2, avg, 1, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(2.0, 1L)), FakeSource.of(row(3.0, 1L))), List.of(),
        options(1, FLOAT8, INT8))).get(0)[0]);
    assertNull(drain(Merger.open(grouped(2, avg, 1, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(null, 0L)), FakeSource.of()), List.of(), options(1, NUMERIC, INT8)))
        .get(0)[0]);
    // numeric NaN (a Double from PgJDBC) poisons the sum and the average.
    assertEquals(Double.NaN, drain(Merger.open(grouped(2, avg, 1, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(Double.NaN, 1L)), FakeSource.of(row(new BigDecimal("2"), 1L))), List.of(),
        options(1, NUMERIC, INT8))).get(0)[0]);
  }

  @Test
  void withoutGroupByThereIsOneGroupEvenOverNoRows() throws SQLException {
    Aggregation agg = new Aggregation(List.of(), List.of(new Aggregate(Kind.COUNT, 0, -1),
        new Aggregate(Kind.SUM, 1, -1), new Aggregate(Kind.MAX, 1, -1),
        new Aggregate(Kind.COUNT_DISTINCT, 2, -1)), 2, null);
    List<Object[]> out = drain(Merger.open(grouped(3, agg, 4, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(), FakeSource.of()), List.of(), options(5, INT8, INT8, INT4)));
    assertEquals(1, out.size());
    assertArrayEquals(row(0L, null, null, 0L), out.get(0));
    // With GROUP BY, no rows means no groups.
    Aggregation byGroup = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 1, -1)), null, null);
    assertEquals(0, drain(Merger.open(grouped(2, byGroup, 2, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of()), List.of(), options(5, INT8, INT8))).size());
  }

  @Test
  void sumKeepsTypesAndFailsOnBigintOverflowLikePostgres() throws SQLException {
    Aggregation sum = new Aggregation(List.of(), List.of(new Aggregate(Kind.SUM, 0, -1)), null, null);
    MergeSpec spec = grouped(1, sum, 1, List.of(), Bound.NONE, Bound.NONE);
    assertEquals(new BigDecimal("3.50"), drain(Merger.open(spec, List.of(FakeSource.of(row(new BigDecimal("1.5"))),
        FakeSource.of(row(new BigDecimal("2.00")))), List.of(), options(1, NUMERIC))).get(0)[0]);
    assertEquals(Long.MAX_VALUE, drain(Merger.open(spec, List.of(FakeSource.of(row(Long.MAX_VALUE - 1)),
        FakeSource.of(row(1L), row((Object) null))), List.of(), options(1, INT8))).get(0)[0]);
    FakeSource a = FakeSource.of(row(Long.MAX_VALUE));
    FakeSource b = FakeSource.of(row(1L));
    RowSource merged = Merger.open(spec, List.of(a, b), List.of(), options(1, INT8));
    SQLException e = assertThrows(SQLException.class, merged::next);
    assertEquals("22003", e.getSQLState());
    assertEquals("bigint out of range", e.getMessage());
    assertEquals(1, a.closes);
    assertEquals(1, b.closes);
    assertThrows(SQLException.class, () -> drain(Merger.open(spec, List.of(FakeSource.of(row(Double.MAX_VALUE)),
        FakeSource.of(row(Double.MAX_VALUE))), List.of(), options(1, FLOAT8))));
  }

  @Test
  void groupsUnitePostgresEqualValuesAndOutputTheFirstSeen() throws SQLException {
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 1, -1)), null, null);
    List<Object[]> out = drain(Merger.open(grouped(2, agg, 2, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(new BigDecimal("1.0"), 1L), row(Double.NaN, 1L)),
            FakeSource.of(row(new BigDecimal("1.00"), 2L), row(new BigDecimal("1"), 1L), row(Double.NaN, 1L))),
        List.of(), options(5, NUMERIC, INT8)));
    assertEquals(2, out.size());
    assertEquals("1.0", out.get(0)[0].toString());
    assertEquals(4L, out.get(0)[1]);
    assertEquals(2L, out.get(1)[1]);
  }

  @Test
  void distinctIsAGroupByWithoutAggregates() throws SQLException {
    Aggregation distinct = new Aggregation(List.of(0, 1), List.of(), null, null);
    List<Object[]> out = drain(Merger.open(grouped(2, distinct, 2, List.of(new SortKey(0, false, false),
        new SortKey(1, false, false)), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(1, "a"), row(2, null)), FakeSource.of(row(1L, "a"), row(2L, null), row(1L, "b"))),
        List.of(), options(10, INT8, TEXT)));
    assertEquals(3, out.size());
    assertArrayEquals(row(1, "a"), out.get(0));
    assertArrayEquals(row(1L, "b"), out.get(1));
    assertArrayEquals(row(2, null), out.get(2));
  }

  @Test
  void countDistinctCountsValuesAcrossShardsOnce() throws SQLException {
    // SELECT g, COUNT(DISTINCT v), COUNT(*) GROUP BY g; each shard groups by (g, v).
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT_DISTINCT, 1, -1),
        new Aggregate(Kind.COUNT, 2, -1)), 1, null);
    List<Object[]> out = drain(Merger.open(grouped(3, agg, 3, List.of(new SortKey(0, false, false)),
        Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row("g", 1, 2L), row("g", 2, 1L), row("g", null, 4L)),
            FakeSource.of(row("g", 1L, 1L), row("g", 3, 1L), row("h", null, 1L))),
        List.of(), options(10, TEXT, INT4, INT8)));
    assertArrayEquals(row("g", 3L, 9L), out.get(0));
    assertArrayEquals(row("h", 0L, 1L), out.get(1));
  }

  @Test
  void havingUsesThreeValuedLogicAndNumericPromotion() throws SQLException {
    // group row: [g, count, sum]; HAVING count * 2 > $1 AND (sum IS NOT NULL OR sum > 0)
    Expr cond = new Expr.And(
        new Expr.Compare(Expr.CompareOp.GT, new Expr.Arithmetic(Expr.ArithmeticOp.MULTIPLY,
            new Expr.Column(1), new Expr.Literal(2L)), new Expr.Param(0)),
        new Expr.Or(new Expr.IsNull(new Expr.Column(2), true),
            new Expr.Compare(Expr.CompareOp.GT, new Expr.Column(2), new Expr.Literal(0L))));
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 1, -1),
        new Aggregate(Kind.SUM, 2, -1)), null, cond);
    List<Object[]> out = drain(Merger.open(grouped(3, agg, 3, List.of(new SortKey(0, false, false)),
        Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row("a", 2L, 5L), row("b", 1L, null), row("c", 5L, null)),
            FakeSource.of(row("a", 1L, null), row("b", 1L, null), row("d", 3L, new BigDecimal("0.5")))),
        List.of(new BigDecimal("4.5")), options(10, TEXT, INT8, NUMERIC)));
    assertEquals(List.of("a", "d"), out.stream().map(r -> r[0]).toList());
  }

  @Test
  void havingExpressionSemantics() throws SQLException {
    Having h = new Having(FakeSource.of(), null, List.of(INT8, TEXT, NUMERIC, FLOAT8), List.of());
    Object[] r = row(7L, "B", new BigDecimal("2"), 0.5);
    assertEquals(3L, h.eval(new Expr.Arithmetic(Expr.ArithmeticOp.DIVIDE, new Expr.Column(0),
        new Expr.Literal(2L)), r), "bigint division truncates");
    assertEquals(new BigDecimal("3.5000000000000000"), h.eval(new Expr.Arithmetic(Expr.ArithmeticOp.DIVIDE,
        new Expr.Column(0), new Expr.Column(2)), r));
    assertEquals(14.0, h.eval(new Expr.Arithmetic(Expr.ArithmeticOp.DIVIDE, new Expr.Column(0),
        new Expr.Column(3)), r));
    assertEquals("22012", assertThrows(SQLException.class, () -> h.eval(new Expr.Arithmetic(
        Expr.ArithmeticOp.DIVIDE, new Expr.Column(0), new Expr.Literal(0L)), r)).getSQLState());
    assertNull(h.eval(new Expr.Arithmetic(Expr.ArithmeticOp.ADD, new Expr.Column(0), new Expr.Literal(null)), r));
    Expr nul = new Expr.Compare(Expr.CompareOp.EQ, new Expr.Literal(null), new Expr.Literal(1L));
    Expr t = new Expr.Literal(true);
    Expr f = new Expr.Literal(false);
    assertNull(h.eval(nul, r));
    assertNull(h.eval(new Expr.Not(nul), r));
    assertEquals(false, h.eval(new Expr.And(nul, f), r));
    assertNull(h.eval(new Expr.And(nul, t), r));
    assertEquals(true, h.eval(new Expr.Or(nul, t), r));
    assertNull(h.eval(new Expr.Or(f, nul), r));
    assertEquals(true, h.eval(new Expr.IsNull(nul, false), r));
    // text: C collation puts 'B' before 'a'
    assertEquals(true, h.eval(new Expr.Compare(Expr.CompareOp.LT, new Expr.Column(1), new Expr.Literal("a")), r));
    assertEquals(true, h.eval(new Expr.Compare(Expr.CompareOp.EQ, new Expr.Column(2),
        new Expr.Literal(new BigDecimal("2.000"))), r));
    assertEquals(true, h.eval(new Expr.Compare(Expr.CompareOp.GT, new Expr.Column(3),
        new Expr.Literal(new BigDecimal("0.4999"))), r));
    assertThrows(ShardmapException.class, () -> h.eval(new Expr.Compare(Expr.CompareOp.LT, new Expr.Column(1),
        new Expr.Literal(1L)), r));
    assertThrows(ShardmapException.class, () -> h.eval(new Expr.Param(3), r));
  }

  // ---- final order, memory cap ----------------------------------------------------------------------

  @Test
  void finalOrderSortsGroupRowsThenOffsetAndLimit() throws SQLException {
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.SUM, 1, -1)), null, null);
    List<FakeSource> shards = new ArrayList<>();
    for (int s = 0; s < 3; s++) {
      List<Object[]> rows = new ArrayList<>();
      for (int g = 0; g < 20; g++) {
        rows.add(row((long) g, (long) ((g * 7) % 20)));
      }
      shards.add(new FakeSource(rows));
    }
    // ORDER BY sum DESC OFFSET 3 LIMIT 4: sums are 3 * ((g*7) % 20), all distinct.
    List<Object[]> out = drain(Merger.open(grouped(2, agg, 2, List.of(new SortKey(1, true, true)),
        Bound.of(3), Bound.of(4)), new ArrayList<>(shards), List.of(), options(20, INT8, INT8)));
    assertEquals(List.of(48L, 45L, 42L, 39L), out.stream().map(r -> r[1]).toList());
  }

  @Test
  void groupByPastTheCapFailsNamingClauseLimitAndOption() {
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 1, -1)), null, null);
    List<Object[]> rows = new ArrayList<>();
    for (int g = 0; g < 11; g++) {
      rows.add(row((long) g, 1L));
    }
    FakeSource s = new FakeSource(rows);
    RowSource merged = Merger.open(grouped(2, agg, 2, List.of(), Bound.NONE, Bound.NONE), List.of(s),
        List.of(), options(10, INT8, INT8));
    ShardmapException e = assertThrows(ShardmapException.class, merged::next);
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith("GROUP BY:"), e.getMessage());
    assertTrue(e.getMessage().contains("more than 10 groups"), e.getMessage());
    assertTrue(e.getMessage().contains("maxInMemoryRows"), e.getMessage());
    assertEquals(1, s.closes);
    // Exactly at the cap is fine.
    assertEquals(10, assertDoesNotFail(() -> drain(Merger.open(grouped(2, agg, 2, List.of(), Bound.NONE,
        Bound.NONE), List.of(new FakeSource(rows.subList(0, 10))), List.of(), options(10, INT8, INT8)))).size());
    Aggregation distinct = new Aggregation(List.of(0), List.of(), null, null);
    ShardmapException d = assertThrows(ShardmapException.class, () -> drain(Merger.open(grouped(2, distinct,
        1, List.of(), Bound.NONE, Bound.NONE), List.of(new FakeSource(rows)), List.of(), options(10, INT8, INT8))));
    assertTrue(d.getMessage().startsWith("DISTINCT or GROUP BY:"), d.getMessage());
  }

  @Test
  void countDistinctValuesCountAgainstTheCap() {
    Aggregation agg = new Aggregation(List.of(), List.of(new Aggregate(Kind.COUNT_DISTINCT, 0, -1)), 0, null);
    List<Object[]> rows = new ArrayList<>();
    for (int v = 0; v < 10; v++) {
      rows.add(row((long) v));
    }
    ShardmapException e = assertThrows(ShardmapException.class, () -> drain(Merger.open(grouped(1, agg, 1,
        List.of(), Bound.NONE, Bound.NONE), List.of(new FakeSource(rows)), List.of(), options(10, INT8))));
    assertTrue(e.getMessage().startsWith("COUNT(DISTINCT):"), e.getMessage());
  }

  @Test
  void memorySortHoldsOnlyOffsetPlusLimitRowsWhenBounded() throws SQLException {
    List<Object[]> rows = new ArrayList<>();
    SplittableRandom rnd = new SplittableRandom(3);
    for (int i = 0; i < 1000; i++) {
      rows.add(row((long) rnd.nextInt(100_000), (long) i));
    }
    RowOrder order = new RowOrder(List.of(new SortKey(0, false, false)), List.of(INT8, INT8), "ORDER BY");
    MemoryBudget budget = new MemoryBudget(5);
    List<Object[]> top = drain(new MemorySort(new FakeSource(rows), order, 5, budget));
    List<Object[]> expected = new ArrayList<>(rows);
    expected.sort(order);
    assertEquals(5, top.size());
    for (int i = 0; i < 5; i++) {
      assertArrayEquals(expected.get(i), top.get(i));
    }
    assertEquals(0, budget.used());
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> drain(new MemorySort(new FakeSource(rows), order, -1, new MemoryBudget(999))));
    assertTrue(e.getMessage().startsWith("ORDER BY:"), e.getMessage());
    assertTrue(e.getMessage().contains("999"), e.getMessage());
  }

  // ---- closing ----------------------------------------------------------------------------------------

  @Test
  void closingClosesEveryShardEvenWhenOneCloseThrows() {
    FakeSource a = FakeSource.of(row(1L));
    FakeSource b = FakeSource.of(row(2L));
    FakeSource c = FakeSource.of(row(3L));
    b.closeFailure = new IllegalStateException("b cannot close");
    RowSource merged = Merger.open(plain(1, ASC, Bound.NONE, Bound.NONE), List.of(a, b, c), List.of(),
        options(1, INT8));
    IllegalStateException e = assertThrows(IllegalStateException.class, merged::close);
    assertSame(b.closeFailure, e);
    assertEquals(1, a.closes);
    assertEquals(1, b.closes);
    assertEquals(1, c.closes);
    merged.close(); // idempotent
    assertEquals(1, a.closes);
  }

  @Test
  void aShardErrorPropagatesAndClosesTheOthers() {
    FakeSource a = FakeSource.of(row(1L), row(4L));
    FakeSource b = FakeSource.of(row(2L), row(3L));
    b.failAfter = 1;
    b.failure = new SQLException("shard 1 lost its connection", "08006");
    FakeSource c = FakeSource.of(row(5L));
    c.closeFailure = new IllegalStateException("c cannot close");
    RowSource merged = Merger.open(plain(1, ASC, Bound.NONE, Bound.NONE), List.of(a, b, c), List.of(),
        options(1, INT8));
    SQLException e = assertThrows(SQLException.class, () -> drain(merged));
    assertSame(b.failure, e);
    assertSame(c.closeFailure, e.getSuppressed()[0]);
    assertEquals(1, a.closes);
    assertEquals(1, b.closes);
    assertEquals(1, c.closes);
  }

  @Test
  void refusedSpecsCloseTheShardsAndNameTheProblem() {
    FakeSource a = FakeSource.of();
    ShardmapException e = assertThrows(ShardmapException.class, () -> Merger.open(
        plain(1, List.of(new SortKey(0, false, false)), Bound.NONE, Bound.NONE), List.of(a), List.of(),
        new MergeOptions(1, List.of(new ColumnType("text", new Collation("de_DE", 'c', "de_DE.utf8", true))))));
    assertTrue(e.getMessage().contains("column 1"), e.getMessage());
    assertEquals(1, a.closes);
    FakeSource b = FakeSource.of();
    assertThrows(ShardmapException.class, () -> Merger.open(new MergeSpec(2, List.of(), null, List.of(),
        Bound.NONE, Bound.NONE, List.of(2)), List.of(b), List.of(), options(1, INT8, INT8)));
    assertEquals(1, b.closes);
  }

  @Test
  void aRowOfTheWrongWidthFails() {
    RowSource merged = Merger.open(plain(2, List.of(), Bound.NONE, Bound.NONE),
        List.of(FakeSource.of(row(1L))), List.of(), options(1, INT8, INT8));
    assertThrows(ShardmapException.class, merged::next);
  }

  interface Body<T> {
    T run() throws Exception;
  }

  static <T> T assertDoesNotFail(Body<T> body) {
    try {
      return body.run();
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }
}
