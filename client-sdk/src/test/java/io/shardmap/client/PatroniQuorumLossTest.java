package io.shardmap.client;

import static io.shardmap.client.PatroniBed.WAIT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.proto.v1.Shard;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PatroniCluster.Leader;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The coupling issue 15 warns about: Patroni keeps its leader key in the same etcd as Shardmap's maps, so
 * without failsafe_mode losing etcd quorum would demote the primary of every Patroni shard once its leader
 * key's TTL (20 s) ran out. With failsafe_mode (which registration requires), the primary keeps serving
 * while it reaches every member's REST API, and SDKs keep routing from the maps they hold.
 *
 * <p>Shown on its own three-member etcd: two members are killed for longer than the TTL under SDK writers;
 * no write fails, writes keep being acknowledged after the TTL has passed, the same node is primary
 * throughout and afterwards, and every acknowledged write is there.
 */
@Tag("fault")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
@Timeout(300)
class PatroniQuorumLossTest {

  @Test
  void primariesKeepServingAndClientsKeepRoutingWithoutEtcdQuorum() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    try (EtcdCluster etcd = EtcdCluster.start(3)) {
      assumeTrue(etcd.canControlMembers(), "needs etcd members this test can kill");
      try (PatroniCluster cluster = PatroniCluster.start(etcd.clientEndpoints(), "shard", 2);
          PatroniBed bed = new PatroniBed(cluster, etcd.clientEndpoints(), o -> o)) {
        Leader leader = cluster.awaitLeader(WAIT);
        PatroniBed.Writers w = bed.writers(2).start(Duration.ofSeconds(150));
        try {
          w.awaitAcks(100, "writes before the quorum loss");
          etcd.stopMember(1);
          etcd.stopMember(2);
          long lostAt = System.nanoTime();
          // Past the leader key's TTL (20 s): without failsafe_mode the primary would have demoted itself.
          Thread.sleep(Duration.ofSeconds(PatroniCluster.TTL_SECONDS + 8).toMillis());
          int beforeLast = w.acked.size();
          Thread.sleep(2_000);
          int atEnd = w.acked.size();
          assertTrue(atEnd > beforeLast, "writes still acknowledged " + (System.nanoTime() - lostAt) / 1_000_000
              + " ms into the quorum loss (" + beforeLast + " -> " + atEnd + "); failures: " + w.failures);
          try (Connection c = cluster.instance(leader.name()).connect(); Statement s = c.createStatement();
              ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
            rs.next();
            assertTrue(!rs.getBoolean(1), leader.name() + " is still the primary without etcd quorum");
          }
          etcd.startMember(1);
          etcd.startMember(2);
          Leader after = cluster.awaitLeader(WAIT);
          assertEquals(leader.name(), after.name(), "the primary never changed");
          w.awaitAcks(w.acked.size() + 100, "writes after quorum came back");
          w.stopAndJoin();
          assertEquals("[]", w.failures.toString(), "no write failed");
          Set<Long> lost = new HashSet<>(w.acked);
          lost.removeAll(bed.idsOn(leader.name()));
          assertEquals(Set.of(), lost, "acknowledged writes missing");
          Shard record = bed.record();
          assertEquals(1, record.getPrimaryTerm(), "no failover in the map: " + record);
          System.out.printf("etcd quorum lost for %d s under a Patroni shard: %d writes acknowledged, none failed; "
              + "longest gap between acknowledgements %d ms%n", PatroniCluster.TTL_SECONDS + 10, w.acked.size(),
              w.maxGapMillis());
        } finally {
          w.stopAndJoin();
        }
      }
    }
  }
}
