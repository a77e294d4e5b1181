package io.shardmap.bench;

import io.shardmap.client.ShardRoute;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.options.WatchOption;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.ReassignRangeResponse;
import io.shardmap.server.DirectoryServer;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.EtcdMetaStore;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * How fast an admin write reaches every client: directory servers in this JVM on etcd, N ShardmapClients
 * following the keyspace, and a series of ReassignRange writes, one at a time. For each write the time from
 * the RPC's send and from its return until every client's map listener has seen the new revision
 * ({@code System.nanoTime()} taken in the listener, on the client's own thread). Baseline in the same run:
 * a raw jetcd watch on the same etcd prefix, the moment etcd itself notifies a watcher of the write.
 */
@Command(name = "propagation", mixinStandardHelpOptions = true,
    description = {
        "Time from an admin write (ReassignRange) until ALL of N ShardmapClients have the new revision, "
            + "against a raw etcd watch of the same prefix in the same run.",
        "Directory servers run in this JVM; etcd is started by the EtcdCluster fixture unless --etcd-endpoints "
            + "names one on 127.0.0.1. Goal: p50 < 5 ms and p99 < 50 ms from the RPC's return."})
public final class PropagationCommand implements Callable<Integer> {
  public static final long GOAL_P50_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
  public static final long GOAL_P99_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

  @Option(names = "--etcd-endpoints", split = ",",
      description = "etcd on 127.0.0.1 to use; default: start --etcd-members local members.")
  List<String> etcdEndpoints = new ArrayList<>();

  @Option(names = "--etcd-members", defaultValue = "3", description = "Members of the etcd started here (1-5).")
  int etcdMembers;

  @Option(names = "--servers", defaultValue = "2", description = "Directory servers (1-8); writes go to the first.")
  int servers;

  @Option(names = "--clients", defaultValue = "100", description = "ShardmapClients (1-1000); client c lists "
      + "server c mod servers first.")
  int clients;

  @Option(names = "--ranges", defaultValue = "64", description = "Ranges of the followed keyspace (2-30000; a "
      + "server on etcd cannot load much more, see docs/benchmarks.md).")
  int ranges;

  @Option(names = "--shards", defaultValue = "8", description = "Shards owning them, round-robin (2-1000).")
  int shards;

  @Option(names = "--warmup-writes", defaultValue = "20", description = "Writes made and waited for, not counted.")
  int warmupWrites;

  @Option(names = "--writes", defaultValue = "200", description = "Measured writes (1-100000).")
  int writes;

  @Option(names = "--pause-ms", defaultValue = "5", description = "Pause after each write has reached every client.")
  int pauseMs;

  @Option(names = "--write-timeout-seconds", defaultValue = "10",
      description = "Longest wait for one write to reach every client; a write that does not is counted as a timeout.")
  int writeTimeoutSeconds;

  @Option(names = "--max-seconds", defaultValue = "300", description = "Time limit of the whole write loop.")
  int maxSeconds;

  public record Result(int writes, int timeouts, int wrongRevisions, Report.Dist rpc, Report.Dist rawFromSend,
                       Report.Dist rawFromReturn, Report.Dist firstFromSend, Report.Dist allFromSend,
                       Report.Dist firstFromReturn, Report.Dist medianFromReturn, Report.Dist allFromReturn) {
    /** All clients vs. the raw etcd watch, both from the send, at the median. */
    public double ratioP50() {
      return (double) allFromSend.p(0.5) / Math.max(1, rawFromSend.p(0.5));
    }

    public boolean goalMet() {
      return timeouts == 0 && wrongRevisions == 0 && allFromReturn.p(0.5) < GOAL_P50_NANOS
          && allFromReturn.p(0.99) < GOAL_P99_NANOS;
    }
  }

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.timeouts() + r.wrongRevisions() == 0 ? 0 : 1;
  }

  public Result run(PrintStream out) throws Exception {
    if (servers < 1 || servers > 8 || clients < 1 || clients > 1000 || ranges < 2 || ranges > 30_000
        || shards < 2 || shards > 1000 || writes < 1 || writes > 100_000 || warmupWrites < 0
        || warmupWrites > 10_000 || pauseMs < 0 || pauseMs > 10_000 || writeTimeoutSeconds < 1
        || writeTimeoutSeconds > 600 || maxSeconds < 1 || maxSeconds > 3600) {
      throw new IllegalArgumentException("servers 1-8, clients 1-1000, ranges 2-30000, shards 2-1000, "
          + "writes 1-100000, warmup-writes 0-10000, pause-ms 0-10000, write-timeout-seconds 1-600, "
          + "max-seconds 1-3600");
    }
    out.println("propagation | " + Report.environment());
    String prefix = "/bench-prop-" + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    CatalogPaths paths = new CatalogPaths(prefix);
    try (Closer closer = new Closer()) {
      LocalEtcd etcd = closer.add(LocalEtcd.start(etcdEndpoints, etcdMembers));
      long loaded;
      try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(etcd.endpoints()).build()) {
        loaded = RangeMaps.write(store, paths, RangeMaps.KEYSPACE, ranges, shards, etcd.maxTxnOps());
      }
      ShardmapFleet fleet = closer.add(ShardmapFleet.builder().etcdEndpoints(etcd.endpoints()).servers(servers)
          .sockets().productionIntervals().prefix(prefix).unregistered().build());
      List<DirectoryServer> dirs = fleet.servers();
      List<String> targets = fleet.targets();

      // The baseline: one raw etcd watch of the prefix the servers watch.
      AtomicReference<Arrivals> rawRound = new AtomicReference<>();
      CountDownLatch created = new CountDownLatch(1);
      Client jetcd = closer.add(Client.builder()
          .endpoints(etcd.endpoints().stream().map(URI::create).toArray(URI[]::new)).build());
      closer.add(jetcd.getWatchClient().watch(ByteSequence.from(paths.rootPrefix(), StandardCharsets.UTF_8),
          WatchOption.builder().isPrefix(true).withCreateNotify(true).withRevision(loaded + 1).build(),
          Watch.listener(resp -> {
            if (resp.isCreatedNotify()) {
              created.countDown();
            } else if (!resp.getEvents().isEmpty()) {
              Arrivals a = rawRound.get();
              if (a != null) {
                a.mark(0, resp.getEvents().get(0).getKeyValue().getModRevision());
              }
            }
          })));
      if (!created.await(30, TimeUnit.SECONDS)) {
        throw new IllegalStateException("the raw etcd watch was not created within 30 s");
      }

      AtomicReference<Arrivals> clientRound = new AtomicReference<>();
      List<ShardmapClient> cs = new ArrayList<>();
      long t0 = System.nanoTime();
      for (int c = 0; c < clients; c++) {
        List<String> order = new ArrayList<>(targets);
        java.util.Collections.rotate(order, -(c % servers));
        ShardmapClient client = closer.add(ShardmapClient.start(ClientOptions.builder().targets(order)
            .keyspaces(RangeMaps.KEYSPACE).build()));
        int idx = c;
        client.addListener((before, after, resync) -> {
          Arrivals a = clientRound.get();
          if (a != null) {
            a.mark(idx, after.revision());
          }
        });
        cs.add(client);
      }
      double startSeconds = (System.nanoTime() - t0) / 1e9;

      out.println("etcd:    " + etcd.description() + ", prefix " + prefix);
      out.println("servers: " + servers + " DirectoryServer(s) in this JVM, default ServerOptions (heartbeat 2 s, "
          + "probe 1 s); keyspace '" + RangeMaps.KEYSPACE + "': " + ranges + " INT64 ranges over " + shards
          + " shards, written to etcd before the servers started");
      out.printf(Locale.ROOT, "clients: %d ShardmapClients, default ClientOptions, client c lists server (c mod %d) "
          + "first; all started in %.1f s%n", clients, servers, startSeconds);
      out.printf(Locale.ROOT, "writes:  %d warm-up + %d measured ReassignRange via server 0, one at a time, each "
          + "waited for on every client (limit %d s), then %d ms pause; loop limit %d s%n",
          warmupWrites, writes, writeTimeoutSeconds, pauseMs, maxSeconds);
      out.println("baseline: a raw jetcd watch of " + paths.rootPrefix() + " in this JVM (what etcd itself "
          + "delivers; the servers watch the same prefix)");

      ManagedChannel adminCh = NettyChannelBuilder.forAddress("127.0.0.1", dirs.get(0).port()).usePlaintext().build();
      closer.add(() -> {
        adminCh.shutdownNow();
        adminCh.awaitTermination(5, TimeUnit.SECONDS);
      });
      Reassigner writer = new Reassigner(adminCh, ranges, shards);
      long prev = dirs.get(0).snapshot().revision();
      int timeouts = 0;
      int wrong = 0;
      List<long[]> rows = new ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
      for (int w = 0; w < warmupWrites + writes && System.nanoTime() < deadline; w++) {
        Arrivals cr = new Arrivals(prev, cs.size());
        Arrivals rr = new Arrivals(prev, 1);
        clientRound.set(cr);
        rawRound.set(rr);
        long send = System.nanoTime();
        ReassignRangeResponse resp = writer.send();
        long ret = System.nanoTime();
        long rev = resp.getRevision();
        boolean all = cr.await(writeTimeoutSeconds, TimeUnit.SECONDS) && rr.await(writeTimeoutSeconds, TimeUnit.SECONDS);
        prev = rev;
        if (!all) {
          timeouts++;
          out.printf("write %d (revision %d): %d of %d clients and %d raw watch still without it after %d s%n",
              w, rev, cr.missing(), cs.size(), rr.missing(), writeTimeoutSeconds);
          continue;
        }
        for (int i = 0; i < cs.size(); i++) {
          if (cr.revision(i) != rev) {
            wrong++;
            out.printf("write %d: client %d first saw revision %d, expected %d%n", w, i, cr.revision(i), rev);
          }
        }
        if (w >= warmupWrites) {
          rows.add(new long[] {send, ret, rr.nanos(0), cr.first(), cr.median(), cr.last()});
        }
        if (pauseMs > 0) {
          Thread.sleep(pauseMs);
        }
      }
      clientRound.set(null);
      rawRound.set(null);
      checkAgreement(dirs.get(0), cs);
      Result r = result(rows, timeouts, wrong);
      print(out, r, clients);
      return r;
    }
  }

  /** Every client ends with exactly the server's routes. */
  private static void checkAgreement(DirectoryServer dir, List<ShardmapClient> cs) {
    List<Route> want = dir.snapshot().keyspace(RangeMaps.KEYSPACE).ranges().routes();
    for (ShardmapClient c : cs) {
      List<ShardRoute> got = c.snapshot().ranges(RangeMaps.KEYSPACE);
      for (int i = 0; i < want.size(); i++) {
        if (!got.get(i).shard().equals(want.get(i).shard()) || got.get(i).epoch() != want.get(i).epoch()) {
          throw new IllegalStateException("a client's range " + i + " is " + got.get(i) + ", the server's "
              + want.get(i));
        }
      }
    }
  }

  private static Result result(List<long[]> rows, int timeouts, int wrong) {
    int n = rows.size();
    long[][] cols = new long[8][n];
    for (int i = 0; i < n; i++) {
      long[] r = rows.get(i);
      long send = r[0];
      long ret = r[1];
      cols[0][i] = ret - send;
      cols[1][i] = r[2] - send;
      cols[2][i] = r[2] - ret;
      cols[3][i] = r[3] - send;
      cols[4][i] = r[5] - send;
      cols[5][i] = r[3] - ret;
      cols[6][i] = r[4] - ret;
      cols[7][i] = r[5] - ret;
    }
    return new Result(n, timeouts, wrong, Report.Dist.of(cols[0]), Report.Dist.of(cols[1]), Report.Dist.of(cols[2]),
        Report.Dist.of(cols[3]), Report.Dist.of(cols[4]), Report.Dist.of(cols[5]), Report.Dist.of(cols[6]),
        Report.Dist.of(cols[7]));
  }

  private static void print(PrintStream out, Result r, int clients) {
    out.println();
    out.print(Report.table(List.of("measure (ms)", "writes", "p50", "p99", "max", "min", "mean"), List.of(
        row("admin RPC, send -> return", r.rpc()),
        row("raw etcd watch (baseline), from send", r.rawFromSend()),
        row("first client, from send", r.firstFromSend()),
        row("all " + clients + " clients, from send", r.allFromSend()),
        row("raw etcd watch, from return", r.rawFromReturn()),
        row("first client, from return", r.firstFromReturn()),
        row("median client, from return", r.medianFromReturn()),
        row("all " + clients + " clients, from return", r.allFromReturn()))));
    out.printf(Locale.ROOT, "all clients / raw etcd watch, from send: p50 %.2fx, p99 %.2fx%n", r.ratioP50(),
        (double) r.allFromSend().p(0.99) / Math.max(1, r.rawFromSend().p(0.99)));
    out.printf(Locale.ROOT, "timeouts %d, wrong revisions %d%n", r.timeouts(), r.wrongRevisions());
    out.printf(Locale.ROOT, "goal (all clients from return: p50 < %d ms, p99 < %d ms): %s%n",
        GOAL_P50_NANOS / 1_000_000, GOAL_P99_NANOS / 1_000_000, r.goalMet() ? "MET" : "NOT MET");
    out.println("end | load average " + Report.loadAverage());
  }

  private static List<String> row(String name, Report.Dist d) {
    return List.of(name, Integer.toString(d.count()), Report.millis(d.p(0.5), 2), Report.millis(d.p(0.99), 2),
        Report.millis(d.max(), 2), Report.millis(d.min(), 2), Report.millis(d.mean(), 2));
  }
}
