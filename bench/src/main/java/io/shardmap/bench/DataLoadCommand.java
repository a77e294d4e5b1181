package io.shardmap.bench;

import com.sun.management.OperatingSystemMXBean;
import com.sun.management.ThreadMXBean;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Point reads and point writes by key through the SDK ({@link ShardmapData}) against plain JDBC on the
 * same three PostgreSQL shards, with the shard of every key computed by hand in advance (an array index,
 * so the baseline does no routing at all) and HikariCP pools of the same settings. Same threads, same
 * keys, same statements, phases alternating.
 */
@Command(name = "data-load", mixinStandardHelpOptions = true,
    description = {
        "Point reads (SELECT by id) and point writes (UPDATE by id, autocommit) through ShardmapData vs. plain "
            + "JDBC with the shard precomputed, on three local PostgreSQL servers, same pools settings, "
            + "alternating phases.",
        "Prints ops/s, the ratio sdk/jdbc (goal >= 0.95), client CPU per op (goal: within 1 us of jdbc), "
            + "allocation per op (goal: < 100 B more than jdbc) and latency."})
public final class DataLoadCommand implements Callable<Integer> {
  static final String KEYSPACE = "users";
  static final String TABLE = "bench_users";
  static final String READ_SQL = "SELECT v, name FROM " + TABLE + " WHERE id = ?";
  static final String WRITE_SQL = "UPDATE " + TABLE + " SET v = v + 1 WHERE id = ?";

  @Option(names = "--threads", defaultValue = "8", description = "Client threads, each one call at a time.")
  int threads;

  @Option(names = "--rows", defaultValue = "30000", description = "Rows, spread over the three shards by the map.")
  int rows;

  @Option(names = "--pool-size", defaultValue = "8", description = "Connections per shard pool (both targets).")
  int poolSize;

  @Option(names = "--initial-warmup-seconds", defaultValue = "8",
      description = "Warm-up of each target and workload once before the first round.")
  double initialWarmupSeconds;

  @Option(names = "--warmup-seconds", defaultValue = "2", description = "Warm-up before each measured phase.")
  double warmupSeconds;

  @Option(names = "--seconds", defaultValue = "6", description = "Time limit of each measured phase.")
  double seconds;

  @Option(names = "--max-ops", defaultValue = "3000000", description = "Operation limit of each phase.")
  long maxOps;

  @Option(names = "--rounds", defaultValue = "3",
      description = "Rounds; each runs both targets per workload, the order alternating.")
  int rounds;

  @Option(names = "--seed", defaultValue = "7", description = "Seed of the ids and of the key choice.")
  long seed;

  @Option(names = "--no-load-accounting", description = "Turn the SDK client's load accounting off "
      + "(ClientOptions.loadAccounting(false)): compare a run with it against one without.")
  boolean noLoadAccounting;

  enum Workload { read, write }

  /** The measured totals of one target and workload over all rounds. */
  record Totals(String target, Workload workload, long ops, long errors, double seconds, long threadCpuNanos,
      long processCpuNanos, long allocatedBytes, long[] latencies) {
    double opsPerSecond() {
      return ops / seconds;
    }

    double threadCpuMicrosPerOp() {
      return threadCpuNanos / 1000.0 / ops;
    }

    double processCpuMicrosPerOp() {
      return processCpuNanos / 1000.0 / ops;
    }

    double bytesPerOp() {
      return (double) allocatedBytes / ops;
    }
  }

  private long[] ids;
  private int[] shardOf;
  private HikariDataSource[] plain;
  private ShardmapData data;

  @Override
  public Integer call() throws Exception {
    return run(System.out) ? 0 : 1;
  }

  boolean run(PrintStream out) throws Exception {
    if (threads < 1 || threads > 256 || rows < 100 || rows > 10_000_000 || poolSize < 1 || rounds < 1) {
      throw new IllegalArgumentException("threads 1-256, rows 100-10000000, pool-size >= 1, rounds >= 1");
    }
    out.println("data-load | " + Report.environment() + " | load accounting " + (noLoadAccounting ? "off" : "on"));
    try (PostgresFixture pg = PostgresFixture.startNew(3);
         InMemoryMetaStore store = new InMemoryMetaStore();
         ShardmapFleet fleet = ShardmapFleet.builder().store(store).postgres(pg).shards(3).sockets()
             .productionIntervals().prefix("/bench").build()) {
      List<String> shards = fleet.shardNames();
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
          .addTables(ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id"))).addAllRangeShards(shards).build());
      try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder()
          .targets(fleet.targets()).keyspaces(KEYSPACE).loadAccounting(!noLoadAccounting).build())) {
        prepare(pg, client, shards);
        DataOptions options = DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
            .maxPoolSize(poolSize).minIdle(poolSize).build();
        plain = new HikariDataSource[3];
        for (int i = 0; i < 3; i++) {
          plain[i] = plainPool(pg.shard(i), options);
        }
        data = ShardmapData.open(client, options);
        try {
          return measure(out, pg);
        } finally {
          data.close();
          for (HikariDataSource p : plain) {
            p.close();
          }
        }
      }
    }
  }

  /** The baseline's pools: what the SDK configures, made by hand. */
  private static HikariDataSource plainPool(PgInstance p, DataOptions o) {
    HikariConfig c = new HikariConfig();
    c.setPoolName("plain-" + p.port());
    c.setJdbcUrl(p.jdbcUrl());
    c.setUsername(o.user());
    if (o.password() != null) {
      c.setPassword(o.password());
    }
    c.setMaximumPoolSize(o.maxPoolSize());
    c.setMinimumIdle(o.minIdle());
    c.setConnectionTimeout(o.connectionTimeout().toMillis());
    return new HikariDataSource(c);
  }

  /** Creates the table on each shard and puts every row where the map says; records the hand routing. */
  private void prepare(PostgresFixture pg, ShardmapClient client, List<String> shards) throws SQLException {
    SplittableRandom rnd = new SplittableRandom(seed);
    ids = new long[rows];
    shardOf = new int[rows];
    List<List<Long>> perShard = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
    for (int i = 0; i < rows; i++) {
      ids[i] = rnd.nextLong();
      shardOf[i] = shards.indexOf(client.route(KEYSPACE, ids[i]).shard());
      perShard.get(shardOf[i]).add(ids[i]);
    }
    for (int s = 0; s < 3; s++) {
      try (Connection c = pg.shard(s).connect(); Statement st = c.createStatement()) {
        st.execute("DROP TABLE IF EXISTS " + TABLE);
        st.execute("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, v bigint NOT NULL, name text NOT NULL)");
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + TABLE + " VALUES (?, 0, ?)")) {
          for (long id : perShard.get(s)) {
            ps.setLong(1, id);
            ps.setString(2, "user-" + Long.toHexString(id));
            ps.addBatch();
          }
          ps.executeBatch();
        }
        c.commit();
        st.execute("ANALYZE " + TABLE);
      }
    }
  }

  private boolean measure(PrintStream out, PostgresFixture pg) throws Exception {
    out.printf("setup:   3 PostgreSQL 15 servers on loopback (one per shard), %,d rows, range keyspace split evenly; "
            + "%d client threads, HikariCP %d connections per shard for each target (same settings)%n",
        rows, threads, poolSize);
    out.printf("phases:  %.1f s initial warm-up per target and workload; per phase %.1f s warm-up + %.1f s measured "
        + "(max %,d ops); %d rounds, order alternating%n", initialWarmupSeconds, warmupSeconds, seconds, maxOps, rounds);
    for (Workload w : Workload.values()) {
      for (String t : List.of("jdbc", "sdk")) {
        phase(t, w, initialWarmupSeconds, maxOps);
      }
    }
    List<Totals> all = new ArrayList<>();
    for (Workload w : Workload.values()) {
      List<Phase> jdbc = new ArrayList<>();
      List<Phase> sdk = new ArrayList<>();
      for (int r = 0; r < rounds; r++) {
        List<String> order = r % 2 == 0 ? List.of("jdbc", "sdk") : List.of("sdk", "jdbc");
        for (String t : order) {
          phase(t, w, warmupSeconds, maxOps);
          Phase p = phase(t, w, seconds, maxOps);
          out.printf("  round %d %-5s %-4s %,10.0f ops/s  thread cpu %6.2f us/op  alloc %6.0f B/op%n", r + 1, w, t,
              p.ops / p.seconds, p.threadCpuNanos / 1000.0 / Math.max(1, p.ops),
              (double) p.allocated / Math.max(1, p.ops));
          (t.equals("jdbc") ? jdbc : sdk).add(p);
        }
      }
      all.add(totals("jdbc", w, jdbc));
      all.add(totals("sdk", w, sdk));
    }
    return print(out, all) & verifyWrites(out, pg, all);
  }

  private static Totals totals(String target, Workload w, List<Phase> phases) {
    long ops = 0;
    long errors = 0;
    double secs = 0;
    long cpu = 0;
    long pcpu = 0;
    long alloc = 0;
    int n = 0;
    for (Phase p : phases) {
      ops += p.ops;
      errors += p.errors;
      secs += p.seconds;
      cpu += p.threadCpuNanos;
      pcpu += p.processCpuNanos;
      alloc += p.allocated;
      n += p.latencies.length;
    }
    long[] lat = new long[n];
    int at = 0;
    for (Phase p : phases) {
      System.arraycopy(p.latencies, 0, lat, at, p.latencies.length);
      at += p.latencies.length;
    }
    Arrays.sort(lat);
    return new Totals(target, w, ops, errors, secs, cpu, pcpu, alloc, lat);
  }

  private boolean print(PrintStream out, List<Totals> all) {
    List<List<String>> rowsOut = new ArrayList<>();
    boolean ok = true;
    for (Totals t : all) {
      rowsOut.add(List.of(t.workload().name(), t.target(), String.format("%,.0f", t.opsPerSecond()),
          Report.fmt(t.threadCpuMicrosPerOp(), 2), Report.fmt(t.processCpuMicrosPerOp(), 2),
          Report.fmt(t.bytesPerOp(), 0), Report.micros(Report.quantile(t.latencies(), 0.50)),
          Report.micros(Report.quantile(t.latencies(), 0.99)), Long.toString(t.errors())));
      ok &= t.errors() == 0;
    }
    out.println(Report.table(List.of("workload", "target", "ops/s", "thread cpu us/op", "process cpu us/op",
        "alloc B/op", "p50", "p99", "errors"), rowsOut));
    for (int i = 0; i < all.size(); i += 2) {
      Totals j = all.get(i);
      Totals s = all.get(i + 1);
      out.printf("%-5s sdk/jdbc throughput %.3f (goal >= 0.95); thread cpu +%.2f us/op, process cpu +%.2f us/op "
              + "(goal <= 1 us); alloc +%.0f B/op (goal < 100)%n", j.workload(), s.opsPerSecond() / j.opsPerSecond(),
          s.threadCpuMicrosPerOp() - j.threadCpuMicrosPerOp(), s.processCpuMicrosPerOp() - j.processCpuMicrosPerOp(),
          s.bytesPerOp() - j.bytesPerOp());
    }
    return ok;
  }

  /** Every acknowledged UPDATE added 1 to exactly one row on its owner: the column sums must match. */
  private boolean verifyWrites(PrintStream out, PostgresFixture pg, List<Totals> all) throws SQLException {
    long sum = 0;
    for (int s = 0; s < 3; s++) {
      try (Connection c = pg.shard(s).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT coalesce(sum(v), 0) FROM " + TABLE)) {
        rs.next();
        sum += rs.getLong(1);
      }
    }
    boolean ok = sum == acknowledgedWrites;
    out.printf("check:   %,d acknowledged writes (warm-ups included), sum of v over the shards %,d: %s%n",
        acknowledgedWrites, sum, ok ? "every write landed exactly once" : "MISMATCH");
    return ok;
  }

  private volatile long acknowledgedWrites;

  private static final class Phase {
    long ops;
    long errors;
    double seconds;
    long threadCpuNanos;
    long processCpuNanos;
    long allocated;
    long[] latencies;
  }

  private Phase phase(String target, Workload w, double secs, long limit) throws Exception {
    ThreadMXBean mx = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    long perThread = Math.max(1, limit / threads);
    int samples = (int) Math.min(perThread, 1_000_000);
    Worker[] workers = new Worker[threads];
    CountDownLatch ready = new CountDownLatch(threads);
    CountDownLatch go = new CountDownLatch(1);
    AtomicReference<Throwable> firstError = new AtomicReference<>();
    long deadlineHolder[] = new long[1];
    for (int i = 0; i < threads; i++) {
      Worker wk = new Worker(target.equals("sdk"), w, new SplittableRandom(seed * 31 + i + System.nanoTime()),
          perThread, new long[samples], mx, ready, go, deadlineHolder, firstError);
      workers[i] = wk;
      wk.thread = new Thread(wk, "data-load-" + i);
      wk.thread.start();
    }
    ready.await();
    long p0 = os.getProcessCpuTime();
    long t0 = System.nanoTime();
    deadlineHolder[0] = t0 + (long) (secs * 1e9);
    go.countDown();
    for (Worker wk : workers) {
      wk.thread.join();
    }
    long t1 = System.nanoTime();
    long p1 = os.getProcessCpuTime();
    Phase p = new Phase();
    p.seconds = (t1 - t0) / 1e9;
    p.processCpuNanos = p1 - p0;
    int n = 0;
    for (Worker wk : workers) {
      p.ops += wk.ops;
      p.errors += wk.errors;
      p.threadCpuNanos += wk.cpu;
      p.allocated += wk.allocated;
      n += (int) Math.min(wk.ops, wk.latencies.length);
    }
    p.latencies = new long[n];
    int at = 0;
    for (Worker wk : workers) {
      int k = (int) Math.min(wk.ops, wk.latencies.length);
      System.arraycopy(wk.latencies, 0, p.latencies, at, k);
      at += k;
    }
    if (w == Workload.write) {
      acknowledgedWrites += p.ops;
    }
    if (firstError.get() != null) {
      System.err.println(target + " " + w + ": first error: " + firstError.get());
    }
    return p;
  }

  private final class Worker implements Runnable {
    final boolean sdk;
    final Workload workload;
    final SplittableRandom rnd;
    final long limit;
    final long[] latencies;
    final ThreadMXBean mx;
    final CountDownLatch ready;
    final CountDownLatch go;
    final long[] deadline;
    final AtomicReference<Throwable> firstError;
    Thread thread;
    long ops;
    long errors;
    long cpu;
    long allocated;

    Worker(boolean sdk, Workload workload, SplittableRandom rnd, long limit, long[] latencies, ThreadMXBean mx,
        CountDownLatch ready, CountDownLatch go, long[] deadline, AtomicReference<Throwable> firstError) {
      this.sdk = sdk;
      this.workload = workload;
      this.rnd = rnd;
      this.limit = limit;
      this.latencies = latencies;
      this.mx = mx;
      this.ready = ready;
      this.go = go;
      this.deadline = deadline;
      this.firstError = firstError;
    }

    @Override
    public void run() {
      ready.countDown();
      try {
        go.await();
      } catch (InterruptedException e) {
        return;
      }
      long end = deadline[0];
      long tid = Thread.currentThread().getId();
      long cpu0 = mx.getCurrentThreadCpuTime();
      long a0 = mx.getThreadAllocatedBytes(tid);
      long now = System.nanoTime();
      while (ops < limit && now < end) {
        int i = rnd.nextInt(ids.length);
        long id = ids[i];
        try {
          long r = sdk ? viaSdk(id) : viaJdbc(i, id);
          if (r < 0) {
            errors++;
          }
        } catch (SQLException | RuntimeException e) {
          errors++;
          firstError.compareAndSet(null, e);
        }
        long t = System.nanoTime();
        if (ops < latencies.length) {
          latencies[(int) ops] = t - now;
        }
        ops++;
        now = t;
      }
      cpu = mx.getCurrentThreadCpuTime() - cpu0;
      allocated = mx.getThreadAllocatedBytes(tid) - a0;
    }

    /** -1 when the row is not where the routing says it is. */
    private long viaJdbc(int i, long id) throws SQLException {
      try (Connection c = plain[shardOf[i]].getConnection()) {
        return workload == Workload.read ? read(c, id) : write(c, id);
      }
    }

    private long viaSdk(long id) throws SQLException {
      return workload == Workload.read
          ? data.read(KEYSPACE, id, c -> read(c, id))
          : data.withConnection(KEYSPACE, id, Idempotence.NOT_IDEMPOTENT, c -> write(c, id));
    }
  }

  static long read(Connection c, long id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(READ_SQL)) {
      ps.setLong(1, id);
      try (ResultSet rs = ps.executeQuery()) {
        return rs.next() ? rs.getLong(1) + rs.getString(2).length() : -1;
      }
    }
  }

  static long write(Connection c, long id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(WRITE_SQL)) {
      ps.setLong(1, id);
      return ps.executeUpdate() == 1 ? 1 : -1;
    }
  }
}
