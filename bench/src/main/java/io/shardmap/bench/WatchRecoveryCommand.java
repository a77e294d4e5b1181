package io.shardmap.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.proto.v1.ReassignRangeResponse;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.EtcdMetaStore;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * How long clients take to recover from losing their directory server. Each round starts replica A in a
 * child JVM, N ShardmapClients listing A first and the other replicas (started once, also child JVMs) as
 * alternates, makes one write to check every client follows A, then kills A (SIGKILL, or SIGSTOP with
 * {@code --fault freeze}) and at once makes an admin write through replica B. A client has recovered when
 * its map listener sees that write: it has a working watch stream again, on another replica. Baseline in the
 * same round: the time the same clients took to see the write made before the fault, over a healthy stream.
 */
@Command(name = "watch-recovery", mixinStandardHelpOptions = true,
    description = {
        "Kills the directory replica N ShardmapClients watch (replica A, in a child JVM; the others are "
            + "alternates) and times until every client has a working stream again and has seen an admin "
            + "write made after the kill. Several rounds; goal < 2 s.",
        "Baseline: the same clients seeing a write over a healthy stream, same round."})
public final class WatchRecoveryCommand implements Callable<Integer> {
  public static final long GOAL_NANOS = TimeUnit.SECONDS.toNanos(2);

  /** Kept strongly reachable (see BenchMain): the level set on it must not be lost to a collection. */
  private static final Logger CLIENT_LOG = Logger.getLogger("io.shardmap.client");

  public enum Fault { kill, freeze }

  @Option(names = "--etcd-endpoints", split = ",",
      description = "etcd on 127.0.0.1 to use; default: start --etcd-members local members.")
  List<String> etcdEndpoints = new ArrayList<>();

  @Option(names = "--etcd-members", defaultValue = "3", description = "Members of the etcd started here (1-5).")
  int etcdMembers;

  @Option(names = "--replicas", defaultValue = "3",
      description = "Directory replicas (2-5): A, killed every round, and the alternates B, C, ...")
  int replicas;

  @Option(names = "--clients", defaultValue = "100", description = "ShardmapClients (1-1000).")
  int clients;

  @Option(names = "--rounds", defaultValue = "10", description = "Rounds (1-100), each with a fresh replica A.")
  int rounds;

  @Option(names = "--ranges", defaultValue = "64", description = "Ranges of the followed keyspace (2-30000).")
  int ranges;

  @Option(names = "--shards", defaultValue = "8", description = "Shards owning them, round-robin (2-1000).")
  int shards;

  @Option(names = "--fault", defaultValue = "kill",
      description = "kill: SIGKILL (a crash; the kernel closes A's sockets). freeze: SIGSTOP (a hung or "
          + "partitioned replica; its connections stay open and silent).")
  Fault fault;

  @Option(names = "--initial-backoff-ms", defaultValue = "0",
      description = "ClientOptions backoff initial; 0 (default) keeps the SDK default.")
  long initialBackoffMs;

  @Option(names = "--max-backoff-ms", defaultValue = "0",
      description = "ClientOptions backoff max; 0 (default) keeps the SDK default.")
  long maxBackoffMs;

  @Option(names = "--watch-idle-timeout-ms", defaultValue = "0",
      description = "ClientOptions watchIdleTimeout; 0 (default) keeps the SDK default.")
  long watchIdleTimeoutMs;

  @Option(names = "--heartbeat-ms", defaultValue = "0",
      description = "The replicas' --watch-heartbeat; 0 (default) keeps the server default (2 s).")
  long heartbeatMs;

  @Option(names = "--round-timeout-seconds", defaultValue = "40",
      description = "Longest wait for every client to see a write, per write.")
  int roundTimeoutSeconds;

  @Option(names = "--max-seconds", defaultValue = "900", description = "No round starts after this many seconds.")
  int maxSeconds;

  /** One round: nanoseconds from the fault, per client, and the round's reference times. */
  public record Round(long[] fromFault, int missing, int stayedOnA, long faultNanos, long writeRpcNanos,
                      long allFromWriteReturn, long steadyAllFromSend, long reconnects, long failovers) {
    public long all() {
      long m = 0;
      for (long v : fromFault) {
        m = Math.max(m, v);
      }
      return m;
    }
  }

  public record Result(List<Round> rounds) {
    public Report.Dist allClients() {
      return Report.Dist.of(rounds.stream().mapToLong(Round::all).toArray());
    }

    public Report.Dist perClient() {
      return Report.Dist.of(rounds.stream().flatMapToLong(r -> java.util.Arrays.stream(r.fromFault())).toArray());
    }

    public Report.Dist allFromWriteReturn() {
      return Report.Dist.of(rounds.stream().mapToLong(Round::allFromWriteReturn).toArray());
    }

    public Report.Dist steady() {
      return Report.Dist.of(rounds.stream().mapToLong(Round::steadyAllFromSend).toArray());
    }

    public boolean complete() {
      return rounds.stream().allMatch(r -> r.missing() == 0 && r.stayedOnA() == 0);
    }

    public boolean goalMet() {
      return complete() && !rounds.isEmpty() && allClients().max() < GOAL_NANOS;
    }
  }

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.complete() ? 0 : 1;
  }

  public Result run(PrintStream out) throws Exception {
    if (replicas < 2 || replicas > 5 || clients < 1 || clients > 1000 || rounds < 1 || rounds > 100
        || ranges < 2 || ranges > 30_000 || shards < 2 || shards > 1000 || roundTimeoutSeconds < 1
        || roundTimeoutSeconds > 600 || maxSeconds < 1 || maxSeconds > 7200 || initialBackoffMs < 0
        || maxBackoffMs < 0 || (initialBackoffMs > 0) != (maxBackoffMs > 0)) {
      throw new IllegalArgumentException("replicas 2-5, clients 1-1000, rounds 1-100, ranges 2-30000, shards "
          + "2-1000, round-timeout-seconds 1-600, max-seconds 1-7200, backoff: both or neither");
    }
    out.println("watch-recovery | " + Report.environment());
    String prefix = "/bench-recovery-" + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    CatalogPaths paths = new CatalogPaths(prefix);
    Path logDir = Files.createTempDirectory("shardmap-bench-recovery");
    Level clientLevel = CLIENT_LOG.getLevel();
    // Every client logs its lost directory once per round: 100 identical warnings.
    CLIENT_LOG.setLevel(Level.SEVERE);
    boolean ok = false;
    try (Closer closer = new Closer()) {
      LocalEtcd etcd = closer.add(LocalEtcd.start(etcdEndpoints, etcdMembers));
      long prev;
      try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(etcd.endpoints()).build()) {
        prev = RangeMaps.write(store, paths, RangeMaps.KEYSPACE, ranges, shards, etcd.maxTxnOps());
      }
      List<ServerProcess> alternates = new ArrayList<>();
      for (int i = 1; i < replicas; i++) {
        alternates.add(closer.add(ServerProcess.start("replica-" + (char) ('a' + i), etcd.endpoints(), prefix,
            logDir, prev, serverArgs())));
      }
      ServerProcess b = alternates.get(0);
      ManagedChannel adminCh = NettyChannelBuilder.forAddress("127.0.0.1", b.port()).usePlaintext().build();
      closer.add(() -> {
        adminCh.shutdownNow();
        adminCh.awaitTermination(5, TimeUnit.SECONDS);
      });
      Reassigner writer = new Reassigner(adminCh, ranges, shards);
      ClientOptions defaults = ClientOptions.builder().targets("127.0.0.1:1").keyspaces("x").build();
      String backoff = initialBackoffMs > 0 ? "backoff " + initialBackoffMs + " ms .. " + maxBackoffMs + " ms"
          : "SDK defaults (backoff " + defaults.initialBackoff().toMillis() + " ms .. "
              + defaults.maxBackoff().toMillis() + " ms)";
      out.println("etcd:     " + etcd.description() + ", prefix " + prefix);
      out.println("replicas: " + replicas + " directory servers, each a child JVM (io.shardmap.server.Main, default "
          + "options" + (heartbeatMs > 0 ? " but --watch-heartbeat " + heartbeatMs + "ms" : ": heartbeat 2 s")
          + "); A is started fresh every round; writes go through B; keyspace '"
          + RangeMaps.KEYSPACE + "': " + ranges + " ranges over " + shards + " shards");
      out.println("clients:  " + clients + " ShardmapClients per round, targets A, B, ...; " + backoff
          + "; watchIdleTimeout " + (watchIdleTimeoutMs > 0 ? watchIdleTimeoutMs + " ms"
              : defaults.watchIdleTimeout().toMillis() + " ms (default)"));
      out.println("fault:    " + (fault == Fault.kill ? "SIGKILL of A" : "SIGSTOP of A (then SIGKILL at the "
          + "round's end)") + ", then at once ReassignRange through B; a client has recovered when its map "
          + "listener sees that write");
      out.println("baseline: the same clients seeing a write made through B just before the fault (healthy stream)");
      out.println("logs:     " + logDir);
      out.println();

      List<Round> done = new ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
      for (int round = 1; round <= rounds && System.nanoTime() < deadline; round++) {
        RoundAndRevision r = round(round, etcd, prefix, logDir, alternates, writer, prev, out);
        done.add(r.round());
        prev = r.lastRevision();
      }
      Result result = new Result(done);
      print(out, result);
      ok = true;
      return result;
    } finally {
      CLIENT_LOG.setLevel(clientLevel);
      if (ok) {
        deleteTree(logDir);
      }
    }
  }

  private String[] serverArgs() {
    return heartbeatMs > 0 ? new String[] {"--watch-heartbeat", heartbeatMs + "ms"} : new String[0];
  }

  private record RoundAndRevision(Round round, long lastRevision) {}

  private RoundAndRevision round(int n, LocalEtcd etcd, String prefix, Path logDir, List<ServerProcess> alternates,
                                 Reassigner writer, long prev, PrintStream out) throws Exception {
    try (Closer closer = new Closer()) {
      ServerProcess a = closer.add(ServerProcess.start("replica-a-round-" + n, etcd.endpoints(), prefix, logDir, prev,
          serverArgs()));
      List<String> targets = new ArrayList<>();
      targets.add(a.target());
      alternates.forEach(s -> targets.add(s.target()));
      AtomicReference<Arrivals> current = new AtomicReference<>();
      List<ShardmapClient> cs = new ArrayList<>();
      for (int c = 0; c < clients; c++) {
        ClientOptions.Builder o = ClientOptions.builder().targets(targets).keyspaces(RangeMaps.KEYSPACE);
        if (initialBackoffMs > 0) {
          o.backoff(Duration.ofMillis(initialBackoffMs), Duration.ofMillis(maxBackoffMs));
        }
        if (watchIdleTimeoutMs > 0) {
          o.watchIdleTimeout(Duration.ofMillis(watchIdleTimeoutMs));
        }
        ShardmapClient client = closer.add(ShardmapClient.start(o.build()));
        int idx = c;
        client.addListener((before, after, resync) -> {
          Arrivals x = current.get();
          if (x != null) {
            x.mark(idx, after.revision());
          }
        });
        cs.add(client);
      }
      for (ShardmapClient c : cs) {
        if (c.stats().failovers() != 0 || c.stats().reconnects() != 0) {
          throw new IllegalStateException("a client did not start on replica A");
        }
      }
      // A healthy write: every stream on A works (and the baseline).
      Arrivals steady = new Arrivals(prev, cs.size());
      current.set(steady);
      long s0 = System.nanoTime();
      long rev = writer.send().getRevision();
      if (!steady.await(roundTimeoutSeconds, TimeUnit.SECONDS)) {
        throw new IllegalStateException("round " + n + ": " + steady.missing() + " clients did not see a write over "
            + "a healthy stream within " + roundTimeoutSeconds + " s");
      }
      long steadyAll = steady.last() - s0;

      Arrivals rec = new Arrivals(rev, cs.size());
      current.set(rec);
      long f0 = System.nanoTime();
      if (fault == Fault.kill) {
        a.kill();
      } else {
        a.freeze();
      }
      long f1 = System.nanoTime();
      ReassignRangeResponse resp = writer.send();
      long w1 = System.nanoTime();
      long after = resp.getRevision();
      rec.await(roundTimeoutSeconds, TimeUnit.SECONDS);
      current.set(null);
      long[] fromFault = new long[cs.size()];
      int missing = 0;
      int stayed = 0;
      long reconnects = 0;
      long failovers = 0;
      List<Long> got = new ArrayList<>();
      for (int i = 0; i < cs.size(); i++) {
        if (rec.revision(i) == 0) {
          missing++;
          fromFault[i] = TimeUnit.SECONDS.toNanos(roundTimeoutSeconds);
        } else {
          fromFault[i] = rec.nanos(i) - f0;
          got.add(rec.revision(i));
        }
        if (cs.get(i).stats().failovers() == 0) {
          stayed++;
        }
        reconnects += cs.get(i).stats().reconnects();
        failovers += cs.get(i).stats().failovers();
      }
      if (got.stream().anyMatch(v -> v != after)) {
        throw new IllegalStateException("round " + n + ": a client's first revision after the fault was not the "
            + "write's " + after + ": " + got);
      }
      Round r = new Round(fromFault, missing, stayed, f1 - f0, w1 - f1, rec.last() - w1, steadyAll, reconnects,
          failovers);
      Report.Dist d = Report.Dist.of(fromFault);
      out.printf(Locale.ROOT, "round %2d: all clients %s ms (first %s, median %s) after the fault; fault took %s ms, "
              + "write RPC %s ms, all clients %s ms after its return; missing %d, still on A %d; reconnects %d, "
              + "failovers %d; healthy write to all clients %s ms%n", n, Report.millis(d.max(), 1),
          Report.millis(d.min(), 1), Report.millis(d.p(0.5), 1), Report.millis(f1 - f0, 1), Report.millis(w1 - f1, 1),
          Report.millis(r.allFromWriteReturn(), 1), missing, stayed, reconnects, failovers,
          Report.millis(steadyAll, 1));
      return new RoundAndRevision(r, after);
    }
  }

  private static void print(PrintStream out, Result r) {
    Report.Dist all = r.allClients();
    Report.Dist per = r.perClient();
    Report.Dist steady = r.steady();
    Report.Dist fromReturn = r.allFromWriteReturn();
    out.println();
    out.print(Report.table(List.of("measure (ms)", "n", "p50", "p99", "max", "min"), List.of(
        List.of("all clients recovered, from the fault (per round)", Integer.toString(all.count()),
            Report.millis(all.p(0.5), 1), Report.millis(all.p(0.99), 1), Report.millis(all.max(), 1),
            Report.millis(all.min(), 1)),
        List.of("one client recovered, from the fault (pooled)", Integer.toString(per.count()),
            Report.millis(per.p(0.5), 1), Report.millis(per.p(0.99), 1), Report.millis(per.max(), 1),
            Report.millis(per.min(), 1)),
        List.of("all clients recovered, from the write's return", Integer.toString(fromReturn.count()),
            Report.millis(fromReturn.p(0.5), 1), Report.millis(fromReturn.p(0.99), 1),
            Report.millis(fromReturn.max(), 1), Report.millis(fromReturn.min(), 1)),
        List.of("baseline: healthy write to all clients, from send", Integer.toString(steady.count()),
            Report.millis(steady.p(0.5), 1), Report.millis(steady.p(0.99), 1), Report.millis(steady.max(), 1),
            Report.millis(steady.min(), 1)))));
    out.printf(Locale.ROOT, "recovery / healthy write, all clients: p50 %.1fx%n",
        (double) all.p(0.5) / Math.max(1, steady.p(0.5)));
    out.printf(Locale.ROOT, "goal (every client recovered < %d ms, every round): %s%n", GOAL_NANOS / 1_000_000,
        r.goalMet() ? "MET" : "NOT MET");
    out.println("end | load average " + Report.loadAverage());
  }

  private static void deleteTree(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // a temporary directory left behind is harmless
    }
  }
}
