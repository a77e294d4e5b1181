package io.shardmap.core.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.InDoubt.State;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The batched reads and deletes of {@link DecisionRows} and the scan {@link InDoubt#scan} on real PostgreSQL
 * 15: two "shards" are two databases of one server, a third name is registered but cannot be reached.
 */
@Tag("integration")
@Timeout(120)
class InDoubtScanTest {
  static PostgresFixture fixture;
  static PgInstance server;
  static PgInstance a;
  static PgInstance b;
  static final String NS = "scan-" + UUID.randomUUID().toString().substring(0, 8);

  @BeforeAll
  static void start() throws SQLException {
    fixture = PostgresFixture.startNew(1);
    server = fixture.shard(0);
    for (String db : List.of("shard_a", "shard_b")) {
      server.exec("CREATE DATABASE " + db);
    }
    a = new PgInstance(server.host(), server.port(), "shard_a", server.user(), server.password());
    b = new PgInstance(server.host(), server.port(), "shard_b", server.user(), server.password());
    for (PgInstance p : List.of(a, b)) {
      p.exec("CREATE TABLE work (id int PRIMARY KEY)");
    }
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  static void install(PgInstance p) throws SQLException {
    try (Connection c = p.connect(); Statement s = c.createStatement()) {
      for (String ddl : DecisionRows.ddl()) {
        s.execute(ddl);
      }
    }
  }

  static TxnId prepare(PgInstance p, String shard, TxnId id, int row) throws SQLException {
    try (Connection c = p.connect()) {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.execute("INSERT INTO work VALUES (" + row + ")");
      }
      PreparedTransactions.prepare(c, id, shard);
    }
    return id;
  }

  static void commitRow(PgInstance p, TxnId id, List<String> participants) throws SQLException {
    try (Connection c = p.connect()) {
      c.setAutoCommit(false);
      DecisionRows.recordCommit(c, id, participants);
      c.commit();
    }
  }

  @Test
  void withoutTheTableThereAreNoDecisionsAndOnceInstalledTheyAreReadInOneQuery() throws SQLException {
    server.exec("CREATE DATABASE no_table");
    PgInstance bare = new PgInstance(server.host(), server.port(), "no_table", server.user(), server.password());
    TxnId x = TxnId.random(NS, "a", "c");
    try (Connection c = bare.connect()) {
      assertFalse(DecisionRows.installed(c));
      assertEquals(Map.of(), DecisionRows.readAll(c, List.of(x)));
      assertEquals(List.of(), DecisionRows.rows(c, NS, 10));
    }
    install(bare);
    install(bare); // again: no error
    TxnId committed = TxnId.random(NS, "a", "c");
    TxnId aborted = TxnId.random(NS, "a", "c");
    commitRow(bare, committed, List.of("b", "c"));
    try (Connection c = bare.connect()) {
      assertTrue(DecisionRows.installed(c));
      assertEquals(java.util.Optional.of(Decision.ABORT), DecisionRows.decideAbort(c, aborted, Duration.ofSeconds(5)));
      assertEquals(Map.of(committed, Decision.COMMIT, aborted, Decision.ABORT),
          DecisionRows.readAll(c, List.of(committed, aborted, x)));
    }
  }

  @Test
  void rowsAreThisNamespacesOldestFirstAndForgetAllKeepsAbortRowsWhileOlderTransactionsAreOpen() throws Exception {
    install(a);
    String ns = "rows-" + UUID.randomUUID().toString().substring(0, 8);
    TxnId c1 = TxnId.random(ns, "a", "c");
    TxnId c2 = TxnId.random(ns, "a", "c");
    TxnId other = TxnId.random("another-" + ns, "a", "c");
    commitRow(a, c1, List.of("b"));
    commitRow(a, c2, List.of("b", "x"));
    commitRow(a, other, List.of("b"));
    try (Connection old = a.connect()) {
      old.setAutoCommit(false);
      try (Statement s = old.createStatement()) {
        s.execute("SELECT 1"); // a transaction open since before the abort below
      }
      TxnId ab = TxnId.random(ns, "a", "c");
      try (Connection c = a.connect()) {
        assertEquals(java.util.Optional.of(Decision.ABORT), DecisionRows.decideAbort(c, ab, Duration.ofSeconds(5)));
        List<DecisionRows.Row> rows = DecisionRows.rows(c, ns, 10);
        assertEquals(List.of(new DecisionRows.Row(c1, Decision.COMMIT, List.of("b")),
            new DecisionRows.Row(c2, Decision.COMMIT, List.of("b", "x")),
            new DecisionRows.Row(ab, Decision.ABORT, List.of())), rows, "this namespace's, oldest first");
        assertEquals(2, DecisionRows.rows(c, ns, 2).size(), "at most the limit");
        assertEquals(2, DecisionRows.forgetAll(c, List.of(c1, c2, ab)), "the COMMIT rows go, the ABORT row stays");
        assertEquals(Map.of(ab, Decision.ABORT, other, Decision.COMMIT), DecisionRows.readAll(c, List.of(c1, c2, ab, other)));
        old.rollback();
        assertEquals(1, DecisionRows.forgetAll(c, List.of(ab)), "once no older transaction is open");
        assertEquals(0, DecisionRows.forgetAll(c, List.of()));
        DecisionRows.forgetAll(c, List.of(other));
      }
    }
  }

  @Test
  void theScanListsEveryShardsPreparedTransactionsWithTheirDecisions() throws Exception {
    install(a);
    install(b);
    String ns = "inscan-" + UUID.randomUUID().toString().substring(0, 8);
    TxnId committed = prepare(b, "b", TxnId.random(ns, "a", "c"), 1);
    commitRow(a, committed, List.of("b"));
    TxnId aborted = prepare(b, "b", TxnId.random(ns, "a", "c"), 2);
    try (Connection c = a.connect()) {
      DecisionRows.decideAbort(c, aborted, Duration.ofSeconds(5));
    }
    TxnId undecided = prepare(a, "a", TxnId.random(ns, "b", "c"), 3);
    TxnId unregistered = prepare(a, "a", TxnId.random(ns, "zz", "c"), 4);
    TxnId deciderDown = prepare(b, "b", TxnId.random(ns, "down", "c"), 5);
    TxnId otherNs = prepare(a, "a", TxnId.random("x" + ns, "b", "c"), 6);
    Map<String, PgInstance> shards = Map.of("a", a, "b", b);
    Map<String, Connection> open = new HashMap<>();
    List<TxnId> all = List.of(committed, aborted, undecided, unregistered, deciderDown);
    try {
      InDoubt.Scan scan = InDoubt.scan(List.of("a", "b", "down"), shard -> {
        if (shard.equals("down")) {
          throw new SQLException("connection refused (test)", "08001");
        }
        return open.computeIfAbsent(shard, s -> {
          try {
            return shards.get(s).connect();
          } catch (SQLException e) {
            throw new IllegalStateException(e);
          }
        });
      }, ns);
      Map<TxnId, InDoubt.Entry> byId = new HashMap<>();
      for (InDoubt.Entry e : scan.entries()) {
        byId.put(e.id(), e);
      }
      assertEquals(java.util.Set.copyOf(all), byId.keySet(), "this namespace's, on the shards that answered");
      assertEquals(State.COMMIT, byId.get(committed).state());
      assertEquals("b", byId.get(committed).shard());
      assertEquals(State.ABORT, byId.get(aborted).state());
      assertEquals(State.UNDECIDED, byId.get(undecided).state());
      assertEquals("a", byId.get(undecided).shard());
      assertEquals(State.DECIDER_UNAVAILABLE, byId.get(unregistered).state());
      assertEquals("decider shard zz is not registered", byId.get(unregistered).deciderProblem());
      assertEquals(State.DECIDER_UNAVAILABLE, byId.get(deciderDown).state());
      assertTrue(byId.get(deciderDown).deciderProblem().contains("connection refused (test)"));
      assertEquals(java.util.Set.of("a", "b"), scan.listed());
      List<String> failures = new ArrayList<>();
      for (InDoubt.Failure f : scan.failures()) {
        failures.add(f.shard() + ":" + f.step());
      }
      assertEquals(List.of("down:list", "down:decisions"), failures);
      assertTrue(scan.oldest().isPresent());
      for (int i = 1; i < scan.entries().size(); i++) {
        assertTrue(scan.entries().get(i - 1).prepared().age().compareTo(scan.entries().get(i).prepared().age()) >= 0,
            "oldest first");
      }
    } finally {
      for (Connection c : open.values()) {
        c.close();
      }
      for (TxnId id : List.of(committed, aborted, deciderDown)) {
        try (Connection c = b.connect()) {
          PreparedTransactions.rollbackPrepared(c, id);
        }
      }
      for (TxnId id : List.of(undecided, unregistered, otherNs)) {
        try (Connection c = a.connect()) {
          PreparedTransactions.rollbackPrepared(c, id);
        }
      }
    }
  }
}
