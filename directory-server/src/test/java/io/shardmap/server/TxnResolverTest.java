package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.PreparedTransactions;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The transaction resolver on real etcd and three real PostgreSQL shards, with orphans made by hand the way a
 * coordinator that died would leave them: a participant prepared, and on its decider a COMMIT row, an ABORT
 * row or nothing. Short intervals (scans every 100 ms, abort after 500 ms) keep it to seconds.
 */
@Tag("integration")
@Timeout(180)
class TxnResolverTest {
  static final Duration INTERVAL = Duration.ofMillis(100);
  static final Duration ABORT_AFTER = Duration.ofMillis(500);
  static final Duration WAIT = Duration.ofSeconds(30);

  static EtcdCluster etcd;
  static PostgresFixture pg;

  String prefix;
  String ns;
  String table;
  final List<DirectoryServer> servers = new ArrayList<>();
  /** Prepared gids a test leaves on purpose (foreign ones), rolled back after it: shard index and gid. */
  final List<Object[]> leftovers = new ArrayList<>();

  @BeforeAll
  static void fixtures() {
    etcd = EtcdCluster.shared();
    pg = PostgresFixture.shared(3);
  }

  @BeforeEach
  void setUp() throws Exception {
    prefix = TestSupport.uniquePrefix();
    ns = TxnId.namespaceOf(prefix);
    table = "txr_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("CREATE TABLE " + table + " (id int PRIMARY KEY, v text NOT NULL)");
      pg.shard(i).exec("INSERT INTO " + table + " SELECT g, 'before' FROM generate_series(1, 20) g");
    }
  }

  @AfterEach
  void tearDown() throws Exception {
    for (DirectoryServer s : servers) {
      s.close();
    }
    for (Object[] l : leftovers) {
      try (Connection c = pg.shard((Integer) l[0]).connect(); Statement s = c.createStatement()) {
        s.execute("ROLLBACK PREPARED '" + l[1] + "'");
      } catch (SQLException e) {
        // already finished
      }
    }
    for (int i = 0; i < 3; i++) {
      try (Connection c = pg.shard(i).connect()) {
        for (PreparedTransactions.Prepared p : PreparedTransactions.list(c, ns)) {
          PreparedTransactions.rollbackPrepared(c, p.id());
        }
      }
      pg.shard(i).exec("DROP TABLE IF EXISTS " + table);
    }
  }

  // ------------------------------------------------------------------ the cases

  @Test
  void orphansAreFinishedAsTheirDecidersSayAndNothingElseIsTouched() throws Exception {
    DirectoryServer server = start();
    awaitInstalled();
    // A coordinator died after its commit point: s1 holds COMMIT, s2 its prepared update.
    TxnId committed = prepareUpdate(1, "s1", 1, "committed");
    recordCommit(0, committed, List.of("s2"));
    // One died after a resolver (another, earlier) decided ABORT on s1: s3 holds its prepared update.
    TxnId aborted = prepareUpdate(2, "s1", 2, "aborted");
    try (Connection c = pg.shard(0).connect()) {
      assertEquals(Optional.of(Decision.ABORT), DecisionRows.decideAbort(c, aborted, Duration.ofSeconds(5)));
    }
    // One died before deciding: prepared on s2, no row on s1. Its lock is held until the resolver aborts it.
    TxnId undecided = prepareUpdate(1, "s1", 3, "undecided");
    assertTrue(locked(1, 3), "a prepared update holds its row lock");
    // Not Shardmap's, and another cluster's: never touched.
    String foreign = "foreign-" + UUID.randomUUID();
    prepareRaw(1, foreign, 4);
    TxnId otherCluster = TxnId.random("other-cluster", "s1", "c");
    prepareRaw(2, otherCluster.toString(), 5);
    // A decider that is not registered: left, and counted.
    TxnId noDecider = prepareUpdate(2, "s9", 6, "no-decider");
    leftovers.add(new Object[] {2, noDecider.toString()});

    awaitGone(1, committed);
    assertEquals("committed", value(1, 1), "COMMIT: the participant's write is committed");
    awaitGone(2, aborted);
    assertEquals("before", value(2, 2), "ABORT: rolled back");
    awaitGone(1, undecided);
    assertEquals("before", value(1, 3), "undecided past abort-after: rolled back");
    assertFalse(locked(1, 3), "and its row lock released");
    try (Connection c = pg.shard(0).connect()) {
      Optional<Decision> d = DecisionRows.read(c, undecided);
      assertTrue(d.isEmpty() || d.get() == Decision.ABORT, "the resolver decided ABORT (or already forgot it)");
    }
    Await.until(WAIT, "the gid with an unregistered decider counted", () -> metric(server,
        "shardmap_txn_decider_unavailable", "") == 1);
    // Several more scans: the foreign, other-cluster and undecidable ones stay prepared.
    Thread.sleep(INTERVAL.toMillis() * 10);
    assertTrue(prepared(1, foreign), "a gid that is not Shardmap's is never touched");
    assertTrue(prepared(2, otherCluster.toString()), "another cluster's gid is never touched");
    assertTrue(prepared(2, noDecider.toString()), "a gid whose decider is not registered is left");
    assertEquals(1, metric(server, "shardmap_txn_in_doubt", ""), "only this cluster's gids are counted");
    assertTrue(metric(server, "shardmap_txn_oldest_prepared_seconds", "") > 0);
    assertEquals(1, metric(server, "shardmap_txn_resolutions_total", "outcome=\"commit\""));
    assertEquals(2, metric(server, "shardmap_txn_resolutions_total", "outcome=\"abort\""));
    assertEquals(1, metric(server, "shardmap_txn_resolver_leader", ""));
  }

  @Test
  void anUndecidedTransactionIsAbortedOnlyOnceItIsAbortAfterOld() throws Exception {
    start();
    awaitInstalled();
    // An open transaction on the decider keeps the ABORT row from being collected, so it can be read after.
    try (Connection old = pg.shard(0).connect()) {
      old.setAutoCommit(false);
      try (Statement s = old.createStatement()) {
        s.execute("SELECT 1");
      }
      TxnId undecided = prepareUpdate(1, "s1", 1, "undecided");
      java.sql.Timestamp preparedAt;
      try (Connection c = pg.shard(1).connect(); PreparedStatement ps = c.prepareStatement(
          "SELECT prepared FROM pg_prepared_xacts WHERE gid = ?")) {
        ps.setString(1, undecided.toString());
        try (ResultSet rs = ps.executeQuery()) {
          assertTrue(rs.next());
          preparedAt = rs.getTimestamp(1);
        }
      }
      awaitGone(1, undecided);
      assertEquals("before", value(1, 1));
      // The bound the resolver enforces: nothing is decided for a transaction younger than abort-after. The
      // ABORT row's decided_at (the decider's clock; the same machine here) is at least that after the prepare.
      try (Connection c = pg.shard(0).connect(); PreparedStatement ps = c.prepareStatement(
          "SELECT decision, decided_at FROM shardmap.txn_decisions WHERE gid = ?")) {
        ps.setString(1, undecided.toString());
        try (ResultSet rs = ps.executeQuery()) {
          assertTrue(rs.next(), "the resolver's ABORT row");
          assertEquals("a", rs.getString(1));
          long afterMs = rs.getTimestamp(2).getTime() - preparedAt.getTime();
          assertTrue(afterMs >= ABORT_AFTER.toMillis(), "decided " + afterMs + " ms after the prepare");
        }
      }
      old.rollback();
    }
  }

  @Test
  void aCoordinatorStillDecidingIsWaitedForAndItsCommitWins() throws Exception {
    DirectoryServer server = start();
    awaitInstalled();
    TxnId id = prepareUpdate(1, "s1", 7, "race");
    // The coordinator's decider transaction: its own write and its COMMIT row, not committed yet.
    try (Connection coordinator = pg.shard(0).connect()) {
      coordinator.setAutoCommit(false);
      try (Statement s = coordinator.createStatement()) {
        s.executeUpdate("UPDATE " + table + " SET v = 'race' WHERE id = 7");
      }
      DecisionRows.recordCommit(coordinator, id, List.of("s2"));
      // Past abort-after the resolver tries to decide ABORT and waits on the uncommitted row (lock timeout
      // 1 s, then again next scan).
      Await.until(WAIT, "the resolver waiting on the coordinator's COMMIT row", () -> resolverWaitingOnLock(0));
      // Longer than its lock timeout and a few scans: it gave up waiting at least once and came back.
      Thread.sleep(1500);
      assertTrue(prepared(1, id.toString()), "never aborted while its coordinator is deciding");
      coordinator.commit();
    }
    awaitGone(1, id);
    assertEquals("race", value(1, 7), "the participant committed");
    assertEquals("race", value(0, 7), "with the decider's own write");
    assertEquals(0, metric(server, "shardmap_txn_resolutions_total", "outcome=\"abort\""));
    assertEquals(1, metric(server, "shardmap_txn_resolutions_total", "outcome=\"commit\""));
  }

  @Test
  void oneServerResolvesAndAnotherTakesOverWhenItStops() throws Exception {
    DirectoryServer a = start();
    DirectoryServer b = start();
    Await.until(WAIT, "one leader", () -> metric(a, "shardmap_txn_resolver_leader", "")
        + metric(b, "shardmap_txn_resolver_leader", "") == 1);
    awaitInstalled();
    DirectoryServer leader = metric(a, "shardmap_txn_resolver_leader", "") == 1 ? a : b;
    DirectoryServer other = leader == a ? b : a;
    TxnId first = prepareUpdate(1, "s1", 8, "first");
    recordCommit(0, first, List.of("s2"));
    awaitGone(1, first);
    assertEquals(1, metric(leader, "shardmap_txn_resolutions_total", "outcome=\"commit\""));
    assertEquals(0, metric(other, "shardmap_txn_resolutions_total", ""), "the other server resolves nothing");
    assertEquals(0, metric(other, "shardmap_txn_resolver_leader", ""));
    leader.close();
    servers.remove(leader);
    Await.until(WAIT, "the other server takes the role", () -> metric(other, "shardmap_txn_resolver_leader", "") == 1);
    TxnId second = prepareUpdate(2, "s1", 9, "second");
    awaitGone(2, second);
    assertEquals("before", value(2, 9), "undecided: aborted by the new holder");
    assertEquals(1, metric(other, "shardmap_txn_resolutions_total", "outcome=\"abort\""));
  }

  @Test
  void decisionRowsAreCollectedOnceTheirParticipantsFinishedButAnAbortRowOutlivesOlderTransactions()
      throws Exception {
    start();
    awaitInstalled();
    TxnId committed = prepareUpdate(1, "s1", 10, "c");
    recordCommit(0, committed, List.of("s2"));
    awaitGone(1, committed);
    Await.until(WAIT, "the COMMIT row collected", () -> decision(0, committed).isEmpty());
    // A transaction open on the decider since before the abort keeps the ABORT row: it could be the slow
    // coordinator's, whose late COMMIT insert must still fail.
    try (Connection old = pg.shard(0).connect()) {
      old.setAutoCommit(false);
      try (Statement s = old.createStatement()) {
        s.execute("SELECT 1");
      }
      TxnId undecided = prepareUpdate(2, "s1", 11, "a");
      awaitGone(2, undecided);
      assertEquals(Optional.of(Decision.ABORT), decision(0, undecided));
      Thread.sleep(INTERVAL.toMillis() * 10); // scans that find its participant finished
      assertEquals(Optional.of(Decision.ABORT), decision(0, undecided), "kept while the older transaction is open");
      old.rollback();
      Await.until(WAIT, "the ABORT row collected", () -> decision(0, undecided).isEmpty());
    }
  }

  @Test
  void aShardWhereTheTableCannotBeInstalledIsNamedAndRetriedWithoutStoppingTheOthers() throws Exception {
    String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    String db = "txr_db_" + uid;
    String weak = "txr_weak_" + uid;
    PgInstance p0 = pg.shard(0);
    for (int i = 0; i < 3; i++) { // the weak role can install nothing: s1..s3 get the table from a superuser
      for (String ddl : DecisionRows.ddl()) {
        pg.shard(i).exec(ddl);
      }
    }
    p0.exec("CREATE DATABASE " + db);
    for (int i = 0; i < 3; i++) {
      try {
        pg.shard(i).exec("CREATE ROLE " + weak + " LOGIN PASSWORD 'pw'");
      } catch (SQLException e) {
        if (!"42710".equals(e.getSQLState())) { // shards may share a server, and roles are per server
          throw e;
        }
      }
    }
    java.util.List<String> warnings = java.util.Collections.synchronizedList(new ArrayList<>());
    java.util.logging.Logger logger = java.util.logging.Logger.getLogger(
        "io.shardmap.server.internal.TxnResolver");
    java.util.logging.Handler handler = new java.util.logging.Handler() {
      @Override
      public void publish(java.util.logging.LogRecord r) {
        if (r.getLevel().intValue() >= java.util.logging.Level.WARNING.intValue()) {
          warnings.add(r.getMessage());
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    logger.addHandler(handler);
    PgInstance s4 = new PgInstance(p0.host(), p0.port(), db, p0.user(), p0.password());
    try {
      DirectoryServer server = start(weak, "pw");
      try (TestSupport.Client c = new TestSupport.Client(server.port())) {
        c.admin().registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s4")
            .setPrimary(Endpoint.newBuilder().setHost(p0.host()).setPort(p0.port()).setDatabase(db))).build());
      }
      Await.until(WAIT, "the install on s4 refused", () -> metric(server, "shardmap_txn_resolver_failures_total",
          "shard=\"s4\",step=\"install\"") >= 1);
      List<String> named = warnings.stream().filter(w -> w.contains("shard s4")
          && w.contains("'" + String.join("; ", io.shardmap.core.sql.DecisionRows.ddl()) + "' failed as role '" + weak
          + "'")).toList();
      assertEquals(1, named.size(), "logged once, naming the shard and the statement: " + warnings);
      // The other shards are still resolved meanwhile (an orphan of the weak role: only the role that prepared
      // a transaction, or a superuser, may finish it).
      pg.shard(1).exec("GRANT UPDATE, SELECT ON " + table + " TO " + weak);
      TxnId other = TxnId.random(ns, "s1", "dead-coordinator");
      PgInstance p1 = pg.shard(1);
      try (Connection c = new PgInstance(p1.host(), p1.port(), p1.database(), weak, "pw").connect()) {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
          st.executeUpdate("UPDATE " + table + " SET v = 'other' WHERE id = 12");
        }
        PreparedTransactions.prepare(c, other, "s2");
      }
      recordCommit(0, other, List.of("s2"));
      awaitGone(1, other);
      assertEquals("other", value(1, 12));
      // Given the right, a later retry installs it.
      p0.exec("GRANT CREATE ON DATABASE " + db + " TO " + weak);
      Await.until(WAIT, "the table installed on s4 by a retry", () -> sql(() -> {
        try (Connection c = s4.connect()) {
          return DecisionRows.installed(c);
        }
      }));
      assertEquals(1, warnings.stream().filter(w -> w.contains("shard s4")).count(), "still logged once");
    } finally {
      logger.removeHandler(handler);
      for (DirectoryServer s : servers) {
        s.close();
      }
      servers.clear();
      p0.exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
      pg.shard(1).exec("REVOKE ALL ON " + table + " FROM " + weak);
      for (int i = 0; i < 3; i++) {
        pg.shard(i).exec("DROP ROLE IF EXISTS " + weak);
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  DirectoryServer start() throws Exception {
    return start(pg.shard(0).user(), pg.shard(0).password());
  }

  DirectoryServer start(String user, String password) throws Exception {
    ServerOptions o = TestSupport.options(etcd.clientEndpoints(), prefix).resolver(user, password)
        .txnResolveInterval(INTERVAL).txnAbortAfter(ABORT_AFTER).txnResolverLeaseTtl(Duration.ofSeconds(2)).build();
    DirectoryServer s = DirectoryServer.start(o);
    servers.add(s);
    if (servers.size() == 1) {
      try (TestSupport.Client c = new TestSupport.Client(s.port())) {
        for (int i = 0; i < 3; i++) {
          PgInstance shard = pg.shard(i);
          c.admin().registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s" + (i + 1))
              .setPrimary(Endpoint.newBuilder().setHost(shard.host()).setPort(shard.port())
                  .setDatabase(shard.database()))).build());
        }
      }
    }
    return s;
  }

  void awaitInstalled() throws InterruptedException {
    for (int i = 0; i < 3; i++) {
      int shard = i;
      Await.until(WAIT, "the decision table on s" + (i + 1), () -> sql(() -> {
        try (Connection c = pg.shard(shard).connect()) {
          return DecisionRows.installed(c);
        }
      }));
    }
  }

  /** A participant's transaction prepared by a coordinator that then died: an UPDATE of row {@code id}. */
  TxnId prepareUpdate(int shard, String decider, int id, String v) throws SQLException {
    TxnId gid = TxnId.random(ns, decider, "dead-coordinator");
    try (Connection c = pg.shard(shard).connect()) {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.executeUpdate("UPDATE " + table + " SET v = '" + v + "' WHERE id = " + id);
      }
      PreparedTransactions.prepare(c, gid, "s" + (shard + 1));
    }
    return gid;
  }

  void prepareRaw(int shard, String gid, int id) throws SQLException {
    leftovers.add(new Object[] {shard, gid});
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement()) {
      s.execute("BEGIN; UPDATE " + table + " SET v = 'raw' WHERE id = " + id + "; PREPARE TRANSACTION '" + gid + "'");
    }
  }

  /** The coordinator's commit point on the decider: its own write and the COMMIT row, committed together. */
  void recordCommit(int decider, TxnId id, List<String> participants) throws SQLException {
    try (Connection c = pg.shard(decider).connect()) {
      c.setAutoCommit(false);
      DecisionRows.recordCommit(c, id, participants);
      c.commit();
    }
  }

  boolean prepared(int shard, String gid) throws SQLException {
    try (Connection c = pg.shard(shard).connect();
         PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM pg_prepared_xacts WHERE gid = ?")) {
      ps.setString(1, gid);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        return rs.getLong(1) == 1;
      }
    }
  }

  void awaitGone(int shard, TxnId gid) throws InterruptedException {
    Await.until(WAIT, gid + " finished on s" + (shard + 1), () -> sql(() -> !prepared(shard, gid.toString())));
  }

  String value(int shard, int id) throws SQLException {
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT v FROM " + table + " WHERE id = " + id)) {
      rs.next();
      return rs.getString(1);
    }
  }

  /** Whether row {@code id} is locked by another transaction (a prepared one holds its locks). */
  boolean locked(int shard, int id) throws SQLException {
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement()) {
      c.setAutoCommit(false);
      try {
        s.executeQuery("SELECT 1 FROM " + table + " WHERE id = " + id + " FOR UPDATE NOWAIT").close();
        c.rollback();
        return false;
      } catch (SQLException e) {
        c.rollback();
        if ("55P03".equals(e.getSQLState())) {
          return true;
        }
        throw e;
      }
    }
  }

  Optional<Decision> decision(int shard, TxnId id) {
    return sqlValue(() -> {
      try (Connection c = pg.shard(shard).connect()) {
        return DecisionRows.read(c, id);
      }
    });
  }

  boolean resolverWaitingOnLock(int shard) {
    return sql(() -> {
      try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
               + "'shardmap-resolver' AND wait_event_type = 'Lock' AND datname = current_database()")) {
        rs.next();
        return rs.getLong(1) > 0;
      }
    });
  }

  /** The sum of the samples of {@code name} whose labels contain {@code labels}. */
  static double metric(DirectoryServer s, String name, String labels) {
    double sum = 0;
    for (String line : s.scrapeMetrics().split("\n")) {
      if (line.startsWith("#")) {
        continue;
      }
      int space = line.lastIndexOf(' ');
      String key = line.substring(0, space);
      String bare = key.contains("{") ? key.substring(0, key.indexOf('{')) : key;
      if (bare.equals(name) && key.contains(labels)) {
        sum += Double.parseDouble(line.substring(space + 1));
      }
    }
    return sum;
  }

  interface SqlSupplier<T> {
    T get() throws SQLException;
  }

  static boolean sql(SqlSupplier<Boolean> s) {
    return sqlValue(s);
  }

  static <T> T sqlValue(SqlSupplier<T> s) {
    try {
      return s.get();
    } catch (SQLException e) {
      throw new AssertionError(e);
    }
  }
}
