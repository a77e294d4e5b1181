package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Shards whose PostgreSQL has prepared transactions disabled ({@code max_prepared_transactions = 0}, the
 * server default): a transaction writing on two of them fails at its first commit with an error naming the
 * setting, and nothing commits; one writing on a single shard needs no prepared transaction and commits.
 */
@Tag("integration")
class CrossShardTransactionDisabledTest {
  static final PostgresFixture PG = PostgresFixture.startNew(2, List.of("max_prepared_transactions = 0"));

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().postgres(PG).shards(2)
      .table("id bigint PRIMARY KEY, balance bigint NOT NULL").extension();

  @AfterAll
  static void closeAll() {
    PG.close();
  }

  private long balance(int shard, String table, long id) throws SQLException {
    try (Connection c = PG.shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT balance FROM " + table + " WHERE id = " + id)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  @Test
  void aTwoShardWriteNamesTheSettingAndCommitsNothing() throws Exception {
    ShardmapFleet f = fleet.get();
    String table = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("accounts")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addAllRangeShards(f.shardNames()).build());
    long a = Long.MIN_VALUE + 1;
    long b = Long.MAX_VALUE - 1;
    f.shard(0).exec("INSERT INTO " + table + " VALUES (" + a + ", 100)");
    f.shard(1).exec("INSERT INTO " + table + " VALUES (" + b + ", 100)");
    try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
             .channelFactory(f::channelBuilder).keyspaces("accounts").build());
         ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(PG.shard(0).user())
             .password(PG.shard(0).password()).build())) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
        try (Statement s = tx.connection("accounts", a).createStatement()) {
          s.executeUpdate("UPDATE " + table + " SET balance = balance - 5 WHERE id = " + a);
        }
        try (Statement s = tx.connection("accounts", b).createStatement()) {
          s.executeUpdate("UPDATE " + table + " SET balance = balance + 5 WHERE id = " + b);
        }
        return null;
      }));
      assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
      assertTrue(e.getMessage().contains("max_prepared_transactions = 0"), e.getMessage());
      assertEquals(100, balance(0, table, a));
      assertEquals(100, balance(1, table, b));
      // One shard: a plain commit, which needs no prepared transaction.
      data.acrossShards(tx -> {
        try (Statement s = tx.connection("accounts", a).createStatement()) {
          return s.executeUpdate("UPDATE " + table + " SET balance = balance - 5 WHERE id = " + a);
        }
      });
      assertEquals(95, balance(0, table, a));
    }
  }
}
