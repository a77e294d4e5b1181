package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.testkit.PatroniCluster.Leader;
import io.shardmap.testkit.PatroniCluster.Member;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real two-node Patroni shard on the shared etcd. Skipped, with the reason, only where Patroni
 * cannot run at all (see {@link PatroniCluster#unavailableReason()}); .ci/run installs it, so there
 * it runs.
 */
@Tag("integration")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
class PatroniClusterTest {

  private static final Duration WAIT = Duration.ofSeconds(60);

  private PatroniCluster cluster;

  @BeforeEach
  void startCluster() {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    cluster = PatroniCluster.start(EtcdCluster.shared(), 2);
  }

  @AfterEach
  void closeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  @Timeout(180)
  void comesUpWithOneLeaderAndOneSyncStandby() throws SQLException {
    Leader leader = cluster.awaitLeader(WAIT);
    List<Member> members = cluster.members();
    assertEquals(2, members.size(), "members: " + members);
    assertEquals(1, members.stream().filter(Member::isPrimary).count(), "one primary among " + members);
    String standby = cluster.awaitSyncStandby(WAIT);
    assertNotEquals(leader.name(), standby);
    assertEquals(Optional.of(standby), cluster.syncStandby());
    assertEquals(cluster.postgresPort(leader.name()), leader.port());

    try (Connection primary = cluster.instance(leader.name()).connect();
        Connection replica = cluster.instance(standby).connect()) {
      assertEquals("f", text(primary, "select pg_is_in_recovery()"));
      assertEquals("t", text(replica, "select pg_is_in_recovery()"));
      assertEquals(String.valueOf(PatroniCluster.MAX_PREPARED_TRANSACTIONS),
          text(primary, "show max_prepared_transactions"));
      assertTrue(text(primary, "show synchronous_standby_names").contains(standby),
          "the leader waits for " + standby);
    }
  }

  @Test
  @Timeout(180)
  void aCommitOnTheLeaderIsAppliedOnTheSyncStandby() throws SQLException {
    Leader leader = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    try (Connection primary = cluster.instance(leader.name()).connect(); Statement s = primary.createStatement()) {
      s.execute("create table sync_probe (k int primary key, v text not null)");
      // remote_apply: the commit returns only once the synchronous standby has applied it, so
      // reading it there right after is a test of synchronous replication, not of luck.
      s.execute("set synchronous_commit = remote_apply");
      s.execute("insert into sync_probe values (1, 'written on " + leader.name() + "')");
    }
    try (Connection replica = cluster.instance(standby).connect()) {
      assertEquals("written on " + leader.name(), text(replica, "select v from sync_probe where k = 1"));
    }
  }

  @Test
  @Timeout(180)
  void aKilledPrimaryPostmasterPromotesTheSyncStandby() throws SQLException {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    PgInstance oldPrimary = cluster.instance(old.name());
    oldPrimary.exec("create table failover_probe (k int primary key)");
    oldPrimary.exec("insert into failover_probe values (1)"); // acknowledged: on the sync standby

    long killedAt = System.nanoTime();
    cluster.killPostmaster(old.name());
    Leader promoted = cluster.awaitLeader(old.name(), WAIT);
    long millis = (System.nanoTime() - killedAt) / 1_000_000;
    System.out.printf("[patroni] postmaster SIGKILL -> %s running primary and leader key: %d ms"
        + " (ttl=%d loop_wait=%d retry_timeout=%d primary_start_timeout=0)%n", promoted.name(), millis,
        PatroniCluster.TTL_SECONDS, PatroniCluster.LOOP_WAIT_SECONDS, PatroniCluster.RETRY_TIMEOUT_SECONDS);

    assertEquals(standby, promoted.name(), "the synchronous standby is promoted");
    assertEquals(Optional.of(promoted), cluster.leader(), "the leader key in etcd names it");
    PgInstance newPrimary = cluster.primary(WAIT);
    assertEquals(cluster.postgresPort(standby), newPrimary.port());
    try (Connection c = newPrimary.connect()) {
      assertEquals("1", text(c, "select count(*) from failover_probe"), "the acknowledged row survived");
      assertEquals("f", text(c, "select pg_is_in_recovery()"));
    }
    newPrimary.exec("insert into failover_probe values (2)");
    // Patroni restarts the killed node as a replica of the new primary: the shard is whole again.
    assertEquals(old.name(), cluster.awaitSyncStandby(WAIT), "the old primary rejoins as the sync standby");
  }

  @Test
  @Timeout(180)
  void aSwitchoverMovesTheLeaderAndTheOldOneFollows() {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    Leader moved = cluster.switchover(standby, WAIT);
    assertEquals(standby, moved.name());
    assertEquals(Optional.of(moved), cluster.leader(), "the leader key in etcd names the candidate");
    assertEquals(old.name(), cluster.awaitSyncStandby(WAIT), "the old leader rejoins as the sync standby");
    String listing = cluster.patronictl(old.name(), "list");
    assertTrue(listing.contains(standby) && listing.contains("Leader"), listing);
  }

  @Test
  @Timeout(180)
  void aStoppedLeaderHandsOverAndRejoinsWhenStarted() {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    cluster.stopNode(old.name()); // SIGTERM: Patroni stops PostgreSQL and releases the leader key
    Leader next = cluster.awaitLeader(old.name(), WAIT);
    assertEquals(standby, next.name());
    assertEquals(Optional.of(next), cluster.leader());
    cluster.startNode(old.name());
    assertEquals(old.name(), cluster.awaitSyncStandby(WAIT), "the restarted node follows as the sync standby");
    assertEquals(2, cluster.members().size(), "members: " + cluster.members());
  }

  private static String text(Connection connection, String sql) throws SQLException {
    try (Statement s = connection.createStatement(); ResultSet rows = s.executeQuery(sql)) {
      assertTrue(rows.next(), sql);
      return rows.getString(1);
    }
  }
}
