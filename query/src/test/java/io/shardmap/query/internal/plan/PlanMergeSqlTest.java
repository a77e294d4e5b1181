package io.shardmap.query.internal.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;


import io.shardmap.query.ColumnType;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import io.shardmap.query.RowSource;
import io.shardmap.query.ShardStatement;
import io.shardmap.testkit.PostgresFixture;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;

/**
 * Plan and merge together on PostgreSQL: each statement's answer on one table equals the merge of its
 * shard statements run with two complementary ownership predicates (even and odd keys) on the same table,
 * in order where the ORDER BY fixes it, as a multiset otherwise. Cases where a per-shard LIMIT of only
 * {@code limit} (not offset + limit) would lose rows are included (a planted bug of that kind fails two).
 */
@Tag("integration")
class PlanMergeSqlTest {
  static Connection c;
  static ColumnType.Collation coll;

  @BeforeAll
  static void setUp() throws SQLException {
    c = PostgresFixture.shared(1).shard(0).connect();
    try (Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS mc_t");
      s.execute("CREATE TABLE mc_t (id bigint primary key, i int, n numeric(12,3), name text, ts timestamptz)");
      s.execute("INSERT INTO mc_t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END,"
          + " CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 9) * 1.25 END,"
          + " CASE WHEN g % 13 = 0 THEN NULL ELSE 'name' || (g % 4) END,"
          + " CASE WHEN g % 17 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00+00' + (g % 23) * interval '1 hour' END"
          + " FROM generate_series(1, 300) g");
      // The test database's default collation is libc (the fixture's initdb); text compares in it.
      ResultSet rs = s.executeQuery("select datcollate from pg_database where datname = current_database()");
      rs.next();
      String dc = rs.getString(1);
      coll = new ColumnType.Collation(dc, 'c', dc, true);
    }
  }

  @AfterAll
  static void tearDown() throws SQLException {
    if (c != null) {
      try (Statement s = c.createStatement()) {
        s.execute("DROP TABLE IF EXISTS mc_t");
      }
      c.close();
    }
  }

  static List<List<Object>> rows(ResultSet rs) throws SQLException {
    List<List<Object>> out = new ArrayList<>();
    int n = rs.getMetaData().getColumnCount();
    while (rs.next()) {
      List<Object> r = new ArrayList<>();
      for (int i = 1; i <= n; i++) r.add(norm(rs.getObject(i)));
      out.add(r);
    }
    return out;
  }

  /** Numbers compared by value (a merged AVG may carry another scale than PostgreSQL prints). */
  static Object norm(Object o) {
    if (o instanceof java.math.BigDecimal d) return d.stripTrailingZeros().toPlainString();
    if (o instanceof Number x) return new java.math.BigDecimal(x.toString()).stripTrailingZeros().toPlainString();
    return o;
  }

  static PreparedStatement prep(String sql, List<Object> params) throws SQLException {
    PreparedStatement ps = c.prepareStatement(sql);
    for (int i = 0; i < params.size(); i++) ps.setObject(i + 1, params.get(i));
    return ps;
  }

  @TestFactory
  List<DynamicTest> differential() {
    Object[][] cases = {
      {"select id, name from mc_t order by name desc, id asc nulls first limit 20 offset 7", List.of(), true},
      {"select id from mc_t where i > ? order by n * ?, id limit ? offset ?", List.of(0, 2, 15, 4), true},
      {"select * from mc_t order by ts desc nulls last, id limit 9 offset 3", List.of(), true},
      {"select distinct name, i from mc_t order by i desc, name limit 7 offset 1", List.of(), true},
      {"select distinct name from mc_t", List.of(), false},
      {"select name, count(*), count(i), sum(i), min(ts), max(ts), avg(n), avg(i) from mc_t group by name order by 1", List.of(), true},
      {"select name, count(distinct i), sum(n) from mc_t group by name order by name nulls first", List.of(), true},
      {"select avg(i), count(*), sum(n), min(name), max(name) from mc_t", List.of(), false},
      {"select count(*) filter (where i > 1), avg(n) filter (where i < ?), count(distinct i) filter (where i > 0) from mc_t", List.of(3), false},
      {"select name from mc_t group by name having count(*) > ? and min(i) is not null order by 1", List.of(50), true},
      {"select name, sum(i) as total from mc_t group by name order by total desc, count(*), 1 limit 2 offset 1", List.of(), true},
      {"select lower(name) as nm, i, count(*) from mc_t group by 1, i order by 1, 2", List.of(), true},
      {"select count(*) from mc_t where id < 0", List.of(), false},
      {"select id, i::text from mc_t order by i, id limit 30", List.of(), true},
      {"select name, count(*) from mc_t group by name order by count desc, name", List.of(), true},
      {"select id, name from mc_t order by id limit 5 offset 40", List.of(), true},
      {"select id, name from mc_t order by name, id desc limit ? offset ?", List.of(6, 100), true},
      {"select i, avg(n) from mc_t where id < 0 group by i", List.of(), false},
    };
    List<DynamicTest> tests = new ArrayList<>();
    for (Object[] k : cases) {
      String sql = (String) k[0];
      @SuppressWarnings("unchecked") List<Object> params = (List<Object>) k[1];
      boolean ordered = (Boolean) k[2];
      tests.add(DynamicTest.dynamicTest(sql, () -> {
        List<List<Object>> expected;
        try (PreparedStatement ps = prep(sql, params); ResultSet rs = ps.executeQuery()) { expected = rows(rs); }
        QueryPlan plan = QueryPlanner.plan(sql, t -> t.equals("mc_t") ? Optional.of("id") : Optional.empty());
        List<RowSource> shards = new ArrayList<>();
        List<ColumnType> types = new ArrayList<>();
        for (String pred : List.of(plan.keyRef() + " % 2 = 0", plan.keyRef() + " % 2 = 1")) {
          ShardStatement st = plan.shardStatement(pred, params);
          PreparedStatement ps = prep(st.sql(), st.params());
          ResultSet rs = ps.executeQuery();
          ResultSetMetaData md = rs.getMetaData();
          types.clear();
          for (int i = 1; i <= md.getColumnCount(); i++) {
            String tn = md.getColumnTypeName(i);
            types.add(new ColumnType(tn, tn.equals("text") || tn.equals("varchar") ? coll : null));
          }
          int n = md.getColumnCount();
          shards.add(new RowSource() {
            @Override
            public Object[] next() throws SQLException {
              if (!rs.next()) return null;
              Object[] r = new Object[n];
              for (int i = 0; i < n; i++) r[i] = rs.getObject(i + 1);
              return r;
            }
            @Override
            public void close() {
              try {
                ps.close();
              } catch (SQLException e) {
                throw new IllegalStateException(e);
              }
            }
          });
        }
        List<List<Object>> actual = new ArrayList<>();
        try (RowSource m = plan.merge(shards, params, new MergeOptions(100000, types))) {
          for (Object[] r; (r = m.next()) != null; ) {
            List<Object> row = new ArrayList<>();
            for (Object o : r) row.add(norm(o));
            actual.add(row);
          }
        }
        if (!ordered) {
          Comparator<List<Object>> cmp = Comparator.comparing(Object::toString);
          expected.sort(cmp);
          actual.sort(cmp);
        }
        assertEquals(expected, actual, plan.explain());
      }));
    }
    return tests;
  }
}
