package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.proto.v1.WorkerClaim;
import io.shardmap.proto.v1.WorkerHighWater;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * SDK global ids on real etcd and two real directory servers: two generators of one name hold different
 * worker ids and issue no duplicate from several threads; close frees the worker id at once; bad input is
 * refused naming the field, before any RPC.
 */
@Tag("integration")
class GlobalIdsTest {
  static final Duration TTL = Duration.ofSeconds(2);

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(0).servers(2).extension();

  ShardmapClient a;
  ShardmapClient b;

  @BeforeEach
  void start() throws Exception {
    a = client("proc-a");
    b = client("proc-b");
  }

  ShardmapClient client(String id) throws InterruptedException {
    ShardmapFleet f = fleet.get();
    return ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users").clientId(id).backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
  }

  @AfterEach
  void stop() {
    for (ShardmapClient c : new ShardmapClient[] {a, b}) {
      if (c != null) {
        c.close();
      }
    }
  }

  /** Every id of both generators, 4 threads each, 200k ids per generator: all distinct, increasing per thread. */
  @Test
  void twoGeneratorsOfOneNameNeverCollide() throws Exception {
    int perThread = 50_000;
    int threads = 4;
    try (GlobalIds x = a.ids("orders", IdLayout.defaults(), TTL);
         GlobalIds y = b.ids("orders", IdLayout.defaults(), TTL)) {
      assertTrue(x.workerId() >= 0 && y.workerId() >= 0);
      assertNotEquals(x.workerId(), y.workerId());
      ExecutorService pool = Executors.newFixedThreadPool(2 * threads);
      try {
        List<Future<long[]>> parts = new ArrayList<>();
        for (int t = 0; t < 2 * threads; t++) {
          GlobalIds g = t % 2 == 0 ? x : y;
          parts.add(pool.submit(() -> {
            long[] out = new long[perThread];
            for (int i = 0; i < perThread; i++) {
              out[i] = g.next();
              if (i > 0 && out[i] <= out[i - 1]) {
                throw new AssertionError("ids not increasing on one thread: " + out[i - 1] + " then " + out[i]);
              }
            }
            return out;
          }));
        }
        long[] all = new long[2 * threads * perThread];
        int n = 0;
        for (Future<long[]> p : parts) {
          long[] part = p.get();
          System.arraycopy(part, 0, all, n, part.length);
          n += part.length;
        }
        Arrays.sort(all);
        for (int i = 1; i < all.length; i++) {
          assertNotEquals(all[i - 1], all[i], "duplicate id " + all[i]);
        }
        IdLayout l = IdLayout.defaults();
        assertEquals(x.workerId(), l.workerOf(x.next()));
      } finally {
        pool.shutdownNow();
      }
    }
  }

  /**
   * Close releases the worker id: another process's acquire gets the same (lowest) id at once, long before
   * the 60 s TTL; its ids start above everything the released holder may have issued (its issue-until mark,
   * up to TTL + margin ahead), so until then next() says UNAVAILABLE with the time ids resume.
   */
  @Test
  void closeReleasesTheWorkerIdAtOnce() throws InterruptedException {
    Duration ttl = Duration.ofSeconds(60);
    GlobalIds x = a.ids("invoices", IdLayout.defaults(), Duration.ofSeconds(1));
    int w = x.workerId();
    long before = x.next();
    x.close();
    ShardmapException closed = assertThrows(ShardmapException.class, x::next);
    assertEquals(ErrorCode.UNAVAILABLE, closed.code());
    assertEquals(-1, x.workerId());
    try (GlobalIds y = b.ids("invoices", IdLayout.defaults(), ttl)) {
      assertEquals(w, y.workerId());
      long first = 0;
      for (int i = 0; i < 20 && first == 0; i++) {
        try {
          first = y.next();
        } catch (ShardmapException e) {
          assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
          assertTrue(e.getMessage().contains("resume"), e.getMessage());
          Thread.sleep(200);
        }
      }
      assertTrue(first > before, "the new holder issues above the released holder's ids");
    }
  }

  @Test
  void badInputIsRefusedNamingTheField() {
    for (String bad : new String[] {"", "Orders", "9lives", "a b", "x".repeat(64)}) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> a.ids(bad));
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), bad);
      assertTrue(e.getMessage().contains("generator"), e.getMessage());
    }
    assertThrows(ShardmapException.class, () -> a.ids(null));
    IdLayout wide = IdLayout.builder().timeBits(38).workerBits(23).sequenceBits(2).minYears(1).build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> a.ids("wide", wide));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("layout.workerBits") && e.getMessage().contains("22"), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> a.ids("ok", IdLayout.defaults(), Duration.ofMillis(500)));
    assertTrue(e.getMessage().contains("leaseTtl"), e.getMessage());
    // Nothing was acquired: the first valid acquire gets worker id 0.
    try (GlobalIds g = a.ids("wide")) {
      assertEquals(0, g.workerId());
    }
  }

  EtcdMetaStore etcd() {
    return EtcdMetaStore.builder().endpoints(fleet.get().etcd().clientEndpoints())
        .requestTimeout(Duration.ofSeconds(3)).connectTimeout(Duration.ofSeconds(3)).build();
  }

  static KeyValue read(EtcdMetaStore store, String key) throws Exception {
    List<KeyValue> kvs = store.get(key).get(5, TimeUnit.SECONDS).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  static long highWater(EtcdMetaStore store, CatalogPaths paths, String gen, int worker) throws Exception {
    KeyValue kv = read(store, paths.workerHighWater(gen, worker));
    return kv == null ? 0 : WorkerHighWater.parseFrom(kv.value()).getIssueUntilMs();
  }

  /**
   * The short-lived process case (a CLI run twice in a row): the first generator, with a 60 s TTL, so its
   * renewals record a mark about 66 s ahead, closes; its clean release brings the mark down to the time of
   * its last id, and the next generator, which gets the same (lowest free) worker id, issues on its first
   * call: no "ids resume in ..." (before the fix that call waited its 1 s bound and was refused).
   */
  @Test
  void aClosedGeneratorsWorkerIdIssuesAgainAtOnce() throws Exception {
    Duration ttl = Duration.ofSeconds(60);
    IdLayout layout = IdLayout.defaults();
    CatalogPaths paths = new CatalogPaths(fleet.get().prefix());
    try (EtcdMetaStore store = etcd()) {
      long lastOfFirst = 0;
      int w;
      try (GlobalIds x = a.ids("signup", layout, ttl)) {
        w = x.workerId();
        for (int i = 0; i < 10_000; i++) {
          lastOfFirst = Math.max(lastOfFirst, x.next());
        }
        assertTrue(highWater(store, paths, "signup", w) > layout.unixMillisOf(lastOfFirst) + 30_000,
            "while held, the mark is recorded ahead of the ids");
      }
      assertEquals(layout.unixMillisOf(lastOfFirst), highWater(store, paths, "signup", w),
          "the clean release leaves the mark at the time of the last id issued");
      for (int run = 0; run < 3; run++) { // back-to-back runs, alternating processes
        try (GlobalIds y = (run % 2 == 0 ? b : a).ids("signup", layout, ttl)) {
          assertEquals(w, y.workerId(), "the lowest free id is recycled");
          long first = y.next(); // no UNAVAILABLE: issues at once
          assertTrue(first > lastOfFirst, "above every id of the previous holder: " + first + " <= " + lastOfFirst);
          lastOfFirst = first;
          for (int i = 0; i < 1_000; i++) {
            long id = y.next();
            assertTrue(id > lastOfFirst);
            lastOfFirst = id;
          }
        }
      }
    }
  }

  /**
   * A holder that took over a worker id whose previous holder vanished (its claim deleted, so its mark
   * ~66 s ahead stays) issues nothing and closes: its clean release cannot bring the mark below the
   * start_after it was given, so the next holder still waits. The vanished holder's own release, when it
   * closes later, matches no claim and changes nothing.
   */
  @Test
  void aCleanReleaseNeverLowersTheMarkBelowStartAfterAndALostClaimsReleaseChangesNothing() throws Exception {
    Duration ttl = Duration.ofSeconds(60);
    IdLayout layout = IdLayout.defaults();
    CatalogPaths paths = new CatalogPaths(fleet.get().prefix());
    try (EtcdMetaStore store = etcd()) {
      GlobalIds x = a.ids("vanish", layout, ttl);
      int w = x.workerId();
      long xLast = x.next();
      long mark = highWater(store, paths, "vanish", w);
      assertTrue(mark > layout.unixMillisOf(xLast) + 30_000, "mark " + mark);
      // x's claim disappears (as after an etcd lease bug); x still believes it holds w until its next renewal.
      store.commit(Txn.builder().delete(paths.workerClaim("vanish", w)).build()).get(5, TimeUnit.SECONDS);
      try (GlobalIds y = b.ids("vanish", layout, ttl)) {
        assertEquals(w, y.workerId());
        ShardmapException wait = assertThrows(ShardmapException.class, y::next);
        assertEquals(ErrorCode.UNAVAILABLE, wait.code(), wait.getMessage());
        assertTrue(wait.getMessage().contains("resume"), wait.getMessage());
      } // y issued nothing: its clean release says so
      assertEquals(mark, highWater(store, paths, "vanish", w), "not lowered below y's start_after");
      try (GlobalIds z = b.ids("vanish", layout, ttl)) {
        assertEquals(w, z.workerId());
        long zMark = highWater(store, paths, "vanish", w); // z's acquire recorded its own issue-until
        assertTrue(zMark >= mark);
        x.close(); // x's release carries its old token: it matches no claim
        assertEquals(zMark, highWater(store, paths, "vanish", w), "a lost claim's release changes nothing");
        KeyValue claim = read(store, paths.workerClaim("vanish", w));
        assertTrue(claim != null, "z's claim survives x's release");
        assertEquals("proc-b", WorkerClaim.parseFrom(claim.value()).getOwnerId());
        assertEquals(w, z.workerId());
      }
    }
  }
}
