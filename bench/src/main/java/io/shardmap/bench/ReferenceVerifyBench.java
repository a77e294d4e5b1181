package io.shardmap.bench;

import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.migrator.ReferenceRepair;
import io.shardmap.migrator.internal.ReferenceVerifier;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What verifying and repairing the copies of a reference table costs (issue 14, part 2.5): three guarded
 * copies (three databases of one local PostgreSQL) of a table of {@code --rows} rows, timed per round:
 * the same-run baseline, a bare {@code SELECT count(*)} of every copy; a verification of equal copies
 * (every epoch row locked, then count and checksum per copy: the time coordinated writers of the table
 * wait); a verification of copies differing in {@code --diffs} rows of one copy (bucket summaries and the
 * differing buckets' keys too); and a repair of those rows from the majority (its verification after
 * included).
 */
@Command(name = "reference-verify", mixinStandardHelpOptions = true,
    description = {"Verify and repair three copies of a reference table on one local PostgreSQL, against a bare "
        + "count(*) of every copy (baseline). Prints the median time of each case."})
public final class ReferenceVerifyBench implements Callable<Integer> {
  @Option(names = "--rows", defaultValue = "100000", description = "Rows of the table.")
  int rows;

  @Option(names = "--diffs", defaultValue = "10", description = "Rows changed behind the guard on one copy per round.")
  int diffs;

  @Option(names = "--rounds", defaultValue = "5", description = "Rounds; the median of each case is printed.")
  int rounds;

  @Option(names = "--buckets", defaultValue = "256", description = "Primary-key hash buckets.")
  int buckets;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  void run(PrintStream out) throws Exception {
    out.println("reference-verify | rows " + rows + ", diffs " + diffs + ", buckets " + buckets + " | "
        + Report.environment());
    String table = "public.bench_ref";
    try (PostgresFixture pg = PostgresFixture.startNew(1)) {
      PgInstance admin = pg.shard(0);
      Map<String, Connection> copies = new TreeMap<>();
      List<PgInstance> dbs = new ArrayList<>();
      for (String s : List.of("a", "b", "c")) {
        admin.exec("CREATE DATABASE bench_ref_" + s);
        PgInstance db = new PgInstance(admin.host(), admin.port(), "bench_ref_" + s, admin.user(), admin.password());
        db.exec("CREATE TABLE bench_ref (id bigint PRIMARY KEY, code text NOT NULL, name text, population bigint, "
            + "updated timestamptz NOT NULL DEFAULT '2026-01-01')");
        db.exec("INSERT INTO bench_ref (id, code, name, population) SELECT g, 'c' || g, 'name of ' || g, g * 7 "
            + "FROM generate_series(1, " + rows + ") g");
        db.exec("VACUUM ANALYZE bench_ref");
        try (Connection c = db.connect()) {
          ReferenceGuard.install(c, table, 1);
        }
        dbs.add(db);
        copies.put(s, db.connect());
      }
      ReferenceVerifier rc = new ReferenceVerifier(table, List.of("id"), copies,
          new ReferenceCheck.Settings(buckets, 20, Duration.ofSeconds(30), 1), null);
      Map<String, List<Double>> ms = new TreeMap<>();
      rc.verify(); // warm-up: caches, plans
      for (int r = 0; r < rounds; r++) {
        long t0 = System.nanoTime();
        for (Connection c : copies.values()) {
          try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM bench_ref")) {
            rs.next();
          }
        }
        add(ms, "1 baseline: count(*) of every copy", t0);
        t0 = System.nanoTime();
        ReferenceCheck equal = rc.verify();
        add(ms, "2 verify, copies equal", t0);
        check(equal.equal(), "the copies should be equal");
        try (Connection c = dbs.get(1).connect()) {
          c.setAutoCommit(false);
          ReferenceGuard.bypass(c);
          try (Statement s = c.createStatement()) {
            s.executeUpdate("UPDATE bench_ref SET population = -population WHERE id % " + Math.max(1, rows / diffs)
                + " = " + r + " AND id <= " + rows);
          }
          c.commit();
        }
        t0 = System.nanoTime();
        ReferenceCheck differ = rc.verify();
        add(ms, "3 verify, " + diffs + " rows differ", t0);
        check(!differ.equal() && differ.copies().get(1).changed() > 0, "copy b should differ");
        t0 = System.nanoTime();
        ReferenceRepair repaired = rc.repair(null, false);
        add(ms, "4 repair from the majority (with its verify after)", t0);
        check(repaired.after().equal(), "the repair should leave equal copies");
      }
      for (Connection c : copies.values()) {
        c.close();
      }
      double base = median(ms.get("1 baseline: count(*) of every copy"));
      out.println("| case | median ms | / baseline |");
      out.println("| --- | --- | --- |");
      ms.forEach((k, v) -> out.println(String.format(Locale.ROOT, "| %s | %.1f | %.2f |", k.substring(2), median(v),
          median(v) / base)));
    }
  }

  private static void add(Map<String, List<Double>> ms, String name, long t0) {
    ms.computeIfAbsent(name, k -> new ArrayList<>()).add((System.nanoTime() - t0) / 1e6);
  }

  private static double median(List<Double> v) {
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    return s.get(s.size() / 2);
  }

  private static void check(boolean ok, String what) throws SQLException {
    if (!ok) {
      throw new SQLException("benchmark invariant broken: " + what);
    }
  }
}
