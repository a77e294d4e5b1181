package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.client.internal.Counters.RetryCause;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * ShardmapData on real etcd, a real directory server and three real PostgreSQL servers: rows land where
 * the directory says for every strategy, pools follow registrations, fenced ranges are retried on the
 * new owner, replicas serve reads, and a connection lost mid-transaction is retried exactly once.
 */
@Tag("integration")
class ShardmapDataTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");

  PostgresFixture pg;
  String table;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  ShardMapServiceGrpc.ShardMapServiceBlockingStub read;
  ShardmapClient client;
  ShardmapData data;

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3).table("id bigint, skey text, v text")
      .extension();

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    table = f.table();
    admin = f.admin();
    read = f.read();
    createKeyspace("users", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE, b -> b.addAllRangeShards(SHARDS));
    createKeyspace("carts", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_CONSISTENT_HASH, b -> b.addAllRingShards(SHARDS));
    createKeyspace("sessions", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_HASH, b -> b.addAllHashBuckets(SHARDS));
    createKeyspace("tenants", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_DIRECTORY, b -> b.setFallbackShard("s3"));
    createKeyspace("profiles", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_GEOGRAPHIC, b -> b
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1"))
        .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2"))
        .addRegions(RegionAssignment.newBuilder().setRegion("ap").setShard("s3")));
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users", "carts", "sessions", "tenants", "profiles")
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).staleRouteTimeout(Duration.ofSeconds(3)).build());
  }

  @AfterEach
  void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
  }

  interface SpecCustomizer {
    void customize(CreateKeyspaceRequest.Builder b);
  }

  private void createKeyspace(String name, KeyType type, Strategy strategy, SpecCustomizer c) {
    CreateKeyspaceRequest.Builder b = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
        .setName(name).setKeyType(type).setStrategy(strategy)
        .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn(type == KeyType.KEY_TYPE_INT64 ? "id" : "skey")));
    c.customize(b);
    admin.createKeyspace(b.build());
  }

  /** Keys present in the table of each shard, as "id" or "skey" values. */
  private Map<String, List<String>> rowsByShard(String column) throws SQLException {
    Map<String, List<String>> out = new TreeMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      List<String> keys = new ArrayList<>();
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT " + column + " FROM " + table + " WHERE " + column
               + " IS NOT NULL ORDER BY 1")) {
        while (rs.next()) {
          keys.add(rs.getString(1));
        }
      }
      out.put(SHARDS.get(i), keys);
    }
    return out;
  }

  private String serverShard(String keyspace, Key key) {
    return read.lookup(LookupRequest.newBuilder().setKeyspace(keyspace).setKey(key).build()).getRoute().getShard();
  }

  private static int insertInt(Connection c, String table, long id, String v) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, ?)")) {
      ps.setLong(1, id);
      ps.setString(2, v);
      return ps.executeUpdate();
    }
  }

  private static int insertString(Connection c, String table, String key, String v) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (skey, v) VALUES (?, ?)")) {
      ps.setString(1, key);
      ps.setString(2, v);
      return ps.executeUpdate();
    }
  }

  @Test
  void rowsLandOnTheShardTheDirectoryNamesForEveryStrategy() throws Exception {
    admin.putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("tenants")
        .addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setStringKey("acme")).setShard("s1"))
        .addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setStringKey("globex")).setShard("s2"))
        .build());
    Await.until(Duration.ofSeconds(20), "entries reach the client", () -> "s2".equals(client.route("tenants", ShardKey.of("globex")).shard()));
    Random rnd = new Random(11);
    // INT64 keyspaces share the id column, so give each its own key set and check them separately.
    for (String ks : List.of("users", "carts")) {
      pg.shard(0).exec("TRUNCATE " + table);
      pg.shard(1).exec("TRUNCATE " + table);
      pg.shard(2).exec("TRUNCATE " + table);
      Map<String, Set<String>> expected = new TreeMap<>();
      for (int i = 0; i < 150; i++) {
        long k = rnd.nextLong();
        String v = ks + i;
        assertEquals(1, (int) data.inTransaction(ks, ShardKey.of(k), c -> insertInt(c, table, k, v)));
        expected.computeIfAbsent(serverShard(ks, Key.newBuilder().setIntKey(k).build()), s -> new TreeSet<>())
            .add(Long.toString(k));
      }
      assertEquals(3, expected.size(), ks + ": keys spread over all three shards");
      assertEquals(expected, asSets(rowsByShard("id")), ks);
    }
    Map<String, List<String>> keysets = new java.util.LinkedHashMap<>();
    keysets.put("sessions", List.of("sess-1", "sess-2", "sess-3", "sess-4", "sess-5", "sess-6", "sess-7", "sess-8"));
    keysets.put("tenants", List.of("acme", "globex", "initech", "umbrella"));
    keysets.put("profiles", List.of("eu", "us", "ap", "mars"));
    for (var e : keysets.entrySet()) {
      for (int i = 0; i < 3; i++) {
        pg.shard(i).exec("TRUNCATE " + table);
      }
      Map<String, Set<String>> expected = new TreeMap<>();
      for (String k : e.getValue()) {
        data.inTransaction(e.getKey(), ShardKey.of(k), c -> insertString(c, table, k, "x"));
        expected.computeIfAbsent(serverShard(e.getKey(), Key.newBuilder().setStringKey(k).build()),
            s -> new TreeSet<>()).add(k);
      }
      assertEquals(expected, asSets(rowsByShard("skey")), e.getKey());
    }
    // The last loop ran profiles: the directory named s1/s2/s3 for eu/us/ap, and "mars" is no region.
    assertTrue(rowsByShard("skey").get("s1").contains("eu"));
    // Reads see what the writes put there, through the same routing.
    assertEquals("x", data.read("profiles", ShardKey.of("us"), c -> queryOne(c, "SELECT v FROM " + table + " WHERE skey = 'us'")));
    assertTrue(client.counters().calls() >= 300 + 17);
  }

  private static Map<String, Set<String>> asSets(Map<String, List<String>> m) {
    Map<String, Set<String>> out = new TreeMap<>();
    m.forEach((k, v) -> {
      if (!v.isEmpty()) {
        out.put(k, new TreeSet<>(v));
      }
    });
    return out;
  }

  private static String queryOne(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      return rs.next() ? rs.getString(1) : null;
    }
  }

  @Test
  void poolsOpenAndCloseWithShardRegistrations() throws Exception {
    PgInstance p0 = pg.shard(0);
    String dbA = "a_" + table;
    String dbB = "b_" + table;
    p0.exec("CREATE DATABASE " + dbA);
    p0.exec("CREATE DATABASE " + dbB);
    try {
      Await.until(Duration.ofSeconds(20), "pools for the three shards", () -> data.stats().openShards().equals(Set.copyOf(SHARDS)));
      long opened = data.stats().poolsOpened();
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s4")
          .setPrimary(ShardmapFleet.endpoint(p0, dbA))).build());
      Await.until(Duration.ofSeconds(20), "a pool for the new shard", () -> data.stats().openShards().contains("s4"));
      assertEquals(opened + 1, data.stats().poolsOpened());
      assertEquals(dbA, currentDatabase("s4"));

      long closed = data.stats().poolsClosed();
      admin.updateShard(UpdateShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s4")
          .setPrimary(ShardmapFleet.endpoint(p0, dbB))).build());
      Await.until(Duration.ofSeconds(20), "the old pool closes when the endpoint changes", () -> data.stats().poolsClosed() == closed + 1);
      assertEquals(dbB, currentDatabase("s4"));

      // A state change alone keeps the pool (and its warm connections).
      long openedBefore = data.stats().poolsOpened();
      admin.updateShard(UpdateShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s4")
          .setPrimary(ShardmapFleet.endpoint(p0, dbB))
          .setState(ShardState.SHARD_STATE_DRAINING)).build());
      long rev = read.listShards(ListShardsRequest.getDefaultInstance()).getRevision();
      Await.until(Duration.ofSeconds(20), "the state change arrives", () -> client.revision() >= rev);
      assertEquals(openedBefore, data.stats().poolsOpened());

      admin.deregisterShard(DeregisterShardRequest.newBuilder().setName("s4").build());
      Await.until(Duration.ofSeconds(20), "the pool closes when the shard is deregistered",
          () -> !data.stats().openShards().contains("s4") && data.stats().poolsClosed() == closed + 2);
      ShardmapException gone = assertThrows(ShardmapException.class, () -> data.primary("s4"));
      assertEquals(ErrorCode.NOT_FOUND, gone.code());
    } finally {
      // Pools of s4 are closed by now; drop with FORCE in case a connection lingers.
      p0.exec("DROP DATABASE IF EXISTS " + dbA + " WITH (FORCE)");
      p0.exec("DROP DATABASE IF EXISTS " + dbB + " WITH (FORCE)");
    }
  }

  private String currentDatabase(String shard) throws SQLException {
    try (Connection c = data.primary(shard).getConnection()) {
      return queryOne(c, "SELECT current_database()");
    }
  }

  /**
   * The fence the migrator installs, reduced to what the SDK sees: writes to ids in [lo, hi) fail with
   * SQLSTATE SMF01 naming the fenced epoch.
   */
  private void fence(int shardIndex, ShardRoute route) throws SQLException {
    long lo = route.range().core().unboundedBelow() ? Long.MIN_VALUE : io.shardmap.core.Keys.decodeInt64(route.range().core().start());
    long hi = route.range().core().unboundedAbove() ? Long.MAX_VALUE : io.shardmap.core.Keys.decodeInt64(route.range().core().end());
    String msg = StaleRoute.message("users", route.epoch()).replace("'", "''");
    pg.shard(shardIndex).exec("CREATE TABLE IF NOT EXISTS fence_" + table + " (lo bigint, hi bigint, msg text)");
    pg.shard(shardIndex).exec("INSERT INTO fence_" + table + " VALUES (" + lo + ", " + hi + ", '" + msg + "')");
    pg.shard(shardIndex).exec("CREATE OR REPLACE FUNCTION fence_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$"
        + " DECLARE m text; BEGIN"
        + " SELECT msg INTO m FROM fence_" + table + " WHERE NEW.id >= lo AND NEW.id < hi;"
        + " IF FOUND THEN RAISE EXCEPTION USING ERRCODE = '" + StaleRoute.SQLSTATE + "', MESSAGE = m; END IF;"
        + " RETURN NEW; END $$");
    pg.shard(shardIndex).exec("DROP TRIGGER IF EXISTS fence ON " + table);
    pg.shard(shardIndex).exec("CREATE TRIGGER fence BEFORE INSERT OR UPDATE ON " + table
        + " FOR EACH ROW EXECUTE FUNCTION fence_" + table + "()");
  }

  private long count(int shardIndex, long id) throws SQLException {
    try (Connection c = pg.shard(shardIndex).connect()) {
      return Long.parseLong(queryOne(c, "SELECT count(*) FROM " + table + " WHERE id = " + id));
    }
  }

  private void reassignLater(ShardRoute route, String to, long delayMillis, List<CompletableFuture<?>> pending) {
    pending.add(CompletableFuture.runAsync(() -> {
      try {
        Thread.sleep(delayMillis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      admin.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
          .setRange(route.range().core().toProto(KeyType.KEY_TYPE_INT64)).setShard(to).setExpectedEpoch(route.epoch()).build());
    }));
  }

  /**
   * A fence older than the route, as a shard that got the key back shows it until the migrator lifts its
   * old fence: the trigger refuses with fenced_epoch below the route's epoch unless the transaction or
   * session declares this row's key at an epoch above it (the shape of the migrator's fence).
   */
  private void oldFence(int shardIndex, long fencedEpoch) throws SQLException {
    String msg = StaleRoute.message("users", "range [-inf, +inf)", fencedEpoch).replace("'", "''");
    pg.shard(shardIndex).exec("CREATE OR REPLACE FUNCTION oldfence_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$"
        + " BEGIN IF current_setting('" + StaleRoute.ROUTE_KEY + "', true) IS DISTINCT FROM NEW.id::text"
        + " OR current_setting('" + StaleRoute.ROUTE_KEYSPACE + "', true) IS DISTINCT FROM 'users'"
        + " OR NOT coalesce(current_setting('" + StaleRoute.ROUTE_EPOCH + "', true), '') ~ '^[0-9]+$'"
        + " OR current_setting('" + StaleRoute.ROUTE_EPOCH + "', true)::bigint <= " + fencedEpoch + " THEN"
        + " RAISE EXCEPTION USING ERRCODE = '" + StaleRoute.SQLSTATE + "', MESSAGE = '" + msg + "'; END IF;"
        + " RETURN NEW; END $$");
    pg.shard(shardIndex).exec("DROP TRIGGER IF EXISTS oldfence ON " + table);
    pg.shard(shardIndex).exec("CREATE TRIGGER oldfence BEFORE INSERT OR UPDATE ON " + table
        + " FOR EACH ROW EXECUTE FUNCTION oldfence_" + table + "()");
  }

  @Test
  void aFenceOlderThanTheRouteIsPassedByARerunThatDeclaresIt() throws Exception {
    long k = Long.MIN_VALUE + 20;
    ShardRoute r = client.route("users", k);
    assertEquals("s1", r.shard());
    oldFence(0, r.epoch() - 1);
    long before = client.counters().retries(RetryCause.OLD_FENCE);
    assertEquals(1, (int) data.inTransaction("users", ShardKey.of(k), c -> insertInt(c, table, k, "tx")));
    assertEquals(before + 1, client.counters().retries(RetryCause.OLD_FENCE));
    assertEquals(1, (int) data.withConnection("users", ShardKey.of(k + 1), Idempotence.IDEMPOTENT,
        c -> insertInt(c, table, k + 1, "auto")));
    assertEquals(1, count(0, k), "exactly once on the owner");
    assertEquals(1, count(0, k + 1), "exactly once on the owner");
    // Non-idempotent autocommit work is not rerun, and says why.
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> data.withConnection("users", ShardKey.of(k + 2), Idempotence.NOT_IDEMPOTENT, c -> insertInt(c, table, k + 2, "x")));
    assertEquals(ErrorCode.STALE_EPOCH, e.code());
    assertTrue(e.getMessage().contains("with a fence from before the key's move back to it (range [-inf, +inf) "
        + "of keyspace 'users': fenced_epoch=" + (r.epoch() - 1)), e.getMessage());
    assertEquals(0, count(0, k + 2));
    // No declaration outlives its call: a plain write on any pooled connection of s1 is refused.
    List<Connection> all = new ArrayList<>();
    try {
      for (int i = 0; i < 4; i++) {
        all.add(data.primary("s1").getConnection());
      }
      for (Connection c : all) {
        assertEquals("", String.valueOf(queryOne(c, "SELECT coalesce(current_setting('" + StaleRoute.ROUTE_KEY
            + "', true), '')")), "a pooled connection kept a declaration");
      }
    } finally {
      for (Connection c : all) {
        c.close();
      }
    }
    pg.shard(0).exec("DROP TRIGGER oldfence ON " + table);
  }

  @Test
  void aFencedRangeIsRetriedOnTheNewOwnerOnlyWhenTheWorkProvablyDidNotRun() throws Exception {
    // users is split evenly over s1, s2, s3; pick one key in each of the first two ranges.
    long k1 = Long.MIN_VALUE + 10;
    ShardRoute r1 = client.route("users", k1);
    assertEquals("s1", r1.shard());
    fence(0, r1);
    List<CompletableFuture<?>> pending = new ArrayList<>();
    reassignLater(r1, "s3", 300, pending);
    long retries = client.counters().retries(RetryCause.STALE_ROUTE);
    long t0 = System.nanoTime();
    // A transaction refused by the fence is rolled back by PostgreSQL, so the SDK reruns it on s3.
    assertEquals(1, (int) data.inTransaction("users", ShardKey.of(k1), c -> insertInt(c, table, k1, "moved")));
    long waitedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
    pending.forEach(CompletableFuture::join);
    assertTrue(waitedMs >= 250, "the call waited for the cutover, " + waitedMs + " ms");
    assertEquals(retries + 1, client.counters().retries(RetryCause.STALE_ROUTE));
    assertEquals(0, count(0, k1), "nothing on the fenced source");
    assertEquals(1, count(2, k1), "exactly once on the new owner");

    // Autocommit work that is not declared idempotent may have partly run: not retried, but the error
    // names the new owner, and the client's map already routes there.
    long k2 = 0;
    ShardRoute r2 = client.route("users", k2);
    assertEquals("s2", r2.shard());
    fence(1, r2);
    reassignLater(r2, "s3", 200, pending);
    ShardmapException stale = assertThrows(ShardmapException.class,
        () -> data.withConnection("users", ShardKey.of(k2), Idempotence.NOT_IDEMPOTENT, c -> insertInt(c, table, k2, "x")));
    assertEquals(ErrorCode.STALE_EPOCH, stale.code());
    assertTrue(stale.getMessage().contains("moved to s3"), stale.getMessage());
    assertTrue(stale.getCause() instanceof SQLException s && StaleRoute.isStaleRoute(s));
    pending.forEach(CompletableFuture::join);
    assertEquals("s3", client.route("users", k2).shard());
    assertEquals(0, count(1, k2) + count(2, k2));

    // The same work declared idempotent is rerun on the new owner.
    long k3 = 1;
    assertEquals("s3", client.route("users", k3).shard());
    assertEquals(1, (int) data.withConnection("users", ShardKey.of(k3), Idempotence.IDEMPOTENT, c -> insertInt(c, table, k3, "y")));
    assertEquals(1, count(2, k3));

    // A fence with no cutover behind it: after staleRouteTimeout the call fails, clearly, and did nothing.
    long k4 = Long.MAX_VALUE - 10;
    ShardRoute r4 = client.route("users", k4);
    pg.shard(2).exec("DROP TRIGGER IF EXISTS fence ON " + table);
    fence(2, r4);
    ShardmapException timeout = assertThrows(ShardmapException.class,
        () -> data.inTransaction("users", ShardKey.of(k4), c -> insertInt(c, table, k4, "z")));
    assertEquals(ErrorCode.STALE_EPOCH, timeout.code());
    assertTrue(timeout.getMessage().contains("no newer route appeared within 3000 ms"), timeout.getMessage());
    assertEquals(0, count(2, k4));
  }

  /**
   * The followed directory replica is cut off from the store, so the client's watch brings nothing; a
   * fenced call must still find the new owner by asking another replica, well within staleRouteTimeout.
   */
  @Test
  void aFencedCallFindsTheNewOwnerWhileTheWatchIsStalled() throws Exception {
    try (io.shardmap.store.InMemoryMetaStore root = new io.shardmap.store.InMemoryMetaStore();
         io.shardmap.store.InMemoryMetaStore storeA = root.newClient();
         io.shardmap.store.InMemoryMetaStore storeB = root.newClient()) {
      ServerOptions o = ServerOptions.loopbackForTests(List.of("http://127.0.0.1:1"), "/stall")
          .probeInterval(Duration.ofMillis(100)).watchHeartbeat(Duration.ofMillis(200)).build();
      try (DirectoryServer serverA = DirectoryServer.start(o, storeA);
           DirectoryServer serverB = DirectoryServer.start(o, storeB)) {
        ManagedChannel chB = NettyChannelBuilder.forAddress("127.0.0.1", serverB.port()).usePlaintext().build();
        try {
          var adminB = ShardMapAdminServiceGrpc.newBlockingStub(chB);
          for (int i = 0; i < SHARDS.size(); i++) {
            adminB.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder()
                .setName(SHARDS.get(i)).setPrimary(ShardmapFleet.endpoint(pg.shard(i)))).build());
          }
          adminB.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
              .setName("users").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE))
              .addAllRangeShards(SHARDS).build());
          try (ShardmapClient c2 = ShardmapClient.start(ClientOptions.builder()
                  .targets("127.0.0.1:" + serverA.port(), "127.0.0.1:" + serverB.port()).keyspaces("users")
                  .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).rpcTimeout(Duration.ofSeconds(2)).build());
               ShardmapData d2 = ShardmapData.open(c2, DataOptions.builder().user(pg.shard(0).user())
                   .password(pg.shard(0).password()).staleRouteTimeout(Duration.ofSeconds(3)).build())) {
            long k = Long.MIN_VALUE + 99;
            ShardRoute r = c2.route("users", k);
            assertEquals("s1", r.shard());
            fence(0, r);
            storeA.setUnavailable(true);
            ManagedChannel chA = NettyChannelBuilder.forAddress("127.0.0.1", serverA.port()).usePlaintext().build();
            try {
              var readA = ShardMapServiceGrpc.newBlockingStub(chA);
              Await.until(Duration.ofSeconds(20), "replica A notices it lost the store", () -> readA.lookup(LookupRequest.newBuilder()
                  .setKeyspace("users").setKey(Key.newBuilder().setIntKey(k)).build()).getFreshness().getEtcdQuorum()
                  == io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_UNREACHABLE);
            } finally {
              chA.shutdownNow();
            }
            adminB.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
                .setRange(r.range().core().toProto(KeyType.KEY_TYPE_INT64)).setShard("s3").setExpectedEpoch(r.epoch())
                .build());
            long t0 = System.nanoTime();
            assertEquals(1, (int) d2.inTransaction("users", ShardKey.of(k), c -> insertInt(c, table, k, "via-remote")));
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertTrue(ms < 2000, "found the new owner in " + ms + " ms, not at the 3 s timeout");
            assertEquals("s1", c2.route("users", k).shard(), "the watched map is still stalled");
            assertEquals(0, count(0, k));
            assertEquals(1, count(2, k));
            storeA.setUnavailable(false);
            Await.until(Duration.ofSeconds(20), "the watch catches up", () -> "s3".equals(c2.route("users", k).shard()));
          }
        } finally {
          chB.shutdownNow();
        }
      }
    }
  }

  @Test
  void readsSkipAReplicaThatIsNotInRecoveryOrUnreachable() throws Exception {
    // Reads on real streaming replicas, lagging and killed ones: ReplicaReadsTest (Patroni).
    PgInstance p1 = pg.shard(1);
    String replicaDb = "r_" + table;
    p1.exec("CREATE DATABASE " + replicaDb);
    try {
      PgInstance replica = new PgInstance(p1.host(), p1.port(), replicaDb, p1.user(), p1.password());
      replica.exec("CREATE TABLE " + table + " (id bigint, skey text, v text)");
      replica.exec("INSERT INTO " + table + " (skey, v) VALUES ('us', 'from-replica')");
      pg.shard(1).exec("INSERT INTO " + table + " (skey, v) VALUES ('us', 'from-primary')");
      String q = "SELECT v FROM " + table + " WHERE skey = 'us'";
      // A "replica" that is a database of a server not in recovery (misconfigured): never read.
      admin.updateShard(UpdateShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s2")
          .setPrimary(ShardmapFleet.endpoint(p1)).addReplicas(ShardmapFleet.endpoint(replica))).build());
      Await.until(Duration.ofSeconds(20), "the replica is in the map", () -> client.shard("s2").replicas().size() == 1);
      long fallbacks = data.stats().replicaFallbacks();
      for (int i = 0; i < 5; i++) {
        assertEquals("from-primary", data.read("profiles", ShardKey.of("us"), c -> queryOne(c, q)));
      }
      assertEquals(fallbacks + 5, data.stats().replicaFallbacks());
      assertEquals(DataStats.UNKNOWN_LAG, data.stats().replicaLags().get("s2/replica0"));
      assertEquals("from-primary", data.inTransaction("profiles", ShardKey.of("us"), c -> queryOne(c, q)));

      // A replica that cannot be reached: reads go to the primary, and the detour is counted.
      int deadPort;
      try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
        deadPort = s.getLocalPort();
      }
      admin.updateShard(UpdateShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s2")
          .setPrimary(ShardmapFleet.endpoint(p1)).addReplicas(Endpoint.newBuilder().setHost("127.0.0.1").setPort(deadPort)
              .setDatabase(replicaDb))).build());
      Await.until(Duration.ofSeconds(20), "the dead replica is in the map", () -> client.shard("s2").replicas().get(0).port() == deadPort);
      fallbacks = data.stats().replicaFallbacks();
      assertEquals("from-primary", data.read("profiles", ShardKey.of("us"), c -> queryOne(c, q)));
      assertEquals(fallbacks + 1, data.stats().replicaFallbacks());
    } finally {
      admin.updateShard(UpdateShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s2")
          .setPrimary(ShardmapFleet.endpoint(p1))).build());
      long rev = read.listShards(ListShardsRequest.getDefaultInstance()).getRevision();
      Await.until(Duration.ofSeconds(20), "replica removed", () -> client.revision() >= rev);
      p1.exec("DROP DATABASE IF EXISTS " + replicaDb + " WITH (FORCE)");
    }
  }

  @Test
  void aTransactionWhoseConnectionDiesBeforeCommitRunsAgainOnce() throws Exception {
    long k = 42;
    AtomicInteger runs = new AtomicInteger();
    long before = client.counters().retries(RetryCause.CONNECTION);
    int inserted = data.inTransaction("users", ShardKey.of(k), c -> {
      int n = insertInt(c, table, k, "v" + runs.incrementAndGet());
      if (runs.get() == 1) {
        // The server ends this session mid-transaction (as a restart or failover would).
        try (Statement s = c.createStatement()) {
          s.execute("SELECT pg_terminate_backend(pg_backend_pid())");
        }
      }
      return n;
    });
    assertEquals(1, inserted);
    assertEquals(2, runs.get());
    assertEquals(before + 1, client.counters().retries(RetryCause.CONNECTION));
    int owner = SHARDS.indexOf(client.route("users", k).shard());
    try (Connection c = pg.shard(owner).connect()) {
      assertEquals("1", queryOne(c, "SELECT count(*) FROM " + table + " WHERE id = " + k));
      assertEquals("v2", queryOne(c, "SELECT v FROM " + table + " WHERE id = " + k));
    }

    // The same loss in autocommit work that is not idempotent is reported, not retried.
    AtomicInteger autoRuns = new AtomicInteger();
    assertThrows(SQLException.class, () -> data.withConnection("users", ShardKey.of(k), Idempotence.NOT_IDEMPOTENT, c -> {
      autoRuns.incrementAndGet();
      try (Statement s = c.createStatement()) {
        return s.execute("SELECT pg_terminate_backend(pg_backend_pid())");
      }
    }));
    assertEquals(1, autoRuns.get());

    // A plain SQL error is the caller's: passed through unchanged, never retried.
    AtomicInteger badRuns = new AtomicInteger();
    SQLException bad = assertThrows(SQLException.class, () -> data.inTransaction("users", ShardKey.of(k), c -> {
      badRuns.incrementAndGet();
      return insertInt(c, "no_such_table_" + table, k, "x");
    }));
    assertEquals("42P01", bad.getSQLState());
    assertEquals(1, badRuns.get());
    assertFalse(StaleRoute.isStaleRoute(bad));
  }

  @Test
  void badOptionsAreRefusedNamingTheOption() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> DataOptions.builder().user("u").maxPoolSize(2).minIdle(3).build());
    assertTrue(e.getMessage().startsWith("minIdle:"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> DataOptions.builder().build());
    assertTrue(e.getMessage().startsWith("user:"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> DataOptions.builder().replicaConnectionTimeout(Duration.ofMillis(10)));
    assertTrue(e.getMessage().startsWith("replicaConnectionTimeout:"), e.getMessage());
    // An unknown keyspace is a routing error, before any connection is taken.
    ShardmapException nf = assertThrows(ShardmapException.class,
        () -> data.inTransaction("nope", ShardKey.of(1L), c -> 1));
    assertEquals(ErrorCode.NOT_FOUND, nf.code());
  }
}
