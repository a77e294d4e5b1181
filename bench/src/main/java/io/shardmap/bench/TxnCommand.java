package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What {@link ShardmapData#acrossShards} costs (issue 13's benchmarks), through the SDK on two PostgreSQL
 * shards (fsync on by default) behind a directory server, against same-run baselines:
 *
 * <ul>
 *   <li>{@code separate-parallel}: the transfer's two UPDATEs committed separately, one {@code inTransaction}
 *       per shard, both at once: the baseline of the two-shard cases (what the goal of 1.5x is of);
 *   <li>{@code separate-sequential}: the same two {@code inTransaction} calls one after the other, what an
 *       application without cross-shard transactions does;
 *   <li>{@code acrossShards-2}: the transfer as one {@code acrossShards} work, an UPDATE on each shard;
 *   <li>{@code acrossShards-2-no-lock-timeout}: the same with {@code crossShardLockTimeout(0)}, a diagnostic
 *       row: what the {@code SET LOCAL lock_timeout} round trip the SDK sends before the second shard's first
 *       statement costs;
 *   <li>{@code acrossShards-2-no-wait}: the same with {@code crossShardCommitWait(false)}: the call returns
 *       once the decision is durable, and the prepared shard commits right after;
 *   <li>{@code inTransaction-1} and {@code acrossShards-1}: one UPDATE on one shard, the single-shard path
 *       against plain {@code inTransaction}.
 * </ul>
 *
 * <p>Rounds rotate the order of the cases, and each case runs its thread counts back to back, so a case and
 * its baseline are measured minutes apart at most; every ratio is taken per round against the same round's
 * baseline, and the table gives the median over rounds. Every shard-0 UPDATE adds 1 and every shard-1 UPDATE
 * subtracts 1, so at the end the total of all balances must have grown by exactly the number of
 * single-shard operations that returned: the oracle that every transfer committed on both sides or neither.
 */
@Command(name = "txn", mixinStandardHelpOptions = true,
    description = {"Cross-shard transactions through the SDK (ShardmapData.acrossShards) on two local PostgreSQL "
        + "shards: a two-shard transfer against the same two writes committed separately (in parallel and one "
        + "after the other), and the single-shard path against plain inTransaction.",
        "Prints p50/p99 latency and operations/s at each thread count, each as the median over rounds and as "
            + "the median of the per-round ratios to the same round's baseline."})
public final class TxnCommand implements Callable<Integer> {
  static final String KEYSPACE = "accounts";
  static final String TABLE = "accounts";
  static final String UPDATE = "UPDATE " + TABLE + " SET balance = balance + ? WHERE id = ?";
  /** A phase stops after this many failed operations: something is broken, not slow. */
  static final int MAX_ERRORS = 20;

  @Option(names = "--rounds", defaultValue = "5", description = "Rounds; each runs every case at every thread count, "
      + "order rotating (default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--ops", defaultValue = "3000",
      description = "Operation limit of each measured phase (default: ${DEFAULT-VALUE}).")
  int ops;

  @Option(names = "--seconds", defaultValue = "4", description = "Time limit of each measured phase (default: "
      + "${DEFAULT-VALUE}).")
  double seconds;

  @Option(names = "--warmup-ops", defaultValue = "200",
      description = "Untimed operations before each measured phase, same thread count (default: ${DEFAULT-VALUE}).")
  int warmupOps;

  @Option(names = "--threads", split = ",", defaultValue = "1,8",
      description = "Client threads, each one operation at a time (default: ${DEFAULT-VALUE}).")
  List<Integer> threads;

  @Option(names = "--cases", split = ",", defaultValue = "separate-parallel,separate-sequential,acrossShards-2,"
      + "acrossShards-2-no-lock-timeout,acrossShards-2-no-wait,inTransaction-1,acrossShards-1",
      description = "Cases to run (default: ${DEFAULT-VALUE}); a case's baseline always runs too. Also: "
          + "steps-as-sdk, steps-parallel-lock-timeout, steps-no-write-check (a replay of acrossShards' statements "
          + "on the SDK's pools, to price its extra round trips).")
  List<String> cases;

  @Option(names = "--fsync", defaultValue = "true", arity = "1",
      description = "fsync and full_page_writes on the PostgreSQL servers (default true: commits and prepares "
          + "reach the disk, as in production; the test fixture's default is off).")
  boolean fsync;

  @Option(names = "--accounts", defaultValue = "10000",
      description = "Rows per shard; each operation picks its rows at random (default: ${DEFAULT-VALUE}).")
  int accounts;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  /** One operation: {@code a} is a row of shard 0, {@code b} one of shard 1. */
  @FunctionalInterface
  interface Op {
    void run(long a, long b) throws Exception;
  }

  /** A case, the case its ratios are taken against, and whether it touches one shard (the oracle's count). */
  record Case(String name, String baseline, boolean singleShard, Op op) {}

  /** One measured phase: operations completed, failures, the span from start to the last completion. */
  record Phase(long completed, long errors, String firstError, long elapsedNanos, long[] latencies) {
    double perSecond() {
      return completed * 1e9 / Math.max(1, elapsedNanos);
    }
  }

  /** All the case names, in the order they run: the default ones, then the diagnostic replays of {@link TxnSteps}. */
  static final List<String> ALL = List.of("separate-parallel", "separate-sequential", "acrossShards-2",
      "acrossShards-2-no-lock-timeout", "acrossShards-2-no-wait", "inTransaction-1", "acrossShards-1", "steps-as-sdk",
      "steps-parallel-lock-timeout", "steps-no-write-check");

  private final AtomicLong singleShardDone = new AtomicLong();

  public Map<String, Map<Integer, List<Phase>>> run(PrintStream out) throws Exception {
    if (rounds < 1 || ops < 1 || warmupOps < 0 || seconds <= 0 || accounts < 1
        || threads.isEmpty() || threads.stream().anyMatch(t -> t < 1 || t > 64)) {
      throw new IllegalArgumentException("--rounds, --ops, --accounts >= 1, --warmup-ops >= 0, --seconds > 0, "
          + "--threads 1 to 64");
    }
    for (String c : cases) {
      if (!ALL.contains(c)) {
        throw new IllegalArgumentException("--cases: unknown case '" + c + "'; known: " + String.join(", ", ALL));
      }
    }
    int maxThreads = threads.stream().mapToInt(Integer::intValue).max().orElseThrow();
    out.println("txn | " + Report.environment());
    try (Closer closer = new Closer()) {
      String onOff = fsync ? "on" : "off";
      PostgresFixture pg = closer.add(PostgresFixture.startNew(2,
          List.of("fsync = " + onOff, "full_page_writes = " + onOff)));
      for (int i = 0; i < 2; i++) {
        PgInstance db = pg.shard(i);
        long lo = 1 + (long) i * accounts;
        db.exec("DROP TABLE IF EXISTS " + TABLE);
        db.exec("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, balance bigint NOT NULL)");
        db.exec("INSERT INTO " + TABLE + " SELECT g, 1000 FROM generate_series(" + lo + ", " + (lo + accounts - 1)
            + ") g");
        db.exec("VACUUM ANALYZE " + TABLE);
      }
      InMemoryMetaStore store = closer.add(new InMemoryMetaStore());
      ShardmapFleet fleet = closer.add(ShardmapFleet.builder().store(store).postgres(pg).shards(2).sockets()
          .productionIntervals().prefix("/bench-txn").build());
      List<String> names = fleet.shardNames();
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
              .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
              .addTables(ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id")))
          .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder()
              .setEnd(Key.newBuilder().setIntKey(1L + accounts))).setShard(names.get(0)))
          .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder()
              .setStart(Key.newBuilder().setIntKey(1L + accounts))).setShard(names.get(1)))
          .build());
      ShardmapClient client = closer.add(ShardmapClient.start(ClientOptions.builder().targets(fleet.targets())
          .keyspaces(KEYSPACE).build()));
      if (!client.route(KEYSPACE, 1).shard().equals(names.get(0))
          || !client.route(KEYSPACE, 1L + accounts).shard().equals(names.get(1))) {
        throw new IllegalStateException("the map does not route the accounts to the shards holding them");
      }
      PgInstance s0 = pg.shard(0);
      DataOptions.Builder options = DataOptions.builder().user(s0.user()).password(s0.password())
          .maxPoolSize(maxThreads).minIdle(maxThreads);
      DataOptions defaults = options.build();
      ShardmapData data = closer.add(ShardmapData.open(client, defaults));
      ShardmapData noLockTimeout = closer.add(ShardmapData.open(client,
          options.crossShardLockTimeout(Duration.ZERO).build()));
      ShardmapData noWait = closer.add(ShardmapData.open(client, options.crossShardLockTimeout(
          defaults.crossShardLockTimeout()).crossShardCommitWait(false).build()));
      ExecutorService helpers = Executors.newCachedThreadPool(daemon("txn-second-shard"));
      closer.add(helpers::shutdownNow);
      ExecutorService workers = Executors.newFixedThreadPool(maxThreads, daemon("txn-client"));
      closer.add(workers::shutdownNow);

      Map<String, Case> all = new LinkedHashMap<>();
      all.put("separate-parallel", new Case("separate-parallel", "separate-parallel", false, (a, b) -> {
        Future<?> other = helpers.submit(() -> data.inTransaction(KEYSPACE, b, c -> update(c, b, -1)));
        data.inTransaction(KEYSPACE, a, c -> update(c, a, 1));
        other.get(30, TimeUnit.SECONDS);
      }));
      all.put("separate-sequential", new Case("separate-sequential", "separate-parallel", false, (a, b) -> {
        data.inTransaction(KEYSPACE, a, c -> update(c, a, 1));
        data.inTransaction(KEYSPACE, b, c -> update(c, b, -1));
      }));
      all.put("acrossShards-2", new Case("acrossShards-2", "separate-parallel", false, (a, b) -> transfer(data, a, b)));
      all.put("acrossShards-2-no-lock-timeout", new Case("acrossShards-2-no-lock-timeout", "separate-parallel", false,
          (a, b) -> transfer(noLockTimeout, a, b)));
      all.put("acrossShards-2-no-wait", new Case("acrossShards-2-no-wait", "separate-parallel", false,
          (a, b) -> transfer(noWait, a, b)));
      all.put("inTransaction-1", new Case("inTransaction-1", "inTransaction-1", true,
          (a, b) -> data.inTransaction(KEYSPACE, a, c -> update(c, a, 1))));
      all.put("acrossShards-1", new Case("acrossShards-1", "inTransaction-1", true,
          (a, b) -> data.acrossShards(tx -> update(tx.connection(KEYSPACE, a), a, 1))));
      TxnSteps steps = new TxnSteps(data.primary(names.get(0)), names.get(0), data.primary(names.get(1)),
          names.get(1), helpers, defaults.crossShardLockTimeout());
      for (TxnSteps.Variant v : TxnSteps.Variant.values()) {
        String name = "steps-" + v.name().toLowerCase(Locale.ROOT).replace('_', '-');
        all.put(name, new Case(name, "separate-parallel", false, (a, b) -> steps.transfer(v, a, b)));
      }
      for (int i = 0; i < 2; i++) {
        for (String ddl : DecisionRows.ddl()) {
          pg.shard(i).exec(ddl); // as the coordinator installs it on first use, for the replays too
        }
      }
      List<Case> run = new ArrayList<>();
      for (String name : ALL) {
        if (cases.contains(name) || cases.stream().anyMatch(c -> all.get(c).baseline().equals(name))) {
          run.add(all.get(name));
        }
      }
      long totalBefore = total(pg);
      try (Connection c = s0.connect(); Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW fsync")) {
        rs.next();
        out.printf(Locale.ROOT, "setup:   2 PostgreSQL shards (fsync %s, synchronous_commit on), %,d accounts each, "
            + "behind a directory server (in-memory store); SDK pools of %d connections per shard%n",
            rs.getString(1), accounts, maxThreads);
      }
      out.printf(Locale.ROOT, "phases:  one untimed pass of every case; then per round, case (order rotating) and "
          + "thread count %s: %d untimed operations, then at most %,d operations or %.1f s; %d rounds%n", threads,
          warmupOps, ops, seconds, rounds);

      Map<String, Map<Integer, List<Phase>>> results = new LinkedHashMap<>();
      for (Case c : run) {
        Map<Integer, List<Phase>> byThreads = new LinkedHashMap<>();
        threads.forEach(t -> byThreads.put(t, new ArrayList<>()));
        results.put(c.name(), byThreads);
      }
      // One untimed pass of every case first: JIT, the pools' connections and statement caches, the decisions
      // table's install, so the first round's first case is not the one that pays for them.
      for (Case c : run) {
        phase(workers, c, maxThreads, Math.max(warmupOps, 1), seconds, false);
      }
      for (int round = 0; round < rounds; round++) {
        long t0 = System.nanoTime();
        for (int i = 0; i < run.size(); i++) {
          Case c = run.get((i + round) % run.size());
          for (int t : threads) {
            if (warmupOps > 0) {
              phase(workers, c, t, warmupOps, seconds, false);
            }
            Phase p = phase(workers, c, t, ops, seconds, true);
            if (p.errors() > 0) {
              throw new IllegalStateException(c.name() + " at " + t + " threads: " + p.errors() + " operations failed; "
                  + "first: " + p.firstError());
            }
            results.get(c.name()).get(t).add(p);
          }
        }
        for (int i = 0; i < 2; i++) {
          // Decisions of committed transactions are garbage (the resolver deletes them): untimed, between rounds.
          pg.shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.txn_decisions') IS NOT NULL THEN "
              + "DELETE FROM shardmap.txn_decisions; END IF; END $$");
        }
        out.printf(Locale.ROOT, "round %d/%d: %.0f s, load average %s%n", round + 1, rounds,
            (System.nanoTime() - t0) / 1e9, Report.loadAverage());
      }
      check(pg, totalBefore);
      out.println();
      out.println(Report.table(List.of("case", "threads", "ops", "p50 ms", "p99 ms", "ops/s", "p50 / base",
          "p99 / base", "ops/s / base", "p50 / base by round", "baseline"), rows(run, results)));
      out.println("Figures: medians over the rounds; ratios: the median of each round's ratio to the same round's "
          + "baseline. load average at the end: " + Report.loadAverage());
      return results;
    }
  }

  private static void transfer(ShardmapData data, long a, long b) throws SQLException {
    data.acrossShards(tx -> {
      update(tx.connection(KEYSPACE, a), a, 1);
      update(tx.connection(KEYSPACE, b), b, -1);
      return null;
    });
  }

  static Void update(Connection c, long id, long delta) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(UPDATE)) {
      ps.setLong(1, delta);
      ps.setLong(2, id);
      if (ps.executeUpdate() != 1) {
        throw new IllegalStateException("account " + id + " missing");
      }
    }
    return null;
  }

  /**
   * Runs {@code c} on {@code threads} threads, each one operation at a time, until {@code max} operations
   * were issued or {@code seconds} passed. Rows are picked at random, so two threads rarely touch one row.
   */
  private Phase phase(ExecutorService workers, Case c, int threads, int max, double seconds, boolean record)
      throws Exception {
    long[] lat = new long[record ? max : 0];
    AtomicInteger issued = new AtomicInteger();
    AtomicInteger recorded = new AtomicInteger();
    AtomicLong completed = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    AtomicReference<String> firstError = new AtomicReference<>();
    AtomicLong last = new AtomicLong();
    CountDownLatch start = new CountDownLatch(1);
    long startNanos = System.nanoTime();
    long deadline = startNanos + (long) (seconds * 1e9);
    List<Future<?>> running = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      running.add(workers.submit(() -> {
        start.await();
        ThreadLocalRandom r = ThreadLocalRandom.current();
        while (issued.getAndIncrement() < max && System.nanoTime() - deadline < 0 && errors.get() < MAX_ERRORS) {
          long a = 1 + r.nextLong(accounts);
          long b = 1 + accounts + r.nextLong(accounts);
          long t0 = System.nanoTime();
          try {
            c.op().run(a, b);
          } catch (Exception e) {
            errors.incrementAndGet();
            firstError.compareAndSet(null, e.toString());
            continue;
          }
          long t1 = System.nanoTime();
          completed.incrementAndGet();
          if (c.singleShard()) {
            singleShardDone.incrementAndGet();
          }
          int i = recorded.getAndIncrement();
          if (i < lat.length) {
            lat[i] = t1 - t0;
          }
          last.accumulateAndGet(t1, Math::max);
        }
        return null;
      }));
    }
    startNanos = System.nanoTime();
    start.countDown();
    for (Future<?> f : running) {
      f.get((long) seconds + 60, TimeUnit.SECONDS);
    }
    return new Phase(completed.get(), errors.get(), firstError.get(), Math.max(1, last.get() - startNanos),
        Arrays.copyOf(lat, Math.min(recorded.get(), lat.length)));
  }

  /** Every transfer on both sides or neither, no prepared transaction left: else the figures are void. */
  private void check(PostgresFixture pg, long before) throws SQLException, InterruptedException {
    // acrossShards-2-no-wait returns before its prepared shard commits: give those commits a moment.
    long settle = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (prepared(pg) > 0 && System.nanoTime() < settle) {
      Thread.sleep(10);
    }
    long after = total(pg);
    if (after - before != singleShardDone.get()) {
      throw new IllegalStateException("the balances' total changed by " + (after - before) + ", expected "
          + singleShardDone.get() + " (one per single-shard operation): a transfer committed on one side only");
    }
    for (int i = 0; i < 2; i++) {
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_xacts")) {
        rs.next();
        if (rs.getLong(1) != 0) {
          throw new IllegalStateException("shard " + i + ": " + rs.getLong(1) + " prepared transactions left over");
        }
      }
    }
  }

  private static long prepared(PostgresFixture pg) throws SQLException {
    long n = 0;
    for (int i = 0; i < 2; i++) {
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_xacts")) {
        rs.next();
        n += rs.getLong(1);
      }
    }
    return n;
  }

  private static long total(PostgresFixture pg) throws SQLException {
    long sum = 0;
    for (int i = 0; i < 2; i++) {
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT sum(balance) FROM " + TABLE)) {
        rs.next();
        sum += rs.getLong(1);
      }
    }
    return sum;
  }

  /** The table: per case and thread count, medians over rounds and the median of per-round ratios. */
  static List<List<String>> rows(List<Case> run, Map<String, Map<Integer, List<Phase>>> results) {
    List<List<String>> rows = new ArrayList<>();
    for (Case c : run) {
      for (Map.Entry<Integer, List<Phase>> e : results.get(c.name()).entrySet()) {
        List<Phase> mine = e.getValue();
        List<Phase> base = results.get(c.baseline()).get(e.getKey());
        int n = mine.size();
        long[] p50 = new long[n];
        long[] p99 = new long[n];
        long[] rate = new long[n];
        long[] r50 = new long[n];
        long[] r99 = new long[n];
        long[] rRate = new long[n];
        long count = 0;
        for (int i = 0; i < n; i++) {
          Report.Dist d = Report.Dist.of(mine.get(i).latencies());
          Report.Dist b = Report.Dist.of(base.get(i).latencies());
          p50[i] = d.p(0.50);
          p99[i] = d.p(0.99);
          rate[i] = Math.round(mine.get(i).perSecond() * 1000);
          // Ratios in thousandths, so Report.Dist's nearest-rank median applies to them too.
          r50[i] = Math.round(1000.0 * d.p(0.50) / Math.max(1, b.p(0.50)));
          r99[i] = Math.round(1000.0 * d.p(0.99) / Math.max(1, b.p(0.99)));
          rRate[i] = Math.round(1000.0 * mine.get(i).perSecond() / Math.max(1e-9, base.get(i).perSecond()));
          count += mine.get(i).completed();
        }
        boolean self = c.baseline().equals(c.name());
        Report.Dist sorted50 = Report.Dist.of(r50);
        rows.add(List.of(c.name(), String.valueOf(e.getKey()), String.format(Locale.ROOT, "%,d", count),
            Report.millis(median(p50), 2), Report.millis(median(p99), 2), Report.fmt(median(rate) / 1000.0, 0),
            self ? "1" : ratio(median(r50)), self ? "1" : ratio(median(r99)), self ? "1" : ratio(median(rRate)),
            self ? "" : ratio(sorted50.min()) + " .. " + ratio(sorted50.max()),
            self ? "(itself)" : c.baseline()));
      }
    }
    return rows;
  }

  /** The median of a few values: nearest rank (Report.Dist), the lower middle for an even count. */
  static long median(long[] v) {
    return Report.Dist.of(v).p(0.50);
  }

  private static String ratio(long thousandths) {
    return Report.fmt(thousandths / 1000.0, 2) + "x";
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }
}
