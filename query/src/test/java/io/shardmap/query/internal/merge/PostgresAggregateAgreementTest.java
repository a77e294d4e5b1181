package io.shardmap.query.internal.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.query.ColumnType;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.RowSource;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Aggregation;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.testkit.PostgresFixture;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * AVG, SUM and COUNT merged from three partitions' partial aggregates against PostgreSQL 15's own
 * aggregates over all rows: thousands of random groups of int4, int8 and numeric values (NULLs, trailing
 * zeros, magnitudes from 1e-6 to 1e18, NaN, whole-NULL groups). Equal means the same JDBC class and
 * {@code equals}: a BigDecimal's scale included.
 */
@Tag("integration")
class PostgresAggregateAgreementTest {
  static final int CASES = 4000;
  static Connection conn;

  @BeforeAll
  static void setUp() throws SQLException {
    conn = PostgresFixture.shared(1).shard(0).connect();
    try (Statement s = conn.createStatement()) {
      s.execute("DROP TABLE IF EXISTS qmerge_avg");
      s.execute("CREATE TABLE qmerge_avg (c int, part int, i4 int4, i8 int8, n numeric)");
      s.execute("SELECT setseed(0.25)");
      // Per (case, partition) 0..5 rows; every 50th case all NULL; every 97th holds a numeric NaN.
      s.execute("INSERT INTO qmerge_avg "
          + "SELECT c, p,"
          + " CASE WHEN c % 50 = 0 OR random() < 0.1 THEN NULL"
          + "      WHEN c % 3 = 0 THEN (random() * 4294967295 - 2147483648)::int4"
          + "      ELSE (random() * 2000 - 1000)::int4 END,"
          + " CASE WHEN c % 50 = 0 OR random() < 0.1 THEN NULL"
          + "      WHEN c % 3 = 1 THEN ((random() - 0.5) * 1.8e19)::numeric::int8"
          + "      ELSE (random() * 2e6 - 1e6)::int8 END,"
          + " CASE WHEN c % 50 = 0 OR random() < 0.1 THEN NULL"
          + "      WHEN c % 97 = 0 AND k = 1 THEN 'NaN'::numeric"
          + "      ELSE round(((random() - 0.5) * 10 ^ (floor(random() * 24) - 6))::numeric,"
          + "                 floor(random() * 9)::int) END"
          + " FROM generate_series(1, " + CASES + ") c, generate_series(0, 2) p,"
          + " LATERAL generate_series(1, floor(random() * 6)::int + 0 * c) k");
    }
  }

  @AfterAll
  static void tearDown() throws SQLException {
    conn.close();
  }

  @Test
  void avgSumAndCountFromPartitionsEqualPostgresOverAllRows() throws SQLException {
    String partials = "SELECT c, sum(i4), count(i4), sum(i8), count(i8), sum(n), count(n), count(*)"
        + " FROM qmerge_avg WHERE part = %d GROUP BY c";
    List<RowSource> shards = new ArrayList<>();
    List<ColumnType> types = null;
    for (int p = 0; p < 3; p++) {
      List<Object[]> rows = new ArrayList<>();
      types = query(String.format(partials, p), rows);
      shards.add(new FakeSource(rows));
    }
    // Group row: [c, avg(i4), sum(i4), count(i4), avg(i8), sum(i8), count(i8), avg(n), sum(n), count(n), count(*)]
    Aggregation agg = new Aggregation(List.of(0), List.of(
        new Aggregate(Kind.AVG, 1, 2), new Aggregate(Kind.SUM, 1, -1), new Aggregate(Kind.COUNT, 2, -1),
        new Aggregate(Kind.AVG, 3, 4), new Aggregate(Kind.SUM, 3, -1), new Aggregate(Kind.COUNT, 4, -1),
        new Aggregate(Kind.AVG, 5, 6), new Aggregate(Kind.SUM, 5, -1), new Aggregate(Kind.COUNT, 6, -1),
        new Aggregate(Kind.COUNT, 7, -1)), null, null);
    List<Integer> all = new ArrayList<>();
    for (int i = 0; i < 11; i++) {
      all.add(i);
    }
    List<Object[]> merged = MergerTest.drain(Merger.open(new MergeSpec(8, List.of(), agg, List.of(), Bound.NONE,
        Bound.NONE, all), shards, List.of(), new MergeOptions(CASES + 1, types)));
    List<Object[]> expected = new ArrayList<>();
    query("SELECT c, avg(i4), sum(i4), count(i4), avg(i8), sum(i8), count(i8), avg(n), sum(n), count(n), count(*)"
        + " FROM qmerge_avg GROUP BY c", expected);
    Map<Object, Object[]> byCase = new HashMap<>();
    for (Object[] r : merged) {
      byCase.put(r[0], r);
    }
    assertEquals(expected.size(), merged.size());
    String[] names = {"c", "avg(i4)", "sum(i4)", "count(i4)", "avg(i8)", "sum(i8)", "count(i8)", "avg(n)",
        "sum(n)", "count(n)", "count(*)"};
    int nonNullAvgs = 0;
    int nan = 0;
    for (Object[] e : expected) {
      Object[] m = byCase.get(e[0]);
      for (int i = 1; i < e.length; i++) {
        Object want = e[i];
        Object got = m[i];
        if (want != null && got != null) {
          assertEquals(want.getClass(), got.getClass(), "case " + e[0] + " " + names[i]);
        }
        assertEquals(want, got, "case " + e[0] + " " + names[i]);
      }
      nonNullAvgs += (e[1] != null ? 1 : 0) + (e[4] != null ? 1 : 0) + (e[7] != null ? 1 : 0);
      nan += e[7] instanceof Double ? 1 : 0;
    }
    assertTrue(expected.size() > CASES * 9 / 10, "cases compared: " + expected.size());
    assertTrue(nonNullAvgs > 3 * CASES * 8 / 10, "non-null averages compared: " + nonNullAvgs);
    assertTrue(nan > 10, "NaN averages compared: " + nan);
  }

  static List<ColumnType> query(String sql, List<Object[]> out) throws SQLException {
    try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      ResultSetMetaData md = rs.getMetaData();
      List<ColumnType> types = new ArrayList<>();
      for (int i = 1; i <= md.getColumnCount(); i++) {
        types.add(new ColumnType(md.getColumnTypeName(i), null));
      }
      while (rs.next()) {
        Object[] r = new Object[md.getColumnCount()];
        for (int i = 0; i < r.length; i++) {
          r[i] = rs.getObject(i + 1);
        }
        out.add(r);
      }
      return types;
    }
  }
}
