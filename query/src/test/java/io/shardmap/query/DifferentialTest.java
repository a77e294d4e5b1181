package io.shardmap.query;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.core.ShardmapException;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The planner and the merge against PostgreSQL itself: thousands of random SELECTs (WHERE, ORDER BY, GROUP
 * BY, every aggregate, HAVING, DISTINCT, LIMIT/OFFSET) over a table with NULLs, duplicates, non-ASCII text,
 * numerics, doubles, bigints near overflow and timestamps. Each query runs once on one unsharded database
 * holding every row (the oracle) and as a cross-shard query over three databases; the answers must be
 * equal: in order where the statement's ORDER BY fixes the order, as multisets otherwise.
 *
 * <p>The shards hold more than their own rows, as they do during a move: each also keeps copies of about a
 * tenth of the others' rows, and the ownership predicate ({@code key % 3 = shard}) must leave those out, as
 * the SDK's predicate from the map does.
 *
 * <p>Numbers compare exactly, scale included (PostgreSQL's {@code avg} of integers and numerics has a scale
 * the merge must reproduce); sums and averages of doubles to 1e-9 relative, because floating-point addition
 * depends on its order even inside one PostgreSQL (parallel aggregation). The seed and the query count can
 * be set with {@code -Dshardmap.diff.seed} and {@code -Dshardmap.diff.queries}; a failure prints the seed,
 * the statement, its parameters and both answers.
 */
@Tag("consistency")
class DifferentialTest {
  private static final String TABLE = "diff_items";
  private static final int SHARDS = 3;
  private static final int ROWS = 3000;
  private static final String[] CATS = {"apple", "Apple", "äpfel", "zebra", "Zebra", "éclair", "日本", "日本語",
      "\uD83D\uDE42smile", "", "b", "B", "ß", "ss", "a b", "a-b"};

  private static PostgresFixture pg;
  private static Connection oracle;
  private static final List<Connection> shards = new ArrayList<>();

  @BeforeAll
  static void load() throws SQLException {
    pg = PostgresFixture.shared(SHARDS + 1);
    List<PgInstance> all = pg.shards();
    for (int i = 0; i < SHARDS; i++) {
      shards.add(all.get(i).connect());
    }
    oracle = all.get(SHARDS).connect();
    Random r = new Random(20261207L);
    List<Object[]> rows = new ArrayList<>();
    for (long id = 1; id <= ROWS; id++) {
      rows.add(row(id, r));
    }
    createAndLoad(oracle, rows, row -> true);
    for (int i = 0; i < SHARDS; i++) {
      int shard = i;
      Random copies = new Random(i);
      // Its own rows, plus copies of others' (a move's target before cutover, a source before cleanup).
      createAndLoad(shards.get(i), rows, row -> ((Long) row[0]) % SHARDS == shard || copies.nextInt(10) == 0);
    }
  }

  @AfterAll
  static void close() throws SQLException {
    for (Connection c : shards) {
      try (Statement s = c.createStatement()) {
        s.execute("DROP TABLE IF EXISTS " + TABLE);
      }
      c.close();
    }
    shards.clear();
    try (Statement s = oracle.createStatement()) {
      s.execute("DROP TABLE IF EXISTS " + TABLE);
    }
    oracle.close();
  }

  private static Object[] row(long id, Random r) {
    return new Object[] {
        id,
        r.nextInt(20) == 0 ? null : r.nextInt(10),
        r.nextInt(10) == 0 ? null : CATS[r.nextInt(CATS.length)],
        r.nextInt(10) == 0 ? null : BigDecimal.valueOf(r.nextInt(2_000_001) - 1_000_000, 2),
        r.nextInt(10) == 0 ? null : r.nextInt(50) == 0 ? Double.NaN
            : r.nextBoolean() ? (double) (r.nextInt(200) - 100) : r.nextGaussian() * 1e3,
        r.nextInt(20) == 0 ? null : r.nextInt(2001) - 1000,
        // Sums of these leave bigint: SUM(bigint) is numeric in PostgreSQL.
        r.nextInt(20) == 0 ? null : Long.MAX_VALUE / 4 - r.nextInt(1000),
        r.nextInt(20) == 0 ? null : java.sql.Timestamp.from(java.time.Instant.parse("2026-01-01T00:00:00Z")
            .plusSeconds(r.nextInt(365 * 24 * 3600))),
        r.nextInt(10) == 0 ? null : r.nextBoolean(),
    };
  }

  private static void createAndLoad(Connection c, List<Object[]> rows, java.util.function.Predicate<Object[]> keep)
      throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS " + TABLE);
      s.execute("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, grp int, cat text, amount numeric(12,2), "
          + "score double precision, qty int, big bigint, created timestamptz, flag boolean)");
    }
    c.setAutoCommit(false);
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + TABLE + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
      for (Object[] row : rows) {
        if (!keep.test(row)) {
          continue;
        }
        for (int i = 0; i < row.length; i++) {
          ps.setObject(i + 1, row[i]);
        }
        ps.addBatch();
      }
      ps.executeBatch();
    }
    c.commit();
    c.setAutoCommit(true);
    try (Statement s = c.createStatement()) {
      s.execute("ANALYZE " + TABLE);
    }
  }

  @Test
  void randomSelectsGiveTheAnswerOfOneDatabase() throws SQLException {
    long seed = Long.getLong("shardmap.diff.seed", System.nanoTime());
    int queries = Integer.getInteger("shardmap.diff.queries", 2000);
    Random r = new Random(seed);
    QueryGenerator gen = new QueryGenerator(r);
    Map<String, Integer> shapes = new HashMap<>();
    for (int q = 0; q < queries; q++) {
      QueryGenerator.Query query = gen.next();
      shapes.merge(query.shape(), 1, Integer::sum);
      List<Object[]> expected = run(oracle, query.sql(), query.params());
      List<Object[]> actual;
      try {
        actual = crossShard(query.sql(), query.params());
      } catch (ShardmapException e) {
        fail("seed " + seed + ", query " + q + ": refused " + query.sql() + " " + query.params() + ": " + e.getMessage(),
            e);
        return;
      }
      String diff = compare(expected, actual, query.ordered());
      if (diff != null) {
        fail("seed " + seed + ", query " + q + " (" + query.shape() + "): " + query.sql() + "\n  params "
            + query.params() + "\n  " + diff + "\n  expected " + show(expected) + "\n  actual   " + show(actual));
      }
    }
    System.out.println("DifferentialTest: seed " + seed + ", " + queries + " queries, by shape " + shapes);
    assertEquals(queries, shapes.values().stream().mapToInt(Integer::intValue).sum());
  }

  /** The statement as a cross-shard query: planned, run on every shard with its predicate, merged. */
  static List<Object[]> crossShard(String sql, List<Object> params) throws SQLException {
    return crossShard(shards, sql, params, t -> t.equals(TABLE) ? Optional.of("id") : Optional.empty());
  }

  /** {@code sql} planned over {@code tables}, run on {@code shards} (shard i owns the keys k with k % n = i). */
  static List<Object[]> crossShard(List<Connection> shards, String sql, List<Object> params,
      QueryPlanner.ShardedTables tables) throws SQLException {
    final int SHARDS = shards.size();
    QueryPlan plan = QueryPlanner.plan(sql, tables);
    List<RowSource> sources = new ArrayList<>();
    List<ColumnType> columns = null;
    for (int i = 0; i < SHARDS; i++) {
      ShardStatement st = plan.shardStatement("(" + plan.keyRef() + " % " + SHARDS + ") = " + i, params);
      ResultSetSource src = new ResultSetSource(shards.get(i), st);
      sources.add(src);
      if (columns == null) {
        columns = src.columnTypes();
      }
    }
    List<Object[]> out = new ArrayList<>();
    try (RowSource merged = plan.merge(sources, params, new MergeOptions(1_000_000, columns))) {
      for (Object[] row = merged.next(); row != null; row = merged.next()) {
        out.add(row);
      }
    }
    return out;
  }

  static List<Object[]> run(Connection c, String sql, List<Object> params) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.size(); i++) {
        ps.setObject(i + 1, params.get(i));
      }
      try (ResultSet rs = ps.executeQuery()) {
        int n = rs.getMetaData().getColumnCount();
        List<Object[]> out = new ArrayList<>();
        while (rs.next()) {
          Object[] row = new Object[n];
          for (int i = 0; i < n; i++) {
            row[i] = rs.getObject(i + 1);
          }
          out.add(row);
        }
        return out;
      }
    }
  }

  /** A shard's rows, fetched in full up front (this test is about answers, not streaming). */
  static final class ResultSetSource implements RowSource {
    private final List<Object[]> rows;
    private final List<ColumnType> types = new ArrayList<>();
    private int next;

    ResultSetSource(Connection c, ShardStatement st) throws SQLException {
      try (PreparedStatement ps = c.prepareStatement(st.sql())) {
        for (int i = 0; i < st.params().size(); i++) {
          ps.setObject(i + 1, st.params().get(i));
        }
        try (ResultSet rs = ps.executeQuery()) {
          ResultSetMetaData md = rs.getMetaData();
          for (int i = 1; i <= md.getColumnCount(); i++) {
            String type = md.getColumnTypeName(i);
            boolean text = type.equals("text") || type.equals("varchar") || type.equals("bpchar");
            // The fixture's clusters are initdb --locale=C; the SDK asks PostgreSQL (pg_collation_for).
            types.add(new ColumnType(type, text ? new ColumnType.Collation("C", 'c', "C", true) : null));
          }
          rows = new ArrayList<>();
          while (rs.next()) {
            Object[] row = new Object[md.getColumnCount()];
            for (int i = 0; i < row.length; i++) {
              row[i] = rs.getObject(i + 1);
            }
            rows.add(row);
          }
        }
      } catch (SQLException e) {
        throw new SQLException(e.getMessage() + " [shard statement: " + st.sql() + "]", e.getSQLState(), e);
      }
    }

    List<ColumnType> columnTypes() {
      return types;
    }

    @Override
    public Object[] next() {
      return next < rows.size() ? rows.get(next++) : null;
    }

    @Override
    public void close() {}
  }

  /** Null when equal; else what differs. */
  static String compare(List<Object[]> expected, List<Object[]> actual, boolean ordered) {
    if (expected.size() != actual.size()) {
      return "row count " + actual.size() + ", expected " + expected.size();
    }
    if (ordered) {
      for (int i = 0; i < expected.size(); i++) {
        if (!rowEquals(expected.get(i), actual.get(i))) {
          return "row " + i + " is " + Arrays.toString(actual.get(i)) + ", expected " + Arrays.toString(expected.get(i));
        }
      }
      return null;
    }
    List<Object[]> left = new ArrayList<>(actual);
    for (Object[] e : expected) {
      boolean found = false;
      for (int i = 0; i < left.size(); i++) {
        if (rowEquals(e, left.get(i))) {
          left.remove(i);
          found = true;
          break;
        }
      }
      if (!found) {
        return "missing row " + Arrays.toString(e);
      }
    }
    return null;
  }

  static boolean rowEquals(Object[] a, Object[] b) {
    if (a.length != b.length) {
      return false;
    }
    for (int i = 0; i < a.length; i++) {
      if (!valueEquals(a[i], b[i])) {
        return false;
      }
    }
    return true;
  }

  static boolean valueEquals(Object a, Object b) {
    if (a == null || b == null) {
      return a == b;
    }
    if (a instanceof Double x && b instanceof Double y) {
      if (x.isNaN() || y.isNaN() || x.isInfinite() || y.isInfinite()) {
        return x.equals(y);
      }
      return Math.abs(x - y) <= 1e-9 * Math.max(1, Math.max(Math.abs(x), Math.abs(y)));
    }
    if (a instanceof byte[] x && b instanceof byte[] y) {
      return Arrays.equals(x, y);
    }
    // BigDecimal.equals includes the scale: PostgreSQL's answer has one, and the merge must give the same.
    return a.getClass() == b.getClass() && a.equals(b);
  }

  private static String show(List<Object[]> rows) {
    StringBuilder b = new StringBuilder("[");
    for (int i = 0; i < Math.min(rows.size(), 12); i++) {
      b.append(i == 0 ? "" : ", ").append(Arrays.toString(rows.get(i)));
    }
    return b.append(rows.size() > 12 ? ", ... (" + rows.size() + " rows)]" : "]").toString();
  }
}
