package io.shardmap.query;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Cross-shard queries joining a sharded table with a reference table, against one database: a sharded
 * table {@code rj_orders} over three databases (each also holding copies of a tenth of the others' rows, as
 * during a move, which the ownership predicate must leave out) and a reference table {@code rj_cats} complete
 * on each, with categories the orders do not use and orders whose category it lacks (so INNER and LEFT
 * differ). Random statements of every accepted join form (INNER, LEFT with conditions on the reference
 * table, comma, CROSS), with GROUP BY, ORDER BY, LIMIT and aggregates, must give the answer of one database
 * holding every row. Seed: {@code -Dshardmap.diff.seed}.
 */
@Tag("consistency")
class ReferenceJoinDifferentialTest {
  private static final int SHARDS = 3;
  private static final String[] CATS = {"a", "b", "c", "d", "e", "f", "g", "h", "x", "ä", "日本"};
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
    List<Object[]> orders = new ArrayList<>();
    for (long id = 1; id <= 2000; id++) {
      orders.add(new Object[] {id, r.nextInt(15) == 0 ? null : CATS[r.nextInt(CATS.length)],
          r.nextInt(20) == 0 ? null : r.nextInt(100)});
    }
    List<Object[]> cats = new ArrayList<>();
    for (String c : List.of("a", "b", "c", "d", "e", "f", "g", "ä", "z", "y")) { // no "h", "x", "日本"
      cats.add(new Object[] {c, "label-" + (c.hashCode() % 4), r.nextInt(10) == 0 ? null : r.nextInt(50)});
    }
    load(oracle, orders, cats, row -> true);
    for (int i = 0; i < SHARDS; i++) {
      int shard = i;
      Random copies = new Random(i);
      load(shards.get(i), orders, cats, row -> ((Long) row[0]) % SHARDS == shard || copies.nextInt(10) == 0);
    }
  }

  private static void load(Connection c, List<Object[]> orders, List<Object[]> cats,
      java.util.function.Predicate<Object[]> keep) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS rj_orders, rj_cats");
      s.execute("CREATE TABLE rj_orders (id bigint PRIMARY KEY, cat text, qty int)");
      s.execute("CREATE TABLE rj_cats (cat text PRIMARY KEY, label text NOT NULL, weight int)");
    }
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO rj_orders VALUES (?, ?, ?)")) {
      for (Object[] row : orders) {
        if (keep.test(row)) {
          for (int i = 0; i < row.length; i++) {
            ps.setObject(i + 1, row[i]);
          }
          ps.addBatch();
        }
      }
      ps.executeBatch();
    }
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO rj_cats VALUES (?, ?, ?)")) {
      for (Object[] row : cats) {
        for (int i = 0; i < row.length; i++) {
          ps.setObject(i + 1, row[i]);
        }
        ps.addBatch();
      }
      ps.executeBatch();
    }
  }

  @AfterAll
  static void close() throws SQLException {
    for (Connection c : shards) {
      try (Statement s = c.createStatement()) {
        s.execute("DROP TABLE IF EXISTS rj_orders, rj_cats");
      }
      c.close();
    }
    shards.clear();
    try (Statement s = oracle.createStatement()) {
      s.execute("DROP TABLE IF EXISTS rj_orders, rj_cats");
    }
    oracle.close();
  }

  /** A statement template, whether its ORDER BY fixes the row order, and how many int parameters it takes. */
  record Template(String sql, boolean ordered, int params) {}

  static final List<Template> TEMPLATES = List.of(
      new Template("SELECT o.id, c.label FROM rj_orders o JOIN rj_cats c ON c.cat = o.cat WHERE o.qty > ?"
          + " ORDER BY o.id LIMIT ?", true, 2),
      new Template("SELECT c.label, count(*), sum(o.qty), avg(c.weight) FROM rj_orders o JOIN rj_cats c"
          + " ON c.cat = o.cat GROUP BY c.label ORDER BY c.label", true, 0),
      new Template("SELECT c.label, count(o.id), max(o.qty) FROM rj_orders o LEFT JOIN rj_cats c"
          + " ON c.cat = o.cat AND c.weight > ? GROUP BY c.label", false, 1),
      new Template("SELECT o.id, c.weight FROM rj_orders o, rj_cats c WHERE c.cat = o.cat AND c.weight > ?"
          + " ORDER BY o.id DESC LIMIT ?", true, 2),
      new Template("SELECT count(*), min(c.cat) FROM rj_orders o CROSS JOIN rj_cats c WHERE c.weight < ?"
          + " AND o.qty < ?", false, 2),
      new Template("SELECT o.cat, c.label FROM rj_orders o LEFT JOIN rj_cats c USING (cat) WHERE o.id % 7 = ?",
          false, 1),
      new Template("SELECT DISTINCT c.label FROM rj_orders o JOIN rj_cats c ON c.cat = o.cat AND o.qty > ?"
          + " ORDER BY 1", true, 1));

  @Test
  void joinsWithAReferenceTableGiveTheAnswerOfOneDatabase() throws SQLException {
    long seed = Long.getLong("shardmap.diff.seed", System.nanoTime());
    Random r = new Random(seed);
    QueryPlanner.ShardedTables tables = new QueryPlanner.ShardedTables() {
      @Override
      public Optional<String> keyColumn(String table) {
        return table.equals("rj_orders") ? Optional.of("id") : Optional.empty();
      }

      @Override
      public boolean isReference(String table) {
        return table.equals("rj_cats");
      }
    };
    int runs = 0;
    for (int q = 0; q < 300; q++) {
      Template t = TEMPLATES.get(r.nextInt(TEMPLATES.size()));
      List<Object> params = new ArrayList<>();
      for (int i = 0; i < t.params(); i++) {
        params.add(r.nextInt(60));
      }
      List<Object[]> expected = DifferentialTest.run(oracle, t.sql(), params);
      List<Object[]> actual = DifferentialTest.crossShard(shards, t.sql(), params, tables);
      String diff = DifferentialTest.compare(expected, actual, t.ordered());
      if (diff != null) {
        fail("seed " + seed + ", query " + q + ": " + t.sql() + " " + params + "\n  " + diff);
      }
      runs++;
    }
    assertEquals(300, runs);
  }
}
