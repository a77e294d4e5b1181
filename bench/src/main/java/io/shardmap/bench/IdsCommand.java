package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.GlobalIds;
import io.shardmap.client.GlobalSequence;
import io.shardmap.client.ShardmapClient;
import io.shardmap.core.ids.IdGenerator;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.core.ids.InMemoryWorkerLease;
import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.Sequence;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Global id generation (issue 14): {@link IdGenerator#next()} on one and on N threads, against the layout's
 * own cap (2^sequenceBits ids per ms per worker: 4,096,000/s for Twitter's 12 bits) and a same-run baseline,
 * an {@link AtomicLong} increment loop (the cheapest thread-safe counter, no clock, no cap). A layout with
 * 20 sequence bits shows what one id costs when the cap is out of reach. With {@code --sequence}, the same run
 * also starts a local etcd and a directory server and measures the SDK: {@code GlobalIds.next()} (Snowflake on
 * a leased worker id) and {@code GlobalSequence.next()} (dense sequence, blocks reserved through the
 * directory) at several block sizes, each against the core generator's {@code next()} of the same run.
 * Bounded in time: every phase runs {@code --seconds} after {@code --warmup-seconds}.
 */
@Command(name = "ids", mixinStandardHelpOptions = true,
    description = {"IdGenerator.next() and fill() on 1 and N threads against the layout's cap (2^sequenceBits "
        + "per ms) and an AtomicLong increment loop (baseline).", "With --sequence also the SDK's GlobalIds and "
        + "GlobalSequence (dense sequence mode) through a local directory server.",
        "Prints ids/s, per thread, and the ratios to the cap, to the baseline and to the core next()."})
public final class IdsCommand implements Callable<Integer> {
  @Option(names = "--seconds", defaultValue = "2", description = "Measured seconds per case per round.")
  double seconds;

  @Option(names = "--warmup-seconds", defaultValue = "1", description = "Unmeasured seconds per case per round, first.")
  double warmupSeconds;

  @Option(names = "--rounds", defaultValue = "3", description = "Rounds; each runs every case, order rotating.")
  int rounds;

  @Option(names = "--threads", split = ",", description = "Thread counts (default 1 and the number of cpus).")
  int[] threads;

  @Option(names = "--sequence", description = "Also measure the SDK's GlobalIds and GlobalSequence (dense "
      + "sequence mode) on a local etcd (or --etcd) and one directory server.")
  boolean sequence;

  @Option(names = "--block-sizes", split = ",", defaultValue = "100,1000,10000",
      description = "Block sizes of the sequence cases (with --sequence).")
  int[] blockSizes;

  @Option(names = "--etcd", split = ",", description = "etcd client endpoints on 127.0.0.1 (default: start a "
      + "1-member etcd).")
  List<String> etcdEndpoints;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  /** One op: returns a value (folded into a sink so nothing is dead code); ids must strictly increase per thread. */
  interface Op {
    long next();
  }

  /** The core generator's next() on the default layout: what the other cases are compared with. */
  static final String SNOWFLAKE = "next(), 41/10/12";

  record Case(String name, long capPerSecond, boolean increasing, Supplier<Op> perThread) {}

  record Row(String name, int threads, double idsPerSecond, long capPerSecond, long orderViolations) {}

  List<Row> run(PrintStream out) throws Exception {
    out.println("ids | " + Report.environment());
    int[] counts = threads != null ? threads : new int[] {1, Runtime.getRuntime().availableProcessors()};
    IdLayout twitter = IdLayout.defaults();
    IdLayout wide = IdLayout.builder().timeBits(41).workerBits(2).sequenceBits(20).build();
    IdLayout spread = IdLayout.builder().spreadBits(3).build();
    long cap12 = (twitter.maxSequence() + 1) * 1000;
    long cap20 = (wide.maxSequence() + 1) * 1000;
    out.printf("setup:   layouts %s; %s; %s; system clock; an in-memory lease that never expires (the generator "
        + "still reads it on every id)%n", twitter, wide, spread);
    List<Row> rows = new ArrayList<>();
    Closer closer = new Closer();
    ShardmapClient client = null;
    ShardmapFleet fleet = null;
    if (sequence) {
      LocalEtcd etcd = closer.add(LocalEtcd.start(etcdEndpoints, 1));
      fleet = closer.add(ShardmapFleet.builder().etcdEndpoints(etcd.endpoints()).shards(0).servers(1).sockets()
          .productionIntervals().build());
      client = closer.add(ShardmapClient.start(ClientOptions.builder().targets(fleet.targets()).keyspaces("users")
          .clientId("bench-ids").build()));
      out.printf("setup:   --sequence: %s, one directory server (%s), one SDK client; GlobalIds lease TTL 10 s; "
          + "sequence blocks %s%n", etcd.description(), fleet.targets().get(0), Arrays.toString(blockSizes));
    }
    List<String> sequenceNotes = new ArrayList<>();
    try {
      for (int n : counts) {
        List<Case> cases = new ArrayList<>();
        Closer perCount = new Closer();
        AtomicLong counter = new AtomicLong();
        cases.add(new Case("AtomicLong.incrementAndGet (baseline)", 0, true, () -> counter::incrementAndGet));
        IdGenerator g = IdGenerator.create(twitter, InMemoryWorkerLease.unbounded(1));
        cases.add(new Case(SNOWFLAKE, cap12, true, () -> g::next));
        IdGenerator f = IdGenerator.create(twitter, InMemoryWorkerLease.unbounded(2));
        cases.add(new Case("fill(4096), 41/10/12", cap12, true, () -> {
          long[] buf = new long[4096];
          int[] at = {buf.length};
          return () -> {
            if (at[0] == buf.length) {
              f.fill(buf, 0, buf.length);
              at[0] = 0;
            }
            return buf[at[0]++];
          };
        }));
        IdGenerator s = IdGenerator.create(spread, InMemoryWorkerLease.unbounded(3));
        cases.add(new Case("next(), 41/10/12 spread 3", cap12, false, () -> s::next));
        IdGenerator w = IdGenerator.create(wide, InMemoryWorkerLease.unbounded(1));
        cases.add(new Case("next(), 41/2/20 (cap out of reach)", cap20, true, () -> w::next));
        List<String> seqNames = new ArrayList<>();
        if (client != null) {
          GlobalIds sdk = perCount.add(client.ids("bench-t" + n, twitter));
          cases.add(new Case("SDK GlobalIds.next(), 41/10/12", cap12, true, () -> sdk::next));
          for (int b : blockSizes) {
            String name = "bench-b" + b + "-t" + n;
            fleet.admin().withDeadlineAfter(10, java.util.concurrent.TimeUnit.SECONDS).createSequence(
                CreateSequenceRequest.newBuilder().setName(name).setDefaultBlockSize(b).build());
            GlobalSequence seq = perCount.add(client.sequence(name));
            cases.add(new Case("SDK GlobalSequence.next(), block " + b, 0, true, () -> seq::next));
            seqNames.add(name);
          }
        }
        double[][] perRound = new double[cases.size()][rounds];
        long[] violations = new long[cases.size()];
        for (int r = 0; r < rounds; r++) {
          for (int i = 0; i < cases.size(); i++) {
            int k = (i + r) % cases.size();
            long[] result = measure(cases.get(k), n);
            perRound[k][r] = result[0] / seconds;
            violations[k] += result[1];
          }
        }
        for (int k = 0; k < cases.size(); k++) {
          double[] v = perRound[k].clone();
          Arrays.sort(v);
          rows.add(new Row(cases.get(k).name(), n, v[v.length / 2], cases.get(k).capPerSecond(),
              cases.get(k).increasing() ? violations[k] : -1));
        }
        perCount.close();
        for (String name : seqNames) {
          Sequence q = ShardMapIdServiceGrpc.newBlockingStub(fleet.channel(0))
              .withDeadlineAfter(10, java.util.concurrent.TimeUnit.SECONDS)
              .getSequence(GetSequenceRequest.newBuilder().setName(name).build()).getSequence();
          double measured = rounds * (seconds + warmupSeconds);
          sequenceNotes.add(String.format("%s: %,d blocks reserved (%,.0f per second of the run), %,d numbers",
              name, q.getReservations(), q.getReservations() / measured, q.getNextValue() - q.getStart()));
        }
      }
    } finally {
      closer.close();
    }
    List<List<String>> table = new ArrayList<>();
    for (Row row : rows) {
      double base = rows.stream().filter(x -> x.threads() == row.threads() && x.name().startsWith("AtomicLong"))
          .mapToDouble(Row::idsPerSecond).findFirst().orElse(0);
      double snowflake = rows.stream().filter(x -> x.threads() == row.threads() && x.name().equals(SNOWFLAKE))
          .mapToDouble(Row::idsPerSecond).findFirst().orElse(0);
      boolean capped = row.capPerSecond() != 0;
      table.add(List.of(row.name(), Integer.toString(row.threads()), String.format("%,.0f", row.idsPerSecond()),
          String.format("%,.0f", row.idsPerSecond() / row.threads()),
          capped ? String.format("%,d", row.capPerSecond()) : "-",
          capped ? Report.fmt(row.idsPerSecond() / row.capPerSecond(), 3) : "-",
          Report.fmt(row.idsPerSecond() / base, 3), Report.fmt(row.idsPerSecond() / snowflake, 3),
          row.orderViolations() < 0 ? "n/a" : Long.toString(row.orderViolations())));
    }
    out.println(Report.table(List.of("case", "threads", "ids/s (median of rounds)", "ids/s per thread", "cap /s",
        "/ cap", "/ baseline", "/ snowflake next()", "not increasing per thread"), table));
    for (String note : sequenceNotes) {
      out.println("sequence " + note);
    }
    return rows;
  }

  /** Runs warm-up then the measured phase on {@code n} threads; returns {ids in the measured phase, order violations}. */
  private long[] measure(Case c, int n) throws InterruptedException {
    long[] done = new long[n];
    long[] bad = new long[n];
    long[] sinks = new long[n];
    CountDownLatch start = new CountDownLatch(1);
    List<Thread> ts = new ArrayList<>();
    long warmNanos = (long) (warmupSeconds * 1e9);
    long measureNanos = (long) (seconds * 1e9);
    long[] t0 = new long[1];
    for (int t = 0; t < n; t++) {
      int me = t;
      Thread th = new Thread(() -> {
        Op op = c.perThread().get();
        try {
          start.await();
        } catch (InterruptedException e) {
          return;
        }
        long warmEnd = t0[0] + warmNanos;
        long end = warmEnd + measureNanos;
        long prev = Long.MIN_VALUE;
        long sink = 0;
        long count = 0;
        long violations = 0;
        boolean measuring = false;
        for (;;) {
          long now = System.nanoTime();
          if (now >= end) {
            break;
          }
          if (!measuring && now >= warmEnd) {
            measuring = true;
            count = 0;
            violations = 0;
          }
          for (int i = 0; i < 256; i++) {
            long id = op.next();
            violations += id > prev ? 0 : 1;
            prev = id;
            sink ^= id;
          }
          count += 256;
        }
        done[me] = count;
        bad[me] = c.increasing() ? violations : 0;
        sinks[me] = sink;
      }, "ids-" + t);
      ts.add(th);
      th.start();
    }
    t0[0] = System.nanoTime();
    start.countDown();
    for (Thread th : ts) {
      th.join();
    }
    long total = 0;
    long violations = 0;
    long sink = 0;
    for (int t = 0; t < n; t++) {
      total += done[t];
      violations += bad[t];
      sink ^= sinks[t];
    }
    if (sink == 42) {
      System.out.print(""); // keeps the sink alive
    }
    return new long[] {total, violations};
  }
}
