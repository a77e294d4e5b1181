package io.shardmap.migrator;

import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.client.StaleRoute;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.HashTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.XxHash64;
import io.shardmap.migrator.MoveHarness.Layout;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.migrator.internal.Tables;
import io.shardmap.proto.v1.AddRingNodesRequest;
import io.shardmap.proto.v1.DeleteDirectoryEntriesRequest;
import io.shardmap.proto.v1.DescribeKeyspaceRequest;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.MovingRange;
import io.shardmap.proto.v1.PutDirectoryEntriesRequest;
import io.shardmap.proto.v1.ReassignBucketRequest;
import io.shardmap.proto.v1.ReshardHashRequest;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongPredicate;
import java.util.function.Supplier;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Moves of units other than INT64 ranges, each a whole move on real etcd, a real directory server and real
 * PostgreSQL under SDK writers: hash buckets (two at once), a ring node joining (text keys), directory
 * entries, geographic regions (a listed one, and the default one with every unlisted name). Each ends with every acknowledged write exactly once on its key's owner, the source holding
 * none of the unit and fenced, and the directory server having refused to change the unit meanwhile.
 */
@Tag("integration")
class UnitMigrationTest {
  @Test
  void hashBucketsMoveUnderWriters() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false); Migrator m = Migrator.open(h.migratorOptions().build())) {
      refused(m, ErrorCode.INVALID_ARGUMENT, "bucket: keyspace 'users' has buckets 0-7, got 8",
          () -> spec().bucket(8).target("s3"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "target: shard 's2' already owns bucket 3",
          () -> spec().bucket(3).target("s2"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "range: keyspace 'users' uses STRATEGY_HASH",
          () -> spec().range("0..").target("s3"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "ringJoin: keyspace 'users' uses STRATEGY_HASH",
          () -> spec().ringJoin().target("s3"));
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration b3 = m.plan(spec().id("b3").bucket(3).target("s3").chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1))
          .build());
      Migration b5 = m.plan(spec().id("b5").bucket(5).target("s3").chunkRows(3_000).cleanupGrace(Duration.ofSeconds(1))
          .build());
      assertEquals("s2", b3.getSource());
      refused(m, ErrorCode.FAILED_PRECONDITION, "bucket: bucket 3 of keyspace 'users' is already being moved by "
          + "migration 'b3'", () -> spec().bucket(3).target("s1"));
      adminRefused(() -> h.fixture.admin().reassignBucket(ReassignBucketRequest.newBuilder().setKeyspace(MoveHarness.KS)
          .setBucket(3).setShard("s1").build()), "bucket: bucket 3 of keyspace 'users' is being moved by migration 'b3'");
      adminRefused(() -> h.fixture.admin().reshardHash(ReshardHashRequest.newBuilder().setKeyspace(MoveHarness.KS)
          .addBuckets("s1").build()), "buckets: keyspace 'users' has units being moved by migrations 'b3', 'b5'");
      assertEquals(Set.of("bucket 3", "bucket 5"), moving(h));
      // Both cutovers rewrite the one layout record: the later one reads it again and still finds its bucket.
      CompletableFuture<Migration> other = CompletableFuture.supplyAsync(() -> m.drive("b5", p -> { },
          Duration.ofSeconds(5)));
      Migration done = m.drive("b3", p -> { }, Duration.ofSeconds(5));
      Migration done5 = other.get();
      Thread.sleep(300);
      h.stopWriters();
      LongPredicate in3 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 3;
      LongPredicate in5 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 5;
      assertMoved(h, done, in3, 1);
      assertMoved(h, done5, in5, 1);
      assertEquals(Set.of(), moving(h));
      assertEquals("s2", h.route(firstKey(k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 1)).shard());
    }
  }

  /**
   * A bucket moves away and back under writers: the way back copies past the fence the shard kept from
   * the first move, and lifts it at cutover, so the shard takes the bucket's writes again.
   */
  @Test
  void aBucketMovesBackToTheShardThatStillFencesIt() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false); Migrator m = Migrator.open(h.migratorOptions().build())) {
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      m.plan(spec().id("away").bucket(3).target("s3").chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1)).build());
      Migration away = m.drive("away", p -> { }, Duration.ofSeconds(5));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, away.getState(), away.toString());
      m.plan(spec().id("back").bucket(3).target("s2").chunkRows(2_000).cleanupGrace(Duration.ofSeconds(1)).build());
      Migration back = m.drive("back", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      LongPredicate in3 = k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 3;
      assertMoved(h, back, in3, 2, false);  // s3 held only this bucket
      try (Connection c = h.pg.shard(1).connect()) {
        assertFalse(Fences.fencesOn(c, h.table).contains("away"), "the way back lifted the old fence");
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + h.table + " VALUES (?, 0, 'direct') "
            + "ON CONFLICT DO NOTHING")) {
          ps.setLong(1, firstKey(in3));
          ps.executeUpdate();
        }
      }
    }
  }

  /**
   * Two buckets move to a shard that lacks the table: the first creates it, the second finds it. Cancelling
   * the first must not drop the (still empty) table the second is about to fill.
   */
  @Test
  void aCancelKeepsATableAnotherMoveToTheSameShardNeeds() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false); Migrator m = Migrator.open(h.migratorOptions().build())) {
      m.plan(spec().id("ca").bucket(3).target("s3").cleanupGrace(Duration.ofSeconds(1)).build());
      m.plan(spec().id("cb").bucket(5).target("s3").cleanupGrace(Duration.ofSeconds(1)).build());
      for (String id : List.of("ca", "cb")) {
        java.util.concurrent.atomic.AtomicBoolean copying = new java.util.concurrent.atomic.AtomicBoolean();
        Migration held = m.drive(id, p -> copying.compareAndSet(false,
            p.getState() == MigrationState.MIGRATION_STATE_COPYING), Duration.ofSeconds(5), copying::get);
        assertEquals(MigrationState.MIGRATION_STATE_COPYING, held.getState(), held.toString());
        assertEquals(0, held.getRowsCopied(), "stopped before the first chunk");
      }
      assertEquals(List.of(h.table), m.status("ca").getCreatedTablesList());
      assertEquals(List.of(), m.status("cb").getCreatedTablesList());
      m.requestCancel("ca");
      assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, m.drive("ca", p -> { }, Duration.ofSeconds(5)).getState());
      try (Connection c = h.pg.shard(2).connect()) {
        assertTrue(Tables.columns(c, h.table) != null, "the table 'cb' needs is still there");
      }
      Migration done = m.drive("cb", p -> { }, Duration.ofSeconds(5));
      assertMoved(h, done, k -> HashTable.bucketOf(XxHash64.hashInt64(k), 8) == 5, 1);
    }
  }

  @Test
  void aRingNodeJoinsUnderWritersOnTextKeys() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.RING, true); Migrator m = Migrator.open(h.migratorOptions().build())) {
      refused(m, ErrorCode.NOT_FOUND, "ringLeave: shard 's3' has no node on the ring", () -> spec().ringLeave("s3"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "bucket: keyspace 'users' uses STRATEGY_CONSISTENT_HASH",
          () -> spec().bucket(0).target("s3"));
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration planned = m.plan(spec().id("join").ringJoin().target("s3").chunkRows(2_000)
          .cleanupGrace(Duration.ofSeconds(1)).build());
      assertEquals(0, planned.getUnit().getRingNode().getVnode());
      refused(m, ErrorCode.FAILED_PRECONDITION, "ringLeave: a ring node of keyspace 'users' is already joining or "
          + "leaving (migration 'join')", () -> spec().ringLeave("s1"));
      adminRefused(() -> h.fixture.admin().addRingNodes(AddRingNodesRequest.newBuilder().setKeyspace(MoveHarness.KS)
          .setShard("s3").setVnodes(1).build()), "keyspace: a ring node of keyspace 'users' is being moved by "
          + "migration 'join'");
      assertEquals(Set.of("ring node (migration join)"), moving(h));
      Migration done = m.drive("join", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      long after = planned.getUnit().getRingNode().getArcAfter();
      long upTo = planned.getUnit().getRingNode().getArcUpTo();
      LongPredicate inArc = k -> {
        long p = XxHash64.hash(("u" + k).getBytes(StandardCharsets.UTF_8)) ^ Long.MIN_VALUE;
        long a = after ^ Long.MIN_VALUE;
        long u = upTo ^ Long.MIN_VALUE;
        return a < u ? p > a && p <= u : p > a || p <= u;
      };
      assertMoved(h, done, inArc, MoveHarness.SHARDS.indexOf(planned.getSource()));
      assertTrue(done.getRowsCopied() > 100, "the arc held rows: " + done.getRowsCopied());
    }
  }

  @Test
  void aRangeOfTextKeysMovesUnderWriters() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.RANGE, true); Migrator m = Migrator.open(h.migratorOptions().build())) {
      // Two ranges split at 0x80: every "u..." key is on s1.
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration planned = m.plan(spec().id("txt").range("'u1'..'u5'").split(true).target("s3").chunkRows(3_000)
          .cleanupGrace(Duration.ofSeconds(1)).build());
      Migration done = m.drive("txt", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      io.shardmap.core.KeyRange r = io.shardmap.core.KeyRange.parse(io.shardmap.proto.v1.KeyType.KEY_TYPE_BYTES,
          "'u1'..'u5'", "range");
      assertMoved(h, done, k -> r.contains(("u" + k).getBytes(StandardCharsets.UTF_8)), 0);
      assertEquals("s1", planned.getSource());
      assertTrue(done.getRowsCopied() > 5_000, "rows copied " + done.getRowsCopied());
    }
  }

  @Test
  void directoryEntriesMoveUnderWriters() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.DIRECTORY, false); Migrator m = Migrator.open(h.migratorOptions().build())) {
      List<String> keys = new ArrayList<>();
      List<Long> moved = new ArrayList<>();
      for (long k = -5000; k < 5000; k += 1000) {
        keys.add(h.keyText(k));
        moved.add(k);
      }
      refused(m, ErrorCode.NOT_FOUND, "entries[1]: key 7 has no entry in keyspace 'users'",
          () -> spec().entries(List.of("0", "7")).target("s3"));
      refused(m, ErrorCode.INVALID_ARGUMENT, "entries[1]: the same key as entries[0]",
          () -> spec().entries(List.of("0", "0")).target("s3"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "target: shard 's2' already owns these entries",
          () -> spec().entries(keys).target("s2"));
      h.hotKeys = moved;
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration planned = m.plan(spec().id("dir").entries(keys).target("s3").cleanupGrace(Duration.ofSeconds(1))
          .build());
      refused(m, ErrorCode.FAILED_PRECONDITION, "entries[0]: key 0 of keyspace 'users' is already being moved by "
          + "migration 'dir'", () -> spec().entries(List.of("0")).target("s1"));
      adminRefused(() -> h.fixture.admin().putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder()
          .setKeyspace(MoveHarness.KS).addEntries(DirectoryEntry.newBuilder().setKey(h.protoKey(15_000)).setShard("s2"))
          .addEntries(DirectoryEntry.newBuilder().setKey(h.protoKey(0)).setShard("s1")).build()),
          "entries[1].key: entry 0 of keyspace 'users' is being moved by migration 'dir'");
      adminRefused(() -> h.fixture.admin().deleteDirectoryEntries(DeleteDirectoryEntriesRequest.newBuilder()
          .setKeyspace(MoveHarness.KS).addKeys(h.protoKey(-5000)).build()),
          "keys[0]: entry -5000 of keyspace 'users' is being moved by migration 'dir'");
      assertEquals(10, moving(h).size());
      Migration done = m.drive("dir", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      assertMoved(h, done, moved::contains, 1);
      assertEquals("s2", h.route(-6000).shard(), "entries not moved stay");
      assertEquals("s1", h.route(1).shard(), "the fallback stays");
    }
  }

  /** A listed region (one key) moves under writers; while it moves the keyspace's regions cannot change. */
  @Test
  void aRegionMovesUnderWriters() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.GEO, true); Migrator m = Migrator.open(h.migratorOptions().build())) {
      refused(m, ErrorCode.NOT_FOUND, "region: 'ap' is not a region of keyspace 'users'",
          () -> spec().region("ap").target("s3"));
      refused(m, ErrorCode.INVALID_ARGUMENT, "region: a region name is 1-63 characters of [a-z0-9-]",
          () -> spec().region("EU").target("s3"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "target: shard 's2' already owns region 'u3000'",
          () -> spec().region("u3000").target("s2"));
      refused(m, ErrorCode.FAILED_PRECONDITION, "range: keyspace 'users' uses STRATEGY_GEOGRAPHIC, which range does "
          + "not apply to; move a region of it instead", () -> spec().range("..").target("s3"));
      h.hotKeys = List.of(3000L, 4000L, 5000L);
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration planned = m.plan(spec().id("reg").region("u3000").target("s3").cleanupGrace(Duration.ofSeconds(1))
          .build());
      assertEquals("s2", planned.getSource());
      assertFalse(planned.getUnit().getRegion().getDefaultRegion());
      refused(m, ErrorCode.FAILED_PRECONDITION, "region: region 'u3000' of keyspace 'users' is already being moved by "
          + "migration 'reg'", () -> spec().region("u3000").target("s1"));
      adminRefused(() -> h.fixture.admin().setRegion(io.shardmap.proto.v1.SetRegionRequest.newBuilder()
          .setKeyspace(MoveHarness.KS).setRegion("ap").setShard("s1").build()),
          "region: keyspace 'users' has units being moved by migration 'reg'");
      adminRefused(() -> h.fixture.admin().removeRegion(io.shardmap.proto.v1.RemoveRegionRequest.newBuilder()
          .setKeyspace(MoveHarness.KS).setRegion("u3000").build()),
          "region: keyspace 'users' has units being moved by migration 'reg'");
      assertEquals(Set.of("region 'u3000'"), moving(h));
      Migration done = m.drive("reg", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      assertMoved(h, done, k -> k == 3000, 1);
      assertEquals("s2", h.route(4000).shard(), "the other regions stay");
      assertEquals("s1", h.route(3001).shard(), "unlisted names stay with the default region");
      assertEquals(Set.of(), moving(h));
    }
  }

  /** The default region moves, and with it every key that names no listed region (thousands of rows). */
  @Test
  void theDefaultRegionMovesWithEveryUnlistedName() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.GEO, true); Migrator m = Migrator.open(h.migratorOptions().build())) {
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      Migration planned = m.plan(spec().id("deflt").region("eu").target("s3").chunkRows(3_000)
          .cleanupGrace(Duration.ofSeconds(1)).build());
      assertEquals("s1", planned.getSource());
      assertTrue(planned.getUnit().getRegion().getDefaultRegion());
      assertEquals(MoveHarness.GEO_REGIONS.size(), planned.getUnit().getRegion().getOtherRegionsCount());
      Migration done = m.drive("deflt", p -> { }, Duration.ofSeconds(5));
      Thread.sleep(300);
      h.stopWriters();
      LongPredicate unlisted = k -> !MoveHarness.GEO_REGIONS.contains(k);
      // s1 held only the default region's keys, so it keeps nothing.
      assertMoved(h, done, unlisted, 0, false);
      assertTrue(done.getRowsCopied() > 5_000, "rows copied " + done.getRowsCopied());
      assertEquals("s2", h.route(3000).shard(), "listed regions stay");
    }
  }

  private static MoveSpec.Builder spec() {
    // A pause budget a loaded test machine can meet (these tests are about the data; the budget is
    // MigrationPauseBudgetTest's): under load the default 100 ms can be missed by every attempt.
    return MoveSpec.builder().keyspace(MoveHarness.KS).pauseBudget(java.time.Duration.ofSeconds(2));
  }

  private static long firstKey(LongPredicate p) {
    long k = 0;
    while (!p.test(k)) {
      k++;
    }
    return k;
  }

  private static void refused(Migrator m, ErrorCode code, String text, Supplier<MoveSpec.Builder> spec) {
    int before = m.list().size();
    ShardmapException e = assertThrows(ShardmapException.class, () -> m.plan(spec.get().build()));
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().startsWith(text), e.getMessage());
    assertEquals(before, m.list().size(), "nothing was recorded");
  }

  private static void adminRefused(Runnable call, String text) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run);
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode(), e.getMessage());
    assertTrue(e.getStatus().getDescription().startsWith(text), e.getStatus().getDescription());
  }

  private static Set<String> moving(MoveHarness h) {
    Set<String> out = new java.util.TreeSet<>();
    for (MovingRange r : h.fixture.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder()
        .setName(MoveHarness.KS).build()).getMovingList()) {
      out.add(r.getUnit());
    }
    return out;
  }

  /**
   * The move is done; the keys in the unit route to the target at the planned epoch + 1; the source holds
   * none of them and refuses writes to them; every acknowledged write is on its owner exactly once.
   */
  private static void assertMoved(MoveHarness h, Migration done, LongPredicate inUnit, int source) throws Exception {
    assertMoved(h, done, inUnit, source, true);
  }

  private static void assertMoved(MoveHarness h, Migration done, LongPredicate inUnit, int source,
                                  boolean sourceHoldsMore) throws Exception {
    assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
    assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
    System.out.println("move " + done.getId() + " finished: rows=" + done.getRowsCopied() + " replayed="
        + done.getKeysReplayed() + " repaired=" + done.getKeysRepaired() + " pause=" + done.getPauseMs() + "ms deleted="
        + done.getRowsDeleted() + " acknowledged writes=" + h.acknowledged.get());
    assertEquals(MoveHarness.SHARDS.get(source), done.getSource());
    long inside = firstKey(inUnit);
    ShardRoute r = h.route(inside);
    assertEquals(done.getTarget(), r.shard());
    assertEquals(done.getRangeEpoch() + 1, r.epoch());
    List<Long> left = h.rows(source, null, null).keySet().stream().filter(inUnit::test).toList();
    assertEquals(List.of(), left, "the source keeps none of the unit");
    if (sourceHoldsMore) {
      assertTrue(h.rows(source, null, null).size() > 10, "the source keeps what is not in the unit");
    }
    h.assertEveryAcknowledgedWriteOnItsOwner();
    try (Connection c = h.pg.shard(source).connect()) {
      assertTrue(Fences.fencesOn(c, h.table).contains(done.getId()), "the source stays fenced");
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + h.table + " VALUES (?, 0, 'late')")) {
        if (h.textKeys) {
          ps.setString(1, "u" + inside);
        } else {
          ps.setLong(1, inside);
        }
        SQLException e = assertThrows(SQLException.class, ps::executeUpdate);
        assertTrue(StaleRoute.isStaleRoute(e), e.toString());
        assertEquals(done.getRangeEpoch(), StaleRoute.fencedEpoch(e));
      }
    }
  }
}
