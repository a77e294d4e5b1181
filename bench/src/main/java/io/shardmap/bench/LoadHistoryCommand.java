package io.shardmap.bench;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.RoutingTable;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.server.internal.LoadHistory;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Memory of the directory server's load history (docs/load.md) for a large range map: a {@link LoadHistory}
 * filled with a full retention ladder (28 days: 1-hour columns, then 10-minute columns for 4 days, then
 * 1-minute columns for 6 hours, the last 17 minutes still open) from reports over the map with skewed load,
 * as the SDK cuts them (at most 4096 bands: the hot ranges alone, the rest grouped). One report per column
 * of the rung its time falls in: the ladder sums reports, so more reports per column change the counts, not
 * the bands. Retained heap measured as the heap commands do ({@link HeapMeasure}), against a same-run
 * baseline: the same ladder over a small map.
 */
@Command(name = "load-history", mixinStandardHelpOptions = true,
    description = "Retained heap of the directory server's load history with a full retention ladder over a "
        + "range map of N ranges with skewed load, vs. the same over a small map.")
public final class LoadHistoryCommand implements Callable<Integer> {
  @Option(names = "--ranges", defaultValue = "100000", description = "Ranges of the map (2-10000000).")
  int ranges;

  @Option(names = "--baseline-ranges", defaultValue = "1000", description = "Ranges of the baseline map.")
  int baselineRanges;

  @Option(names = "--max-bands", defaultValue = "4096", description = "Bands per column at most (the server's "
      + "--load-max-bands).")
  int maxBands;

  @Option(names = "--hot", defaultValue = "256", description = "Hot ranges per report (Zipf-skewed, drifting).")
  int hot;

  @Option(names = "--trials", defaultValue = "3", description = "Trials per map (1-20); the median counts.")
  int trials;

  static final long MIN = 60_000;
  static final long HOUR = 60 * MIN;
  static final long DAY = 24 * HOUR;

  /** One measured history. */
  record Filled(LoadHistory history, int reports, long fillNanos) {}

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  void run(PrintStream out) throws InterruptedException {
    if (ranges < 2 || ranges > 10_000_000 || baselineRanges < 2 || trials < 1 || trials > 20 || maxBands < 16
        || hot < 0 || hot > 4000) {
      throw new IllegalArgumentException("ranges 2-10000000, trials 1-20, max-bands >= 16, hot 0-4000");
    }
    out.println(HeapMeasure.environment("load-history"));
    List<List<String>> rows = new ArrayList<>();
    rows.add(List.of("map", "reports", "columns", "bands", "retained bytes (median)", "bytes/column",
        "bytes/band", "estimate (gauge)", "fill s"));
    for (int n : new int[] {baselineRanges, ranges}) {
      DirectorySnapshot snap = RangeMaps.rangeSnapshot(n, 16);
      List<Long> bytes = new ArrayList<>();
      Filled[] last = new Filled[1];
      for (int t = 0; t < trials; t++) {
        long seed = t0Seed(t);
        last[0] = null; // the previous trial's history must not count in this one's "before"
        bytes.add(HeapMeasure.retained(() -> {
          last[0] = fill(snap, seed);
          return last[0];
        }));
      }
      long median = HeapMeasure.median(bytes);
      LoadHistory h = last[0].history();
      int columns = h.columnCount(RangeMaps.KEYSPACE);
      long bands = h.bandCount();
      rows.add(List.of(n + " ranges", String.valueOf(last[0].reports()), String.valueOf(columns),
          String.valueOf(bands), Report.fmt(median, 0), Report.fmt((double) median / columns, 0),
          Report.fmt((double) median / bands, 1), Report.fmt(h.estimatedBytes(), 0),
          Report.fmt(last[0].fillNanos() / 1e9, 1)));
    }
    for (List<String> r : rows) {
      out.println(String.join(" | ", r));
    }
  }

  private static long t0Seed(int trial) {
    return 42 + trial;
  }

  /** A history over {@code snap} with a full ladder of reports, the clock ending now. */
  Filled fill(DirectorySnapshot snap, long seed) {
    long end = 20_000 * DAY;
    AtomicLong clock = new AtomicLong(end - 28 * DAY);
    LoadHistory h = LoadHistory.over(LoadHistory.Settings.defaults().withMaxBands(maxBands), clock::get, () -> snap);
    RoutingTable table = snap.keyspaces().get(RangeMaps.KEYSPACE).table();
    SplittableRandom rnd = new SplittableRandom(seed);
    int units = table.unitCount();
    // The hot set drifts: a random walk of a window of ranges, Zipf weights within it.
    int hotBase = rnd.nextInt(units);
    int reports = 0;
    long t0 = System.nanoTime();
    for (long t = end - 28 * DAY; t < end; ) {
      long age = end - t;
      long step = age > 4 * DAY ? HOUR : age > 6 * HOUR ? 10 * MIN : MIN;
      clock.set(t + step);
      hotBase = Math.floorMod(hotBase + rnd.nextInt(-50, 51), units);
      h.record(report(table, rnd, hotBase, t + step));
      h.maintain();
      reports++;
      t += step;
    }
    return new Filled(h, reports, System.nanoTime() - t0);
  }

  /** One report as the SDK cuts it: hot units alone, the others in even groups, at most 4096 bands. */
  KeyspaceLoad report(RoutingTable table, SplittableRandom rnd, int hotBase, long endMs) {
    int units = table.unitCount();
    boolean[] isHot = new boolean[units];
    long[] hotCalls = new long[units];
    for (int i = 0; i < hot; i++) {
      // Zipf-like: rank r gets ~1/r of the load; ranks spread over a window after hotBase.
      int u = Math.floorMod(hotBase + (int) (rnd.nextDouble() * rnd.nextDouble() * Math.min(units, 20_000)), units);
      isHot[u] = true;
      hotCalls[u] += 1_000_000 / (i + 1);
    }
    int groupBudget = 4096 - 2 * hot - 1;
    int group = Math.max(1, (units + groupBudget - 1) / Math.max(1, groupBudget));
    KeyspaceLoad.Builder b = KeyspaceLoad.newBuilder().setKeyspace(RangeMaps.KEYSPACE).setStartUnixMs(endMs - 60_000)
        .setEndUnixMs(endMs);
    int u = 0;
    while (u < units) {
      if (isHot[u]) {
        b.addBands(band(table, u, u, hotCalls[u], rnd));
        u++;
        continue;
      }
      int v = u;
      while (v + 1 < units && v + 1 - u < group && !isHot[v + 1]) {
        v++;
      }
      b.addBands(band(table, u, v, (v - u + 1) * (1 + rnd.nextInt(20)), rnd));
      u = v + 1;
    }
    return b.build();
  }

  private static LoadBand band(RoutingTable t, int from, int to, long calls, SplittableRandom rnd) {
    long writes = calls / 4;
    return LoadBand.newBuilder().setStart(ByteString.copyFrom(t.unitStart(from)))
        .setEnd(ByteString.copyFrom(t.unitEnd(to))).setUnits(to - from + 1).setReads(calls - writes)
        .setWrites(writes).setBusyMicros(calls * (200 + rnd.nextInt(300))).setErrors(calls / 1000).build();
  }
}
