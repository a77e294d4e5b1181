package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static io.shardmap.server.TestSupport.create;
import static io.shardmap.testkit.Await.until;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetHeatmapRequest;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.HeatmapRow;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Load across directory servers on real etcd: clients report to different servers, and every server's
 * GetHeatmap shows the whole fleet's load; a refused report records nothing (neither load nor presence); a
 * restarted server recovers the recent columns from etcd and continues its own; bad heatmap requests.
 */
@Tag("integration")
class LoadHeatmapTest {
  EtcdCluster etcd;
  String prefix;
  MetaStore store;

  @BeforeEach
  void setUp() {
    etcd = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    store = TestSupport.etcdClient(etcd.clientEndpoints());
  }

  @AfterEach
  void tearDown() {
    store.close();
  }

  private DirectoryServer start(String id) throws Exception {
    return DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId(id)
        .loadPublishInterval(Duration.ofMillis(200)).build());
  }

  private static RangeAssignment range(Long start, Long end, String shard) {
    KeyRange.Builder r = KeyRange.newBuilder();
    if (start != null) {
      r.setStart(Key.newBuilder().setIntKey(start));
    }
    if (end != null) {
      r.setEnd(Key.newBuilder().setIntKey(end));
    }
    return RangeAssignment.newBuilder().setRange(r).setShard(shard).build();
  }

  private static LoadBand band(Long start, Long end, long reads, long writes) {
    LoadBand.Builder b = LoadBand.newBuilder().setUnits(1).setReads(reads).setWrites(writes).setBusyMicros(10);
    if (start != null) {
      b.setStart(ByteString.copyFrom(Keys.encodeInt64(start)));
    }
    if (end != null) {
      b.setEnd(ByteString.copyFrom(Keys.encodeInt64(end)));
    }
    return b.build();
  }

  private static ReportAppliedRequest report(String client, long revision, LoadBand... bands) {
    long now = System.currentTimeMillis();
    return ReportAppliedRequest.newBuilder().setClientId(client).setAppliedRevision(revision)
        .addLoad(KeyspaceLoad.newBuilder().setKeyspace("orders").setStartUnixMs(now - 2000).setEndUnixMs(now)
            .addAllBands(List.of(bands))).build();
  }

  private static GetHeatmapResponse heatmap(TestSupport.Client c) {
    return FleetServiceGrpc.newBlockingStub(c.channel).withDeadlineAfter(10, TimeUnit.SECONDS)
        .getHeatmap(GetHeatmapRequest.newBuilder().setKeyspace("orders").setWindowSeconds(3600).setMaxRows(16)
            .build());
  }

  /** Reads and writes per row (summed over the columns): rows (-inf,0), [0,100), [100,inf). */
  private static List<Long> totals(GetHeatmapResponse r) {
    return r.getRowsList().stream().flatMap(row -> java.util.stream.Stream.of(sum(row.getReadsList()),
        sum(row.getWritesList()))).toList();
  }

  private static long sum(List<Long> v) {
    return v.stream().mapToLong(Long::longValue).sum();
  }

  private static boolean shows(TestSupport.Client c, List<Long> expected) {
    return totals(heatmap(c)).equals(expected);
  }

  @Test
  void everyServerShowsTheWholeFleetsLoadAndARestartedServerRecoversIt() throws Exception {
    DirectoryServer a = start("load-a");
    DirectoryServer b = start("load-b");
    DirectoryServer b2 = null;
    DirectoryServer c = null;
    try (TestSupport.Client ca = new TestSupport.Client(a.port());
         TestSupport.Client cb = new TestSupport.Client(b.port())) {
      ca.registerShards("s1", "s2");
      long rev = ca.admin().createKeyspace(create("orders", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
          .addRanges(range(null, 0L, "s1")).addRanges(range(0L, 100L, "s1")).addRanges(range(100L, null, "s2"))
          .build()).getRevision();
      assertTrue(b.awaitRevision(rev, Duration.ofSeconds(10)));

      ca.read().reportApplied(report("client-a", rev, band(0L, 100L, 30, 3), band(100L, null, 5, 0)));
      cb.read().reportApplied(report("client-b", rev, band(0L, 100L, 12, 0)));
      List<Long> both = List.of(0L, 0L, 42L, 3L, 5L, 0L);
      until(Duration.ofSeconds(10), "server a shows both servers' load", () -> shows(ca, both));
      until(Duration.ofSeconds(10), "server b shows both servers' load", () -> shows(cb, both));
      GetHeatmapResponse h = heatmap(cb);
      HeatmapRow row = h.getRows(1);
      assertEquals("s1", row.getShard());
      assertEquals(1, row.getUnits());
      assertTrue(h.getColumnMs(0) == 60_000 && h.getGeneratedUnixMs() > 0);
      String metrics = a.scrapeMetrics();
      assertTrue(metrics.lines().anyMatch(l -> l.startsWith("shardmap_load_calls_total{")
          && l.contains("keyspace=\"orders\"") && l.contains("shard=\"s1\"") && l.contains("kind=\"read\"")
          && l.endsWith(" 30.0")), metrics);
      assertTrue(metrics.contains("shardmap_load_reports_total{result=\"accepted\"} 1.0"), metrics);
      assertTrue(metrics.contains("shardmap_clients_reporting 1.0"), metrics);

      // A bad report records nothing: not its load, not its client.
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> ca.read().reportApplied(report("client-bad", rev,
          band(0L, 100L, 1000, 0), band(100L, null, -1, 0))), "load[0].bands[1].reads", ">= 0");
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> ca.read().reportApplied(report("client-bad", rev,
          band(100L, null, 1000, 0), band(0L, 100L, 1, 0))), "load[0].bands[1].start", "position order");
      assertTrue(a.scrapeMetrics().contains("shardmap_clients_reporting 1.0"), "client-bad not counted");
      assertTrue(a.scrapeMetrics().contains("shardmap_load_reports_total{result=\"refused\"} 2.0"));
      // A good report after it, through the other server, shows up everywhere; the bad one never does.
      cb.read().reportApplied(report("client-b", rev, band(100L, null, 1, 0)));
      List<Long> marked = List.of(0L, 0L, 42L, 3L, 6L, 0L);
      until(Duration.ofSeconds(10), "server a shows the marker", () -> shows(ca, marked));
      until(Duration.ofSeconds(10), "server b shows the marker", () -> shows(cb, marked));

      // Each server's part is in etcd under a lease.
      List<KeyValue> kvs = store.getPrefix(new CatalogPaths(prefix).loadPrefix()).get(5, TimeUnit.SECONDS).kvs();
      assertTrue(kvs.stream().allMatch(kv -> kv.lease() != 0), "every column under a lease");
      assertTrue(kvs.stream().anyMatch(kv -> kv.key().endsWith("/load-a"))
          && kvs.stream().anyMatch(kv -> kv.key().endsWith("/load-b")), kvs.toString());

      // Restart b with its id: it reads the recent columns, its own included, and continues its own part.
      b.close();
      b = null;
      b2 = start("load-b");
      try (TestSupport.Client cb2 = new TestSupport.Client(b2.port())) {
        assertEquals(marked, totals(heatmap(cb2)), "recovered from etcd before serving");
        cb2.read().reportApplied(report("client-b", rev, band(0L, 100L, 100, 0)));
        List<Long> more = List.of(0L, 0L, 142L, 3L, 6L, 0L);
        // Server a replaces b's part (12 + 1 + 100 republished), it does not add it again.
        until(Duration.ofSeconds(10), "server a shows the restarted server's part", () -> shows(ca, more));
        until(Duration.ofSeconds(10), "the restarted server shows it", () -> shows(cb2, more));
      }
      // A server that never saw a report shows the whole fleet as soon as it serves.
      c = start("load-c");
      try (TestSupport.Client cc = new TestSupport.Client(c.port())) {
        assertEquals(List.of(0L, 0L, 142L, 3L, 6L, 0L), totals(heatmap(cc)));
      }
    } finally {
      for (DirectoryServer s : new DirectoryServer[] {a, b, b2, c}) {
        if (s != null) {
          s.close();
        }
      }
    }
  }

  @Test
  void badHeatmapRequestsAreRefusedNamingTheField() throws Exception {
    try (DirectoryServer a = start("load-x"); TestSupport.Client ca = new TestSupport.Client(a.port())) {
      FleetServiceGrpc.FleetServiceBlockingStub fleet = FleetServiceGrpc.newBlockingStub(ca.channel)
          .withDeadlineAfter(10, TimeUnit.SECONDS);
      assertStatus(Status.Code.NOT_FOUND, () -> fleet.getHeatmap(GetHeatmapRequest.newBuilder()
          .setKeyspace("nope").build()), "no keyspace 'nope'");
      ca.registerShards("s1");
      ca.admin().createKeyspace(create("orders", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
          .addRanges(range(null, null, "s1")).build());
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> fleet.getHeatmap(GetHeatmapRequest.newBuilder()
          .setKeyspace("orders").setWindowSeconds(-1).build()), "window_seconds", "must be 1-2419200");
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> fleet.getHeatmap(GetHeatmapRequest.newBuilder()
          .setKeyspace("orders").setWindowSeconds(2419201).build()), "window_seconds");
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> fleet.getHeatmap(GetHeatmapRequest.newBuilder()
          .setKeyspace("orders").setMaxRows(4097).build()), "max_rows", "must be 1-4096");
      assertStatus(Status.Code.INVALID_ARGUMENT, () -> fleet.getHeatmap(GetHeatmapRequest.newBuilder()
          .setKeyspace("Bad Name").build()), "keyspace");
      // The defaults: an hour, 256 rows; no load yet: no columns, one row (the one unit) with no values.
      GetHeatmapResponse r = fleet.getHeatmap(GetHeatmapRequest.newBuilder().setKeyspace("orders").build());
      assertEquals(0, r.getColumnStartUnixMsCount());
      assertEquals(1, r.getRowsCount());
      assertEquals("s1", r.getRows(0).getShard());
    }
  }
}
