package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.proto.v1.AcquireWorkerRequest;
import io.shardmap.proto.v1.AcquireWorkerResponse;
import io.shardmap.proto.v1.ReleaseWorkerRequest;
import io.shardmap.proto.v1.ReleaseWorkerResponse;
import io.shardmap.proto.v1.RenewWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerResponse;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc.ShardMapIdServiceBlockingStub;
import io.shardmap.proto.v1.WorkerClaim;
import io.shardmap.proto.v1.WorkerHighWater;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.EtcdCluster;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Worker leases of id generators (ShardMapIdService) on real etcd through two directory servers: distinct
 * ids for concurrent owners, renewals through another replica, expiry and recycling with the high-water
 * mark handed on, release, a full space and bad input. See docs/worker-leases.md.
 */
@Tag("integration")
class WorkerLeaseTest {
  EtcdCluster etcd;
  String prefix;
  CatalogPaths paths;
  MetaStore store;
  DirectoryServer a;
  DirectoryServer b;
  ManagedChannel channelA;
  ManagedChannel channelB;

  @BeforeEach
  void setUp() throws Exception {
    etcd = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    paths = new CatalogPaths(prefix);
    store = TestSupport.etcdClient(etcd.clientEndpoints());
    a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("ids-a").build());
    b = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("ids-b").build());
    channelA = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    channelB = NettyChannelBuilder.forAddress("127.0.0.1", b.port()).usePlaintext().build();
  }

  @AfterEach
  void tearDown() throws Exception {
    channelA.shutdownNow();
    channelB.shutdownNow();
    a.close();
    b.close();
    store.close();
  }

  private ShardMapIdServiceBlockingStub ids(ManagedChannel c) {
    return ShardMapIdServiceGrpc.newBlockingStub(c).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  private static AcquireWorkerRequest.Builder acquire(String gen, String owner, int bits) {
    return AcquireWorkerRequest.newBuilder().setGenerator(gen).setOwnerId(owner).setWorkerBits(bits);
  }

  private static RenewWorkerRequest renew(String gen, String owner, AcquireWorkerResponse w, long issueUntil) {
    return RenewWorkerRequest.newBuilder().setGenerator(gen).setOwnerId(owner).setWorkerId(w.getWorkerId())
        .setLeaseId(w.getLeaseId()).setClaimRevision(w.getClaimRevision()).setIssueUntilMs(issueUntil).build();
  }

  private static ReleaseWorkerRequest release(String gen, String owner, AcquireWorkerResponse w, long issueUntil) {
    return ReleaseWorkerRequest.newBuilder().setGenerator(gen).setOwnerId(owner).setWorkerId(w.getWorkerId())
        .setLeaseId(w.getLeaseId()).setClaimRevision(w.getClaimRevision()).setIssueUntilMs(issueUntil).build();
  }

  private KeyValue read(String key) throws Exception {
    List<KeyValue> kvs = store.get(key).get(5, TimeUnit.SECONDS).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  private long highWater(String gen, int worker) throws Exception {
    KeyValue kv = read(paths.workerHighWater(gen, worker));
    return kv == null ? 0 : WorkerHighWater.parseFrom(kv.value()).getIssueUntilMs();
  }

  private Set<String> keysUnder(String p) throws Exception {
    Set<String> keys = new TreeSet<>();
    for (KeyValue kv : store.getPrefix(p).get(5, TimeUnit.SECONDS).kvs()) {
      keys.add(kv.key());
    }
    return keys;
  }

  /**
   * The server's shardmap_ids_workers_held gauge for {@code gen}, polled (bounded) until it shows
   * {@code expected}: the servers learn of claims through their watch, shortly after the write.
   */
  private static long heldGauge(DirectoryServer s, String gen, long expected) throws InterruptedException {
    long seen = -1;
    for (int i = 0; i < 100; i++) {
      seen = -1;
      for (String line : s.scrapeMetrics().split("\n")) {
        if (line.startsWith("shardmap_ids_workers_held{") && line.contains("generator=\"" + gen + "\"")) {
          seen = (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        }
      }
      if (seen == expected) {
        return seen;
      }
      Thread.sleep(50);
    }
    return seen;
  }

  @Test
  void concurrentOwnersGetDistinctIdsPerGenerator() throws Exception {
    int threads = 8;
    int perThread = 3;
    List<String> gens = List.of("orders", "users", "events");
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<List<String>>> results = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        results.add(pool.submit(() -> {
          List<String> got = new ArrayList<>();
          for (int i = 0; i < perThread; i++) {
            for (String g : gens) {
              // Alternate replicas: they share nothing but etcd.
              ManagedChannel c = (thread + i) % 2 == 0 ? channelA : channelB;
              AcquireWorkerResponse w = ids(c).acquireWorker(acquire(g, "owner-" + thread, 10).build());
              got.add(g + "/" + w.getWorkerId());
            }
          }
          return got;
        }));
      }
      Set<String> all = new HashSet<>();
      for (Future<List<String>> f : results) {
        for (String s : f.get(60, TimeUnit.SECONDS)) {
          assertTrue(all.add(s), () -> "worker id handed out twice: " + s);
        }
      }
      int n = threads * perThread;
      for (String g : gens) {
        // Lowest free first: the ids are exactly 0..n-1, and etcd holds one claim per id.
        Set<String> expected = new TreeSet<>();
        for (int w = 0; w < n; w++) {
          expected.add(g + "/" + w);
          KeyValue claim = read(paths.workerClaim(g, w));
          assertTrue(claim != null && claim.lease() != 0, "claim of " + g + "/" + w + " under a lease");
        }
        Set<String> got = new TreeSet<>();
        all.stream().filter(s -> s.startsWith(g + "/")).forEach(got::add);
        assertEquals(expected, got);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void renewThroughAnotherServerKeepsTheLeaseAndRaisesTheHighWater() throws Exception {
    long now = System.currentTimeMillis();
    AcquireWorkerResponse w = ids(channelA).acquireWorker(acquire("gen", "p1", 4).setTtlMs(2000)
        .setIssueUntilMs(now + 1000).build());
    assertEquals(0, w.getStartAfterMs());
    assertEquals(now + 1000, w.getIssueUntilMs());
    assertEquals(2000, w.getTtlMs());
    // Renew every ~0.5 s for ~3 s (past the 2 s ttl) through the OTHER replica: the claim stays.
    for (int i = 1; i <= 6; i++) {
      RenewWorkerResponse r = ids(channelB).renewWorker(renew("gen", "p1", w, now + 1000 + i * 500L));
      assertEquals(now + 1000 + i * 500L, r.getIssueUntilMs());
      assertEquals(2000, r.getTtlMs());
      Thread.sleep(500);
    }
    KeyValue claim = read(paths.workerClaim("gen", w.getWorkerId()));
    assertTrue(claim != null, "claim still held after 3 s of renewals with a 2 s ttl");
    assertEquals(w.getClaimRevision(), claim.createRevision());
    assertEquals("p1", WorkerClaim.parseFrom(claim.value()).getOwnerId());
    assertEquals(now + 4000, highWater("gen", w.getWorkerId()));
  }

  @Test
  void anOwnerThatStopsRenewingLosesItsIdAndTheNextOwnerStartsAfterItsHighWater() throws Exception {
    long now = System.currentTimeMillis();
    AcquireWorkerResponse old = ids(channelA).acquireWorker(acquire("gen", "old", 3).setTtlMs(1000).build());
    RenewWorkerResponse r = ids(channelA).renewWorker(renew("gen", "old", old, now + 60_000));
    assertEquals(now + 60_000, r.getIssueUntilMs());
    // While held, a second owner gets another id.
    AcquireWorkerResponse other = ids(channelB).acquireWorker(acquire("gen", "other", 3).build());
    assertNotEquals(old.getWorkerId(), other.getWorkerId());
    ids(channelB).releaseWorker(release("gen", "other", other, 0));
    // The old owner stops renewing; etcd expires its lease (bounded wait, no timing asserted).
    String key = paths.workerClaim("gen", old.getWorkerId());
    for (int i = 0; i < 100 && read(key) != null; i++) {
      Thread.sleep(100);
    }
    assertEquals(null, read(key), "claim gone with its lease");
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelB).renewWorker(renew("gen", "old", old, now + 70_000)),
        "worker " + old.getWorkerId(), "stop issuing ids");
    assertEquals(now + 60_000, highWater("gen", old.getWorkerId()), "a refused renew records nothing");
    AcquireWorkerResponse next = ids(channelB).acquireWorker(acquire("gen", "new", 3).build());
    assertEquals(old.getWorkerId(), next.getWorkerId(), "the lowest free id is recycled");
    assertTrue(next.getStartAfterMs() >= now + 60_000, "start_after " + next.getStartAfterMs());
    assertNotEquals(old.getClaimRevision(), next.getClaimRevision());
    // The old token cannot touch the new claim, even with the new claim's lease id.
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelA).renewWorker(renew("gen", "old", old, 0)));
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelA).renewWorker(renew("gen", "old",
        next.toBuilder().setClaimRevision(old.getClaimRevision()).build(), 0)));
    assertEquals("new", WorkerClaim.parseFrom(read(key).value()).getOwnerId());
  }

  @Test
  void theHighWaterNeverDecreases() throws Exception {
    long now = System.currentTimeMillis();
    AcquireWorkerResponse w = ids(channelA).acquireWorker(acquire("hw", "p", 2).setIssueUntilMs(now + 5000).build());
    assertEquals(now + 5000, ids(channelB).renewWorker(renew("hw", "p", w, now + 2000)).getIssueUntilMs());
    assertEquals(now + 9000, ids(channelA).renewWorker(renew("hw", "p", w, now + 9000)).getIssueUntilMs());
    assertEquals(now + 9000, ids(channelB).renewWorker(renew("hw", "p", w, now + 100)).getIssueUntilMs());
    assertEquals(now + 9000, ids(channelB).renewWorker(renew("hw", "p", w, 0)).getIssueUntilMs());
    assertEquals(now + 9000, highWater("hw", w.getWorkerId()));
    ReleaseWorkerResponse rel = ids(channelA).releaseWorker(release("hw", "p", w, now + 3000));
    assertTrue(rel.getReleased());
    assertEquals(now + 9000, rel.getIssueUntilMs());
    AcquireWorkerResponse next = ids(channelB).acquireWorker(acquire("hw", "q", 2).setIssueUntilMs(now + 1).build());
    assertEquals(w.getWorkerId(), next.getWorkerId());
    assertEquals(now + 9000, next.getStartAfterMs());
    assertEquals(now + 9000, next.getIssueUntilMs(), "an acquire never lowers the mark either");
  }

  @Test
  void releaseFreesTheIdAtOnceAndRecordsTheFinalHighWater() throws Exception {
    long now = System.currentTimeMillis();
    // A long ttl: only the release can free the id within this test.
    AcquireWorkerResponse w = ids(channelA).acquireWorker(acquire("rel", "p", 1).setTtlMs(60_000)
        .setIssueUntilMs(now + 1000).build());
    ReleaseWorkerResponse rel = ids(channelB).releaseWorker(release("rel", "p", w, now + 2000));
    assertTrue(rel.getReleased());
    assertEquals(now + 2000, rel.getIssueUntilMs());
    assertEquals(null, read(paths.workerClaim("rel", w.getWorkerId())), "claim deleted by the release");
    assertEquals(now + 2000, highWater("rel", w.getWorkerId()));
    // Retrying the release is harmless; renewing after it is refused.
    ReleaseWorkerResponse again = ids(channelA).releaseWorker(release("rel", "p", w, now + 3000));
    assertFalse(again.getReleased());
    assertEquals(now + 2000, again.getIssueUntilMs(), "a release of a claim already gone records nothing");
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelA).renewWorker(renew("rel", "p", w, 0)), "no longer held");
    AcquireWorkerResponse next = ids(channelB).acquireWorker(acquire("rel", "p2", 1).build());
    assertEquals(w.getWorkerId(), next.getWorkerId());
    assertEquals(now + 2000, next.getStartAfterMs());
  }

  @Test
  void aFullWorkerSpaceIsRefusedNamingTheSpace() throws Exception {
    AcquireWorkerResponse w0 = ids(channelA).acquireWorker(acquire("tiny", "p", 1).build());
    AcquireWorkerResponse w1 = ids(channelB).acquireWorker(acquire("tiny", "p", 1).build());
    assertEquals(Set.of(0, 1), Set.of(w0.getWorkerId(), w1.getWorkerId()));
    Set<String> before = keysUnder(paths.idGeneratorPrefix("tiny"));
    assertStatus(Status.Code.RESOURCE_EXHAUSTED, () -> ids(channelA).acquireWorker(acquire("tiny", "q", 1).build()),
        "generator 'tiny'", "all 2 worker ids", "2^1");
    assertEquals(before, keysUnder(paths.idGeneratorPrefix("tiny")));
    // Both servers count the whole cluster's claims from their watch, whichever server made them.
    assertEquals(2, heldGauge(a, "tiny", 2));
    assertEquals(2, heldGauge(b, "tiny", 2));
    // Another generator has its own space.
    assertEquals(0, ids(channelA).acquireWorker(acquire("other", "q", 1).build()).getWorkerId());
    // Freeing one makes room again.
    assertTrue(ids(channelA).releaseWorker(release("tiny", "p", w1, 0)).getReleased());
    assertEquals(1, heldGauge(b, "tiny", 1));
    assertEquals(w1.getWorkerId(), ids(channelB).acquireWorker(acquire("tiny", "q", 1).build()).getWorkerId());
  }

  @Test
  void badInputIsRefusedNamingTheFieldAndWritesNothing() throws Exception {
    Set<String> before = keysUnder(prefix + "/ids/");
    assertTrue(before.isEmpty());
    long now = System.currentTimeMillis();
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "bad owner", 4).build()),
        "owner_id", "[A-Za-z0-9._:-]", "'bad owner'");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "", 4).build()),
        "owner_id", "is required");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("Gen!", "p", 4).build()),
        "generator", "[a-z0-9_-]");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("", "p", 4).build()),
        "generator", "is required");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "p", 0).build()),
        "worker_bits", "got 0");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "p", 23).build()),
        "worker_bits", "got 23");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "p", 4)
        .setTtlMs(10).build()), "ttl_ms", "got 10");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "p", 4)
        .setIssueUntilMs(now + 3_600_000).build()), "issue_until_ms", "ahead");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelA).acquireWorker(acquire("gen", "p", 4)
        .setIssueUntilMs(-1).build()), "issue_until_ms");
    assertEquals(before, keysUnder(prefix + "/ids/"), "nothing written by refused acquires");

    AcquireWorkerResponse w = ids(channelA).acquireWorker(acquire("gen", "p", 4).setIssueUntilMs(now + 1000).build());
    Set<String> held = keysUnder(prefix + "/ids/");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).renewWorker(renew("gen", "bad/owner", w, now + 5000)),
        "owner_id");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).renewWorker(renew("gen", "p", w, now + 3_600_000)),
        "issue_until_ms");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).renewWorker(renew("gen", "p",
        w.toBuilder().setClaimRevision(0).build(), now + 5000)), "claim_revision");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).renewWorker(renew("gen", "p",
        w.toBuilder().setLeaseId(0).build(), now + 5000)), "lease_id");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).releaseWorker(release("GEN", "p", w, 0)),
        "generator");
    // Well-formed but not the holder: NOT_FOUND, naming why, and nothing recorded.
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelB).renewWorker(renew("gen", "someone-else", w, now + 5000)),
        "owner 'p'", "not owner_id 'someone-else'");
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelB).renewWorker(renew("unknown-gen", "p", w, now + 5000)),
        "generator 'unknown-gen'");
    assertFalse(ids(channelB).releaseWorker(release("gen", "someone-else", w, now + 5000)).getReleased());
    assertEquals(held, keysUnder(prefix + "/ids/"));
    assertEquals(now + 1000, highWater("gen", w.getWorkerId()));
    assertTrue(read(paths.workerClaim("gen", w.getWorkerId())) != null, "the real holder's claim untouched");
  }

  private static ReleaseWorkerRequest cleanRelease(String gen, String owner, AcquireWorkerResponse w, long issued) {
    return release(gen, owner, w, 0).toBuilder().setIssuedUntilMs(issued).build();
  }

  @Test
  void aCleanReleaseLowersTheMarkToWhatItIssuedButNeverBelowItsStartAfter() throws Exception {
    long now = System.currentTimeMillis();
    // A long ttl: only releases free the id in this test. The first holder records a mark 10 s ahead...
    AcquireWorkerResponse first = ids(channelA).acquireWorker(acquire("clean", "p", 1).setTtlMs(60_000)
        .setIssueUntilMs(now + 10_000).build());
    assertEquals(now + 11_000, ids(channelB).renewWorker(renew("clean", "p", first, now + 11_000)).getIssueUntilMs());
    WorkerClaim claim = WorkerClaim.parseFrom(read(paths.workerClaim("clean", first.getWorkerId())).value());
    assertTrue(claim.hasStartAfterMs(), "the claim remembers the start_after it was given");
    assertEquals(first.getStartAfterMs(), claim.getStartAfterMs());
    // ...but issued only up to now + 5: its clean release brings the mark down to that.
    ReleaseWorkerResponse rel = ids(channelB).releaseWorker(cleanRelease("clean", "p", first, now + 5));
    assertTrue(rel.getReleased());
    assertEquals(now + 5, rel.getIssueUntilMs());
    assertEquals(now + 5, highWater("clean", first.getWorkerId()));
    assertEquals(null, read(paths.workerClaim("clean", first.getWorkerId())), "claim deleted by the release");
    // The next holder of the id (the lowest free one) starts after what was issued, not after the old mark.
    AcquireWorkerResponse second = ids(channelA).acquireWorker(acquire("clean", "q", 1).setTtlMs(60_000)
        .setIssueUntilMs(now + 12_000).build());
    assertEquals(first.getWorkerId(), second.getWorkerId(), "the lowest free id is recycled");
    assertEquals(now + 5, second.getStartAfterMs());
    // A release that claims to have issued below its start_after cannot lower the mark below start_after:
    // the first holder's ids up to now + 5 stay covered.
    ReleaseWorkerResponse low = ids(channelB).releaseWorker(cleanRelease("clean", "q", second, now - 60_000));
    assertTrue(low.getReleased());
    assertEquals(now + 5, low.getIssueUntilMs());
    assertEquals(now + 5, highWater("clean", first.getWorkerId()));
    // A holder that issued nothing (issued_until_ms = 0, set) leaves its start_after.
    AcquireWorkerResponse third = ids(channelA).acquireWorker(acquire("clean", "r", 1).setTtlMs(60_000)
        .setIssueUntilMs(now + 12_000).build());
    assertEquals(now + 5, third.getStartAfterMs());
    assertEquals(now + 5, ids(channelB).releaseWorker(cleanRelease("clean", "r", third, 0)).getIssueUntilMs());
    // issue_until_ms next to issued_until_ms still raises at least to it.
    AcquireWorkerResponse fourth = ids(channelA).acquireWorker(acquire("clean", "s", 1).setTtlMs(60_000).build());
    assertEquals(now + 500, ids(channelB).releaseWorker(cleanRelease("clean", "s", fourth, now + 100).toBuilder()
        .setIssueUntilMs(now + 500).build()).getIssueUntilMs());
    assertEquals(now + 500, highWater("clean", first.getWorkerId()));
  }

  @Test
  void aReleaseFromAnOwnerThatLostItsClaimChangesNothing() throws Exception {
    long now = System.currentTimeMillis();
    AcquireWorkerResponse old = ids(channelA).acquireWorker(acquire("lost", "old", 2).setTtlMs(1000)
        .setIssueUntilMs(now + 60_000).build());
    String key = paths.workerClaim("lost", old.getWorkerId());
    for (int i = 0; i < 100 && read(key) != null; i++) { // etcd expires the lease (bounded wait)
      Thread.sleep(100);
    }
    assertEquals(null, read(key), "claim gone with its lease");
    AcquireWorkerResponse next = ids(channelB).acquireWorker(acquire("lost", "new", 2).setTtlMs(60_000)
        .setIssueUntilMs(now + 61_000).build());
    assertEquals(old.getWorkerId(), next.getWorkerId());
    assertEquals(now + 60_000, next.getStartAfterMs());
    // The old owner wakes up and releases "cleanly": its token matches no claim, so nothing changes.
    ReleaseWorkerResponse rel = ids(channelA).releaseWorker(cleanRelease("lost", "old", old, now + 1));
    assertFalse(rel.getReleased());
    assertEquals(now + 61_000, rel.getIssueUntilMs());
    // Nor with the new claim's lease id under the old revision, nor as another owner of the live claim.
    assertFalse(ids(channelA).releaseWorker(cleanRelease("lost", "old",
        next.toBuilder().setClaimRevision(old.getClaimRevision()).build(), now + 1)).getReleased());
    assertFalse(ids(channelA).releaseWorker(cleanRelease("lost", "old", next, now + 1)).getReleased());
    assertEquals(now + 61_000, highWater("lost", old.getWorkerId()));
    assertEquals("new", WorkerClaim.parseFrom(read(key).value()).getOwnerId(), "the live claim untouched");
    // Bad values of the new field are refused naming it, and change nothing.
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).releaseWorker(cleanRelease("lost", "new", next,
        -1)), "issued_until_ms");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).releaseWorker(cleanRelease("lost", "new", next,
        now + 3_600_000)), "issued_until_ms", "ahead");
    assertEquals(now + 61_000, highWater("lost", old.getWorkerId()));
    assertTrue(read(key) != null, "the holder's claim survives refused releases");
  }

  @Test
  void aReleaseWithoutIssuedUntilOrOfAnOldClaimOnlyRaisesTheMark() throws Exception {
    long now = System.currentTimeMillis();
    AcquireWorkerResponse w = ids(channelA).acquireWorker(acquire("oldstyle", "p", 1).setTtlMs(60_000)
        .setIssueUntilMs(now + 9_000).build());
    // Old-style release (no issued_until_ms): the mark stays where the renewals left it.
    ReleaseWorkerResponse rel = ids(channelB).releaseWorker(release("oldstyle", "p", w, now + 1));
    assertTrue(rel.getReleased());
    assertEquals(now + 9_000, rel.getIssueUntilMs());
    assertEquals(now + 9_000, highWater("oldstyle", w.getWorkerId()));
    // A claim written before claims recorded start_after_ms (simulated: rewritten without it, same lease, same
    // create revision): the server cannot know its floor, so even a clean release only raises the mark.
    AcquireWorkerResponse v = ids(channelA).acquireWorker(acquire("oldstyle", "p", 1).setTtlMs(60_000).build());
    String key = paths.workerClaim("oldstyle", v.getWorkerId());
    WorkerClaim withFloor = WorkerClaim.parseFrom(read(key).value());
    store.commit(Txn.builder().put(key, withFloor.toBuilder().clearStartAfterMs().build().toByteArray(),
        v.getLeaseId()).build()).get(5, TimeUnit.SECONDS);
    ReleaseWorkerResponse old = ids(channelB).releaseWorker(cleanRelease("oldstyle", "p", v, now + 1));
    assertTrue(old.getReleased());
    assertEquals(now + 9_000, old.getIssueUntilMs());
    assertEquals(now + 9_000, highWater("oldstyle", w.getWorkerId()));
  }
}
