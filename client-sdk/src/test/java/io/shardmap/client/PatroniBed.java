package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import io.shardmap.testkit.PatroniCluster;
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
import java.util.function.UnaryOperator;

/**
 * One Patroni shard "p1" (the given cluster) behind a directory server on the same etcd, a keyspace "items"
 * routing every key to it, a client and a ShardmapData; and SDK writers with the oracle of what they had
 * acknowledged. For the Patroni fault tests.
 */
final class PatroniBed implements AutoCloseable {
  static final Duration WAIT = Duration.ofSeconds(60);

  final PatroniCluster cluster;
  final DirectoryServer server;
  final ShardmapClient client;
  final ShardmapData data;

  PatroniBed(PatroniCluster cluster, List<String> etcdEndpoints, UnaryOperator<DataOptions.Builder> options)
      throws Exception {
    this.cluster = cluster;
    try (Connection c = cluster.primary(WAIT).connect(); Statement s = c.createStatement()) {
      // at: when the row was written, by the server's clock (the same machine's as the test's); port: the
      // port of the server that wrote it, so rows replicated from an old primary are told apart.
      s.execute("create table items (id bigint primary key, writer int not null, "
          + "at timestamptz not null default clock_timestamp(), port int not null default inet_server_port())");
    }
    String prefix = "/t" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    server = DirectoryServer.start(ServerOptions.loopbackForTests(etcdEndpoints, prefix).build());
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
    data = ShardmapData.open(client, options.apply(DataOptions.builder().user(PatroniCluster.SUPERUSER)
        .connectionTimeout(Duration.ofSeconds(1)).validationTimeout(Duration.ofMillis(500))).build());
  }

  /** The map's record of the Patroni shard, as the client holds it. */
  Shard record() {
    return client.coreSnapshot().shards().get("p1");
  }

  /** Every id in the items table of {@code node}'s PostgreSQL. */
  Set<Long> idsOn(String node) throws SQLException {
    Set<Long> ids = new HashSet<>();
    try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("select id from items")) {
      while (rs.next()) {
        ids.add(rs.getLong(1));
      }
    }
    return ids;
  }

  /** When {@code node}'s PostgreSQL wrote its first row of items (itself, not replicated), in wall-clock ms; -1 if none. */
  long firstWriteOn(String node) throws SQLException {
    try (Connection c = cluster.instance(node).connect(); PreparedStatement ps = c.prepareStatement(
        "select (extract(epoch from min(at)) * 1000)::bigint from items where port = ?")) {
      ps.setInt(1, cluster.postgresPort(node));
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        long v = rs.getLong(1);
        return rs.wasNull() ? -1 : v;
      }
    }
  }

  Writers writers(int n) {
    return new Writers(n, 0);
  }

  /** {@code n} single-key writers and {@code crossShard} more that write through {@code acrossShards}. */
  Writers writers(int n, int crossShard) {
    return new Writers(n, crossShard);
  }

  /** SDK writers, each inserting its own ids in transactions, with the oracle of what was acknowledged. */
  final class Writers {
    final int count;
    final int crossShard;
    final Set<Long> acked = ConcurrentHashMap.newKeySet();
    final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
    /** Writes acknowledged and failed by the writers that use acrossShards. */
    final Set<Long> crossAcked = ConcurrentHashMap.newKeySet();
    final ConcurrentLinkedQueue<String> crossFailures = new ConcurrentLinkedQueue<>();
    private long lastAckNanos;
    /** The longest time between two consecutive acknowledgements (the write outage), and when it ended. */
    private long maxGapNanos;
    private long gapEndNanos;
    final AtomicBoolean stop = new AtomicBoolean();
    final List<Thread> threads = new ArrayList<>();

    private Writers(int count, int crossShard) {
      this.count = count;
      this.crossShard = crossShard;
    }

    /** Starts the writers; each stops at 200,000 writes, at {@code limit}, or at {@link #stopAndJoin}. */
    Writers start(Duration limit) {
      long deadline = System.nanoTime() + limit.toNanos();
      for (int w = 0; w < count + crossShard; w++) {
        int writer = w;
        boolean cross = w >= count;
        Thread t = new Thread(() -> {
          for (long seq = 0; seq < 200_000 && !stop.get() && System.nanoTime() < deadline; seq++) {
            long id = writer * 1_000_000L + seq;
            try {
              if (cross) {
                data.acrossShards(tx -> insert(tx.connection("items", id), id, writer));
                crossAcked.add(id);
              } else {
                data.inTransaction("items", id, c -> insert(c, id, writer));
              }
              acked.add(id);
              acknowledged(System.nanoTime());
            } catch (SQLException | RuntimeException e) {
              (cross ? crossFailures : failures).add(id + ": " + e);
            }
          }
        }, "writer-" + w);
        threads.add(t);
        t.start();
      }
      return this;
    }

    private int insert(Connection c, long id, int writer) throws SQLException {
      try (PreparedStatement ps = c.prepareStatement("insert into items (id, writer) values (?, ?)")) {
        ps.setLong(1, id);
        ps.setInt(2, writer);
        return ps.executeUpdate();
      }
    }

    private synchronized void acknowledged(long now) {
      if (lastAckNanos != 0 && now - lastAckNanos > maxGapNanos) {
        maxGapNanos = now - lastAckNanos;
        gapEndNanos = now;
      }
      lastAckNanos = Math.max(lastAckNanos, now);
    }

    synchronized long maxGapMillis() {
      return TimeUnit.NANOSECONDS.toMillis(maxGapNanos);
    }

    /** When the longest gap ended: the first write after an outage, in System.nanoTime. */
    synchronized long gapEndNanos() {
      return gapEndNanos;
    }

    /** Waits until {@code atLeast} writes were acknowledged in all. */
    void awaitAcks(long atLeast, String what) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (acked.size() < atLeast) {
        assertTrue(System.nanoTime() < deadline, "no " + what + " within " + WAIT + "; failures: " + failures);
        Thread.sleep(20);
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

  @Override
  public void close() {
    data.close();
    client.close();
    server.close();
  }
}
