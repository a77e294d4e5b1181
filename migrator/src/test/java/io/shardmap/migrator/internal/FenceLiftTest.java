package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.core.HashTable;
import io.shardmap.core.XxHash64;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.function.LongPredicate;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Issue 10, item 3, on real PostgreSQL: a unit coming back to a shard lifts its keys from that shard's
 * fences whatever units they were put for (a ring arc that changed, buckets of another bucket count), and
 * no other keys; a fence it covers is deleted, one it shares no key with is left alone.
 */
@Tag("integration")
class FenceLiftTest {
  PgInstance pg;
  String table;
  String uid;

  @BeforeEach
  void setUp() throws SQLException {
    pg = PostgresFixture.shared(1).shard(0);
    uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    table = "fl_" + uid;
    pg.exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL)");
    try (Connection c = pg.connect()) {
      RoutingFunctions.install(c);
      Fences.ensureSchema(c);
    }
  }

  @AfterEach
  void tearDown() throws SQLException {
    pg.exec("DROP TABLE IF EXISTS " + table);
    pg.exec("DELETE FROM shardmap.fences WHERE tbl = '" + table + "'");
  }

  private RangeTableMove move(String id, MoveUnit unit) {
    return new RangeTableMove(id + uid, "ks", table, "id", KeyKind.INT64, unit);
  }

  private static List<Long> keys(LongPredicate p) {
    return LongStream.range(0, 100_000).filter(p).limit(30).boxed().toList();
  }

  private void assertWritable(Statement s, List<Long> keys, boolean writable, String what) throws SQLException {
    for (long k : keys) {
      String sql = "INSERT INTO " + table + " VALUES (" + k + ", 0) ON CONFLICT (id) DO UPDATE SET v = 1";
      if (writable) {
        assertEquals(1, s.executeUpdate(sql), what + ": key " + k);
      } else {
        SQLException e = assertThrows(SQLException.class, () -> s.executeUpdate(sql), what + ": key " + k);
        assertTrue(StaleRoute.isStaleRoute(e), e.toString());
      }
    }
  }

  private String conditionOf(Connection c, String migration) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT cond_new || '|' || cond_old "
        + "|| '|' || unit_text FROM shardmap.fences WHERE migration = '" + migration + uid + "'")) {
      return rs.next() ? rs.getString(1) : null;
    }
  }

  @Test
  void aRingArcComingBackNarrowsTheFenceOfTheLargerArcItWasPartOf() throws Exception {
    long a = 0x2000_0000_0000_0000L;
    long c = 0x4000_0000_0000_0000L;
    long b = 0x6000_0000_0000_0000L;
    LongPredicate inBack = k -> in(XxHash64.hashInt64(k), c, b);
    LongPredicate inRest = k -> in(XxHash64.hashInt64(k), a, c);
    LongPredicate outside = k -> !in(XxHash64.hashInt64(k), a, b);
    try (Connection conn = pg.connect(); Statement s = conn.createStatement()) {
      // The shard gave away the arc (a, b]; the ring changed since; (c, b] comes back.
      assertTrue(Fences.fence(conn, List.of(move("away", new MoveUnit.Arc(a, b))), 4, Duration.ofSeconds(5)));
      assertWritable(s, keys(inBack), false, "fenced arc");
      assertWritable(s, keys(outside), true, "outside the arc");
      Fences.arm(conn, List.of(move("back", new MoveUnit.Arc(c, b))), 5);
      assertEquals(1, armed(conn), "the move back armed the fence it shares keys with");
      Fences.unfenceMoved(conn, List.of(move("back", new MoveUnit.Arc(c, b))));
      assertEquals(0, armed(conn), "the lift disarmed what is left of it: no declaration passes it any more");
      assertWritable(s, keys(inBack), true, "the arc that came back");
      assertWritable(s, keys(inRest), false, "the rest of the old arc");
      SQLException e = assertThrows(SQLException.class, () -> s.executeUpdate("INSERT INTO " + table + " VALUES ("
          + keys(inRest).get(0) + ", 0)"));
      assertTrue(e.getMessage().contains("no longer owns part of ring arc (2000000000000000, 6000000000000000] of "
          + "keyspace 'ks' (fenced_epoch=4)"), e.getMessage());
      String narrowed = conditionOf(conn, "away");
      Fences.unfenceMoved(conn, List.of(move("back", new MoveUnit.Arc(c, b))));
      assertEquals(narrowed, conditionOf(conn, "away"), "lifting again changes nothing");
      // The rest comes back too: every key of the old arc is writable (the fence row stays, matching none).
      Fences.unfenceMoved(conn, List.of(move("rest", new MoveUnit.Arc(a, c))));
      assertWritable(s, keys(inRest), true, "the rest of the old arc, back as well");
      assertWritable(s, keys(inBack), true, "the arc that came back first");
    }
  }

  @Test
  void bucketFencesAreDeletedWhenCoveredLeftAloneWhenDisjointNarrowedOtherwise() throws Exception {
    LongPredicate in3of16 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 16) == 3;
    LongPredicate in11of16 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 16) == 11;
    LongPredicate in5of8 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 5;
    try (Connection conn = pg.connect(); Statement s = conn.createStatement()) {
      assertTrue(Fences.fence(conn, List.of(move("b3x16", new MoveUnit.Bucket(3, 16))), 4, Duration.ofSeconds(5)));
      assertTrue(Fences.fence(conn, List.of(move("b5x8", new MoveUnit.Bucket(5, 8))), 4, Duration.ofSeconds(5)));
      assertTrue(Fences.fence(conn, List.of(move("b3x4", new MoveUnit.Bucket(3, 4))), 4, Duration.ofSeconds(5)));
      String disjoint = conditionOf(conn, "b5x8");
      // Bucket 3 of 8 = buckets 3 and 11 of 16 comes back: 3 of 16 is covered (deleted), 5 of 8 shares no
      // key (untouched), 3 of 4 (= 3 and 7 of 8) is narrowed.
      Fences.unfenceMoved(conn, List.of(move("back", new MoveUnit.Bucket(3, 8))));
      assertEquals(Set.of("b5x8" + uid, "b3x4" + uid), Fences.fencesOn(conn, table));
      assertEquals(disjoint, conditionOf(conn, "b5x8"));
      assertTrue(conditionOf(conn, "b3x4").contains(" AND NOT ("), conditionOf(conn, "b3x4"));
      assertWritable(s, keys(in3of16), true, "bucket 3 of 16");
      assertWritable(s, keys(in11of16), true, "bucket 11 of 16");
      assertWritable(s, keys(in5of8), false, "bucket 5 of 8");
      assertWritable(s, keys(k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 7), false, "bucket 7 of 8");
      // Bucket 7 of 8, the rest of 3 of 4, comes back: that fence is gone, not left matching nothing.
      Fences.unfenceMoved(conn, List.of(move("back7", new MoveUnit.Bucket(7, 8))));
      assertEquals(Set.of("b5x8" + uid), Fences.fencesOn(conn, table));
      assertWritable(s, keys(k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 7), true, "bucket 7 of 8");
    }
    assertEquals(Fences.Relation.COVERED, Fences.relation("bucket:3:16", "bucket:3:8"));
    assertEquals(Fences.Relation.DISJOINT, Fences.relation("bucket:3:16", "bucket:4:8"));
    assertEquals(Fences.Relation.UNKNOWN, Fences.relation("bucket:3:8", "bucket:11:16"));
    assertEquals(Fences.Relation.DISJOINT, Fences.relation("bucket:3:8", "bucket:12:16"));
    assertEquals(Fences.Relation.UNKNOWN, Fences.relation("bucket:1:3", "bucket:1:4"));
    assertEquals(Fences.Relation.UNKNOWN, Fences.relation(null, "bucket:1:4"));
    // Lifted piece by piece: 3 of 8 minus 11 of 16, then 3 of 16 comes back too.
    assertEquals(Fences.Relation.COVERED, Fences.relation("bucket:3:8;bucket:11:16", "bucket:3:16"));
    assertEquals(Fences.Relation.UNKNOWN, Fences.relation("bucket:3:8;bucket:11:16", "bucket:3:32"));
    assertEquals(Fences.Relation.COVERED, Fences.relation("bucket:1:2;bucket:1:6;bucket:3:6", "bucket:5:6"));
    assertEquals(Fences.Relation.UNKNOWN, Fences.relation("bucket:1:2;bucket:1:6", "bucket:5:6"));
  }

  private int armed(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM shardmap.fences "
        + "WHERE tbl = '" + table + "' AND pass_epoch IS NOT NULL")) {
      rs.next();
      return rs.getInt(1);
    }
  }

  /** x in the ring arc (after, upTo], unsigned. */
  private static boolean in(long x, long after, long upTo) {
    return Long.compareUnsigned(x, after) > 0 && Long.compareUnsigned(x, upTo) <= 0;
  }
}
