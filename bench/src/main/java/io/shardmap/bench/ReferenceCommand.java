package io.shardmap.bench;

import io.shardmap.bench.TxnCommand.Case;
import io.shardmap.bench.TxnCommand.Phase;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
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
import javax.sql.DataSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Reference table writes through the SDK ({@link ShardmapData#writeReference}: one UPDATE of one row per
 * transaction, run on every copy and committed on all of them together) with 3 and with 5 copies, against
 * the same UPDATE committed on one database (a pooled connection of the first shard, plain JDBC) in the same
 * run; the {@code -no-wait} cases with {@code crossShardCommitWait(false)} (the call returns once the decision
 * is durable, the prepared copies commit right after). Citus measured reference table UPDATEs falling from 171/s with 3 workers to 139/s with 5.
 *
 * <p>Rounds rotate the cases; every ratio is per round against the same round's one-database figure, and the
 * table gives the medians. The oracle: every UPDATE adds 1 to a row, so at the end each copy's total must have
 * grown by the number of that table's writes that returned, and all copies of a table must be equal.
 */
@Command(name = "reference", mixinStandardHelpOptions = true,
    description = {"Reference table writes through the SDK (ShardmapData.writeReference, one-row UPDATE per "
        + "transaction) with 3 and with 5 copies, against the same UPDATE on one database.",
        "Prints p50/p99 latency and writes/s per thread count: medians over rounds, and the median of the "
            + "per-round ratios to the one-database baseline."})
public final class ReferenceCommand implements Callable<Integer> {
  static final String KEYSPACE = "bench";
  static final int MAX_ERRORS = 20;

  @Option(names = "--rounds", defaultValue = "5", description = "Rounds (default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--ops", defaultValue = "3000", description = "Operation limit of each measured phase "
      + "(default: ${DEFAULT-VALUE}).")
  int ops;

  @Option(names = "--seconds", defaultValue = "4", description = "Time limit of each measured phase (default: "
      + "${DEFAULT-VALUE}).")
  double seconds;

  @Option(names = "--warmup-ops", defaultValue = "200", description = "Untimed operations before each measured "
      + "phase (default: ${DEFAULT-VALUE}).")
  int warmupOps;

  @Option(names = "--threads", split = ",", defaultValue = "1,8", description = "Client threads, each one write "
      + "at a time (default: ${DEFAULT-VALUE}).")
  List<Integer> threads;

  @Option(names = "--rows", defaultValue = "1000", description = "Rows of each reference table; each write "
      + "updates one at random (default: ${DEFAULT-VALUE}).")
  int rows;

  @Option(names = "--fsync", defaultValue = "true", arity = "1", description = "fsync and full_page_writes on the "
      + "PostgreSQL servers (default true, as in production).")
  boolean fsync;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  /** A reference table of the run: its name, the shards holding a copy, and the writes that returned. */
  record Table(String name, List<Integer> copies, AtomicLong done) {}

  public Map<String, Map<Integer, List<Phase>>> run(PrintStream out) throws Exception {
    if (rounds < 1 || ops < 1 || warmupOps < 0 || seconds <= 0 || rows < 1 || threads.isEmpty()
        || threads.stream().anyMatch(t -> t < 1 || t > 64)) {
      throw new IllegalArgumentException("--rounds, --ops, --rows >= 1, --warmup-ops >= 0, --seconds > 0, "
          + "--threads 1 to 64");
    }
    int maxThreads = threads.stream().mapToInt(Integer::intValue).max().orElseThrow();
    out.println("reference | " + Report.environment());
    try (Closer closer = new Closer()) {
      String onOff = fsync ? "on" : "off";
      PostgresFixture pg = closer.add(PostgresFixture.startNew(5, List.of("fsync = " + onOff,
          "full_page_writes = " + onOff)));
      InMemoryMetaStore store = closer.add(new InMemoryMetaStore());
      ShardmapFleet fleet = closer.add(ShardmapFleet.builder().store(store).postgres(pg).shards(5).sockets()
          .productionIntervals().prefix("/bench-ref").build());
      List<String> names = fleet.shardNames();
      fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
              .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
              .addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("id")))
          .addAllRangeShards(names).build());
      Table one = new Table("ref_one", List.of(0), new AtomicLong());
      Table three = new Table("ref_three", List.of(0, 1, 2), new AtomicLong());
      Table five = new Table("ref_five", List.of(0, 1, 2, 3, 4), new AtomicLong());
      CatalogPaths paths = new CatalogPaths(fleet.prefix());
      for (Table t : List.of(one, three, five)) {
        for (int i : t.copies()) {
          PgInstance db = pg.shard(i);
          db.exec("DROP TABLE IF EXISTS " + t.name());
          db.exec("CREATE TABLE " + t.name() + " (id int PRIMARY KEY, name text NOT NULL, v bigint NOT NULL)");
          db.exec("INSERT INTO " + t.name() + " SELECT g, 'row ' || g, 0 FROM generate_series(1, " + rows + ") g");
          db.exec("VACUUM ANALYZE " + t.name());
          if (t != one) {
            try (Connection c = db.connect()) {
              ReferenceGuard.install(c, "public." + t.name(), 1);
            }
          }
        }
        if (t != one) {
          List<String> copies = t.copies().stream().map(names::get).sorted().toList();
          store.commit(Txn.builder().put(paths.referenceTable("public." + t.name()), ReferenceTable.newBuilder()
              .setTable("public." + t.name()).addKeyspaces(KEYSPACE).addPrimaryKey("id").addAllCopies(copies)
              .setEpoch(1).build().toByteArray()).build()).get(10, TimeUnit.SECONDS);
        }
      }
      for (int i = 0; i < 5; i++) {
        for (String ddl : DecisionRows.ddl()) {
          pg.shard(i).exec(ddl);
        }
      }
      ShardmapClient client = closer.add(ShardmapClient.start(ClientOptions.builder().targets(fleet.targets())
          .keyspaces(KEYSPACE).build()));
      PgInstance s0 = pg.shard(0);
      ShardmapData data = closer.add(ShardmapData.open(client, DataOptions.builder().user(s0.user())
          .password(s0.password()).maxPoolSize(maxThreads).minIdle(maxThreads).build()));
      ShardmapData noWait = closer.add(ShardmapData.open(client, DataOptions.builder().user(s0.user())
          .password(s0.password()).maxPoolSize(maxThreads).minIdle(maxThreads).crossShardCommitWait(false).build()));
      DataSource first = data.primary(names.get(0));
      ExecutorService workers = Executors.newFixedThreadPool(maxThreads, r -> {
        Thread t = new Thread(r, "reference-client");
        t.setDaemon(true);
        return t;
      });
      closer.add(workers::shutdownNow);

      Map<String, Case> all = new LinkedHashMap<>();
      Map<String, Table> tableOf = new LinkedHashMap<>();
      all.put("one-database", new Case("one-database", "one-database", false, (id, unused) -> {
        try (Connection c = first.getConnection()) {
          c.setAutoCommit(false);
          update(c, one.name(), id);
          c.commit();
        }
      }));
      tableOf.put("one-database", one);
      for (Table t : List.of(three, five)) {
        String name = "writeReference-" + t.copies().size();
        all.put(name, new Case(name, "one-database", false, (id, unused) ->
            data.writeReference(KEYSPACE, t.name(), c -> update(c, t.name(), id))));
        tableOf.put(name, t);
        String early = name + "-no-wait";
        all.put(early, new Case(early, "one-database", false, (id, unused) ->
            noWait.writeReference(KEYSPACE, t.name(), c -> update(c, t.name(), id))));
        tableOf.put(early, t);
      }
      List<Case> run = new ArrayList<>(all.values());
      try (Connection c = s0.connect(); Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW fsync")) {
        rs.next();
        out.printf(Locale.ROOT, "setup:   5 PostgreSQL servers (fsync %s, synchronous_commit on), reference tables "
            + "of %,d rows copied on 3 and on 5 of them (guarded), behind a directory server (in-memory store); "
            + "SDK pools of %d connections per shard%n", rs.getString(1), rows, maxThreads);
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
      for (Case c : run) {
        phase(workers, c, tableOf.get(c.name()), maxThreads, Math.max(warmupOps, 1), seconds, false);
      }
      for (int round = 0; round < rounds; round++) {
        long t0 = System.nanoTime();
        for (int i = 0; i < run.size(); i++) {
          Case c = run.get((i + round) % run.size());
          for (int t : threads) {
            if (warmupOps > 0) {
              phase(workers, c, tableOf.get(c.name()), t, warmupOps, seconds, false);
            }
            Phase p = phase(workers, c, tableOf.get(c.name()), t, ops, seconds, true);
            if (p.errors() > 0) {
              throw new IllegalStateException(c.name() + " at " + t + " threads: " + p.errors() + " writes failed; "
                  + "first: " + p.firstError());
            }
            results.get(c.name()).get(t).add(p);
          }
        }
        for (int i = 0; i < 5; i++) {
          pg.shard(i).exec("DELETE FROM shardmap.txn_decisions"); // the resolver's garbage, untimed
        }
        out.printf(Locale.ROOT, "round %d/%d: %.0f s, load average %s%n", round + 1, rounds,
            (System.nanoTime() - t0) / 1e9, Report.loadAverage());
      }
      // The no-wait cases return before their prepared copies commit: give those commits a moment.
      long settle = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (prepared(pg) > 0 && System.nanoTime() < settle) {
        Thread.sleep(10);
      }
      for (Table t : List.of(one, three, five)) {
        check(pg, t);
      }
      out.println();
      out.println(Report.table(List.of("case", "threads", "ops", "p50 ms", "p99 ms", "ops/s", "p50 / base",
          "p99 / base", "ops/s / base", "p50 / base by round", "baseline"), TxnCommand.rows(run, results)));
      out.println("Figures: medians over the rounds; ratios: the median of each round's ratio to the same round's "
          + "baseline. Every copy checked equal, each total = its writes. load average at the end: "
          + Report.loadAverage());
      return results;
    }
  }

  static Integer update(Connection c, String table, long id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET v = v + 1 WHERE id = ?")) {
      ps.setLong(1, id);
      int n = ps.executeUpdate();
      if (n != 1) {
        throw new IllegalStateException("row " + id + " of " + table + " missing");
      }
      return n;
    }
  }

  private Phase phase(ExecutorService workers, Case c, Table table, int threads, int max, double seconds,
      boolean record) throws Exception {
    long[] lat = new long[record ? max : 0];
    AtomicInteger issued = new AtomicInteger();
    AtomicInteger recorded = new AtomicInteger();
    AtomicLong completed = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    AtomicReference<String> firstError = new AtomicReference<>();
    AtomicLong last = new AtomicLong();
    CountDownLatch start = new CountDownLatch(1);
    long deadline = System.nanoTime() + (long) (seconds * 1e9);
    List<Future<?>> running = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      running.add(workers.submit(() -> {
        start.await();
        ThreadLocalRandom r = ThreadLocalRandom.current();
        while (issued.getAndIncrement() < max && System.nanoTime() - deadline < 0 && errors.get() < MAX_ERRORS) {
          long id = 1 + r.nextInt(rows);
          long t0 = System.nanoTime();
          try {
            c.op().run(id, 0);
          } catch (Exception e) {
            errors.incrementAndGet();
            firstError.compareAndSet(null, e.toString());
            continue;
          }
          long t1 = System.nanoTime();
          completed.incrementAndGet();
          table.done().incrementAndGet();
          int i = recorded.getAndIncrement();
          if (i < lat.length) {
            lat[i] = t1 - t0;
          }
          last.accumulateAndGet(t1, Math::max);
        }
        return null;
      }));
    }
    long startNanos = System.nanoTime();
    start.countDown();
    for (Future<?> f : running) {
      f.get((long) seconds + 60, TimeUnit.SECONDS);
    }
    return new Phase(completed.get(), errors.get(), firstError.get(), Math.max(1, last.get() - startNanos),
        Arrays.copyOf(lat, Math.min(recorded.get(), lat.length)));
  }

  private static long prepared(PostgresFixture pg) throws SQLException {
    long n = 0;
    for (int i = 0; i < 5; i++) {
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_xacts")) {
        rs.next();
        n += rs.getLong(1);
      }
    }
    return n;
  }

  /** Each copy's total equals the table's writes that returned, and every copy is equal: else void. */
  private static void check(PostgresFixture pg, Table t) throws SQLException {
    String firstCopy = null;
    for (int i : t.copies()) {
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT sum(v), md5(string_agg(t::text, ',' ORDER BY id)) FROM "
               + t.name() + " t")) {
        rs.next();
        if (rs.getLong(1) != t.done().get()) {
          throw new IllegalStateException(t.name() + " on shard " + i + ": total " + rs.getLong(1) + ", expected "
              + t.done().get() + " (one per write that returned)");
        }
        if (firstCopy == null) {
          firstCopy = rs.getString(2);
        } else if (!firstCopy.equals(rs.getString(2))) {
          throw new IllegalStateException(t.name() + ": the copy on shard " + i + " differs from the first");
        }
      }
      try (Connection c = pg.shard(i).connect(); Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_xacts")) {
        rs.next();
        if (rs.getLong(1) != 0) {
          throw new IllegalStateException("shard " + i + ": " + rs.getLong(1) + " prepared transactions left over");
        }
      }
    }
  }
}
