package io.shardmap.core;

import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.function.BiFunction;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class NamesTest {

  private static void accepts(BiFunction<String, String, String> rule, String... values) {
    for (String v : values) {
      assertEquals(v, rule.apply("f", v), "should accept '" + v + "'");
    }
  }

  private static void rejects(BiFunction<String, String, String> rule, String field, String ruleText,
                              String... values) {
    for (String v : values) {
      ShardmapException e = assertError(ErrorCode.INVALID_ARGUMENT, () -> rule.apply(field, v), field + ":", ruleText);
      if (v != null && !v.isEmpty() && v.length() <= 80) {
        assertEquals(true, e.getMessage().contains("'" + v + "'"), "the message quotes the value: " + e.getMessage());
      }
    }
    assertError(ErrorCode.INVALID_ARGUMENT, () -> rule.apply(field, null), field + ":", "required");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> rule.apply(field, ""), field + ":", "required");
  }

  @Test
  void keyspace() {
    accepts(Names::keyspace, "a", "orders", "orders_v2", "a" + "b".repeat(62));
    rejects(Names::keyspace, "spec.name", "keyspace name", "Orders", "2orders", "_orders", "orders-v2",
        "orders v2", "a" + "b".repeat(63), "ørders");
  }

  @Test
  void shard() {
    accepts(Names::shard, "s", "shard-01", "eu_west_1", "a" + "-".repeat(62));
    rejects(Names::shard, "shard.name", "shard name", "Shard1", "1shard", "-shard", "shard.1", "shard#1",
        "a" + "b".repeat(63));
  }

  @Test
  void region() {
    accepts(Names::region, "eu-west-1", "1", "us", "9" + "z".repeat(62));
    rejects(Names::region, "shard.region", "region name", "EU", "eu_west", "-eu", "eu.west", "a".repeat(64));
  }

  @Test
  void sqlIdentifier() {
    accepts(Names::sqlIdentifier, "orders", "_tmp", "a1", "customer_id", "_" + "x".repeat(62));
    rejects(Names::sqlIdentifier, "tables[0].key_column", "PostgreSQL identifier", "1col", "Col", "col-1",
        "\"quoted\"", "x".repeat(64));
  }

  @Test
  void host() {
    accepts(Names::host, "db1.example.com", "10.0.0.1", "[::1]", "fe80::1", "DB-1", "a".repeat(253));
    rejects(Names::host, "shard.primary.host", "host name", "db 1", "db/1", "db_1", "a".repeat(254));
  }

  @Test
  void longValuesAreAbbreviatedInMessages() {
    String v = "A".repeat(200);
    ShardmapException e = assertError(ErrorCode.INVALID_ARGUMENT, () -> Names.keyspace("name", v), "name:", "...");
    assertEquals(true, e.getMessage().length() < 250, "message should not carry the whole value: " + e.getMessage());
  }
}
