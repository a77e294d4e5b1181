package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The client on real etcd and real directory servers: agreement, propagation, failover, resync, staleness. */
@Tag("integration")
class ShardmapClientTest {
  EtcdCluster etcd;
  String prefix;
  DirectoryServer a;
  ManagedChannel adminChannel;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  ShardMapServiceGrpc.ShardMapServiceBlockingStub read;

  @BeforeEach
  void start() throws Exception {
    etcd = EtcdCluster.shared();
    prefix = "/c" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    a = server(0);
    adminChannel = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    admin = ShardMapAdminServiceGrpc.newBlockingStub(adminChannel);
    read = ShardMapServiceGrpc.newBlockingStub(adminChannel);
    for (String s : List.of("s1", "s2", "s3", "s4")) {
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
    }
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("users", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_RANGE)).addAllRangeShards(List.of("s1", "s2", "s3")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("carts", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_CONSISTENT_HASH)).addAllRingShards(List.of("s1", "s2")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("sessions", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_HASH)).addAllHashBuckets(List.of("s1", "s2", "s3")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("tenants", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_DIRECTORY)).setFallbackShard("s4").build());
    admin.putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("tenants")
        .addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setStringKey("acme")).setShard("s2"))
        .build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("profiles", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_GEOGRAPHIC)).addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s3"))
        .build());
  }

  @AfterEach
  void stop() {
    adminChannel.shutdownNow();
    a.close();
  }

  private DirectoryServer server(int port) throws Exception {
    return DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix)
        .listen("127.0.0.1", port).build());
  }

  private static List<String> view(DirectorySnapshot s) {
    return s.keyspace("users").ranges().routes().stream()
        .map(r -> r.range() + " " + r.shard() + "@" + r.epoch()).toList();
  }

  private static KeyspaceSpec spec(String name, KeyType type, Strategy s) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(s).build();
  }

  private ClientOptions.Builder options(String... targets) {
    return ClientOptions.builder().targets(targets).keyspaces("users", "carts", "sessions", "tenants", "profiles")
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200));
  }

  @Test
  void everyStrategyAgreesWithTheServerAndChangesArrive() throws Exception {
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).build())) {
      Random rnd = new Random(3);
      for (int i = 0; i < 2000; i++) {
        long k = rnd.nextLong();
        for (String ks : List.of("users", "carts")) {
          LookupResponse s = read.lookup(LookupRequest.newBuilder().setKeyspace(ks)
              .setKey(Key.newBuilder().setIntKey(k)).build());
          ShardRoute r = c.route(ks, k);
          assertEquals(s.getRoute().getShard(), r.shard(), ks + " key " + k);
          assertEquals(s.getRoute().getEpoch(), r.epoch(), ks + " key " + k);
        }
        String sk = "k" + rnd.nextInt();
        assertEquals(read.lookup(LookupRequest.newBuilder().setKeyspace("sessions")
            .setKey(Key.newBuilder().setStringKey(sk)).build()).getRoute().getShard(), c.route("sessions", ShardKey.of(sk)).shard());
      }
      assertEquals("s2", c.route("tenants", ShardKey.of("acme")).shard());
      assertEquals("s4", c.route("tenants", ShardKey.of("globex")).shard());
      assertEquals("s3", c.route("profiles", ShardKey.of("us")).shard(), "unknown region goes to the default");
      assertEquals(5432, c.shard("s1").primary().port());

      LinkedBlockingQueue<DirectorySnapshot> seen = new LinkedBlockingQueue<>();
      c.addListener((before, after, resync) -> seen.add(after.core()));
      SplitRangeResponse split = admin.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
          .setSplitKey(Key.newBuilder().setIntKey(1000)).build());
      admin.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
          .setRange(split.getRight().getRange()).setShard("s4").build());
      Await.until(Duration.ofSeconds(20), "the client applies the reassign", () -> "s4".equals(c.route("users", 1000).shard()));
      assertEquals(2, c.route("users", 1000).epoch());
      // Owner, epoch and range agree with the server (etcd mod revisions are the server's business).
      assertEquals(view(a.snapshot()), view(c.snapshot().core()));
      DirectorySnapshot last = seen.poll(5, TimeUnit.SECONDS);
      assertNotNull(last, "listener called");
      // A keyspace created after the client started arrives through the watch.
      admin.dropKeyspace(DropKeyspaceRequest.newBuilder().setName("profiles").build());
      Await.until(Duration.ofSeconds(20), "drop reaches the client", () -> !c.snapshot().core().keyspaces().containsKey("profiles"));
      ShardmapException gone = assertThrows(ShardmapException.class, () -> c.route("profiles", ShardKey.of("eu")));
      assertEquals(ErrorCode.NOT_FOUND, gone.code());
      ShardmapException notFollowed = assertThrows(ShardmapException.class, () -> c.route("other", 1));
      assertTrue(notFollowed.getMessage().contains("not followed"), notFollowed.getMessage());
      // Same Route instance for keys of one range: lookups allocate nothing per call.
      assertSame(c.route("users", 5), c.route("users", 6));
    }
  }

  @Test
  void integerLookupsAllocateNothing() throws Exception {
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port())
        .maxStaleness(Duration.ofMinutes(1)).build())) {
      long[] keys = new Random(5).longs(1024).toArray();
      long sink = 0;
      // Warm up so the JIT has compiled the path (and escape analysis has done its work).
      for (int i = 0; i < 300_000; i++) {
        sink += c.route("users", keys[i & 1023]).epoch() + c.route("carts", keys[(i + 7) & 1023]).epoch();
      }
      com.sun.management.ThreadMXBean mx =
          (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      long before = mx.getThreadAllocatedBytes(Thread.currentThread().getId());
      for (int i = 0; i < 100_000; i++) {
        sink += c.route("users", keys[i & 1023]).epoch() + c.route("carts", keys[(i + 7) & 1023]).epoch();
      }
      long allocated = mx.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
      // 200,000 lookups; a single allocation per lookup would be >= 3.2 MB.
      assertTrue(allocated < 64 * 1024, "200,000 lookups allocated " + allocated + " bytes (sink " + sink + ")");
    }
  }

  @Test
  void failsOverWhenAReplicaDiesAndResyncsWhenHistoryIsGone() throws Exception {
    int portB;
    try (ServerSocket s = new ServerSocket(0)) {
      portB = s.getLocalPort();
    }
    DirectoryServer b = server(0);
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + b.port(), "127.0.0.1:" + portB,
        "127.0.0.1:" + a.port()).build())) {
      b.close();
      long rev = admin.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
          .setSplitKey(Key.newBuilder().setIntKey(77)).build()).getRevision();
      Await.until(Duration.ofSeconds(20), "the client moves to a live replica", () -> c.revision() >= rev);
      assertTrue(c.stats().failovers() >= 1, "failovers " + c.stats().failovers());
      assertEquals(77, io.shardmap.core.Keys.decodeInt64(c.route("users", 77).range().core().start()));
    }
    // Resync: a client whose revision predates a fresh server's history re-reads the map.
    DirectoryServer fresh = null;
    ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port(), "127.0.0.1:" + portB).build());
    try {
      a.close();
      DirectoryServer writer = server(0);
      ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", writer.port()).usePlaintext().build();
      ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub w = ShardMapAdminServiceGrpc.newBlockingStub(ch);
      long split = w.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
          .setSplitKey(Key.newBuilder().setIntKey(88)).build()).getRevision();
      writer.close();
      ch.shutdownNow();
      fresh = server(portB);
      // The split, not the fresh server's revision: that one moves on with revisions that change no map
      // (the servers' client presence records), which the client's map revision never takes.
      Await.until(Duration.ofSeconds(20), "the client re-reads from the fresh server", () -> c.revision() >= split);
      assertTrue(c.stats().resyncs() >= 1, "resyncs " + c.stats().resyncs());
      assertEquals(88, io.shardmap.core.Keys.decodeInt64(c.route("users", 88).range().core().start()));
    } finally {
      c.close();
      if (fresh != null) {
        fresh.close();
      }
      a = server(0);
    }
  }

  @Test
  void cutOffClientServesItsLastMapUntilMaxStaleness() throws Exception {
    ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).maxStaleness(Duration.ofMillis(1500))
        .build());
    try {
      String owner = c.route("users", 1).shard();
      a.close();
      Thread.sleep(300);
      assertEquals(owner, c.route("users", 1).shard(), "still routes from the last map");
      Await.until(Duration.ofSeconds(20), "staleness passes the maximum", () -> c.staleness().toMillis() > 1500);
      // Judged by a timer every 20 ms (lookups read a flag, not the clock).
      Thread.sleep(60);
      ShardmapException e = assertThrows(ShardmapException.class, () -> c.route("users", 1));
      assertEquals(ErrorCode.UNAVAILABLE, e.code());
      assertTrue(e.getMessage().contains("maximum staleness"), e.getMessage());
    } finally {
      c.close();
      a = server(0);
    }
  }

  @Test
  void badOptionsAreRejectedNamingTheOption() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().targets("nohost").keyspaces("users").build());
    assertTrue(e.getMessage().startsWith("targets:"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().targets("h:1").build());
    assertTrue(e.getMessage().startsWith("keyspaces:"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().maxStaleness(Duration.ZERO));
    assertTrue(e.getMessage().startsWith("maxStaleness:"), e.getMessage());
  }
}
