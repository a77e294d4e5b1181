package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.*;
import io.shardmap.catalog.ClientAcks;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * "Every live SDK client has applied revision R", end to end on real etcd: clients report to the
 * directory server they follow, every server publishes its clients' minimum under its lease, and
 * {@link ClientAcks} combines the records. Also what it must not do: wait for a closed client, keep a
 * dead server's record, or be fooled by a client that stopped applying.
 */
@Tag("integration")
class ClientAcksTest {
  EtcdCluster etcd;
  String prefix;
  CatalogPaths paths;
  MetaStore store;
  final List<AutoCloseable> closeLast = new ArrayList<>();
  ManagedChannel adminChannel;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;

  @BeforeEach
  void setUp() {
    etcd = EtcdCluster.shared();
    prefix = "/a" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    paths = new CatalogPaths(prefix);
    store = EtcdMetaStore.builder().endpoints(etcd.clientEndpoints()).requestTimeout(Duration.ofSeconds(3))
        .connectTimeout(Duration.ofSeconds(3)).build();
  }

  @AfterEach
  void tearDown() throws Exception {
    for (int i = closeLast.size() - 1; i >= 0; i--) {
      closeLast.get(i).close();
    }
    if (adminChannel != null) {
      adminChannel.shutdownNow();
    }
    store.close();
  }

  private DirectoryServer server(String id, Duration clientTimeout) throws Exception {
    DirectoryServer s = DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix)
        .serverId(id)
        .clientReportTimeout(clientTimeout).build());
    closeLast.add(s);
    if (admin == null) {
      adminChannel = NettyChannelBuilder.forAddress("127.0.0.1", s.port()).usePlaintext().build();
      admin = ShardMapAdminServiceGrpc.newBlockingStub(adminChannel);
      for (String shard : List.of("s1", "s2")) {
        admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(shard)
            .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(shard))).build());
      }
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
          .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addRangeShards("s1").build());
    }
    return s;
  }

  private ShardmapClient client(String id, String... targets) throws Exception {
    ClientOptions.Builder b = ClientOptions.builder().targets(targets).keyspaces("users")
        .reportInterval(Duration.ofMillis(300)).backoff(Duration.ofMillis(20), Duration.ofMillis(200));
    if (id != null) {
      b.clientId(id);
    }
    return ShardmapClient.start(b.build());
  }

  private static String target(DirectoryServer s) {
    return "127.0.0.1:" + s.port();
  }

  private ClientAcks.Acks acks() {
    return ClientAcks.read(store, paths, Duration.ofSeconds(5));
  }

  private ClientPresence presence(String serverId) {
    return acks().servers().stream().filter(p -> p.getServerId().equals(serverId)).findFirst().orElse(null);
  }

  private KeyValue record(String serverId) throws Exception {
    List<KeyValue> kvs = store.get(paths.clients(serverId)).get(5, TimeUnit.SECONDS).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  /** Moves the whole users range to the shard that does not own it; returns the change's revision. */
  private long moveUsers() {
    GetMapResponse m = ShardMapServiceGrpc.newBlockingStub(adminChannel)
        .getMap(GetMapRequest.newBuilder().setKeyspace("users").build());
    String owner = m.getRanges(0).getShard();
    return admin.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
        .setRange(KeyRange.getDefaultInstance()).setShard(owner.equals("s1") ? "s2" : "s1").build()).getRevision();
  }

  /** (a) Two clients on two servers: a map change is acknowledged by both within a couple of seconds. */
  @Test
  void everyClientAcknowledgesAMapChange() throws Exception {
    DirectoryServer a = server("dir-a", Duration.ofSeconds(10));
    DirectoryServer b = server("dir-b", Duration.ofSeconds(10));
    try (ShardmapClient x = client("app-x", target(a)); ShardmapClient y = client("app-y", target(b))) {
      assertEquals("app-x", x.clientId());
      Await.until(Duration.ofSeconds(20), "both clients listed", () -> acks().clients() == 2);
      long r = moveUsers();
      long t0 = System.nanoTime();
      Await.until(Duration.ofSeconds(20), "every client applied " + r, () -> acks().allApplied(r));
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertTrue(ms < 3000, "acknowledged within a couple of seconds, took " + ms + " ms");
      ClientAcks.Acks acks = acks();
      assertEquals(2, acks.clients());
      assertTrue(acks.minAppliedRevision() >= r);
      assertTrue(acks.behind(r).isEmpty());
      assertTrue(acks.maxStaleness().isEmpty(), "clients without maxStaleness: no bound");
      for (String id : List.of("dir-a", "dir-b")) {
        ClientPresence p = presence(id);
        assertEquals(1, p.getClientCount(), id);
        assertTrue(p.getMinAppliedRevision() >= r, id);
      }
      assertEquals("app-x", presence("dir-a").getLaggardClientId());
      assertEquals("app-y", presence("dir-b").getLaggardClientId());
      assertTrue(x.revision() >= r && y.revision() >= r);

      // Quiet again: the records must stay put. Each write is an etcd revision that the next heartbeat
      // brings to every client, whose next report carries it back; that must not rewrite a record.
      long modA = record("dir-a").modRevision();
      long modB = record("dir-b").modRevision();
      long newest = Math.max(modA, modB);
      Await.until(Duration.ofSeconds(20), "both clients reported a revision past the last presence write",
          () -> x.follower().reporter().lastAccepted() >= newest && y.follower().reporter().lastAccepted() >= newest);
      long reportsX = x.stats().reports();
      long reportsY = y.stats().reports();
      Await.until(Duration.ofSeconds(20), "two more heartbeat reports each (so the servers ran their publishers since)",
          () -> x.stats().reports() >= reportsX + 2 && y.stats().reports() >= reportsY + 2);
      assertEquals(modA, record("dir-a").modRevision(), "dir-a's record was not rewritten");
      assertEquals(modB, record("dir-b").modRevision(), "dir-b's record was not rewritten");
      assertEquals(0, x.stats().reportFailures() + y.stats().reportFailures());
    }
  }

  /** (b) A client that stops (closed) is no longer waited for once the server's timeout passes. */
  @Test
  void aClosedClientIsForgottenAfterTheTimeout() throws Exception {
    DirectoryServer a = server("dir-a", Duration.ofMillis(1500));
    try (ShardmapClient stays = client(null, target(a))) {
      ShardmapClient leaves = client(null, target(a));
      assertNotEquals(stays.clientId(), leaves.clientId(), "default ids are unique");
      assertTrue(leaves.clientId().matches("[A-Za-z0-9._-]+-" + ProcessHandle.current().pid() + "-[0-9a-f]+"),
          leaves.clientId());
      Await.until(Duration.ofSeconds(20), "both listed", () -> presence("dir-a").getClientCount() == 2);
      long t0 = System.nanoTime();
      leaves.close();
      Await.until(Duration.ofSeconds(20), "the closed client forgotten", () -> presence("dir-a").getClientCount() == 1);
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      // Its last report came at most one report interval (300 ms) before close.
      assertTrue(ms >= 1100, "not before the 1.5 s timeout, took " + ms + " ms");
      assertEquals(stays.clientId(), presence("dir-a").getLaggardClientId());
      long r = moveUsers();
      Await.until(Duration.ofSeconds(20), "the remaining client alone decides", () -> acks().allApplied(r));
    }
  }

  /** (c) A server that stops takes its record with it; its clients report to the next server. */
  @Test
  void aStoppedServersRecordVanishesAndItsClientsMoveOn() throws Exception {
    DirectoryServer a = server("dir-a", Duration.ofSeconds(10));
    DirectoryServer c = server("dir-c", Duration.ofSeconds(10));
    try (ShardmapClient x = client("app-x", target(c), target(a))) {
      Await.until(Duration.ofSeconds(20), "app-x listed by dir-c", () -> presence("dir-c") != null && presence("dir-c").getClientCount() == 1);
      assertEquals(0, presence("dir-a").getClientCount());
      closeLast.remove(c);
      c.close();
      assertNull(record("dir-c"), "close() revoked the lease: the record is gone at once");
      Await.until(Duration.ofSeconds(20), "app-x reports to dir-a after failing over", () -> presence("dir-a").getClientCount() == 1);
      assertEquals("app-x", presence("dir-a").getLaggardClientId());
      assertEquals(List.of("dir-a"), acks().servers().stream().map(ClientPresence::getServerId).toList());
    }
  }

  /** (e) A client that stops applying (its watch cut off) holds the minimum back, and is named. */
  @Test
  void aFrozenClientHoldsTheMinimumBack() throws Exception {
    DirectoryServer a = server("dir-a", Duration.ofSeconds(10));
    DirectoryServer b = server("dir-b", Duration.ofSeconds(10));
    try (WatchIdleTest.FreezableProxy proxy = new WatchIdleTest.FreezableProxy(a.port());
         ShardmapClient frozen = ShardmapClient.start(ClientOptions.builder()
             .targets("127.0.0.1:" + proxy.port()).keyspaces("users").clientId("app-frozen")
             .reportInterval(Duration.ofMillis(300)).watchIdleTimeout(Duration.ofSeconds(60))
             .maxStaleness(Duration.ofSeconds(30)).build());
         ShardmapClient live = client("app-live", target(b))) {
      long r0 = moveUsers();
      Await.until(Duration.ofSeconds(20), "both applied " + r0, () -> acks().clients() == 2 && acks().allApplied(r0));
      proxy.frozen = true;
      long r1 = moveUsers();
      Await.until(Duration.ofSeconds(20), "the live client applied " + r1, () -> presence("dir-b").getMinAppliedRevision() >= r1);
      ClientAcks.Acks acks = acks();
      assertFalse(acks.allApplied(r1), "the frozen client has not applied " + r1);
      assertTrue(acks.minAppliedRevision() >= r0 && acks.minAppliedRevision() < r1, acks.toString());
      assertEquals("app-frozen", acks.laggardClientId());
      assertEquals("dir-a", acks.laggardServerId());
      assertTrue(acks.behind(r1).orElseThrow().contains("app-frozen"), acks.behind(r1).orElseThrow());
      assertTrue(acks.maxStaleness().isEmpty(), "app-live has no staleness limit");
      assertTrue(frozen.revision() < r1, "it really did not apply it");

      proxy.frozen = false;
      Await.until(Duration.ofSeconds(20), "applied once it thaws", () -> acks().allApplied(r1));
      assertEquals(2, acks().clients(), "nobody was forgotten on the way");
    }
  }

  /** A server older than ReportApplied answers UNIMPLEMENTED: asked once, then left alone. */
  @Test
  void anOldServerIsAskedOnceThenLeftAlone() throws Exception {
    DirectoryServer a = server("dir-a", Duration.ofSeconds(10));
    AtomicInteger asked = new AtomicInteger();
    ManagedChannel toA = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    closeLast.add(toA::shutdownNow);
    Server old = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new OldServer(toA, asked)).build().start();
    closeLast.add(() -> old.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
    try (ShardmapClient x = client("app-x", "127.0.0.1:" + old.getPort())) {
      Await.until(Duration.ofSeconds(20), "asked once", () -> asked.get() == 1);
      for (int i = 0; i < 3; i++) {
        long r = moveUsers();
        Await.until(Duration.ofSeconds(20), "applied " + r, () -> x.revision() >= r);
      }
      // Three new revisions, and heartbeats: reports came due, but the old server is not asked again.
      long due = x.follower().reporter().due();
      Await.until(Duration.ofSeconds(20), "three more reports came due", () -> x.follower().reporter().due() >= due + 3);
      assertEquals(1, asked.get(), "not asked again");
      assertEquals(0, x.stats().reports());
      assertEquals(0, x.stats().reportFailures(), "UNIMPLEMENTED is no failure");
      assertTrue(acks().allApplied(Long.MAX_VALUE), "nobody listed: the old server publishes nothing");
    }
  }

  /** A directory server of before ReportApplied: the read RPCs the client uses, forwarded to a real one. */
  static final class OldServer extends ShardMapServiceGrpc.ShardMapServiceImplBase {
    final ShardMapServiceGrpc.ShardMapServiceBlockingStub real;
    final AtomicInteger asked;

    OldServer(ManagedChannel real, AtomicInteger asked) {
      this.real = ShardMapServiceGrpc.newBlockingStub(real);
      this.asked = asked;
    }

    @Override
    public void listShards(ListShardsRequest req, StreamObserver<ListShardsResponse> out) {
      forward(out, () -> real.listShards(req));
    }

    @Override
    public void getMap(GetMapRequest req, StreamObserver<GetMapResponse> out) {
      forward(out, () -> real.getMap(req));
    }

    @Override
    public void watch(WatchRequest req, StreamObserver<WatchResponse> out) {
      Thread t = new Thread(() -> {
        try {
          Iterator<WatchResponse> it = real.watch(req);
          while (it.hasNext()) {
            out.onNext(it.next());
          }
          out.onCompleted();
        } catch (RuntimeException e) {
          try {
            out.onError(e);
          } catch (RuntimeException ignored) {
            // already cancelled
          }
        }
      }, "old-server-watch");
      t.setDaemon(true);
      t.start();
    }

    @Override
    public void reportApplied(ReportAppliedRequest req, StreamObserver<ReportAppliedResponse> out) {
      asked.incrementAndGet();
      super.reportApplied(req, out); // UNIMPLEMENTED, as before the RPC existed
    }

    private static <T> void forward(StreamObserver<T> out, java.util.function.Supplier<T> call) {
      try {
        out.onNext(call.get());
        out.onCompleted();
      } catch (StatusRuntimeException e) {
        out.onError(e);
      }
    }
  }

  @Test
  void optionsAreValidatedEarly() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().clientId("has space"));
    assertTrue(e.getMessage().startsWith("clientId:"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().clientId(""));
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().clientId("x".repeat(129)));
    ClientOptions.builder().clientId("x".repeat(128));
    e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().reportInterval(Duration.ofSeconds(6)));
    assertTrue(e.getMessage().startsWith("reportInterval:") && e.getMessage().contains("timeout"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().reportInterval(Duration.ofMillis(50)));
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().reportInterval(null));
    ClientOptions o = ClientOptions.builder().targets("h:1").keyspaces("users").build();
    assertNull(o.clientId());
    assertEquals(Duration.ofSeconds(2), o.reportInterval());
  }
}
