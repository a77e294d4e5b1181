package io.shardmap.bench;

import com.sun.management.ThreadMXBean;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.DataOptions;
import io.shardmap.client.QueryResult;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
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
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import javax.sql.DataSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Cross-shard SELECTs over three range shards against the same-run baselines: one unsharded PostgreSQL
 * holding the same rows (plain JDBC; also the oracle of every answer), the slowest shard's own time for
 * its part of a scatter (the per-shard statement run directly on each shard, in parallel), and the same
 * queries through ShardingSphere-JDBC 5.5.2 configured on the same three shard databases with a
 * boundary-range rule on {@code id} equal to the shards' ranges.
 *
 * <p>Every execution's answer is reduced to a row count and an order-sensitive checksum and compared with
 * the unsharded database's answer to the same statement: a target that answers differently is reported
 * with its wrong answers counted, since a faster wrong answer is no comparison.
 *
 * <p>The rows are generated on each server by the same SQL expressions of the id (so the shards together
 * hold exactly the unsharded database's rows, without shipping them through the client), and every
 * {@code created} is distinct, so {@code ORDER BY created DESC LIMIT 100} has exactly one right answer.
 */
@Command(name = "cross-shard", mixinStandardHelpOptions = true,
    description = {
        "Cross-shard SELECTs (top-100 scatter, top-100 with a filter, all rows ordered by id, GROUP BY with "
            + "count/sum/avg) over 3 local PostgreSQL shards, against one unsharded PostgreSQL with the same "
            + "rows, the slowest shard's own time for its part, and ShardingSphere-JDBC 5.5.2 on the same shards.",
        "Prints p50/p99/max latency, queries/s, rows/s, allocation per row, heap used after GC before/after, "
            + "and whether every answer equals the unsharded database's."})
public final class CrossShardCommand implements Callable<Integer> {
  static final String TABLE = "orders";
  static final int SHARDS = 3;
  /** Distinct products: the filtered scatter selects about 1% of the rows; the aggregate has 100 groups. */
  static final int PRODUCTS = 100;
  /** The product values the filtered scatter cycles through (each answer checked against its own oracle). */
  static final int[] PRODUCT_PARAMS = {3, 17, 42, 58, 71, 99};

  /** What is measured: {@code baseline} (unsharded and per-shard plain JDBC) and the cross-shard clients. */
  enum Target { baseline, shardingsphere, shardmap }

  /** The queries; {@code sql} is the cross-shard statement, also run unchanged on the unsharded database. */
  enum Query {
    top("top-100 scatter", "SELECT id, customer, amount, created FROM " + TABLE + " ORDER BY created DESC LIMIT 100",
        false, true),
    top_product("top-100 scatter, WHERE product = ?", "SELECT id, customer, amount, created FROM " + TABLE
        + " WHERE product = ? ORDER BY created DESC LIMIT 100", true, true),
    ordered("all rows ORDER BY id", "SELECT id, customer, product, amount, created, note FROM " + TABLE
        + " ORDER BY id", false, false),
    aggregate("GROUP BY product: count, sum, avg", "SELECT product, count(*), sum(amount), avg(amount) FROM "
        + TABLE + " GROUP BY product ORDER BY product", false, true);

    final String title;
    final String sql;
    final boolean parameterized;
    /** Small results: latency phases at each concurrency; otherwise a few streamed runs with heap figures. */
    final boolean small;

    Query(String title, String sql, boolean parameterized, boolean small) {
      this.title = title;
      this.sql = sql;
      this.parameterized = parameterized;
      this.small = small;
    }

    String cliName() {
      return name().replace('_', '-');
    }
  }

  @Option(names = "--rows", defaultValue = "1000000",
      description = "Rows of the table, split into equal thirds of the id range (default: ${DEFAULT-VALUE}).")
  int rows;

  @Option(names = "--only", split = ",", defaultValue = "baseline,shardingsphere,shardmap",
      description = "Targets to measure: baseline, shardingsphere, shardmap (default: ${DEFAULT-VALUE}). The "
          + "unsharded database always answers each query once, as the oracle.")
  List<Target> only;

  @Option(names = "--queries", split = ",", defaultValue = "top,top-product,ordered,aggregate",
      description = "Queries to run: top, top-product, ordered, aggregate (default: ${DEFAULT-VALUE}).")
  List<String> queries;

  @Option(names = "--concurrency", split = ",", defaultValue = "1,8",
      description = "Client threads of the small-result phases, each one query at a time (default: ${DEFAULT-VALUE}).")
  List<Integer> concurrency;

  @Option(names = "--warmup-seconds", defaultValue = "2", description = "Warm-up before each measured phase.")
  double warmupSeconds;

  @Option(names = "--seconds", defaultValue = "5", description = "Time limit of each measured small-result phase.")
  double seconds;

  @Option(names = "--max-queries", defaultValue = "20000",
      description = "Query limit of each small-result phase, warm-up or measured (default: ${DEFAULT-VALUE}).")
  int maxQueries;

  @Option(names = "--large-runs", defaultValue = "3",
      description = "Measured runs of the all-rows query per target, after one warm-up run (default: ${DEFAULT-VALUE}).")
  int largeRuns;

  @Option(names = "--fetch-size", defaultValue = "1000",
      description = "JDBC fetch size of the all-rows query, autocommit off (default: ${DEFAULT-VALUE}).")
  int fetchSize;

  @Option(names = "--pool-size", defaultValue = "8", description = "Connections per database pool, every target.")
  int poolSize;

  /** One target's figures for one query at one concurrency. */
  public record Row(Query query, String target, int threads, long queries, long wrongAnswers, long wrongRows, long errors,
      String firstError, double seconds, long rowsRead, long p50, long p99, long max, long allocatedBytes,
      long heapBeforeBytes, long heapAfterBytes, long heapPeakBytes, String difference) {
    double queriesPerSecond() {
      return seconds == 0 ? 0 : queries / seconds;
    }

    double rowsPerSecond() {
      return seconds == 0 ? 0 : rowsRead / seconds;
    }

    double bytesPerRow() {
      return rowsRead == 0 ? 0 : (double) allocatedBytes / rowsRead;
    }

    /** Every answer equal to the unsharded database's, and no errors. */
    public boolean correct() {
      return wrongAnswers == 0 && errors == 0 && queries > 0;
    }

    /** Every answer equal to the unsharded database's with numerics rounded to LOOSE_SCALE places. */
    public boolean sameRows() {
      return wrongRows == 0 && errors == 0 && queries > 0;
    }
  }

  /** Everything one run measured. */
  public record Result(List<Row> rows) {
    public List<Row> of(String target) {
      return rows.stream().filter(r -> r.target().equals(target)).toList();
    }
  }

  /**
   * A query's answer: its row count and two order-sensitive checksums of the values, one exact (numerics
   * by value: 2.50 = 2.5) and one with numerics rounded to {@value #LOOSE_SCALE} places, to tell an answer
   * that differs only in a rounded average from one that differs in its rows.
   */
  record Answer(long rows, long checksum, long looseChecksum) {
    boolean sameRows(Answer o) {
      return o != null && rows == o.rows && looseChecksum == o.looseChecksum;
    }
  }

  static final int LOOSE_SCALE = 4;

  /** One target: runs the query (with the parameter, or null) and reduces its answer. */
  @FunctionalInterface
  interface Executor {
    Answer run(Query q, Object param) throws Exception;
  }

  /** The name of the unsharded database's target, whose answers are the oracle. */
  static final String ORACLE = "postgres (1 db)";

  private final Map<String, DataSource> dataSources = new HashMap<>();
  private PgInstance[] shardDb;
  private long[] shardLow;
  private final Map<String, Answer> expected = new HashMap<>();

  @Override
  public Integer call() throws Exception {
    // Fails on errors and on answers with other rows; an average rounded to fewer places than
    // PostgreSQL's (ShardingSphere's, see docs/benchmarks.md) is reported in the table, not failed on.
    Result r = run(System.out);
    return r.rows().stream().allMatch(Row::sameRows) ? 0 : 1;
  }

  public Result run(PrintStream out) throws Exception {
    List<Query> qs = new ArrayList<>();
    for (String name : queries) {
      qs.add(Arrays.stream(Query.values()).filter(q -> q.cliName().equals(name)).findFirst()
          .orElseThrow(() -> new IllegalArgumentException("--queries: unknown query '" + name
              + "'; known: top, top-product, ordered, aggregate")));
    }
    if (rows < SHARDS * 10 || rows > 20_000_000) {
      throw new IllegalArgumentException("--rows must be 30 to 20,000,000: " + rows);
    }
    if (poolSize < 1 || largeRuns < 1 || maxQueries < 1 || seconds <= 0 || warmupSeconds < 0 || fetchSize < 1
        || concurrency.stream().anyMatch(c -> c < 1 || c > 64)) {
      throw new IllegalArgumentException("--pool-size, --large-runs, --max-queries, --fetch-size >= 1, "
          + "--seconds > 0, --warmup-seconds >= 0, --concurrency 1 to 64");
    }
    Set<Target> targets = only.isEmpty() ? EnumSet.noneOf(Target.class) : EnumSet.copyOf(only);
    out.println("cross-shard | " + Report.environment() + " | max heap " + Runtime.getRuntime().maxMemory() / (1 << 20)
        + " MiB");
    List<Row> result = new ArrayList<>();
    try (Closer closer = new Closer()) {
      PostgresFixture pg = closer.add(PostgresFixture.startNew(SHARDS + 1));
      shardDb = new PgInstance[SHARDS];
      for (int i = 0; i < SHARDS; i++) {
        shardDb[i] = pg.shard(i);
      }
      PgInstance single = pg.shard(SHARDS);
      long t0 = System.nanoTime();
      load(pg);
      out.printf(Locale.ROOT, "setup:   4 PostgreSQL servers on loopback: 3 shards (ids %s) and 1 unsharded, %,d rows "
              + "generated on each server by the same SQL (%.1f s); pools of %d connections per database%n",
          rangesText(), rows, (System.nanoTime() - t0) / 1e9, poolSize);
      HikariDataSource singlePool = closer.add(pool("single", single));
      HikariDataSource[] shardPools = new HikariDataSource[SHARDS];
      for (int i = 0; i < SHARDS; i++) {
        shardPools[i] = closer.add(pool("shard" + i, shardDb[i]));
      }
      ExecutorService fanOut = Executors.newFixedThreadPool(SHARDS);
      closer.add(() -> {
        fanOut.shutdownNow();
        fanOut.awaitTermination(10, TimeUnit.SECONDS);
      });
      Map<String, Executor> measured = new LinkedHashMap<>();
      Executor singleExec = (q, p) -> onDataSource(singlePool, q, p);
      dataSources.put(ORACLE, singlePool);
      for (Query q : qs) {
        for (Object p : params(q)) {
          expected.put(key(q, p), singleExec.run(q, p));
        }
      }
      if (targets.contains(Target.baseline)) {
        measured.put(ORACLE, singleExec);
      }
      DataSource ss = null;
      if (targets.contains(Target.shardingsphere)) {
        HikariDataSource[] ssPools = new HikariDataSource[SHARDS];
        for (int i = 0; i < SHARDS; i++) {
          ssPools[i] = closer.add(pool("ss-shard" + i, shardDb[i]));
        }
        ss = ShardingSphereSide.dataSource(ssPools, shardLow);
        DataSource ssFinal = ss;
        if (ss instanceof AutoCloseable c) {
          closer.add(c);
        }
        measured.put("shardingsphere", (q, p) -> onDataSource(ssFinal, q, p));
        dataSources.put("shardingsphere", ss);
      }
      if (targets.contains(Target.shardmap)) {
        ShardmapData data = shardmap(closer, pg);
        measured.put(SHARDMAP, (q, p) -> onShardmap(data, q, p));
      }
      out.printf(Locale.ROOT, "phases:  small results: %.1f s warm-up + %.1f s measured (max %,d queries) per target and "
              + "concurrency %s; all rows: 1 warm-up + %d measured runs, fetch size %d, autocommit off%n",
          warmupSeconds, seconds, maxQueries, concurrency, largeRuns, fetchSize);
      for (Query q : qs) {
        out.printf("%n%s: %s%n", q.title, q.sql);
        List<Row> qrows = new ArrayList<>();
        if (q.small && targets.contains(Target.baseline)) {
          Executor slowest = (qq, p) -> slowestShard(shardPools, fanOut, qq, p);
          qrows.add(phase(q, SLOWEST_SHARD, slowest, 1));
        }
        for (Map.Entry<String, Executor> e : measured.entrySet()) {
          if (q.small) {
            for (int c : concurrency) {
              qrows.add(phase(q, e.getKey(), e.getValue(), c));
            }
          } else {
            qrows.add(large(q, e.getKey(), e.getValue()));
          }
        }
        print(out, q, qrows);
        result.addAll(qrows);
      }
      out.println();
      out.println("load average at the end: " + Report.loadAverage());
    }
    return new Result(result);
  }

  private String rangesText() {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < SHARDS; i++) {
      long hi = i + 1 < SHARDS ? shardLow[i + 1] : rows + 1L;
      sb.append(i == 0 ? "" : ", ").append('[').append(shardLow[i]).append(", ").append(hi).append(')');
    }
    return sb.toString();
  }

  private static Object[] params(Query q) {
    if (!q.parameterized) {
      return new Object[] {null};
    }
    return Arrays.stream(PRODUCT_PARAMS).boxed().toArray();
  }

  private static String key(Query q, Object p) {
    return q.name() + "/" + p;
  }

  // ---------------------------------------------------------------------------------------------- data

  /**
   * Creates and fills the table on every server at once: shard i gets ids [low_i, low_{i+1}) (equal
   * thirds of 1..rows), the unsharded server all of them, from the same expressions of the id.
   */
  private void load(PostgresFixture pg) throws Exception {
    shardLow = new long[SHARDS];
    for (int i = 0; i < SHARDS; i++) {
      shardLow[i] = 1 + (long) rows * i / SHARDS;
    }
    long mult = coprimeMultiplier(rows);
    List<Callable<Void>> jobs = new ArrayList<>();
    for (int s = 0; s <= SHARDS; s++) {
      PgInstance db = pg.shard(s);
      long lo = s < SHARDS ? shardLow[s] : 1;
      long hi = s + 1 < SHARDS ? shardLow[s + 1] - 1 : rows;
      jobs.add(() -> {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
          st.execute("DROP TABLE IF EXISTS " + TABLE);
          st.execute("CREATE TABLE " + TABLE + " (id bigint PRIMARY KEY, customer bigint NOT NULL, product int NOT NULL, "
              + "amount numeric(12,2) NOT NULL, created timestamptz NOT NULL, note text NOT NULL)");
          // created: a permutation of 0..rows-1 seconds (mult is coprime with rows), so no two rows tie.
          st.execute("INSERT INTO " + TABLE + " SELECT g, (hashint8(g) & 1048575) % 50000, "
              + "((hashint8(g + 1) & 2147483647) % " + PRODUCTS + ")::int, "
              + "((hashint8(g + 2) & 1048575) % 100000)::numeric / 100, "
              + "timestamptz '2024-01-01 00:00:00+00' + ((g - 1) * " + mult + " % " + rows + ") * interval '1 second', "
              + "'order ' || md5(g::text) FROM generate_series(" + lo + "::bigint, " + hi + "::bigint) g");
          st.execute("CREATE INDEX " + TABLE + "_created ON " + TABLE + " (created)");
          st.execute("VACUUM ANALYZE " + TABLE);
        }
        return null;
      });
    }
    ExecutorService ex = Executors.newFixedThreadPool(2);
    try {
      for (Future<Void> f : ex.invokeAll(jobs)) {
        f.get();
      }
    } finally {
      ex.shutdownNow();
    }
  }

  /** A multiplier m with gcd(m, n) = 1, so (i * m) mod n permutes 0..n-1. */
  static long coprimeMultiplier(long n) {
    long m = 1_000_003;
    while (gcd(m, n) != 1) {
      m += 2;
    }
    return m;
  }

  private static long gcd(long a, long b) {
    return b == 0 ? a : gcd(b, a % b);
  }

  private HikariDataSource pool(String name, PgInstance db) {
    HikariConfig c = new HikariConfig();
    c.setPoolName("cross-shard-" + name);
    c.setJdbcUrl(db.jdbcUrl());
    c.setUsername(db.user());
    if (db.password() != null) {
      c.setPassword(db.password());
    }
    c.setMaximumPoolSize(poolSize);
    c.setMinimumIdle(poolSize);
    return new HikariDataSource(c);
  }

  // ------------------------------------------------------------------------------------------ executing

  /**
   * The statement on a connection of the data source, as an application runs it: all-rows queries with
   * autocommit off and a fetch size (the only way PgJDBC streams), small ones in autocommit.
   */
  private Answer onDataSource(DataSource ds, Query q, Object param) throws SQLException {
    try (Connection c = ds.getConnection()) {
      boolean stream = !q.small;
      if (stream) {
        c.setAutoCommit(false);
      }
      try {
        return execute(c, q.sql, param, stream ? fetchSize : 0);
      } finally {
        if (stream) {
          c.rollback();
          c.setAutoCommit(true);
        }
      }
    }
  }

  /**
   * PgJDBC reads through a cursor only with a fetch size, autocommit off, a forward-only result and one
   * that is not holdable. Its own {@code prepareStatement(sql)} defaults to CLOSE_CURSORS_AT_COMMIT, but
   * ShardingSphere-JDBC's defaults to HOLD_CURSORS_OVER_COMMIT and passes that to the shards' statements,
   * so each shard's whole result is read into memory (1,000,000 rows ran out of a 256 MiB heap). Streaming
   * statements therefore ask for CLOSE_CURSORS_AT_COMMIT explicitly, the same for every JDBC target.
   */
  private static Answer execute(Connection c, String sql, Object param, int fetch) throws SQLException {
    try (PreparedStatement ps = fetch > 0
        ? c.prepareStatement(sql, ResultSet.TYPE_FORWARD_ONLY, ResultSet.CONCUR_READ_ONLY, ResultSet.CLOSE_CURSORS_AT_COMMIT)
        : c.prepareStatement(sql)) {
      if (fetch > 0) {
        ps.setFetchSize(fetch);
      }
      if (param != null) {
        ps.setInt(1, (Integer) param);
      }
      try (ResultSet rs = ps.executeQuery()) {
        return reduce(rs);
      }
    }
  }

  /**
   * The slowest shard's own time for its part: the same statement sent to every shard directly, in
   * parallel as a scatter sends it; each part timed on its own thread, the answer the longest part's.
   * Its "answer" is the per-shard results' row total (no merge), so it is not checked against the oracle.
   */
  private Answer slowestShard(HikariDataSource[] pools, ExecutorService fanOut, Query q, Object param) throws Exception {
    List<Future<long[]>> parts = new ArrayList<>();
    for (HikariDataSource p : pools) {
      parts.add(fanOut.submit(() -> {
        long t0 = System.nanoTime();
        Answer a = onDataSource(p, q, param);
        return new long[] {System.nanoTime() - t0, a.rows()};
      }));
    }
    long slowest = 0;
    long total = 0;
    for (Future<long[]> f : parts) {
      long[] r = f.get();
      slowest = Math.max(slowest, r[0]);
      total += r[1];
    }
    return new Answer(total, slowest, 0);
  }

  /** The target name of the SDK's cross-shard queries. */
  static final String SHARDMAP = "shardmap";
  static final String KEYSPACE = "orders";

  /**
   * A directory server on an in-memory store over the three shard databases, a range keyspace on {@code
   * orders.id} whose ranges are exactly the shards' thirds (so every row is on the shard the map names),
   * a client, and the SDK's data path with query pools of {@code --pool-size} connections per shard.
   */
  private ShardmapData shardmap(Closer closer, PostgresFixture pg) throws Exception {
    InMemoryMetaStore store = closer.add(new InMemoryMetaStore());
    ShardmapFleet fleet = closer.add(ShardmapFleet.builder().store(store).postgres(pg).shards(SHARDS).sockets()
        .productionIntervals().prefix("/bench").build());
    List<String> names = fleet.shardNames();
    CreateKeyspaceRequest.Builder req = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
        .setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id")));
    for (int i = 0; i < SHARDS; i++) {
      KeyRange.Builder r = KeyRange.newBuilder();
      if (i > 0) {
        r.setStart(Key.newBuilder().setIntKey(shardLow[i]));
      }
      if (i + 1 < SHARDS) {
        r.setEnd(Key.newBuilder().setIntKey(shardLow[i + 1]));
      }
      req.addRanges(RangeAssignment.newBuilder().setRange(r).setShard(names.get(i)));
    }
    fleet.admin().createKeyspace(req.build());
    ShardmapClient client = closer.add(ShardmapClient.start(ClientOptions.builder().targets(fleet.targets())
        .keyspaces(KEYSPACE).build()));
    for (int i = 0; i < SHARDS; i++) {
      long id = shardLow[i];
      if (!client.route(KEYSPACE, id).shard().equals(names.get(i))) {
        throw new IllegalStateException("the map routes id " + id + " to " + client.route(KEYSPACE, id).shard()
            + ", the rows are on " + names.get(i));
      }
    }
    return closer.add(ShardmapData.open(client, DataOptions.builder().user(shardDb[0].user())
        .password(shardDb[0].password()).maxPoolSize(poolSize).minIdle(1).queryPoolSize(poolSize).build()));
  }

  /** The statement through {@link ShardmapData#query}: every shard, fetch size as the JDBC targets use. */
  private Answer onShardmap(ShardmapData data, Query q, Object param) throws SQLException {
    CrossShardQuery.Builder b = CrossShardQuery.builder(KEYSPACE, q.sql).deadline(Duration.ofMinutes(5))
        .fetchSize(fetchSize);
    if (param != null) {
      b.params(param);
    }
    try (QueryResult r = data.query(b.build())) {
      return reduce(r);
    }
  }

  private static final long MIX = 0x9E3779B97F4A7C15L;

  private static long mix(long z) {
    z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
    z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
    return z ^ (z >>> 33);
  }

  /**
   * Reads every value of every row (as an application would) into a count and order-sensitive checksums.
   * The exact one takes numerics by value, so an avg(numeric) must carry the digits PostgreSQL's does
   * (up to 16 places for these amounts); the loose one rounds them to {@value #LOOSE_SCALE} places.
   */
  static Answer reduce(ResultSet rs) throws SQLException {
    ResultSetMetaData md = rs.getMetaData();
    int n = md.getColumnCount();
    int[] types = new int[n + 1];
    for (int i = 1; i <= n; i++) {
      types[i] = md.getColumnType(i);
    }
    Checksum sum = new Checksum();
    while (rs.next()) {
      sum.startRow();
      for (int i = 1; i <= n; i++) {
        switch (types[i]) {
          case Types.BIGINT, Types.INTEGER, Types.SMALLINT -> sum.add(rs.getLong(i));
          case Types.NUMERIC, Types.DECIMAL, Types.DOUBLE, Types.REAL, Types.FLOAT -> sum.add(rs.getBigDecimal(i));
          case Types.TIMESTAMP, Types.TIMESTAMP_WITH_TIMEZONE -> sum.add(rs.getTimestamp(i));
          default -> sum.add(rs.getString(i));
        }
      }
      sum.endRow();
    }
    return sum.answer();
  }

  /** The same reduction over the SDK's result, by the Java type of each value. */
  static Answer reduce(QueryResult r) throws SQLException {
    int n = r.columnLabels().size();
    Checksum sum = new Checksum();
    while (r.next()) {
      sum.startRow();
      for (int i = 1; i <= n; i++) {
        Object v = r.getObject(i);
        if (v == null) {
          sum.add(0L);
        } else if (v instanceof Long || v instanceof Integer || v instanceof Short) {
          sum.add(((Number) v).longValue());
        } else if (v instanceof BigDecimal d) {
          sum.add(d);
        } else if (v instanceof Double || v instanceof Float) {
          sum.add(new BigDecimal(v.toString()));
        } else if (v instanceof java.util.Date || v instanceof java.time.temporal.Temporal) {
          sum.add(r.getTimestamp(i));
        } else {
          sum.add(r.getString(i));
        }
      }
      sum.endRow();
    }
    return sum.answer();
  }

  /** Row count and the exact and loose order-sensitive checksums; SQL NULL counts as 0. */
  private static final class Checksum {
    long count;
    long sum;
    long looseSum;
    long h;
    long loose;

    void startRow() {
      h = 0;
      loose = 0;
    }

    void add(long v) {
      add(v, v);
    }

    private void add(long exact, long rounded) {
      h = mix(h * 31 + exact);
      loose = mix(loose * 31 + rounded);
    }

    void add(BigDecimal d) {
      if (d == null) {
        add(0L);
        return;
      }
      BigDecimal exact = d.stripTrailingZeros();
      add(exact.unscaledValue().hashCode() * 31L + exact.scale(),
          d.setScale(LOOSE_SCALE, RoundingMode.HALF_UP).unscaledValue().longValue());
    }

    void add(Timestamp t) {
      add(t == null ? 0 : t.getTime() * 1000 + (t.getNanos() / 1000) % 1000);
    }

    void add(String s) {
      add(s == null ? 0 : s.hashCode());
    }

    void endRow() {
      count++;
      sum = sum * MIX + h;
      looseSum = looseSum * MIX + loose;
    }

    Answer answer() {
      return new Answer(count, sum, looseSum);
    }
  }

  // ----------------------------------------------------------------------------------------- measuring

  /** The target name of the per-shard baseline, whose latency is its slowest part's own time. */
  static final String SLOWEST_SHARD = "slowest shard's own part";

  /** A closed-loop phase: warm-up, then {@code threads} threads running the query until the count or time limit. */
  private Row phase(Query q, String target, Executor exec, int threads) throws Exception {
    boolean parts = target.equals(SLOWEST_SHARD);
    loop(q, exec, threads, warmupSeconds, maxQueries, parts);
    Loop l = loop(q, exec, threads, seconds, maxQueries, parts);
    Row r = l.toRow(q, target, threads);
    DataSource ds = dataSources.get(target);
    if (l.wrongKey == null || ds == null) {
      return r;
    }
    return new Row(r.query(), r.target(), r.threads(), r.queries(), r.wrongAnswers(), r.wrongRows(), r.errors(),
        r.firstError(),
        r.seconds(), r.rowsRead(), r.p50(), r.p99(), r.max(), r.allocatedBytes(), 0, 0, 0,
        difference(ds, q, l.wrongParam));
  }

  /** The first row where the target's answer differs from the unsharded database's, both printed as text. */
  private String difference(DataSource target, Query q, Object param) throws SQLException {
    List<String> theirs = asText(target, q, param);
    List<String> ours = asText(dataSources.get(ORACLE), q, param);
    for (int i = 0; i < Math.max(theirs.size(), ours.size()); i++) {
      String a = i < theirs.size() ? theirs.get(i) : "(no row)";
      String b = i < ours.size() ? ours.get(i) : "(no row)";
      if (!a.equals(b)) {
        return "row " + (i + 1) + (param == null ? "" : " (parameter " + param + ")") + ": got " + a
            + ", one database gives " + b;
      }
    }
    return "the same rows as text; the answers differ beyond what getString shows";
  }

  private static List<String> asText(DataSource ds, Query q, Object param) throws SQLException {
    try (Connection c = ds.getConnection(); PreparedStatement ps = c.prepareStatement(q.sql)) {
      if (param != null) {
        ps.setInt(1, (Integer) param);
      }
      List<String> out = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        int n = rs.getMetaData().getColumnCount();
        while (rs.next() && out.size() < 10_000) {
          StringBuilder sb = new StringBuilder("(");
          for (int i = 1; i <= n; i++) {
            sb.append(i == 1 ? "" : ", ").append(rs.getString(i));
          }
          out.add(sb.append(')').toString());
        }
      }
      return out;
    }
  }

  private static final class Loop {
    long queries;
    long wrong;
    /** Wrong even with numerics rounded to LOOSE_SCALE places. */
    long wrongRows;
    long errors;
    long rowsRead;
    long nanos;
    long allocated;
    long[] latencies = new long[0];
    /** The query and parameter of a wrong answer, if any, to show how it differs. */
    String wrongKey;
    Object wrongParam;
    final AtomicReference<Throwable> firstError = new AtomicReference<>();

    Row toRow(Query q, String target, int threads) {
      Arrays.sort(latencies);
      Throwable e = firstError.get();
      return new Row(q, target, threads, queries, wrong, wrongRows, errors, e == null ? null : e.toString(), nanos / 1e9, rowsRead,
          Report.quantile(latencies, 0.5), Report.quantile(latencies, 0.99),
          latencies.length == 0 ? 0 : latencies[latencies.length - 1], allocated, 0, 0, 0, null);
    }
  }

  /**
   * {@code parts}: the executor is the per-shard baseline, whose answer carries its slowest part's time
   * as the checksum and the unmerged row total; its latency is that time and its answer is not checked.
   */
  private Loop loop(Query q, Executor exec, int threads, double secs, int limit, boolean parts) throws Exception {
    Loop total = new Loop();
    if (secs <= 0) {
      return total;
    }
    long perThread = Math.max(1, limit / threads);
    long[][] lat = new long[threads][(int) perThread];
    long[] done = new long[threads];
    long[] wrong = new long[threads];
    long[] errs = new long[threads];
    long[] rowsRead = new long[threads];
    long[] allocated = new long[threads];
    Object[] wrongParam = new Object[threads];
    long[] wrongRows = new long[threads];
    ThreadMXBean mx = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    CountDownLatch go = new CountDownLatch(1);
    long[] deadline = new long[1];
    Thread[] ts = new Thread[threads];
    for (int t = 0; t < threads; t++) {
      int id = t;
      ts[t] = new Thread(() -> {
        try {
          go.await();
        } catch (InterruptedException e) {
          return;
        }
        long a0 = mx.getCurrentThreadAllocatedBytes();
        long now = System.nanoTime();
        int k = id;
        while (done[id] < perThread && now < deadline[0]) {
          Object p = q.parameterized ? PRODUCT_PARAMS[k++ % PRODUCT_PARAMS.length] : null;
          long took;
          try {
            Answer a = exec.run(q, p);
            long end = System.nanoTime();
            took = parts ? a.checksum() : end - now;
            if (!parts && !a.equals(expected.get(key(q, p)))) {
              wrong[id]++;
              if (!a.sameRows(expected.get(key(q, p)))) {
                wrongRows[id]++;
              }
              wrongParam[id] = p;
              total.firstError.compareAndSet(null, new IllegalStateException("wrong answer for " + key(q, p) + ": "
                  + a + ", the unsharded database gave " + expected.get(key(q, p))));
            }
            rowsRead[id] += a.rows();
            now = end;
          } catch (Exception e) {
            errs[id]++;
            total.firstError.compareAndSet(null, e);
            long end = System.nanoTime();
            took = end - now;
            now = end;
          }
          lat[id][(int) done[id]] = took;
          done[id]++;
        }
        allocated[id] = mx.getCurrentThreadAllocatedBytes() - a0;
      }, "cross-shard-" + t);
      ts[t].start();
    }
    Map<Long, Long> alloc0 = allocatedByThread();
    long t0 = System.nanoTime();
    deadline[0] = t0 + (long) (secs * 1e9);
    go.countDown();
    for (Thread t : ts) {
      t.join();
    }
    total.nanos = System.nanoTime() - t0;
    // The workers have ended, so allocatedSince sees only the other threads (pools, executors, drivers).
    total.allocated = allocatedSince(alloc0);
    int n = 0;
    for (int t = 0; t < threads; t++) {
      total.allocated += allocated[t];
      if (wrongParam[t] != null || (wrong[t] > 0 && !q.parameterized)) {
        total.wrongKey = key(q, wrongParam[t]);
        total.wrongParam = wrongParam[t];
      }
      total.queries += done[t];
      total.wrong += wrong[t];
      total.wrongRows += wrongRows[t];
      total.errors += errs[t];
      total.rowsRead += rowsRead[t];
      n += (int) done[t];
    }
    total.latencies = new long[n];
    int at = 0;
    for (int t = 0; t < threads; t++) {
      System.arraycopy(lat[t], 0, total.latencies, at, (int) done[t]);
      at += (int) done[t];
    }
    return total;
  }

  /**
   * The all-rows query: one warm-up run, then {@code --large-runs} runs one at a time, with the heap used
   * after full collections before and after, the peak heap use during the runs, and the allocation of
   * every thread (the client's own and its pools' and executors').
   */
  private Row large(Query q, String target, Executor exec) throws Exception {
    Answer warm;
    try {
      warm = exec.run(q, null);
    } catch (Exception | OutOfMemoryError e) {
      // A client that holds the whole result runs out of a small heap (--Xmx256m at 1M rows): that is the
      // finding, reported as this target's error; the heap is free again once the failed run has unwound.
      return new Row(q, target, 1, 1, 0, 0, 1, e.toString(), 0, 0, 0, 0, 0, 0, 0, 0, 0, null);
    }
    if (!warm.sameRows(expected.get(key(q, null)))) {
      throw new IllegalStateException(target + " answered " + q.cliName() + " with " + warm
          + ", the unsharded database with " + expected.get(key(q, null)));
    }
    long before = HeapMeasure.settledHeapUsed();
    resetPeaks();
    Map<Long, Long> alloc0 = allocatedByThread();
    Loop total = new Loop();
    total.latencies = new long[largeRuns];
    long t0 = System.nanoTime();
    for (int i = 0; i < largeRuns; i++) {
      long s = System.nanoTime();
      try {
        Answer a = exec.run(q, null);
        total.rowsRead += a.rows();
        if (!a.equals(expected.get(key(q, null)))) {
          total.wrong++;
          total.wrongRows += a.sameRows(expected.get(key(q, null))) ? 0 : 1;
        }
      } catch (Exception | OutOfMemoryError e) {
        total.errors++;
        total.firstError.compareAndSet(null, e);
      }
      total.latencies[i] = System.nanoTime() - s;
      total.queries++;
    }
    total.nanos = System.nanoTime() - t0;
    total.allocated = allocatedSince(alloc0);
    long peak = heapPeak();
    long after = HeapMeasure.settledHeapUsed();
    Row r = total.toRow(q, target, 1);
    return new Row(r.query(), r.target(), 1, r.queries(), r.wrongAnswers(), r.wrongRows(), r.errors(), r.firstError(), r.seconds(),
        r.rowsRead(), r.p50(), r.p99(), r.max(), r.allocatedBytes(), before, after, peak, null);
  }

  private static void resetPeaks() {
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        p.resetPeakUsage();
      }
    }
  }

  /** The sum of the heap pools' peaks since the reset: an upper bound of the heap in use at any moment. */
  private static long heapPeak() {
    long sum = 0;
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        sum += p.getPeakUsage().getUsed();
      }
    }
    return sum;
  }

  /** Bytes allocated so far by each live thread. */
  private static Map<Long, Long> allocatedByThread() {
    ThreadMXBean mx = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    long[] ids = mx.getAllThreadIds();
    long[] bytes = mx.getThreadAllocatedBytes(ids);
    Map<Long, Long> m = new HashMap<>();
    for (int i = 0; i < ids.length; i++) {
      if (bytes[i] >= 0) {
        m.put(ids[i], bytes[i]);
      }
    }
    return m;
  }

  /** Allocation since {@code before} over the threads alive now (threads that ended meanwhile are missed). */
  private static long allocatedSince(Map<Long, Long> before) {
    long sum = 0;
    for (Map.Entry<Long, Long> e : allocatedByThread().entrySet()) {
      sum += e.getValue() - before.getOrDefault(e.getKey(), 0L);
    }
    return sum;
  }

  // ----------------------------------------------------------------------------------------- reporting

  private static String mib(long bytes) {
    return Report.fmt(bytes / 1048576.0, 1);
  }

  private void print(PrintStream out, Query q, List<Row> rs) {
    List<List<String>> table = new ArrayList<>();
    for (Row r : rs) {
      String answers = r.target().equals(SLOWEST_SHARD) ? "(parts)"
          : r.correct() ? "equal"
          : r.errors() == 0 && r.wrongRows() == 0 ? "differ, equal at " + LOOSE_SCALE + " places"
          : r.wrongAnswers() + " wrong (" + r.wrongRows() + " at " + LOOSE_SCALE + " places), " + r.errors() + " errors";
      List<String> cells = new ArrayList<>(List.of(r.target(), Integer.toString(r.threads()), Long.toString(r.queries()),
          Report.millis(r.p50(), 2), Report.millis(r.p99(), 2), Report.millis(r.max(), 2),
          Report.fmt(r.queriesPerSecond(), 0), Report.fmt(r.rowsPerSecond(), 0), Report.fmt(r.bytesPerRow(), 0)));
      if (!q.small) {
        cells.addAll(List.of(mib(r.heapBeforeBytes()), mib(r.heapAfterBytes()), mib(r.heapPeakBytes())));
      }
      cells.add(answers);
      table.add(cells);
    }
    List<String> header = new ArrayList<>(List.of("target", "threads", "queries", "p50 ms", "p99 ms", "max ms",
        "queries/s", "rows/s", "alloc B/row"));
    if (!q.small) {
      header.addAll(List.of("heap before MiB", "heap after MiB", "heap peak MiB"));
    }
    header.add("answers");
    out.print(Report.table(header, table));
    for (Row r : rs) {
      if (r.firstError() != null) {
        out.println("  " + r.target() + " (" + r.threads() + " threads): first error: " + r.firstError());
      }
      if (r.difference() != null) {
        out.println("  " + r.target() + " (" + r.threads() + " threads): " + r.difference());
      }
    }
    Row base = rs.stream().filter(r -> r.target().equals(q.small ? SLOWEST_SHARD : ORACLE)).findFirst()
        .orElse(null);
    if (base == null) {
      return;
    }
    for (Row r : rs) {
      if (!r.target().equals(SHARDMAP)) {
        continue;
      }
      for (Row o : rs) {
        if (o.target().equals("shardingsphere") && o.threads() == r.threads()) {
          out.printf(Locale.ROOT, "  shardmap vs shardingsphere, %d threads: queries/s %.2fx, p50 %+.2f ms, p99 %+.2f ms, "
                  + "alloc/row %.2fx%s%n", r.threads(), r.queriesPerSecond() / o.queriesPerSecond(), (r.p50() - o.p50()) / 1e6,
              (r.p99() - o.p99()) / 1e6, r.bytesPerRow() / Math.max(1e-9, o.bytesPerRow()),
              q.small ? "" : String.format(Locale.ROOT, ", rows/s %.2fx, heap peak %s vs %s MiB",
                  r.rowsPerSecond() / o.rowsPerSecond(), mib(r.heapPeakBytes()), mib(o.heapPeakBytes())));
        }
      }
    }
    for (Row r : rs) {
      if (r == base || r.target().startsWith("postgres") || r.threads() != 1) {
        continue;
      }
      if (q.small) {
        out.printf(Locale.ROOT, "  %s vs the slowest shard's part: p50 %+.2f ms, p99 %+.2f ms (goal: p99 within +1 ms)%n",
            r.target(), (r.p50() - base.p50()) / 1e6, (r.p99() - base.p99()) / 1e6);
      } else {
        out.printf(Locale.ROOT, "  %s rows/s over one PostgreSQL's: %.2f (goal >= 0.80); heap after GC %+.1f MiB over "
            + "the run%n", r.target(), r.rowsPerSecond() / base.rowsPerSecond(),
            (r.heapAfterBytes() - r.heapBeforeBytes()) / 1048576.0);
      }
    }
  }
}
