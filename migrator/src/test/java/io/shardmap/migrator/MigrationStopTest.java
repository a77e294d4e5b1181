package io.shardmap.migrator;

import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Drives and workers asked to stop: the step in progress ends and is persisted, the migration is handed
 * back at once (no owner key, no advisory lock on the source), and another worker — whose lease TTL, like
 * the first one's, is far longer than the test — continues it immediately and ends the move as if nothing
 * had happened.
 */
@Tag("integration")
@Timeout(180)
class MigrationStopTest {
  /** Much longer than a test step: a migration left to its lease could not be resumed with no wait. */
  static final Duration LONG_LEASE = Duration.ofSeconds(60);

  MoveHarness h;

  @BeforeEach
  void setUp() throws Exception {
    h = new MoveHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    h.close();
  }

  private MoveSpec spec(String id, long lo, long hi) {
    return MoveSpec.builder().pauseBudget(Duration.ofSeconds(1)).id(id).keyspace(MoveHarness.KS).range(lo + ".." + hi).target("s3").split(true)
        .chunkRows(200).cleanupGrace(Duration.ofMillis(300)).build();
  }

  /** True when a session on the source can take the migration's advisory lock (then releases it). */
  private boolean advisoryLockFree(String id) throws Exception {
    try (Connection c = h.pg.shard(1).connect();
         PreparedStatement ps = c.prepareStatement("SELECT pg_try_advisory_lock(hashtextextended(?, 0))")) {
      ps.setString(1, "shardmap.migration." + id);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        boolean free = rs.getBoolean(1);
        if (free) {
          c.createStatement().execute("SELECT pg_advisory_unlock_all()");
        }
        return free;
      }
    }
  }

  @Test
  void aStoppedDriveHandsTheMigrationBackMidCopyAndAnotherWorkerResumesAtOnce() throws Exception {
    AtomicInteger chunks = new AtomicInteger();
    AtomicBoolean stop = new AtomicBoolean();
    // The third chunk's copy is done when this runs; the stop is seen once that chunk is persisted.
    MigratorOptions first = h.migratorOptions().workerName("first").leaseTtl(LONG_LEASE)
        .faultPoints(p -> {
          if (p.equals("copying:chunk") && chunks.incrementAndGet() == 3) {
            stop.set(true);
          }
        }).build();
    h.startWriters(3, Duration.ofSeconds(90));
    long lo = 5_000;
    long hi = 9_000;
    try (Migrator a = Migrator.open(first);
         Migrator b = Migrator.open(h.migratorOptions().workerName("second").leaseTtl(LONG_LEASE).build())) {
      Migration planned = a.plan(spec("st1", lo, hi));
      Migration stopped = a.drive("st1", p -> { }, Duration.ZERO, stop::get);

      assertEquals(MigrationState.MIGRATION_STATE_COPYING, stopped.getState(), stopped.toString());
      assertEquals(3, chunks.get(), "the drive stopped after the chunk in progress");
      assertTrue(stopped.getRowsCopied() > 0 && stopped.getRowsCopied() < 1_000, "three chunks of about 200 rows "
          + "were copied and persisted: " + stopped.getRowsCopied());
      assertFalse(stopped.getCopyAfter().isEmpty(), "the copy cursor was persisted");
      Migration status = b.status("st1");
      assertEquals(stopped, status.toBuilder().clearOwner().build(), "the record as persisted at the stop");
      assertEquals("", status.getOwner(), "the owner key was released");
      assertTrue(advisoryLockFree("st1"), "the source's advisory lock was released");

      // No wait for a lease: the claim succeeds at once or drive fails with ABORTED.
      Migration done = b.drive("st1", p -> { }, Duration.ZERO);
      Thread.sleep(200);
      h.stopWriters();
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      ShardRoute r = h.client.route(MoveHarness.KS, lo);
      assertEquals("s3", r.shard());
      assertEquals(planned.getRangeEpoch() + 1, r.epoch());
      assertEquals(0, h.rows(1, lo, hi).size(), "the source keeps none of the range");
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  @Test
  void aStoppedWorkerLetsItsDrivesEndTheirStepAndHandsEveryMigrationBack() throws Exception {
    // Each drive copies (and saves) one chunk, then holds its second chunk until the stop is requested:
    // both moves are surely copying when the worker is stopped, however slow the machine (a timed
    // slowdown let one move finish first under load).
    AtomicBoolean stop = new AtomicBoolean();
    ThreadLocal<int[]> chunks = ThreadLocal.withInitial(() -> new int[1]);
    MigratorOptions slow = h.migratorOptions().workerName("worker").leaseTtl(LONG_LEASE).faultPoints(p -> {
      if (p.equals("copying:chunk") && ++chunks.get()[0] >= 2) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!stop.get() && System.nanoTime() < deadline) {
          try {
            Thread.sleep(5);
          } catch (InterruptedException e) {
            throw new IllegalStateException("a graceful stop interrupts nothing", e);
          }
        }
      }
    }).build();
    AtomicReference<Object> outcome = new AtomicReference<>();
    try (Migrator w = Migrator.open(slow);
         Migrator b = Migrator.open(h.migratorOptions().workerName("second").leaseTtl(LONG_LEASE).build())) {
      w.plan(spec("wa", 1_000, 4_000));
      w.plan(spec("wb", 5_000, 8_000));
      Thread worker = new Thread(() -> {
        try {
          outcome.set(w.runWorker(stop::get, 2, Duration.ofSeconds(1), Duration.ofSeconds(60)));
        } catch (Throwable t) {
          outcome.set(t);
        }
      }, "worker");
      worker.start();
      try {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline && !b.list().stream().allMatch(m -> m.getRowsCopied() > 0)) {
          Thread.sleep(20);
        }
      } finally {
        stop.set(true);
        worker.join(90_000);
      }
      assertFalse(worker.isAlive(), "the worker returned");
      assertEquals(List.of(), outcome.get(), "every drive handed its migration back in time");
      for (Migration m : b.list()) {
        assertEquals(MigrationState.MIGRATION_STATE_COPYING, m.getState(), m.toString());
        assertTrue(m.getRowsCopied() > 0 && m.getRowsCopied() < 3_000, m.toString());
        assertEquals("", m.getOwner(), m.getId() + " was handed back");
        assertTrue(advisoryLockFree(m.getId()), m.getId() + ": the source's advisory lock was released");
      }
      for (String id : List.of("wa", "wb")) {
        Migration done = b.drive(id, p -> { }, Duration.ZERO);
        assertTrue(States.terminal(done.getState()) && done.getState() == MigrationState.MIGRATION_STATE_DONE,
            done.toString());
      }
      assertEquals(3_000, h.rows(2, 1_000L, 4_000L).size());
      assertEquals(3_000, h.rows(2, 5_000L, 8_000L).size());
      assertEquals(0, h.rows(1, 1_000L, 4_000L).size());
      assertEquals(0, h.rows(1, 5_000L, 8_000L).size());
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }
}
