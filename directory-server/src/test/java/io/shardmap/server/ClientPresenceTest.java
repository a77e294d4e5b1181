package io.shardmap.server;

import io.shardmap.catalog.ClientAcks;
import static io.shardmap.server.TestSupport.create;
import static io.shardmap.testkit.Await.until;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.proto.v1.ClientPresence;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.ReassignBucketRequest;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.ReportAppliedResponse;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.WatchRequest;
import io.shardmap.proto.v1.WatchResponse;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Client presence on real etcd, at the RPC level (the SDK's side is in client-sdk's ClientAcksTest): the
 * record every server keeps under its lease, client timeouts, input validation, and what presence writes
 * do (and must not do) to the watch streams.
 */
@Tag("integration")
class ClientPresenceTest {
  EtcdCluster etcd;
  String prefix;
  CatalogPaths paths;
  MetaStore store;

  @BeforeEach
  void setUp() {
    etcd = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    paths = new CatalogPaths(prefix);
    store = TestSupport.etcdClient(etcd.clientEndpoints());
  }

  @AfterEach
  void tearDown() {
    store.close();
  }

  private KeyValue record(String serverId) throws Exception {
    List<KeyValue> kvs = store.get(paths.clients(serverId)).get(5, TimeUnit.SECONDS).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  private ClientPresence presence(String serverId) throws Exception {
    KeyValue kv = record(serverId);
    return kv == null ? null : ClientPresence.parseFrom(kv.value());
  }

  private static ReportAppliedRequest report(String id, long revision, long stalenessMs) {
    return ReportAppliedRequest.newBuilder().setClientId(id).setAppliedRevision(revision)
        .setMaxStalenessMs(stalenessMs).build();
  }

  @Test
  void everyServerPublishesUnderItsLeaseAndItsRecordGoesWithIt() throws Exception {
    DirectoryServer a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix)
        .serverId("replica-a").build());
    boolean aClosed = false;
    try (DirectoryServer b = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build())) {
      assertEquals("replica-a", a.serverId());
      assertTrue(b.serverId().matches("[A-Za-z0-9._-]+:" + b.port() + "-[0-9a-f]+"),
          "default id is host:port-random, got " + b.serverId());
      // Written before start() returns, with no clients yet.
      for (DirectoryServer s : List.of(a, b)) {
        KeyValue kv = record(s.serverId());
        assertTrue(kv != null, "record of " + s.serverId());
        assertNotEquals(0, kv.lease(), "under a lease");
        ClientPresence p = ClientPresence.parseFrom(kv.value());
        assertEquals(s.serverId(), p.getServerId());
        assertEquals(0, p.getClientCount());
        assertTrue(p.getPublishedUnixMs() > 0);
      }
      ClientAcks.Acks acks = ClientAcks.read(store, paths, Duration.ofSeconds(5));
      assertEquals(2, acks.servers().size());
      assertEquals(0, acks.clients());
      assertTrue(acks.allApplied(Long.MAX_VALUE), "nobody to wait for");

      try (TestSupport.Client c = new TestSupport.Client(a.port())) {
        ReportAppliedResponse r = c.read().reportApplied(report("app-1", a.snapshot().revision(), 30_000));
        assertEquals("replica-a", r.getServerId());
        assertEquals(10_000, r.getClientReportTimeoutMs(), "the default --client-report-timeout");
      }
      until(Duration.ofSeconds(5), "replica-a counts app-1",
          () -> get(() -> presence("replica-a").getClientCount() == 1));
      assertTrue(a.scrapeMetrics().contains("shardmap_clients_reporting 1.0"), a.scrapeMetrics());

      a.close();
      aClosed = true;
      // close() revokes the lease: the record is gone when close returns, not a TTL later.
      assertEquals(null, record("replica-a"));
      assertTrue(record(b.serverId()) != null, "the other server's record stays");
      assertEquals(List.of(b.serverId()), ClientAcks.read(store, paths, Duration.ofSeconds(5)).servers()
          .stream().map(ClientPresence::getServerId).toList());
    } finally {
      if (!aClosed) {
        a.close();
      }
    }
    assertTrue(store.getPrefix(paths.clientsPrefix()).get(5, TimeUnit.SECONDS).kvs().isEmpty());
  }

  @Test
  void aClientThatStopsReportingIsForgottenAfterTheTimeout() throws Exception {
    try (DirectoryServer a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix)
             .clientReportTimeout(Duration.ofMillis(800)).build());
         TestSupport.Client c = new TestSupport.Client(a.port())) {
      long rev = a.snapshot().revision();
      // "stays" reports every 100 ms; "leaves" once.
      ScheduledExecutorService heartbeat = Executors.newSingleThreadScheduledExecutor();
      heartbeat.scheduleWithFixedDelay(() -> c.read().reportApplied(report("stays", rev, 0)), 0, 100,
          TimeUnit.MILLISECONDS);
      try {
        long t0 = System.nanoTime();
        c.read().reportApplied(report("leaves", rev, 0));
        until(Duration.ofSeconds(5), "both counted",
            () -> get(() -> presence(a.serverId()).getClientCount() == 2));
        until(Duration.ofSeconds(5), "'leaves' forgotten",
            () -> get(() -> presence(a.serverId()).getClientCount() == 1));
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        assertTrue(ms >= 800, "forgotten after the 800 ms timeout, not before (" + ms + " ms)");
        assertEquals("stays", presence(a.serverId()).getLaggardClientId());
      } finally {
        heartbeat.shutdownNow();
        heartbeat.awaitTermination(5, TimeUnit.SECONDS);
      }
      until(Duration.ofSeconds(5), "nobody left once 'stays' stops too",
          () -> get(() -> presence(a.serverId()).getClientCount() == 0));
    }
  }

  @Test
  void badReportsAreRefusedNamingTheField() throws Exception {
    try (DirectoryServer a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build());
         TestSupport.Client c = new TestSupport.Client(a.port())) {
      TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT, () -> c.read().reportApplied(report("", 1, 0)),
          "client_id", "required", "1-128 characters");
      TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT, () -> c.read().reportApplied(report("a b", 1, 0)),
          "client_id", "[A-Za-z0-9._:-]", "'a b'");
      TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT,
          () -> c.read().reportApplied(report("x".repeat(129), 1, 0)), "client_id", "1-128 characters");
      TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT, () -> c.read().reportApplied(report("ok", -1, 0)),
          "applied_revision", ">= 0");
      TestSupport.assertStatus(Status.Code.INVALID_ARGUMENT, () -> c.read().reportApplied(report("ok", 1, -5)),
          "max_staleness_ms", ">= 0");
      c.read().reportApplied(report("x".repeat(128), 1, 0)); // the longest id is fine
      assertEquals(1, a.scrapeMetrics().lines()
          .filter(l -> l.startsWith("shardmap_rpc_results_total{method=\"ReportApplied\",status=\"INVALID_ARGUMENT\"} 5.0"))
          .count(), a.scrapeMetrics());
    }
  }

  /**
   * Presence writes are etcd revisions under the watched prefix that change no map: the server must not
   * send them to watch clients as (empty) change batches, nor keep them in the history, and a client
   * resuming from before them must be served from the history without a re-read.
   */
  @Test
  void presenceRevisionsReachWatchersOnlyAsHeartbeats() throws Exception {
    try (DirectoryServer a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix)
             .watchHistory(3).build());
         TestSupport.Client c = new TestSupport.Client(a.port())) {
      c.registerShards("s1", "s2");
      c.admin().createKeyspace(create("h", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_HASH)
          .addHashBuckets("s1").build());
      long before = c.read().getMap(io.shardmap.proto.v1.GetMapRequest.newBuilder().setKeyspace("h").build())
          .getRevision();
      WatchTest.Collector col = new WatchTest.Collector();
      io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
      ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder()
          .setAfterRevision(before).build(), col));
      // More presence rewrites than the history holds batches: one per new client.
      long lastPresence = 0;
      for (int i = 0; i < 6; i++) {
        c.read().reportApplied(report("c" + i, before, 0));
        int n = i + 1;
        until(Duration.ofSeconds(5), n + " clients published",
            () -> get(() -> presence(a.serverId()).getClientCount() == n));
        lastPresence = record(a.serverId()).modRevision();
      }
      long presenceRev = lastPresence;
      assertTrue(a.awaitRevision(presenceRev, Duration.ofSeconds(5)), "the server applied the presence revisions");
      long change = c.admin().reassignBucket(ReassignBucketRequest.newBuilder().setKeyspace("h").setBucket(0)
          .setShard("s2").build()).getRevision();
      // Everything before the change is a heartbeat; the change comes as its own batch.
      while (true) {
        Object o = col.next();
        assertTrue(o instanceof WatchResponse, "unexpected " + o);
        WatchResponse r = (WatchResponse) o;
        assertFalse(r.getResyncRequired());
        if (r.getProgress()) {
          assertEquals(0, r.getChangesCount());
          continue;
        }
        assertEquals(change, r.getRevision(), "the first batch is the map change, no empty presence batch");
        assertEquals(1, r.getChangesCount());
        break;
      }
      ctx.cancel(null);
      // Six presence revisions passed, but the history (3 batches) still reaches back: no resync.
      WatchResponse resumed = c.read().watch(WatchRequest.newBuilder().setAfterRevision(before).build()).next();
      assertFalse(resumed.getResyncRequired(), "presence revisions use no history");
      assertEquals(change, resumed.getRevision());
    }
  }

  interface Check<T> {
    T get() throws Exception;
  }

  static <T> T get(Check<T> c) {
    try {
      return c.get();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }
}
