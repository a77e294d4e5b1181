package io.shardmap.client;

import static io.shardmap.client.PatroniBed.WAIT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.proto.v1.Shard;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PatroniCluster.Leader;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A Patroni shard (a primary and a synchronous standby, on the shared etcd that also holds the maps) under
 * SDK writers: its primary's postmaster is SIGKILLed, or switched over as planned. Proven from the shard
 * itself afterwards, against an oracle of the writes the SDK acknowledged: every acknowledged write is on the
 * new primary; the map named the new primary (term 2) through the directory's Patroni follower; writes that
 * could not run waited in the failover buffer and ran on the new primary; the only failures are commits the
 * failover cut (unknown outcome), at most one per writer, and none ran twice.
 *
 * <p>Prints the kill-to-first-write and promotion-to-first-write times (the benchmark measures them over
 * rounds: docs/benchmarks.md).
 */
@Tag("fault")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
@Timeout(300)
class PatroniFailoverTest {
  private static final int WRITERS = 4;

  private PatroniCluster cluster;
  private PatroniBed bed;

  @BeforeEach
  void start() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    EtcdCluster etcd = EtcdCluster.shared();
    cluster = PatroniCluster.start(etcd, 2);
    cluster.awaitSyncStandby(WAIT);
    bed = new PatroniBed(cluster, etcd.clientEndpoints(), o -> o.failoverBufferWindow(Duration.ofSeconds(30)));
  }

  @AfterEach
  void stop() {
    if (bed != null) {
      bed.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  /** Polls {@code node}'s PostgreSQL until it accepts writes; sets when, in wall-clock ms. */
  private Thread promotionWatcher(String node, AtomicLong promotedAt) {
    Thread t = new Thread(() -> {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (System.nanoTime() < deadline) {
        try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement()) {
          while (System.nanoTime() < deadline) {
            try (ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
              rs.next();
              if (!rs.getBoolean(1)) {
                promotedAt.set(System.currentTimeMillis());
                return;
              }
            }
            Thread.sleep(5);
          }
        } catch (SQLException e) {
          try {
            Thread.sleep(5);
          } catch (InterruptedException x) {
            return;
          }
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "promotion-watcher");
    t.start();
    return t;
  }

  /** What both fault tests check once writers stopped. */
  private void checkAfter(PatroniBed.Writers w, Leader old, Leader now) throws Exception {
    Set<Long> lost = new HashSet<>(w.acked);
    lost.removeAll(bed.idsOn(now.name()));
    assertEquals(Set.of(), lost, "acknowledged writes missing on the new primary " + now.name());
    Shard record = bed.record();
    assertEquals(2, record.getPrimaryTerm(), "one new primary in the map: " + record);
    assertEquals(now.port(), record.getPrimary().getPort(), "the map names the new primary: " + record);
    assertNotEquals(old.port(), now.port());
    // The only failures: commits the failover cut, whose outcome cannot be known (at most one per writer).
    // A commit looked up wrongly as "not committed" would have run the insert twice: a duplicate key here.
    assertTrue(w.failures.size() <= WRITERS, "at most one unknown-outcome commit per writer; failures: "
        + w.failures);
    for (String f : w.failures) {
      assertTrue(!f.contains("duplicate key"), "a write ran twice: " + f);
    }
    FailoverStats f = bed.data.failoverStats();
    assertEquals(1L, f.primaryChanges().get("p1"), "failovers seen: " + f);
    assertTrue(f.firstCallAfterFailover().containsKey("p1"), "first call after the failover measured: " + f);
    assertEquals(0, f.waiting());
    assertEquals(0, f.timeouts(), "no call waited its whole window: " + f);
  }

  @Test
  void killedPrimaryLosesNoAcknowledgedWrite() throws Exception {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    // One more writer goes through acrossShards: a cross-shard transaction waits in the buffer too.
    PatroniBed.Writers w = bed.writers(WRITERS, 1).start(Duration.ofSeconds(120));
    try {
      w.awaitAcks(200, "writes before the kill");
      AtomicLong promotedAt = new AtomicLong();
      Thread watcher = promotionWatcher(standby, promotedAt);
      long killedAt = System.currentTimeMillis();
      cluster.killPostmaster(old.name());
      Leader now = cluster.awaitLeader(old.name(), WAIT);
      assertEquals(standby, now.name());
      watcher.join(WAIT.toMillis());
      int crossBefore = w.crossAcked.size();
      w.awaitAcks(w.acked.size() + 200, "writes after the failover");
      w.stopAndJoin();
      checkAfter(w, old, now);
      assertTrue(w.crossAcked.size() > crossBefore, "the cross-shard writer wrote on the new primary");
      // Its commit, cut by the kill, may stay unknown (a cross-shard commit is not looked up): at most one.
      assertTrue(w.crossFailures.size() <= 1, "cross-shard failures: " + w.crossFailures);
      // The first write the new primary ran itself (its port on the row). Acknowledgements can come earlier:
      // commits cut by the kill, found committed there.
      long first = bed.firstWriteOn(now.name());
      System.out.printf("patroni failover (SIGKILL of the primary's postmaster; ttl 20 s, loop_wait 1 s, "
          + "retry_timeout 5 s, primary_start_timeout 0): kill -> first write on the new primary %d ms, promotion "
          + "(pg_is_in_recovery() false on %s) -> first write %d ms; write outage %d ms (longest gap between "
          + "acknowledgements); acknowledged %d, failed %d %s; %s%n",
          first - killedAt, standby, promotedAt.get() == 0 ? -1 : first - promotedAt.get(), w.maxGapMillis(),
          w.acked.size(), w.failures.size(), w.failures, bed.data.failoverStats());
      System.out.printf("cross-shard writer: %d acknowledged, failed %s%n", w.crossAcked.size(), w.crossFailures);
    } finally {
      w.stopAndJoin();
    }
  }

  @Test
  void plannedSwitchoverLosesNoAcknowledgedWrite() throws Exception {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    PatroniBed.Writers w = bed.writers(WRITERS).start(Duration.ofSeconds(120));
    try {
      w.awaitAcks(200, "writes before the switchover");
      Leader now = cluster.switchover(standby, WAIT);
      w.awaitAcks(w.acked.size() + 200, "writes after the switchover");
      w.stopAndJoin();
      checkAfter(w, old, now);
      System.out.printf("patroni switchover: write outage %d ms (longest gap between acknowledged writes); "
          + "acknowledged %d, failed %d %s; %s%n", w.maxGapMillis(), w.acked.size(), w.failures.size(), w.failures,
          bed.data.failoverStats());
    } finally {
      w.stopAndJoin();
    }
  }
}
