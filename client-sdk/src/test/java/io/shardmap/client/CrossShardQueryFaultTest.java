package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Cross-shard queries when a shard's PostgreSQL is down (stopped like a crash) and when a shard lacks the
 * routing functions, on PostgreSQL servers of this class's own (they are stopped).
 */
@Tag("fault")
class CrossShardQueryFaultTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  static PostgresFixture pg;
  static ShardmapFleet fleet;
  static ShardmapClient client;
  static ShardmapData data;
  static final TreeMap<Long, String> owners = new TreeMap<>();

  @BeforeAll
  static void start() throws Exception {
    pg = PostgresFixture.startNew(3);
    fleet = ShardmapFleet.builder().postgres(pg).shards(3).table("id bigint NOT NULL, v text").build();
    fleet.execOnShards("CREATE TABLE hashed (k bigint NOT NULL)");
    fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(fleet.table()).setKeyColumn("id"))).addAllRangeShards(SHARDS).build());
    fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("hashed")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_HASH)
        .addTables(ShardedTable.newBuilder().setName("hashed").setKeyColumn("k"))).addAllHashBuckets(SHARDS).build());
    client = ShardmapClient.start(ClientOptions.builder().targets(fleet.targets()).channelFactory(fleet::channelBuilder)
        .keyspaces("users", "hashed").build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .connectionTimeout(Duration.ofMillis(500)).build());
    Map<String, List<String>> rows = new TreeMap<>();
    for (int i = 0; i < 90; i++) {
      long id = (i - 45) * (Long.MAX_VALUE / 50);
      String owner = client.route("users", id).shard();
      owners.put(id, owner);
      rows.computeIfAbsent(owner, s -> new ArrayList<>()).add("(" + id + ", 'v')");
    }
    for (Map.Entry<String, List<String>> e : rows.entrySet()) {
      pg.shard(SHARDS.indexOf(e.getKey())).exec("INSERT INTO " + fleet.table() + " VALUES " + String.join(", ", e.getValue()));
    }
  }

  @AfterAll
  static void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (fleet != null) {
      fleet.close();
    }
    if (pg != null) {
      pg.close();
    }
  }

  @Test
  void aShardWithoutRoutingFunctionsFailsAHashQuerySayingHowToInstallThem() {
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("hashed",
        "SELECT count(*) FROM hashed").build()));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains("routing functions") && e.getMessage().contains("SqlRouting.ddl()"),
        e.getMessage());
    // Every shard lacks them; those whose part ran before the first failure stopped the others are named.
    assertTrue(SHARDS.stream().anyMatch(s -> e.getMessage().contains(s + ": its database lacks")), e.getMessage());
  }

  @Test
  void aStoppedShardFailsTheQueryByNameOrIsReportedInPartialMode() throws Exception {
    String sql = "SELECT id FROM " + fleet.table() + " ORDER BY id";
    pg.stop(1);
    try {
      ShardmapException e = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
          sql).build()));
      assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
      assertTrue(e.getMessage().contains("failed on 1 of 3 shards: s2: "), e.getMessage());

      List<Long> expected = new ArrayList<>();
      owners.forEach((id, owner) -> {
        if (!owner.equals("s2")) {
          expected.add(id);
        }
      });
      try (QueryResult r = data.query(CrossShardQuery.builder("users", sql).partialResults(true).build())) {
        List<Long> got = new ArrayList<>();
        while (r.next()) {
          got.add(r.getLong(1));
        }
        assertEquals(expected, got, "the healthy shards' rows, in order");
        assertTrue(r.partial());
        Map<String, ShardStatus> byShard = new TreeMap<>();
        r.shards().forEach(s -> byShard.put(s.shard(), s));
        assertEquals(new TreeSet<>(SHARDS), byShard.keySet());
        assertNotNull(byShard.get("s2").error());
        assertEquals(0, byShard.get("s2").rows());
        assertNull(byShard.get("s1").error());
        assertNull(byShard.get("s3").error());
        assertEquals(expected.size(), byShard.get("s1").rows() + byShard.get("s3").rows());
      }
    } finally {
      pg.start(1);
    }
    try (QueryResult r = data.query(CrossShardQuery.builder("users", sql).build())) {
      int n = 0;
      while (r.next()) {
        n++;
      }
      assertEquals(owners.size(), n, "back to whole answers once the shard is up");
      assertFalse(r.partial());
    }
  }
}
