package io.shardmap.bench;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Shard;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Retained heap of a large INT64 range map: heap used after full collections, before and after building
 * it, the median of several trials. Baseline in the same run: a {@code TreeMap<Long, String>} of the same
 * range starts to their shard names, the structure one would write by hand (it keeps no range end, epoch
 * or revision, and it is mutable, so readers would need a lock or a copy).
 */
@Command(name = "heap", mixinStandardHelpOptions = true,
    description = "Retained heap of a range map of N INT64 ranges (as a directory server loads it) vs. a "
        + "TreeMap<Long,String> of the same ranges; median of several trials.")
public final class HeapCommand implements Callable<Integer> {
  @Option(names = "--ranges", defaultValue = "100000", description = "Ranges of the map (2-10000000).")
  int ranges;

  @Option(names = "--shards", defaultValue = "16", description = "Shards owning them, round-robin.")
  int shards;

  @Option(names = "--trials", defaultValue = "5", description = "Trials per structure (1-50); the median counts.")
  int trials;

  /** Median retained bytes per structure. */
  public record Result(int ranges, long snapshotBytes, long sharedNamesSnapshotBytes, long treeMapBytes) {
    public double ratio() {
      return (double) snapshotBytes / treeMapBytes;
    }
  }

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  public Result run(PrintStream out) throws InterruptedException {
    if (ranges < 2 || ranges > 10_000_000 || shards < 1 || shards > 1000 || trials < 1 || trials > 50) {
      throw new IllegalArgumentException("ranges 2-10000000, shards 1-1000, trials 1-50");
    }
    out.println(HeapMeasure.environment("heap"));
    long[] starts = RangeMaps.evenStarts(ranges);
    List<String> names = RangeMaps.shardNames(shards);
    List<Long> snapshot = new ArrayList<>();
    List<Long> shared = new ArrayList<>();
    List<Long> tree = new ArrayList<>();
    for (int t = 0; t < trials; t++) {
      // Interleaved, so a slow drift of the heap baseline hits all three alike.
      snapshot.add(HeapMeasure.retained(() -> RangeMaps.rangeSnapshot(ranges, shards)));
      shared.add(HeapMeasure.retained(() -> sharedNamesSnapshot(starts, names)));
      tree.add(HeapMeasure.retained(() -> HeapMeasure.treeMap(starts, names)));
      out.printf(Locale.ROOT, "  trial %d: snapshot %,d B, snapshot (shared shard names) %,d B, TreeMap %,d B%n",
          t + 1, snapshot.get(t), shared.get(t), tree.get(t));
    }
    Result r = new Result(ranges, HeapMeasure.median(snapshot), HeapMeasure.median(shared),
        HeapMeasure.median(tree));
    out.println();
    out.print(Report.table(HeapMeasure.HEADER, List.of(
        row("DirectorySnapshot, loaded from etcd records", r.snapshotBytes(), r),
        row("DirectorySnapshot, shard names shared", r.sharedNamesSnapshotBytes(), r),
        row("TreeMap<Long,String> (baseline)", r.treeMapBytes(), r))));
    out.println("end | load average " + Report.loadAverage());
    return r;
  }

  private static List<String> row(String name, long bytes, Result r) {
    return HeapMeasure.row(name, bytes, r.ranges(), r.treeMapBytes());
  }

  /**
   * The same map built from changes whose shard names are the same String objects (what a loader that
   * interned names would hold); the difference to the loaded snapshot is the per-range name copies.
   */
  private static DirectorySnapshot sharedNamesSnapshot(long[] starts, List<String> names) {
    List<MapChange> changes = new ArrayList<>(starts.length + names.size() + 1);
    for (int s = 0; s < names.size(); s++) {
      Shard sh = RangeMaps.shard(names.get(s), 5432 + s);
      changes.add(MapChange.newBuilder().setShard(sh).setModRevision(RangeMaps.LOAD_REVISION).build());
    }
    changes.add(MapChange.newBuilder().setKeyspace(RangeMaps.KEYSPACE).setSpec(RangeMaps.spec(RangeMaps.KEYSPACE))
        .setModRevision(RangeMaps.LOAD_REVISION).build());
    for (int i = 0; i < starts.length; i++) {
      changes.add(MapChange.newBuilder().setKeyspace(RangeMaps.KEYSPACE)
          .setRange(RangeMaps.range(starts, i, names.get(i % names.size()), 1))
          .setModRevision(RangeMaps.LOAD_REVISION).build());
    }
    return DirectorySnapshot.empty(0).apply(RangeMaps.LOAD_REVISION, changes);
  }
}
