package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Memory stays bounded whatever the query asks: three shards of a million rows each (3,000,000, about 100
 * bytes a row), read by a child JVM with a 256 MiB heap. {@code ORDER BY rank OFFSET 1000000 LIMIT 10} (rank
 * interleaves the shards, so the merge really pulls from all three) streams a million rows through the k-way
 * merge and skips them while merging: the answer is exact and the heap stays far below what holding those
 * rows would take. A GROUP BY with a group per row ends, past the cap, in a refusal naming the clause and the
 * option, not in an OutOfMemoryError.
 */
@Tag("integration")
class CrossShardMemoryTest {
  static final int ROWS_PER_SHARD = 1_000_000;
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  static ShardmapFleet fleet;

  @BeforeAll
  static void load() throws Exception {
    fleet = ShardmapFleet.builder().shards(3).sockets().table("id bigint PRIMARY KEY, rank bigint NOT NULL, pad text")
        .build();
    fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(fleet.table()).setKeyColumn("id"))).addAllRangeShards(SHARDS)
        .build());
    // Shard i holds ids from starts[i] on (inside the range the map gives it: checked below) and ranks
    // 3g + i, so consecutive ranks come from different shards.
    long[] starts = {Long.MIN_VALUE + 1, -ROWS_PER_SHARD / 2, Long.MAX_VALUE - ROWS_PER_SHARD - 1};
    try (ShardmapClient c = ShardmapClient.start(ClientOptions.builder().targets(fleet.targets()).keyspaces("users")
        .build())) {
      for (int i = 0; i < 3; i++) {
        assertEquals(SHARDS.get(i), c.route("users", starts[i]).shard());
        assertEquals(SHARDS.get(i), c.route("users", starts[i] + ROWS_PER_SHARD - 1).shard());
      }
    }
    List<CompletableFuture<Void>> loads = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      int shard = i;
      loads.add(CompletableFuture.runAsync(() -> {
        try {
          fleet.shard(shard).exec("INSERT INTO " + fleet.table() + " SELECT " + starts[shard] + " + g, 3 * g + " + shard
              + ", repeat(md5(g::text), 2) FROM generate_series(0, " + (ROWS_PER_SHARD - 1) + ") g");
          fleet.shard(shard).exec("CREATE INDEX ON " + fleet.table() + " (rank)");
          fleet.shard(shard).exec("ANALYZE " + fleet.table());
        } catch (java.sql.SQLException e) {
          throw new IllegalStateException(e);
        }
      }));
    }
    CompletableFuture.allOf(loads.toArray(CompletableFuture[]::new)).get(5, TimeUnit.MINUTES);
  }

  @AfterAll
  static void close() throws Exception {
    if (fleet != null) {
      fleet.close();
    }
  }

  /** Runs the probe in a JVM with a 256 MiB heap; its output lines. */
  private static List<String> probe(String mode) throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    Process p = new ProcessBuilder(java.toString(), "-Xmx256m", "-XX:+ExitOnOutOfMemoryError", "-cp",
        System.getProperty("java.class.path"), CrossShardMemoryProbe.class.getName(), String.join(",", fleet.targets()),
        fleet.shard(0).user(), mode, fleet.table()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), out);
    assertEquals(0, p.exitValue(), "the probe failed:\n" + out);
    return out.lines().toList();
  }

  private static long peakMib(List<String> out) {
    return out.stream().filter(l -> l.startsWith("peak-heap-mib ")).mapToLong(l -> Long.parseLong(l.substring(14)))
        .findFirst().orElseThrow(() -> new AssertionError("no peak reported: " + out));
  }

  @Test
  void aDeepOffsetStreamsThroughASmallHeap() throws Exception {
    List<String> out = probe("deep-offset");
    List<String> rows = out.stream().filter(l -> l.startsWith("row ")).toList();
    List<String> expected = new ArrayList<>();
    for (long rank = 1_000_000; rank < 1_000_010; rank++) {
      int shard = (int) (rank % 3);
      long g = rank / 3;
      long id = new long[] {Long.MIN_VALUE + 1, -ROWS_PER_SHARD / 2, Long.MAX_VALUE - ROWS_PER_SHARD - 1}[shard] + g;
      expected.add("row " + id + " " + rank);
    }
    assertEquals(expected, rows, String.join("\n", out));
    // A million skipped rows of ~100 bytes would need several hundred MiB as Java objects; what stays is
    // the pools' and the drivers' working set.
    System.out.println("CrossShardMemoryTest: OFFSET 1000000 LIMIT 10 over 3,000,000 rows, heap peak "
        + peakMib(out) + " MiB of 256");
  }

  @Test
  void aGroupByPastTheCapIsRefusedClearly() throws Exception {
    List<String> out = probe("group-cap");
    String refused = out.stream().filter(l -> l.startsWith("refused ")).findFirst()
        .orElseThrow(() -> new AssertionError("not refused:\n" + String.join("\n", out)));
    assertTrue(refused.startsWith("refused INVALID_ARGUMENT"), refused);
    assertTrue(refused.contains("GROUP BY") && (refused.contains("100000") || refused.contains("100,000")), refused);
    assertTrue(refused.contains("maxInMemoryRows"), refused);
    System.out.println("CrossShardMemoryTest: " + refused + "; heap peak " + peakMib(out) + " MiB of 256");
  }
}
