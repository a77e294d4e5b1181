package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.cli.CtlRun.Result;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.PreparedTransactions;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code shardmapctl txn list} against known prepared transactions on three real PostgreSQL shards (the fleet's
 * servers run no resolver, so they stay as made): each of this cluster's is listed once, on its shard, with the
 * decision its decider holds and what the resolver does next; foreign and other clusters' are not.
 */
@Tag("integration")
@Timeout(120)
class TxnCommandsTest {
  @RegisterExtension
  static final ShardmapFleetExtension FLEET = ShardmapFleet.builder().sockets().shards(3)
      .table("id bigint PRIMARY KEY, v text").extension();

  static PostgresFixture pg;
  static String server;
  static String prefix;
  static String table;
  static TxnId committed;
  static TxnId aborted;
  static TxnId undecided;
  static TxnId noDecider;
  static final List<Object[]> prepared = new ArrayList<>();
  static String foreign;
  static TxnId otherCluster;
  static String noConnections;

  @BeforeAll
  static void prepareSome() throws Exception {
    ShardmapFleet f = FLEET.get();
    pg = f.postgres();
    server = f.targets().get(0);
    prefix = f.prefix();
    table = f.table();
    String ns = TxnId.namespaceOf(prefix);
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("INSERT INTO " + table + " SELECT g, 'before' FROM generate_series(1, 10) g");
    }
    try (Connection c = pg.shard(0).connect(); Statement s = c.createStatement()) {
      for (String ddl : DecisionRows.ddl()) {
        s.execute(ddl);
      }
    }
    committed = TxnId.random(ns, "s1", "coord-a");
    prepare(1, committed.toString(), 1);
    try (Connection c = pg.shard(0).connect()) {
      c.setAutoCommit(false);
      DecisionRows.recordCommit(c, committed, List.of("s2"));
      c.commit();
    }
    aborted = TxnId.random(ns, "s1", "coord-b");
    prepare(2, aborted.toString(), 2);
    try (Connection c = pg.shard(0).connect()) {
      assertEquals(Optional.of(Decision.ABORT), DecisionRows.decideAbort(c, aborted, Duration.ofSeconds(5)));
    }
    undecided = TxnId.random(ns, "s1", "coord-c");
    prepare(1, undecided.toString(), 3);
    noDecider = TxnId.random(ns, "s9", "coord-d");
    prepare(2, noDecider.toString(), 4);
    foreign = "foreign-" + UUID.randomUUID();
    prepare(1, foreign, 5);
    otherCluster = TxnId.random("other-cluster", "s1", "coord-e");
    prepare(2, otherCluster.toString(), 6);
    noConnections = "nocon_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    for (int i = 0; i < 3; i++) {
      try {
        pg.shard(i).exec("CREATE ROLE " + noConnections + " LOGIN CONNECTION LIMIT 0");
      } catch (SQLException e) {
        if (!"42710".equals(e.getSQLState())) { // shards may share a server, and roles are per server
          throw e;
        }
      }
    }
  }

  @AfterAll
  static void finish() throws SQLException {
    for (Object[] p : prepared) {
      try (Connection c = pg.shard((Integer) p[0]).connect(); Statement s = c.createStatement()) {
        s.execute("ROLLBACK PREPARED '" + p[1] + "'");
      }
    }
    try (Connection c = pg.shard(0).connect()) {
      DecisionRows.forgetAll(c, List.of(committed, aborted));
    }
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("DROP ROLE IF EXISTS " + noConnections);
    }
  }

  static void prepare(int shard, String gid, int id) throws SQLException {
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement()) {
      s.execute("BEGIN; UPDATE " + table + " SET v = 'prepared' WHERE id = " + id + "; PREPARE TRANSACTION '"
          + gid + "'");
    }
    prepared.add(new Object[] {shard, gid});
  }

  static Result ctl(String pgUser, String... args) {
    return CtlRun.as(server, pgUser, pg.shard(0).password(), args);
  }

  /** The one output line naming {@code gid}. */
  static String lineOf(String out, Object gid) {
    List<String> lines = out.lines().filter(l -> l.contains(gid.toString())).toList();
    assertEquals(1, lines.size(), "one line for " + gid + " in:\n" + out);
    return lines.get(0);
  }

  @Test
  void listsThisClustersInDoubtTransactionsWithTheirDecisionsAndTheResolversNextStep() {
    Result r = ctl(pg.shard(0).user(), "txn", "list", "--txn-abort-after", "1h");
    assertEquals(0, r.code(), r.err());
    String c = lineOf(r.out(), committed);
    assertTrue(c.matches(".*\\bs2\\b.*\\bs1\\b.*\\bCOMMIT\\b.*commits it.*"), c);
    assertTrue(c.contains(pg.shard(1).user()), "the owner: " + c);
    String a = lineOf(r.out(), aborted);
    assertTrue(a.matches(".*\\bs3\\b.*\\bs1\\b.*\\bABORT\\b.*rolls it back.*"), a);
    String u = lineOf(r.out(), undecided);
    assertTrue(u.matches(".*\\bs2\\b.*none yet.*aborts it in .* unless decided.*"), u);
    String n = lineOf(r.out(), noDecider);
    assertTrue(n.contains("unknown (decider shard s9 is not registered)") && n.contains("waits for its decider"), n);
    assertFalse(r.out().contains(foreign), "not Shardmap's: not listed");
    assertFalse(r.out().contains(otherCluster.toString()), "another cluster's: not listed");
    assertTrue(r.out().contains("4 in doubt on 3 of 3 shards (namespace " + TxnId.namespaceOf(prefix) + ")"), r.out());
    // Past the abort timeout the resolver would abort the undecided one.
    r = ctl(pg.shard(0).user(), "txn", "list", "--txn-abort-after", "1ms");
    assertTrue(lineOf(r.out(), undecided).contains("aborts it (undecided for 1ms)"), r.out());
  }

  @Test
  void jsonHasOneObjectPerTransactionAndASummary() {
    Result r = ctl(pg.shard(0).user(), "-o", "json", "txn", "list");
    assertEquals(0, r.code(), r.err());
    String c = lineOf(r.out(), committed);
    assertTrue(c.startsWith("{\"gid\":\"" + committed + "\",\"shard\":\"s2\",\"age_ms\":"), c);
    assertTrue(c.contains("\"decider\":\"s1\",\"coordinator\":\"coord-a\",\"decision\":\"COMMIT\"")
        && c.endsWith("\"resolver\":\"COMMIT_PREPARED\"}"), c);
    assertTrue(lineOf(r.out(), aborted).contains("\"decision\":\"ABORT\""));
    assertTrue(lineOf(r.out(), undecided).contains("\"decision\":\"UNDECIDED\""));
    assertTrue(lineOf(r.out(), noDecider).contains("\"decision\":\"DECIDER_UNAVAILABLE\",\"decider_problem\":"));
    assertTrue(r.out().contains("{\"summary\":{\"namespace\":\"" + TxnId.namespaceOf(prefix)
        + "\",\"in_doubt\":4,\"shards\":3,\"shards_listed\":3,\"oldest_ms\":"), r.out());
  }

  @Test
  void shardsThatCannotBeReadMakeItFailAfterSayingWhich() {
    Result r = ctl(noConnections, "txn", "list");
    assertEquals(5, r.code(), r.out() + r.err());
    assertTrue(r.err().contains("warning: shard s1: its prepared transactions could not be read"), r.err());
    assertTrue(r.err().contains("s1, s2, s3 could not be listed"), r.err());
  }
}
