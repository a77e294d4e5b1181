package io.shardmap.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.bench.jmh.MapChangeBenchmark;
import io.shardmap.bench.jmh.RouteLookupBenchmark;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/**
 * Each benchmark once with tiny bounds: the wiring works and the numbers are sane. No timing is asserted;
 * the real runs are manual (docs/benchmarks.md).
 */
@Tag("integration")
class SmokeTest {
  private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
  private final PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);

  private String output() {
    return buf.toString(StandardCharsets.UTF_8);
  }

  @Test
  @Timeout(60)
  void lookupLoadDrivesBothTargetsWithinItsBounds() throws Exception {
    LookupLoadCommand c = new LookupLoadCommand();
    new CommandLine(c).parseArgs("--initial-warmup-seconds", "0.1", "--warmup-seconds", "0.2", "--seconds", "5", "--max-calls", "300",
        "--rounds", "2", "--concurrency", "4", "--channels", "2", "--distinct-keys", "64");
    LookupLoadCommand.Result r = c.run(out);
    for (Report.Summary s : new Report.Summary[] {r.echo(), r.shardmap()}) {
      assertEquals(0, s.errors(), () -> s.target() + ": " + s.firstError());
      // Two rounds, each bounded by the call limit well before the time limit.
      assertEquals(600, s.completed(), s.target());
      assertTrue(s.p50() > 0 && s.p50() <= s.p99() && s.p99() <= s.p999() && s.p999() <= s.max(), s.toString());
    }
    assertTrue(r.ratio() > 0, output());
    assertTrue(output().contains("throughput shardmap/echo"), output());
  }

  @Test
  @Timeout(60)
  void batchLoadComparesWithEchoAndInProcessRouting() throws Exception {
    BatchLoadCommand c = new BatchLoadCommand();
    new CommandLine(c).parseArgs("--initial-warmup-seconds", "0.1", "--warmup-seconds", "0.1", "--seconds", "0.3", "--max-calls", "50",
        "--rounds", "1", "--batch", "100", "--concurrency", "2", "--channels", "1", "--distinct-batches", "4");
    BatchLoadCommand.Result r = c.run(out);
    assertEquals(0, r.echo().errors() + r.shardmap().errors(), output());
    assertTrue(r.shardmap().completed() > 0 && r.shardmap().completed() <= 50, output());
    assertTrue(r.inProcess().keys() > 0 && r.inProcess().keysPerSecond() > 0, output());
    assertTrue(output().contains("shardmap keys/s"), output());
  }

  @Test
  @Timeout(60)
  void lookupLoadTimeLimitEndsAPhase() throws Exception {
    LookupLoadCommand c = new LookupLoadCommand();
    new CommandLine(c).parseArgs("--initial-warmup-seconds", "0.1", "--warmup-seconds", "0", "--seconds", "0.3", "--max-calls", "100000000",
        "--rounds", "1", "--concurrency", "2", "--channels", "1", "--distinct-keys", "8");
    long t0 = System.nanoTime();
    LookupLoadCommand.Result r = c.run(out);
    assertTrue(r.echo().completed() > 0 && r.echo().seconds() < 5, r.echo().toString());
    assertTrue((System.nanoTime() - t0) / 1e9 < 30, "two 0.3 s phases plus setup");
  }

  @Test
  @Timeout(60)
  void heapMeasuresBothStructures() throws Exception {
    HeapCommand c = new HeapCommand();
    new CommandLine(c).parseArgs("--ranges", "2000", "--trials", "1");
    HeapCommand.Result r = c.run(out);
    assertTrue(r.snapshotBytes() > 0 && r.treeMapBytes() > 0, output());
  }

  @Test
  @Timeout(120)
  void propagationReachesEveryClientAndTheRawWatch() throws Exception {
    PropagationCommand c = new PropagationCommand();
    new CommandLine(c).parseArgs("--etcd-members", "1", "--servers", "2", "--clients", "3", "--warmup-writes", "1",
        "--writes", "5", "--pause-ms", "0", "--max-seconds", "60");
    PropagationCommand.Result r = c.run(out);
    assertEquals(0, r.timeouts() + r.wrongRevisions(), output());
    assertEquals(5, r.writes(), output());
    // The last client cannot see a write before the first one, nor before it was sent.
    assertTrue(r.allFromSend().min() >= r.firstFromSend().min() && r.firstFromSend().min() > 0, output());
    assertTrue(r.rawFromSend().min() > 0, output());
    assertTrue(output().contains("all clients / raw etcd watch"), output());
  }

  @Test
  @Timeout(180)
  void watchRecoveryMovesEveryClientOffAKilledReplica() throws Exception {
    WatchRecoveryCommand c = new WatchRecoveryCommand();
    new CommandLine(c).parseArgs("--etcd-members", "1", "--replicas", "2", "--clients", "3", "--rounds", "1",
        "--round-timeout-seconds", "30", "--max-seconds", "120");
    WatchRecoveryCommand.Result r = c.run(out);
    assertTrue(r.complete(), output());
    assertEquals(1, r.rounds().size(), output());
    assertEquals(3, r.rounds().get(0).failovers(), output());
    assertTrue(r.allClients().min() > 0, output());
  }

  @Test
  @Timeout(120)
  void sqlRoutingTimesEveryCaseAgainstItsBaseline() throws Exception {
    SqlRoutingCommand c = new SqlRoutingCommand();
    new CommandLine(c).parseArgs("--rows", "2000", "--rounds", "1");
    c.run(out);
    // Each count was checked against core before its time was printed.
    for (String row : new String[] {"baseline: g % 16 = 3", "int8 key bucket", "short text key bucket",
        "~105-byte text key bucket"}) {
      assertTrue(output().contains(row), output());
    }
  }

  @Test
  @Timeout(120)
  void clientHeapMeasuresARealClient() throws Exception {
    ClientHeapCommand c = new ClientHeapCommand();
    new CommandLine(c).parseArgs("--ranges", "20000", "--trials", "1");
    ClientHeapCommand.Result r = c.run(out);
    // 20,000 ranges take well over 1 MB however they are held; a client of 2 ranges far less.
    assertTrue(r.mapBytes() > 1_000_000 && r.tinyClientBytes() < r.mapBytes() && r.treeMapBytes() > 0, output());
  }

  @Test
  @Timeout(300)
  void migrateCopyTimesTheMigratorAndThePipeOnTheSameRows() throws Exception {
    MigrateCopyCommand c = new MigrateCopyCommand();
    new CommandLine(c).parseArgs("--rows", "3000", "--rounds", "2", "--chunk-rows", "1000", "--decompose");
    MigrateCopyCommand.Result r = c.run(out);
    assertEquals(2, r.rounds().size(), output());
    for (MigrateCopyCommand.Round round : r.rounds()) {
      assertEquals(3000, round.rowsCopied(), output());
      assertTrue(round.pipeSeconds() > 0 && round.copySeconds() > 0 && round.moveSeconds() > round.copySeconds(),
          output());
      assertTrue(round.chunkLoopSeconds() > 0 && round.singleCopySeconds() > 0, output());
    }
    // ~200-byte rows, and the migrator carried the same binary stream as the pipe (plus a header per chunk).
    assertTrue(r.bytes() > 3000L * 150 && r.bytes() < 3000L * 300, output());
    assertTrue(Math.abs(r.rounds().get(0).bytesCopied() - r.bytes()) < 1000, output());
    assertTrue(output().contains("migrator copy / pipe rate"), output());
  }

  @Test
  void migrateLoadTimesThePipeUnlessToldNoPipe() {
    MigrateLoadCommand c = new MigrateLoadCommand();
    new CommandLine(c).parseArgs();
    assertTrue(c.pipe, "the pipe is timed by default");
    c = new MigrateLoadCommand();
    new CommandLine(c).parseArgs("--no-pipe");
    assertFalse(c.pipe, "--no-pipe skips it");
    c = new MigrateLoadCommand();
    new CommandLine(c).parseArgs("--pipe");
    assertTrue(c.pipe, "--pipe times it");
  }

  @Test
  @Timeout(300)
  void migrateLoadMovesTwoRangesUnderAFixedRateWriter() throws Exception {
    MigrateLoadCommand c = new MigrateLoadCommand();
    new CommandLine(c).parseArgs("--rows", "3000", "--outside-rows", "1000", "--rate", "100", "--moves", "2",
        "--warmup-seconds", "0.5", "--baseline-seconds", "1", "--settle-seconds", "0.5", "--chunk-rows", "1000",
        "--threads", "8", "--pool-size", "4", "--max-seconds", "200");
    MigrateLoadCommand.Result r = c.run(out);
    assertEquals(0, r.errors(), output());
    assertEquals(2, r.moves().size(), output());
    assertTrue(r.baselineInside().latency().count() > 0 && r.baselineOutside().latency().count() > 0, output());
    for (MigrateLoadCommand.MoveResult m : r.moves()) {
      assertEquals(3000, m.migration().getRowsCopied(), output());
      assertTrue(m.moveInside().latency().count() > 0 && m.cutoverInside().latency().count() > 0, output());
    }
    assertTrue(r.pipeSeconds() > 0, output());
    assertTrue(output().contains("check:   moved keys on s2 (their owner): 6,000 rows, elsewhere: 0"), output());
  }

  @Test
  @Timeout(60)
  void sdkLookupStateRoutesLikeTheMap() throws Exception {
    RouteLookupBenchmark l = new RouteLookupBenchmark();
    l.ranges = 1000;
    l.setUp();
    try {
      // startSdk checks that both clients agree with the map on every key.
      l.startSdk();
      assertNotNull(l.sdkRoute());
      assertNotNull(l.sdkRouteMaxStaleness());
    } finally {
      l.tearDown();
    }
  }

  @Test
  void microBenchmarkStatesBuildAndRun() {
    MapChangeBenchmark m = new MapChangeBenchmark();
    m.ranges = 1000;
    m.setUp();
    assertEquals(1001, m.applySplit().keyspace(RangeMaps.KEYSPACE).ranges().size());
    assertEquals(1001, m.watchBatch().keyspace(RangeMaps.KEYSPACE).ranges().size());
    assertEquals(2, m.toChangesOnly().size());
    assertNotNull(m.baselineTreeMapSplit());
    RouteLookupBenchmark l = new RouteLookupBenchmark();
    l.ranges = 1000;
    // setUp checks that the three lookups agree on every key.
    l.setUp();
    assertNotNull(l.routeOrNull());
    assertNotNull(l.baselineTreeMapFloorEntry());
    assertNotNull(l.baselineBinarySearch());
  }

  @Test
  @Timeout(240)
  void crossShardAnswersLikeOneDatabaseThroughShardmapAndShardingSphere() throws Exception {
    CrossShardCommand c = new CrossShardCommand();
    new CommandLine(c).parseArgs("--rows", "3000", "--warmup-seconds", "0.1", "--seconds", "0.3", "--max-queries", "40",
        "--large-runs", "1", "--concurrency", "1,2", "--pool-size", "2");
    CrossShardCommand.Result r = c.run(out);
    for (CrossShardCommand.Query q : CrossShardCommand.Query.values()) {
      List<CrossShardCommand.Row> ss = r.of("shardingsphere").stream().filter(x -> x.query() == q).toList();
      assertFalse(ss.isEmpty(), q + ": " + output());
      for (CrossShardCommand.Row x : ss) {
        // Same rows, order and values as the unsharded database; its averages carry 4 decimal places
        // where PostgreSQL's carry up to 16, so the aggregate is compared at 4 places.
        assertTrue(q == CrossShardCommand.Query.aggregate ? x.sameRows() : x.correct(), x + "\n" + output());
        assertTrue(x.queries() > 0 && x.rowsRead() > 0, x.toString());
      }
      // The SDK's answers equal the unsharded database's exactly, averages included.
      List<CrossShardCommand.Row> sm = r.of(CrossShardCommand.SHARDMAP).stream().filter(x -> x.query() == q).toList();
      assertFalse(sm.isEmpty(), q + ": " + output());
      for (CrossShardCommand.Row x : sm) {
        assertTrue(x.correct(), x + "\n" + output());
      }
      for (CrossShardCommand.Row x : r.of(CrossShardCommand.ORACLE)) {
        assertTrue(x.correct(), x.toString());
      }
    }
    // The ordered query streams all 3,000 rows once per measured run; the top-100 ones return 100 rows each.
    CrossShardCommand.Row ordered = r.of("shardingsphere").stream()
        .filter(x -> x.query() == CrossShardCommand.Query.ordered).findFirst().orElseThrow();
    assertEquals(3000, ordered.rowsRead());
    assertTrue(output().contains("vs the slowest shard's part"), output());
  }

  @Test
  @Timeout(120)
  void txnRunsEveryCaseOnBothShardsAndKeepsTheTotal() throws Exception {
    TxnCommand c = new TxnCommand();
    new CommandLine(c).parseArgs("--rounds", "1", "--ops", "10", "--warmup-ops", "2", "--seconds", "20",
        "--threads", "1,2", "--fsync", "false", "--accounts", "100", "--cases", String.join(",", TxnCommand.ALL));
    // run() fails when an operation fails, when the balances' total shows a transfer committed on one side
    // only, or when a prepared transaction is left over.
    var r = c.run(out);
    assertEquals(TxnCommand.ALL, List.copyOf(r.keySet()), output());
    for (var byThreads : r.values()) {
      assertEquals(List.of(1, 2), List.copyOf(byThreads.keySet()), output());
      for (List<TxnCommand.Phase> phases : byThreads.values()) {
        assertEquals(1, phases.size(), output());
        for (TxnCommand.Phase p : phases) {
          // Bounded by the operation limit, far within the time limit.
          assertEquals(10, p.completed(), output());
          assertEquals(10, p.latencies().length, output());
        }
      }
    }
    assertTrue(output().contains("acrossShards-2") && output().contains("p50 / base"), output());
  }

  @Test
  @Timeout(60)
  void idsMeasuresTheGeneratorAgainstItsCapAndTheBaseline() throws Exception {
    IdsCommand c = new IdsCommand();
    new CommandLine(c).parseArgs("--seconds", "0.05", "--warmup-seconds", "0.02", "--rounds", "1", "--threads", "1,2");
    List<IdsCommand.Row> rows = c.run(out);
    assertEquals(10, rows.size(), output());
    for (IdsCommand.Row r : rows) {
      assertTrue(r.idsPerSecond() > 0, r.toString());
      assertTrue(r.orderViolations() <= 0, r.toString()); // -1: spread ids are not increasing by design
    }
    assertTrue(output().contains("/ cap"), output());
  }

  @Test
  @Timeout(120)
  void idsSequenceModeMeasuresTheSdkAgainstTheCoreGenerator() throws Exception {
    IdsCommand c = new IdsCommand();
    new CommandLine(c).parseArgs("--seconds", "0.05", "--warmup-seconds", "0.02", "--rounds", "1", "--threads", "1",
        "--sequence", "--block-sizes", "10,1000");
    List<IdsCommand.Row> rows = c.run(out);
    assertEquals(8, rows.size(), output());
    for (IdsCommand.Row r : rows) {
      assertTrue(r.idsPerSecond() > 0, r.toString());
      assertTrue(r.orderViolations() <= 0, r.toString());
    }
    assertTrue(output().contains("SDK GlobalSequence.next(), block 1000") && output().contains("/ snowflake next()")
        && output().contains("sequence bench-b10-t1: "), output());
  }
}
