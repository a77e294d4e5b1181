package io.shardmap.bench;

import io.shardmap.core.TxnId;
import io.shardmap.store.Compare;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What atomic commit across two shards costs, for issue 13's choice of protocol: one transfer (an UPDATE on
 * each of two PostgreSQL servers) committed four ways, each step sent to both shards in parallel as a
 * coordinator would, against a same-run baseline. Cases alternate by round.
 *
 * <ul>
 *   <li>{@code separate}: each shard's UPDATE committed on its own (no atomicity): the baseline;
 *   <li>{@code 2pc-etcd}: PREPARE TRANSACTION on both, the decision as one create-if-absent etcd
 *       transaction (the commit point), COMMIT PREPARED on both; the record's delete is sent, not awaited;
 *   <li>{@code 2pc-participant}: PREPARE on one shard; the other inserts the decision row into its own
 *       transaction and commits (that commit is the commit point, as Vitess's metadata manager does); COMMIT
 *       PREPARED on the first. The decision rows are deleted in batches, untimed;
 *   <li>{@code etcd-decision}: the etcd decision write alone, for the cost of the commit point.
 * </ul>
 */
@Command(name = "two-phase", mixinStandardHelpOptions = true,
    description = {"A two-shard write committed separately (baseline) against two-phase commit with the decision in "
        + "etcd and with the decision in one participant, on two local PostgreSQL servers and a local etcd.",
        "Prints the mean, median and p99 latency of each, and the ratios to the baseline."})
public final class TwoPhaseCommand implements Callable<Integer> {
  @Option(names = "--iterations", defaultValue = "2000", description = "Timed transfers per case per round.")
  int iterations;

  @Option(names = "--warmup", defaultValue = "300", description = "Untimed transfers per case per round, first.")
  int warmup;

  @Option(names = "--rounds", defaultValue = "3", description = "Rounds; each runs every case, order rotating.")
  int rounds;

  @Option(names = "--fsync", defaultValue = "true", arity = "1",
      description = "fsync on the PostgreSQL servers (default true: commits and prepares reach the disk, as in "
          + "production; the test fixture's default is off).")
  boolean fsync;

  @Option(names = "--accounts", defaultValue = "10000", description = "Rows per shard; each transfer picks one at random.")
  int accounts;

  @Option(names = "--etcd-endpoints", split = ",",
      description = "An etcd to use instead of starting one (loopback only).")
  List<String> etcdEndpoints;

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  /** Two connections per shard: one for the work (autocommit off), one for COMMIT PREPARED (autocommit on). */
  private record Side(Connection work, Connection control, PreparedStatement update) {}

  @FunctionalInterface
  private interface Transfer {
    void run(long id) throws Exception;
  }

  void run(PrintStream out) throws Exception {
    if (iterations < 1 || warmup < 0 || rounds < 1 || accounts < 1) {
      throw new IllegalArgumentException("--iterations, --rounds and --accounts must be >= 1, --warmup >= 0");
    }
    out.println("two-phase | " + Report.environment());
    ExecutorService pair = Executors.newFixedThreadPool(2, r -> {
      Thread t = new Thread(r, "two-phase-shard");
      t.setDaemon(true);
      return t;
    });
    try (PostgresFixture pg = PostgresFixture.startNew(2);
         LocalEtcd etcd = LocalEtcd.start(etcdEndpoints, 1);
         EtcdMetaStore store = EtcdMetaStore.builder().endpoints(etcd.endpoints()).build()) {
      Side[] sides = new Side[2];
      for (int i = 0; i < 2; i++) {
        PgInstance db = pg.shard(i);
        db.exec("ALTER SYSTEM SET fsync = " + (fsync ? "on" : "off"));
        db.exec("SELECT pg_reload_conf()");
        db.exec("DROP TABLE IF EXISTS accounts");
        db.exec("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)");
        db.exec("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, " + accounts + ") g");
        db.exec("DROP TABLE IF EXISTS txn_decisions");
        db.exec("CREATE TABLE txn_decisions (gid text PRIMARY KEY, decided_at timestamptz NOT NULL DEFAULT now())");
        db.exec("VACUUM ANALYZE accounts");
        Connection work = db.connect();
        work.setAutoCommit(false);
        Connection control = db.connect();
        control.setAutoCommit(true);
        sides[i] = new Side(work, control, work.prepareStatement("UPDATE accounts SET balance = balance + ? WHERE id = ?"));
      }
      try (Statement s = sides[0].control().createStatement();
           java.sql.ResultSet rs = s.executeQuery("SHOW fsync")) {
        rs.next();
        out.println("setup:   2 PostgreSQL servers (fsync " + rs.getString(1) + ", synchronous_commit on), "
            + accounts + " accounts each; " + etcd.description() + "; each step sent to both shards in parallel");
      }
      String decisions = "/bench-two-phase/txn-decisions/";
      Map<String, Transfer> cases = new LinkedHashMap<>();
      cases.put("separate", id -> both(pair, sides, side -> {
        update(side, id);
        side.work().commit();
      }));
      cases.put("2pc-etcd", id -> {
        String gid = TxnId.random("bench", "s0", "two-phase").toString();
        both(pair, sides, side -> {
          update(side, id);
          prepare(side, gid);
        });
        byte[] commit = "commit".getBytes(StandardCharsets.UTF_8);
        if (!store.commit(Txn.builder().compare(Compare.absent(decisions + gid)).put(decisions + gid, commit).build())
            .get(10, TimeUnit.SECONDS).succeeded()) {
          throw new IllegalStateException("decision of " + gid + " already there");
        }
        both(pair, sides, side -> commitPrepared(side, gid));
        store.commit(Txn.builder().delete(decisions + gid).build()); // forgotten later; not on the caller's path
      });
      cases.put("2pc-participant", id -> {
        String gid = TxnId.random("bench", "s0", "two-phase").toString();
        CompletableFuture<Void> prepared = CompletableFuture.runAsync(() -> unchecked(() -> {
          update(sides[1], id);
          prepare(sides[1], gid);
        }), pair);
        update(sides[0], id);
        try (PreparedStatement ps = sides[0].work().prepareStatement("INSERT INTO txn_decisions (gid) VALUES (?)")) {
          ps.setString(1, gid);
          ps.executeUpdate();
        }
        prepared.get(10, TimeUnit.SECONDS);
        sides[0].work().commit(); // the commit point: the decision row and shard 0's write, at once
        commitPrepared(sides[1], gid);
      });
      cases.put("etcd-decision", id -> {
        String gid = TxnId.random("bench", "s0", "two-phase").toString();
        store.commit(Txn.builder().compare(Compare.absent(decisions + gid))
            .put(decisions + gid, new byte[] {1}).build()).get(10, TimeUnit.SECONDS);
        store.commit(Txn.builder().delete(decisions + gid).build());
      });

      Map<String, List<Long>> nanos = new LinkedHashMap<>();
      cases.keySet().forEach(k -> nanos.put(k, new ArrayList<>()));
      List<String> names = new ArrayList<>(cases.keySet());
      for (int round = 0; round < rounds; round++) {
        for (int c = 0; c < names.size(); c++) {
          String name = names.get((c + round) % names.size());
          Transfer t = cases.get(name);
          for (int i = 0; i < warmup; i++) {
            t.run(1 + ThreadLocalRandom.current().nextLong(accounts));
          }
          for (int i = 0; i < iterations; i++) {
            long id = 1 + ThreadLocalRandom.current().nextLong(accounts);
            long start = System.nanoTime();
            t.run(id);
            nanos.get(name).add(System.nanoTime() - start);
          }
          try (Statement st = sides[0].control().createStatement()) {
            st.execute("DELETE FROM txn_decisions");
          }
        }
      }
      for (Side s : sides) {
        try (Statement st = s.control().createStatement(); java.sql.ResultSet rs = st.executeQuery(
            "SELECT count(*) FROM pg_prepared_xacts")) {
          rs.next();
          if (rs.getLong(1) != 0) {
            throw new IllegalStateException(rs.getLong(1) + " prepared transactions left over");
          }
        }
      }
      long base = Report.Dist.of(toArray(nanos.get("separate"))).p(0.50);
      List<List<String>> table = new ArrayList<>();
      for (Map.Entry<String, List<Long>> e : nanos.entrySet()) {
        Report.Dist d = Report.Dist.of(toArray(e.getValue()));
        table.add(List.of(e.getKey(), String.format("%,d", d.count()), Report.millis(d.mean(), 3),
            Report.millis(d.p(0.50), 3), Report.millis(d.p(0.99), 3), Report.fmt((double) d.p(0.50) / base, 2) + "x"));
      }
      out.println(Report.table(List.of("case", "transfers", "mean ms", "p50 ms", "p99 ms", "p50 / base"), table));
      for (Side s : sides) {
        s.work().close();
        s.control().close();
      }
    } finally {
      pair.shutdownNow();
    }
  }

  @FunctionalInterface
  private interface SideStep {
    void run(Side s) throws Exception;
  }

  @FunctionalInterface
  private interface Step {
    void run() throws Exception;
  }

  /** Runs {@code step} on both shards at once (the coordinator's parallel send), and waits for both. */
  private static void both(ExecutorService pair, Side[] sides, SideStep step) throws Exception {
    CompletableFuture<Void> other = CompletableFuture.runAsync(() -> unchecked(() -> step.run(sides[1])), pair);
    step.run(sides[0]);
    other.get(10, TimeUnit.SECONDS);
  }

  private static void unchecked(Step s) {
    try {
      s.run();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static void update(Side s, long id) throws SQLException {
    s.update().setLong(1, 1);
    s.update().setLong(2, id);
    if (s.update().executeUpdate() != 1) {
      throw new IllegalStateException("account " + id + " missing");
    }
  }

  /** Ends the work connection's transaction as a prepared one (the session is then idle). */
  private static void prepare(Side s, String gid) throws SQLException {
    try (Statement st = s.work().createStatement()) {
      st.execute("PREPARE TRANSACTION '" + gid + "'");
    }
  }

  private static void commitPrepared(Side s, String gid) throws SQLException {
    try (Statement st = s.control().createStatement()) {
      st.execute("COMMIT PREPARED '" + gid + "'");
    }
  }

  private static long[] toArray(List<Long> v) {
    return v.stream().mapToLong(Long::longValue).toArray();
  }
}
