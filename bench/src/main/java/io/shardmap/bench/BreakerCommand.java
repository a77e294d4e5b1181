package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.internal.CircuitOpenException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What a hung shard costs the callers of the SDK with its per-endpoint circuit breakers: point reads on two
 * shards (A and B) from a few paced threads each, while B is healthy, while B hangs (every PostgreSQL process
 * of B stopped with SIGSTOP: connections accepted by the kernel, nothing answers) before and after B's breaker
 * opened, and after B resumes until its breaker closed again. Reports the latency of calls to A in each phase
 * (they must not move), of B's failures before the breaker opened (a connection or socket timeout each), of
 * B's refusals once it is open (no borrow, no network), and the times to open and to recover.
 */
@Command(name = "breaker", mixinStandardHelpOptions = true,
    description = {
        "Point reads on shards A and B through ShardmapData (SDK breaker defaults) on two local PostgreSQL "
            + "servers; B is hung with SIGSTOP, then resumed.",
        "Prints per phase and shard: calls by outcome (ok, failed, refused by the open breaker) with p50/p99/max "
            + "latency, the time from the hang to B's breaker opening, and from the resume to it closing."})
public final class BreakerCommand implements Callable<Integer> {
  static final String KEYSPACE = "users";
  static final String TABLE = "bench_breaker";
  static final String READ_SQL = "SELECT v FROM " + TABLE + " WHERE id = ?";
  static final String BREAKER_B = "shard-s2-primary";

  @Option(names = "--threads-a", defaultValue = "4", description = "Caller threads on shard A.")
  int threadsA;

  @Option(names = "--threads-b", defaultValue = "4", description = "Caller threads on shard B.")
  int threadsB;

  @Option(names = "--think-ms", defaultValue = "2",
      description = "Pause of each caller after each call (a paced caller, not a CPU-bound loop).")
  int thinkMs;

  @Option(names = "--warmup-seconds", defaultValue = "3", description = "Warm-up before the healthy phase.")
  double warmupSeconds;

  @Option(names = "--seconds", defaultValue = "8",
      description = "Length of the healthy phase and of the phase with B's breaker open.")
  double seconds;

  @Option(names = "--connection-timeout-ms", defaultValue = "5000",
      description = "DataOptions.connectionTimeout (the SDK default: 5000).")
  long connectionTimeoutMs;

  @Option(names = "--socket-timeout-s", defaultValue = "5",
      description = "pgjdbc socketTimeout, so statements sent to the hung shard end.")
  int socketTimeoutSeconds;

  @Option(names = "--max-wait-seconds", defaultValue = "120",
      description = "Bound of waiting for the breaker to open and to close again.")
  int maxWaitSeconds;

  /** Phases; a call is counted in the phase it started in. */
  enum Phase { WARMUP, HEALTHY, HUNG_CLOSED, HUNG_OPEN, RECOVERING }

  enum Outcome { OK, FAILED, REFUSED }

  private static final int MAX_SAMPLES = 500_000;

  /** One caller's samples: phase, shard, outcome and latency of each call, kept in arrays it alone writes. */
  static final class Caller implements Runnable {
    final String shard;
    final long key;
    final BreakerCommand bench;
    final int[] kinds = new int[MAX_SAMPLES];
    final long[] nanos = new long[MAX_SAMPLES];
    int n;

    Caller(BreakerCommand bench, String shard, long key) {
      this.bench = bench;
      this.shard = shard;
      this.key = key;
    }

    @Override
    public void run() {
      while (!bench.stop && n < MAX_SAMPLES) {
        Phase p = bench.phase;
        long t0 = System.nanoTime();
        Outcome o;
        try {
          bench.read(key);
          o = Outcome.OK;
        } catch (CircuitOpenException e) {
          o = Outcome.REFUSED;
        } catch (SQLException | RuntimeException e) {
          o = Outcome.FAILED;
        }
        nanos[n] = System.nanoTime() - t0;
        kinds[n] = p.ordinal() * Outcome.values().length + o.ordinal();
        n++;
        try {
          Thread.sleep(bench.thinkMs);
        } catch (InterruptedException e) {
          return;
        }
      }
    }
  }

  private volatile Phase phase = Phase.WARMUP;
  private volatile boolean stop;
  private ShardmapData data;

  @Override
  public Integer call() throws Exception {
    return run(System.out) ? 0 : 1;
  }

  long read(long key) throws SQLException {
    return data.read(KEYSPACE, key, c -> {
      try (PreparedStatement ps = c.prepareStatement(READ_SQL)) {
        ps.setLong(1, key);
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? rs.getLong(1) : -1;
        }
      }
    });
  }

  boolean run(PrintStream out) throws Exception {
    if (threadsA < 1 || threadsA > 64 || threadsB < 1 || threadsB > 64 || thinkMs < 0 || seconds <= 0
        || maxWaitSeconds < 1) {
      throw new IllegalArgumentException("threads-a/threads-b 1-64, think-ms >= 0, seconds > 0, max-wait-seconds >= 1");
    }
    out.println("breaker | " + Report.environment());
    try (PostgresFixture pg = PostgresFixture.startNew(2);
         InMemoryMetaStore store = new InMemoryMetaStore();
         ShardmapFleet fleet = ShardmapFleet.builder().store(store).postgres(pg).shards(2).sockets()
             .productionIntervals().prefix("/bench").build()) {
      if (!pg.canControlInstances()) {
        throw new IllegalStateException("needs PostgreSQL servers of its own to hang (not " + PostgresFixture.class
            .getSimpleName() + " URLs)");
      }
      List<String> shards = fleet.shardNames();
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
          .addTables(ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id"))).addAllRangeShards(shards).build());
      long keyA = Long.MIN_VALUE / 2;
      long keyB = Long.MAX_VALUE / 2;
      for (int s = 0; s < 2; s++) {
        try (Connection c = pg.shard(s).connect(); Statement st = c.createStatement()) {
          st.execute("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, v bigint NOT NULL)");
          st.execute("INSERT INTO " + TABLE + " VALUES (" + (s == 0 ? keyA : keyB) + ", 1)");
        }
      }
      try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder()
          .targets(fleet.targets()).keyspaces(KEYSPACE).build())) {
        if (!client.route(KEYSPACE, keyA).shard().equals(shards.get(0))
            || !client.route(KEYSPACE, keyB).shard().equals(shards.get(1))) {
          throw new IllegalStateException("the keys do not route to s1 and s2");
        }
        DataOptions options = DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
            .maxPoolSize(threadsA + threadsB).connectionTimeout(Duration.ofMillis(connectionTimeoutMs))
            .property("socketTimeout", Integer.toString(socketTimeoutSeconds)).build();
        data = ShardmapData.open(client, options);
        try {
          return measure(out, pg, options, keyA, keyB);
        } finally {
          data.close();
        }
      }
    }
  }

  private boolean measure(PrintStream out, PostgresFixture pg, DataOptions o, long keyA, long keyB)
      throws Exception {
    out.printf("setup:   2 PostgreSQL servers on loopback (shard A = s1, shard B = s2), point reads by primary key "
            + "through ShardmapData.read; %d callers on A, %d on B, each pausing %d ms after every call%n",
        threadsA, threadsB, thinkMs);
    out.printf("options: connectionTimeout %d ms, socketTimeout %d s, breaker defaults: %d%% of a %d-call window "
            + "(min %d calls), open %d ms, %d half-open probes, slow above %d ms%n", o.connectionTimeout().toMillis(),
        socketTimeoutSeconds, o.breakerFailureRateThreshold(), o.breakerWindowSize(), o.breakerMinimumCalls(),
        o.breakerOpenDuration().toMillis(), o.breakerHalfOpenCalls(), o.breakerSlowCallThreshold().toMillis());
    List<Caller> callers = new ArrayList<>();
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < threadsA + threadsB; i++) {
      Caller c = i < threadsA ? new Caller(this, "A", keyA) : new Caller(this, "B", keyB);
      callers.add(c);
      Thread t = new Thread(c, "breaker-bench-" + c.shard + "-" + i);
      t.setDaemon(true);
      threads.add(t);
      t.start();
    }
    long maxWait = TimeUnit.SECONDS.toNanos(maxWaitSeconds);
    boolean ok = true;
    long toOpen = -1;
    long toClose = -1;
    try {
      Thread.sleep((long) (warmupSeconds * 1000));
      phase = Phase.HEALTHY;
      Thread.sleep((long) (seconds * 1000));
      phase = Phase.HUNG_CLOSED;
      long paused = System.nanoTime();
      pg.pause(1);
      try {
        while (!"OPEN".equals(state()) && System.nanoTime() - paused < maxWait) {
          Thread.sleep(1);
        }
        toOpen = System.nanoTime() - paused;
        phase = Phase.HUNG_OPEN;
        if (!"OPEN".equals(state())) {
          out.println("FAILED: B's breaker did not open within " + maxWaitSeconds + " s");
          ok = false;
        } else {
          Thread.sleep((long) (seconds * 1000));
        }
      } finally {
        phase = Phase.RECOVERING;
        pg.resume(1);
      }
      long resumed = System.nanoTime();
      // A probe needs one call after the open duration; callers keep calling, so it closes by itself.
      while (!"CLOSED".equals(state()) && System.nanoTime() - resumed < maxWait) {
        Thread.sleep(1);
      }
      toClose = System.nanoTime() - resumed;
      if (!"CLOSED".equals(state())) {
        out.println("FAILED: B's breaker did not close within " + maxWaitSeconds + " s of the resume");
        ok = false;
      }
      Thread.sleep(500);
    } finally {
      stop = true;
      for (Thread t : threads) {
        t.join(TimeUnit.SECONDS.toMillis(o.connectionTimeout().toSeconds() + socketTimeoutSeconds + 10));
      }
    }
    List<List<String>> rows = new ArrayList<>();
    for (Phase p : Phase.values()) {
      if (p == Phase.WARMUP) {
        continue;
      }
      for (String shard : List.of("A", "B")) {
        for (Outcome oc : Outcome.values()) {
          long[] lat = samples(callers, shard, p, oc);
          if (lat.length == 0) {
            continue;
          }
          Report.Dist d = Report.Dist.of(lat);
          rows.add(List.of(p.name().toLowerCase(java.util.Locale.ROOT), shard, oc.name().toLowerCase(
              java.util.Locale.ROOT), String.format("%,d", d.count()), Report.millis(d.p(0.50), 2),
              Report.millis(d.p(0.99), 2), Report.millis(d.max(), 2)));
        }
      }
    }
    out.print(Report.table(List.of("phase", "shard", "outcome", "calls", "p50 ms", "p99 ms", "max ms"), rows));
    out.printf("B hung -> breaker OPEN: %s ms; B resumed -> breaker CLOSED: %s ms%n", Report.millis(toOpen, 0),
        Report.millis(toClose, 0));
    long failedA = 0;
    for (Phase p : Phase.values()) {
      failedA += samples(callers, "A", p, Outcome.FAILED).length + samples(callers, "A", p, Outcome.REFUSED).length;
    }
    if (failedA > 0) {
      out.println("FAILED: " + failedA + " calls to A failed");
      ok = false;
    }
    out.println("load average after: " + Report.loadAverage());
    return ok;
  }

  private String state() {
    return data.stats().breakerStates().get(BREAKER_B);
  }

  private static long[] samples(List<Caller> callers, String shard, Phase p, Outcome o) {
    int kind = p.ordinal() * Outcome.values().length + o.ordinal();
    long[] out = new long[0];
    int size = 0;
    for (Caller c : callers) {
      if (!c.shard.equals(shard)) {
        continue;
      }
      for (int i = 0; i < c.n; i++) {
        if (c.kinds[i] == kind) {
          if (size == out.length) {
            out = Arrays.copyOf(out, Math.max(16, size * 2));
          }
          out[size++] = c.nanos[i];
        }
      }
    }
    return Arrays.copyOf(out, size);
  }
}
