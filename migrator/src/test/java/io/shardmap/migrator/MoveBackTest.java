package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.HashTable;
import io.shardmap.core.XxHash64;
import io.shardmap.migrator.MoveHarness.Layout;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.LongPredicate;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Issue 10, item 1: a unit moving back to a shard that still fences it from an earlier move fails no
 * application call, however long the migrator takes between etcd's owner switch and lifting that fence,
 * and also when it dies in between. Each move's drive is held (or killed) right after the switch commits,
 * for longer than the SDK's reruns last; the SDK then declares its route to the new owner, whose old fence
 * lets the declared key through. Real etcd, a real directory server, real PostgreSQL, SDK writers with an
 * oracle of acknowledged writes.
 */
@Tag("fault")
class MoveBackTest {
  /**
   * What is checked here is that no call fails, not the pause budget (MigrationPauseBudgetTest): a budget
   * a loaded CI machine can meet keeps a cancelled cutover from ending a move this test needs done.
   */
  private static final Duration LOADED_MACHINE_BUDGET = Duration.ofSeconds(1);

  /** How long each drive is held between the owner switch and the lift: far beyond the SDK's 5 quick reruns. */
  static final Duration HOLD = Duration.ofMillis(1_000);

  /** A fault hook that holds the drive at the point after etcd's owner switch, before the lift commits. */
  static Consumer<String> holdAfterSwitch() {
    return p -> {
      if (p.equals("cutting-over:committed")) {
        try {
          Thread.sleep(HOLD.toMillis());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    };
  }

  @Test
  void aRangeMovedAwayAndBackRepeatedlyFailsNoCall() throws Exception {
    try (MoveHarness h = new MoveHarness();
         Migrator m = Migrator.open(h.migratorOptions().faultPoints(holdAfterSwitch()).build())) {
      h.startWriters(3, Duration.ofSeconds(120));
      Thread.sleep(300);
      List<String> targets = List.of("s3", "s2", "s3", "s2");
      for (int i = 0; i < targets.size(); i++) {
        String id = "r" + i;
        m.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id(id).keyspace(MoveHarness.KS).range("5000..25000").target(targets.get(i))
            .split(i == 0).chunkRows(5_000).cleanupGrace(Duration.ofMillis(300)).build());
        long before = h.acknowledged.get();
        Migration done = m.drive(id, p -> { }, Duration.ofSeconds(5));
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
        assertEquals(targets.get(i), h.client.route(MoveHarness.KS, 10_000).shard());
        assertTrue(h.acknowledged.get() > before, "writers made progress during move " + id);
      }
      Thread.sleep(200);
      h.stopWriters();
      assertNoFailedCall(h);
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  @Test
  void aHashBucketMovedAwayAndBackRepeatedlyFailsNoCall() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false);
         Migrator m = Migrator.open(h.migratorOptions().faultPoints(holdAfterSwitch()).build())) {
      LongPredicate in3 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 3;
      h.hotKeys = java.util.stream.LongStream.range(0, 2_000).filter(in3).boxed().toList();
      h.startWriters(3, Duration.ofSeconds(120));
      Thread.sleep(300);
      List<String> targets = List.of("s3", "s2", "s3", "s2");
      for (int i = 0; i < targets.size(); i++) {
        String id = "b" + i;
        m.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id(id).keyspace(MoveHarness.KS).bucket(3).target(targets.get(i)).chunkRows(5_000)
            .cleanupGrace(Duration.ofMillis(300)).build());
        Migration done = m.drive(id, p -> { }, Duration.ofSeconds(5));
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      }
      Thread.sleep(200);
      h.stopWriters();
      assertNoFailedCall(h);
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  /**
   * The move back's worker dies right after etcd's owner switch, before lifting the target's old fence;
   * another worker resumes only once the dead one's lease has expired (seconds). Meanwhile the map routes
   * the range to a shard whose fence is still up: no call fails.
   */
  @Test
  void aWorkerKilledBetweenTheSwitchAndTheLiftFailsNoCall() throws Exception {
    AtomicBoolean crashed = new AtomicBoolean();
    Consumer<String> crash = p -> {
      if (p.equals("cutting-over:committed") && crashed.compareAndSet(false, true)) {
        throw new MigrationFaultTest.SimulatedCrash(p);
      }
    };
    try (MoveHarness h = new MoveHarness();
         Migrator first = Migrator.open(h.migratorOptions().workerName("first").build());
         Migrator dying = Migrator.open(h.migratorOptions().workerName("dying").faultPoints(crash).build());
         Migrator second = Migrator.open(h.migratorOptions().workerName("second").build())) {
      h.startWriters(3, Duration.ofSeconds(120));
      Thread.sleep(300);
      first.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id("away").keyspace(MoveHarness.KS).range("5000..25000").target("s3")
          .split(true).chunkRows(5_000).cleanupGrace(Duration.ofMillis(300)).build());
      assertEquals(MigrationState.MIGRATION_STATE_DONE, first.drive("away", p -> { }, Duration.ofSeconds(5)).getState());
      long failedBefore = h.failed.get();

      dying.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id("back").keyspace(MoveHarness.KS).range("5000..25000").target("s2")
          .chunkRows(5_000).cleanupGrace(Duration.ofMillis(300)).build());
      assertThrows(MigrationFaultTest.SimulatedCrash.class, () -> dying.drive("back", p -> { }, Duration.ZERO));
      // The crash came after etcd's commit; the client's watched map brings the switch a moment later.
      long seeBy = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (!h.client.route(MoveHarness.KS, 10_000).shard().equals("s2") && System.nanoTime() < seeBy) {
        Thread.sleep(10);
      }
      assertEquals("s2", h.client.route(MoveHarness.KS, 10_000).shard(), "etcd switched the owner");
      long atCrash = h.acknowledged.get();
      Migration done = second.drive("back", p -> { }, Duration.ofSeconds(15));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      Thread.sleep(200);
      h.stopWriters();
      assertTrue(h.acknowledged.get() > atCrash, "writers made progress while nobody lifted the fence");
      assertEquals(failedBefore, h.failed.get(), () -> "calls failed after the move back started: " + h.failures);
      assertNoFailedCall(h);
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  /**
   * Issue 10, item 3: bucket 3 of 8 moves s2 → s3; ReshardHash makes it buckets 3 and 11 of 16 (owners
   * unchanged); bucket 11 of 16 moves back to s2. s2's fence from the first move is not of the returning
   * unit, yet its keys of bucket 11 of 16 take plain JDBC writes (no SDK, no declaration) with no manual
   * cleanup, while its keys of bucket 3 of 16 stay refused, and the refusal names the unit.
   */
  @Test
  void aBucketComingBackAfterReshardHashIsLiftedFromTheOldBucketsFence() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false); Migrator m = Migrator.open(h.migratorOptions().build())) {
      m.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id("away").keyspace(MoveHarness.KS).bucket(3).target("s3").chunkRows(5_000)
          .cleanupGrace(Duration.ofMillis(300)).build());
      assertEquals(MigrationState.MIGRATION_STATE_DONE, m.drive("away", p -> { }, Duration.ofSeconds(5)).getState());
      io.shardmap.proto.v1.ReshardHashRequest.Builder reshard = io.shardmap.proto.v1.ReshardHashRequest.newBuilder()
          .setKeyspace(MoveHarness.KS);
      for (int b = 0; b < 16; b++) {
        reshard.addBuckets(b % 8 == 3 ? "s3" : b % 2 == 0 ? "s1" : "s2"); // every key keeps its owner
      }
      h.fixture.admin().reshardHash(reshard.build());
      m.plan(MoveSpec.builder().pauseBudget(LOADED_MACHINE_BUDGET).id("back").keyspace(MoveHarness.KS).bucket(11).target("s2").chunkRows(5_000)
          .cleanupGrace(Duration.ofMillis(300)).build());
      assertEquals(MigrationState.MIGRATION_STATE_DONE, m.drive("back", p -> { }, Duration.ofSeconds(5)).getState());

      LongPredicate in11 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 16) == 11;
      LongPredicate in3 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 16) == 3;
      List<Long> back = java.util.stream.LongStream.range(0, 400).filter(in11).limit(20).boxed().toList();
      List<Long> away = java.util.stream.LongStream.range(0, 400).filter(in3).limit(20).boxed().toList();
      try (java.sql.Connection s2 = h.pg.shard(1).connect(); java.sql.Statement st = s2.createStatement()) {
        for (long k : back) {
          assertEquals(1, st.executeUpdate("INSERT INTO " + h.table + " (id, v) VALUES (" + k + ", -1) ON CONFLICT (id) "
              + "DO UPDATE SET v = -1"), "key " + k + " of the returned bucket 11 of 16 is writable on s2");
        }
        for (long k : away) {
          java.sql.SQLException e = assertThrows(java.sql.SQLException.class, () -> st.executeUpdate("INSERT INTO "
              + h.table + " (id, v) VALUES (" + k + ", -1)"), "key " + k + " of bucket 3 of 16 (still on s3)");
          assertTrue(io.shardmap.client.StaleRoute.isStaleRoute(e), e.toString());
          assertTrue(e.getMessage().contains("no longer owns part of hash bucket 3 of 8 of keyspace 'users'"),
              e.getMessage());
        }
      }
    }
  }

  static void assertNoFailedCall(MoveHarness h) {
    assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
    assertEquals(0, h.failed.get(), () -> "failed calls, first ones: " + h.failures);
  }
}
