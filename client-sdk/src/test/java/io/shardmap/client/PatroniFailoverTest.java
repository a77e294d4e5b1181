package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PatroniCluster.Leader;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
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
 * new primary; the map named the new primary (term 2) through the directory's Patroni follower; the writers'
 * only failures are commits whose outcome the SDK cannot know (the connection broke inside COMMIT), at most
 * one per writer; every other write waited in the failover buffer and ran on the new primary.
 *
 * <p>Prints the kill-to-first-write and promotion-to-first-write times (the benchmark measures them over
 * rounds: docs/benchmarks.md).
 */
@Tag("fault")
@Timeout(300)
class PatroniFailoverTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final int WRITERS = 4;

  private PatroniCluster cluster;
  private DirectoryServer server;
  private ShardmapClient client;
  private ShardmapData data;

  @BeforeEach
  void start() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    EtcdCluster etcd = EtcdCluster.shared();
    cluster = PatroniCluster.start(etcd, 2);
    cluster.awaitSyncStandby(WAIT);
    try (Connection c = cluster.primary(WAIT).connect(); Statement s = c.createStatement()) {
      s.execute("create table items (id bigint primary key, writer int not null)");
    }
    String prefix = "/t" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    server = DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix).build());
    ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    try {
      var admin = ShardMapAdminServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS);
      Shard p1 = admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("p1")
          .setPatroni(PatroniSource.newBuilder().setNamespace(cluster.namespace()).setScope(cluster.scope())))
          .build()).getShard();
      assertEquals(1, p1.getPrimaryTerm());
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("items")
          .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
          .addTables(ShardedTable.newBuilder().setName("items").setKeyColumn("id"))).addRangeShards("p1").build());
    } finally {
      ch.shutdownNow();
    }
    client = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + server.port()).keyspaces("items")
        .build());
    data = ShardmapData.open(client, DataOptions.builder().user(PatroniCluster.SUPERUSER)
        .connectionTimeout(Duration.ofSeconds(1)).validationTimeout(Duration.ofMillis(500))
        .failoverBufferWindow(Duration.ofSeconds(30)).build());
  }

  @AfterEach
  void stop() {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (server != null) {
      server.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  /** SDK writers, each inserting its own ids in transactions, with the oracle of what was acknowledged. */
  private final class Writers {
    final Set<Long> acked = ConcurrentHashMap.newKeySet();
    final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
    final AtomicLong lastAckNanos = new AtomicLong();
    /** The longest time between two consecutive acknowledgements: the write outage the writers saw. */
    final AtomicLong maxGapNanos = new AtomicLong();
    /** When the acknowledgement that ended that gap came. */
    volatile long gapEndNanos;
    final AtomicBoolean stop = new AtomicBoolean();
    final List<Thread> threads = new ArrayList<>();

    void start(long deadlineNanos) {
      for (int w = 0; w < WRITERS; w++) {
        int writer = w;
        Thread t = new Thread(() -> {
          for (long seq = 0; seq < 200_000 && !stop.get() && System.nanoTime() < deadlineNanos; seq++) {
            long id = writer * 1_000_000L + seq;
            try {
              data.inTransaction("items", id, c -> {
                try (PreparedStatement ps = c.prepareStatement("insert into items (id, writer) values (?, ?)")) {
                  ps.setLong(1, id);
                  ps.setInt(2, writer);
                  return ps.executeUpdate();
                }
              });
              long now = System.nanoTime();
              acked.add(id);
              synchronized (this) {
                long prev = lastAckNanos.get();
                if (prev != 0 && now - prev > maxGapNanos.get()) {
                  maxGapNanos.set(now - prev);
                  gapEndNanos = now;
                }
                lastAckNanos.set(Math.max(prev, now));
              }
            } catch (SQLException | RuntimeException e) {
              failures.add(id + ": " + e);
            }
          }
        }, "writer-" + w);
        threads.add(t);
        t.start();
      }
    }

    void stopAndJoin() throws InterruptedException {
      stop.set(true);
      for (Thread t : threads) {
        t.join(TimeUnit.SECONDS.toMillis(60));
        assertTrue(!t.isAlive(), t.getName() + " still runs");
      }
    }
  }

  private void awaitAcks(Writers w, long atLeast, String what) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (w.acked.size() < atLeast) {
      assertTrue(System.nanoTime() < deadline, "no " + what + " within " + WAIT + "; failures: " + w.failures);
      Thread.sleep(20);
    }
  }

  /** Polls {@code node}'s PostgreSQL until it accepts writes; returns when, in System.nanoTime. */
  private Thread promotionWatcher(String node, AtomicLong promotedAt) {
    Thread t = new Thread(() -> {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (System.nanoTime() < deadline) {
        try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement()) {
          while (System.nanoTime() < deadline) {
            try (ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
              rs.next();
              if (!rs.getBoolean(1)) {
                promotedAt.set(System.nanoTime());
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

  private Set<Long> idsOn(Leader leader) throws SQLException {
    Set<Long> ids = new HashSet<>();
    try (Connection c = cluster.instance(leader.name()).connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("select id from items")) {
      while (rs.next()) {
        ids.add(rs.getLong(1));
      }
    }
    return ids;
  }

  private Shard shardRecord() {
    return client.coreSnapshot().shards().get("p1");
  }

  /** What both fault tests check once writers stopped. */
  private void checkAfter(Writers w, Leader old, Leader now) throws Exception {
    Set<Long> present = idsOn(now);
    Set<Long> lost = new HashSet<>(w.acked);
    lost.removeAll(present);
    assertEquals(Set.of(), lost, "acknowledged writes missing on the new primary " + now.name());
    Shard record = shardRecord();
    assertEquals(2, record.getPrimaryTerm(), "one new primary in the map: " + record);
    assertEquals(now.port(), record.getPrimary().getPort(), "the map names the new primary: " + record);
    assertNotEquals(old.port(), now.port());
    assertTrue(w.failures.size() <= WRITERS, "at most one unknown-outcome commit per writer; failures: "
        + w.failures);
    FailoverStats f = data.failoverStats();
    assertEquals(1L, f.primaryChanges().get("p1"), "failovers seen: " + f);
    assertTrue(f.firstCallAfterFailover().containsKey("p1"), "first call after the failover measured: " + f);
    assertEquals(0, f.waiting());
    assertEquals(0, f.timeouts(), "no call waited its whole window: " + f);
  }

  @Test
  void killedPrimaryLosesNoAcknowledgedWrite() throws Exception {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    Writers w = new Writers();
    w.start(System.nanoTime() + TimeUnit.SECONDS.toNanos(120));
    try {
      awaitAcks(w, 200, "writes before the kill");
      AtomicLong promotedAt = new AtomicLong();
      Thread watcher = promotionWatcher(standby, promotedAt);
      long killedAt = System.nanoTime();
      cluster.killPostmaster(old.name());
      Leader now = cluster.awaitLeader(old.name(), WAIT);
      assertEquals(standby, now.name());
      watcher.join(WAIT.toMillis());
      int atFailover = w.acked.size();
      awaitAcks(w, atFailover + 200, "writes after the failover");
      w.stopAndJoin();
      checkAfter(w, old, now);
      // The first write on the new primary ends the writers' longest gap (the outage); an acknowledgement
      // that merely arrived after the kill instant may be a commit the old primary finished first.
      long first = w.gapEndNanos;
      System.out.printf("patroni failover (SIGKILL of the primary's postmaster; ttl 20 s, loop_wait 1 s, "
          + "retry_timeout 5 s, primary_start_timeout 0): kill -> first acknowledged write %d ms, promotion "
          + "(pg_is_in_recovery() false on %s) -> first write %d ms; write outage %d ms; acknowledged %d, "
          + "failed %d %s; %s%n",
          TimeUnit.NANOSECONDS.toMillis(first - killedAt), standby,
          promotedAt.get() == 0 ? -1 : TimeUnit.NANOSECONDS.toMillis(first - promotedAt.get()),
          TimeUnit.NANOSECONDS.toMillis(w.maxGapNanos.get()), w.acked.size(),
          w.failures.size(), w.failures, data.failoverStats());
    } finally {
      w.stopAndJoin();
    }
  }

  @Test
  void plannedSwitchoverLosesNoAcknowledgedWrite() throws Exception {
    Leader old = cluster.awaitLeader(WAIT);
    String standby = cluster.awaitSyncStandby(WAIT);
    Writers w = new Writers();
    w.start(System.nanoTime() + TimeUnit.SECONDS.toNanos(120));
    try {
      awaitAcks(w, 200, "writes before the switchover");
      Leader now = cluster.switchover(standby, WAIT);
      int atSwitch = w.acked.size();
      awaitAcks(w, atSwitch + 200, "writes after the switchover");
      w.stopAndJoin();
      checkAfter(w, old, now);
      System.out.printf("patroni switchover: write outage %d ms (longest gap between acknowledged writes); "
          + "acknowledged %d, failed %d %s; %s%n", TimeUnit.NANOSECONDS.toMillis(w.maxGapNanos.get()), w.acked.size(),
          w.failures.size(), w.failures, data.failoverStats());
    } finally {
      w.stopAndJoin();
    }
  }
}
