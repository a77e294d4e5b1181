package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.query.FenceGuard;
import io.shardmap.client.internal.query.FenceGuard.Verdict;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.migrator.MoveHarness.Layout;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Issue 12, item 3: the check a cross-shard query's part runs first (the SDK's FenceGuard), against real
 * moves (real etcd, a directory server, real PostgreSQL, the migrator, SDK writers meanwhile). A range (split
 * off a larger one by the move) and a hash bucket each move away, and part of each comes back (the range
 * split again, the bucket after a reshard), so the first fence lingers, cut or narrowed; at each cutover,
 * right after the fence committed on the source and before etcd switched the owner:
 * <ul>
 *   <li>the source's part at the map from before the cutover is stale, naming the fence;
 *   <li>the target's part at that map is fresh (for the move back: its own older fence of the unit is
 *       below the unit's route, so it is not stale either);
 * </ul>
 * after each cutover the source is fresh at the new map; and after the move back every shard is fresh at
 * the newest map, although both keep fences of the unit (the first one narrowed or cut by the lift), so a
 * lingering fence never makes a part stale forever.
 */
@Tag("integration")
class FenceGuardMoveTest {
  private static final Duration BUDGET = Duration.ofSeconds(2);

  /** A check run at the point after the source's fence committed (fault point), with its outcome. */
  private final AtomicReference<ThrowingRunnable> atFence = new AtomicReference<>();
  private final List<Throwable> hookErrors = new CopyOnWriteArrayList<>();

  interface ThrowingRunnable {
    void run() throws Exception;
  }

  private Migrator migrator(MoveHarness h) {
    return Migrator.open(h.migratorOptions().faultPoints(p -> {
      ThrowingRunnable r = atFence.get();
      if (p.equals("cutting-over:fence-committed") && r != null) {
        try {
          r.run();
        } catch (Throwable e) {
          hookErrors.add(e);
        }
      }
    }).build());
  }

  private static KeyspaceMap map(MoveHarness h) {
    return h.server.snapshot().keyspace(MoveHarness.KS);
  }

  /** The newest map the directory server holds once the client routes {@code probe} to {@code shard}. */
  private static KeyspaceMap mapOnceRouted(MoveHarness h, long probe, String shard) throws InterruptedException {
    for (int i = 0; i < 500 && !h.route(probe).shard().equals(shard); i++) {
      Thread.sleep(10);
    }
    assertEquals(shard, h.route(probe).shard());
    return map(h);
  }

  private static Verdict check(MoveHarness h, FenceGuard guard, String shard, KeyspaceMap at) throws Exception {
    try (Connection c = h.pg.shard(MoveHarness.SHARDS.indexOf(shard)).connect()) {
      c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
      c.setAutoCommit(false);
      Verdict v = guard.check(c, MoveHarness.KS, shard, at);
      c.rollback();
      return v;
    }
  }

  /**
   * Moves the unit of {@code spec} from {@code source} to {@code target}, checking both shards at the map from
   * before the cutover while the fence has committed; returns the map once the client routes {@code probe} to
   * the target.
   */
  private KeyspaceMap moveAndCheck(MoveHarness h, Migrator m, MoveSpec spec, String source, String target, long probe,
                                   String unitWording) throws Exception {
    FenceGuard guard = new FenceGuard();
    Map<String, Verdict> atCutover = new ConcurrentHashMap<>();
    m.plan(spec);
    KeyspaceMap before = map(h);
    atFence.set(() -> {
      atCutover.put(source, check(h, guard, source, before));
      atCutover.put(target, check(h, guard, target, before));
    });
    Migration done = m.drive(spec.id(), p -> { }, Duration.ofSeconds(5));
    atFence.set(null);
    assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
    assertEquals(List.of(), hookErrors);
    Verdict src = atCutover.get(source);
    assertTrue(src.stale(), "the source at the map before the cutover: " + src);
    assertTrue(src.message().startsWith("stale: fence of " + unitWording + " at epoch "), src.message());
    assertTrue(src.message().contains("(migration '" + spec.id() + "'"), src.message());
    assertTrue(src.notes().isEmpty(), src.notes().toString());
    Verdict tgt = atCutover.get(target);
    assertFalse(tgt.stale(), "the target at the map before the cutover: " + tgt.message());
    KeyspaceMap after = mapOnceRouted(h, probe, target);
    assertTrue(src.passedBy(after), "the map with the cutover has passed the fence");
    assertFalse(check(h, guard, source, after).stale(), "the source at the map with the cutover");
    assertFalse(check(h, guard, target, after).stale(), "the target at the map with the cutover");
    assertTrue(check(h, guard, source, before).stale(), "the fence outlives cleanup: an old map stays stale");
    return after;
  }

  @Test
  void aRangeMovesAwayAndPartOfItComesBack() throws Exception {
    try (MoveHarness h = new MoveHarness(); Migrator m = migrator(h)) {
      h.startWriters(2, Duration.ofSeconds(60));
      Thread.sleep(200);
      KeyspaceMap unsplit = map(h);
      KeyspaceMap away = moveAndCheck(h, m, MoveSpec.builder().id("away").keyspace(MoveHarness.KS).range("5000..25000")
          .split(true).target("s3").pauseBudget(BUDGET).chunkRows(5_000).cleanupGrace(Duration.ofMillis(300)).build(),
          "s2", "s3", 10_000, "range [5000, 25000)");
      FenceGuard guard = new FenceGuard();
      assertTrue(check(h, guard, "s2", unsplit).stale(), "a map from before the split routes the range with [0..)");
      // Half of it comes back: s2's fence is cut to [15000, 25000), and keeps naming [5000, 25000) as its unit.
      KeyspaceMap back = moveAndCheck(h, m, MoveSpec.builder().id("back").keyspace(MoveHarness.KS).range("5000..15000")
          .split(true).target("s2").pauseBudget(BUDGET).chunkRows(5_000).cleanupGrace(Duration.ofMillis(300)).build(),
          "s3", "s2", 10_000, "range [5000, 15000)");
      try (Connection c = h.pg.shard(1).connect()) {
        assertTrue(Fences.fencesOn(c, h.table).contains("away:above"), Fences.fencesOn(c, h.table).toString());
      }
      assertTrue(check(h, guard, "s3", away).stale(), "s3 at the map between the moves");
      for (String s : MoveHarness.SHARDS) {
        Verdict v = check(h, guard, s, back);
        assertFalse(v.stale(), s + " at the newest map: " + v.message());
      }
      h.stopWriters();
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  /**
   * Bucket 3 of 8 moves away, the keyspace is resharded to 16 buckets (owners unchanged), and bucket 3 of 16
   * (half of the old bucket) comes back: s2's fence is narrowed, not lifted, and stays bucket 3 of 8 at its
   * epoch, while s2 owns bucket 3 of 16 above it.
   */
  @Test
  void aHashBucketMovesAwayAndHalfOfItComesBackAfterAReshard() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false); Migrator m = migrator(h)) {
      h.startWriters(2, Duration.ofSeconds(60));
      Thread.sleep(200);
      long probe = firstKeyOf(3, 16);
      KeyspaceMap away = moveAndCheck(h, m, MoveSpec.builder().id("away").keyspace(MoveHarness.KS).bucket(3).target("s3")
          .pauseBudget(BUDGET).chunkRows(2_000).cleanupGrace(Duration.ofMillis(300)).build(),
          "s2", "s3", probe, "hash bucket 3 of 8");
      io.shardmap.proto.v1.ReshardHashRequest.Builder reshard = io.shardmap.proto.v1.ReshardHashRequest.newBuilder()
          .setKeyspace(MoveHarness.KS);
      for (int b = 0; b < 16; b++) {
        reshard.addBuckets(b % 8 == 3 ? "s3" : b % 2 == 0 ? "s1" : "s2");
      }
      h.fixture.admin().reshardHash(reshard.build());
      KeyspaceMap back = moveAndCheck(h, m, MoveSpec.builder().id("back").keyspace(MoveHarness.KS).bucket(3).target("s2")
          .pauseBudget(BUDGET).chunkRows(2_000).cleanupGrace(Duration.ofMillis(300)).build(),
          "s3", "s2", probe, "hash bucket 3 of 16");
      assertEquals(16, back.hash().size());
      try (Connection c = h.pg.shard(1).connect()) {
        assertTrue(Fences.fencesOn(c, h.table).contains("away"), "narrowed, not lifted: " + Fences.fencesOn(c, h.table));
      }
      FenceGuard guard = new FenceGuard();
      assertTrue(check(h, guard, "s3", away).stale());
      List<String> fresh = new ArrayList<>();
      for (String s : MoveHarness.SHARDS) {
        if (!check(h, guard, s, back).stale()) {
          fresh.add(s);
        }
      }
      assertEquals(MoveHarness.SHARDS, fresh, "every shard at the newest map");
      h.stopWriters();
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }

  private static long firstKeyOf(int bucket, int buckets) {
    for (long k = 0; ; k++) {
      if (io.shardmap.core.HashTable.bucketOf(io.shardmap.core.XxHash64.hashInt64(k), buckets) == bucket) {
        return k;
      }
    }
  }
}
