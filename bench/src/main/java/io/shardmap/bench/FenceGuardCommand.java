package io.shardmap.bench;

import io.shardmap.client.internal.query.FenceGuard;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What the fence check of a cross-shard query's part costs (issue 12, item 3): the first statement of a
 * REPEATABLE READ transaction on one local PostgreSQL, timed from before it is sent until its answer is
 * decided, in three cases against a same-run baseline of {@code SELECT 1}: a shard without a fences table
 * (the probe alone), a shard with one (the read alone, the guard having seen the table; fence rows of the
 * keyspace and of others), and the first check on such a shard (probe and read). Cases alternate by round.
 */
@Command(name = "fence-guard", mixinStandardHelpOptions = true,
    description = {"The first statement of a cross-shard query's part: SELECT 1 (baseline) against the fence check "
        + "(FenceGuard) on a shard without fences, with fences, and its first check there, on one local PostgreSQL.",
        "Prints the mean, median and p99 latency of each."})
public final class FenceGuardCommand implements Callable<Integer> {
  @Option(names = "--iterations", defaultValue = "5000", description = "Timed statements per case per round.")
  int iterations;

  @Option(names = "--warmup", defaultValue = "1000", description = "Untimed statements per case per round, first.")
  int warmup;

  @Option(names = "--rounds", defaultValue = "3", description = "Rounds; each runs every case, order rotating.")
  int rounds;

  @Option(names = "--fences", defaultValue = "20", description = "Fence rows of the query's keyspace (as many again "
      + "of another keyspace).")
  int fences;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  interface First {
    void run(Connection c) throws SQLException;
  }

  private record Case(String name, PgInstance db, First first) {}

  void run(PrintStream out) throws Exception {
    out.println("fence-guard | " + Report.environment());
    try (PostgresFixture pg = PostgresFixture.startNew(1)) {
      PgInstance admin = pg.shard(0);
      admin.exec("CREATE DATABASE bench_fenced");
      admin.exec("CREATE DATABASE bench_plain");
      PgInstance fenced = new PgInstance(admin.host(), admin.port(), "bench_fenced", admin.user(), admin.password());
      PgInstance plain = new PgInstance(admin.host(), admin.port(), "bench_plain", admin.user(), admin.password());
      try (Connection c = fenced.connect(); Statement s = c.createStatement()) {
        s.execute("CREATE SCHEMA shardmap");
        s.execute("CREATE TABLE shardmap.fences (tbl text NOT NULL, migration text NOT NULL, key_column text NOT NULL, "
            + "lo bigint, hi bigint, keyspace text NOT NULL, epoch bigint NOT NULL, cond_new text, cond_old text, "
            + "unit_text text, unit_spec text, pass_epoch bigint, armed_by text, unit_id text, PRIMARY KEY (tbl, migration))");
        // Ranges of 1000 keys above 1,000,000 that left this shard at epoch 1 (the map routes them elsewhere).
        s.execute("INSERT INTO shardmap.fences (tbl, migration, key_column, lo, hi, keyspace, epoch, unit_id) "
            + "SELECT 'users', ks || g, 'id', 1000000 + g * 1000, 1000000 + (g + 1) * 1000, ks, 1, "
            + "'v1:int64:' || (1000000 + g * 1000) || ':' || (1000000 + (g + 1) * 1000) "
            + "FROM generate_series(0, " + (fences - 1) + ") g, (VALUES ('users'), ('other')) k(ks)");
      }
      KeyspaceMap map = map();
      FenceGuard guard = new FenceGuard();
      FenceGuard plainGuard = new FenceGuard(); // its own: a guard knows shards by name, and both are "s1" here
      List<Case> cases = List.of(
          new Case("SELECT 1 (baseline)", fenced, c -> {
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
              rs.next();
            }
          }),
          new Case("check, no fences table (probe)", plain, c -> require(plainGuard.check(c, "users", "s1", map))),
          new Case("check, " + fences + " fences of the keyspace (read)", fenced,
              c -> require(guard.check(c, "users", "s1", map))),
          new Case("first check there (probe + read)", fenced,
              c -> require(new FenceGuard().check(c, "users", "s1", map))));
      out.printf("setup:   1 PostgreSQL 15 server on loopback; one connection per case, REPEATABLE READ, autocommit "
          + "off; per iteration: the first statement, then ROLLBACK (not timed); %d fence rows of the keyspace and %d "
          + "of another%n", fences, fences);
      Map<Case, List<Long>> results = new LinkedHashMap<>();
      cases.forEach(k -> results.put(k, new ArrayList<>()));
      Map<Case, Connection> conns = new LinkedHashMap<>();
      try {
        for (Case k : cases) {
          Connection c = k.db().connect();
          c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
          c.setAutoCommit(false);
          conns.put(k, c);
        }
        for (int r = 0; r < rounds; r++) {
          for (int i = 0; i < cases.size(); i++) {
            Case k = cases.get((i + r) % cases.size());
            Connection c = conns.get(k);
            for (int w = 0; w < warmup; w++) {
              k.first().run(c);
              c.rollback();
            }
            for (int n = 0; n < iterations; n++) {
              long t0 = System.nanoTime();
              k.first().run(c);
              results.get(k).add(System.nanoTime() - t0);
              c.rollback();
            }
          }
        }
      } finally {
        for (Connection c : conns.values()) {
          c.close();
        }
      }
      List<List<String>> table = new ArrayList<>();
      double base = 0;
      for (Map.Entry<Case, List<Long>> e : results.entrySet()) {
        long[] sorted = e.getValue().stream().mapToLong(Long::longValue).sorted().toArray();
        double mean = e.getValue().stream().mapToLong(Long::longValue).average().orElse(0);
        if (base == 0) {
          base = mean;
        }
        table.add(List.of(e.getKey().name(), String.format("%,d", sorted.length), Report.fmt(mean / 1000.0, 1),
            Report.micros(Report.quantile(sorted, 0.5)), Report.micros(Report.quantile(sorted, 0.99)),
            Report.fmt((mean - base) / 1000.0, 1)));
      }
      out.println(Report.table(List.of("first statement", "runs", "mean us", "p50", "p99", "mean - baseline us"), table));
    }
  }

  private static void require(FenceGuard.Verdict v) {
    if (v.stale()) {
      throw new IllegalStateException("the bench's map should be fresh: " + v.message());
    }
  }

  /** Keys [..1,000,000) on s1 at epoch 1, [1,000,000..) on s2 at epoch 2: every fence is of a unit that left s1. */
  private static KeyspaceMap map() {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build();
    Key split = Key.newBuilder().setIntKey(1_000_000).build();
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, List.of(
        MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder().setShard("s1").setEpoch(1)
            .setRange(io.shardmap.proto.v1.KeyRange.newBuilder().setEnd(split))).build(),
        MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder().setShard("s2").setEpoch(2)
            .setRange(io.shardmap.proto.v1.KeyRange.newBuilder().setStart(split))).build()));
  }
}
