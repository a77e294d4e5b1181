package io.shardmap.migrator;

import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A whole move on real etcd, a real directory server and real PostgreSQL, while SDK writers insert, update
 * and delete keys inside and outside the moving range throughout: every acknowledged write ends exactly
 * once on the key's new owner, and the source keeps none of the range.
 */
@Tag("integration")
class MigrationTest {
  MoveHarness h;

  @BeforeEach
  void setUp() throws Exception {
    h = new MoveHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    h.close();
  }

  @Test
  void moveUnderWritersKeepsEveryAcknowledgedWrite() throws Exception {
    List<String> states = new ArrayList<>();
    try (Migrator m = Migrator.open(h.migratorOptions().build())) {
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      long before = h.acknowledged.get();
      // A budget a loaded test machine can meet: this test is about the data; MigrationPauseBudgetTest is
      // about the budget (with the default 100 ms, a machine busy enough abandons every attempt).
      Migration planned = m.plan(MoveSpec.builder().id("mv1").keyspace(MoveHarness.KS).range("5000..25000")
          .target("s3").split(true).chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1))
          .pauseBudget(Duration.ofSeconds(1)).build());
      assertEquals(MigrationState.MIGRATION_STATE_PLANNED, planned.getState());
      assertEquals("s2", planned.getSource());
      Migration done = m.drive("mv1", p -> {
        String s = p.getState().name();
        if (states.isEmpty() || !states.get(states.size() - 1).equals(s)) {
          states.add(s);
        }
      }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      assertTrue(h.acknowledged.get() - before > 200, "writers made progress during the move: "
          + (h.acknowledged.get() - before));
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      System.out.println("move finished: " + io.shardmap.migrator.internal.States.label(done.getState()) + " rows="
          + done.getRowsCopied() + " replayed=" + done.getKeysReplayed() + " repaired=" + done.getKeysRepaired()
          + " pause=" + done.getPauseMs() + "ms attempts=" + done.getCutoverAttempts() + " deleted=" + done.getRowsDeleted()
          + " acknowledged writes=" + h.acknowledged.get());
      assertEquals(List.of("MIGRATION_STATE_PREPARING", "MIGRATION_STATE_COPYING", "MIGRATION_STATE_CATCHING_UP",
          "MIGRATION_STATE_VERIFYING", "MIGRATION_STATE_CUTTING_OVER", "MIGRATION_STATE_CLEANING_UP",
          "MIGRATION_STATE_DONE"), dedupe(states));
      assertTrue(done.getRowsCopied() >= 9_000, "rows copied " + done.getRowsCopied());
      assertTrue(done.getCutoverRevision() > 0);
      assertTrue(done.getCleanupReason().startsWith("every live client acknowledged"), done.getCleanupReason());
      ShardRoute r = h.client.route(MoveHarness.KS, 10_000);
      assertEquals("s3", r.shard());
      assertEquals(planned.getRangeEpoch() + 1, r.epoch());
      assertEquals("s2", h.client.route(MoveHarness.KS, 25_000).shard());
      assertEquals("s2", h.client.route(MoveHarness.KS, 4_999).shard());
      assertEquals(0, h.rows(1, 5_000L, 25_000L).size(), "the source keeps none of the range");
      h.assertEveryAcknowledgedWriteOnItsOwner();
      try (Connection c = h.pg.shard(1).connect()) {
        assertEquals(java.util.Set.of("mv1"), Fences.fencesOn(c, h.table), "the source stays fenced");
      }
    }
  }

  @Test
  void aCutoverThatCannotMeetItsPauseBudgetCancelsTheMoveWithoutFencing() throws Exception {
    // An open transaction that has written the table holds a lock the fence must wait for: every attempt
    // misses the 50 ms budget, and after the last one the move undoes itself.
    try (Connection blocker = h.pg.shard(1).connect(); Migrator m = Migrator.open(h.migratorOptions().build())) {
      m.plan(MoveSpec.builder().id("slow").keyspace(MoveHarness.KS).range("5000..6000").target("s3").split(true)
          .pauseBudget(Duration.ofMillis(50)).maxCutoverAttempts(2).cleanupGrace(Duration.ofSeconds(1)).build());
      List<String> errors = new ArrayList<>();
      Migration end = m.drive("slow", p -> {
        if (p.getState() == MigrationState.MIGRATION_STATE_CUTTING_OVER && p.getCutoverAttempts() == 0) {
          try {
            blocker.setAutoCommit(false);
            blocker.createStatement().executeUpdate("UPDATE " + h.table + " SET v = v WHERE id = -1");
          } catch (java.sql.SQLException e) {
            throw new IllegalStateException(e);
          }
        }
        if (p.getState() == MigrationState.MIGRATION_STATE_CANCELLING) {
          try {
            blocker.rollback(); // the long transaction ends; cancel's own DDL then gets its locks
          } catch (java.sql.SQLException e) {
            throw new IllegalStateException(e);
          }
        }
        if (!p.getLastError().isEmpty() && !errors.contains(p.getLastError())) {
          errors.add(p.getLastError());
        }
      }, Duration.ofSeconds(5));
      assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, end.getState(), end.toString());
      assertEquals(2, end.getCutoverAttempts());
      assertTrue(end.getLastError().contains("pause budget could not be met"), end.getLastError());
      // Each attempt either waited for the locks as long as the budget allowed, or found that the measured
      // commits left nothing to wait with.
      assertTrue(errors.stream().allMatch(e -> e.contains("table locks did not come within")
          || e.contains("to wait for the source's table locks") || e.contains("pause budget could not be met")),
          errors.toString());
      assertEquals("s2", h.client.route(MoveHarness.KS, 5_000).shard());
      assertEquals(0, h.rows(2, 5_000L, 6_000L).size());
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  /**
   * s2 → s3, then the same range back s3 → s2 under SDK writers, with a worker crash right after the
   * move back's owner switch commits in etcd. s2 still fences the range from the first move: the
   * migrator's own writes pass that fence, applications' writes to s2 stay refused until the cutover,
   * and then s2 takes writes while s3 refuses them.
   */
  @Test
  void aRangeMovesBackToTheShardThatStillFencesIt() throws Exception {
    List<String> refusedOnTarget = new ArrayList<>();
    java.util.concurrent.atomic.AtomicBoolean crashed = new java.util.concurrent.atomic.AtomicBoolean();
    java.util.function.Consumer<String> faults = p -> {
      if (p.equals("cutting-over:caught-up") && refusedOnTarget.isEmpty()) {
        // The move back has copied and verified everything, so s2 holds the range's rows now; an
        // application write there must still be refused: s3 owns the range.
        try (Connection c = h.pg.shard(1).connect(); java.sql.Statement st = c.createStatement()) {
          st.executeUpdate("INSERT INTO " + h.table + " (id, v) VALUES (24999, -1) ON CONFLICT (id) DO UPDATE "
              + "SET v = EXCLUDED.v");
          refusedOnTarget.add("accepted");
        } catch (java.sql.SQLException e) {
          refusedOnTarget.add(e.getSQLState());
        }
      }
      if (p.equals("cutting-over:committed") && crashed.compareAndSet(false, true)) {
        throw new MigrationFaultTest.SimulatedCrash(p);
      }
    };
    try (Migrator m = Migrator.open(h.migratorOptions().workerName("first").build());
         Migrator back = Migrator.open(h.migratorOptions().workerName("back").faultPoints(faults).build())) {
      h.startWriters(3, Duration.ofSeconds(120));
      Thread.sleep(300);
      m.plan(MoveSpec.builder().pauseBudget(Duration.ofSeconds(1)).id("away").keyspace(MoveHarness.KS).range("5000..25000").target("s3")
          .split(true).chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1)).build());
      assertEquals(MigrationState.MIGRATION_STATE_DONE, m.drive("away", p -> { }, Duration.ofSeconds(5)).getState());
      long epochAway = h.client.route(MoveHarness.KS, 10_000).epoch();
      long before = h.acknowledged.get();

      Migration planned = back.plan(MoveSpec.builder().pauseBudget(Duration.ofSeconds(1)).id("back").keyspace(MoveHarness.KS).range("5000..25000")
          .target("s2").chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1)).build());
      assertEquals("s3", planned.getSource());
      assertThrows(MigrationFaultTest.SimulatedCrash.class, () -> back.drive("back", p -> { }, Duration.ZERO));
      assertEquals(MigrationState.MIGRATION_STATE_CLEANING_UP, m.status("back").getState());
      Migration done = m.drive("back", p -> { }, Duration.ofSeconds(15));
      Thread.sleep(300);
      h.stopWriters();

      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      assertEquals(List.of(StaleRoute.SQLSTATE), refusedOnTarget, "an application write to s2 before the cutover");
      assertTrue(h.acknowledged.get() - before > 100, "writers made progress during the move back: "
          + (h.acknowledged.get() - before));
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      ShardRoute r = h.client.route(MoveHarness.KS, 10_000);
      assertEquals("s2", r.shard());
      assertEquals(epochAway + 1, r.epoch());
      assertEquals(0, h.rows(2, 5_000L, 25_000L).size(), "s3 keeps none of the range");
      assertTrue(h.rows(1, 5_000L, 25_000L).size() > 9_000, "s2 holds the range again");
      h.assertEveryAcknowledgedWriteOnItsOwner();
      try (Connection s2 = h.pg.shard(1).connect(); Connection s3 = h.pg.shard(2).connect()) {
        assertEquals(java.util.Set.of(), Fences.fencesOn(s2, h.table), "s2's fence of the range is lifted");
        assertEquals(java.util.Set.of("back"), Fences.fencesOn(s3, h.table), "s3 fences the range now");
        String write = "INSERT INTO " + h.table + " (id, v) VALUES (24999, -1) ON CONFLICT (id) DO UPDATE SET v = -1";
        s2.setAutoCommit(false);
        assertEquals(1, s2.createStatement().executeUpdate(write), "s2 takes writes to the range");
        s2.rollback();
        java.sql.SQLException e = assertThrows(java.sql.SQLException.class, () -> s3.createStatement()
            .executeUpdate(write));
        assertTrue(StaleRoute.isStaleRoute(e), e.toString());
      }
    }
  }

  static List<String> dedupe(List<String> states) {
    List<String> out = new ArrayList<>();
    for (String s : states) {
      if (out.isEmpty() || !out.get(out.size() - 1).equals(s)) {
        out.add(s);
      }
    }
    return out;
  }
}
