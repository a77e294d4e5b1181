package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveHarness.Layout;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.Strategy;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Resharding on real etcd, a directory server and PostgreSQL: a shard joins a ring and another leaves it
 * (under SDK writers), every step a migration or a layout-only change; and the bucket plans of a hash
 * keyspace.
 */
@Tag("integration")
class ReshardTest {
  @Test
  void aShardJoinsTheRingAndAnotherLeavesItUnderWriters() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.RING, false, 3); Migrator m = Migrator.open(h.migratorOptions().build())) {
      List<String> plan = m.reshardPlan(MoveHarness.KS, "s3", true, 2);
      assertEquals(1, plan.size(), plan.toString());
      assertTrue(plan.get(0).startsWith("2 ring nodes of s3 join; "), plan.toString());
      List<String> log = new ArrayList<>();
      h.startWriters(3, Duration.ofSeconds(60));
      Thread.sleep(300);
      List<Migration> joined = m.reshard(MoveHarness.KS, "s3", true, 2,
          b -> b.chunkRows(3_000).cleanupGrace(Duration.ofSeconds(1)), log::add);
      assertTrue(!joined.isEmpty(), "a node's arc came from another shard: " + log);
      joined.forEach(j -> assertEquals(MigrationState.MIGRATION_STATE_DONE, j.getState()));
      assertEquals(2, log.stream().filter(l -> l.contains(" joins")).map(l -> l.substring(0, l.indexOf(':'))).distinct()
          .count(), log.toString());
      ShardmapException again = assertThrows(ShardmapException.class,
          () -> m.reshard(MoveHarness.KS, "s3", true, 2, b -> b, log::add));
      assertEquals(ErrorCode.FAILED_PRECONDITION, again.code());
      assertTrue(again.getMessage().startsWith("shard: 's3' already has 2 nodes"), again.getMessage());
      Thread.sleep(300);
      h.stopWriters();
      long onS3 = h.rows(2, null, null).size();
      assertTrue(onS3 > 100, "s3 took keys: " + onS3);
      h.assertEveryAcknowledgedWriteOnItsOwner();

      h.startWriters(3, Duration.ofSeconds(60));
      // s1 leaves: each of its arcs goes to the shard of the node after it (s2 or s3).
      List<Migration> left = m.reshard(MoveHarness.KS, "s1", false, 0,
          b -> b.chunkRows(3_000).cleanupGrace(Duration.ofSeconds(1)), log::add);
      Thread.sleep(300);
      h.stopWriters();
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      assertTrue(!left.isEmpty(), log.toString());
      left.forEach(l -> assertEquals(MigrationState.MIGRATION_STATE_DONE, l.getState()));
      assertEquals(0, h.rows(0, null, null).size(), "s1 holds nothing after leaving");
      h.assertEveryAcknowledgedWriteOnItsOwner();
      try (Connection c = h.pg.shard(0).connect()) {
        assertTrue(Fences.fencesOn(c, h.table).containsAll(left.stream().map(Migration::getId).toList()),
            "s1 stays fenced on every arc it gave away");
      }
      System.out.println("reshard: " + String.join("; ", log));
    }
  }

  @Test
  void aHashShardIsAddedAndRemovedByBuckets() throws Exception {
    try (DirectoryFixture f = new DirectoryFixture("rh"); Migrator m = Migrator.open(f.migratorOptions().build())) {
      CreateKeyspaceRequest.Builder req = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName("h").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_HASH));
      for (int b = 0; b < 9; b++) {
        req.addHashBuckets(b < 6 ? "s1" : "s2");
      }
      f.admin().createKeyspace(req.build());
      // 9 buckets over 3 shards: s3 takes 3, each from the owner with the most at that point.
      assertEquals(List.of("bucket 5: s1 -> s3", "bucket 4: s1 -> s3", "bucket 3: s1 -> s3"),
          m.reshardPlan("h", "s3", true, 0));
      assertEquals(List.of("bucket 6: s2 -> s1", "bucket 7: s2 -> s1", "bucket 8: s2 -> s1"),
          m.reshardPlan("h", "s2", false, 0));
      ShardmapException e = assertThrows(ShardmapException.class, () -> m.reshardPlan("h", "s1", true, 0));
      assertTrue(e.getMessage().startsWith("shard: 's1' already owns buckets"), e.getMessage());
      e = assertThrows(ShardmapException.class, () -> m.reshardPlan("h", "s9", true, 0));
      assertEquals(ErrorCode.NOT_FOUND, e.code(), e.getMessage());
    }
  }
}
