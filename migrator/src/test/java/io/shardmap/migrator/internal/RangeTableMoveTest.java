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
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The data path of a move on two real PostgreSQL servers, with writers inserting, updating and deleting
 * on keys inside and outside the range the whole time: after capture, copy, catch-up, fence and the last
 * replay, the target's rows of the range equal the source's exactly, and no write to the range commits on
 * the source after the fence.
 */
@Tag("integration")
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
    src.exec(ddl);
    dst.exec(ddl);
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
    src.exec("DROP TABLE IF EXISTS " + table);
    dst.exec("DROP TABLE IF EXISTS " + table);
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
    raceWritersThroughTheMove();
  }

  /**
   * The same on a declaratively partitioned table (large tables often are), with partition bounds that
   * cut through the moving range: capture, fence and COPY work on the parent and reach every partition.
   */
  @Test
  void aPartitionedTableMovesTheSameWay() throws Exception {
    for (PgInstance p : List.of(src, dst)) {
      p.exec("DROP TABLE " + table);
      p.exec("CREATE TABLE " + table + " (id bigint NOT NULL, v bigint NOT NULL, payload text, tags text[], "
          + "PRIMARY KEY (id)) PARTITION BY RANGE (id)");
      p.exec("CREATE TABLE " + table + "_lo PARTITION OF " + table + " FOR VALUES FROM (MINVALUE) TO (500000)");
      p.exec("CREATE TABLE " + table + "_hi PARTITION OF " + table + " FOR VALUES FROM (500000) TO (MAXVALUE)");
    }
    try (Connection c = src.connect(); PreparedStatement ps = c.prepareStatement(
        "INSERT INTO " + table + " SELECT g * 100, 0, 'row ' || g, ARRAY['t' || (g % 7)] FROM generate_series(?, ?) g")) {
      ps.setLong(1, -10_000);
      ps.setLong(2, 10_000);
      ps.executeUpdate();
    }
    raceWritersThroughTheMove();
  }

  private void raceWritersThroughTheMove() throws Exception {
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
      // The migrator's own writes pass the fence; nobody else does, not even with the setting given a
      // value by hand for the session or the transaction.
      String deleteRange = "DELETE FROM " + table + " WHERE id >= " + LO + " AND id < " + HI;
      try (Statement st = s.createStatement()) {
        assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> st.executeUpdate(deleteRange))));
        st.execute("SET " + RangeTableMove.BYPASS_SETTING + " = 'on'");
        assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> st.executeUpdate(deleteRange))),
            "a session setting passes no fence");
        s.setAutoCommit(false);
        st.execute("SELECT set_config('" + RangeTableMove.BYPASS_SETTING + "', (txid_current() + 1)::text, true)");
        assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> st.executeUpdate(deleteRange))),
            "another transaction's id passes no fence");
        s.rollback();
        Fences.passFence(st);
        assertEquals(source.size(), st.executeUpdate(deleteRange));
        s.commit();
        s.setAutoCommit(true);
        // The pass ended with its transaction.
        assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> st.executeUpdate("INSERT INTO "
            + table + " (id, v) VALUES (" + LO + ", 0)"))));
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
      dst.exec("DELETE FROM " + table + " WHERE id = 100");
      dst.exec("UPDATE " + table + " SET payload = 'changed' WHERE id = 500000");
      dst.exec("INSERT INTO " + table + " VALUES (999950, 0, 'extra', NULL)");
      RangeTableMove.Verification v = move.verifyAndRepair(s, d, 1000);
      assertEquals(3, v.mismatched(), v.toString());
      assertEquals(rows(src), rows(dst));
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
      // Keys the target holds outside the range are none of this move's business.
      dst.exec("INSERT INTO " + table + " VALUES (-5, 0, 'outside', NULL)");
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
    }
  }

  /** Every row of {@code t} in [LO, HI) as text, in key order. */
  static List<String> rowsOf(PgInstance p, String t) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = p.connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT x::text FROM " + t + " x WHERE id >= " + LO + " AND id < " + HI
             + " ORDER BY id")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  /**
   * A table whose every column is of a type verification hashes as stored (hash_record_extended, the
   * cheaper row hash): a change of any one column of one row on the target, a NULL for a value, a missing
   * row, an extra row and two rows' values swapped are each found (the chunk differs) and repaired by key,
   * and afterwards both sides' rows are equal. Each check would fail if verification compared nothing or
   * skipped a column.
   */
  @Test
  void verificationWithTheStoredValueHashFindsEveryKindOfDifference() throws Exception {
    String t = table + "_x";
    String ddl = "CREATE TABLE " + t + " (id bigint PRIMARY KEY, i int, sm smallint, b boolean, tx text, "
        + "vc varchar(20), by bytea, d date, ts timestamp, tz timestamptz, u uuid, tm time, o oid)";
    src.exec(ddl);
    dst.exec(ddl);
    src.exec("INSERT INTO " + t + " SELECT g, g, g % 100, g % 2 = 0, 'text ' || g, 'vc' || g, "
        + "decode(md5(g::text), 'hex'), date '2026-01-01' + g % 300, timestamp '2026-01-01' + g * interval '1 s', "
        + "timestamptz '2026-01-01 00:00+00' + g * interval '1 ms', md5(g::text)::uuid, time '00:00' + g * interval "
        + "'1 s', g FROM generate_series(1, 5000) g");
    RangeTableMove move = new RangeTableMove(id, "ks", t, "id", LO, HI);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      move.copyRange(s, d);
      assertEquals("hash_record_extended(t, 0)", move.rowHash(s, d), "the stored-value hash applies");
      assertEquals(new RangeTableMove.Verification(5, 0, 0), move.verifyAndRepair(s, d, 1000));
      List<String> changes = List.of("i = i + 1", "sm = sm + 1", "b = NOT b", "tx = tx || ' '", "vc = upper(vc)",
          "by = by || '\\x00'::bytea", "d = d + 1", "ts = ts + interval '1 microsecond'",
          "tz = tz + interval '1 microsecond'", "u = md5('other')::uuid", "tm = tm + interval '1 microsecond'",
          "o = (o::bigint + 1)::oid", "tx = NULL", "tx = ''");
      long key = 10;
      for (String change : changes) {
        dst.exec("UPDATE " + t + " SET " + change + " WHERE id = " + key);
        RangeTableMove.Verification v = move.verifyAndRepair(s, d, 1000);
        assertEquals(new RangeTableMove.Verification(5, 1, 1), v, change);
        assertEquals(rowsOf(src, t), rowsOf(dst, t), change);
        key += 311;
      }
      dst.exec("DELETE FROM " + t + " WHERE id = 4321");
      assertEquals(new RangeTableMove.Verification(5, 1, 1), move.verifyAndRepair(s, d, 1000), "a missing row");
      dst.exec("INSERT INTO " + t + " (id, tx) VALUES (999999, 'extra')");
      assertEquals(new RangeTableMove.Verification(5, 1, 1), move.verifyAndRepair(s, d, 1000), "an extra row");
      // Two rows of one chunk trade their text: the chunk holds the same values, in other rows.
      dst.exec("UPDATE " + t + " SET tx = CASE id WHEN 20 THEN 'text 21' ELSE 'text 20' END WHERE id IN (20, 21)");
      assertEquals(new RangeTableMove.Verification(5, 1, 2), move.verifyAndRepair(s, d, 1000), "values swapped");
      assertEquals(rowsOf(src, t), rowsOf(dst, t));
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
    } finally {
      src.exec("DROP TABLE IF EXISTS " + t);
      dst.exec("DROP TABLE IF EXISTS " + t);
    }
  }

  /**
   * A column whose type's equality ignores what its text shows (numeric 1.0 and 1.00 are equal, and hash
   * alike) keeps the table on the hash of the rows' text, which tells them apart: a target whose value
   * changed only in scale is found and repaired.
   */
  @Test
  void aTypeWhoseEqualityIgnoresItsTextKeepsTheTextHash() throws Exception {
    String t = table + "_n";
    String ddl = "CREATE TABLE " + t + " (id bigint PRIMARY KEY, amount numeric, note text)";
    src.exec(ddl);
    dst.exec(ddl);
    src.exec("INSERT INTO " + t + " SELECT g, 1.0, 'n' || g FROM generate_series(1, 2000) g");
    RangeTableMove move = new RangeTableMove(id, "ks", t, "id", LO, HI);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      move.copyRange(s, d);
      assertEquals("hashtextextended(t::text, 0)", move.rowHash(s, d));
      dst.exec("UPDATE " + t + " SET amount = 1.00 WHERE id = 1500");
      assertEquals(new RangeTableMove.Verification(2, 1, 1), move.verifyAndRepair(s, d, 1000));
      assertEquals(rowsOf(src, t), rowsOf(dst, t));
    } finally {
      src.exec("DROP TABLE IF EXISTS " + t);
      dst.exec("DROP TABLE IF EXISTS " + t);
    }
  }

  /**
   * Cleanup's chunks along the key index delete every row of the range and nothing else, however the
   * chunk size divides the rows, and a cleanup run again after it finished deletes nothing.
   */
  @Test
  void deleteChunksRemoveTheRangeExactly() throws Exception {
    RangeTableMove move = new RangeTableMove(id, "ks", table, "id", LO, HI);
    long inside = count(src, "id >= " + LO + " AND id < " + HI);
    long outside = count(src, "NOT (id >= " + LO + " AND id < " + HI + ")");
    try (Connection s = src.connect()) {
      long deleted = 0;
      int chunks = 0;
      byte[] after = null;
      while (true) {
        RangeTableMove.DeletedChunk c = move.deleteChunk(s, after, 777, Duration.ofSeconds(1));
        deleted += c.rows();
        chunks++;
        if (c.done()) {
          break;
        }
        assertEquals(777, c.rows(), "a full chunk before the last");
        after = c.last();
      }
      assertEquals(inside, deleted);
      assertEquals((inside + 776) / 777, chunks);
      assertEquals(new RangeTableMove.DeletedChunk(0, null, true).rows(), move.deleteChunk(s, null, 777, null).rows());
    }
    assertEquals(0, count(src, "id >= " + LO + " AND id < " + HI));
    assertEquals(outside, count(src, "NOT (id >= " + LO + " AND id < " + HI + ")"));
  }

  long count(PgInstance p, String where) throws SQLException {
    try (Connection c = p.connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table + " WHERE " + where)) {
      rs.next();
      return rs.getLong(1);
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

  /**
   * DDL on a table an open transaction holds does not wait in the lock queue (where it would stop every
   * later writer): each attempt gives up after its lock wait and retries after a pause of
   * RangeTableMove.DDL_RETRY, until the holder ends; then it applies.
   */
  @Test
  void ddlBehindAnOpenWriterRetriesUntilItEndsAndWritersAreNotQueuedBehindIt() throws Exception {
    RangeTableMove move = new RangeTableMove(id, "ks", table, "id", LO, HI);
    try (Connection holder = src.connect(); Connection s = src.connect(); Connection writer = src.connect()) {
      holder.setAutoCommit(false);
      try (Statement st = holder.createStatement()) {
        st.executeUpdate("UPDATE " + table + " SET v = v + 1 WHERE id = -100");  // an open writer
      }
      java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
      java.util.concurrent.CompletableFuture<Boolean> installed = java.util.concurrent.CompletableFuture.supplyAsync(
          () -> {
            try {
              move.installCapture(s);
              return released.get();
            } catch (SQLException e) {
              throw new java.util.concurrent.CompletionException(e);
            }
          });
      // While the DDL keeps retrying, another writer gets through: no lock request stays queued.
      for (int i = 0; i < 5; i++) {
        try (Statement st = writer.createStatement()) {
          assertEquals(1, st.executeUpdate("UPDATE " + table + " SET v = v + 1 WHERE id = 200"));
        }
        Thread.sleep(100);
      }
      assertFalse(installed.isDone(), "the DDL cannot apply while the holder's transaction is open");
      released.set(true);
      holder.commit();
      assertTrue(installed.get(60, java.util.concurrent.TimeUnit.SECONDS), "applied only after the holder ended");
      try (Statement st = s.createStatement(); ResultSet rs = st.executeQuery(
          "SELECT count(*) FROM pg_trigger WHERE tgrelid = '" + table + "'::regclass AND NOT tgisinternal")) {
        rs.next();
        assertEquals(2, rs.getLong(1), "the capture and no-truncate triggers");
      }
    }
  }

  /**
   * A generated column is computed by each shard: COPY leaves it out (COPY FROM refuses values for it), a
   * created target table gets the same generation expression, and a target whose column is a plain one
   * is refused as a different schema.
   */
  @Test
  void generatedColumnsAreComputedOnTheTargetNotCopied() throws Exception {
    String gen = table + "_gen";
    src.exec("CREATE TABLE " + gen + " (id bigint PRIMARY KEY, price int NOT NULL, qty int NOT NULL, "
        + "total bigint GENERATED ALWAYS AS (price::bigint * qty) STORED, note text)");
    src.exec("INSERT INTO " + gen + " (id, price, qty, note) SELECT g, g % 97, g % 13, 'n' || g "
        + "FROM generate_series(1, 3000) g");
    RangeTableMove move = new RangeTableMove(id, "ks", gen, "id", LO, HI);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      assertTrue(Tables.createIfMissing(s, d, gen));
      Tables.requireSameColumns(gen, "src", Tables.columns(s, gen), "dst", Tables.columns(d, gen));
      RangeTableMove.CopiedChunk c = move.copyChunk(s, d, null, 1000);
      while (!c.done()) {
        c = move.copyChunk(s, d, c.last(), 1000);
      }
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched(), "copied whole, totals computed alike");
      src.exec("UPDATE " + gen + " SET price = price + 1 WHERE id IN (10, 20, 2990)");
      move.copyKeys(s, d, List.of(io.shardmap.core.Keys.encodeInt64(10), io.shardmap.core.Keys.encodeInt64(20),
          io.shardmap.core.Keys.encodeInt64(2990)));
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched(), "the re-copied keys match");
      try (Statement st = d.createStatement(); ResultSet rs = st.executeQuery("SELECT total FROM " + gen
          + " WHERE id = 2990")) {
        assertTrue(rs.next());
        assertEquals((2990L % 97 + 1) * (2990 % 13), rs.getLong(1), "computed by the target");
      }
      dst.exec("DROP TABLE " + gen);
      dst.exec("CREATE TABLE " + gen + " (id bigint PRIMARY KEY, price int NOT NULL, qty int NOT NULL, "
          + "total bigint, note text)");
      io.shardmap.core.ShardmapException e = assertThrows(io.shardmap.core.ShardmapException.class,
          () -> Tables.requireSameColumns(gen, "src", Tables.columns(s, gen), "dst", Tables.columns(d, gen)));
      assertTrue(e.getMessage().contains("column 4 is 'total bigint' there and 'total bigint GENERATED ALWAYS AS"),
          e.getMessage());
    } finally {
      src.exec("DROP TABLE IF EXISTS " + gen);
      dst.exec("DROP TABLE IF EXISTS " + gen);
    }
  }

  /**
   * A range moving back to a shard that fenced it when it moved away: the migrator's copy and replay
   * pass that fence, applications stay refused until the prepared unfence commits (a rolled-back one
   * changes nothing), and a fence wider than the range keeps its parts outside it.
   */
  @Test
  void aTargetThatStillFencesTheRangeTakesOnlyTheMigratorsWritesUntilItsUnfenceCommits() throws Exception {
    RangeTableMove away = new RangeTableMove(id + "_away", "ks", table, "id", LO - 500_000, HI + 500_000);
    RangeTableMove back = new RangeTableMove(id, "ks", table, "id", LO, HI);
    String write = "INSERT INTO " + table + " (id, v) VALUES (500, 1) ON CONFLICT (id) DO UPDATE SET v = 1";
    String outside = "INSERT INTO " + table + " (id, v) VALUES (" + (HI + 100) + ", 1)";
    try (Connection s = src.connect(); Connection d = dst.connect(); Connection lift = dst.connect();
         Statement app = d.createStatement()) {
      assertTrue(away.fence(d, 4, Duration.ofSeconds(5)));
      back.installCapture(s);
      RangeTableMove.CopiedChunk c = back.copyChunk(s, d, null, 1_000_000);
      assertTrue(c.done() && c.rows() > 5_000, c.toString());
      src.exec("UPDATE " + table + " SET v = 9 WHERE id = 100");
      assertEquals(1, back.replayRound(s, d, 100));
      assertEquals(rows(src), rows(dst), "copy and replay passed the target's fence");
      assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> app.executeUpdate(write))));

      assertTrue(Fences.prepareUnfenceMoved(lift, List.of(back), Duration.ofSeconds(5)));
      assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> app.executeUpdate(write))),
          "a prepared unfence changes nothing before it commits");
      lift.rollback();
      assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> app.executeUpdate(write))),
          "nor after a rollback");

      assertTrue(Fences.prepareUnfenceMoved(lift, List.of(back), Duration.ofSeconds(5)));
      lift.commit();
      assertEquals(1, app.executeUpdate(write), "the range is writable once the unfence committed");
      assertTrue(StaleRoute.isStaleRoute(assertThrows(SQLException.class, () -> app.executeUpdate(outside))),
          "the rest of the old fence stays");
      assertEquals(java.util.Set.of(id + "_away:above", id + "_away:below"), Fences.fencesOn(d, table));
    }
  }

  /**
   * A migration of two tables shares one change log (named by the migration): a key written in both
   * tables is replayed into both by one round, whichever table's trigger logged it, and removing the
   * capture takes both triggers off before the log goes, so writes of both tables go on.
   */
  @Test
  void aKeyWrittenInTwoTablesOfOneMigrationIsReplayedIntoBoth() throws Exception {
    String items = table + "_items";
    String ddl = "CREATE TABLE " + items + " (id bigint NOT NULL, item text NOT NULL, PRIMARY KEY (id, item))";
    src.exec(ddl);
    dst.exec(ddl);
    RangeTableMove a = new RangeTableMove(id, "ks", table, "id", LO, HI);
    RangeTableMove b = new RangeTableMove(id, "ks", items, "id", LO, HI);
    List<RangeTableMove> both = List.of(a, b);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      a.installCapture(s);
      b.installCapture(s);
      a.copyChunk(s, d, null, 1_000_000);
      b.copyChunk(s, d, null, 1_000_000);
      // One transaction writes key 300 in both tables (logged twice), another key 400 in the second only.
      src.exec("BEGIN; UPDATE " + table + " SET v = 7 WHERE id = 300; INSERT INTO " + items + " VALUES (300, 'x'); "
          + "COMMIT");
      src.exec("INSERT INTO " + items + " VALUES (400, 'y')");
      assertEquals(3, a.pendingKeys(s), "one log for both tables");
      assertEquals(2, RangeTableMove.replayRound(both, s, d, 100), "two keys");
      assertEquals(0, b.pendingKeys(s));
      assertEquals(rows(src), rows(dst));
      assertEquals(List.of("300|x", "400|y"), itemRows(dst, items), "the second table's rows were replayed too");

      RangeTableMove.removeCapture(both, s, System::nanoTime);
      src.exec("INSERT INTO " + items + " VALUES (500, 'z')");
      src.exec("UPDATE " + table + " SET v = 8 WHERE id = 500");
      try (Statement st = s.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_trigger WHERE "
          + "tgrelid IN (to_regclass('" + table + "'), to_regclass('" + items + "')) AND tgname LIKE 'capture%'")) {
        rs.next();
        assertEquals(0, rs.getLong(1), "no capture trigger is left");
      }
    } finally {
      src.exec("DROP TABLE IF EXISTS " + items);
      dst.exec("DROP TABLE IF EXISTS " + items);
    }
  }

  private static List<String> itemRows(PgInstance p, String items) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = p.connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT id || '|' || item FROM " + items + " ORDER BY 1")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  /** Two migrations to one target may both find a table missing and create it at the same moment. */
  @Test
  void aTableCreatedOnTheTargetByAnotherMigrationAtTheSameMomentIsNoError() throws Exception {
    dst.exec("DROP TABLE " + table);
    try (Connection s = src.connect(); Connection d = dst.connect(); Connection other = dst.connect();
         Connection w = dst.connect(); Statement watch = w.createStatement()) {
      other.setAutoCommit(false);
      other.createStatement().execute("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL, "
          + "payload text, tags text[])");
      java.util.concurrent.CompletableFuture<Boolean> created = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
        try {
          return Tables.createIfMissing(s, d, table);
        } catch (SQLException e) {
          throw new java.util.concurrent.CompletionException(e);
        }
      });
      // Wait (bounded) until its CREATE TABLE waits for the other, uncommitted one.
      boolean waiting = false;
      for (int i = 0; i < 500 && !waiting && !created.isDone(); i++) {
        try (ResultSet rs = watch.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            + "AND query LIKE 'CREATE TABLE%" + table + "%'")) {
          rs.next();
          waiting = rs.getInt(1) > 0;
        }
        Thread.sleep(10);
      }
      assertTrue(waiting, "createIfMissing raced the other CREATE TABLE");
      other.commit();
      assertFalse(created.get(30, java.util.concurrent.TimeUnit.SECONDS), "the other transaction created it");
    }
  }

  @Test
  void badArgumentsAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new RangeTableMove("Bad-Id", "ks", table, "id", LO, HI));
    assertThrows(IllegalArgumentException.class, () -> new RangeTableMove(id, "ks", table, "id", 5L, 5L));
  }
}
