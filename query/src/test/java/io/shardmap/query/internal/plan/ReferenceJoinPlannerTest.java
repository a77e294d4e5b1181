package io.shardmap.query.internal.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.QueryPlanner;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Joins with reference tables (complete on every shard): accepted on any condition when the reference
 * table is never the preserved side, with the ownership predicate on the sharded table of the FROM;
 * refused, naming the rule, as the FROM or the preserved side of a RIGHT or FULL join.
 */
@Tag("unit")
class ReferenceJoinPlannerTest {
  static final Map<String, String> KEYS = Map.of("orders", "user_id", "users", "id");
  static final Set<String> REFERENCE = Set.of("countries", "public.countries", "app.plans");
  static final QueryPlanner.ShardedTables TABLES = new QueryPlanner.ShardedTables() {
    @Override
    public Optional<String> keyColumn(String table) {
      return Optional.ofNullable(KEYS.get(table));
    }

    @Override
    public boolean isReference(String table) {
      return REFERENCE.contains(table);
    }
  };

  static SelectPlan plan(String sql) {
    return (SelectPlan) QueryPlanner.plan(sql, TABLES);
  }

  @Test
  void joinsOnAnyConditionKeepTheShardedTablesPredicate() {
    SelectPlan p = plan("select u.id, c.name from users u join countries c on c.code = u.country"
        + " where u.id > ? order by u.id limit 5");
    assertEquals("\"u\".\"id\"", p.keyRef());
    assertEquals("users", p.table());
    assertEquals("SELECT u.id, c.name FROM users u JOIN countries c ON c.code = u.country WHERE (u.id > ?) AND (true)"
        + " ORDER BY 1 ASC NULLS LAST LIMIT 5", PlannerTest.shardSql(p, 1));
    assertEquals("\"o\".\"user_id\"", plan("select count(*) from orders o left join public.countries c"
        + " on c.code = o.country join users u on u.id = o.user_id").keyRef());
    plan("select c.name, count(*) from users u, countries c where c.code = u.country group by c.name");
    plan("select count(*) from users u cross join app.plans p");
    plan("select c.name, count(*) from users u left outer join countries c using (code) group by 1");
  }

  @Test
  void aShardedJoinAfterAReferenceJoinStillEquatesShardKeys() {
    ShardmapException e = assertThrows(ShardmapException.class, () -> plan("select 1 from users u"
        + " join countries c on c.code = u.country join orders o on o.user_id = c.code"));
    assertTrue(e.getMessage().contains("must equate their shard keys"), e.getMessage());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      select * from countries                                              | reference table countries cannot be the FROM
      select * from countries c join users u on u.country = c.code         | reference table countries cannot be the FROM
      select * from users u right join countries c on c.code = u.country   | INNER, LEFT, CROSS or comma join only
      select * from users u full join countries c on c.code = u.country    | INNER, LEFT, CROSS or comma join only
      select * from users u natural join countries c                       | NATURAL: write ON or USING
      select * from users u join other.countries c on c.code = u.country   | table other.countries (in JOIN) is not sharded in this keyspace (nor one of its reference tables)
      """)
  void refusesNamingTheRule(String sql, String rule) {
    ShardmapException e = assertThrows(ShardmapException.class, () -> plan(sql));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains(rule), e.getMessage());
  }
}
