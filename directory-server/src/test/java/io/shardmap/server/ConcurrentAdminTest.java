package io.shardmap.server;

import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static io.shardmap.server.TestSupport.strKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.*;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Admins writing concurrently through two replicas: no update is lost, no invariant breaks, and both
 * replicas converge on the same revision and the same map.
 */
@Tag("integration")
class ConcurrentAdminTest {
  static DirectoryServer a;
  static DirectoryServer b;
  static TestSupport.Client ca;
  static TestSupport.Client cb;

  @BeforeAll
  static void start() throws Exception {
    EtcdCluster etcd = EtcdCluster.shared();
    String prefix = TestSupport.uniquePrefix();
    a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build());
    b = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build());
    ca = new TestSupport.Client(a.port());
    cb = new TestSupport.Client(b.port());
    ca.registerShards("s1", "s2", "s3");
  }

  @AfterAll
  static void stop() {
    ca.close();
    cb.close();
    a.close();
    b.close();
  }

  private TestSupport.Client via(int i) {
    return i % 2 == 0 ? ca : cb;
  }

  @Test
  void concurrentSplitsOfOneRangeAllLand() throws Exception {
    createOnBoth(create("splits", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRangeShards("s1").build());
    int threads = 8;
    int perThread = 8;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    CyclicBarrier go = new CyclicBarrier(threads);
    List<Future<?>> fs = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int tt = t;
      fs.add(pool.submit(() -> {
        go.await();
        for (int i = 0; i < perThread; i++) {
          // Every split point lands inside the same few ranges, so splits keep conflicting.
          via(tt).admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("splits")
              .setSplitKey(intKey(1000L * (i * threads + tt + 1))).build());
        }
        return null;
      }));
    }
    for (Future<?> f : fs) {
      f.get(120, TimeUnit.SECONDS);
    }
    pool.shutdown();
    // Splits through b answer once b has them; a may still be a few revisions behind.
    awaitBoth(Math.max(a.snapshot().revision(), b.snapshot().revision()));
    GetMapResponse map = ca.read().getMap(GetMapRequest.newBuilder().setKeyspace("splits").build());
    assertEquals(threads * perThread + 1, map.getRangesCount(), "every split landed once");
    RangeTable table = toTable(map);
    for (int k = 1; k <= threads * perThread; k++) {
      assertEquals(1000L * k, decode(table.get(k)));
    }
    assertConverged("splits");
  }

  private static long decode(Route r) {
    return io.shardmap.core.Keys.decodeInt64(r.range().start());
  }

  @Test
  void racingReassignsWithExpectedEpochSerialize() throws Exception {
    createOnBoth(create("race", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRangeShards("s1").build());
    KeyRange whole = KeyRange.getDefaultInstance();
    AtomicInteger wins = new AtomicInteger();
    AtomicInteger stale = new AtomicInteger();
    int threads = 6;
    int rounds = 10;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    CyclicBarrier go = new CyclicBarrier(threads);
    List<Future<?>> fs = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int tt = t;
      fs.add(pool.submit(() -> {
        go.await();
        for (int i = 0; i < rounds; i++) {
          TestSupport.Client c = via(tt + i);
          LookupResponse cur = c.lookup("race", 0);
          String target = cur.getRoute().getShard().equals("s1") ? "s2" : "s1";
          try {
            c.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("race").setRange(whole)
                .setShard(target).setExpectedEpoch(cur.getRoute().getEpoch()).build());
            wins.incrementAndGet();
          } catch (StatusRuntimeException e) {
            Status.Code code = e.getStatus().getCode();
            assertTrue(code == Status.Code.FAILED_PRECONDITION, "unexpected " + e.getStatus());
            stale.incrementAndGet();
          }
        }
        return null;
      }));
    }
    for (Future<?> f : fs) {
      f.get(120, TimeUnit.SECONDS);
    }
    pool.shutdown();
    assertEquals(threads * rounds, wins.get() + stale.get());
    LookupResponse end = ca.lookup("race", 0);
    // Each successful reassign raised the epoch by exactly one: no success was lost or doubled.
    assertEquals(1 + wins.get(), end.getRoute().getEpoch(), "wins=" + wins + " stale=" + stale);
    assertConverged("race");
  }

  @Test
  void concurrentDirectoryWritersLoseNothing() throws Exception {
    createOnBoth(create("accounts", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_DIRECTORY)
        .setFallbackShard("s3").build());
    int threads = 6;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    Set<String> written = ConcurrentHashMap.newKeySet();
    List<Future<?>> fs = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int tt = t;
      fs.add(pool.submit(() -> {
        for (int i = 0; i < 10; i++) {
          PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("accounts");
          for (int j = 0; j < 5; j++) {
            String key = "t" + tt + "-" + i + "-" + j;
            put.addEntries(DirectoryEntry.newBuilder().setKey(strKey(key)).setShard(j % 2 == 0 ? "s1" : "s2"));
            written.add(key);
          }
          // A shared key too: everyone moves it, each move must bump its epoch.
          put.addEntries(DirectoryEntry.newBuilder().setKey(strKey("hot")).setShard(tt % 2 == 0 ? "s1" : "s2"));
          via(tt).admin().putDirectoryEntries(put.build());
        }
        return null;
      }));
    }
    for (Future<?> f : fs) {
      f.get(120, TimeUnit.SECONDS);
    }
    pool.shutdown();
    // Writes went through both replicas; an answer means the replica that took it has applied it, not the
    // other one. Read once both have reached the newest revision either has (a read from B right after A
    // acknowledged its last write missed it on a loaded machine).
    long target = Math.max(a.snapshot().revision(), b.snapshot().revision());
    assertTrue(a.awaitRevision(target, Duration.ofSeconds(10)) && b.awaitRevision(target, Duration.ofSeconds(10)));
    Set<String> found = new HashSet<>();
    String token = "";
    do {
      GetMapResponse page = cb.read().getMap(GetMapRequest.newBuilder().setKeyspace("accounts")
          .setPageToken(token).setPageSize(1000).build());
      page.getEntriesList().forEach(e -> found.add(e.getKey().getStringKey()));
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    found.remove("hot");
    assertEquals(written, found);
    assertConverged("accounts");
  }

  @Test
  void shardCannotBeDeregisteredWhileAConcurrentWriteMakesItAnOwner() throws Exception {
    // Repeatedly race "make s9 an owner" against "deregister s9": afterwards s9 either owns data and is
    // registered, or owns nothing; never an owner that is not registered.
    createOnBoth(create("owners", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRangeShards("s1").build());
    ExecutorService pool = Executors.newFixedThreadPool(2);
    for (int round = 0; round < 15; round++) {
      long registeredAt = ca.admin().registerShard(RegisterShardRequest.newBuilder()
          .setShard(TestSupport.shard("s9", 6009)).build()).getRevision();
      // The race starts once both replicas know s9; before that B would rightly answer NOT_FOUND.
      assertTrue(b.awaitRevision(registeredAt, Duration.ofSeconds(10)));
      CyclicBarrier go = new CyclicBarrier(2);
      Future<?> assign = pool.submit(() -> {
        go.await();
        try {
          ca.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("owners")
              .setRange(KeyRange.getDefaultInstance()).setShard("s9").build());
        } catch (StatusRuntimeException e) {
          assertTrue(e.getStatus().getCode() == Status.Code.NOT_FOUND, e.getStatus().toString());
        }
        return null;
      });
      Future<?> remove = pool.submit(() -> {
        go.await();
        try {
          cb.admin().deregisterShard(DeregisterShardRequest.newBuilder().setName("s9").build());
        } catch (StatusRuntimeException e) {
          assertTrue(e.getStatus().getCode() == Status.Code.FAILED_PRECONDITION, e.getStatus().toString());
        }
        return null;
      });
      assign.get(60, TimeUnit.SECONDS);
      remove.get(60, TimeUnit.SECONDS);
      assertConverged("owners");
      String owner = ca.lookup("owners", 0).getRoute().getShard();
      boolean registered = a.snapshot().shards().containsKey("s9");
      assertTrue(!owner.equals("s9") || registered, "round " + round + ": owner s9 is not registered");
      if (owner.equals("s9")) {
        ca.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("owners")
            .setRange(KeyRange.getDefaultInstance()).setShard("s1").build());
      }
      if (a.snapshot().shards().containsKey("s9")) {
        ca.admin().deregisterShard(DeregisterShardRequest.newBuilder().setName("s9").build());
      }
    }
    pool.shutdown();
  }

  private static RangeTable toTable(GetMapResponse map) {
    List<Route> routes = new ArrayList<>();
    for (RangeAssignment r : map.getRangesList()) {
      routes.add(KeyspaceMap.rangeRoute(map.getSpec().getKeyType(), r, 0));
    }
    // build() re-checks the invariants: sorted, no gap, no overlap, whole space covered.
    return RangeTable.build(map.getSpec().getKeyType(), routes, "ranges");
  }

  /**
   * Creates through replica a and waits until b has it too: the tests then use both replicas at once, and
   * a replica serves reads from its own watched copy, which can lag the other's acknowledged write.
   */
  private static void createOnBoth(CreateKeyspaceRequest request) throws InterruptedException {
    awaitBoth(ca.admin().createKeyspace(request).getRevision());
  }

  private static void awaitBoth(long revision) throws InterruptedException {
    assertTrue(a.awaitRevision(revision, Duration.ofSeconds(10)), "replica a reaches revision " + revision);
    assertTrue(b.awaitRevision(revision, Duration.ofSeconds(10)), "replica b reaches revision " + revision);
  }

  private static void assertConverged(String keyspace) throws InterruptedException {
    long ra = a.snapshot().revision();
    long rb = b.snapshot().revision();
    long target = Math.max(ra, rb);
    assertTrue(a.awaitRevision(target, Duration.ofSeconds(10)));
    assertTrue(b.awaitRevision(target, Duration.ofSeconds(10)));
    GetMapResponse ma = ca.read().getMap(GetMapRequest.newBuilder().setKeyspace(keyspace).setPageSize(100000).build());
    GetMapResponse mb = cb.read().getMap(GetMapRequest.newBuilder().setKeyspace(keyspace).setPageSize(100000).build());
    if (ma.getRevision() == mb.getRevision()) {
      assertEquals(ma.toBuilder().clearFreshness().build(), mb.toBuilder().clearFreshness().build(),
          "replicas at the same revision serve the same map");
    }
    if (ma.getSpec().getStrategy() == Strategy.STRATEGY_RANGE) {
      toTable(ma);
    }
  }
}
