package io.shardmap.bench;

import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.BatchLookupRequest;
import io.shardmap.proto.v1.BatchLookupResponse;
import io.shardmap.proto.v1.LookupResponse;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * BatchLookup with packed {@code int_keys}: keys/s and per-batch latency of the directory server, against
 * two same-run baselines: a bare grpc-java server answering the same bytes (the RPC and serialization
 * floor) and the same keys routed in-process on one thread (the routing floor).
 */
@Command(name = "batch-load", mixinStandardHelpOptions = true,
    description = {
        "Closed-loop load on BatchLookup (int_keys): a DirectoryServer on loopback vs. a bare grpc-java "
            + "server answering the same reply bytes (echo), plus the same keys routed in-process on one thread.",
        "Prints keys/s and per-batch p50/p99/p99.9 latency (goal: >= 1,000,000 keys/s)."})
public final class BatchLoadCommand implements Callable<Integer> {
  public static final double GOAL_KEYS_PER_SECOND = 1_000_000;

  @Mixin
  final EchoComparisonOptions load = new EchoComparisonOptions(8, 2, 6, 3, 8, 1_000_000, 2);

  @Option(names = "--batch", defaultValue = "1000", description = "Keys per BatchLookup (1-100000).")
  int batch;

  @Option(names = "--distinct-batches", defaultValue = "64",
      description = "Pre-built batches cycled through (uniformly random INT64 keys).")
  int distinctBatches;

  /** In-process routing: keys routed per second on one thread. */
  public record InProcess(long keys, double seconds) {
    public double keysPerSecond() {
      return keys / seconds;
    }
  }

  public record Result(int batch, Report.Summary echo, Report.Summary shardmap, InProcess inProcess) {
    public double shardmapKeysPerSecond() {
      return shardmap.callsPerSecond() * batch;
    }

    public double echoKeysPerSecond() {
      return echo.callsPerSecond() * batch;
    }
  }

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.echo().errors() + r.shardmap().errors() == 0 ? 0 : 1;
  }

  public Result run(PrintStream out) throws Exception {
    if (batch < 1 || batch > 100_000 || distinctBatches < 1 || distinctBatches > 10_000) {
      throw new IllegalArgumentException("batch 1-100000, distinct-batches 1-10000");
    }
    Comparison.Settings settings = load.settings();
    out.println("batch-load | " + Report.environment());
    SplittableRandom rnd = new SplittableRandom(load.seed);
    BatchLookupRequest[] requests = new BatchLookupRequest[distinctBatches];
    for (int b = 0; b < distinctBatches; b++) {
      BatchLookupRequest.Builder req = BatchLookupRequest.newBuilder().setKeyspace(RangeMaps.KEYSPACE);
      for (int i = 0; i < batch; i++) {
        req.addIntKeys(rnd.nextLong());
      }
      requests[b] = req.build();
    }
    try (DirectoryUnderTest dir = DirectoryUnderTest.start(load.store, load.ranges, load.shards);
         ClientLoops loops = new ClientLoops(load.clientThreads);
         Channels smCh = new Channels(loops, dir.port(), load.channels)) {
      smCh.connect();
      BatchLookupResponse reply = checkAnswers(dir, smCh, requests);
      try (EchoServer echo = new EchoServer(LookupResponse.getDefaultInstance(), reply);
           Channels echoCh = new Channels(loops, echo.port(), load.channels)) {
        echoCh.connect();
        BatchLookupResponse echoed = io.grpc.stub.ClientCalls.blockingUnaryCall(echoCh.first(),
            EchoServer.BATCH_LOOKUP, io.grpc.CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS),
            requests[0]);
        if (!echoed.equals(reply)) {
          throw new IllegalStateException("the echo server did not answer with the captured reply");
        }
        out.println("server:  " + dir.description());
        out.println("echo:    bare grpc-java unary method, same transport settings, pre-built reply of "
            + reply.getSerializedSize() + " B (request " + requests[0].getSerializedSize() + " B, " + batch
            + " keys)");
        out.printf("client:  closed loop, %d batches in flight over %d channels (%d %s client threads), %d distinct "
                + "batches; %.1f s initial warm-up per target; per phase %.1f s warm-up + %.1f s measured "
                + "(max %,d batches); %d rounds, order alternating%n",
            load.concurrency, load.channels, load.clientThreads, loops.describe(), distinctBatches, load.initialWarmupSeconds,
            load.warmupSeconds, load.seconds, load.maxCalls, load.rounds);
        Map<String, List<ClosedLoop.PhaseResult>> res = Comparison.run(List.of(
            new Comparison.Target("echo", new ClosedLoop<>(echoCh.list(), EchoServer.BATCH_LOOKUP, requests)),
            new Comparison.Target("shardmap", new ClosedLoop<>(smCh.list(),
                ShardMapServiceGrpc.getBatchLookupMethod(), requests))), settings, out);
        InProcess local = routeInProcess(dir.keyspace(), requests, settings, out);
        Result result = new Result(batch, Report.Summary.of("echo", res.get("echo")),
            Report.Summary.of("shardmap", res.get("shardmap")), local);
        print(out, result);
        return result;
      }
    }
  }

  /** Checks every key of the first batch against in-process routing; returns the reply echo repeats. */
  private static BatchLookupResponse checkAnswers(DirectoryUnderTest dir, Channels ch, BatchLookupRequest[] reqs) {
    KeyspaceMap k = dir.keyspace();
    BatchLookupResponse r = ShardMapServiceGrpc.newBlockingStub(ch.first())
        .withDeadlineAfter(10, TimeUnit.SECONDS).batchLookup(reqs[0]);
    if (r.getShardIndexesCount() != reqs[0].getIntKeysCount()) {
      throw new IllegalStateException("BatchLookup answered " + r.getShardIndexesCount() + " keys of "
          + reqs[0].getIntKeysCount());
    }
    for (int i = 0; i < reqs[0].getIntKeysCount(); i++) {
      Route want = k.routeOrNull(reqs[0].getIntKeys(i));
      String got = r.getShards(r.getShardIndexes(i));
      if (!got.equals(want.shard()) || r.getEpochs(i) != want.epoch()) {
        throw new IllegalStateException("key " + reqs[0].getIntKeys(i) + ": server says " + got
            + ", in-process routing says " + want.shard());
      }
    }
    return r;
  }

  /**
   * The same keys routed by {@link KeyspaceMap#routeOrNull(long)} on this thread, once per round, for the
   * measured-phase time limit after the warm-up (bounded by the batch limit too).
   */
  private static InProcess routeInProcess(KeyspaceMap k, BatchLookupRequest[] reqs, Comparison.Settings s,
                                          PrintStream out) {
    long[][] keys = new long[reqs.length][];
    for (int b = 0; b < reqs.length; b++) {
      keys[b] = reqs[b].getIntKeysList().stream().mapToLong(Long::longValue).toArray();
    }
    long totalKeys = 0;
    long totalNanos = 0;
    long sink = 0;
    for (int round = 0; round < s.rounds(); round++) {
      for (int phase = 0; phase < 2; phase++) {
        boolean measured = phase == 1;
        long limit = (measured ? s.measure() : s.warmup()).toNanos();
        long routed = 0;
        long t0 = System.nanoTime();
        long t1 = t0;
        for (long n = 0; n < s.maxCalls() && t1 - t0 < limit; n++) {
          long[] batchKeys = keys[(int) (n % keys.length)];
          sink += routeBatch(k, batchKeys);
          routed += batchKeys.length;
          t1 = System.nanoTime();
        }
        if (measured) {
          totalKeys += routed;
          totalNanos += t1 - t0;
          out.printf("  round %d  %-9s %12s keys/s  (one thread, no RPC)  load %s%n", round + 1, "in-process",
              Report.fmt(routed * 1e9 / Math.max(1, t1 - t0), 0), Report.loadAverage());
        }
      }
    }
    if (sink == 42) {
      // Consumes the routing results so the JIT cannot drop the loop; practically never true.
      out.println("(checksum " + sink + ")");
    }
    return new InProcess(totalKeys, totalNanos / 1e9);
  }

  /**
   * Routes one batch, reading what the server reads per key (owner and epoch). A method of its own, called
   * per batch, so the JIT compiles it normally rather than only as an on-stack replacement of the loop
   * above.
   */
  static long routeBatch(KeyspaceMap k, long[] keys) {
    long sum = 0;
    for (long key : keys) {
      Route r = k.routeOrNull(key);
      sum += r.epoch() + r.shard().length();
    }
    return sum;
  }

  private static void print(PrintStream out, Result r) {
    out.println();
    List<List<String>> rows = new ArrayList<>();
    for (Report.Summary s : List.of(r.echo(), r.shardmap())) {
      rows.add(List.of(s.target(), Report.fmt(s.completed(), 0), Report.fmt(s.callsPerSecond(), 0),
          Report.fmt(s.callsPerSecond() * r.batch(), 0), Report.micros(s.p50()), Report.micros(s.p99()),
          Report.micros(s.p999()), Report.micros(s.max()), Report.fmt(s.cpuMicrosPerCall(), 1),
          Long.toString(s.gcMillis()), Long.toString(s.errors())));
    }
    rows.add(List.of("in-process", "-", "-", Report.fmt(r.inProcess().keysPerSecond(), 0), "-", "-", "-", "-",
        "-", "-", "-"));
    out.print(Report.table(List.of("target", "batches", "batches/s", "keys/s", "p50 us", "p99 us", "p99.9 us",
        "max us", "cpu us/batch", "gc ms", "errors"), rows));
    double keys = r.shardmapKeysPerSecond();
    out.printf("shardmap keys/s = %s  (goal >= %s: %s)%n", Report.fmt(keys, 0),
        Report.fmt(GOAL_KEYS_PER_SECOND, 0), keys >= GOAL_KEYS_PER_SECOND ? "MET" : "NOT MET");
    out.printf("keys/s shardmap/echo = %.3f, shardmap/in-process = %.3f%n", keys / r.echoKeysPerSecond(),
        keys / r.inProcess().keysPerSecond());
    if (r.echo().firstError() != null || r.shardmap().firstError() != null) {
      out.println("first errors: echo=" + r.echo().firstError() + " shardmap=" + r.shardmap().firstError());
    }
    out.println("end | load average " + Report.loadAverage());
  }
}
