package io.shardmap.core.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.PreparedTransactions.Outcome;
import io.shardmap.core.sql.PreparedTransactions.Prepared;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link PreparedTransactions} on real PostgreSQL 15: prepared on one session, listed and finished from
 * others, idempotent finishing, survival of a server restart, only this cluster's transactions listed, and
 * the clear errors (prepared transactions disabled, autocommit, a failed transaction, a gid in use).
 */
@Tag("integration")
@Timeout(120)
class PreparedTransactionsTest {
  static PostgresFixture fixture;
  static PgInstance pg;

  @BeforeAll
  static void start() {
    // Our own server: one test restarts it.
    fixture = PostgresFixture.startNew(1);
    pg = fixture.shard(0);
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  @Test
  void preparedOnOneSessionIsListedAndFinishedFromOthers() throws SQLException {
    String ns = namespace();
    String table = table();
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    TxnId committed = TxnId.random(ns, "s1", "coord-1");
    TxnId rolledBack = TxnId.random(ns, "s1", "coord-2");
    Timestamp before = serverNow(pg);
    try (Connection first = pg.connect(); Connection second = pg.connect()) {
      writeAndPrepare(first, table, 1, committed);
      writeAndPrepare(second, table, 2, rolledBack);
      // The sessions that prepared are free again: their next statement is a new transaction.
      assertEquals(0, count(first, "SELECT count(*) FROM " + table));
      first.commit();
    }
    Timestamp after = serverNow(pg);

    try (Connection lister = pg.connect(); Connection finisher = pg.connect()) {
      List<Prepared> listed = PreparedTransactions.list(lister, ns);
      assertEquals(2, listed.size(), listed.toString());
      List<TxnId> ids = listed.stream().map(Prepared::id).toList();
      assertTrue(ids.contains(committed) && ids.contains(rolledBack), ids.toString());
      for (Prepared p : listed) {
        assertEquals(ns, p.id().namespace());
        assertTrue(p.id().coordinator().startsWith("coord-"), p.toString());
        assertEquals("postgres", p.owner());
        assertEquals(pg.database(), p.database());
        assertFalse(p.prepared().isBefore(before.toInstant()), p + " before " + before);
        assertFalse(p.prepared().isAfter(after.toInstant()), p + " after " + after);
        assertFalse(p.age().isNegative(), p.toString());
      }
      assertFalse(listed.get(0).prepared().isAfter(listed.get(1).prepared()), "oldest first: " + listed);
      assertEquals(0, count(lister, "SELECT count(*) FROM " + table), "prepared writes are invisible");

      assertEquals(Outcome.DONE, PreparedTransactions.commitPrepared(finisher, committed));
      assertEquals(Outcome.DONE, PreparedTransactions.rollbackPrepared(finisher, rolledBack));
      assertEquals(1, count(lister, "SELECT count(*) FROM " + table + " WHERE k = 1 AND v = 'v1'"));
      assertEquals(0, count(lister, "SELECT count(*) FROM " + table + " WHERE k = 2"));

      // Finishing again, either way, finds nothing and changes nothing.
      assertEquals(Outcome.NOT_FOUND, PreparedTransactions.commitPrepared(finisher, committed));
      assertEquals(Outcome.NOT_FOUND, PreparedTransactions.rollbackPrepared(finisher, committed));
      assertEquals(Outcome.NOT_FOUND, PreparedTransactions.commitPrepared(finisher, rolledBack));
      assertEquals(1, count(lister, "SELECT count(*) FROM " + table));
      assertTrue(PreparedTransactions.list(lister, ns).isEmpty());

      // COMMIT PREPARED cannot run in a transaction block: refused before anything is sent.
      finisher.setAutoCommit(false);
      assertThrows(IllegalStateException.class, () -> PreparedTransactions.commitPrepared(finisher, committed));
    }
  }

  @Test
  void listsOnlyThisClustersTransactionsOfThisDatabase() throws SQLException {
    // An underscore, which LIKE would take for any character: "a_b" must not list "axb"'s.
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    String ns = "a_b" + suffix;
    String similar = "axb" + suffix;
    String table = table();
    String otherDb = "other_" + suffix;
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    exec(pg, "CREATE DATABASE " + otherDb);
    PgInstance other = new PgInstance(pg.host(), pg.port(), otherDb, pg.user(), pg.password());
    exec(other, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");

    TxnId ours = TxnId.random(ns, "s1", "coord");
    TxnId otherCluster = TxnId.random(similar, "s1", "coord");
    TxnId ourInOtherDb = TxnId.random(ns, "s1", "coord");
    List<String> foreign = List.of("_citus_x_" + suffix, "smx1:" + ns + ":s1:not a coordinator!:" + UUID.randomUUID());
    try (Connection c = pg.connect()) {
      writeAndPrepare(c, table, 1, ours);
      writeAndPrepare(c, table, 2, otherCluster);
      int k = 3;
      for (String gid : foreign) {
        c.setAutoCommit(false);
        insert(c, table, k++);
        try (Statement s = c.createStatement()) {
          s.execute("PREPARE TRANSACTION '" + gid + "'");
        }
      }
    }
    try (Connection c = other.connect()) {
      writeAndPrepare(c, table, 1, ourInOtherDb);
    }

    try (Connection c = pg.connect(); Connection inOther = other.connect()) {
      String ofThisTest = "SELECT count(*) FROM pg_prepared_xacts WHERE strpos(gid, '" + suffix + "') > 0";
      assertEquals(5, count(c, ofThisTest), "all five are prepared");
      assertEquals(List.of(ours), PreparedTransactions.list(c, ns).stream().map(Prepared::id).toList());
      assertEquals(List.of(otherCluster), PreparedTransactions.list(c, similar).stream().map(Prepared::id).toList());
      assertEquals(List.of(ourInOtherDb),
          PreparedTransactions.list(inOther, ns).stream().map(Prepared::id).toList());
      ShardmapException bad = assertThrows(ShardmapException.class, () -> PreparedTransactions.list(c, "Bad NS"));
      assertEquals(ErrorCode.INVALID_ARGUMENT, bad.code());

      // A transaction of another database cannot be finished from here, and that is no "already finished".
      ShardmapException wrongDb = assertThrows(ShardmapException.class,
          () -> PreparedTransactions.commitPrepared(c, ourInOtherDb));
      assertEquals(ErrorCode.FAILED_PRECONDITION, wrongDb.code());
      assertTrue(wrongDb.getMessage().contains("another database"), wrongDb.getMessage());
      assertEquals(Outcome.DONE, PreparedTransactions.commitPrepared(inOther, ourInOtherDb));
      assertEquals(1, count(inOther, "SELECT count(*) FROM " + table));

      assertEquals(Outcome.DONE, PreparedTransactions.rollbackPrepared(c, ours));
      assertEquals(Outcome.DONE, PreparedTransactions.rollbackPrepared(c, otherCluster));
      for (String gid : foreign) {
        exec(pg, "ROLLBACK PREPARED '" + gid + "'");
      }
      assertEquals(0, count(c, ofThisTest));
    }
    exec(pg, "DROP DATABASE " + otherDb);
  }

  @Test
  void preparedTransactionSurvivesAServerRestart() throws SQLException {
    assumeTrue(fixture.canControlInstances(), "external databases cannot be restarted");
    String ns = namespace();
    String table = table();
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    TxnId id = TxnId.random(ns, "s1", "coord");
    try (Connection c = pg.connect()) {
      writeAndPrepare(c, table, 7, id);
    }
    fixture.stop(0); // immediate shutdown: as a crash, no checkpoint
    fixture.start(0);
    try (Connection c = pg.connect()) {
      List<Prepared> listed = PreparedTransactions.list(c, ns);
      assertEquals(List.of(id), listed.stream().map(Prepared::id).toList());
      assertEquals(0, count(c, "SELECT count(*) FROM " + table));
      assertEquals(Outcome.DONE, PreparedTransactions.commitPrepared(c, id));
      assertEquals(1, count(c, "SELECT count(*) FROM " + table + " WHERE k = 7 AND v = 'v7'"));
    }
  }

  @Test
  void disabledPreparedTransactionsGiveAClearErrorAndLeaveNothing() throws SQLException {
    assumeTrue(PostgresFixture.canStartServers(), "needs a server started with max_prepared_transactions = 0");
    try (Connection c = pg.connect()) {
      assertEquals(64, PreparedTransactions.maxPreparedTransactions(c));
    }
    try (PostgresFixture disabled = PostgresFixture.startNew(1, List.of("max_prepared_transactions = 0"))) {
      PgInstance shard = disabled.shard(0);
      String table = table();
      exec(shard, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
      try (Connection c = shard.connect()) {
        assertEquals(0, PreparedTransactions.maxPreparedTransactions(c));
        c.setAutoCommit(false);
        insert(c, table, 1);
        ShardmapException e = assertThrows(ShardmapException.class,
            () -> PreparedTransactions.prepare(c, TxnId.random(namespace(), "s1", "coord"), "shard-x"));
        assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
        assertTrue(e.getMessage().contains("max_prepared_transactions") && e.getMessage().contains("shard-x")
            && e.getMessage().contains("restart"), e.getMessage());
        // The connection is usable and out of the failed transaction.
        assertEquals(0, count(c, "SELECT count(*) FROM " + table));
        c.commit();
      }
      try (Connection c = shard.connect()) {
        assertEquals(0, count(c, "SELECT count(*) FROM " + table), "nothing committed");
        assertEquals(0, count(c, "SELECT count(*) FROM pg_prepared_xacts"), "nothing prepared");
      }
    }
  }

  @Test
  void prepareInAutocommitIsRefusedBeforeAnythingIsSent() throws SQLException {
    List<String> calls = new ArrayList<>();
    Connection recording = (Connection) Proxy.newProxyInstance(getClass().getClassLoader(),
        new Class<?>[] {Connection.class}, (proxy, method, args) -> {
          calls.add(method.getName());
          if (method.getName().equals("getAutoCommit")) {
            return true;
          }
          throw new AssertionError("unexpected call " + method.getName());
        });
    TxnId id = TxnId.random(namespace(), "s1", "coord");
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> PreparedTransactions.prepare(recording, id, "shard-a"));
    assertTrue(e.getMessage().contains("autocommit") && e.getMessage().contains("shard-a"), e.getMessage());
    assertEquals(List.of("getAutoCommit"), calls);

    String table = table();
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    try (Connection c = pg.connect()) {
      insert(c, table, 1); // autocommit: already committed, there is nothing to prepare
      assertThrows(IllegalStateException.class, () -> PreparedTransactions.prepare(c, id, "shard-a"));
      assertTrue(PreparedTransactions.list(c, id.namespace()).isEmpty());
    }
  }

  @Test
  void aFailedTransactionIsNotReportedPrepared() throws SQLException {
    String ns = namespace();
    String table = table();
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    try (Connection c = pg.connect()) {
      c.setAutoCommit(false);
      insert(c, table, 1);
      // A work that catches its own error and goes on: PostgreSQL answers the PREPARE with ROLLBACK.
      assertThrows(SQLException.class, () -> count(c, "SELECT 1 / 0"));
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> PreparedTransactions.prepare(c, TxnId.random(ns, "s1", "coord"), "shard-a"));
      assertEquals(ErrorCode.ABORTED, e.code());
      assertEquals(0, count(c, "SELECT count(*) FROM " + table), "the connection is usable again");
      c.commit();
      assertTrue(PreparedTransactions.list(c, ns).isEmpty());
    }
  }

  @Test
  void aGidInUseIsRefusedAndTheSecondTransactionRolledBack() throws SQLException {
    String ns = namespace();
    String table = table();
    exec(pg, "CREATE TABLE " + table + " (k int PRIMARY KEY, v text NOT NULL)");
    TxnId id = TxnId.random(ns, "s1", "coord");
    try (Connection first = pg.connect(); Connection second = pg.connect()) {
      writeAndPrepare(first, table, 1, id);
      second.setAutoCommit(false);
      insert(second, table, 2);
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> PreparedTransactions.prepare(second, id, "shard-a"));
      assertEquals(ErrorCode.ALREADY_EXISTS, e.code());
      assertTrue(e.getMessage().contains(id.toString()), e.getMessage());
      second.setAutoCommit(true);
      assertEquals(Outcome.DONE, PreparedTransactions.commitPrepared(second, id));
      assertEquals(1, count(second, "SELECT count(*) FROM " + table + " WHERE k = 1"));
      assertEquals(0, count(second, "SELECT count(*) FROM " + table + " WHERE k = 2"), "second rolled back");
    }
  }

  // ---------------------------------------------------------------- helpers

  private static void writeAndPrepare(Connection c, String table, int k, TxnId id) throws SQLException {
    c.setAutoCommit(false);
    insert(c, table, k);
    PreparedTransactions.prepare(c, id, "shard-0");
  }

  private static void insert(Connection c, String table, int k) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.executeUpdate("INSERT INTO " + table + " VALUES (" + k + ", 'v" + k + "')");
    }
  }

  private static long count(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  private static Timestamp serverNow(PgInstance instance) throws SQLException {
    try (Connection c = instance.connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("SELECT clock_timestamp()")) {
      rs.next();
      return rs.getTimestamp(1);
    }
  }

  private static void exec(PgInstance instance, String sql) throws SQLException {
    instance.exec(sql);
  }

  private static String namespace() {
    return "t-" + UUID.randomUUID().toString().substring(0, 8);
  }

  private static String table() {
    return "px_" + UUID.randomUUID().toString().replace("-", "");
  }
}
