package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.UpdateShardRequest;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.Await;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Patroni shards against Patroni's keys written by hand into the in-memory store (the layout Patroni 3.0
 * writes; docs/patroni.md): what registration accepts and refuses, and how the follower moves a record
 * only on a confirmed primary, one transaction per change. The same against a real Patroni cluster, with
 * a killed primary: PatroniFailoverTest.
 */
@Tag("integration")
@Timeout(60)
class PatroniFollowTest {
  private static final String NS = "/pg";
  private static final String SCOPE = "orders1";
  private static final String PREFIX = NS + "/" + SCOPE + "/";

  private InMemoryMetaStore store;
  private DirectoryServer server;
  private TestSupport.Client client;

  @BeforeEach
  void start() throws Exception {
    store = new InMemoryMetaStore();
    server = DirectoryServer.start(ServerOptions.loopbackForTests(List.of("http://127.0.0.1:1"), "/sm").build(), store);
    client = new TestSupport.Client(server.port());
  }

  @AfterEach
  void stop() {
    client.close();
    server.close();
    store.close();
  }

  private void put(String key, String value) throws Exception {
    store.commit(Txn.builder().put(key, value.getBytes(StandardCharsets.UTF_8)).build()).get(5, TimeUnit.SECONDS);
  }

  private void delete(String key) throws Exception {
    store.commit(Txn.builder().delete(key).build()).get(5, TimeUnit.SECONDS);
  }

  private void member(String name, int port, String role, String state) throws Exception {
    put(PREFIX + "members/" + name, "{\"conn_url\":\"postgres://127.0.0.1:" + port + "/postgres\","
        + "\"api_url\":\"http://127.0.0.1:1" + port + "/patroni\",\"state\":\"" + state + "\",\"role\":\"" + role
        + "\",\"version\":\"3.0.2\",\"xlog_location\":1,\"timeline\":1}");
  }

  /** A healthy two-node cluster: node0 primary on 6000, node1 replica on 6001, failsafe on. */
  private void healthyCluster() throws Exception {
    put(PREFIX + "config", "{\"ttl\":20,\"loop_wait\":1,\"synchronous_mode\":true,\"failsafe_mode\":true}");
    put(PREFIX + "initialize", "7300000000000000000");
    member("node0", 6000, "master", "running");
    member("node1", 6001, "replica", "running");
    put(PREFIX + "leader", "node0");
  }

  private static Endpoint ep(int port, String db) {
    return Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase(db).build();
  }

  private static Shard patroniShard(String name, String namespace, String scope, String database) {
    return Shard.newBuilder().setName(name).setPatroni(PatroniSource.newBuilder().setNamespace(namespace)
        .setScope(scope).setDatabase(database)).build();
  }

  private Shard shard(String name) {
    return client.read().listShards(ListShardsRequest.getDefaultInstance()).getShardsList().stream()
        .filter(s -> s.getName().equals(name)).findFirst().orElseThrow();
  }

  /** Polls the shard's record until it satisfies {@code done}. */
  private Shard awaitShard(String name, java.util.function.Predicate<Shard> done, String what) throws Exception {
    Shard[] last = new Shard[1];
    Await.until(Duration.ofSeconds(10), what, () -> done.test(last[0] = shard(name)));
    return last[0];
  }

  private int shardCount() {
    return client.read().listShards(ListShardsRequest.getDefaultInstance()).getShardsCount();
  }

  @Test
  void registrationFillsTheEndpointsFromPatronisKeys() throws Exception {
    healthyCluster();
    Shard s = client.admin().registerShard(RegisterShardRequest.newBuilder()
        .setShard(patroniShard("s1", "pg/", SCOPE, "app")).build()).getShard();
    assertEquals(ep(6000, "app"), s.getPrimary());
    assertEquals(List.of(ep(6001, "app")), s.getReplicasList());
    assertEquals(1, s.getPrimaryTerm());
    assertTrue(s.getPatroni().getObservedRevision() > 0, "observed revision: " + s);
    assertEquals(s, shard("s1"));
  }

  @Test
  void theFollowerPublishesTheNodeTheLeaderKeyNamesOnceItRuns() throws Exception {
    healthyCluster();
    client.admin().registerShard(RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, SCOPE, ""))
        .build());
    assertEquals(ep(6000, "postgres"), shard("s1").getPrimary());

    // node0 dies: its leader key goes; node1 is not running yet (restarting, say) when it takes the key.
    delete(PREFIX + "leader");
    member("node0", 6000, "master", "stopped");
    member("node1", 6001, "replica", "starting");
    put(PREFIX + "leader", "node1");
    long before = shard("s1").getRevision();
    // Let the follower see all of that (it reacts to every event and re-checks every 500 ms).
    Thread.sleep(1500);
    Shard unchanged = shard("s1");
    assertEquals(before, unchanged.getRevision(), "nothing written while no named leader runs: " + unchanged);
    assertEquals(ep(6000, "postgres"), unchanged.getPrimary());

    // node1 runs, still as a replica (it is being promoted): published at once; PostgreSQL refuses writes
    // until the promotion is done, and the SDK buffers those refusals.
    member("node1", 6001, "replica", "running");
    Shard promoted = awaitShard("s1", s -> s.getPrimaryTerm() == 2, "node1's leadership published");
    assertEquals(ep(6001, "postgres"), promoted.getPrimary());
    assertEquals(List.of(), promoted.getReplicasList(), "node0 is stopped: no replica");
    member("node1", 6001, "master", "running"); // the role catches up: nothing to write
    Thread.sleep(1000);
    assertEquals(promoted.getRevision(), shard("s1").getRevision());

    // node0 comes back as a replica: replicas change, the term does not.
    member("node0", 6000, "replica", "running");
    Shard rejoined = awaitShard("s1", s -> s.getReplicasCount() == 1, "node0 published as a replica");
    assertEquals(List.of(ep(6000, "postgres")), rejoined.getReplicasList());
    assertEquals(2, rejoined.getPrimaryTerm());
    assertEquals(ep(6001, "postgres"), rejoined.getPrimary());

    // Member keys refreshed with nothing new (Patroni rewrites them every loop_wait) write nothing.
    long rev = rejoined.getRevision();
    member("node0", 6000, "replica", "running");
    member("node1", 6001, "master", "running");
    Thread.sleep(1500);
    assertEquals(rev, shard("s1").getRevision());
  }

  @Test
  void badRegistrationsAreRefusedAndWriteNothing() throws Exception {
    healthyCluster();
    Shard both = patroniShard("s1", NS, SCOPE, "").toBuilder().setPrimary(ep(6000, "postgres")).build();
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(both).build()), "shard.primary", "not both");
    Shard withReplicas = patroniShard("s1", NS, SCOPE, "").toBuilder().addReplicas(ep(6001, "postgres")).build();
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(withReplicas).build()), "shard.replicas");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, "", "")).build()), "shard.patroni.scope");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, "a/b", "")).build()), "shard.patroni.scope");
    assertStatus(Status.Code.NOT_FOUND, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, "nosuch", "")).build()),
        "shard.patroni", "'nosuch'", "/pg/nosuch/");
    // Patroni's default namespace is /service: the cluster under /pg is not found there.
    assertStatus(Status.Code.NOT_FOUND, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", "", SCOPE, "")).build()), "/service/orders1/");

    delete(PREFIX + "leader");
    assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, SCOPE, "")).build()),
        "shard.patroni", "no leader");
    member("node1", 6001, "replica", "stopped");
    put(PREFIX + "leader", "node1"); // named, but not running
    assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, SCOPE, "")).build()),
        "'node1' does not run");
    put(PREFIX + "leader", "node0");

    put(PREFIX + "config", "{\"ttl\":20,\"loop_wait\":1,\"synchronous_mode\":true}");
    assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, SCOPE, "")).build()),
        "failsafe_mode", "edit-config");
    assertEquals(0, shardCount(), "nothing was registered");

    put(PREFIX + "config", "{\"failsafe_mode\":true}");
    client.admin().registerShard(RegisterShardRequest.newBuilder().setShard(patroniShard("s1", NS, SCOPE, "")).build());
    assertEquals(1, shardCount());
    // An update is checked the same way: both at once is refused and the record stays.
    Shard before = shard("s1");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> client.admin().updateShard(
        UpdateShardRequest.newBuilder().setShard(both).build()), "not both");
    assertEquals(before, shard("s1"));
  }

  @Test
  void aShardCanTurnFromFixedToPatroniAndBack() throws Exception {
    healthyCluster();
    client.registerShards("s1"); // fixed, 127.0.0.1:5433
    Shard p = client.admin().updateShard(UpdateShardRequest.newBuilder()
        .setShard(patroniShard("s1", NS, SCOPE, "s1")).build()).getShard();
    assertEquals(ep(6000, "s1"), p.getPrimary());
    assertEquals(1, p.getPrimaryTerm(), "a new primary: term 0 -> 1");
    Shard fixed = client.admin().updateShard(UpdateShardRequest.newBuilder()
        .setShard(TestSupport.shard("s1", 7000)).build()).getShard();
    assertFalse(fixed.hasPatroni());
    assertEquals(7000, fixed.getPrimary().getPort());
    // No longer followed: a Patroni failover leaves the fixed record alone.
    member("node1", 6001, "master", "running");
    put(PREFIX + "leader", "node1");
    Thread.sleep(1500);
    assertEquals(fixed.getRevision(), shard("s1").getRevision());
  }
}
