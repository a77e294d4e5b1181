package io.shardmap.query.internal.plan;

import static io.shardmap.query.Merge.asc;
import static io.shardmap.query.Merge.desc;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.Merge;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import io.shardmap.query.RowSource;
import io.shardmap.query.ShardStatement;
import java.math.BigDecimal;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Explicit merges: the statement runs on the shards as written (plus the ownership predicate), what the
 * derived planner refuses is accepted where it is per-shard work, the caller's merge combines the rows, and
 * what still cannot run (writes, locks, WITH) or a merge that does not fit the columns is refused naming it.
 */
@Tag("unit")
class ExplicitMergeTest {
  static final ColumnType.Collation C = new ColumnType.Collation("C", 'c', "C", true);
  static final ColumnType INT8 = new ColumnType("int8", null);
  static final ColumnType NUMERIC = new ColumnType("numeric", null);
  static final ColumnType TEXT = new ColumnType("text", C);

  static QueryPlan plan(String sql, Merge merge) {
    return QueryPlanner.plan(sql, PlannerTest.TABLES, merge);
  }

  static RowSource rows(Object[]... rows) {
    Iterator<Object[]> it = List.of(rows).iterator();
    return new RowSource() {
      @Override
      public Object[] next() {
        return it.hasNext() ? it.next().clone() : null;
      }

      @Override
      public void close() {}
    };
  }

  static List<Object[]> read(RowSource s) throws SQLException {
    List<Object[]> out = new ArrayList<>();
    for (Object[] r = s.next(); r != null; r = s.next()) {
      out.add(r);
    }
    s.close();
    return out;
  }

  @Test
  void theStatementRunsAsWrittenWithTheOwnershipPredicate() {
    QueryPlan p = plan("SELECT user_id, created, row_number() OVER (PARTITION BY user_id ORDER BY created DESC) AS rn "
        + "FROM orders WHERE amount > ? ORDER BY created DESC LIMIT 10", Merge.orderedBy(desc("created")).limit(10));
    ShardStatement st = p.shardStatement("user_id < 5", List.of(3));
    assertEquals("SELECT user_id, created, row_number() OVER (PARTITION BY user_id ORDER BY created DESC) AS rn "
        + "FROM orders WHERE (amount > ?) AND (user_id < 5) ORDER BY created DESC LIMIT 10", st.sql());
    assertEquals(List.of(3), st.params());
    assertEquals(-1, st.maxRows(), "an explicit merge vouches for no per-shard bound");
    assertEquals(List.of("user_id", "created", "rn"), p.columnLabels());
    assertTrue(p.explain().contains("merge (explicit): ordered, order [created desc nulls first], limit 10"),
        p.explain());
    // What the derived planner refuses for the same statement.
    ShardmapException e = assertThrows(ShardmapException.class, () -> QueryPlanner.plan("SELECT user_id, "
        + "row_number() OVER (PARTITION BY user_id) FROM orders", PlannerTest.TABLES));
    assertTrue(e.getMessage().contains("window functions"), e.getMessage());
    // DISTINCT ON and other aggregates run per shard too; a placeholder inside DISTINCT ON is counted.
    assertEquals(2, plan("SELECT DISTINCT ON (user_id + ?) user_id, string_agg(note, ',') FROM orders WHERE id > ? "
        + "GROUP BY user_id", Merge.concat()).parameterCount());
  }

  @Test
  void orderedMergeSkipsAndKeepsOverTheMergedStream() throws SQLException {
    QueryPlan p = plan("SELECT id, user_id FROM orders ORDER BY id DESC", Merge.orderedBy(desc(1)).offset(2).limit(3));
    RowSource merged = p.merge(List.of(rows(new Object[] {9L, 1L}, new Object[] {5L, 1L}, new Object[] {1L, 1L}),
            rows(new Object[] {8L, 2L}, new Object[] {7L, 2L}, new Object[] {2L, 2L})), List.of(),
        new MergeOptions(100, List.of(INT8, INT8)));
    List<Long> ids = read(merged).stream().map(r -> (Long) r[0]).toList();
    assertEquals(List.of(7L, 5L, 2L), ids);
  }

  @Test
  void groupedMergeCombinesEachColumnByItsFunctionAndKeepsTheStatementsShape() throws SQLException {
    Merge m = Merge.groupedBy("country").count("n").sum("revenue").max("last_user").orderBy(desc("revenue"));
    QueryPlan p = plan("SELECT count(*) AS n, country, sum(amount) AS revenue, max(user_id) AS last_user FROM orders "
        + "GROUP BY country", m);
    RowSource merged = p.merge(List.of(
            rows(new Object[] {2L, "de", new BigDecimal("10.50"), 7L}, new Object[] {1L, "fr", new BigDecimal("3"), 2L}),
            rows(new Object[] {4L, "de", new BigDecimal("1.25"), 3L}, new Object[] {1L, "it", null, 9L})),
        List.of(), new MergeOptions(100, List.of(INT8, TEXT, NUMERIC, INT8)));
    List<Object[]> got = read(merged);
    assertEquals(3, got.size());
    assertArrayEquals(new Object[] {1L, "it", null, 9L}, got.get(0), "NULLs sort first in DESC, as PostgreSQL's");
    assertArrayEquals(new Object[] {6L, "de", new BigDecimal("11.75"), 7L}, got.get(1));
    assertArrayEquals(new Object[] {1L, "fr", new BigDecimal("3"), 2L}, got.get(2));
  }

  @Test
  void whatStillCannotRunAndMergesThatDoNotFitAreRefusedNamingThem() {
    refused("sql", "FOR UPDATE", () -> plan("SELECT id FROM orders FOR UPDATE", Merge.concat()));
    refused("sql", "WITH", () -> plan("WITH x AS (SELECT id FROM orders) SELECT id FROM x", Merge.concat()));
    refused("sql", "subqueries", () -> plan("SELECT id FROM (SELECT id FROM orders) s", Merge.concat()));
    refused("sql", "not sharded", () -> plan("SELECT id FROM nope", Merge.concat()));
    refused("sql", "only a SELECT", () -> plan("DELETE FROM orders", Merge.concat()));
    refused("merge", "no column labelled 'created'", () -> plan("SELECT id FROM orders ORDER BY id",
        Merge.orderedBy(asc("created"))));
    refused("merge", "past the statement's 1 columns", () -> plan("SELECT id FROM orders", Merge.orderedBy(asc(2))));
    refused("merge", "name its columns by position", () -> plan("SELECT * FROM orders", Merge.orderedBy(asc("id"))));
    refused("merge", "ambiguous", () -> plan("SELECT id, id FROM orders", Merge.orderedBy(asc("id"))));
    refused("merge", "column 2 (n) is neither grouped nor combined", () -> plan("SELECT user_id, count(*) AS n "
        + "FROM orders GROUP BY user_id", Merge.groupedBy("user_id")));
    refused("merge", "grouped already", () -> plan("SELECT user_id, count(*) AS n FROM orders GROUP BY user_id",
        Merge.groupedBy("user_id").count("n").sum("user_id")));
    refused("merge", "without *", () -> plan("SELECT * FROM orders", Merge.groupedBy(Merge.column(1))));
    refused("merge", "limit must be >= 0", () -> Merge.concat().limit(-1));
    refused("merge", "grouped merge", () -> Merge.concat().sum("x"));
    refused("merge", "at least one key", () -> Merge.orderedBy());
    refused("merge", "1-based", () -> Merge.asc(0));
  }

  static void refused(String field, String rule, Runnable r) {
    ShardmapException e = assertThrows(ShardmapException.class, r::run);
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains(field) && e.getMessage().contains(rule), e.getMessage());
  }
}
