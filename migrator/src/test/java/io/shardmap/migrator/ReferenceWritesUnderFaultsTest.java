package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ReferenceWriterProcess;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.TxnId;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 14's reference-table fault test, on real etcd, two directory servers running the transaction
 * resolver and four PostgreSQL shards: writers change a reference table of a keyspace of s1..s3 through
 * {@link ShardmapData#writeReference} while two coordinator processes ({@link ReferenceWriterProcess}) are
 * SIGKILLed in the middle of a write's two-phase commit, one after its decision and one before, and while
 * the migrator moves a range to s4, which first gives s4 its copy (raising the epoch on every copy, which
 * waits for the killed writes' prepared parts until the resolver finishes them).
 *
 * <p>At the end, from the shards themselves: the four copies are equal by the migrator's verifier
 * (checksums) and row by row; every acknowledged insert is on every copy, and nothing never attempted; every
 * updated row holds its last acknowledged value or a later attempted one; the write killed after its
 * decision is on every copy, the one killed before it on none; no prepared transaction of the fleet is left.
 */
@Tag("fault")
class ReferenceWritesUnderFaultsTest {
  private static final String KS = "accounts";
  private static final List<String> OWNERS = List.of("s1", "s2", "s3");
  private static final int WRITERS = 3;
  /** Per writer: at most this many writes, and at most {@link #MAX_SECONDS} of writing. */
  private static final int MAX_WRITES = 3_000;
  private static final long MAX_SECONDS = 40;
  /** The writes after the move that must be acknowledged before the writers stop (they go on meanwhile). */
  private static final int AFTER_MOVE = 30;
  /** Child ids: [base + 1, base + CHILD_WRITES]; the n-th is stopped and killed. */
  private static final long DECIDED_BASE = 1_000_000;
  private static final long UNDECIDED_BASE = 2_000_000;
  private static final int CHILD_WRITES = 6;
  private static final int KILLED_AT = 3;
  private static final Duration ABORT_AFTER = Duration.ofSeconds(1);

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(4).servers(2).sockets()
      .table("id bigint PRIMARY KEY, v bigint NOT NULL")
      .serverOptions(o -> o.resolver(pgUser(), pgPassword()).txnResolveInterval(Duration.ofMillis(200))
          .txnAbortAfter(ABORT_AFTER).txnResolverLeaseTtl(Duration.ofSeconds(2)))
      .extension();

  private String ref;
  private final List<Process> children = new ArrayList<>();

  private static String pgUser() {
    return io.shardmap.testkit.PostgresFixture.shared(4).shard(0).user();
  }

  private static String pgPassword() {
    return io.shardmap.testkit.PostgresFixture.shared(4).shard(0).password();
  }

  @BeforeEach
  void setUp() throws Exception {
    ShardmapFleet f = fleet.get();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(KS)
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(f.table()).setKeyColumn("id")))
        .addAllRangeShards(OWNERS).build());
    ref = "plans_" + f.prefix().substring(2);
    f.execOnShards("CREATE TABLE " + ref + " (id bigint PRIMARY KEY, v bigint NOT NULL, who text NOT NULL)");
    // One row per in-process writer, which only that writer updates (its value only grows).
    f.shard(0).exec("INSERT INTO " + ref + " SELECT g, 0, 'seed' FROM generate_series(0, " + (WRITERS - 1) + ") g");
  }

  @AfterEach
  void tearDown() throws Exception {
    for (Process p : children) {
      p.destroyForcibly();
    }
    if (ref != null) {
      fleet.get().execOnShards("DROP TABLE IF EXISTS " + ref);
      fleet.get().execOnShards("DO $$ BEGIN IF to_regclass('shardmap.reference_tables') IS NOT NULL THEN "
          + "DELETE FROM shardmap.reference_tables WHERE tbl = 'public." + ref + "'; END IF; END $$");
    }
  }

  private Migrator migrator() {
    ShardmapFleet f = fleet.get();
    return Migrator.open(MigratorOptions.builder().etcdEndpoints(f.etcd().clientEndpoints()).etcdPrefix(f.prefix())
        .pgUser(pgUser()).pgPassword(pgPassword()).leaseTtl(Duration.ofSeconds(2))
        .pollInterval(Duration.ofMillis(50)).build());
  }

  /** A coordinator process and what it printed. */
  private final class Child {
    final Process process;
    final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    final Set<Long> acked = ConcurrentHashMap.newKeySet();
    final StringBuffer log = new StringBuffer();

    Child(long idBase, String stopAt) throws IOException {
      ShardmapFleet f = fleet.get();
      Path java = Path.of(System.getProperty("java.home"), "bin", "java");
      process = new ProcessBuilder(java.toString(), "-Xmx160m", "-cp", System.getProperty("java.class.path"),
          ReferenceWriterProcess.class.getName(), String.join(",", f.targets()), pgUser(), pgPassword(), KS,
          ref, Long.toString(idBase), Integer.toString(CHILD_WRITES), stopAt).redirectErrorStream(true).start();
      children.add(process);
      Thread reader = new Thread(() -> {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
          for (String line; (line = r.readLine()) != null; ) {
            log.append(line).append('\n');
            if (line.startsWith("ACK ")) {
              acked.add(Long.parseLong(line.substring(4).strip()));
            }
            lines.add(line);
          }
        } catch (IOException e) {
          log.append("(reader: ").append(e).append(")\n");
        }
        lines.add("EOF");
      }, "reference-child-reader");
      reader.setDaemon(true);
      reader.start();
    }

    /** The next line starting with {@code prefix}; fails on the process's end or after 60 s. */
    String await(String prefix) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (true) {
        String line = lines.poll(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        if (line == null || line.equals("EOF")) {
          return fail("the coordinator process ended or stalled before '" + prefix + "':\n" + log);
        }
        if (line.startsWith(prefix)) {
          return line;
        }
      }
    }

    /** SIGKILL: no shutdown hook, no connection closed by the JVM. */
    void kill() throws InterruptedException {
      process.destroyForcibly();
      assertTrue(process.waitFor(30, TimeUnit.SECONDS));
    }
  }

  /** What the in-process writers did: inserts by id, updates of each writer's own row. */
  private static final class Oracle {
    final Set<Long> attemptedInserts = ConcurrentHashMap.newKeySet();
    final Set<Long> ackedInserts = ConcurrentHashMap.newKeySet();
    /** Per writer: the last value acknowledged for its row, and the highest attempted. */
    final AtomicLongArray lastAckedValue = new AtomicLongArray(WRITERS);
    final AtomicLongArray highestAttemptedValue = new AtomicLongArray(WRITERS);
    final AtomicLong acked = new AtomicLong();
    final List<String> failures = new CopyOnWriteArrayList<>();
    final List<Throwable> errors = new CopyOnWriteArrayList<>();
  }

  private List<String> prepared(int shard) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = fleet.get().shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid "
             + "LIKE '" + TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix())) + "'")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  /** Waits until no shard holds a prepared transaction of this fleet: the resolver's work, bounded. */
  private void awaitResolved() throws Exception {
    long deadline = System.nanoTime() + ABORT_AFTER.toNanos() * 20;
    List<String> left;
    do {
      left = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        left.addAll(prepared(i));
      }
      if (left.isEmpty()) {
        return;
      }
      Thread.sleep(100);
    } while (System.nanoTime() < deadline);
    fail("still prepared after " + ABORT_AFTER.multipliedBy(20).toSeconds() + " s: " + left);
  }

  /** A copy's rows: id to v. */
  private Map<Long, Long> rows(int shard) throws SQLException {
    Map<Long, Long> out = new TreeMap<>();
    try (Connection c = fleet.get().shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT id, v FROM " + ref)) {
      while (rs.next()) {
        out.put(rs.getLong(1), rs.getLong(2));
      }
    }
    return out;
  }

  private Thread writer(ShardmapData data, int me, Oracle o, AtomicBoolean stop) {
    Thread t = new Thread(() -> {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(MAX_SECONDS);
      try {
        for (int i = 1; i <= MAX_WRITES && !stop.get() && System.nanoTime() < until; i++) {
          boolean update = i % 3 == 0;
          long id = update ? me : 100_000L * (me + 1) + i;
          long v = i;
          if (update) {
            o.highestAttemptedValue.accumulateAndGet(me, v, Math::max);
          } else {
            o.attemptedInserts.add(id);
          }
          try {
            int n = data.writeReference(KS, ref, c -> {
              String sql = update ? "UPDATE " + ref + " SET v = ?, who = 'w' WHERE id = ?"
                  : "INSERT INTO " + ref + " (v, id, who) VALUES (?, ?, 'w')";
              try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setLong(1, v);
                ps.setLong(2, id);
                return ps.executeUpdate();
              }
            });
            assertEquals(1, n, "rows changed on each copy");
            if (update) {
              o.lastAckedValue.set(me, v);
            } else {
              o.ackedInserts.add(id);
            }
            o.acked.incrementAndGet();
          } catch (SQLException | RuntimeException e) {
            // Not acknowledged: it may or may not have committed (the oracle allows both), on all copies or none.
            o.failures.add((update ? "update " : "insert ") + id + ": " + e);
          }
        }
      } catch (Throwable e) {
        o.errors.add(e);
      }
    }, "reference-writer-" + me);
    t.start();
    return t;
  }

  @Test
  void copiesStayEqualAndKeepEveryAcknowledgedWriteWhileAShardJoinsAndCoordinatorsAreKilled() throws Exception {
    ShardmapFleet f = fleet.get();
    Oracle o = new Oracle();
    AtomicBoolean stop = new AtomicBoolean();
    try (Migrator m = migrator();
         ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).keyspaces(KS)
             .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
         ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(pgUser()).password(pgPassword())
             .maxPoolSize(8).staleRouteTimeout(Duration.ofSeconds(20)).maxAttempts(20).build())) {
      ReferenceTable declared = m.addReference(ref, List.of(KS), false, "s1", line -> { });
      assertEquals(OWNERS, declared.getCopiesList());

      // Two coordinators, each stopped at its third write: one after the decision, one before it.
      Child decided = new Child(DECIDED_BASE, "DECIDED:" + KILLED_AT);
      Child undecided = new Child(UNDECIDED_BASE, "BETWEEN_PREPARES:" + KILLED_AT);
      List<Thread> writers = new ArrayList<>();
      for (int w = 0; w < WRITERS; w++) {
        writers.add(writer(data, w, o, stop));
      }
      decided.await("AT DECIDED");
      undecided.await("AT BETWEEN_PREPARES");
      long beforeKills = o.acked.get();
      decided.kill();
      undecided.kill();
      int preparedAtKills = 0; // observed, not asserted (the resolver may already be finishing them)
      for (int i = 0; i < 4; i++) {
        preparedAtKills += prepared(i).size();
      }

      // s4 joins while the killed writes are still prepared and the writers go on: the move's first step
      // raises the epoch on every copy (waiting for the prepared parts until the resolver finishes them) and
      // copies s4's rows, and only then does anything route to s4.
      Migration planned = m.plan(MoveSpec.builder().id("r4").keyspace(KS).range("0..1000").target("s4").split(true)
          .cleanupGrace(Duration.ofMillis(200)).pauseBudget(Duration.ofSeconds(2)).createMissingTables(true).build());
      Migration done = m.drive(planned.getId(), p -> { }, Duration.ofSeconds(5));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      long afterMove = o.acked.get();
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (o.acked.get() < afterMove + AFTER_MOVE && o.errors.isEmpty() && writers.stream().anyMatch(Thread::isAlive)
          && System.nanoTime() < until) {
        Thread.sleep(10);
      }
      stop.set(true);
      for (Thread t : writers) {
        t.join(60_000);
        assertFalse(t.isAlive(), "writer " + t.getName() + " stopped");
      }
      assertTrue(o.errors.isEmpty(), () -> "writer errors: " + o.errors);
      System.out.println("ReferenceWritesUnderFaultsTest: acknowledged " + o.acked.get() + " (before the kills "
          + beforeKills + ", after the move " + (o.acked.get() - afterMove) + "), reruns " + ReferenceWriterProcess.referenceReruns(client) + ", failed " + o.failures.size()
          + ", prepared parts at the kills " + preparedAtKills + (o.failures.isEmpty() ? "" : ", first: " + o.failures.get(0)));
      assertTrue(o.acked.get() > afterMove, "writers wrote the four copies after the move");
      assertTrue(ReferenceWriterProcess.referenceReruns(client) > 0,
          "writers in flight at the epoch raise were refused and ran again");

      awaitResolved();
      ReferenceTable t = m.listReferences().get(0);
      assertEquals(List.of("s1", "s2", "s3", "s4"), t.getCopiesList());

      // The migrator's verifier: every copy's checksum equal.
      ReferenceCheck check = m.verifyReference(t.getTable(), ReferenceCheck.Settings.DEFAULTS, p -> { });
      assertEquals(4, check.copies().size(), check.toString());
      assertTrue(check.equal(), () -> "copies differ: " + check);

      // And row by row, against the oracle.
      Map<Long, Long> first = rows(0);
      for (int i = 1; i < 4; i++) {
        assertEquals(first, rows(i), "copy on s" + (i + 1) + " equals s1's");
      }
      for (long id : o.ackedInserts) {
        assertTrue(first.containsKey(id), "acknowledged insert " + id + " is on every copy");
      }
      for (long id : decided.acked) {
        assertTrue(first.containsKey(id), "the child's acknowledged insert " + id + " is on every copy");
      }
      assertEquals(Set.of(DECIDED_BASE + 1, DECIDED_BASE + 2), decided.acked, decided.log.toString());
      assertEquals(Set.of(UNDECIDED_BASE + 1, UNDECIDED_BASE + 2), undecided.acked, undecided.log.toString());
      for (long id : undecided.acked) {
        assertTrue(first.containsKey(id), "the child's acknowledged insert " + id + " is on every copy");
      }
      assertTrue(first.containsKey(DECIDED_BASE + KILLED_AT),
          "killed after its decision: committed on every copy by the resolver");
      assertFalse(first.containsKey(UNDECIDED_BASE + KILLED_AT),
          "killed before its decision: aborted on every copy by the resolver");
      for (Map.Entry<Long, Long> r : first.entrySet()) {
        long id = r.getKey();
        boolean known = id < WRITERS || o.attemptedInserts.contains(id)
            || (id > DECIDED_BASE && id <= DECIDED_BASE + KILLED_AT)
            || (id > UNDECIDED_BASE && id < UNDECIDED_BASE + KILLED_AT);
        assertTrue(known, "row " + id + " was never written (or written after its coordinator was killed)");
      }
      for (int w = 0; w < WRITERS; w++) {
        long v = first.get((long) w);
        assertTrue(v >= o.lastAckedValue.get(w) && v <= o.highestAttemptedValue.get(w) && (v == 0 || v % 3 == 0),
            "writer " + w + "'s row holds " + v + ": its last acknowledged value " + o.lastAckedValue.get(w)
                + " or a later attempted one (highest " + o.highestAttemptedValue.get(w) + ")");
      }
      assertTrue(t.getEpoch() > declared.getEpoch(), "adding s4's copy raised the epoch");
    } finally {
      stop.set(true);
    }
  }
}
