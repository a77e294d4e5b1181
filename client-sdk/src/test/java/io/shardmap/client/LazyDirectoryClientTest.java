package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.internal.LazyDirectory;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Directory keyspaces too big to hold whole, on real etcd and a real directory server: the client loads
 * their layout only, fetches entries on a miss, keeps them current from the watch, and fails rather than
 * guess when no server can answer a miss.
 */
@Tag("integration")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class LazyDirectoryClientTest {
  static final int CACHE = 16;

  EtcdCluster etcd;
  String prefix;
  DirectoryServer a;
  ManagedChannel channel;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  ShardMapServiceGrpc.ShardMapServiceBlockingStub read;

  @BeforeEach
  void start() throws Exception {
    etcd = EtcdCluster.shared();
    prefix = "/l" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    a = server(0);
    channel = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    admin = ShardMapAdminServiceGrpc.newBlockingStub(channel);
    read = ShardMapServiceGrpc.newBlockingStub(channel);
    for (String s : List.of("s1", "s2", "s3", "s4")) {
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
    }
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("devices", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_DIRECTORY)).setFallbackShard("s1").build());
    PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices");
    for (long k = 0; k < 40; k++) {
      // Key 5 sits on the fallback's shard: an entry that looks like a fallback answer.
      put.addEntries(entry(Key.newBuilder().setIntKey(k), k == 5 ? "s1" : k % 2 == 0 ? "s2" : "s3"));
    }
    admin.putDirectoryEntries(put.build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("tenants", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_DIRECTORY)).build());
    PutDirectoryEntriesRequest.Builder tenants = PutDirectoryEntriesRequest.newBuilder().setKeyspace("tenants");
    for (int i = 0; i < 30; i++) {
      tenants.addEntries(entry(Key.newBuilder().setStringKey("t" + i), "s2"));
    }
    admin.putDirectoryEntries(tenants.build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("users", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_RANGE)).addAllRangeShards(List.of("s1", "s2", "s3")).build());
  }

  @AfterEach
  void stop() {
    channel.shutdownNow();
    a.close();
  }

  private DirectoryServer server(int port) throws Exception {
    return DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix)
        .listen("127.0.0.1", port).build());
  }

  static KeyspaceSpec spec(String name, KeyType type, Strategy s) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(s).build();
  }

  static DirectoryEntry.Builder entry(Key.Builder key, String shard) {
    return DirectoryEntry.newBuilder().setKey(key).setShard(shard);
  }

  private ClientOptions.Builder options(String... targets) {
    return ClientOptions.builder().targets(targets).keyspaces("devices", "tenants", "users")
        .directoryCacheSize(CACHE).rpcTimeout(Duration.ofSeconds(2))
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200));
  }

  private io.shardmap.proto.v1.Route server(String ks, long key) {
    return read.lookup(LookupRequest.newBuilder().setKeyspace(ks).setKey(Key.newBuilder().setIntKey(key)).build())
        .getRoute();
  }

  private static void assertRoute(io.shardmap.proto.v1.Route expected, ShardRoute actual, String what) {
    assertEquals(expected.getShard() + "@" + expected.getEpoch(), actual.shard() + "@" + actual.epoch(), what);
  }

  @Test
  void bigDirectoriesAreLoadedWithoutEntriesAndRouteLikeTheServer() throws Exception {
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).build())) {
      KeyspaceMap devices = c.snapshot().core().keyspace("devices");
      assertFalse(devices.directory().entriesHeld(), "40 entries > cache of " + CACHE + ": lazy");
      assertEquals(0, devices.directory().size());
      assertEquals("s1", devices.directory().fallback().shard(), "the snapshot still shows the fallback");
      ShardmapException viaSnapshot = assertThrows(ShardmapException.class, () -> devices.route(3L));
      assertEquals(ErrorCode.FAILED_PRECONDITION, viaSnapshot.code());
      assertNotNull(c.follower().lazy("devices"));
      assertNull(c.follower().lazy("users"));

      for (int round = 0; round < 2; round++) {
        for (long k = 0; k < 60; k++) {
          assertRoute(server("devices", k), c.route("devices", k), "devices key " + k);
          assertTrue(c.follower().lazy("devices").size() <= CACHE, "cache size " + c.follower().lazy("devices").size());
        }
      }
      long missesBefore = c.stats().directoryCacheMisses();
      for (int i = 0; i < 100; i++) {
        assertEquals("s3", c.route("devices", 7).shard());
      }
      assertEquals(missesBefore + 1, c.stats().directoryCacheMisses(), "one miss, then hits");
      assertTrue(c.stats().directoryCacheHits() >= 99);

      assertEquals("s2", c.route("tenants", ShardKey.of("t3")).shard());
      ShardmapException none = assertThrows(ShardmapException.class, () -> c.route("tenants", ShardKey.of("nobody")));
      assertEquals(ErrorCode.NOT_FOUND, none.code());
      assertTrue(none.getMessage().contains("'nobody'") && none.getMessage().contains("'tenants'"),
          none.getMessage());
      // Other keyspaces are untouched by all this.
      assertEquals(server("users", 42).getShard(), c.route("users", 42).shard());
    }
  }

  @Test
  void cachedAnswersFollowTheWatch() throws Exception {
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).build())) {
      LazyDirectory cache = c.follower().lazy("devices");
      ShardRoute two = c.route("devices", 2);
      assertEquals("s2", two.shard());
      ShardRoute absent = c.route("devices", 1000);
      assertEquals("s1", absent.shard(), "no entry: the fallback");
      assertEquals("s1", c.route("devices", 1001).shard());
      long misses = c.stats().directoryCacheMisses();

      // Reassigned: the cached entry is replaced by the watch, not refetched.
      admin.putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices")
          .addEntries(entry(Key.newBuilder().setIntKey(2), "s4")).build());
      Await.until(Duration.ofSeconds(20), "key 2 moves to s4", () -> "s4".equals(c.route("devices", 2).shard()));
      assertRoute(server("devices", 2), c.route("devices", 2), "after reassign");
      long movedEpoch = c.route("devices", 2).epoch();
      assertTrue(movedEpoch > two.epoch());

      // Deleted: back to the fallback, at an epoch above the deleted entry's.
      admin.deleteDirectoryEntries(DeleteDirectoryEntriesRequest.newBuilder().setKeyspace("devices")
          .addKeys(Key.newBuilder().setIntKey(2)).build());
      Await.until(Duration.ofSeconds(20), "key 2 falls back", () -> "s1".equals(c.route("devices", 2).shard()));
      assertRoute(server("devices", 2), c.route("devices", 2), "after delete");
      assertTrue(c.route("devices", 2).epoch() > movedEpoch, "epochs never go down for a key");

      // A cached "no entry" gives way to a new entry.
      admin.putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices")
          .addEntries(entry(Key.newBuilder().setIntKey(1000), "s3")).build());
      Await.until(Duration.ofSeconds(20), "key 1000 gets its entry", () -> "s3".equals(c.route("devices", 1000).shard()));
      assertRoute(server("devices", 1000), c.route("devices", 1000), "after create");

      // A cached "no entry" follows the fallback when it moves.
      admin.setDirectoryFallback(SetDirectoryFallbackRequest.newBuilder().setKeyspace("devices").setShard("s4")
          .build());
      Await.until(Duration.ofSeconds(20), "key 1001 follows the fallback", () -> "s4".equals(c.route("devices", 1001).shard()));
      assertRoute(server("devices", 1001), c.route("devices", 1001), "after fallback move");
      assertRoute(server("devices", 2), c.route("devices", 2), "key 2 has no entry either");
      assertEquals("s4", c.snapshot().core().keyspace("devices").directory().fallback().shard());

      assertEquals(misses, c.stats().directoryCacheMisses(), "every update came through the watch");
      assertEquals(3, cache.size());
    }
  }

  @Test
  void aMissWithNoDirectoryReachableFailsNamingTheKeyWhileCachedKeysRoute() throws Exception {
    int dead;
    try (ServerSocket s = new ServerSocket(0)) {
      dead = s.getLocalPort();
    }
    ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port(), "127.0.0.1:" + dead)
        .rpcTimeout(Duration.ofMillis(800)).build());
    try {
      assertEquals("s3", c.route("devices", 3).shard());
      a.close();
      long t0 = System.nanoTime();
      ShardmapException e = assertThrows(ShardmapException.class, () -> c.route("devices", 4));
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertEquals(ErrorCode.UNAVAILABLE, e.code());
      assertTrue(e.getMessage().contains("key 4") && e.getMessage().contains("'devices'"), e.getMessage());
      assertTrue(tookMs < 3000, "bounded by the RPC timeout, took " + tookMs + " ms");
      assertEquals("s3", c.route("devices", 3).shard(), "cached keys keep routing from the last map");
      assertEquals(1, c.follower().lazy("devices").size(), "the failure was not cached");
    } finally {
      c.close();
      a = server(0);
    }
  }

  @Test
  void aDirectoryHeldWholeTurnsLazyWhenItGrowsPastTheCacheSize() throws Exception {
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("small", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_DIRECTORY)).setFallbackShard("s2").build());
    admin.putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("small")
        .addEntries(entry(Key.newBuilder().setIntKey(1), "s3")).build());
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).keyspaces("small").build())) {
      assertTrue(c.snapshot().core().keyspace("small").directory().entriesHeld(), "1 entry: held whole");
      assertEquals("s3", c.route("small", 1).shard());
      PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("small");
      for (long k = 100; k < 100 + CACHE; k++) {
        put.addEntries(entry(Key.newBuilder().setIntKey(k), "s4"));
      }
      admin.putDirectoryEntries(put.build());
      Await.until(Duration.ofSeconds(20), "small turns lazy", () -> !c.snapshot().core().keyspace("small").directory().entriesHeld());
      for (long k : new long[] {1, 2, 100, 100 + CACHE - 1, 5000}) {
        assertRoute(server("small", k), c.route("small", k), "small key " + k);
      }
      assertTrue(c.stats().directoryCacheMisses() >= 5);
    }
  }

  /**
   * Fetches racing watch changes of the same keys, for real: a cache half the size of the hot key set
   * keeps evicting and refetching while a writer keeps moving those keys. Every reader must see each
   * key's epoch never decrease, and once the writer stops the cache must agree with the server.
   */
  @Test
  void missesRacingChangesOfTheSameKeysNeverGoBackAndConverge() throws Exception {
    int keys = 2 * CACHE;
    try (ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + a.port()).build())) {
      AtomicBoolean writing = new AtomicBoolean(true);
      ConcurrentLinkedQueue<String> violations = new ConcurrentLinkedQueue<>();
      ExecutorService pool = Executors.newFixedThreadPool(4);
      List<Future<Long>> readers = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int seed = t;
        readers.add(pool.submit(() -> {
          Random rnd = new Random(seed);
          Map<Long, Long> lastEpoch = new HashMap<>();
          long lookups = 0;
          while (writing.get()) {
            long k = rnd.nextInt(keys);
            ShardRoute r = c.route("devices", k);
            Long prev = lastEpoch.put(k, r.epoch());
            if (prev != null && r.epoch() < prev) {
              violations.add("key " + k + ": epoch " + prev + " then " + r.epoch());
            }
            lookups++;
          }
          return lookups;
        }));
      }
      Random rnd = new Random(99);
      List<String> shards = List.of("s1", "s2", "s3", "s4");
      // The revision of the last map change. Not GetMap's revision: that also counts later writes of
      // the servers' client presence records, which change no map and never reach c.revision().
      long lastRevision = 0;
      for (int i = 0; i < 120; i++) {
        PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices");
        long k = rnd.nextInt(keys);
        if (i % 10 == 9) {
          DeleteDirectoryEntriesResponse d = admin.deleteDirectoryEntries(DeleteDirectoryEntriesRequest
              .newBuilder().setKeyspace("devices").addKeys(Key.newBuilder().setIntKey(k)).build());
          if (d.getDeleted() > 0) {
            lastRevision = d.getRevision();
          }
        } else {
          lastRevision = admin.putDirectoryEntries(put.addEntries(entry(Key.newBuilder().setIntKey(k),
              shards.get(rnd.nextInt(shards.size())))).build()).getRevision();
        }
      }
      writing.set(false);
      long lookups = 0;
      for (Future<Long> f : readers) {
        lookups += f.get(30, TimeUnit.SECONDS);
      }
      pool.shutdown();
      assertTrue(violations.isEmpty(), "epochs went back: " + violations);
      assertTrue(c.stats().directoryCacheMisses() > keys, "the cache kept missing: " + c.stats().directoryCacheMisses()
          + " misses in " + lookups + " lookups");
      long last = lastRevision;
      Await.until(Duration.ofSeconds(20), "the client reaches the last write", () -> c.revision() >= last);
      for (long k = 0; k < keys; k++) {
        assertRoute(server("devices", k), c.route("devices", k), "devices key " + k + " after the writes");
      }
    }
  }

  @Test
  void lookupRemoteAsksTheServerForAnyKeyspace() throws Exception {
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("other", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_HASH)).addAllHashBuckets(List.of("s1", "s2")).build());
    int dead;
    try (ServerSocket s = new ServerSocket(0)) {
      dead = s.getLocalPort();
    }
    // The first target is dead: every remote lookup fails over to the live one.
    ShardmapClient c = ShardmapClient.start(options("127.0.0.1:" + dead, "127.0.0.1:" + a.port()).build());
    try {
      admin.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users").setSplitKey(Key.newBuilder()
          .setIntKey(500)).build());
      ShardRoute r = c.lookupRemote("users", ShardKey.of(777));
      io.shardmap.proto.v1.Route s = server("users", 777);
      assertRoute(s, r, "range keyspace");
      assertEquals(KeyRange.fromProto(KeyType.KEY_TYPE_INT64, s.getRange(), "range"), r.range().core());
      assertEquals(500, io.shardmap.core.Keys.decodeInt64(r.range().core().start()), "the server's range, split");

      byte[] key = "k1".getBytes(StandardCharsets.UTF_8);
      assertEquals(read.lookup(LookupRequest.newBuilder().setKeyspace("other")
          .setKey(Key.newBuilder().setStringKey("k1")).build()).getRoute().getShard(),
          c.lookupRemote("other", ShardKey.of(key)).shard(), "a keyspace the client does not follow");

      // A lazily held directory: the answer also refreshes the cache.
      assertEquals("s2", c.route("tenants", ShardKey.of("t1")).shard());
      assertEquals("s2", c.lookupRemote("tenants", ShardKey.of("t1".getBytes(StandardCharsets.UTF_8))).shard());
      assertEquals("s3", c.lookupRemote("devices", ShardKey.of(3)).shard());
      assertNull(c.lookupRemote("devices", ShardKey.of(3)).range());

      ShardmapException missing = assertThrows(ShardmapException.class, () -> c.lookupRemote("ghost", ShardKey.of(1)));
      assertEquals(ErrorCode.NOT_FOUND, missing.code());
      ShardmapException badType = assertThrows(ShardmapException.class, () -> c.lookupRemote("users", ShardKey.of(key)));
      assertEquals(ErrorCode.INVALID_ARGUMENT, badType.code());
      // An integer for a lazily held BYTES directory is not a cache question: the server refuses it.
      badType = assertThrows(ShardmapException.class, () -> c.lookupRemote("tenants", ShardKey.of(5)));
      assertEquals(ErrorCode.INVALID_ARGUMENT, badType.code());

      a.close();
      long t0 = System.nanoTime();
      ShardmapException down = assertThrows(ShardmapException.class, () -> c.lookupRemote("users", ShardKey.of(1)));
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertEquals(ErrorCode.UNAVAILABLE, down.code());
      assertTrue(down.getMessage().contains("key 1") && down.getMessage().contains("'users'"), down.getMessage());
      assertTrue(tookMs < 4000, "bounded by the 2 s RPC timeout, took " + tookMs + " ms");
    } finally {
      c.close();
      a = server(0);
    }
  }

  @Test
  void directoryCacheSizeIsValidated() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().directoryCacheSize(0));
    assertTrue(e.getMessage().startsWith("directoryCacheSize:"), e.getMessage());
    assertEquals(ClientOptions.DEFAULT_DIRECTORY_CACHE_SIZE,
        ClientOptions.builder().targets("h:1").keyspaces("k").build().directoryCacheSize());
  }
}
