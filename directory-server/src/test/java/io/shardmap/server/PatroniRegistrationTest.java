package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.Status;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PatroniCluster.Leader;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Registering Patroni shards against a real Patroni cluster on real etcd: the endpoints come from
 * Patroni's own keys, and each refusal the issue names (a scope that does not exist, a cluster without
 * failsafe_mode, a cluster with no leader, a fixed primary beside a scope) is a clear error that writes
 * nothing. The same rules on hand-written keys, with the follower's edge cases: PatroniFollowTest.
 */
@Tag("integration")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
@Timeout(300)
class PatroniRegistrationTest {
  private static final Duration WAIT = Duration.ofSeconds(60);

  private static Shard patroni(String name, PatroniCluster c, String scope) {
    return Shard.newBuilder().setName(name).setPatroni(PatroniSource.newBuilder().setNamespace(c.namespace())
        .setScope(scope)).build();
  }

  @Test
  void registrationReadsPatroniAndRefusesWhatCannotBeFollowed() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    EtcdCluster etcd = EtcdCluster.shared();
    try (PatroniCluster cluster = PatroniCluster.start(etcd, 2);
        DirectoryServer server = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(),
            TestSupport.uniquePrefix()).build());
        TestSupport.Client client = new TestSupport.Client(server.port())) {
      Leader leader = cluster.awaitLeader(WAIT);
      String standby = cluster.awaitSyncStandby(WAIT);

      assertStatus(Status.Code.NOT_FOUND, () -> client.admin().registerShard(RegisterShardRequest.newBuilder()
          .setShard(patroni("p1", cluster, "nosuchscope")).build()), "shard.patroni", "'nosuchscope'",
          cluster.namespace() + "/nosuchscope/");
      Shard both = patroni("p1", cluster, cluster.scope()).toBuilder().setPrimary(Endpoint.newBuilder()
          .setHost("127.0.0.1").setPort(cluster.postgresPort(leader.name())).setDatabase("postgres")).build();
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().registerShard(RegisterShardRequest
          .newBuilder().setShard(both).build()), "shard.primary", "not both");

      cluster.patronictl(leader.name(), "edit-config", "--force", "-s", "failsafe_mode=false");
      assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().registerShard(RegisterShardRequest
          .newBuilder().setShard(patroni("p1", cluster, cluster.scope())).build()), "failsafe_mode");
      cluster.patronictl(leader.name(), "edit-config", "--force", "-s", "failsafe_mode=true");

      Shard p1 = client.admin().registerShard(RegisterShardRequest.newBuilder()
          .setShard(patroni("p1", cluster, cluster.scope())).build()).getShard();
      assertEquals(cluster.postgresPort(leader.name()), p1.getPrimary().getPort());
      assertEquals(List.of(cluster.postgresPort(standby)), p1.getReplicasList().stream().map(Endpoint::getPort)
          .toList());
      assertEquals("postgres", p1.getPrimary().getDatabase());
      assertEquals(1, p1.getPrimaryTerm());

      // A second cluster whose every node was stopped cleanly: its keys are there, its leader key is not.
      try (PatroniCluster down = PatroniCluster.start(etcd, 1)) {
        down.stopNode(down.awaitLeader(WAIT).name());
        assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().registerShard(RegisterShardRequest
            .newBuilder().setShard(patroni("p2", down, down.scope())).build()), "shard.patroni", "no leader");
      }
      assertEquals(List.of("p1"), client.read().listShards(ListShardsRequest.getDefaultInstance()).getShardsList()
          .stream().map(Shard::getName).toList(), "only p1 was registered");
    }
  }
}
