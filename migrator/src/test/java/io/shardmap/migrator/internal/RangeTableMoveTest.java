package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The data path of a move on two real PostgreSQL servers, with writers inserting, updating and deleting
 * on keys inside and outside the range the whole time: after capture, copy, catch-up, fence and the last
 * replay, the target's rows of the range equal the source's exactly, and no write to the range commits on
 * the source after the fence.
 */
class RangeTableMoveTest {
  static final long LO = 0;
  static final long HI = 1_000_000;

  PgInstance src;
  PgInstance dst;
  String table;
  String id;

  @BeforeEach
  void setUp() throws SQLException {
    PostgresFixture pg = PostgresFixture.shared(2);
    src = pg.shard(0);
    dst = pg.shard(1);
    String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    table = "mv_" + uid;
    id = "m" + uid;
    String ddl = "CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL, payload text, tags text[])";
    exec(src, ddl);
    exec(dst, ddl);
    try (Connection c = src.connect(); PreparedStatement ps = c.prepareStatement(
        "INSERT INTO " + table + " SELECT g * 100, 0, 'row ' || g, ARRAY['t' || (g % 7)] FROM generate_series(?, ?) g")) {
      ps.setLong(1, -10_000);
      ps.setLong(2, 10_000);
      ps.executeUpdate();
    }
  }

  @AfterEach
  void tearDown() throws SQLException {
    try (Connection c = src.connect()) {
      new RangeTableMove(id, "ks", table, "id", LO, HI).removeCapture(c);
    }
    exec(src, "DROP TABLE IF EXISTS " + table);
    exec(dst, "DROP TABLE IF EXISTS " + table);
  }

  static void exec(PgInstance p, String sql) throws SQLException {
    try (Connection c = p.connect(); Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  /** Every row of the range, as text, in key order. */
  List<String> rows(PgInstance p) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = p.connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT t::text FROM " + table + " t WHERE id >= " + LO + " AND id < " + HI
             + " ORDER BY id")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  @Test
  void writesRacingTheCopyEndUpOnTheTargetExactlyAndTheFenceStopsTheRest() throws Exception {
    RangeTableMove move = new RangeTableMove(id, "ks", table, "id", LO, HI);
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong writes = new AtomicLong();
    AtomicLong fencedRefusals = new AtomicLong();
    AtomicLong fencedAfterOutside = new AtomicLong();
    AtomicBoolean fenced = new AtomicBoolean();
    List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
    List<Thread> writers = new ArrayList<>();
    for (int w = 0; w < 3; w++) {
      int seed = w;
      Thread t = new Thread(() -> {
        SplittableRandom rnd = new SplittableRandom(seed);
        try (Connection c = src.connect()) {
          long deadline = System.nanoTime() + 60_000_000_000L;
          while (!stop.get() && System.nanoTime() < deadline) {
            // Keys from -1.5M to 1.5M: about a third inside the moving range.
            long key = rnd.nextLong(-15_000, 15_000) * 100 + (rnd.nextInt(4) == 0 ? 1 : 0);
            int op = rnd.nextInt(3);
            String sql = switch (op) {
              case 0 -> "INSERT INTO " + table + " VALUES (" + key + ", 1, 'new', ARRAY['n']) ON CONFLICT (id) DO "
                  + "UPDATE SET v = " + table + ".v + 1";
              case 1 -> "UPDATE " + table + " SET v = v + 1, payload = payload || '+' WHERE id = " + key;
              default -> "DELETE FROM " + table + " WHERE id = " + key;
            };
            boolean inside = key >= LO && key < HI;
            // Read before the statement starts: a statement that began before fence() returned may
            // legitimately have committed first (the fence waited for it) and answer only afterwards.
            boolean fencedBefore = fenced.get();
            try (Statement s = c.createStatement()) {
              int changed = s.executeUpdate(sql);
              writes.incrementAndGet();
              // An UPDATE or DELETE of an absent key changes no row, fires no trigger, writes nothing.
              if (inside && changed > 0 && fencedBefore) {
                errors.add(new AssertionError("a write to key " + key + " committed on the source after the fence"));
              }
              if (!inside && fencedBefore) {
                fencedAfterOutside.incrementAndGet();
              }
            } catch (SQLException e) {
              if (StaleRoute.isStaleRoute(e) && inside) {
                fencedRefusals.incrementAndGet();
                assertEquals(7, StaleRoute.fencedEpoch(e));
              } else {
                throw e;
              }
            }
          }
        } catch (Throwable e) {
          errors.add(e);
        }
      }, "writer-" + w);
      writers.add(t);
    }
    writers.forEach(Thread::start);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      Thread.sleep(200);
      move.installCapture(s);
      long copied = move.copyRange(s, d);
      assertTrue(copied > 5_000, "copied " + copied);
      long replayed = 0;
      for (int round = 0; round < 20; round++) {
        replayed += move.replayRound(s, d, 500);
        Thread.sleep(50);
      }
      assertTrue(replayed > 0, "writes during the copy were caught up");
      // The fence, then everything logged before it.
      assertTrue(move.fence(s, 7, Duration.ofSeconds(5)));
      fenced.set(true);
      while (move.replayRound(s, d, 1000) > 0) {
        // drain
      }
      Thread.sleep(300);
      stop.set(true);
      for (Thread t : writers) {
        t.join(10_000);
      }
      assertTrue(errors.isEmpty(), "writer errors: " + errors);
      assertEquals(0, move.pendingKeys(s), "nothing was logged after the fence");
      assertTrue(fencedRefusals.get() > 0, "writers hit the fence");
      assertTrue(fencedAfterOutside.get() > 0, "keys outside the range stayed writable");
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched(), "the checksums agree after the fence");
      List<String> source = rows(src);
      assertEquals(source, rows(dst), "target rows of the range equal the source's");
      assertTrue(source.size() > 5_000);
      // Replaying is idempotent: copying every key again changes nothing.
      move.copyKeys(s, d, source.stream().map(r -> io.shardmap.core.Keys.encodeInt64(
          Long.parseLong(r.substring(1, r.indexOf(','))))).toList());
      assertEquals(source, rows(dst));
      // The migrator's own cleanup passes the fence; nobody else does.
      try (Statement st = s.createStatement()) {
        SQLException e = assertThrows(SQLException.class, () -> st.executeUpdate("DELETE FROM " + table
            + " WHERE id >= " + LO + " AND id < " + HI));
        assertTrue(StaleRoute.isStaleRoute(e));
        s.setAutoCommit(false);
        st.execute("SET LOCAL " + RangeTableMove.BYPASS_SETTING + " = 'on'");
        assertEquals(source.size(), st.executeUpdate("DELETE FROM " + table + " WHERE id >= " + LO
            + " AND id < " + HI));
        s.commit();
        s.setAutoCommit(true);
      }
      System.out.printf("move: %d rows copied, %d keys replayed, %d writes, %d refused by the fence%n",
          copied, replayed, writes.get(), fencedRefusals.get());
    } finally {
      stop.set(true);
    }
  }

  @Test
  void verificationFindsAndRepairsEveryDifferingChunk() throws Exception {
    RangeTableMove move = new RangeTableMove(id, "ks", table, "id", LO, HI);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      move.copyRange(s, d);
      assertEquals(new RangeTableMove.Verification(10, 0, 0), move.verifyAndRepair(s, d, 1000));
      // Damage the target three ways in three different chunks: a row lost, a row changed, a row that
      // should not be there (inside the range, between source keys).
      exec(dst, "DELETE FROM " + table + " WHERE id = 100");
      exec(dst, "UPDATE " + table + " SET payload = 'changed' WHERE id = 500000");
      exec(dst, "INSERT INTO " + table + " VALUES (999950, 0, 'extra', NULL)");
      RangeTableMove.Verification v = move.verifyAndRepair(s, d, 1000);
      assertEquals(3, v.mismatched(), v.toString());
      assertEquals(rows(src), rows(dst));
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
      // Keys the target holds outside the range are none of this move's business.
      exec(dst, "INSERT INTO " + table + " VALUES (-5, 0, 'outside', NULL)");
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
    }
  }

  @Test
  void aFenceThatCannotGetItsLockInTheBudgetChangesNothing() throws Exception {
    RangeTableMove move = new RangeTableMove(id, "ks", table, "id", LO, HI);
    try (Connection holder = src.connect(); Connection s = src.connect()) {
      holder.setAutoCommit(false);
      try (Statement st = holder.createStatement()) {
        st.executeUpdate("UPDATE " + table + " SET v = v + 1 WHERE id = -100");  // an open writer
      }
      long t0 = System.nanoTime();
      assertFalse(move.fence(s, 3, Duration.ofMillis(200)));
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(ms < 2000, "gave up within the budget, took " + ms + " ms");
      holder.commit();
      try (Statement st = s.createStatement()) {
        assertEquals(1, st.executeUpdate("UPDATE " + table + " SET v = v + 1 WHERE id = 100"), "not fenced");
      }
    }
  }

  @Test
  void badArgumentsAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new RangeTableMove("Bad-Id", "ks", table, "id", LO, HI));
    assertThrows(IllegalArgumentException.class, () -> new RangeTableMove(id, "ks", table, "id", 5L, 5L));
  }
}
