package io.shardmap.server;

import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.proto.v1.*;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The client watch stream: ordered changes after a revision, heartbeats, and resync when history is gone. */
@Tag("integration")
class WatchTest {
  static EtcdCluster etcd;
  static String prefix;
  static DirectoryServer server;
  static TestSupport.Client c;

  @BeforeAll
  static void start() throws Exception {
    etcd = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    server = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).watchHistory(5).build());
    c = new TestSupport.Client(server.port());
    c.registerShards("s1", "s2");
    c.admin().createKeyspace(create("w", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRangeShards("s1").build());
    c.admin().createKeyspace(create("other", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_HASH)
        .addHashBuckets("s1").build());
  }

  @AfterAll
  static void stop() {
    c.close();
    server.close();
  }

  /** Collects a watch stream's messages. */
  static final class Collector implements StreamObserver<WatchResponse> {
    final LinkedBlockingQueue<Object> q = new LinkedBlockingQueue<>();

    @Override
    public void onNext(WatchResponse r) {
      q.add(r);
    }

    @Override
    public void onError(Throwable t) {
      q.add(t);
    }

    @Override
    public void onCompleted() {
      q.add("completed");
    }

    Object next() throws InterruptedException {
      Object o = q.poll(10, TimeUnit.SECONDS);
      if (o == null) {
        throw new AssertionError("no watch message within 10 s");
      }
      return o;
    }

    /** The next message with changes, skipping heartbeats. */
    WatchResponse nextChange() throws InterruptedException {
      while (true) {
        Object o = next();
        assertTrue(o instanceof WatchResponse, "unexpected " + o);
        WatchResponse r = (WatchResponse) o;
        if (!r.getProgress()) {
          return r;
        }
      }
    }
  }

  @Test
  void followsChangesInOrderAndAppliesToTheSameMap() throws Exception {
    GetMapResponse map = c.read().getMap(GetMapRequest.newBuilder().setKeyspace("w").build());
    Collector col = new Collector();
    io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
    ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder().addKeyspaces("w")
        .setAfterRevision(map.getRevision()).build(), col));
    List<Long> revisions = new ArrayList<>();
    long lastRev = 0;
    for (int i = 1; i <= 3; i++) {
      lastRev = c.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("w")
          .setSplitKey(intKey(i * 10)).build()).getRevision();
      // A change in another keyspace must not reach this stream.
      toggleBucket();
    }
    // Rebuild the map from the GetMap snapshot plus the stream, with the same core code the SDK uses.
    DirectorySnapshot s = DirectorySnapshot.empty(0).apply(map.getRevision(), toChanges(map));
    while (s.revision() < lastRev) {
      WatchResponse r = col.nextChange();
      assertFalse(r.getResyncRequired());
      assertTrue(r.getRevision() > s.revision(), "strictly increasing revisions");
      for (MapChange ch : r.getChangesList()) {
        assertEquals("w", ch.getKeyspace());
      }
      revisions.add(r.getRevision());
      s = s.apply(r.getRevision(), r.getChangesList());
    }
    assertEquals(3, revisions.size());
    assertEquals(4, s.keyspace("w").ranges().size());
    assertEquals(server.snapshot().keyspace("w").ranges().routes(), s.keyspace("w").ranges().routes());
    // Idle streams get heartbeats that carry the current revision.
    WatchResponse hb;
    do {
      hb = (WatchResponse) col.next();
    } while (!hb.getProgress());
    assertTrue(hb.getRevision() >= lastRev);
    assertEquals(io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE, hb.getFreshness().getEtcdQuorum());
    assertTrue(com.google.protobuf.util.JsonFormat.printer().print(hb)
        .contains("\"etcdQuorum\": \"ETCD_QUORUM_REACHABLE\""), hb::toString);
    ctx.cancel(null);
  }

  @Test
  void aRevisionOlderThanTheHistoryAsksForAResync() throws Exception {
    long old = c.read().getMap(GetMapRequest.newBuilder().setKeyspace("w").build()).getRevision();
    for (int i = 0; i < 8; i++) {
      toggleBucket();
    }
    Iterator<WatchResponse> it = c.read().watch(WatchRequest.newBuilder().setAfterRevision(old).build());
    WatchResponse r = it.next();
    assertTrue(r.getResyncRequired());
    assertTrue(r.getRevision() >= old + 8);
    assertFalse(it.hasNext(), "the stream ends after resync_required");
    // From a current revision the same request streams normally.
    long now = c.read().getMap(GetMapRequest.newBuilder().setKeyspace("other").build()).getRevision();
    Collector col = new Collector();
    io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
    ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder()
        .setAfterRevision(now).build(), col));
    ReassignBucketResponse moved = toggleBucket();
    WatchResponse ch = col.nextChange();
    assertEquals(moved.getRevision(), ch.getRevision());
    assertEquals(moved.getBucket(), ch.getChanges(0).getHash().getBuckets(0));
    ctx.cancel(null);
  }

  /**
   * A revision etcd has not reached can never be served contiguously: before, the stream was accepted, its
   * heartbeats claimed that revision and every change up to it was silently skipped (a split at the next
   * revision never reached it). Now OUT_OF_RANGE, naming the field and etcd's revision.
   */
  @Test
  void aWatchFromTheFutureIsRefused() throws Exception {
    long now = c.read().getMap(GetMapRequest.newBuilder().setKeyspace("w").build()).getRevision();
    for (long future : new long[] {now + 1000, 9_000_000_000_000_000_000L}) {
      Iterator<WatchResponse> it = c.read().watch(WatchRequest.newBuilder().addKeyspaces("w")
          .setAfterRevision(future).build());
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, it::hasNext);
      assertEquals(Status.Code.OUT_OF_RANGE, e.getStatus().getCode(), e::toString);
      String d = e.getStatus().getDescription();
      assertTrue(d.startsWith("after_revision: " + future + " is past etcd's current revision "), d);
      long etcdRevision = Long.parseLong(d.substring(("after_revision: " + future + " is past etcd's current "
          + "revision ").length()).split(" ")[0]);
      assertTrue(etcdRevision >= now && etcdRevision < future, d);
    }
    assertTrue(server.scrapeMetrics().contains(
        "shardmap_rpc_results_total{method=\"Watch\",status=\"OUT_OF_RANGE\"} 2.0"));

    // The current revision still streams: the next split arrives.
    Collector col = new Collector();
    io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
    ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder().addKeyspaces("w")
        .setAfterRevision(server.snapshot().revision()).build(), col));
    long split = c.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("w")
        .setSplitKey(intKey(-1000)).build()).getRevision();
    assertEquals(split, col.nextChange().getRevision());
    ctx.cancel(null);
  }

  /**
   * A revision past this server's snapshot that etcd has reached is valid (another replica, further
   * along, served it): the stream is accepted and carries the changes after it. Revisions written outside
   * the server's prefix move etcd without moving the snapshot, which makes such a revision on demand.
   */
  @Test
  void aRevisionEtcdHasButThisServerHasNotIsAccepted() throws Exception {
    long ahead;
    try (MetaStore direct = TestSupport.etcdClient(etcd.clientEndpoints())) {
      long r = 0;
      for (int i = 0; i < 3; i++) {
        r = direct.commit(io.shardmap.store.Txn.builder().put(prefix + "-elsewhere/" + i, new byte[] {1}).build())
            .get(10, TimeUnit.SECONDS).revision();
      }
      ahead = r;
    }
    assertTrue(server.snapshot().revision() < ahead, "the writes outside the prefix did not move the snapshot");
    Collector col = new Collector();
    io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
    ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder().addKeyspaces("w")
        .setAfterRevision(ahead).build(), col));
    long split = c.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("w")
        .setSplitKey(intKey(-2000)).build()).getRevision();
    assertTrue(split > ahead);
    assertEquals(split, col.nextChange().getRevision());
    ctx.cancel(null);
  }

  /**
   * A batch that leaves a keyspace inconsistent makes the server re-read etcd rather than keep a map
   * it can no longer update (it may have missed a change); clients are told to re-read too. Here a hand
   * edit breaks the keyspace and a second hand edit mends it: the mended map is served again.
   */
  @Test
  void aChangeToAnInconsistentKeyspaceMakesTheServerReRead() throws Exception {
    c.admin().createKeyspace(create("edited", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRangeShards("s1").build());
    long split = c.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("edited")
        .setSplitKey(intKey(100)).build()).getRevision();
    awaitSnapshot(split);
    io.shardmap.catalog.CatalogPaths paths = new io.shardmap.catalog.CatalogPaths(prefix);
    try (io.shardmap.store.MetaStore etcdStore = TestSupport.etcdClient(etcd.clientEndpoints())) {
      // Drop the range at 100 without widening its predecessor: a gap from 100 on.
      long broke = etcdStore.commit(io.shardmap.store.Txn.builder()
          .delete(paths.range("edited", io.shardmap.core.Keys.encodeInt64(100))).build())
          .get(5, TimeUnit.SECONDS).revision();
      awaitSnapshot(broke);
      TestSupport.assertStatus(io.grpc.Status.Code.INTERNAL, () -> c.lookup("edited", 5), "inconsistent");

      Collector col = new Collector();
      io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
      ctx.run(() -> ShardMapServiceGrpc.newStub(c.channel).watch(WatchRequest.newBuilder()
          .setAfterRevision(broke).build(), col));
      // The mend: the first range covers everything again.
      RangeAssignment whole = RangeAssignment.newBuilder().setRange(KeyRange.getDefaultInstance())
          .setShard("s2").setEpoch(7).build();
      long mended = etcdStore.commit(io.shardmap.store.Txn.builder()
          .put(paths.range("edited", new byte[0]), whole.toByteArray()).build())
          .get(5, TimeUnit.SECONDS).revision();
      Await.until(Duration.ofSeconds(10), "the server re-reads the mended keyspace",
          () -> server.snapshot().keyspace("edited").broken() == null);
      assertEquals(null, server.snapshot().keyspace("edited").broken(), "the server re-read the keyspace");
      assertTrue(server.snapshot().revision() >= mended);
      assertEquals("s2", c.lookup("edited", 500).getRoute().getShard());
      assertEquals(7, c.lookup("edited", 5).getRoute().getEpoch());
      // The mend itself reaches the stream first; then, after the re-read, the order to re-read.
      WatchResponse r;
      do {
        r = (WatchResponse) col.next();
      } while (!r.getResyncRequired());
      ctx.cancel(null);
    }
  }

  private static void awaitSnapshot(long revision) throws InterruptedException {
    Await.until(Duration.ofSeconds(10), "the server reaching revision " + revision,
        () -> server.snapshot().revision() >= revision);
  }

  /** Moves bucket 0 of keyspace "other" to the shard that does not own it. */
  private static ReassignBucketResponse toggleBucket() {
    String owner = server.snapshot().keyspace("other").hash().bucket(0).shard();
    return c.admin().reassignBucket(ReassignBucketRequest.newBuilder().setKeyspace("other").setBucket(0)
        .setShard(owner.equals("s1") ? "s2" : "s1").build());
  }

  static List<MapChange> toChanges(GetMapResponse m) {
    List<MapChange> out = new ArrayList<>();
    for (Shard s : m.getShardsList()) {
      out.add(MapChange.newBuilder().setShard(s).build());
    }
    String ks = m.getSpec().getName();
    out.add(MapChange.newBuilder().setKeyspace(ks).setSpec(m.getSpec()).build());
    for (RangeAssignment r : m.getRangesList()) {
      out.add(MapChange.newBuilder().setKeyspace(ks).setRange(r).build());
    }
    return out;
  }
}
