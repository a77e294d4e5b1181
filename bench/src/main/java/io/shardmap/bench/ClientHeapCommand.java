package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.ShardmapClient;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What a real ShardmapClient retains after loading a large INT64 range map from a directory server: heap
 * used after full collections before starting the client and once it has loaded the map (the client kept
 * reachable), median of several trials. The server runs in a child JVM so that nothing but the client
 * changes this JVM's heap. A client of a 2-range keyspace on the same server gives the client's fixed cost
 * (channel, threads, buffers); the difference is the map as the client holds it. One more client stays
 * open throughout, so that grpc-java's shared resources exist before every measurement. Baseline in the same run:
 * a {@code TreeMap<Long, String>} of the same range starts to shard names.
 */
@Command(name = "client-heap", mixinStandardHelpOptions = true,
    description = "Retained heap of a ShardmapClient that has loaded an N-range INT64 keyspace from a directory "
        + "server (in a child JVM), minus a client of a 2-range keyspace, vs. a TreeMap<Long,String> of the "
        + "same ranges; median of several trials.")
public final class ClientHeapCommand implements Callable<Integer> {
  static final String TINY = "tiny";

  @Option(names = "--ranges", defaultValue = "100000", description = "Ranges of the big keyspace (2-2000000).")
  int ranges;

  @Option(names = "--shards", defaultValue = "16", description = "Shards owning them, round-robin.")
  int shards;

  @Option(names = "--trials", defaultValue = "5", description = "Trials per structure (1-50); the median counts.")
  int trials;

  public record Result(int ranges, long clientBytes, long tinyClientBytes, long serverSnapshotBytes,
                       long treeMapBytes) {
    /** What the client retains for the map itself. */
    public long mapBytes() {
      return clientBytes - tinyClientBytes;
    }

    public double ratio() {
      return (double) mapBytes() / treeMapBytes;
    }
  }

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  public Result run(PrintStream out) throws Exception {
    if (ranges < 2 || ranges > 2_000_000 || shards < 1 || shards > 1000 || trials < 1 || trials > 50) {
      throw new IllegalArgumentException("ranges 2-2000000, shards 1-1000, trials 1-50");
    }
    out.println(HeapMeasure.environment("client-heap"));
    Path logDir = Files.createTempDirectory("shardmap-bench-heap");
    try (Closer closer = new Closer()) {
      // In-memory store: a server on etcd cannot load more than ~37,000 ranges (docs/benchmarks.md).
      ServerProcess server = closer.add(ServerProcess.startInMemory("directory", logDir, shards,
          java.util.Map.of(RangeMaps.KEYSPACE, ranges, TINY, 2)));
      out.println("server: a directory server in a child JVM (" + MemoryDirectoryMain.class.getSimpleName()
          + ": InMemoryMetaStore, default ServerOptions); keyspace '" + RangeMaps.KEYSPACE + "' " + ranges
          + " INT64 ranges over " + shards + " shards, keyspace '" + TINY + "' 2 ranges, written as records "
          + "before the server loaded them");
      ClientOptions big = ClientOptions.builder().targets(server.target()).keyspaces(RangeMaps.KEYSPACE).build();
      ClientOptions tiny = ClientOptions.builder().targets(server.target()).keyspaces(TINY).build();
      // Class loading and statics once, before anything is measured. One client stays open throughout:
      // grpc-java releases its shared event loops about a second after the last channel closes, and every
      // measured client would otherwise pay for creating them again.
      try (ShardmapClient w1 = ShardmapClient.start(big)) {
        if (w1.snapshot().ranges(RangeMaps.KEYSPACE).size() != ranges) {
          throw new IllegalStateException("the client did not load " + ranges + " ranges");
        }
      }
      closer.add(ShardmapClient.start(tiny));
      long[] starts = RangeMaps.evenStarts(ranges);
      List<String> names = RangeMaps.shardNames(shards);
      List<Long> client = new ArrayList<>();
      List<Long> tinyClient = new ArrayList<>();
      List<Long> snapshot = new ArrayList<>();
      List<Long> tree = new ArrayList<>();
      for (int t = 0; t < trials; t++) {
        // Interleaved, so a slow drift of the heap baseline hits all alike.
        client.add(retainedClient(big));
        tinyClient.add(retainedClient(tiny));
        snapshot.add(HeapMeasure.retained(() -> RangeMaps.rangeSnapshot(ranges, shards)));
        tree.add(HeapMeasure.retained(() -> HeapMeasure.treeMap(starts, names)));
        out.printf(Locale.ROOT, "  trial %d: client %,d B, client of '%s' %,d B, server snapshot %,d B, TreeMap %,d B%n",
            t + 1, client.get(t), TINY, tinyClient.get(t), snapshot.get(t), tree.get(t));
      }
      Result r = new Result(ranges, HeapMeasure.median(client), HeapMeasure.median(tinyClient),
          HeapMeasure.median(snapshot), HeapMeasure.median(tree));
      out.println();
      out.print(Report.table(HeapMeasure.HEADER, List.of(
          row("ShardmapClient following '" + RangeMaps.KEYSPACE + "' (whole client)", r.clientBytes(), r),
          row("ShardmapClient following '" + TINY + "' (2 ranges: fixed cost)", r.tinyClientBytes(), r),
          row("difference: the map as the client holds it", r.mapBytes(), r),
          row("DirectorySnapshot as a server loads it (reference)", r.serverSnapshotBytes(), r),
          row("TreeMap<Long,String> (baseline)", r.treeMapBytes(), r))));
      out.println("end | load average " + Report.loadAverage());
      return r;
    } finally {
      try (var s = Files.walk(logDir)) {
        s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  /** Heap retained by a started client (it has loaded its map), measured while it runs; then closed. */
  private static long retainedClient(ClientOptions options) throws InterruptedException {
    long before = HeapMeasure.settledHeapUsed();
    ShardmapClient c = ShardmapClient.start(options);
    try {
      long after = HeapMeasure.settledHeapUsed();
      return after - before;
    } finally {
      c.close();
    }
  }

  private static List<String> row(String name, long bytes, Result r) {
    return HeapMeasure.row(name, bytes, r.ranges(), r.treeMapBytes());
  }
}
