package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.FleetServiceGrpc.FleetServiceBlockingStub;
import io.shardmap.proto.v1.GetSizesRequest;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.FreePorts;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Sizes (docs/sizes.md) on real etcd and three real PostgreSQL shards, with skewed data whose truth the test
 * knows: estimates within {@value #TOLERANCE} of it per unit and shard, exact counts equal to it, leftovers of
 * a move in the shard's totals only, a shard that is down reported missing while the others are sized, bad
 * input refused with nothing written, and the periodic sampler exporting the same metrics on every server.
 */
@Tag("integration")
@Timeout(300)
class SizesTest {
  /** The largest relative error an estimate may have on any unit or shard total here. */
  static final double TOLERANCE = 0.15;
  static final Duration WAIT = Duration.ofSeconds(60);

  static EtcdCluster etcd;
  static PostgresFixture pg;

  String prefix;
  String table;
  final List<DirectoryServer> servers = new ArrayList<>();

  @BeforeAll
  static void fixtures() {
    etcd = EtcdCluster.shared();
    pg = PostgresFixture.shared(3);
  }

  @BeforeEach
  void setUp() throws Exception {
    prefix = TestSupport.uniquePrefix();
    table = "sz_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, payload text NOT NULL)");
    }
  }

  @AfterEach
  void tearDown() throws Exception {
    for (DirectoryServer s : servers) {
      s.close();
    }
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("DROP TABLE IF EXISTS " + table);
    }
  }

  // ------------------------------------------------------------------ the cases

  @Test
  void aSkewedRangeKeyspaceIsEstimatedWithinToleranceAndCountedExactly() throws Exception {
    DirectoryServer a = start(Duration.ofDays(7));
    DirectoryServer b = start(Duration.ofDays(7));
    // s1: 100,000 rows in [0, 100000) and 5,000 in [200000, 300000): sampled (more rows than read whole).
    // s2: 1,000 in [100000, 200000). s3: 3,000 in [300000, +inf), and 2,000 of s2's range left over by a move.
    fill(0, 0, 100_000);
    fill(0, 200_000, 5_000);
    fill(1, 100_000, 1_000);
    fill(2, 300_000, 3_000);
    fill(2, 150_000, 2_000);
    analyze();
    try (TestSupport.Client c = new TestSupport.Client(a.port())) {
      c.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("ranged", KeyType.KEY_TYPE_INT64,
              Strategy.STRATEGY_RANGE))
          .addRanges(range(null, 0L, "s3"))
          .addRanges(range(0L, 100_000L, "s1"))
          .addRanges(range(100_000L, 200_000L, "s2"))
          .addRanges(range(200_000L, 300_000L, "s1"))
          .addRanges(range(300_000L, null, "s3")).build());
    }
    awaitKeyspace(a, "ranged");
    awaitKeyspace(b, "ranged");
    long[] truth = {0, 100_000, 1_000, 5_000, 3_000};
    String[] owner = {"s3", "s1", "s2", "s1", "s3"};
    Map<String, Long> shardTruth = Map.of("s1", 105_000L, "s2", 1_000L, "s3", 5_000L);

    KeyspaceSizes est = fleet(a).refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("ranged").build())
        .getSizes();
    assertFalse(est.getExact());
    assertEquals(a.snapshot().keyspace("ranged").layoutRevision(), est.getLayoutRevision());
    assertUnits(est, truth, owner, TOLERANCE);
    assertShards(est, shardTruth, TOLERANCE);
    assertBytesFollowRows(est);
    // Every server answers GetSizes from etcd alike.
    assertEquals(fleet(a).getSizes(GetSizesRequest.newBuilder().setKeyspace("ranged").build()).getSizes(),
        fleet(b).getSizes(GetSizesRequest.newBuilder().setKeyspace("ranged").build()).getSizes());

    KeyspaceSizes exact = fleet(b).refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("ranged")
        .setExact(true).build()).getSizes();
    assertTrue(exact.getExact());
    assertUnits(exact, truth, owner, 0);
    assertShards(exact, shardTruth, 0);
    // s3's leftovers: its total minus its units.
    assertEquals(2_000, shard(exact, "s3").getRows() - rowsOf(exact, "s3"));
    assertEquals(exact, fleet(a).getSizes(GetSizesRequest.newBuilder().setKeyspace("ranged").build()).getSizes(),
        "the exact count is the latest, on every server");
    // Both servers export it (the one that took it at once, the other from etcd at its next check).
    Await.until(WAIT, "the exact rows of s1 on both servers' metrics", () ->
        metric(a, "shardmap_shard_rows", "keyspace=\"ranged\",shard=\"s1\"") == 105_000
            && metric(b, "shardmap_shard_rows", "keyspace=\"ranged\",shard=\"s1\"") == 105_000);
    assertEquals(shard(exact, "s2").getBytes(), metric(a, "shardmap_shard_bytes", "keyspace=\"ranged\",shard=\"s2\""));
    assertTrue(metric(a, "shardmap_sizes_age_seconds", "keyspace=\"ranged\"") < 3600);
  }

  @Test
  void aSkewedHashKeyspaceIsEstimatedWithinToleranceAndCountedExactly() throws Exception {
    DirectoryServer a = start(Duration.ofDays(7));
    try (TestSupport.Client c = new TestSupport.Client(a.port())) {
      // 5 of 8 buckets on s1 (~100,000 of 160,000 rows: sampled), 2 on s2, 1 on s3.
      c.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("hashed", KeyType.KEY_TYPE_INT64,
              Strategy.STRATEGY_HASH))
          .addAllHashBuckets(List.of("s1", "s1", "s1", "s1", "s1", "s2", "s2", "s3")).build());
    }
    awaitKeyspace(a, "hashed");
    KeyspaceMap km = a.snapshot().keyspace("hashed");
    long[] truth = new long[8];
    Map<String, List<Long>> keys = new HashMap<>();
    for (long k = 1; k <= 160_000; k++) {
      Route r = km.route(k);
      truth[km.table().unitOf(k)]++;
      keys.computeIfAbsent(r.shard(), s -> new ArrayList<>()).add(k);
    }
    for (int i = 0; i < 3; i++) {
      insert(i, keys.getOrDefault("s" + (i + 1), List.of()));
    }
    analyze();
    String[] owner = {"s1", "s1", "s1", "s1", "s1", "s2", "s2", "s3"};
    Map<String, Long> shardTruth = new HashMap<>();
    for (Map.Entry<String, List<Long>> e : keys.entrySet()) {
      shardTruth.put(e.getKey(), (long) e.getValue().size());
    }
    assertTrue(shardTruth.get("s1") > 60_000, "s1 is sampled, not read whole");

    KeyspaceSizes est = fleet(a).refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("hashed").build())
        .getSizes();
    assertUnits(est, truth, owner, TOLERANCE);
    assertShards(est, shardTruth, TOLERANCE);
    assertBytesFollowRows(est);
    KeyspaceSizes exact = fleet(a).refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("hashed")
        .setExact(true).build()).getSizes();
    assertUnits(exact, truth, owner, 0);
    assertShards(exact, shardTruth, 0);
  }

  @Test
  void aShardThatIsDownIsReportedMissingOnceLoggedAndTheOthersAreSized() throws Exception {
    DirectoryServer a = start(Duration.ofDays(7));
    int closedPort = FreePorts.allocate();
    try (TestSupport.Client c = new TestSupport.Client(a.port())) {
      c.admin().registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s4")
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(closedPort).setDatabase("gone"))).build());
      c.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("partial", KeyType.KEY_TYPE_INT64,
              Strategy.STRATEGY_RANGE))
          .addRanges(range(null, 1_000L, "s1"))
          .addRanges(range(1_000L, 2_000L, "s4"))
          .addRanges(range(2_000L, null, "s2")).build());
    }
    fill(0, 0, 1_000);
    fill(1, 2_000, 500);
    awaitKeyspace(a, "partial");
    List<String> warnings = java.util.Collections.synchronizedList(new ArrayList<>());
    java.util.logging.Logger logger = java.util.logging.Logger.getLogger("io.shardmap.server.internal.SizeSampler");
    java.util.logging.Handler handler = new java.util.logging.Handler() {
      @Override
      public void publish(java.util.logging.LogRecord r) {
        if (r.getLevel().intValue() >= java.util.logging.Level.WARNING.intValue()) {
          warnings.add(r.getMessage());
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    logger.addHandler(handler);
    try {
      for (int i = 0; i < 2; i++) {
        KeyspaceSizes s = fleet(a).refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("partial")
            .setExact(i == 1).build()).getSizes();
        assertEquals(ShardSize.newBuilder().setShard("s4").setRows(-1).setBytes(-1).build(), shard(s, "s4"));
        assertEquals(List.of("s1", "s2"), s.getUnitsList().stream().map(UnitSize::getShard).toList(),
            "the missing shard's unit has no entry; the others do");
        assertEquals(List.of(1_000L, 500L), s.getUnitsList().stream().map(UnitSize::getRows).toList());
        assertEquals(1_000, shard(s, "s1").getRows());
      }
      List<String> aboutS4 = warnings.stream().filter(w -> w.contains("shard s4")).toList();
      assertEquals(1, aboutS4.size(), "logged once: " + warnings);
    } finally {
      logger.removeHandler(handler);
    }
    assertTrue(Double.isNaN(metric(a, "shardmap_shard_rows", "keyspace=\"partial\",shard=\"s4\"")));
  }

  @Test
  void badInputIsRefusedAndNothingIsWritten() throws Exception {
    DirectoryServer a = start(Duration.ofDays(7));
    try (TestSupport.Client c = new TestSupport.Client(a.port())) {
      c.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("bare")
          .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addRangeShards("s1").build());
    }
    awaitKeyspace(a, "bare");
    FleetServiceBlockingStub f = fleet(a);
    TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT,
        () -> f.getSizes(GetSizesRequest.newBuilder().build()), "keyspace", "required");
    TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT,
        () -> f.refreshSizes(RefreshSizesRequest.newBuilder().build()), "keyspace", "required");
    TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT,
        () -> f.refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("No Such!").build()), "keyspace");
    TestSupport.assertStatus(Status.Code.NOT_FOUND,
        () -> f.refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("nosuch").setExact(true).build()),
        "nosuch");
    TestSupport.assertStatus(Status.Code.NOT_FOUND,
        () -> f.getSizes(GetSizesRequest.newBuilder().setKeyspace("nosuch").build()), "nosuch");
    TestSupport.assertStatus(Status.Code.FAILED_PRECONDITION,
        () -> f.refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("bare").build()), "bare",
        "declare tables with");
    TestSupport.assertStatus(Status.Code.FAILED_PRECONDITION,
        () -> f.getSizes(GetSizesRequest.newBuilder().setKeyspace("bare").build()), "declare tables with");
    try (MetaStore store = TestSupport.etcdClient(etcd.clientEndpoints())) {
      assertEquals(List.of(), store.getPrefix(prefix + "/sizes/").get(5, TimeUnit.SECONDS).kvs(), "nothing written");
    }
  }

  @Test
  void thePeriodicSamplerTakesSizesEveryIntervalAndEveryServerExportsThem() throws Exception {
    DirectoryServer a = start(Duration.ofSeconds(1));
    DirectoryServer b = start(Duration.ofSeconds(1));
    fill(0, 0, 2_000);
    analyze();
    try (TestSupport.Client c = new TestSupport.Client(a.port())) {
      c.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("periodic", KeyType.KEY_TYPE_INT64,
          Strategy.STRATEGY_RANGE)).addRangeShards("s1").build());
    }
    GetSizesRequest get = GetSizesRequest.newBuilder().setKeyspace("periodic").build();
    Await.until(WAIT, "sizes taken by the sampler", () -> fleet(b).getSizes(get).getSizes().getTakenUnixMs() > 0);
    KeyspaceSizes first = fleet(b).getSizes(get).getSizes();
    assertEquals(2_000, first.getUnits(0).getRows(), "a table this small is read whole");
    Await.until(WAIT, "taken again an interval later", () ->
        fleet(a).getSizes(get).getSizes().getTakenUnixMs() > first.getTakenUnixMs());
    Await.until(WAIT, "both servers export them", () ->
        metric(a, "shardmap_shard_rows", "keyspace=\"periodic\",shard=\"s1\"") == 2_000
            && metric(b, "shardmap_shard_rows", "keyspace=\"periodic\",shard=\"s1\"") == 2_000);
  }

  // ------------------------------------------------------------------ helpers

  DirectoryServer start(Duration sizeInterval) throws Exception {
    PgInstance p0 = pg.shard(0);
    ServerOptions o = TestSupport.options(etcd.clientEndpoints(), prefix).resolver(p0.user(), p0.password())
        .sizeInterval(sizeInterval).build();
    DirectoryServer s = DirectoryServer.start(o);
    servers.add(s);
    if (servers.size() == 1) {
      try (TestSupport.Client c = new TestSupport.Client(s.port())) {
        for (int i = 0; i < 3; i++) {
          PgInstance shard = pg.shard(i);
          c.admin().registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s" + (i + 1))
              .setPrimary(Endpoint.newBuilder().setHost(shard.host()).setPort(shard.port())
                  .setDatabase(shard.database()))).build());
        }
      }
    }
    return s;
  }

  static FleetServiceBlockingStub fleet(DirectoryServer s) {
    io.grpc.ManagedChannel ch = io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
        .forAddress("127.0.0.1", s.port()).usePlaintext().maxInboundMessageSize(64 << 20).build();
    CHANNELS.add(ch);
    return FleetServiceGrpc.newBlockingStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES);
  }

  static final List<io.grpc.ManagedChannel> CHANNELS = java.util.Collections.synchronizedList(new ArrayList<>());

  @AfterEach
  void closeChannels() {
    synchronized (CHANNELS) {
      CHANNELS.forEach(io.grpc.ManagedChannel::shutdownNow);
      CHANNELS.clear();
    }
  }

  KeyspaceSpec spec(String name, KeyType type, Strategy strategy) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(strategy)
        .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")).build();
  }

  static RangeAssignment range(Long start, Long end, String shard) {
    KeyRange.Builder r = KeyRange.newBuilder();
    if (start != null) {
      r.setStart(TestSupport.intKey(start));
    }
    if (end != null) {
      r.setEnd(TestSupport.intKey(end));
    }
    return RangeAssignment.newBuilder().setRange(r).setShard(shard).build();
  }

  /** Rows {@code from .. from + n - 1} on shard {@code i}, each with a 60-character payload. */
  void fill(int i, long from, long n) throws Exception {
    pg.shard(i).exec("INSERT INTO " + table + " SELECT g, repeat('x', 60) FROM generate_series(" + from + ", "
        + (from + n - 1) + ") g");
  }

  void insert(int i, List<Long> keys) throws Exception {
    try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("INSERT INTO " + table
        + " SELECT k, repeat('x', 60) FROM unnest(?::bigint[]) k")) {
      Array arr = c.createArrayOf("bigint", keys.toArray());
      ps.setArray(1, arr);
      ps.executeUpdate();
    }
  }

  /** What autovacuum would do in time: the statistics the sampler's rate is chosen by. */
  void analyze() throws Exception {
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("ANALYZE " + table);
    }
  }

  static void awaitKeyspace(DirectoryServer s, String name) throws Exception {
    Await.until(WAIT, "keyspace " + name + " on the server", () -> s.snapshot().keyspace(name) != null
        && s.snapshot().keyspace(name).hasLayout());
  }

  /** Every unit's one entry: its owner's, with rows within {@code tolerance} of the truth. */
  static void assertUnits(KeyspaceSizes s, long[] truth, String[] owner, double tolerance) {
    assertEquals(truth.length, s.getUnitsCount(), () -> "units of " + s);
    StringBuilder report = new StringBuilder(s.getKeyspace() + (s.getExact() ? " exact:" : " estimate:"));
    for (int u = 0; u < truth.length; u++) {
      long r = s.getUnits(u).getRows();
      report.append(String.format(java.util.Locale.ROOT, " unit %d %d/%d (%+.1f%%)", u, r, truth[u],
          truth[u] == 0 ? 0.0 : 100.0 * (r - truth[u]) / truth[u]));
    }
    System.out.println(report); // the accuracy docs/sizes.md quotes
    for (int u = 0; u < truth.length; u++) {
      UnitSize us = s.getUnits(u);
      assertEquals(owner[u], us.getShard(), "owner of unit " + u);
      assertWithin("rows of unit " + u + " (" + Keys.hex(us.getStart().toByteArray()) + ")", truth[u],
          us.getRows(), tolerance);
    }
  }

  static void assertShards(KeyspaceSizes s, Map<String, Long> truth, double tolerance) {
    for (Map.Entry<String, Long> e : truth.entrySet()) {
      assertWithin("rows of shard " + e.getKey(), e.getValue(), shard(s, e.getKey()).getRows(), tolerance);
    }
  }

  static void assertWithin(String what, long truth, long actual, double tolerance) {
    double bound = truth * tolerance;
    assertTrue(Math.abs(actual - truth) <= bound, what + ": " + actual + ", truth " + truth + " (tolerance "
        + (tolerance * 100) + "%)");
  }

  /** A unit's bytes are its rows times its shard's bytes per row; a shard's units' bytes are at most its bytes. */
  static void assertBytesFollowRows(KeyspaceSizes s) {
    for (UnitSize u : s.getUnitsList()) {
      ShardSize sh = shard(s, u.getShard());
      double perRow = (double) sh.getBytes() / sh.getRows();
      assertEquals(u.getRows() * perRow, u.getBytes(), Math.max(1, u.getBytes() * 1e-6), "bytes of " + u);
      assertTrue(perRow > 60, "a row of a 60-character payload takes more than 60 bytes: " + perRow);
    }
  }

  static ShardSize shard(KeyspaceSizes s, String name) {
    return s.getShardsList().stream().filter(x -> x.getShard().equals(name)).findFirst()
        .orElseThrow(() -> new AssertionError("no shard " + name + " in " + s.getShardsList()));
  }

  static long rowsOf(KeyspaceSizes s, String shard) {
    return s.getUnitsList().stream().filter(u -> u.getShard().equals(shard)).mapToLong(UnitSize::getRows).sum();
  }

  static double metric(DirectoryServer s, String name, String labels) {
    double sum = 0;
    for (String line : s.scrapeMetrics().split("\n")) {
      if (line.startsWith("#")) {
        continue;
      }
      int space = line.lastIndexOf(' ');
      String key = line.substring(0, space);
      String bare = key.contains("{") ? key.substring(0, key.indexOf('{')) : key;
      if (bare.equals(name) && key.contains(labels)) {
        sum += Double.parseDouble(line.substring(space + 1));
      }
    }
    return sum;
  }
}
