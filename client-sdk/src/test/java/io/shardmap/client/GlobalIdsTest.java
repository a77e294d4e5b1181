package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
}
