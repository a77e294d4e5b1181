package io.shardmap.bench;

import io.shardmap.core.HashTable;
import io.shardmap.core.XxHash64;
import io.shardmap.core.sql.SqlRouting;
import io.shardmap.migrator.internal.RoutingFunctions;
import io.shardmap.testkit.PostgresFixture;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.function.LongPredicate;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What the migrator's SQL routing functions ({@link SqlRouting}: xxHash64 and the bucket of a key, in
 * PL/pgSQL) cost per row, as the capture trigger, the copy and the fence pay it for a hash bucket: {@code
 * count(*)} over generated rows filtered by "bucket 3 of 16", against the same count filtered by {@code g %
 * 16 = 3} (the baseline: generating and filtering rows without the functions). Each count is checked
 * against core's {@link XxHash64} and {@link HashTable#bucketOf}, so a wrong function fails the command
 * instead of printing a figure. (It was SqlRoutingTest.costPerRow, a timing inside the test suite.)
 */
@Command(name = "sql-routing", mixinStandardHelpOptions = true,
    description = {"Cost per row of the migrator's SQL routing functions (bucket of an int8 key, of a short and "
        + "of a ~105-byte text key) over generated rows on one local PostgreSQL, against a plain modulo filter.",
        "Prints the median over rounds of each, in microseconds per row, and the extra cost over the baseline."})
public final class SqlRoutingCommand implements Callable<Integer> {
  static final int BUCKETS = 16;
  static final int BUCKET = 3;

  @Option(names = "--rows", defaultValue = "100000", description = "Rows generated per count (default: ${DEFAULT-VALUE}).")
  int rows;

  @Option(names = "--rounds", defaultValue = "5",
      description = "Rounds; each times every case once after one warm-up run (default: ${DEFAULT-VALUE}).")
  int rounds;

  private record Case(String name, String sql, long expected) {}

  @Override
  public Integer call() throws Exception {
    if (rows < 1 || rows > 10_000_000 || rounds < 1 || rounds > 100) {
      System.err.println("sql-routing: --rows must be 1 to 10,000,000 and --rounds 1 to 100");
      return 2;
    }
    run(System.out);
    return 0;
  }

  void run(PrintStream out) throws SQLException {
    out.println("sql-routing | " + Report.environment());
    List<Case> cases = List.of(
        new Case("baseline: g % 16 = 3", "SELECT count(*) FROM generate_series(1, " + rows + ") g WHERE g % "
            + BUCKETS + " = " + BUCKET, expected(g -> g % BUCKETS == BUCKET)),
        new Case("int8 key bucket", "SELECT count(*) FROM generate_series(1, " + rows + ") g WHERE "
            + SqlRouting.bucket(SqlRouting.hashInt("g"), BUCKETS) + " = " + BUCKET,
            expected(g -> inBucket(XxHash64.hashInt64(g)))),
        new Case("short text key bucket ('user:' || g)", "SELECT count(*) FROM (SELECT 'user:' || g AS k FROM "
            + "generate_series(1, " + rows + ") g) t WHERE " + SqlRouting.bucket(SqlRouting.hashBytes(
                "convert_to(k, 'UTF8')"), BUCKETS) + " = " + BUCKET,
            expected(g -> inBucket(XxHash64.hash(("user:" + g).getBytes(StandardCharsets.UTF_8))))),
        new Case("~105-byte text key bucket", "SELECT count(*) FROM (SELECT repeat('x', 100) || g AS k FROM "
            + "generate_series(1, " + rows + ") g) t WHERE " + SqlRouting.bucket(SqlRouting.hashBytes(
                "convert_to(k, 'UTF8')"), BUCKETS) + " = " + BUCKET,
            expected(g -> inBucket(XxHash64.hash(("x".repeat(100) + g).getBytes(StandardCharsets.UTF_8))))));
    try (PostgresFixture pg = PostgresFixture.startNew(1); Connection c = pg.shard(0).connect()) {
      RoutingFunctions.install(c);
      String version;
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW server_version")) {
        rs.next();
        version = rs.getString(1);
      }
      out.printf("setup:   PostgreSQL %s on loopback, one connection; %,d generated rows per count, %d rounds "
          + "(cases rotate, each warmed once per round); bucket %d of %d%n", version, rows, rounds, BUCKET, BUCKETS);
      double[][] micros = new double[cases.size()][rounds];
      for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < cases.size(); i++) {
          int k = (i + r) % cases.size();
          micros[k][r] = timeMillis(c, cases.get(k)) * 1000 / rows;
        }
      }
      double base = median(micros[0]);
      List<List<String>> table = new ArrayList<>();
      for (int k = 0; k < cases.size(); k++) {
        double m = median(micros[k]);
        table.add(List.of(cases.get(k).name(), Report.fmt(m, 3), k == 0 ? "-" : Report.fmt(m - base, 3),
            Report.fmt(m / base, 1) + "x"));
      }
      out.print(Report.table(List.of("case", "us/row (median)", "over baseline", "ratio"), table));
    }
  }

  /** How many of the rows 1..rows the predicate selects, computed in Java. */
  private long expected(LongPredicate selected) {
    long n = 0;
    for (long g = 1; g <= rows; g++) {
      n += selected.test(g) ? 1 : 0;
    }
    return n;
  }

  private static boolean inBucket(long hash) {
    return HashTable.bucketOf(hash, BUCKETS) == BUCKET;
  }

  /** Runs the count twice (the first warms plans and caches), checks it, returns the second's ms. */
  private static double timeMillis(Connection c, Case k) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.executeQuery(k.sql()).close();
      long t0 = System.nanoTime();
      try (ResultSet rs = s.executeQuery(k.sql())) {
        rs.next();
        if (rs.getLong(1) != k.expected()) {
          throw new IllegalStateException(k.name() + ": PostgreSQL counted " + rs.getLong(1) + " rows, core "
              + k.expected() + ": the SQL routing functions disagree with core");
        }
      }
      return (System.nanoTime() - t0) / 1e6;
    }
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }
}
