package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.Counters.TxnOutcome;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@link ShardmapData#acrossShards} on real etcd, a directory server and three PostgreSQL shards: the shards
 * commit together or not at all, one writer commits plainly, the work may not end a transaction itself, a
 * fence reruns the whole work on the new owner, and concurrent transfers keep the total.
 */
@Tag("integration")
class CrossShardTransactionTest {
  /** One key per shard of the evenly split range keyspace "accounts": s1, s2, s3. */
  static final long A = Long.MIN_VALUE + 10;
  static final long B = 0;
  static final long C = Long.MAX_VALUE - 10;

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3)
      .table("id bigint PRIMARY KEY, balance bigint NOT NULL").extension();

  PostgresFixture pg;
  String table;
  ShardmapClient client;
  ShardmapData data;

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    table = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("accounts")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addAllRangeShards(f.shardNames()).build());
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("accounts").backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(8).staleRouteTimeout(Duration.ofSeconds(5)).crossShardLockTimeout(Duration.ofMillis(300)).build());
    for (long id : new long[] {A, B, C}) {
      data.inTransaction("accounts", id, c -> exec(c, "INSERT INTO " + table + " VALUES (" + id + ", 100)"));
    }
  }

  @AfterEach
  void stop() {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
  }

  private static int exec(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      return s.executeUpdate(sql);
    }
  }

  private static int move(Connection c, String table, long id, long delta) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET balance = balance + ? WHERE id = ?")) {
      ps.setLong(1, delta);
      ps.setLong(2, id);
      return ps.executeUpdate();
    }
  }

  /** The balance of {@code id} read on shard {@code i} directly. */
  private long balance(int i, long id) throws SQLException {
    try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT balance FROM " + table + " WHERE id = " + id)) {
      return rs.next() ? rs.getLong(1) : -1;
    }
  }

  private long decisions(int i) throws SQLException {
    try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_class WHERE oid = to_regclass('shardmap.txn_decisions')")) {
      rs.next();
      if (rs.getLong(1) == 0) {
        return 0;
      }
    }
    try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM shardmap.txn_decisions WHERE gid LIKE '"
             + TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix())) + "'")) {
      rs.next();
      return rs.getLong(1);
    }
  }

  private List<String> prepared(int i) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid "
             + "LIKE '" + TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix())) + "'")) {
      while (rs.next()) {
        out.add(rs.getString(1));
      }
    }
    return out;
  }

  private void assertBalances(long a, long b, long c) throws SQLException {
    assertEquals(a, balance(0, A), "A on s1");
    assertEquals(b, balance(1, B), "B on s2");
    assertEquals(c, balance(2, C), "C on s3");
  }

  @Test
  void aTransferOnTwoShardsCommitsOnBothThroughTheDecider() throws Exception {
    Counters k = client.counters();
    long committed2 = k.txnsByWriters(1);
    long decisionsBefore = decisions(0) + decisions(1);
    String shards = data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -30);
      move(tx.connection("accounts", ShardKey.of(B)), table, B, 30);
      // The same shard's connection again: one transaction per shard.
      assertTrue(tx.connection("accounts", A + 1) == tx.connection("accounts", A));
      return String.join(",", tx.shards());
    });
    assertEquals("s1,s2", shards);
    assertBalances(70, 130, 100);
    assertEquals(committed2 + 1, k.txnsByWriters(1), "counted as a two-writer commit");
    // The decision was written on the decider (s1, the first writer) with its commit, and nothing stays prepared.
    assertEquals(decisionsBefore + 1, decisions(0) + decisions(1));
    assertEquals(List.of(), prepared(0));
    assertEquals(List.of(), prepared(1));
    try (Connection c = pg.shard(0).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT gid, decision, participants::text FROM shardmap.txn_decisions "
             + "WHERE gid LIKE '" + TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix())) + "'")) {
      assertTrue(rs.next());
      TxnId id = TxnId.parse(rs.getString(1));
      assertEquals("s1", id.decider());
      assertEquals(TxnId.namespaceOf(fleet.get().prefix()), id.namespace(), "the directory's namespace");
      assertEquals(TxnCoordinatorIds.of(client.clientId()), id.coordinator());
      assertEquals("c", rs.getString(2));
      assertEquals("{s2}", rs.getString(3));
    }

    // Three shards.
    data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -10);
      move(tx.connection("accounts", B), table, B, -10);
      move(tx.connection("accounts", C), table, C, 20);
      return null;
    });
    assertBalances(60, 120, 120);
    assertEquals(List.of(), prepared(1));
    assertEquals(List.of(), prepared(2));
  }

  /**
   * crossShardCommitWait(false): the call returns once the decision is durable, and the prepared shards
   * commit right after; every transfer still ends on both sides, and nothing stays prepared.
   */
  @Test
  void withoutCommitWaitTheOtherShardsCommitRightAfterTheCall() throws Exception {
    try (ShardmapData early = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user())
        .password(pg.shard(0).password()).crossShardCommitWait(false).build())) {
      for (int i = 0; i < 20; i++) {
        early.acrossShards(tx -> {
          move(tx.connection("accounts", A), table, A, -1);
          move(tx.connection("accounts", B), table, B, 1);
          return null;
        });
      }
      io.shardmap.testkit.Await.until(Duration.ofSeconds(10), "the prepared shard committed",
          () -> {
            try {
              return balance(1, B) == 120 && prepared(1).isEmpty();
            } catch (SQLException e) {
              throw new AssertionError(e);
            }
          });
      assertBalances(80, 120, 100);
    }
  }

  /** The coordinator part of a gid, as the SDK makes it from the client id. */
  static final class TxnCoordinatorIds {
    static String of(String clientId) {
      return io.shardmap.client.internal.txn.TxnCoordinator.coordinatorId(clientId);
    }
  }

  /**
   * Whether a shard wrote is asked only of shards that ran no INSERT/UPDATE/...: a SELECT that writes through
   * a function still makes its shard a writer (two-phase), and an UPDATE that changed no row is prepared
   * like any writer (correct, if not needed).
   */
  @Test
  void aShardThatWroteThroughASelectTakesPartInTheTwoPhaseCommit() throws Exception {
    pg.shard(1).exec("CREATE OR REPLACE FUNCTION add_" + table + "(k bigint, d bigint) RETURNS bigint LANGUAGE sql "
        + "AS $$ UPDATE " + table + " SET balance = balance + d WHERE id = k RETURNING balance $$");
    Counters k = client.counters();
    long twoWriters = k.txnsByWriters(1);
    long decisions = decisions(0);
    data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -3);
      try (Statement s = tx.connection("accounts", B).createStatement();
           ResultSet rs = s.executeQuery("SELECT add_" + table + "(" + B + ", 3)")) {
        rs.next();
      }
      return null;
    });
    assertBalances(97, 103, 100);
    assertEquals(twoWriters + 1, k.txnsByWriters(1), "the SELECT's shard was found to have written");
    assertEquals(decisions + 1, decisions(0));
    // An UPDATE of no row on s3 with a real one on s1: both prepared/decided, nothing changes on s3.
    data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -1);
      move(tx.connection("accounts", C), table, C + 12345, 1);
      return null;
    });
    assertBalances(96, 103, 100);
    assertEquals(twoWriters + 2, k.txnsByWriters(1));
    assertEquals(List.of(), prepared(2));
  }

  @Test
  void oneWriterCommitsPlainlyWithNoDecision() throws Exception {
    Counters k = client.counters();
    long onePhase = k.txnsByWriters(0);
    long before = decisions(0) + decisions(1) + decisions(2);
    long seen = data.acrossShards(tx -> {
      long b;
      try (Statement s = tx.connection("accounts", B).createStatement();
           ResultSet rs = s.executeQuery("SELECT balance FROM " + table + " WHERE id = " + B)) {
        rs.next();
        b = rs.getLong(1);
      }
      move(tx.connection("accounts", A), table, A, b); // reads s2, writes s1
      return b;
    });
    assertEquals(100, seen);
    assertBalances(200, 100, 100);
    assertEquals(onePhase + 1, k.txnsByWriters(0));
    assertEquals(before, decisions(0) + decisions(1) + decisions(2), "no decision row for a one-writer commit");
    // A single shard: also plain.
    data.acrossShards(tx -> move(tx.connection("accounts", C), table, C, 1));
    assertBalances(200, 100, 101);
    assertEquals(onePhase + 2, k.txnsByWriters(0));
  }

  @Test
  void aWorkThatThrowsOrCatchesAnSqlErrorCommitsNothing() throws Exception {
    SQLException thrown = assertThrows(SQLException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -50);
      move(tx.connection("accounts", B), table, B, 50);
      exec(tx.connection("accounts", C), "INSERT INTO " + table + " VALUES (" + C + ", 0)"); // duplicate key
      return null;
    }));
    assertEquals("23505", thrown.getSQLState());
    assertBalances(100, 100, 100);

    IllegalStateException mine = assertThrows(IllegalStateException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -50);
      move(tx.connection("accounts", B), table, B, 50);
      throw new IllegalStateException("the application changed its mind");
    }));
    assertEquals("the application changed its mind", mine.getMessage());
    assertBalances(100, 100, 100);

    // The work swallows the failure on s3 and returns: the failed transaction cannot commit, so none does.
    ShardmapException aborted = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -50);
      move(tx.connection("accounts", B), table, B, 50);
      try {
        exec(tx.connection("accounts", C), "INSERT INTO " + table + " VALUES (" + C + ", 0)");
      } catch (SQLException ignored) {
        // the work goes on as if nothing happened
      }
      return null;
    }));
    assertEquals(ErrorCode.ABORTED, aborted.code());
    assertTrue(aborted.getMessage().contains("shard s3 had failed"), aborted.getMessage());
    assertBalances(100, 100, 100);
    for (int i = 0; i < 3; i++) {
      assertEquals(List.of(), prepared(i));
    }
  }

  interface Misuse {
    void on(Connection c) throws SQLException;
  }

  @Test
  void theWorkMayNotEndATransactionItselfAndNothingCommitsWhenItTries() throws Exception {
    List<Misuse> misuses = List.of(Connection::commit, Connection::rollback, Connection::close,
        c -> c.setAutoCommit(true), c -> exec(c, "COMMIT"), c -> exec(c, "  /* x */ end"),
        c -> c.prepareStatement("rollback").execute(), c -> exec(c, "PREPARE TRANSACTION 'mine'"));
    for (Misuse m : misuses) {
      // Caught by the work or not, the refusal rolls everything back.
      for (boolean caught : new boolean[] {false, true}) {
        ShardmapException e = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
          move(tx.connection("accounts", A), table, A, -50);
          Connection b = tx.connection("accounts", B);
          move(b, table, B, 50);
          try {
            m.on(b);
          } catch (ShardmapException refused) {
            if (!caught) {
              throw refused;
            }
          }
          return null;
        }));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("on shard s2") && e.getMessage().contains("not allow"), e.getMessage());
        assertBalances(100, 100, 100);
      }
    }
    // ROLLBACK TO SAVEPOINT is the work's own business, and so is making sure autocommit is off.
    data.acrossShards(tx -> {
      Connection a = tx.connection("accounts", A);
      a.setAutoCommit(false);
      assertFalse(a.getAutoCommit());
      move(a, table, A, -1);
      exec(a, "SAVEPOINT s");
      move(a, table, A, -1000);
      exec(a, "ROLLBACK TO SAVEPOINT s");
      move(tx.connection("accounts", B), table, B, 1);
      return null;
    });
    assertBalances(99, 101, 100);

    // A COMMIT the SQL text hides from the guard is seen afterwards: the other shard is rolled back and the
    // error says what may have committed.
    ShardmapException hidden = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -9);
      exec(tx.connection("accounts", B), "UPDATE " + table + " SET balance = balance + 9 WHERE id = " + B + "; COMMIT");
      return null;
    }));
    assertEquals(ErrorCode.INVALID_ARGUMENT, hidden.code());
    assertTrue(hidden.getMessage().contains("ended its transaction on shard s2 itself"), hidden.getMessage());
    assertEquals(99, balance(0, A), "the other shard rolled back");

    // A connection kept past the work refuses everything.
    Connection[] kept = new Connection[1];
    data.acrossShards(tx -> {
      kept[0] = tx.connection("accounts", C);
      return move(kept[0], table, C, 0);
    });
    assertTrue(kept[0].isClosed());
    ShardmapException late = assertThrows(ShardmapException.class, () -> kept[0].createStatement());
    assertEquals(ErrorCode.FAILED_PRECONDITION, late.code());
  }

  @Test
  void badKeysAndKeyspacesAreRefusedAndWhatTheWorkDidIsRolledBack() throws Exception {
    ShardmapException unknown = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -5);
      tx.connection("nope", 1);
      return null;
    }));
    assertEquals(ErrorCode.NOT_FOUND, unknown.code());
    assertTrue(unknown.getMessage().contains("nope"), unknown.getMessage());
    ShardmapException wrongType = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -5);
      tx.connection("accounts", ShardKey.of("text key"));
      return null;
    }));
    assertEquals(ErrorCode.INVALID_ARGUMENT, wrongType.code());
    ShardmapException noKey = assertThrows(ShardmapException.class,
        () -> data.acrossShards(tx -> tx.connection("accounts", (ShardKey) null)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, noKey.code());
    ShardmapException noWork = assertThrows(ShardmapException.class, () -> data.acrossShards(null));
    assertEquals(ErrorCode.INVALID_ARGUMENT, noWork.code());
    assertBalances(100, 100, 100);
    long failed = client.counters().txns(TxnOutcome.FAILED);
    assertTrue(failed >= 3, "failures counted: " + failed);
  }

  /** The fence the migrator installs, reduced to what the SDK sees: writes to [lo, hi) refused with SMF01. */
  private void fence(int shardIndex, ShardRoute route) throws SQLException {
    long lo = route.range().core().unboundedBelow() ? Long.MIN_VALUE
        : io.shardmap.core.Keys.decodeInt64(route.range().core().start());
    long hi = route.range().core().unboundedAbove() ? Long.MAX_VALUE
        : io.shardmap.core.Keys.decodeInt64(route.range().core().end());
    String msg = StaleRoute.message("accounts", route.epoch()).replace("'", "''");
    pg.shard(shardIndex).exec("CREATE OR REPLACE FUNCTION fence_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$"
        + " BEGIN IF NEW.id >= " + lo + " AND NEW.id < " + hi + " THEN RAISE EXCEPTION USING ERRCODE = '"
        + StaleRoute.SQLSTATE + "', MESSAGE = '" + msg + "'; END IF; RETURN NEW; END $$");
    pg.shard(shardIndex).exec("CREATE TRIGGER fence BEFORE INSERT OR UPDATE ON " + table
        + " FOR EACH ROW EXECUTE FUNCTION fence_" + table + "()");
  }

  @Test
  void aFencedRangeRunsTheWholeWorkAgainOnTheNewOwner() throws Exception {
    ShardRoute r = client.route("accounts", A);
    assertEquals("s1", r.shard());
    // The move's copy: A's row is on s3 too before the cutover.
    pg.shard(2).exec("INSERT INTO " + table + " VALUES (" + A + ", 100)");
    fence(0, r);
    CompletableFuture<Void> cutover = CompletableFuture.runAsync(() -> {
      try {
        Thread.sleep(300);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      fleet.get().admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("accounts")
          .setRange(r.range().core().toProto(KeyType.KEY_TYPE_INT64)).setShard("s3").setExpectedEpoch(r.epoch()).build());
    });
    AtomicInteger runs = new AtomicInteger();
    long reruns = client.counters().txnReruns();
    String shards = data.acrossShards(tx -> {
      runs.incrementAndGet();
      move(tx.connection("accounts", B), table, B, 40); // s2, before the fenced one: rolled back on the refusal
      move(tx.connection("accounts", A), table, A, -40);
      return String.join(",", tx.shards());
    });
    cutover.join();
    assertEquals(2, runs.get(), "run once on the fenced s1, once on s3");
    assertEquals("s2,s3", shards);
    assertEquals(reruns + 1, client.counters().txnReruns());
    assertEquals(140, balance(1, B), "s2's write applied once");
    assertEquals(60, balance(2, A), "applied on the new owner");
    assertEquals(100, balance(0, A), "nothing on the fenced source");
  }

  @Test
  void aConnectionKilledDuringTheWorkRunsItAgain() throws Exception {
    AtomicInteger runs = new AtomicInteger();
    data.acrossShards(tx -> {
      move(tx.connection("accounts", A), table, A, -7);
      Connection b = tx.connection("accounts", B);
      if (runs.incrementAndGet() == 1) {
        long pid;
        try (Statement s = b.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_backend_pid()")) {
          rs.next();
          pid = rs.getLong(1);
        }
        try (Connection admin = pg.shard(1).connect(); Statement s = admin.createStatement()) {
          s.execute("SELECT pg_terminate_backend(" + pid + ")");
        }
      }
      move(b, table, B, 7);
      return null;
    });
    assertEquals(2, runs.get());
    assertBalances(93, 107, 100);
  }

  /**
   * Two transfers lock the same two rows on two shards in opposite orders: no PostgreSQL sees the deadlock,
   * and the cross-shard lock timeout breaks it. Whatever failed committed nothing; whatever succeeded is
   * applied.
   */
  private static String show(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW lock_timeout")) {
      rs.next();
      return rs.getString(1);
    }
  }

  @Test
  void aDeadlockAcrossShardsIsBrokenByTheLockTimeout() throws Exception {
    // The bound applies to the statements run once two shards are open, on every shard, and to no others.
    data.acrossShards(tx -> {
      Connection a = tx.connection("accounts", A);
      assertEquals("0", show(a), "one shard open: PostgreSQL's own deadlock detection suffices");
      Connection b = tx.connection("accounts", B);
      assertEquals("300ms", show(b));
      assertEquals("300ms", show(a));
      return null;
    });
    assertEquals("0", data.acrossShards(tx -> show(tx.connection("accounts", C))), "not left on the session");

    java.util.concurrent.CyclicBarrier bothLocked = new java.util.concurrent.CyclicBarrier(2);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    List<Future<String>> fs = new ArrayList<>();
    for (long[] order : new long[][] {{A, B}, {B, A}}) {
      fs.add(pool.submit(() -> {
        AtomicInteger runs = new AtomicInteger();
        try {
          data.acrossShards(tx -> {
            move(tx.connection("accounts", order[0]), table, order[0], -1);
            if (runs.incrementAndGet() == 1) {
              try {
                bothLocked.await(10, TimeUnit.SECONDS);
              } catch (Exception e) {
                throw new AssertionError(e);
              }
            }
            move(tx.connection("accounts", order[1]), table, order[1], 1);
            return null;
          });
          return "ok";
        } catch (SQLException e) {
          return e.getSQLState();
        }
      }));
    }
    List<String> outcomes = new ArrayList<>();
    for (Future<String> f : fs) {
      outcomes.add(f.get(30, TimeUnit.SECONDS));
    }
    pool.shutdown();
    assertTrue(outcomes.contains("55P03"), "the deadlock was broken by a lock timeout: " + outcomes);
    // A -> B moved 1 from A to B; B -> A moved it back: only the ones that committed count.
    long a = 100;
    long b = 100;
    if (outcomes.get(0).equals("ok")) {
      a -= 1;
      b += 1;
    }
    if (outcomes.get(1).equals("ok")) {
      a += 1;
      b -= 1;
    }
    assertBalances(a, b, 100);
  }

  /**
   * Four threads transfer between six accounts on three shards (deadlocks between transfers are possible and
   * are retried by the test): the total never changes, every acknowledged transfer is applied, and nothing
   * stays prepared.
   */
  @Test
  void concurrentTransfersKeepTheTotalAndApplyEveryAcknowledgedOne() throws Exception {
    long[] ids = {A, A + 1, B, B + 1, C, C + 1};
    for (long id : new long[] {A + 1, B + 1, C + 1}) {
      data.inTransaction("accounts", id, c -> exec(c, "INSERT INTO " + table + " VALUES (" + id + ", 100)"));
    }
    ConcurrentHashMap<Long, Long> expected = new ConcurrentHashMap<>();
    for (long id : ids) {
      expected.put(id, 100L);
    }
    ExecutorService pool = Executors.newFixedThreadPool(4);
    // The point is consistency, not speed: up to 60 s (about 5 s here; a loaded CI machine did 27 transfers in
    // 20 s, each deadlock across shards costing a lock timeout), ending early once 240 are done.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    AtomicInteger acknowledged = new AtomicInteger();
    List<Future<?>> fs = new ArrayList<>();
    for (int t = 0; t < 4; t++) {
      int seed = t;
      fs.add(pool.submit(() -> {
        Random rnd = new Random(seed);
        for (int i = 0; i < 60 && System.nanoTime() < deadline; i++) {
          long from = ids[rnd.nextInt(ids.length)];
          long to = ids[rnd.nextInt(ids.length)];
          if (from == to) {
            continue;
          }
          long amount = 1 + rnd.nextInt(10);
          while (System.nanoTime() < deadline) {
            try {
              data.acrossShards(tx -> {
                move(tx.connection("accounts", from), table, from, -amount);
                move(tx.connection("accounts", to), table, to, amount);
                return null;
              });
              expected.merge(from, -amount, Long::sum);
              expected.merge(to, amount, Long::sum);
              acknowledged.incrementAndGet();
              break;
            } catch (SQLException e) {
              // 40P01: a deadlock on one shard; 55P03: the lock timeout that breaks one across shards.
              if (!"40P01".equals(e.getSQLState()) && !"55P03".equals(e.getSQLState())) {
                throw new AssertionError(e);
              }
            }
          }
        }
        return null;
      }));
    }
    for (Future<?> f : fs) {
      f.get(120, TimeUnit.SECONDS);
    }
    pool.shutdown();
    assertTrue(acknowledged.get() > 50, "transfers done: " + acknowledged.get());
    long total = 0;
    for (long id : ids) {
      int shard = fleet.get().shardNames().indexOf(client.route("accounts", id).shard());
      long b = balance(shard, id);
      assertEquals((long) expected.get(id), b, "account " + id);
      total += b;
    }
    assertEquals(600, total);
    for (int i = 0; i < 3; i++) {
      assertEquals(List.of(), prepared(i));
    }
    assertFalse(client.counters().txns(TxnOutcome.COMMITTED) < acknowledged.get());
  }
}
