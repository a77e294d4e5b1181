package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.CrossShardTransaction;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
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
import java.util.TreeMap;

/**
 * A bank over a directory (real etcd, one directory server) and three real PostgreSQL shards: range keyspace
 * "bank" ([..0) on s1, [0..) on s2; s3 empty, the migrator creates the tables there) sharding two tables by
 * the account id: the accounts ({@code id, balance}) and a ledger with one row per account and transfer
 * ({@code id, tid, delta}), so that "a transfer is applied on both sides or on neither" can be read off the
 * shards. Accounts are {@code (i - ACCOUNTS / 2) * STEP} for i below {@link #ACCOUNTS}, each starting at
 * {@link #INITIAL}.
 */
final class BankFixture implements AutoCloseable {
  static final String KS = "bank";
  static final int ACCOUNTS = 200;
  static final long STEP = 100;
  static final long INITIAL = 1_000;
  static final List<String> SHARDS = DirectoryFixture.SHARDS;

  final DirectoryFixture fixture;
  final String accounts;
  final String ledger;
  final ShardmapClient client;
  final ShardmapData data;
  /** This cluster's transaction namespace: its prepared transactions' gids carry it. */
  final String namespace;

  BankFixture() throws Exception {
    fixture = new DirectoryFixture("bank");
    accounts = "accounts_" + fixture.uid;
    ledger = "ledger_" + fixture.uid;
    namespace = TxnId.namespaceOf(fixture.prefix);
    Key zero = Key.newBuilder().setIntKey(0).build();
    fixture.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(KS)
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(accounts).setKeyColumn("id"))
            .addTables(ShardedTable.newBuilder().setName(ledger).setKeyColumn("id")))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(zero)).setShard("s1"))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(zero)).setShard("s2"))
        .build());
    for (int i = 0; i < 2; i++) {
      fixture.pg.shard(i).exec("CREATE TABLE " + accounts + " (id bigint PRIMARY KEY, balance bigint NOT NULL)");
      fixture.pg.shard(i).exec("CREATE TABLE " + ledger + " (id bigint NOT NULL, tid text NOT NULL, delta bigint NOT NULL, "
          + "PRIMARY KEY (id, tid))");
      try (Connection c = fixture.pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("INSERT INTO "
          + accounts + " SELECT g * " + STEP + ", " + INITIAL + " FROM generate_series(?, ?) g")) {
        ps.setLong(1, i == 0 ? -ACCOUNTS / 2 : 0);
        ps.setLong(2, i == 0 ? -1 : ACCOUNTS / 2 - 1);
        ps.executeUpdate();
      }
    }
    // The decisions table on every shard up front: the move is under test here, not the coordinator's
    // install of it on a shard's first use as decider (which would then meet the migrator's own DDL there).
    for (int i = 0; i < SHARDS.size(); i++) {
      for (String ddl : DecisionRows.ddl()) {
        fixture.pg.shard(i).exec(ddl);
      }
    }
    client = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + fixture.server.port()).keyspaces(KS)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(fixture.pg.shard(0).user())
        .password(fixture.pg.shard(0).password()).maxPoolSize(8).staleRouteTimeout(Duration.ofSeconds(10))
        .crossShardLockTimeout(Duration.ofMillis(300)).build());
  }

  static long account(int i) {
    return (i - ACCOUNTS / 2) * STEP;
  }

  MigratorOptions.Builder migratorOptions() {
    return fixture.migratorOptions();
  }

  /**
   * One transfer as one cross-shard transaction: {@code from}'s balance down and {@code to}'s up by
   * {@code amount}, and a ledger row with {@code tid} next to each. Throws AssertionError (rolling back) when
   * an account is not on the shard its route names. Returns the shards of the run that committed.
   */
  String transfer(long from, long to, long amount, String tid, Runnable eachRun) throws SQLException {
    return data.acrossShards(tx -> {
      eachRun.run();
      apply(tx, from, -amount, tid);
      apply(tx, to, amount, tid);
      return String.join(",", tx.shards());
    });
  }

  void apply(CrossShardTransaction tx, long id, long delta, String tid) throws SQLException {
    apply(tx.connection(KS, id), id, delta, tid);
  }

  /** Changes {@code id}'s balance by {@code delta} and writes its ledger row of {@code tid} on {@code c}. */
  void apply(Connection c, long id, long delta, String tid) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("UPDATE " + accounts + " SET balance = balance + ? WHERE id = ?")) {
      ps.setLong(1, delta);
      ps.setLong(2, id);
      if (ps.executeUpdate() != 1) {
        throw new AssertionError("account " + id + " is not on the shard its route names");
      }
    }
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + ledger + " (id, tid, delta) VALUES (?, ?, ?)")) {
      ps.setLong(1, id);
      ps.setString(2, tid);
      ps.setLong(3, delta);
      ps.executeUpdate();
    }
  }

  /** A ledger row as read on a shard. */
  record Entry(String shard, long id, long delta) {}

  /**
   * Reads every shard and checks that each account and each ledger row is on the shard that owns its id
   * (so nothing of a moved range is left on its source) and each account exactly once. Returns the ledger
   * by transfer id; {@code balances} receives every account's balance.
   */
  Map<String, List<Entry>> readAll(Map<Long, Long> balances) throws SQLException {
    Map<String, List<Entry>> byTid = new TreeMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      String shard = SHARDS.get(i);
      try (Connection c = fixture.pg.shard(i).connect(); Statement s = c.createStatement()) {
        try (ResultSet rs = s.executeQuery("SELECT to_regclass('" + accounts + "') IS NOT NULL")) {
          rs.next();
          if (!rs.getBoolean(1)) {
            continue;
          }
        }
        try (ResultSet rs = s.executeQuery("SELECT id, balance FROM " + accounts)) {
          while (rs.next()) {
            long id = rs.getLong(1);
            assertEquals(client.route(KS, id).shard(), shard, "account " + id + " is on " + shard + " but owned elsewhere");
            assertTrue(balances.put(id, rs.getLong(2)) == null, "account " + id + " twice");
          }
        }
        try (ResultSet rs = s.executeQuery("SELECT id, tid, delta FROM " + ledger)) {
          while (rs.next()) {
            long id = rs.getLong(1);
            assertEquals(client.route(KS, id).shard(), shard, "ledger row of account " + id + " (transfer "
                + rs.getString(2) + ") is on " + shard + " but the account is owned elsewhere");
            byTid.computeIfAbsent(rs.getString(2), t -> new ArrayList<>()).add(new Entry(shard, id, rs.getLong(3)));
          }
        }
      }
    }
    return byTid;
  }

  /**
   * The bank's invariants: every account present once on its owner, the sum of balances unchanged, each
   * transfer in the ledger exactly twice (debit and credit, summing to zero), and each balance equal to its
   * initial amount plus its ledger rows. Returns the ledger.
   */
  Map<String, List<Entry>> assertInvariants() throws SQLException {
    Map<Long, Long> balances = new HashMap<>();
    Map<String, List<Entry>> byTid = readAll(balances);
    List<String> problems = new ArrayList<>();
    if (balances.size() != ACCOUNTS) {
      problems.add(balances.size() + " accounts, not " + ACCOUNTS);
    }
    long total = balances.values().stream().mapToLong(Long::longValue).sum();
    if (total != ACCOUNTS * INITIAL) {
      problems.add("the bank's total is " + total + ", not " + ACCOUNTS * INITIAL);
    }
    Map<Long, Long> fromLedger = new HashMap<>();
    for (Map.Entry<String, List<Entry>> e : byTid.entrySet()) {
      List<Entry> rows = e.getValue();
      if (rows.size() != 2 || rows.get(0).delta() + rows.get(1).delta() != 0) {
        problems.add("transfer " + e.getKey() + " is not applied on both sides exactly once: " + rows);
      }
      for (Entry r : rows) {
        fromLedger.merge(r.id(), r.delta(), Long::sum);
      }
    }
    for (Map.Entry<Long, Long> b : balances.entrySet()) {
      long expected = INITIAL + fromLedger.getOrDefault(b.getKey(), 0L);
      if (expected != b.getValue()) {
        problems.add("account " + b.getKey() + " holds " + b.getValue() + " but its ledger says " + expected);
      }
    }
    assertEquals(List.of(), problems, "the bank's invariants");
    return byTid;
  }

  /** This cluster's prepared transactions on shard {@code i} (gids). */
  List<String> prepared(int i) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = fixture.pg.shard(i).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid "
             + "LIKE '" + TxnId.likePattern(namespace) + "'")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  /** This cluster's prepared transactions on every shard. */
  List<String> preparedAnywhere() throws SQLException {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      out.addAll(prepared(i));
    }
    return out;
  }

  /** {@code id}'s balance as read on shard {@code i} directly, or null when it has no such row (or table). */
  Long balanceOn(int i, long id) throws SQLException {
    try (Connection c = fixture.pg.shard(i).connect(); Statement s = c.createStatement()) {
      try (ResultSet rs = s.executeQuery("SELECT to_regclass('" + accounts + "') IS NULL")) {
        rs.next();
        if (rs.getBoolean(1)) {
          return null;
        }
      }
      try (ResultSet rs = s.executeQuery("SELECT balance FROM " + accounts + " WHERE id = " + id)) {
        return rs.next() ? rs.getLong(1) : null;
      }
    }
  }

  @Override
  public void close() throws Exception {
    try {
      for (int i = 0; i < SHARDS.size(); i++) {
        // Whatever a failed test left prepared would hold its locks past the tables' drop.
        try (Connection c = fixture.pg.shard(i).connect(); Statement s = c.createStatement()) {
          for (String gid : prepared(i)) {
            s.execute("ROLLBACK PREPARED '" + gid + "'");
          }
        }
      }
      data.close();
      client.close();
    } finally {
      fixture.close();
      for (int i = 0; i < SHARDS.size(); i++) {
        for (String t : List.of(accounts, ledger)) {
          fixture.pg.shard(i).exec("DROP TABLE IF EXISTS " + t + " CASCADE");
          fixture.pg.shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.fences') IS NOT NULL THEN "
              + "DELETE FROM shardmap.fences WHERE tbl = '" + t + "'; END IF; END $$");
        }
      }
    }
  }
}
