package io.shardmap.migrator.cli;

import io.grpc.ManagedChannel;
import io.shardmap.migrator.DirectoryFixture;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.server.DirectoryServer;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;

/**
 * A directory (real etcd, one directory server) over three real PostgreSQL shards s1..s3, a range
 * keyspace "users" ([..0) on s1, [0..) on s2) whose table exists on s1 and s2 (the migrator creates it on
 * s3) with keys [-ROWS, ROWS) preloaded, and a keyspace "ghosts" whose table exists nowhere. Runs the
 * {@code migrator} command line in-process against it, with its own etcd prefix.
 */
final class CliHarness implements AutoCloseable {
  static final List<String> SHARDS = io.shardmap.migrator.DirectoryFixture.SHARDS;
  static final String KS = "users";
  static final String GHOSTS = "ghosts";
  static final long ROWS = 3_000;

  final DirectoryFixture fixture;
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
    fixture = new DirectoryFixture("c");
    pg = fixture.pg;
    etcd = fixture.etcd;
    prefix = fixture.prefix;
    table = "cli_users_" + fixture.uid;
    server = fixture.server;
    channel = fixture.channel;
    fixture.rangeKeyspace(KS, table, ROWS);
    fixture.rangeKeyspace(GHOSTS, "ghost_" + fixture.uid, 0);
  }

  /**
   * Creates hash keyspace {@code name} of 8 buckets (even ones on s1, odd ones on s2) sharding an empty
   * table {@code name_UID} (created on s1 and s2) by column id.
   */
  void hashKeyspace(String name) throws SQLException {
    io.shardmap.proto.v1.CreateKeyspaceRequest.Builder req = io.shardmap.proto.v1.CreateKeyspaceRequest.newBuilder()
        .setSpec(io.shardmap.proto.v1.KeyspaceSpec.newBuilder().setName(name)
            .setKeyType(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64).setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_HASH)
            .addTables(io.shardmap.proto.v1.ShardedTable.newBuilder().setName(name + "_" + fixture.uid).setKeyColumn("id")));
    for (int b = 0; b < 8; b++) {
      req.addHashBuckets(b % 2 == 0 ? "s1" : "s2");
    }
    fixture.keyspace(req.build(), name + "_" + fixture.uid, "bigint");
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
    return fixture.migratorOptions();
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

  @Override
  public void close() throws SQLException {
    fixture.close();
  }
}
