package io.shardmap.migrator;

import io.grpc.ManagedChannel;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.UUID;

/**
 * What every migrator test starts from: real etcd under its own prefix, one directory server, three real
 * PostgreSQL shards s1..s3, and range keyspaces ([..0) on s1, [0..) on s2) whose tables exist on s1 and s2
 * only (the migrator creates them on s3).
 */
public final class DirectoryFixture implements AutoCloseable {
  public static final List<String> SHARDS = List.of("s1", "s2", "s3");

  public final PostgresFixture pg;
  public final EtcdCluster etcd;
  public final String uid;
  public final String prefix;
  public final DirectoryServer server;
  public final ManagedChannel channel;
  private final ShardmapFleet fleet;
  private final ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  private final List<String> tables = new java.util.ArrayList<>();

  public DirectoryFixture(String prefixTag) throws Exception {
    uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    prefix = "/" + prefixTag + uid;
    // Sockets: writers and the migrator CLIs (some in child processes) reach the server by host:port.
    fleet = ShardmapFleet.builder().sockets().shards(SHARDS.size()).prefix(prefix).build();
    etcd = fleet.etcd();
    pg = fleet.postgres();
    server = fleet.server(0);
    channel = fleet.channel(0);
    admin = fleet.admin();
  }

  /**
   * Creates range keyspace {@code name} sharding {@code table} by column id; with {@code preload} &gt; 0 also
   * creates the table on s1 and s2 and fills it with keys [-preload, preload) (value = key) on their owners.
   */
  public void rangeKeyspace(String name, String table, long preload) throws SQLException {
    Key zero = Key.newBuilder().setIntKey(0).build();
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(name)
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(zero)).setShard("s1"))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(zero)).setShard("s2"))
        .build());
    tables.add(table);
    if (preload <= 0) {
      return;
    }
    for (int i = 0; i < 2; i++) {
      pg.shard(i).exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL, payload text)");
      try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("INSERT INTO " + table
          + " SELECT g, g, 'row ' || g FROM generate_series(?, ?) g")) {
        ps.setLong(1, i == 0 ? -preload : 0);
        ps.setLong(2, i == 0 ? -1 : preload - 1);
        ps.executeUpdate();
      }
    }
  }

  /**
   * Creates a keyspace with {@code req} (any strategy) and {@code table} (key column id of SQL type
   * {@code keyType}, v bigint, payload text) on s1 and s2, empty.
   */
  public void keyspace(CreateKeyspaceRequest req, String table, String keyType) throws SQLException {
    admin.createKeyspace(req);
    tables.add(table);
    for (int i = 0; i < 2; i++) {
      pg.shard(i).exec("CREATE TABLE " + table + " (id " + keyType + " PRIMARY KEY, v bigint NOT NULL, payload text)");
    }
  }

  /** The directory server's admin API. */
  public ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin() {
    return admin;
  }

  public MigratorOptions.Builder migratorOptions() {
    return MigratorOptions.builder().etcdEndpoints(etcd.clientEndpoints()).etcdPrefix(prefix)
        .pgUser(pg.shard(0).user()).pgPassword(pg.shard(0).password()).leaseTtl(Duration.ofSeconds(2))
        .pollInterval(Duration.ofMillis(50));
  }

  /**
   * {@link PgInstance#exec}; kept only because {@code MoveHarness.exec} (under concurrent change elsewhere)
   * still delegates here. New code calls {@code p.exec(sql)}.
   */
  static void exec(PgInstance p, String sql) throws SQLException {
    p.exec(sql);
  }

  /** Stops the server and drops every keyspace table and its fences from all shards. */
  @Override
  public void close() throws SQLException {
    fleet.close();
    for (int i = 0; i < SHARDS.size(); i++) {
      for (String t : tables) {
        pg.shard(i).exec("DROP TABLE IF EXISTS " + t + " CASCADE");
        pg.shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.fences') IS NOT NULL THEN "
            + "DELETE FROM shardmap.fences WHERE tbl = '" + t + "'; END IF; END $$");
      }
    }
  }
}
