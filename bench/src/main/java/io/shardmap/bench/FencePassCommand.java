package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.client.SqlWork;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.migrator.internal.RangeTableMove;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What a route declaration costs (issue 10, item 1): SDK transactions of one point UPDATE, one at a time,
 * on one PostgreSQL shard, against keys in four states: a table with no fence trigger (baseline); a
 * fenced table, key outside every fence (what a fence costs writes it does not refuse); a key whose owner
 * still fences it from before it came back (route epoch 1, fence at epoch 0), so every call is refused
 * once and rerun with its route declared; the same with idempotent autocommit work (session-level
 * declaration, cleared afterwards). Phases alternate; per phase the mean and the median latency of a call.
 */
@Command(name = "fence-pass", mixinStandardHelpOptions = true,
    description = {"SDK point-write transactions on keys outside any fence, unfenced keys of a fenced table, and "
        + "keys behind an old fence (refused once, then rerun with the route declared), on one local PostgreSQL.",
        "Prints the mean and median call latency of each, and the declared rerun's extra cost."})
public final class FencePassCommand implements Callable<Integer> {
  static final String KEYSPACE = "users";

  @Option(names = "--rows", defaultValue = "10000", description = "Rows per table (keys 0..rows-1).")
  int rows;

  @Option(names = "--seconds", defaultValue = "3", description = "Measured time of each phase.")
  double seconds;

  @Option(names = "--warmup-seconds", defaultValue = "1", description = "Warm-up before each phase.")
  double warmupSeconds;

  @Option(names = "--rounds", defaultValue = "3", description = "Rounds; each runs every case, order rotating.")
  int rounds;

  @Override
  public Integer call() throws Exception {
    return run(System.out) ? 0 : 1;
  }

  private record Case(String name, String table, long lo, Idempotence autocommit) {}

  boolean run(PrintStream out) throws Exception {
    out.println("fence-pass | " + Report.environment());
    try (PostgresFixture pg = PostgresFixture.startNew(1);
         InMemoryMetaStore store = new InMemoryMetaStore();
         ShardmapFleet fleet = ShardmapFleet.builder().store(store).postgres(pg).shards(1).sockets()
             .productionIntervals().prefix("/bench").build()) {
      PgInstance p = pg.shard(0);
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
          .addTables(ShardedTable.newBuilder().setName("bench_fenced").setKeyColumn("id"))).addRangeShards("s1")
          .build());
      try (Connection c = p.connect(); Statement s = c.createStatement()) {
        for (String t : List.of("bench_plain", "bench_fenced")) {
          s.execute("CREATE TABLE " + t + " (id bigint PRIMARY KEY, v bigint NOT NULL)");
          s.execute("INSERT INTO " + t + " SELECT g, 0 FROM generate_series(0, " + (rows - 1) + ") g");
          s.execute("ANALYZE " + t);
        }
        // Keys [rows/2, rows) left this shard at epoch 0 and came back at epoch 1 (the keyspace's epoch):
        // the old fence is still up, as between etcd's owner switch and the migrator's lift.
        Fences.ensureSchema(c);
        List<RangeTableMove> unit = List.of(new RangeTableMove("bench", KEYSPACE, "bench_fenced", "id", (long) rows / 2,
            null));
        if (!Fences.fence(c, unit, 0, Duration.ofSeconds(10))) {
          throw new IllegalStateException("could not fence");
        }
        Fences.arm(c, unit, 1); // as the move back to this shard does

      }
      try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(fleet.targets())
          .keyspaces(KEYSPACE).build());
           ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(p.user()).password(p.password())
               .maxPoolSize(2).minIdle(2).build())) {
        out.printf("setup:   1 PostgreSQL 15 server on loopback, tables of %,d rows; 1 client thread, one SDK call at a "
            + "time (UPDATE ... SET v = v + 1 WHERE id = ?); route epoch %d, old fence at epoch 0 over keys [%d, %d)%n",
            rows, client.route(KEYSPACE, 0).epoch(), rows / 2, rows);
        List<Case> cases = List.of(
            new Case("no fence trigger (baseline)", "bench_plain", 0, null),
            new Case("fenced table, key outside the fence", "bench_fenced", 0, null),
            new Case("old fence: refused, rerun declared (transaction)", "bench_fenced", rows / 2, null),
            new Case("old fence: refused, rerun declared (idempotent autocommit)", "bench_fenced", rows / 2,
                Idempotence.IDEMPOTENT));
        Map<Case, List<long[]>> results = new LinkedHashMap<>();
        cases.forEach(k -> results.put(k, new ArrayList<>()));
        long errors = 0;
        for (int r = 0; r < rounds; r++) {
          for (int i = 0; i < cases.size(); i++) {
            Case k = cases.get((i + r) % cases.size());
            phase(data, k, warmupSeconds, new SplittableRandom(r));
            long[] lat = phase(data, k, seconds, new SplittableRandom(100 + r));
            results.get(k).add(lat);
          }
        }
        List<List<String>> table = new ArrayList<>();
        double base = 0;
        double inside = 0;
        for (Map.Entry<Case, List<long[]>> e : results.entrySet()) {
          long n = 0;
          long sum = 0;
          List<Long> all = new ArrayList<>();
          for (long[] lat : e.getValue()) {
            for (long l : lat) {
              if (l < 0) {
                errors++;
                continue;
              }
              n++;
              sum += l;
              all.add(l);
            }
          }
          long[] sorted = all.stream().mapToLong(Long::longValue).sorted().toArray();
          double mean = n == 0 ? 0 : (double) sum / n;
          if (e.getKey().lo() == 0 && e.getKey().table().equals("bench_plain")) {
            base = mean;
          } else if (e.getKey().lo() == 0) {
            inside = mean;
          }
          table.add(List.of(e.getKey().name(), String.format("%,d", n), Report.fmt(mean / 1000.0, 1),
              Report.micros(Report.quantile(sorted, 0.5)), Report.micros(Report.quantile(sorted, 0.99)),
              base == 0 ? "" : Report.fmt(mean / base, 2)));
        }
        out.println(Report.table(List.of("keys", "calls", "mean us", "p50", "p99", "x baseline"), table));
        out.printf("a fence trigger on writes it does not refuse: %+.1f us per call; failed calls: %d%n",
            (inside - base) / 1000.0, errors);
        return errors == 0;
      }
    }
  }

  /** One phase: latencies in ns, -1 for a failed call. */
  private long[] phase(ShardmapData data, Case k, double secs, SplittableRandom rnd) {
    long end = System.nanoTime() + (long) (secs * 1e9);
    long[] lat = new long[1 << 20];
    int n = 0;
    int span = rows / 2;
    while (System.nanoTime() < end && n < lat.length) {
      long key = k.lo() + rnd.nextInt(span);
      SqlWork<Integer> w = c -> {
        try (PreparedStatement ps = c.prepareStatement("UPDATE " + k.table() + " SET v = v + 1 WHERE id = ?")) {
          ps.setLong(1, key);
          return ps.executeUpdate();
        }
      };
      long t0 = System.nanoTime();
      try {
        int changed = k.autocommit() == null ? data.inTransaction(KEYSPACE, key, w)
            : data.withConnection(KEYSPACE, key, k.autocommit(), w);
        lat[n++] = changed == 1 ? System.nanoTime() - t0 : -1;
      } catch (SQLException | RuntimeException e) {
        lat[n++] = -1;
      }
    }
    return java.util.Arrays.copyOf(lat, n);
  }
}
