package io.shardmap.testkit.fleet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.Strategy;
import java.sql.Connection;
import java.sql.ResultSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The fleet on real etcd and PostgreSQL: shards registered with their endpoints, the table on each shard. */
@Tag("integration")
class ShardmapFleetTest {
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(2).table("id bigint").extension();

  @Test
  void anInProcessFleetRegistersItsShardsAndCreatesItsTable() throws Exception {
    ShardmapFleet f = fleet.get();
    assertFalse(f.targets().get(0).contains(":"), "in-process by default: " + f.targets());
    f.admin().withDeadlineAfter(10, TimeUnit.SECONDS).createKeyspace(CreateKeyspaceRequest.newBuilder()
        .setSpec(KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
            .setStrategy(Strategy.STRATEGY_RANGE)).addAllRangeShards(f.shardNames()).build());
    var route = f.read().withDeadlineAfter(10, TimeUnit.SECONDS).lookup(LookupRequest.newBuilder()
        .setKeyspace("users").setKey(Key.newBuilder().setIntKey(5)).build());
    assertEquals(ShardmapFleet.endpoint(f.shard(1)), route.getShard().getPrimary());
    for (int i = 0; i < 2; i++) {
      try (Connection c = f.shard(i).connect();
           ResultSet rs = c.getMetaData().getTables(null, null, f.table(), null)) {
        assertTrue(rs.next(), "table " + f.table() + " on shard " + i);
      }
    }
  }

  @Test
  void aSocketFleetListensOnLoopbackAndDropsItsTableOnClose() throws Exception {
    String table;
    try (ShardmapFleet f = ShardmapFleet.builder().sockets().servers(2).shards(1).table("id bigint").build()) {
      table = f.table();
      assertEquals(2, f.targets().size());
      assertEquals("127.0.0.1:" + f.server(1).port(), f.targets().get(1));
      f.channel(1);
    }
    try (Connection c = fleet.get().shard(0).connect();
         ResultSet rs = c.getMetaData().getTables(null, null, table, null)) {
      assertFalse(rs.next(), "table " + table + " dropped");
    }
  }
}
