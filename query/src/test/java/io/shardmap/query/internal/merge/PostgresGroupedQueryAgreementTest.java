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
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import io.shardmap.query.internal.merge.MergeSpec.SortKey;
import io.shardmap.testkit.PostgresFixture;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Whole aggregated merges (groups, MIN/MAX of ICU text, AVG, COUNT(DISTINCT), HAVING, a final ORDER BY,
 * OFFSET and LIMIT; DISTINCT in C) from three partitions' hand-written partial statements, against the
 * same SELECT that PostgreSQL 15 answers over all rows: the same rows in the same order, values equal.
 */
@Tag("integration")
class PostgresGroupedQueryAgreementTest {
  static Connection conn;

  @BeforeAll
  static void setUp() throws SQLException {
    conn = PostgresFixture.shared(1).shard(0).connect();
    try (Statement s = conn.createStatement()) {
      s.execute("DROP TABLE IF EXISTS qmerge_grouped");
      s.execute("CREATE TABLE qmerge_grouped (g int, part int, i4 int4, n numeric,"
          + " t text COLLATE \"en-x-icu\", tc text COLLATE \"C\")");
      s.execute("SELECT setseed(0.5)");
      String pieces = "ARRAY['a','A','b','é','e','E','ß','ss','日','😀','Å','z','']";
      s.execute("INSERT INTO qmerge_grouped SELECT (random() * 300)::int, (random() * 2)::int,"
          + " CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 20)::int END,"
          + " CASE WHEN random() < 0.1 THEN NULL ELSE round((random() * 1000)::numeric, (random() * 4)::int) END,"
          + " CASE WHEN random() < 0.1 THEN NULL ELSE (" + pieces + ")[1 + (random() * 12)::int]"
          + "   || (" + pieces + ")[1 + (random() * 12)::int] END,"
          + " CASE WHEN random() < 0.1 THEN NULL ELSE (" + pieces + ")[1 + (random() * 12)::int]"
          + "   || (" + pieces + ")[1 + (random() * 12)::int] END"
          + " FROM generate_series(1, 6000)");
    }
  }

  @AfterAll
  static void tearDown() throws SQLException {
    conn.close();
  }

  @Test
  void groupByWithMinMaxAvgCountDistinctHavingOrderOffsetLimit() throws SQLException {
    String expectedSql = "SELECT g, count(*), sum(i4), min(t), max(t), avg(n), count(DISTINCT i4)"
        + " FROM qmerge_grouped GROUP BY g HAVING count(*) > 18 AND sum(i4) IS NOT NULL"
        + " ORDER BY max(t) DESC, g OFFSET 3 LIMIT 40";
    // The shard statement groups by the COUNT(DISTINCT) argument too; AVG travels as sum and count.
    String partial = "SELECT g, i4, count(*), sum(i4), min(t), max(t), sum(n), count(n)"
        + " FROM qmerge_grouped WHERE part = %d GROUP BY g, i4";
    Aggregation agg = new Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 2, -1),
        new Aggregate(Kind.SUM, 3, -1), new Aggregate(Kind.MIN, 4, -1), new Aggregate(Kind.MAX, 5, -1),
        new Aggregate(Kind.AVG, 6, 7), new Aggregate(Kind.COUNT_DISTINCT, 1, -1)), 1,
        new Expr.And(new Expr.Compare(Expr.CompareOp.GT, new Expr.Column(1), new Expr.Param(0)),
            new Expr.IsNull(new Expr.Column(2), true)));
    MergeSpec spec = new MergeSpec(8, List.of(), agg, List.of(new SortKey(4, true, true),
        new SortKey(0, false, false)), Bound.param(1), Bound.param(2), List.of(0, 1, 2, 3, 4, 5, 6));
    compare(expectedSql, partial, spec, List.of(18L, 3L, 40L), 40);
  }

  @Test
  void distinctTextInCWithOrderBy() throws SQLException {
    String expectedSql = "SELECT DISTINCT tc FROM qmerge_grouped ORDER BY tc DESC NULLS LAST";
    String partial = "SELECT DISTINCT tc FROM qmerge_grouped WHERE part = %d";
    MergeSpec spec = new MergeSpec(1, List.of(), new Aggregation(List.of(0), List.of(), null, null),
        List.of(new SortKey(0, true, false)), Bound.NONE, Bound.NONE, List.of(0));
    compare(expectedSql, partial, spec, List.of(), 100);
  }

  @Test
  void aggregatesWithoutGroupByOverNoRows() throws SQLException {
    String expectedSql = "SELECT count(*), sum(i4), max(t), avg(n) FROM qmerge_grouped WHERE g < 0";
    String partial = "SELECT count(*), sum(i4), max(t), sum(n), count(n) FROM qmerge_grouped"
        + " WHERE g < 0 AND part = %d";
    MergeSpec spec = new MergeSpec(5, List.of(), new Aggregation(List.of(), List.of(
        new Aggregate(Kind.COUNT, 0, -1), new Aggregate(Kind.SUM, 1, -1), new Aggregate(Kind.MAX, 2, -1),
        new Aggregate(Kind.AVG, 3, 4)), null, null), List.of(), Bound.NONE, Bound.NONE, List.of(0, 1, 2, 3));
    compare(expectedSql, partial, spec, List.of(), 1);
  }

  void compare(String expectedSql, String partialSql, MergeSpec spec, List<Object> params, int minRows)
      throws SQLException {
    List<RowSource> shards = new ArrayList<>();
    List<ColumnType> types = null;
    for (int p = 0; p < 3; p++) {
      List<Object[]> rows = new ArrayList<>();
      types = query(String.format(partialSql, p), rows);
      shards.add(new FakeSource(rows));
    }
    List<Object[]> merged = MergerTest.drain(Merger.open(spec, shards, params, new MergeOptions(100_000, types)));
    List<Object[]> expected = new ArrayList<>();
    query(expectedSql, expected);
    assertTrue(expected.size() >= minRows, "the query must select enough rows to mean something: "
        + expected.size());
    assertEquals(expected.size(), merged.size());
    for (int i = 0; i < expected.size(); i++) {
      assertEquals(Arrays.asList(expected.get(i)), Arrays.asList(merged.get(i)), "row " + i);
    }
  }

  /** The rows and the column types with their collations, as the SDK's probe gives them. */
  static List<ColumnType> query(String sql, List<Object[]> out) throws SQLException {
    try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      ResultSetMetaData md = rs.getMetaData();
      List<ColumnType> types = new ArrayList<>();
      for (int i = 1; i <= md.getColumnCount(); i++) {
        String col = md.getColumnName(i);
        ColumnType.Collation coll = null;
        if (col.equals("t") || col.equals("min") || col.equals("max")) {
          coll = new ColumnType.Collation("en-x-icu", 'i', "en", true);
        } else if (col.equals("tc")) {
          coll = new ColumnType.Collation("C", 'c', "C", true);
        }
        types.add(new ColumnType(md.getColumnTypeName(i), coll));
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
