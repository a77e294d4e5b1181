package io.shardmap.bench;

import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.FleetServiceGrpc.FleetServiceBlockingStub;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What a size estimate costs against an exact count (issue 16, docs/sizes.md): RefreshSizes through gRPC on one
 * directory server, one local PostgreSQL shard holding one table of {@code --rows} rows, declared by a range
 * keyspace of {@code --units} equal ranges (exact: a count(*) per range) and a hash keyspace of as many buckets
 * (exact: every key streamed and routed). Rounds alternate the four cases; each call is timed from the client.
 */
@Command(name = "sizes", mixinStandardHelpOptions = true,
    description = {"RefreshSizes estimate against exact count on one shard of --rows rows, for a range and a hash "
        + "keyspace of --units units.", "Prints the median and max time of each and the estimates' largest error."})
public final class SizesCommand implements Callable<Integer> {
  @Option(names = "--rows", defaultValue = "1000000", description = "Rows in the table (1,000 to 100,000,000).")
  long rows;

  @Option(names = "--units", defaultValue = "16", description = "Ranges and hash buckets (1 to 4096).")
  int units;

  @Option(names = "--rounds", defaultValue = "5", description = "Rounds; each runs every case once (1 to 100).")
  int rounds;

  static final String TABLE = "sized";

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  void run(PrintStream out) throws Exception {
    if (rows < 1_000 || rows > 100_000_000 || units < 1 || units > 4096 || rounds < 1 || rounds > 100) {
      throw new IllegalArgumentException("rows 1,000-100,000,000, units 1-4096, rounds 1-100");
    }
    out.println("sizes | " + Report.environment());
    try (PostgresFixture pg = PostgresFixture.startNew(1);
         InMemoryMetaStore store = new InMemoryMetaStore();
         ShardmapFleet fleet = ShardmapFleet.builder().store(store).postgres(pg).shards(1).sockets()
             .productionIntervals().prefix("/bench")
             .serverOptions(o -> o.resolver(pg.shard(0).user(), pg.shard(0).password())
                 .sizeInterval(Duration.ofDays(7))).build()) {
      long t0 = System.nanoTime();
      pg.shard(0).exec("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, payload text NOT NULL)");
      pg.shard(0).exec("INSERT INTO " + TABLE + " SELECT g, md5(g::text) FROM generate_series(0, " + (rows - 1)
          + ") g");
      pg.shard(0).exec("VACUUM ANALYZE " + TABLE);
      out.printf("setup:   1 PostgreSQL 15 server on loopback, table %s (id bigint PRIMARY KEY, payload text: 32 "
          + "characters) of %,d rows in key order, VACUUM ANALYZE; loaded in %.1f s; one directory server; "
          + "keyspaces 'ranged' (%d equal ranges) and 'hashed' (%d buckets) both declaring it%n", TABLE, rows,
          (System.nanoTime() - t0) / 1e9, units, units);
      ShardedTable table = ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id").build();
      CreateKeyspaceRequest.Builder ranged = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName("ranged").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE).addTables(table));
      for (int u = 0; u < units; u++) {
        KeyRange.Builder r = KeyRange.newBuilder();
        if (u > 0) {
          r.setStart(Key.newBuilder().setIntKey(rows * u / units));
        }
        if (u < units - 1) {
          r.setEnd(Key.newBuilder().setIntKey(rows * (u + 1) / units));
        }
        ranged.addRanges(RangeAssignment.newBuilder().setRange(r).setShard("s1"));
      }
      fleet.admin().createKeyspace(ranged.build());
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
              .setName("hashed").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_HASH).addTables(table))
          .addAllHashBuckets(Collections.nCopies(units, "s1")).build());
      FleetServiceBlockingStub fleetRpc = FleetServiceGrpc.newBlockingStub(fleet.channel(0));
      String[][] cases = {{"ranged", "estimate"}, {"ranged", "exact"}, {"hashed", "estimate"}, {"hashed", "exact"}};
      List<List<Long>> times = new ArrayList<>();
      KeyspaceSizes[] last = new KeyspaceSizes[cases.length];
      double[] worstError = new double[cases.length];
      for (int i = 0; i < cases.length; i++) {
        times.add(new ArrayList<>());
      }
      for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < cases.length; k++) {
          int c = (k + r) % cases.length;
          long s = System.nanoTime();
          last[c] = fleetRpc.withDeadlineAfter(30, TimeUnit.MINUTES).refreshSizes(RefreshSizesRequest.newBuilder()
              .setKeyspace(cases[c][0]).setExact(cases[c][1].equals("exact")).build()).getSizes();
          times.get(c).add(System.nanoTime() - s);
        }
        // The estimate of this round against the exact count of this round (the data does not change).
        for (int c = 0; c < cases.length; c += 2) {
          worstError[c] = Math.max(worstError[c], worstError(last[c], last[c + 1]));
        }
      }
      List<List<String>> rowsOut = new ArrayList<>();
      for (int c = 0; c < cases.length; c++) {
        long[] sorted = times.get(c).stream().mapToLong(Long::longValue).sorted().toArray();
        rowsOut.add(List.of(cases[c][0], cases[c][1], Integer.toString(sorted.length),
            Report.millis(Report.quantile(sorted, 0.5), 0), Report.millis(sorted[sorted.length - 1], 0),
            c % 2 == 0 ? Report.fmt(worstError[c] * 100, 2) + " %" : "-"));
      }
      out.println(Report.table(List.of("keyspace", "mode", "runs", "p50 ms", "max ms", "worst unit error"), rowsOut));
      out.printf("rows: estimate %,d, exact %,d (range keyspace, last round)%n", last[0].getShards(0).getRows(),
          last[1].getShards(0).getRows());
    }
  }

  /** The largest relative error of an estimate's unit rows against exact counts of the same units. */
  static double worstError(KeyspaceSizes estimate, KeyspaceSizes exact) {
    List<UnitSize> e = estimate.getUnitsList();
    List<UnitSize> x = exact.getUnitsList();
    if (e.size() != x.size()) {
      throw new IllegalStateException("unit counts differ: " + e.size() + " and " + x.size());
    }
    double worst = 0;
    for (int i = 0; i < e.size(); i++) {
      long truth = x.get(i).getRows();
      if (truth > 0) {
        worst = Math.max(worst, Math.abs(e.get(i).getRows() - truth) / (double) truth);
      }
    }
    return worst;
  }
}
