package io.shardmap.client;

import io.shardmap.core.ShardmapException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.time.Duration;
import java.util.List;

/**
 * The child JVM of {@link CrossShardMemoryTest}, started with a small heap: runs one cross-shard query
 * through the SDK and prints what it got ({@code row ...} lines, or {@code refused CODE message}), then
 * {@code peak-heap-mib N} (the heap pools' peak usage). Arguments: directory targets (comma-separated), the
 * PostgreSQL role, {@code deep-offset TABLE} or {@code group-cap TABLE}.
 */
final class CrossShardMemoryProbe {
  private CrossShardMemoryProbe() {}

  public static void main(String[] args) throws Exception {
    List<String> targets = List.of(args[0].split(","));
    String table = args[3];
    try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(targets).keyspaces("users")
        .build());
         ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(args[1]).build())) {
      CrossShardQuery q = switch (args[2]) {
        // Each shard streams its part of the order; the merge skips the offset while merging.
        case "deep-offset" -> CrossShardQuery.builder("users", "SELECT id, rank, pad FROM " + table
            + " ORDER BY rank OFFSET 1000000 LIMIT 10").deadline(Duration.ofMinutes(5)).build();
        // One group per row: past the cap, a clear refusal instead of an OutOfMemoryError.
        case "group-cap" -> CrossShardQuery.builder("users", "SELECT rank, count(*) FROM " + table + " GROUP BY rank")
            .maxInMemoryRows(100_000).deadline(Duration.ofMinutes(5)).build();
        default -> throw new IllegalArgumentException("mode: " + args[2]);
      };
      try (QueryResult r = data.query(q)) {
        while (r.next()) {
          System.out.println("row " + r.getLong(1) + " " + r.getLong(2));
        }
      } catch (ShardmapException e) {
        System.out.println("refused " + e.code() + " " + e.getMessage());
      }
    }
    long peak = 0;
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        peak += p.getPeakUsage().getUsed();
      }
    }
    System.out.println("peak-heap-mib " + peak / (1024 * 1024));
  }
}
