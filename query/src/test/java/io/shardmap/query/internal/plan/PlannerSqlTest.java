package io.shardmap.query.internal.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.query.QueryPlanner;
import io.shardmap.query.ShardStatement;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every accepted shape on real PostgreSQL: the rewritten shard statement runs (with predicate {@code true}
 * and with a real predicate over {@link io.shardmap.query.QueryPlan#keyRef}) and returns as many columns
 * as the MergeSpec says; the caller's statement itself runs too, and PostgreSQL labels its columns as
 * {@link io.shardmap.query.QueryPlan#columnLabels} says, and has as many as the merge projects.
 */
@Tag("integration")
class PlannerSqlTest {
  static final Map<String, String> KEYS = Map.of("plan_t", "id", "plan_u", "id", "plan_s.ev", "account_id");
  static Connection c;

  @BeforeAll
  static void setUp() throws SQLException {
    PgInstance pg = PostgresFixture.shared(1).shard(0);
    c = pg.connect();
    try (Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS plan_t, plan_u");
      s.execute("DROP SCHEMA IF EXISTS plan_s CASCADE");
      s.execute("CREATE TABLE plan_t (id bigint PRIMARY KEY, i int, n numeric(12,3), name text,"
          + " ts timestamptz, note text)");
      s.execute("CREATE TABLE plan_u (id bigint PRIMARY KEY, label text)");
      s.execute("CREATE SCHEMA plan_s");
      s.execute("CREATE TABLE plan_s.ev (account_id bigint, id bigint)");
      s.execute("INSERT INTO plan_t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END,"
          + " CASE WHEN g % 11 = 0 THEN NULL ELSE g * 1.25 END,"
          + " CASE WHEN g % 13 = 0 THEN NULL ELSE 'name' || (g % 4) END,"
          + " CASE WHEN g % 17 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00+00' + g * interval '1 hour' END,"
          + " NULL FROM generate_series(1, 60) g");
      s.execute("INSERT INTO plan_u SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g END"
          + " FROM generate_series(1, 60) g");
      s.execute("INSERT INTO plan_s.ev SELECT g % 9, g FROM generate_series(1, 30) g");
    }
  }

  @AfterAll
  static void tearDown() throws SQLException {
    if (c != null) {
      try (Statement s = c.createStatement()) {
        s.execute("DROP TABLE IF EXISTS plan_t, plan_u");
        s.execute("DROP SCHEMA IF EXISTS plan_s CASCADE");
      }
      c.close();
    }
  }

  static Stream<Arguments> accepted() {
    return Stream.of(
        args("select id, name from plan_t order by name desc, id asc nulls first, n desc nulls last, ts"),
        args("select id from plan_t where i > ? order by n * ?, id", 0, 2),
        args("select id, lower(name) as nm from plan_t order by nm, lower(name) desc, 1"),
        args("select id from plan_t order by id limit 10 offset 20"),
        args("select id from plan_t where i > ? order by id limit ? offset ?", 0, 10, 20),
        args("select id from plan_t order by id offset 5"),
        args("select id from plan_t limit all offset 3"),
        args("select id from plan_t order by id fetch first 5 rows only"),
        args("select id from plan_t order by id offset 2 rows fetch next row only"),
        args("select id from plan_t order by id fetch first ? rows only", 7),
        args("select distinct name, i from plan_t order by i desc limit 3"),
        args("select distinct name from plan_t"),
        args("select name, count(*), count(i), sum(i), min(ts), max(ts), avg(n) from plan_t where id > ?"
            + " group by name order by 3 desc, name limit 2 offset 1", 0L),
        args("select name, count(distinct i), sum(n) from plan_t group by name"),
        args("select avg(i) from plan_t"),
        args("select count(*) filter (where i > 1), avg(n) filter (where i < ?),"
            + " count(distinct i) filter (where i > 0) from plan_t", 5),
        args("select name from plan_t group by name having count(*) > ? and min(i) is not null", 1),
        args("select name, sum(i) as total from plan_t group by name order by total desc, count(*), 1"),
        args("select lower(name) as nm, count(*) from plan_t group by nm, i"),
        args("select count(*), upper(name) from plan_t group by 2"),
        args("select * from plan_t order by ts desc limit 5"),
        args("select plan_t.*, upper(name) u from plan_t order by u, 2"),
        args("select x.id from plan_s.ev x where x.id > 0"),
        args("select id from plan_s.ev"),
        args("select o.id, u.label from plan_t o join plan_u u on u.id = o.id and u.label is not null"
            + " where o.i > 5 order by o.id"),
        args("select * from plan_t join plan_u using (id)"),
        args("select name as \"Who\", CAST(n AS numeric(10,2)), '1'::int, 'x'::varchar,"
            + " null::timestamp with time zone, case when i > 1 then 'a' else name end,"
            + " case when i > 1 then 1 end, coalesce(i, 0), 1 + 1, plan_t.i, true, lower(name), 2 from plan_t"));
  }

  static Arguments args(String sql, Object... params) {
    return Arguments.of(sql, Arrays.asList(params));
  }

  @ParameterizedTest(name = "[{index}] {0}")
  @MethodSource("accepted")
  void postgresAcceptsTheRewrite(String sql, List<Object> params) throws SQLException {
    SelectPlan plan = (SelectPlan) QueryPlanner.plan(sql, t -> Optional.ofNullable(KEYS.get(t)));
    List<String> labels = new ArrayList<>();
    int answerColumns = run(sql, params, labels);
    if (plan.shardColumns() >= 0) {
      assertEquals(plan.columnLabels(), labels, "PostgreSQL's labels of " + sql);
    }
    for (String predicate : List.of("true", plan.keyRef() + " % 2 = 0")) {
      ShardStatement st = plan.shardStatement(predicate, params);
      int width = run(st.sql(), st.params(), new ArrayList<>());
      MergeSpec spec = plan.mergeSpec(width);
      if (plan.shardColumns() >= 0) {
        assertEquals(plan.shardColumns(), width, st.sql());
      }
      assertEquals(spec.shardColumns(), width, st.sql());
      assertEquals(answerColumns, spec.projection().size(), "the merge projects the answer's columns");
      assertTrue(spec.projection().stream().allMatch(i -> i >= 0 && i < (spec.aggregation() == null
          ? width : spec.aggregation().groupColumns().size() + spec.aggregation().aggregates().size())));
    }
  }

  /** Runs a statement, reading all rows; returns its column count and adds its labels. */
  static int run(String sql, List<Object> params, List<String> labels) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.size(); i++) {
        ps.setObject(i + 1, params.get(i));
      }
      try (ResultSet rs = ps.executeQuery()) {
        ResultSetMetaData md = rs.getMetaData();
        for (int i = 1; i <= md.getColumnCount(); i++) {
          labels.add(md.getColumnLabel(i));
        }
        while (rs.next()) {
          for (int i = 1; i <= md.getColumnCount(); i++) {
            rs.getObject(i);
          }
        }
        return md.getColumnCount();
      }
    }
  }
}
