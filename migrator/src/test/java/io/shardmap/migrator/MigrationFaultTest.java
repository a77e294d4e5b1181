package io.shardmap.migrator;

import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Moves under SDK writers with the worker crashing at every step (another worker resumes after the
 * crashed one's lease expires), and moves cancelled in every state before cutover: crashes change nothing
 * in the result, and a cancel leaves the source authoritative and the target clean.
 */
@Tag("fault")
class MigrationFaultTest {
  /** Every point a crash is injected at, in the order a move reaches them. */
  static final List<String> CRASH_POINTS = List.of("preparing:captured", "copying:chunk", "catching-up:round",
      "verifying:chunk", "cutting-over:caught-up", "cutting-over:fenced", "cutting-over:drained",
      "cutting-over:fence-committed",
      "cutting-over:committed", "cleaning-up:batch");
  static final List<String> CANCEL_POINTS = List.of("planned", "preparing:captured", "copying:chunk",
      "catching-up:round", "verifying:chunk", "cutting-over:caught-up", "cutting-over:fenced");

  MoveHarness h;

  @BeforeEach
  void setUp() throws Exception {
    h = new MoveHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    h.close();
  }

  static final class SimulatedCrash extends RuntimeException {
    SimulatedCrash(String point) {
      super("simulated crash at " + point);
    }
  }

  private MoveSpec spec(String id, long lo) {
    return MoveSpec.builder().id(id).keyspace(MoveHarness.KS).range(lo + ".." + (lo + 1_000)).target("s3")
        .split(true).chunkRows(300).cleanupGrace(Duration.ofMillis(300))
        // A budget a loaded test machine can meet: the budget is MigrationPauseBudgetTest's subject.
        .pauseBudget(Duration.ofSeconds(2)).build();
  }

  @Test
  void aWorkerKilledAtAnyStepIsResumedAndTheMoveEndsTheSame() throws Exception {
    h.startWriters(3, Duration.ofSeconds(240));
    for (int i = 0; i < CRASH_POINTS.size(); i++) {
      String point = CRASH_POINTS.get(i);
      String id = "crash" + i;
      long lo = 1_000L * (i + 1);
      AtomicBoolean crashed = new AtomicBoolean();
      Consumer<String> faults = p -> {
        if (p.equals(point) && crashed.compareAndSet(false, true)) {
          throw new SimulatedCrash(p);
        }
      };
      try (Migrator first = Migrator.open(h.migratorOptions().workerName("first").faultPoints(faults).build());
           Migrator second = Migrator.open(h.migratorOptions().workerName("second").build())) {
        first.plan(spec(id, lo));
        assertThrows(SimulatedCrash.class, () -> first.drive(id, p -> { }, Duration.ZERO), point);
        Migration atCrash = second.status(id);
        assertEquals("first", atCrash.getOwner(), point + ": the crashed worker's lease still holds the migration");
        Migration done = second.drive(id, p -> { }, Duration.ofSeconds(15));
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), point + ": " + done);
        ShardRoute r = h.client.route(MoveHarness.KS, lo);
        assertEquals("s3", r.shard(), point);
        assertEquals(0, h.rows(1, lo, lo + 1_000).size(), point + ": the source keeps none of the range");
      }
    }
    h.stopWriters();
    assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
    h.assertEveryAcknowledgedWriteOnItsOwner();
  }

  @Test
  void aCancelInAnyStateBeforeCutoverLeavesTheSourceAuthoritativeAndTheTargetClean() throws Exception {
    h.startWriters(3, Duration.ofSeconds(240));
    for (int i = 0; i < CANCEL_POINTS.size(); i++) {
      String point = CANCEL_POINTS.get(i);
      String id = "cancel" + i;
      long lo = 1_000L * (i + 1);
      ShardRoute before = h.client.route(MoveHarness.KS, lo);
      Migrator[] self = new Migrator[1];
      AtomicBoolean asked = new AtomicBoolean();
      Consumer<String> faults = p -> {
        if (p.equals(point) && asked.compareAndSet(false, true)) {
          self[0].requestCancel(id);
        }
      };
      try (Migrator m = Migrator.open(h.migratorOptions().faultPoints(faults).build())) {
        self[0] = m;
        Migration planned = m.plan(spec(id, lo));
        if (point.equals("planned")) {
          m.requestCancel(id);
        }
        Migration end = m.drive(id, p -> { }, Duration.ofSeconds(5));
        assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, end.getState(), point + ": " + end);
        ShardRoute after = h.client.route(MoveHarness.KS, lo);
        assertEquals(before.shard(), after.shard(), point + ": the source still owns the range");
        assertEquals(planned.getRangeEpoch(), after.epoch(), point + ": the range's epoch did not move");
        assertEquals(0, h.rows(2, lo, lo + 1_000).size(), point + ": the target holds none of the range");
        try (Connection c = h.pg.shard(1).connect()) {
          assertTrue(Fences.fencesOn(c, h.table).isEmpty(), point + ": no fence is left on the source");
          try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_trigger "
              + "WHERE tgrelid = '" + h.table + "'::regclass AND tgname LIKE '%" + id + "%'")) {
            rs.next();
            assertEquals(0, rs.getInt(1), point + ": no capture trigger is left on the source");
          }
        }
        // The marker is gone: the same range can be planned again at once.
        m.plan(spec(id + "_again", lo));
        m.requestCancel(id + "_again");
        assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, m.drive(id + "_again", p -> { },
            Duration.ofSeconds(5)).getState());
      }
    }
    Thread.sleep(200);
    h.stopWriters();
    assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
    h.assertEveryAcknowledgedWriteOnItsOwner();
    assertEquals(0, h.rows(2, null, null).size(), "the target holds no rows at all");
  }
}
