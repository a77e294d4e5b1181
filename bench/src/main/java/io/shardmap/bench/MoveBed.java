package io.shardmap.bench;

import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
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
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;

/**
 * What the migrator benchmarks run on: a local etcd, two local PostgreSQL 15 servers registered as shards
 * s1 and s2 (same settings: the {@link PostgresFixture}'s, fsync off, synchronous_commit on), and a
 * directory server on that etcd in this JVM. Range keyspaces over one table of ~200-byte rows.
 */
final class MoveBed implements AutoCloseable {
  static final List<String> SHARDS = List.of("s1", "s2");
  static final String PREFIX = "/bench";

  /**
   * A realistic row: bigint key, a counter, a timestamp, a short name, a 140-character payload; 203 bytes
   * in binary COPY format. The same DDL on both shards, so the pipe and the migrator fill equal tables.
   */
  static final String COLUMNS = "(id bigint PRIMARY KEY, v bigint NOT NULL, created_at timestamptz NOT NULL, "
      + "name text NOT NULL, payload text NOT NULL)";
  /** Rows for keys [?, ?], a function of the key only, so every copy of a range holds the same bytes. */
  static final String FILL = " SELECT g, g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 millisecond', "
      + "'user-' || lpad(g::text, 12, '0'), left(repeat(md5(g::text), 5), 140) FROM generate_series(?, ?) g";

  private final Closer closer = new Closer();
  final LocalEtcd etcd;
  final PostgresFixture pg;
  final DirectoryServer server;
  private final ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;

  MoveBed(List<String> etcdEndpoints) throws Exception {
    try {
      etcd = closer.add(LocalEtcd.start(etcdEndpoints, 1));
      pg = closer.add(PostgresFixture.startNew(SHARDS.size()));
      ShardmapFleet fleet = closer.add(ShardmapFleet.builder().etcdEndpoints(etcd.endpoints()).postgres(pg)
          .shards(SHARDS.size()).sockets().productionIntervals().prefix(PREFIX).build());
      server = fleet.server(0);
      admin = fleet.admin();
    } catch (Exception e) {
      closer.close();
      throw e;
    }
  }

  PgInstance shard(String name) {
    int i = SHARDS.indexOf(name);
    if (i < 0) {
      throw new IllegalArgumentException("no shard " + name);
    }
    return pg.shard(i);
  }

  static String other(String shard) {
    return shard.equals("s1") ? "s2" : "s1";
  }

  /**
   * An INT64 range keyspace over {@code table}: keys below {@code split} on {@code lowShard}, the rest on
   * {@code highShard}.
   */
  void rangeKeyspace(String name, String table, long split, String lowShard, String highShard) {
    Key at = Key.newBuilder().setIntKey(split).build();
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(name)
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(at)).setShard(lowShard))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(at)).setShard(highShard))
        .build());
  }

  void createTable(String shard, String table) throws SQLException {
    exec(shard, "CREATE TABLE " + table + " " + COLUMNS);
  }

  /** Fills keys [from, to) of {@code table} on {@code shard}, then VACUUM ANALYZE (hint bits set, stats). */
  void fill(String shard, String table, long from, long to) throws SQLException {
    try (Connection c = shard(shard).connect()) {
      // Batches of 200,000 keys: one huge INSERT would hold all of it in one transaction for no gain.
      for (long lo = from; lo < to; lo += 200_000) {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + FILL)) {
          ps.setLong(1, lo);
          ps.setLong(2, Math.min(to, lo + 200_000) - 1);
          ps.executeUpdate();
        }
      }
      try (Statement s = c.createStatement()) {
        s.execute("VACUUM ANALYZE " + table);
      }
    }
  }

  void exec(String shard, String sql) throws SQLException {
    shard(shard).exec(sql);
  }

  long count(String shard, String table, long from, long to) throws SQLException {
    try (Connection c = shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table + " WHERE id >= " + from + " AND id < " + to)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  /**
   * CHECKPOINT on both servers before a timed phase, so that neither the pipe nor the migrator pays for
   * flushing pages the setup dirtied.
   */
  void checkpoint() throws SQLException {
    for (String s : SHARDS) {
      exec(s, "CHECKPOINT");
    }
  }

  /** A migrator on this directory with default options (what the CLI uses). */
  Migrator migrator() {
    PgInstance p = pg.shard(0);
    return Migrator.open(MigratorOptions.builder().etcdEndpoints(etcd.endpoints()).etcdPrefix(PREFIX)
        .pgUser(p.user()).pgPassword(p.password()).etcdTimeout(Duration.ofSeconds(5)).build());
  }

  @Override
  public void close() {
    closer.close();
  }
}
