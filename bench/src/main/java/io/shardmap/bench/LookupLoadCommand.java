package io.shardmap.bench;

import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.BatchLookupResponse;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.LookupResponse;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import java.io.PrintStream;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Unary Lookup throughput and latency of the directory server against a bare grpc-java server answering
 * the same bytes, driven by the same closed-loop client in the same process and run.
 */
@Command(name = "lookup-load", mixinStandardHelpOptions = true,
    description = {
        "Closed-loop load on Lookup: a DirectoryServer on loopback vs. a bare grpc-java server that answers "
            + "with the same reply bytes (echo), same client, alternating order per round.",
        "Prints requests/s, p50/p99/p99.9 latency per target and the throughput ratio shardmap/echo "
            + "(goal: >= 0.50)."})
public final class LookupLoadCommand implements Callable<Integer> {
  /** The throughput the directory server should keep relative to the echo baseline. */
  public static final double GOAL_RATIO = 0.50;

  @Mixin
  final EchoComparisonOptions load = new EchoComparisonOptions(64, 4, 10, 4, 10, 3_000_000, 2);

  @Option(names = "--distinct-keys", defaultValue = "4096",
      description = "Pre-built requests cycled through (uniformly random INT64 keys).")
  int distinctKeys;

  public record Result(Report.Summary echo, Report.Summary shardmap) {
    public double ratio() {
      return shardmap.callsPerSecond() / echo.callsPerSecond();
    }
  }

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.echo().errors() + r.shardmap().errors() == 0 ? 0 : 1;
  }

  public Result run(PrintStream out) throws Exception {
    if (distinctKeys < 1 || distinctKeys > 1_000_000) {
      throw new IllegalArgumentException("distinct-keys 1-1000000");
    }
    Comparison.Settings settings = load.settings();
    out.println("lookup-load | " + Report.environment());
    SplittableRandom rnd = new SplittableRandom(load.seed);
    LookupRequest[] requests = new LookupRequest[distinctKeys];
    for (int i = 0; i < distinctKeys; i++) {
      requests[i] = LookupRequest.newBuilder().setKeyspace(RangeMaps.KEYSPACE)
          .setKey(RangeMaps.intKey(rnd.nextLong())).build();
    }
    try (DirectoryUnderTest dir = DirectoryUnderTest.start(load.store, load.ranges, load.shards);
         ClientLoops loops = new ClientLoops(load.clientThreads);
         Channels smCh = new Channels(loops, dir.port(), load.channels)) {
      smCh.connect();
      LookupResponse reply = checkAnswers(dir, smCh, requests);
      try (EchoServer echo = new EchoServer(reply, BatchLookupResponse.getDefaultInstance());
           Channels echoCh = new Channels(loops, echo.port(), load.channels)) {
        echoCh.connect();
        LookupResponse echoed = io.grpc.stub.ClientCalls.blockingUnaryCall(echoCh.first(), EchoServer.LOOKUP,
            io.grpc.CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), requests[0]);
        if (!echoed.equals(reply)) {
          throw new IllegalStateException("the echo server did not answer with the captured reply");
        }
        out.println("server:  " + dir.description());
        out.println("echo:    bare grpc-java unary method, same transport settings, pre-built reply of "
            + reply.getSerializedSize() + " B (request " + requests[0].getSerializedSize() + " B)");
        out.printf("client:  closed loop, %d calls in flight over %d channels (%d %s client threads), %d distinct "
                + "keys; %.1f s initial warm-up per target; per phase %.1f s warm-up + %.1f s measured "
                + "(max %,d calls); %d rounds, order alternating%n",
            load.concurrency, load.channels, load.clientThreads, loops.describe(), distinctKeys, load.initialWarmupSeconds,
            load.warmupSeconds, load.seconds, load.maxCalls, load.rounds);
        Map<String, List<ClosedLoop.PhaseResult>> res = Comparison.run(List.of(
            new Comparison.Target("echo", new ClosedLoop<>(echoCh.list(), EchoServer.LOOKUP, requests)),
            new Comparison.Target("shardmap", new ClosedLoop<>(smCh.list(),
                ShardMapServiceGrpc.getLookupMethod(), requests))), settings, out);
        Result result = new Result(Report.Summary.of("echo", res.get("echo")),
            Report.Summary.of("shardmap", res.get("shardmap")));
        print(out, result);
        return result;
      }
    }
  }

  /** Checks the server's answers against in-process routing; returns the reply the echo server repeats. */
  private static LookupResponse checkAnswers(DirectoryUnderTest dir, Channels ch, LookupRequest[] requests) {
    KeyspaceMap k = dir.keyspace();
    var stub = ShardMapServiceGrpc.newBlockingStub(ch.first());
    LookupResponse first = null;
    for (int i = 0; i < Math.min(100, requests.length); i++) {
      LookupResponse r = stub.withDeadlineAfter(10, TimeUnit.SECONDS).lookup(requests[i]);
      String want = k.routeOrNull(requests[i].getKey().getIntKey()).shard();
      if (!r.getRoute().getShard().equals(want) || !r.getShard().getName().equals(want)) {
        throw new IllegalStateException("key " + requests[i].getKey().getIntKey() + ": server says "
            + r.getRoute().getShard() + ", in-process routing says " + want);
      }
      if (first == null) {
        first = r;
      }
    }
    return first;
  }

  private static void print(PrintStream out, Result r) {
    out.println();
    out.print(Report.table(
        List.of("target", "calls", "calls/s", "p50 us", "p99 us", "p99.9 us", "max us", "cpu us/call", "gc ms",
            "errors"),
        List.of(row(r.echo()), row(r.shardmap()))));
    double ratio = r.ratio();
    out.printf("throughput shardmap/echo = %.3f  (goal >= %.2f: %s)%n", ratio, GOAL_RATIO,
        ratio >= GOAL_RATIO ? "MET" : "NOT MET");
    out.printf("p50 latency shardmap/echo = %.3f%n", (double) r.shardmap().p50() / Math.max(1, r.echo().p50()));
    if (r.echo().firstError() != null || r.shardmap().firstError() != null) {
      out.println("first errors: echo=" + r.echo().firstError() + " shardmap=" + r.shardmap().firstError());
    }
    out.println("end | load average " + Report.loadAverage());
  }

  static List<String> row(Report.Summary s) {
    return List.of(s.target(), Report.fmt(s.completed(), 0), Report.fmt(s.callsPerSecond(), 0),
        Report.micros(s.p50()), Report.micros(s.p99()), Report.micros(s.p999()), Report.micros(s.max()),
        Report.fmt(s.cpuMicrosPerCall(), 1), Long.toString(s.gcMillis()), Long.toString(s.errors()));
  }
}
