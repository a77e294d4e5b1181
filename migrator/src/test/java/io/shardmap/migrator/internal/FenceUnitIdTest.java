package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.FenceUnit;
import io.shardmap.core.Keys;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every fence row names its unit in {@code unit_id} (FenceUnit's code), for every kind of unit, and keeps
 * the code of the unit it was put for when a unit coming back cuts or narrows it; a bounds row written
 * before the column existed gets its range's code when it is cut or narrowed. The fences table is readable
 * by every role (cross-shard queries read it as the application's role).
 */
@Tag("integration")
class FenceUnitIdTest {
  PgInstance pg;
  String table;
  String textTable;
  String uid;

  @BeforeEach
  void setUp() throws SQLException {
    pg = PostgresFixture.shared(1).shard(0);
    uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    table = "fu_" + uid;
    textTable = "fut_" + uid;
    pg.exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL)");
    pg.exec("CREATE TABLE " + textTable + " (id text PRIMARY KEY, v bigint NOT NULL)");
    try (Connection c = pg.connect()) {
      RoutingFunctions.install(c);
      Fences.ensureSchema(c);
    }
  }

  @AfterEach
  void tearDown() throws SQLException {
    pg.exec("DROP TABLE IF EXISTS " + table + ", " + textTable);
    pg.exec("DELETE FROM shardmap.fences WHERE tbl IN ('" + table + "', '" + textTable + "')");
  }

  private RangeTableMove move(String id, MoveUnit unit) {
    return new RangeTableMove(id + uid, "ks", table, "id", KeyKind.INT64, unit);
  }

  /** migration (without the uid) → unit_id, for both tables. */
  private Map<String, String> unitIds(Connection c) throws SQLException {
    Map<String, String> out = new TreeMap<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT migration, unit_id FROM "
        + "shardmap.fences WHERE tbl IN ('" + table + "', '" + textTable + "')")) {
      while (rs.next()) {
        out.put(rs.getString(1).replace(uid, ""), rs.getString(2));
      }
    }
    return out;
  }

  @Test
  void everyKindOfUnitIsWrittenWithItsCode() throws Exception {
    byte[] eu = "eu".getBytes(StandardCharsets.UTF_8);
    try (Connection c = pg.connect()) {
      assertTrue(Fences.fence(c, List.of(new RangeTableMove("r" + uid, "ks", table, "id", 0L, 100L)), 4,
          Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(move("b", new MoveUnit.Bucket(3, 8))), 4, Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(move("a", new MoveUnit.Arc(0x20, 0x60))), 4, Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(move("e", new MoveUnit.Entries(List.of(Keys.encodeInt64(7))))), 4,
          Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(new RangeTableMove("g" + uid, "ks", textTable, "id", KeyKind.TEXT,
          new MoveUnit.Region("eu", true, List.of("us")))), 4, Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(new RangeTableMove("t" + uid, "ks", textTable, "id", KeyKind.TEXT,
          new MoveUnit.Range(io.shardmap.core.KeyRange.of(eu, new byte[0], "r")))), 4, Duration.ofSeconds(5)));
      assertEquals(Map.of(
          "r", "v1:int64:0:100",
          "b", "v1:bucket:3:8",
          "a", "v1:arc:0000000000000020:0000000000000060",
          "e", "v1:entries:" + Keys.hex(Keys.encodeInt64(7)),
          "g", "v1:default-region:" + Keys.hex(eu) + ":" + Keys.hex("us".getBytes(StandardCharsets.UTF_8)),
          "t", "v1:range:" + Keys.hex(eu) + ":"), unitIds(c));
      for (String code : unitIds(c).values()) {
        FenceUnit.decode(code);
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(
          "SELECT has_table_privilege('public', 'shardmap.fences', 'SELECT')")) {
        rs.next();
        assertTrue(rs.getBoolean(1), "every role may read the fences");
      }
    }
  }

  @Test
  void cutAndNarrowedFencesKeepTheCodeOfTheUnitTheyWerePutFor() throws Exception {
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      assertTrue(Fences.fence(c, List.of(new RangeTableMove("r" + uid, "ks", table, "id", 0L, 100L)), 4,
          Duration.ofSeconds(5)));
      assertTrue(Fences.fence(c, List.of(move("b", new MoveUnit.Bucket(3, 4))), 4, Duration.ofSeconds(5)));
      // A bounds fence from before unit_id existed.
      s.execute("INSERT INTO shardmap.fences (tbl, migration, key_column, lo, hi, keyspace, epoch) VALUES ('"
          + table + "', 'old" + uid + "', 'id', 200, 300, 'ks', 4)");
      Fences.unfenceMoved(c, List.of(new RangeTableMove("back" + uid, "ks", table, "id", 40L, 60L)));
      Fences.unfenceMoved(c, List.of(new RangeTableMove("back2" + uid, "ks", table, "id", 240L, 260L)));
      Fences.unfenceMoved(c, List.of(move("back3", new MoveUnit.Bucket(3, 8))));
      assertEquals(Map.of(
          "r:below", "v1:int64:0:100",
          "r:above", "v1:int64:0:100",
          "b", "v1:bucket:3:4",
          "old:below", "v1:int64:200:240",
          "old:above", "v1:int64:260:300"), unitIds(c));
      // A bucket coming back narrows every bounds fence of the keyspace to a condition: unit_id stays, and
      // a bounds row without one gets its range's code before its bounds are replaced.
      s.execute("INSERT INTO shardmap.fences (tbl, migration, key_column, lo, hi, keyspace, epoch) VALUES ('"
          + table + "', 'old2" + uid + "', 'id', 500, NULL, 'ks', 4)");
      Fences.unfenceMoved(c, List.of(move("back4", new MoveUnit.Bucket(1, 2))));
      Map<String, String> ids = unitIds(c);
      assertEquals("v1:int64:500:", ids.get("old2"));
      assertEquals("v1:int64:0:100", ids.get("r:below"));
      try (ResultSet rs = s.executeQuery("SELECT count(*) FROM shardmap.fences WHERE tbl = '" + table
          + "' AND lo IS NULL AND hi IS NULL AND cond_new IS NOT NULL AND migration = 'old2" + uid + "'")) {
        rs.next();
        assertEquals(1, rs.getInt(1), "the bounds fence became a condition");
      }
    }
  }
}
