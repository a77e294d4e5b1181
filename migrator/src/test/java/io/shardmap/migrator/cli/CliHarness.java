package io.shardmap.migrator.cli;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;

/**
 * A directory (real etcd, one directory server) over three real PostgreSQL shards s1..s3, a range
 * keyspace "users" ([..0) on s1, [0..) on s2) whose table exists on s1 and s2 (the migrator creates it on
 * s3) with keys [-ROWS, ROWS) preloaded, and a keyspace "ghosts" whose table exists nowhere. Runs the
 * {@code migrator} command line in-process against it, with its own etcd prefix.
 */
final class CliHarness implements AutoCloseable {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  static final String KS = "users";
  static final String GHOSTS = "ghosts";
  static final long ROWS = 3_000;

  final PostgresFixture pg;
  final EtcdCluster etcd;
  final String prefix;
  final String table;
  final DirectoryServer server;
  final ManagedChannel channel;
  /** The SIGINT/SIGTERM handler a command installed, for {@link #signal}. */
  final AtomicReference<IntConsumer> signalHandler = new AtomicReference<>();

  /** What one command line printed and returned. */
  record Result(int code, String out, String err) {
    @Override
    public String toString() {
      return "exit " + code + "\n--- stdout:\n" + out + "--- stderr:\n" + err;
    }
  }

  CliHarness() throws Exception {
    etcd = EtcdCluster.shared();
    pg = PostgresFixture.shared(3);
    String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    prefix = "/c" + uid;
    table = "cli_users_" + uid;
    server = DirectoryServer.start(ServerOptions.builder().listen("127.0.0.1", 0).metrics(null, 0)
        .etcdEndpoints(etcd.clientEndpoints()).etcdPrefix(prefix).etcdTimeout(Duration.ofSeconds(2))
        .probeInterval(Duration.ofMillis(200)).watchHeartbeat(Duration.ofMillis(300)).build());
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    var admin = ShardMapAdminServiceGrpc.newBlockingStub(channel);
    for (int i = 0; i < SHARDS.size(); i++) {
      PgInstance p = pg.shard(i);
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(SHARDS.get(i))
          .setPrimary(Endpoint.newBuilder().setHost(p.host()).setPort(p.port()).setDatabase(p.database()))).build());
      if (i < 2) {
        exec(p, "CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL, payload text)");
      }
    }
    Key zero = Key.newBuilder().setIntKey(0).build();
    for (String ks : List.of(KS, GHOSTS)) {
      String t = ks.equals(KS) ? table : "ghost_" + uid;
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(ks)
              .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
              .addTables(ShardedTable.newBuilder().setName(t).setKeyColumn("id")))
          .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(zero)).setShard("s1"))
          .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(zero)).setShard("s2"))
          .build());
    }
    for (int i = 0; i < 2; i++) {
      try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("INSERT INTO " + table
          + " SELECT g, g, 'row ' || g FROM generate_series(?, ?) g")) {
        ps.setLong(1, i == 0 ? -ROWS : 0);
        ps.setLong(2, i == 0 ? -1 : ROWS - 1);
        ps.executeUpdate();
      }
    }
  }

  /** The environment the command line sees: etcd from SHARDMAP_ETCD, the role and password from PG*. */
  Map<String, String> env() {
    Map<String, String> env = new HashMap<>();
    env.put("SHARDMAP_ETCD", String.join(",", etcd.clientEndpoints()));
    env.put("PGUSER", pg.shard(0).user());
    if (pg.shard(0).password() != null) {
      env.put("PGPASSWORD", pg.shard(0).password());
    }
    return env;
  }

  /** Runs {@code migrator --etcd-prefix P --lease-ttl 2s ARGS...} in-process. */
  Result run(String... args) {
    List<String> all = new ArrayList<>(List.of("--etcd-prefix", prefix, "--lease-ttl", "2s"));
    all.addAll(List.of(args));
    return runRaw(env(), all.toArray(String[]::new));
  }

  Result runRaw(Map<String, String> env, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    Signals signals = onStop -> {
      signalHandler.set(onStop);
      return () -> signalHandler.compareAndSet(onStop, null);
    };
    int code = new MigratorCli(env, new PrintWriter(out, true), new PrintWriter(err, true), false, signals,
        Migrator::open).execute(args);
    return new Result(code, out.toString(), err.toString());
  }

  /** Delivers a "signal" to the command that installed a handler; false if none is installed. */
  boolean signal(int number) {
    IntConsumer h = signalHandler.get();
    if (h == null) {
      return false;
    }
    h.accept(number);
    return true;
  }

  MigratorOptions.Builder migratorOptions() {
    return MigratorOptions.builder().etcdEndpoints(etcd.clientEndpoints()).etcdPrefix(prefix)
        .pgUser(pg.shard(0).user()).pgPassword(pg.shard(0).password()).leaseTtl(Duration.ofSeconds(2))
        .pollInterval(Duration.ofMillis(50));
  }

  /** Rows of the users table on one shard with keys in [lo, hi); 0 if the table does not exist there. */
  long count(int shard, long lo, long hi) throws SQLException {
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement()) {
      ResultSet exists = s.executeQuery("SELECT to_regclass('" + table + "') IS NOT NULL");
      exists.next();
      if (!exists.getBoolean(1)) {
        return 0;
      }
      try (ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table + " WHERE id >= " + lo + " AND id < " + hi)) {
        rs.next();
        return rs.getLong(1);
      }
    }
  }

  static void exec(PgInstance p, String sql) throws SQLException {
    try (Connection c = p.connect(); Statement s = c.createStatement()) {
      s.execute(sql);
    }
  }

  @Override
  public void close() throws SQLException {
    channel.shutdownNow();
    server.close();
    for (int i = 0; i < SHARDS.size(); i++) {
      exec(pg.shard(i), "DROP TABLE IF EXISTS " + table + " CASCADE");
      exec(pg.shard(i), "DO $$ BEGIN IF to_regclass('shardmap.fences') IS NOT NULL THEN "
          + "DELETE FROM shardmap.fences WHERE tbl = '" + table + "'; END IF; END $$");
    }
  }
}
