package io.shardmap.query.internal.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import io.shardmap.query.ShardStatement;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import io.shardmap.query.internal.merge.MergeSpec.SortKey;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import net.sf.jsqlparser.parser.CCJSqlParserUtil;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The planner's rewrites (shard SQL and MergeSpec) for every accepted shape, and its refusals: each names
 * the clause, with code INVALID_ARGUMENT on field {@code sql}.
 */
@Tag("unit")
class PlannerTest {
  static final Map<String, String> KEYS = Map.of("t", "id", "orders", "user_id", "users", "id",
      "items", "user_id", "app.events", "account_id", "Mixed", "id");
  static final QueryPlanner.ShardedTables TABLES = t -> Optional.ofNullable(KEYS.get(t));

  static SelectPlan plan(String sql) {
    return (SelectPlan) QueryPlanner.plan(sql, TABLES);
  }

  /** The shard SQL with predicate {@code true}; also checks it parses again. */
  static String shardSql(SelectPlan p, Object... params) {
    String sql = p.shardStatement("true", Arrays.asList(params)).sql();
    try {
      CCJSqlParserUtil.parse(sql);
    } catch (Exception e) {
      throw new AssertionError("shard SQL does not parse: " + sql, e);
    }
    return sql;
  }

  /**
   * The row bound a shard statement carries, which lets the executor read a part whole in one round trip:
   * the per-shard LIMIT (offset + limit) where the shard SQL has one, one row for an aggregate without
   * GROUP BY, and none otherwise (a LIMIT the merge applies after grouping bounds nothing per shard).
   */
  @Test
  void shardStatementsCarryTheRowBoundTheirSqlGuarantees() {
    assertEquals(15, plan("SELECT id FROM t ORDER BY id LIMIT 10 OFFSET 5").shardStatement("true", List.of()).maxRows());
    assertEquals(7, plan("SELECT id FROM t ORDER BY id LIMIT ? OFFSET ?").shardStatement("true", List.of(4, 3)).maxRows());
    assertEquals(10, plan("SELECT id FROM t LIMIT 10").shardStatement("true", List.of()).maxRows());
    assertEquals(-1, plan("SELECT id FROM t ORDER BY id").shardStatement("true", List.of()).maxRows());
    assertEquals(-1, plan("SELECT id FROM t ORDER BY id OFFSET 5").shardStatement("true", List.of()).maxRows());
    assertEquals(1, plan("SELECT count(*), sum(id), avg(id) FROM t").shardStatement("true", List.of()).maxRows());
    assertEquals(1, plan("SELECT count(*) FROM t HAVING count(*) > 1").shardStatement("true", List.of()).maxRows());
    assertEquals(-1, plan("SELECT count(DISTINCT id) FROM t").shardStatement("true", List.of()).maxRows(),
        "COUNT(DISTINCT) groups the shard rows by its argument");
    assertEquals(-1, plan("SELECT id % 3, count(*) FROM t GROUP BY 1 ORDER BY 1 LIMIT 2")
        .shardStatement("true", List.of()).maxRows(), "the LIMIT applies to the merged groups");
    assertEquals(-1, plan("SELECT DISTINCT id % 3 FROM t").shardStatement("true", List.of()).maxRows());
  }

  static SortKey asc(int c) {
    return new SortKey(c, false, false);
  }

  static SortKey desc(int c) {
    return new SortKey(c, true, true);
  }

  @Test
  void plainOrderByMultiColumnAscDescNulls() {
    SelectPlan p = plan("select id, name from t order by name desc, id asc nulls first, v desc nulls last, ts");
    assertEquals("SELECT v, ts, id, name FROM t WHERE (true) ORDER BY 4 DESC NULLS FIRST, 3 ASC NULLS FIRST,"
        + " 1 DESC NULLS LAST, 2 ASC NULLS LAST", shardSql(p));
    MergeSpec s = p.mergeSpec();
    assertEquals(4, s.shardColumns());
    assertEquals(List.of(desc(3), new SortKey(2, false, true), new SortKey(0, true, false), asc(1)),
        s.shardOrder());
    assertNull(s.aggregation());
    assertEquals(List.of(2, 3), s.projection());
    assertTrue(s.offset().isNone() && s.limit().isNone());
    assertEquals(List.of("id", "name"), p.columnLabels());
  }

  @Test
  void hiddenSortColumnKeepsParameterOrder() {
    SelectPlan p = plan("select id from t where v > ? order by v * ?, id");
    ShardStatement st = p.shardStatement("true", List.of("a", "b"));
    assertEquals("SELECT v * ?, id FROM t WHERE (v > ?) AND (true) ORDER BY 1 ASC NULLS LAST,"
        + " 2 ASC NULLS LAST", st.sql());
    assertEquals(List.of("b", "a"), st.params(), "the hidden column's ? comes first in the shard SQL");
    assertEquals(List.of(asc(0), asc(1)), p.mergeSpec().shardOrder());
    assertEquals(List.of(1), p.mergeSpec().projection());
  }

  @Test
  void orderByOutputAliasAndExpressionUseTheOutputColumn() {
    SelectPlan p = plan("select id, lower(name) as n from t order by n, lower(name) desc, 1");
    assertEquals("SELECT id, lower(name) AS n FROM t WHERE (true) ORDER BY 2 ASC NULLS LAST,"
        + " 2 DESC NULLS FIRST, 1 ASC NULLS LAST", shardSql(p));
    assertEquals(List.of(asc(1), desc(1), asc(0)), p.mergeSpec().shardOrder());
  }

  @Test
  void orderByBareNameMeansTheOutputColumnOfThatNameAsInPostgres() {
    SelectPlan p = plan("select v::text from t order by v");
    assertEquals("SELECT v::text FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST", shardSql(p),
        "PostgreSQL sorts the text output column named v, not the input column v");
    SelectPlan agg = plan("select name, count(*) from t group by name order by count desc");
    assertEquals(List.of(desc(1)), agg.mergeSpec().finalOrder());
  }

  @Test
  void limitOffsetLiteralsBecomeOneShardLimit() {
    SelectPlan p = plan("select id from t order by id limit 10 offset 20");
    assertEquals("SELECT id FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST LIMIT 30", shardSql(p));
    assertEquals(Bound.of(20), p.mergeSpec().offset());
    assertEquals(Bound.of(10), p.mergeSpec().limit());
  }

  @Test
  void limitOffsetParametersAreResolvedAtBindTimeAndLeaveTheShardParams() {
    SelectPlan p = plan("select id from t where v > ? order by id limit ? offset ?");
    assertEquals(3, p.parameterCount());
    ShardStatement st = p.shardStatement("true", List.of(5, 10L, 20));
    assertEquals("SELECT id FROM t WHERE (v > ?) AND (true) ORDER BY 1 ASC NULLS LAST LIMIT 30", st.sql());
    assertEquals(List.of(5), st.params());
    assertEquals(Bound.param(2), p.mergeSpec().offset());
    assertEquals(Bound.param(1), p.mergeSpec().limit());
  }

  @Test
  void offsetWithoutLimitAndLimitAllSendNoShardLimit() {
    SelectPlan p = plan("select id from t order by id offset 5");
    assertEquals("SELECT id FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST", shardSql(p));
    assertEquals(Bound.of(5), p.mergeSpec().offset());
    SelectPlan all = plan("select id from t limit all offset 3");
    assertEquals("SELECT id FROM t WHERE (true)", shardSql(all));
    assertTrue(all.mergeSpec().limit().isNone());
    assertEquals(Bound.of(3), all.mergeSpec().offset());
  }

  @Test
  void fetchFirst() {
    assertEquals("SELECT id FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST LIMIT 5",
        shardSql(plan("select id from t order by id fetch first 5 rows only")));
    SelectPlan one = plan("select id from t order by id offset 2 rows fetch next row only");
    assertEquals("SELECT id FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST LIMIT 3", shardSql(one));
    SelectPlan param = plan("select id from t order by id fetch first ? rows only");
    assertEquals("SELECT id FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST LIMIT 7", shardSql(param, 7));
    assertEquals(Bound.param(0), param.mergeSpec().limit());
  }

  @Test
  void distinctGroupsEveryColumnAndKeepsThePerShardLimit() {
    SelectPlan p = plan("select distinct name, v from t order by v desc limit 3");
    assertEquals("SELECT DISTINCT name, v FROM t WHERE (true) ORDER BY 2 DESC NULLS FIRST LIMIT 3", shardSql(p));
    MergeSpec s = p.mergeSpec();
    assertEquals(new MergeSpec.Aggregation(List.of(0, 1), List.of(), null, null), s.aggregation());
    assertEquals(List.of(desc(1)), s.finalOrder());
    assertEquals(List.of(), s.shardOrder());
    assertEquals(List.of(0, 1), s.projection());
    assertEquals("SELECT DISTINCT name FROM t WHERE (true)", shardSql(plan("select distinct name from t order by name")));
  }

  @Test
  void groupByWithEveryAggregate() {
    SelectPlan p = plan("select name, count(*), count(v), sum(v), min(ts), max(ts), avg(v) from t"
        + " where id > ? group by name order by 3 desc, name limit 2 offset 1");
    assertEquals("SELECT name, count(*), count(v), sum(v), min(ts), max(ts), sum(v), count(v) FROM t"
        + " WHERE (id > ?) AND (true) GROUP BY 1", shardSql(p, 0));
    MergeSpec s = p.mergeSpec();
    assertEquals(8, s.shardColumns());
    assertEquals(new MergeSpec.Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT, 1, -1),
        new Aggregate(Kind.COUNT, 2, -1), new Aggregate(Kind.SUM, 3, -1), new Aggregate(Kind.MIN, 4, -1),
        new Aggregate(Kind.MAX, 5, -1), new Aggregate(Kind.AVG, 6, 7)), null, null), s.aggregation());
    assertEquals(List.of(desc(2), asc(0)), s.finalOrder());
    assertEquals(List.of(0, 1, 2, 3, 4, 5, 6), s.projection());
    assertEquals(Bound.of(1), s.offset());
    assertEquals(Bound.of(2), s.limit());
    assertEquals(List.of("name", "count", "count", "sum", "min", "max", "avg"), p.columnLabels());
  }

  @Test
  void countDistinctGroupsByItsArgument() {
    SelectPlan p = plan("select name, count(distinct v), sum(v) from t group by name");
    assertEquals("SELECT name, v, sum(v) FROM t WHERE (true) GROUP BY 1, 2", shardSql(p));
    assertEquals(new MergeSpec.Aggregation(List.of(0), List.of(new Aggregate(Kind.COUNT_DISTINCT, 1, -1),
        new Aggregate(Kind.SUM, 2, -1)), 1, null), p.mergeSpec().aggregation());
    assertEquals(List.of(0, 1, 2), p.mergeSpec().projection());
  }

  @Test
  void avgWithoutGroupBy() {
    SelectPlan p = plan("select avg(v) from t");
    assertEquals("SELECT sum(v), count(v) FROM t WHERE (true)", shardSql(p));
    assertEquals(new MergeSpec.Aggregation(List.of(), List.of(new Aggregate(Kind.AVG, 0, 1)), null, null),
        p.mergeSpec().aggregation());
    assertEquals(List.of(0), p.mergeSpec().projection());
  }

  @Test
  void aggregateFilterIsPushedIntoThePartials() {
    SelectPlan p = plan("select count(*) filter (where v > 1), avg(v) filter (where v < ?),"
        + " count(distinct v) filter (where v > 0) from t");
    ShardStatement st = p.shardStatement("true", List.of(9));
    assertEquals("SELECT CASE WHEN (v > 0) THEN v END, count(*) FILTER (WHERE v > 1),"
        + " sum(v) FILTER (WHERE v < ?), count(v) FILTER (WHERE v < ?) FROM t WHERE (true) GROUP BY 1",
        st.sql());
    assertEquals(List.of(9, 9), st.params());
    assertEquals(new MergeSpec.Aggregation(List.of(), List.of(new Aggregate(Kind.COUNT, 1, -1),
        new Aggregate(Kind.AVG, 2, 3), new Aggregate(Kind.COUNT_DISTINCT, 0, -1)), 0, null),
        p.mergeSpec().aggregation());
  }

  @Test
  void havingWithHiddenAggregateAndParameter() {
    SelectPlan p = plan("select name from t group by name having count(*) > ? and min(v) is not null"
        + " or not name = 'x' and sum(v) * 2 >= -1.5");
    ShardStatement st = p.shardStatement("true", List.of(3));
    assertEquals("SELECT name, count(*), min(v), sum(v) FROM t WHERE (true) GROUP BY 1", st.sql());
    assertEquals(List.of(), st.params(), "the HAVING parameter is the merge's");
    Expr having = p.mergeSpec().aggregation().having();
    assertEquals(new Expr.Or(
        new Expr.And(new Expr.Compare(Expr.CompareOp.GT, new Expr.Column(1), new Expr.Param(0)),
            new Expr.IsNull(new Expr.Column(2), true)),
        new Expr.And(new Expr.Not(new Expr.Compare(Expr.CompareOp.EQ, new Expr.Column(0),
            new Expr.Literal("x"))),
            new Expr.Compare(Expr.CompareOp.GE, new Expr.Arithmetic(Expr.ArithmeticOp.MULTIPLY,
                new Expr.Column(3), new Expr.Literal(2L)), new Expr.Literal(new BigDecimal("-1.5"))))),
        having);
    assertEquals(List.of(0), p.mergeSpec().projection());
  }

  @Test
  void orderByAggregateAliasAndPosition() {
    SelectPlan p = plan("select name, sum(v) as total from t group by name order by total desc, count(*), 1");
    assertEquals("SELECT name, sum(v), count(*) FROM t WHERE (true) GROUP BY 1", shardSql(p));
    assertEquals(List.of(desc(1), asc(2), asc(0)), p.mergeSpec().finalOrder());
    assertEquals(List.of(0, 1), p.mergeSpec().projection());
    assertEquals(List.of("name", "total"), p.columnLabels());
  }

  @Test
  void groupByAliasPositionAndHiddenKey() {
    SelectPlan p = plan("select lower(name) as n, count(*) from t group by 1, v");
    assertEquals("SELECT lower(name), v, count(*) FROM t WHERE (true) GROUP BY 1, 2", shardSql(p));
    assertEquals(List.of(0, 1), p.mergeSpec().aggregation().groupColumns());
    assertEquals(List.of(0, 2), p.mergeSpec().projection());
    SelectPlan pos = plan("select count(*), upper(name) from t group by 2");
    assertEquals("SELECT upper(name), count(*) FROM t WHERE (true) GROUP BY 1", shardSql(pos));
    assertEquals(List.of(1, 0), pos.mergeSpec().projection());
  }

  @Test
  void selectStarPutsHiddenColumnsFirstAndSizesTheMergeAtMergeTime() {
    SelectPlan p = plan("select * from t order by ts desc limit 5");
    assertEquals("SELECT ts, * FROM t WHERE (true) ORDER BY 1 DESC NULLS FIRST LIMIT 5", shardSql(p));
    assertEquals(-1, p.shardColumns());
    MergeSpec s = p.mergeSpec(4);
    assertEquals(4, s.shardColumns());
    assertEquals(List.of(desc(0)), s.shardOrder());
    assertEquals(List.of(1, 2, 3), s.projection());
    SelectPlan t = plan("select t.*, upper(name) u from t order by upper(name), 2");
    assertEquals("SELECT upper(name), t.*, upper(name) u FROM t WHERE (true) ORDER BY 1 ASC NULLS LAST,"
        + " 3 ASC NULLS LAST", shardSql(t));
    assertEquals(List.of(1, 2, 3, 4), t.mergeSpec(5).projection());
    assertEquals(List.of("*", "u"), t.columnLabels());
  }

  @Test
  void aliasesAndQualifiedNames() {
    SelectPlan aliased = plan("select x.id from app.events x where x.id > 0");
    assertEquals("\"x\".\"account_id\"", aliased.keyRef());
    assertEquals("app.events", aliased.table());
    SelectPlan qualified = plan("select id from app.events");
    assertEquals("\"app\".\"events\".\"account_id\"", qualified.keyRef());
    List<String> asked = new ArrayList<>();
    QueryPlan fallback = QueryPlanner.plan("select id from Public.T", name -> {
      asked.add(name);
      return Optional.ofNullable(KEYS.get(name));
    });
    assertEquals(List.of("public.t", "t"), asked, "qualified name first, then the bare name, folded");
    assertEquals("t", fallback.table());
    assertEquals("\"public\".\"t\".\"id\"", fallback.keyRef());
    SelectPlan quoted = plan("select \"Id\" from \"Mixed\" as \"M\"");
    assertEquals("\"M\".\"id\"", quoted.keyRef());
    assertEquals("Mixed", quoted.table());
    assertEquals(List.of("Id"), quoted.columnLabels());
  }

  @Test
  void coLocatedJoin() {
    SelectPlan p = plan("select o.id, u.name from orders o join users u on u.id = o.user_id and u.active"
        + " where o.total > 5 order by o.id");
    assertEquals("\"o\".\"user_id\"", p.keyRef());
    assertEquals("orders", p.table());
    assertEquals("SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id AND u.active"
        + " WHERE (o.total > 5) AND (true) ORDER BY 1 ASC NULLS LAST", shardSql(p));
    SelectPlan using = plan("select * from orders join items using (user_id)");
    assertEquals("\"orders\".\"user_id\"", using.keyRef());
    SelectPlan chain = plan("select 1 from orders o inner join items i on o.user_id = i.user_id"
        + " join users u on u.id = i.user_id");
    assertEquals("\"o\".\"user_id\"", chain.keyRef());
  }

  @Test
  void columnLabelsFollowPostgres() {
    SelectPlan p = plan("select \"Name\", name as \"Who\", CAST(v AS numeric(10,2)), '1'::int, 'x'::varchar,"
        + " null::timestamp with time zone, case when v > 1 then 'a' else name end, case when v > 1 then 1 end,"
        + " coalesce(v, 0), 1 + 1, t.v, true, lower(name), 2 from t");
    assertEquals(List.of("Name", "Who", "v", "int4", "varchar", "timestamptz", "name", "case", "coalesce",
        "?column?", "v", "?column?", "lower", "?column?"), p.columnLabels());
  }

  @Test
  void explainShowsTheOwnedPredicateAndEveryMergeStep() {
    SelectPlan p = plan("select name, count(*) c from t group by name having count(*) > ? order by c desc"
        + " limit ?");
    assertEquals(String.join("\n",
        "shard: SELECT name, count(*) FROM t WHERE (<owned>) GROUP BY 1",
        "merge: shard rows of 2 columns",
        "merge: group by columns [0]; aggregates COUNT(column 1)",
        "merge: HAVING (column 1 > parameter 1)",
        "merge: sort groups by column 1 DESC NULLS FIRST",
        "merge: skip 0, keep parameter 2",
        "merge: project columns [0, 1]"), p.explain());
    assertTrue(plan("select id from t order by id limit ? offset 4").explain()
        .startsWith("shard: SELECT id FROM t WHERE (<owned>) ORDER BY 1 ASC NULLS LAST LIMIT <parameter 1 + 4>"));
  }

  @Test
  void saltNeverCollidesWithTheCallersText() {
    SelectPlan p = plan("select 'zzsmk0xowned zzsmk0xp1' as s from t where name = 'zzsmk0xlimit' limit 1");
    assertEquals("SELECT 'zzsmk0xowned zzsmk0xp1' AS s FROM t WHERE (name = 'zzsmk0xlimit') AND (true) LIMIT 1",
        shardSql(p));
  }

  @Test
  void shardStatementRefusesWrongParameters() {
    SelectPlan p = plan("select id from t where v > ? order by id limit ? offset ?");
    ShardmapException count = assertThrows(ShardmapException.class,
        () -> p.shardStatement("true", List.of(1, 2)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, count.code());
    assertTrue(count.getMessage().startsWith("params: ") && count.getMessage().contains("expected 3")
        && count.getMessage().contains("given 2"), count.getMessage());
    for (Object bad : Arrays.asList(-1, "10", 1.5, null, new BigDecimal("2.5"))) {
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> p.shardStatement("true", Arrays.asList(1, bad, 0)));
      assertTrue(e.getMessage().startsWith("params: parameter 2 is the LIMIT"), e.getMessage());
    }
    ShardmapException off = assertThrows(ShardmapException.class,
        () -> p.shardStatement("true", Arrays.asList(1, 5, -3L)));
    assertTrue(off.getMessage().contains("parameter 3 is the OFFSET"), off.getMessage());
    assertEquals("SELECT id FROM t WHERE (v > ?) AND (true) ORDER BY 1 ASC NULLS LAST LIMIT ALL",
        p.shardStatement("true", List.of(1, Long.MAX_VALUE, 5)).sql(), "offset + limit past bigint: no limit");
    ShardmapException pred = assertThrows(ShardmapException.class, () -> p.shardStatement(" ", List.of(1, 2, 3)));
    assertTrue(pred.getMessage().startsWith("predicate: "), pred.getMessage());
  }

  @Test
  void aRefusedMergeClosesTheShardSources() {
    SelectPlan p = plan("select id from t order by id limit ?");
    int[] closed = {0};
    io.shardmap.query.RowSource shard = new io.shardmap.query.RowSource() {
      @Override
      public Object[] next() {
        return null;
      }

      @Override
      public void close() {
        closed[0]++;
      }
    };
    io.shardmap.query.MergeOptions options = new io.shardmap.query.MergeOptions(10,
        List.of(new io.shardmap.query.ColumnType("int8", null)));
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> p.merge(List.of(shard, shard), List.of(-1), options));
    assertTrue(e.getMessage().startsWith("params: parameter 1 is the LIMIT"), e.getMessage());
    assertEquals(2, closed[0]);
  }

  @Test
  void mergeSpecRefusesAWidthOtherThanTheShardStatements() {
    SelectPlan p = plan("select id, name from t");
    ShardmapException e = assertThrows(ShardmapException.class, () -> p.mergeSpec(3));
    assertTrue(e.getMessage().startsWith("columns: "), e.getMessage());
  }

  @ParameterizedTest(name = "[{index}] {0}")
  @CsvSource(delimiter = '|', textBlock = """
      selec id from t                                                   | cannot parse the statement
      select id from t where                                            | at line 1, column 18
      ''                                                                | empty
      delete from t                                                     | only a SELECT
      select id from t; select id from t                                | exactly one statement
      select id from t union select id from t                           | UNION
      with x as (select 1) select id from t                             | WITH
      select id from (select id from t) s                               | subqueries cannot be planned across shards (in FROM)
      select id from t where id in (select id from t)                   | subqueries cannot be planned across shards (in WHERE)
      select (select 1) from t                                          | subqueries cannot be planned across shards (in select list)
      select id from t where exists (select 1 from t)                   | (in WHERE)
      select rank() over (order by id) from t                           | window functions cannot be merged across shards (in select list): rank() OVER
      select id from t window w as (order by id)                        | WINDOW
      select distinct on (name) name from t                             | DISTINCT ON
      select id from t for update                                       | FOR UPDATE/SHARE
      select id from t for share                                        | FOR UPDATE/SHARE
      select name from t group by grouping sets ((name), ())            | GROUPING SETS
      select name from t group by rollup(name)                          | ROLLUP
      select name from t group by cube(name)                            | CUBE
      select string_agg(name, ',') from t                               | aggregate string_agg(name, ',') (in select list) cannot be merged
      select name from t group by name having bool_and(v > 0)           | aggregate bool_and
      select sum(distinct v) from t                                     | DISTINCT inside SUM
      select avg(distinct v) from t                                     | DISTINCT inside AVG
      select count(distinct v), count(distinct name) from t             | at most one COUNT(DISTINCT
      select avg(v order by v) from t                                   | ORDER BY inside an aggregate
      select percentile_cont(0.5) within group (order by v) from t      | WITHIN GROUP
      select id from t where id = $1                                    | use ? placeholders
      select id from t where id = :id                                   | use ? placeholders
      select id from nope                                               | table nope (in FROM) is not sharded
      select id from t join nope n on n.id = t.id                       | table nope (in JOIN) is not sharded
      select o.id from orders o join users u on o.id = u.id             | must equate their shard keys
      select o.id from orders o join users u on o.user_id = u.id or true | must equate their shard keys
      select o.id from orders o, users u where o.user_id = u.id         | comma joins
      select o.id from orders o left join users u on o.user_id = u.id   | only INNER JOIN
      select o.id from orders o cross join users u                      | only INNER JOIN
      select name, v from t group by name                               | select list item v is neither a GROUP BY expression nor an aggregate
      select name, count(*) + 1 from t group by name                    | select list item count(*) + 1
      select id from t where count(*) > 1                               | aggregate functions are not allowed in WHERE
      select count(*) from t group by count(*)                          | aggregate functions are not allowed in GROUP BY
      select name from t group by name having lower(name) > 'a'         | HAVING cannot be evaluated after the merge: lower(name)
      select name, count(*) from t group by name order by lower(name)   | ORDER BY lower(name) cannot be evaluated after the merge
      select id from t limit 5, 10                                      | not PostgreSQL syntax
      select id from t limit 1 + 1                                      | LIMIT must be an integer literal or a ? placeholder
      select id from t fetch first 3 rows with ties                     | WITH TIES
      select distinct name from t order by v                            | for SELECT DISTINCT, ORDER BY expressions must appear
      select *, count(*) from t                                         | cannot be combined with GROUP BY or aggregates
      select distinct name, count(*) from t group by name               | DISTINCT together with GROUP BY
      select id from t order by 3                                       | ORDER BY position 3 is not in the select list
      select name, count(*) from t group by 3                           | GROUP BY position 3 is not in the select list
      select count(max(v)) from t                                       | nested
      select id from generate_series(1, 3) g                            | only tables can be read across shards (in FROM)
      select sum(*) from t                                              | only COUNT(*) takes *
      select count(*) filter (where v > 1) over () from t               | window functions
      select 1                                                          | without FROM
      select lower(name) as n, count(*) from t group by n               | GROUP BY n names an output column
      select *, v::text from t order by v                               | may be ambiguous with a column of *
      select v::text, v + 1 as v from t order by v                      | is ambiguous
      select data ?? 'k' from t                                         | jsonb_exists
      select id from t where data ?? 'k'                                | cannot parse
      select id from t where data ? 'k'                                 | jsonb_exists
      select count(*) filter (where count(*) > 1) from t                | nested
      """)
  void refusesNamingTheClause(String sql, String clause) {
    ShardmapException e = assertThrows(ShardmapException.class, () -> QueryPlanner.plan(sql, TABLES));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith("sql: "), e.getMessage());
    assertTrue(e.getMessage().contains(clause), () -> "expected <" + clause + "> in: " + e.getMessage());
  }
}
