package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.UpdateShardRequest;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * {@link ShardmapData#read} on a real streaming replica: a two-node Patroni cluster (a primary and its
 * synchronous standby, started once for the class) registered as one fixed shard {@code p1} whose
 * replicas are the standby and, as a misconfigured "replica", the primary itself (a server not in recovery,
 * which reads must never use). Each read runs {@code select pg_is_in_recovery()}, which says where it ran.
 * In order: reads use the healthy standby; with its replay paused while writes go on they move to the
 * primary (and see their own writes) once its lag passes {@code maxReplicaLag}, and come back after replay
 * resumes; with its postmaster killed not one read fails. Skipped where Patroni cannot run.
 */
@Tag("integration")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ReplicaReadsTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final Duration MAX_LAG = Duration.ofSeconds(1);
  private static final String KEYSPACE = "rr";
  private static final String TABLE = "rr_items";

  private static ShardmapFleet fleet;
  private static PatroniCluster cluster;
  private static String leader;
  private static String standby;
  private static ShardmapClient client;
  private static ShardmapData data;
  private static SimpleMeterRegistry registry;
  private static long nextId = 1;

  @BeforeAll
  static void start() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    long t0 = System.nanoTime();
    fleet = ShardmapFleet.builder().build(); // shared etcd, one directory server, no shards of its own
    cluster = PatroniCluster.start(fleet.etcd(), 2);
    leader = cluster.awaitLeader(WAIT).name();
    standby = cluster.awaitSyncStandby(WAIT);
    System.out.printf("[replica-reads] fleet and Patroni cluster up in %d ms%n",
        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    cluster.instance(leader).exec("create table " + TABLE + " (id bigint primary key, v text not null)");
    Endpoint primary = endpoint(leader);
    // Fixed registration: the shard's endpoints do not follow Patroni here (that is another test's subject).
    fleet.admin().withDeadlineAfter(30, TimeUnit.SECONDS).registerShard(RegisterShardRequest.newBuilder()
        .setShard(Shard.newBuilder().setName("p1").setPrimary(primary).addReplicas(endpoint(standby))
            .addReplicas(primary))
        .build());
    fleet.admin().withDeadlineAfter(30, TimeUnit.SECONDS).createKeyspace(CreateKeyspaceRequest.newBuilder()
        .setSpec(KeyspaceSpec.newBuilder().setName(KEYSPACE).setKeyType(KeyType.KEY_TYPE_INT64)
            .setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(TABLE).setKeyColumn("id")))
        .addRangeShards("p1").build());
    registry = new SimpleMeterRegistry();
    client = ShardmapClient.start(ClientOptions.builder().targets(fleet.targets())
        .channelFactory(fleet::channelBuilder).keyspaces(KEYSPACE).meterRegistry(registry)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(PatroniCluster.SUPERUSER).maxPoolSize(4)
        .replicaConnectionTimeout(Duration.ofMillis(250)).maxReplicaLag(MAX_LAG)
        .replicaCheckInterval(Duration.ofMillis(100)).build());
  }

  @AfterAll
  static void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (cluster != null) {
      cluster.close();
    }
    if (fleet != null) {
      fleet.close();
    }
  }

  private static Endpoint endpoint(String node) {
    PgInstance p = cluster.instance(node);
    return Endpoint.newBuilder().setHost(p.host()).setPort(p.port()).setDatabase("postgres").build();
  }

  private static boolean inRecovery(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
      rs.next();
      return rs.getBoolean(1);
    }
  }

  /** Where a read of {@code id} ran (in recovery: on the standby) and the row's value there (null: none). */
  private record Read(boolean onReplica, String value) {}

  private static Read read(long id) throws SQLException {
    return data.read(KEYSPACE, id, c -> {
      try (PreparedStatement ps = c.prepareStatement("select v from " + TABLE + " where id = ?")) {
        ps.setLong(1, id);
        try (ResultSet rs = ps.executeQuery()) {
          return new Read(inRecovery(c), rs.next() ? rs.getString(1) : null);
        }
      }
    });
  }

  /** Writes a new row on the primary and returns its id. */
  private static long write() throws SQLException {
    long id = nextId++;
    data.inTransaction(KEYSPACE, id, c -> {
      try (PreparedStatement ps = c.prepareStatement("insert into " + TABLE + " (id, v) values (?, ?)")) {
        ps.setLong(1, id);
        ps.setString(2, "v" + id);
        return ps.executeUpdate();
      }
    });
    return id;
  }

  private static Duration lag(int replica) {
    return data.stats().replicaLags().get("p1/replica" + replica);
  }

  private static double gauge(String name, int replica) {
    Gauge g = registry.find(name).tags("shard", "p1", "replica", "replica" + replica).gauge();
    assertNotNull(g, name + " of replica" + replica + " is registered");
    return g.value();
  }

  private static void awaitStandbyUsable() throws InterruptedException {
    Await.until(WAIT, "the standby is usable for reads", () -> !lag(0).isNegative());
  }

  @Test
  @Order(1)
  void readsGoToTheHealthyStandbyAndNeverToAServerNotInRecovery() throws Exception {
    long id = write();
    awaitStandbyUsable();
    long fallbacks = data.stats().replicaFallbacks();
    for (int i = 0; i < 50; i++) {
      // Synchronous commit waits for the standby's flush, not its replay: the row may show a little later.
      assertTrue(read(id).onReplica(), "read " + i + " ran on the standby, not on the primary registered as "
          + "replica1 (not in recovery) nor on the primary");
    }
    assertEquals(fallbacks, data.stats().replicaFallbacks(), "no read went to the primary");
    assertTrue(data.read(KEYSPACE, id, Connection::isReadOnly), "replica connections are read-only");
    assertEquals(DataStats.UNKNOWN_LAG, lag(1), "the primary registered as a replica is not usable");
    assertTrue(lag(0).compareTo(MAX_LAG) <= 0, "the standby's lag used for routing: " + lag(0));
    assertEquals(0.0, gauge("shardmap.data.replica.usable", 1));
    assertEquals(-1.0, gauge("shardmap.data.replica.lag", 1));
  }

  @Test
  @Order(2)
  void aStandbyWhoseReplayIsPausedIsLeftOnceItLagsAndUsedAgainAfterItResumes() throws Exception {
    awaitStandbyUsable();
    PgInstance standbyPg = cluster.instance(standby);
    // Patroni resumes a paused replay on PostgreSQL 14+ at its next loop (handle_parameter_change) unless
    // the cluster is in maintenance mode: pause Patroni first, so the replay stays paused.
    cluster.patronictl(leader, "pause", cluster.scope(), "--wait");
    try {
      standbyPg.exec("select pg_wal_replay_pause()");
      long fallbacks = data.stats().replicaFallbacks();
      // Writes go on (synchronous_commit on waits for the standby's flush, which goes on while replay is
      // paused); once the standby's replay lag passes maxReplicaLag, reads go to the primary.
      boolean moved = false;
      long deadline = System.nanoTime() + WAIT.toNanos();
      for (int i = 0; i < 2_000 && System.nanoTime() < deadline && !moved; i++) {
        long id = write();
        moved = !read(id).onReplica();
        Thread.sleep(20);
      }
      assertTrue(moved, "reads left the paused standby within " + WAIT);
      System.out.printf("[replica-reads] reads moved to the primary; lag seen by the last check: %s%n", lag(0));
      // Still paused, still lagging: every read is on the primary and sees the write made just before it.
      for (int i = 0; i < 20; i++) {
        long id = write();
        Read r = read(id);
        assertEquals(new Read(false, "v" + id), r, "read " + i + " ran on the primary and read its own write");
      }
      assertTrue(data.stats().replicaFallbacks() >= fallbacks + 21, "the reads sent to the primary are counted");
      assertEquals(DataStats.UNKNOWN_LAG, lag(0), "a standby lagging past the bound is reported unusable");
      assertEquals(0.0, gauge("shardmap.data.replica.usable", 0));
      assertEquals(-1.0, gauge("shardmap.data.replica.lag", 0));
    } finally {
      try {
        standbyPg.exec("select pg_wal_replay_resume()");
      } finally {
        cluster.patronictl(leader, "resume", cluster.scope(), "--wait");
      }
    }
    long id = write();
    Await.until(WAIT, "reads return to the standby once it has replayed", () -> {
      try {
        return read(id).onReplica();
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
    assertEquals(1.0, gauge("shardmap.data.replica.usable", 0));
    assertTrue(gauge("shardmap.data.replica.lag", 0) >= 0);
  }

  @Test
  @Order(3)
  void noReadFailsWhenTheStandbysPostmasterIsKilled() throws Exception {
    long id = write();
    awaitStandbyUsable();
    Await.until(WAIT, "the standby has replayed row " + id, () -> {
      try {
        return new Read(true, "v" + id).equals(read(id));
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
    cluster.killPostmaster(standby);
    int reads = 0;
    int failed = 0;
    int onReplica = 0;
    SQLException firstFailure = null;
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(8);
    // Bounded in count and time: covers the kill, the checks noticing it, and usually Patroni's restart.
    while (reads < 2_000 && System.nanoTime() < until) {
      reads++;
      try {
        Read r = read(id);
        assertEquals("v" + id, r.value());
        onReplica += r.onReplica() ? 1 : 0;
      } catch (SQLException | RuntimeException e) {
        failed++;
        if (firstFailure == null && e instanceof SQLException s) {
          firstFailure = s;
        }
      }
      Thread.sleep(5);
    }
    System.out.printf("[replica-reads] standby postmaster killed: %d reads, %d failed, %d on the standby%n",
        reads, failed, onReplica);
    assertEquals(0, failed, "no read failed (first failure: " + firstFailure + ")");
    // Patroni restarts the standby's PostgreSQL; reads return to it.
    assertEquals(standby, cluster.awaitSyncStandby(WAIT));
    long after = write();
    Await.until(WAIT, "reads return to the restarted standby", () -> {
      try {
        return read(after).onReplica();
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
  }

  /** Connections the replica checks hold on {@code node}'s PostgreSQL now. */
  private static int checkConnections(String node) throws SQLException {
    try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("select count(*) from pg_stat_activity "
            + "where application_name = 'shardmap-replica-check'")) {
      rs.next();
      return rs.getInt(1);
    }
  }

  @Test
  @Order(4)
  void replacedAndClosedPoolsAreNoLongerChecked() throws Exception {
    // Before: the primary (its position) and the primary registered as replica1, and the standby.
    Await.until(WAIT, "checks connected to both servers", () -> {
      try {
        return checkConnections(leader) == 2 && checkConnections(standby) == 1;
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
    fleet.admin().withDeadlineAfter(30, TimeUnit.SECONDS).updateShard(UpdateShardRequest.newBuilder()
        .setShard(Shard.newBuilder().setName("p1").setPrimary(endpoint(leader)).addReplicas(endpoint(standby)))
        .build());
    Await.until(WAIT, "the pools of the old endpoints are replaced", () ->
        client.shard("p1").replicas().size() == 1);
    // The old pools' checks stop and close their connections; the new pools' checks open their own.
    Await.until(WAIT, "only the new pools' checks remain connected", () -> {
      try {
        return checkConnections(leader) == 1 && checkConnections(standby) == 1 && lag(1) == null
            && !lag(0).isNegative();
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
    data.close();
    data = null;
    // The server ends a backend a moment after its client closed the socket: awaited, not asserted at once.
    Await.until(WAIT, "closing stops the checks and closes their connections", () -> {
      try {
        return checkConnections(leader) == 0 && checkConnections(standby) == 0;
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    });
    assertTrue(registry.find("shardmap.data.replica.lag").gauges().isEmpty(), "the lag gauges are removed");
    assertTrue(registry.find("shardmap.data.replica.usable").gauges().isEmpty());
  }
}
