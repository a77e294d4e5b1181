package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.MapChange;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The lazy directory cache against a scripted directory: fetches are answered (or held back) by the test,
 * so every interleaving of a fetch and a watch change the class comment promises to handle is forced.
 */
@Tag("unit")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LazyDirectoryTest {
  static final String KS = "devices";
  static final Route FALLBACK = new Route("fb", 5, null, 10);

  final ExecutorService pool = Executors.newCachedThreadPool();
  final Counters stats = new Counters();

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  /** One fetch the test answers when it wants, seeing the revision floor the cache asked for. */
  static final class Pending {
    final byte[] key;
    final long atLeast;
    final CompletableFuture<LazyDirectory.Answer> reply = new CompletableFuture<>();

    Pending(byte[] key, long atLeast) {
      this.key = key;
      this.atLeast = atLeast;
    }
  }

  /** A fetcher whose calls queue up until the test answers them. */
  static final class ScriptedFetcher implements LazyDirectory.Fetcher {
    final BlockingQueue<Pending> calls = new ArrayBlockingQueue<>(1000);
    final AtomicInteger count = new AtomicInteger();

    @Override
    public LazyDirectory.Answer fetch(String keyspace, KeyType type, byte[] key, long atLeast) {
      count.incrementAndGet();
      Pending p = new Pending(key, atLeast);
      calls.add(p);
      try {
        return p.reply.get(30, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException e) {
        throw (RuntimeException) e.getCause();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    }

    Pending next() throws InterruptedException {
      Pending p = calls.poll(10, TimeUnit.SECONDS);
      if (p == null) {
        throw new AssertionError("expected a fetch");
      }
      return p;
    }
  }

  LazyDirectory cache(LazyDirectory.Fetcher f, int capacity, long loadedAt) {
    return new LazyDirectory(KS, KeyType.KEY_TYPE_INT64, capacity, f, stats, loadedAt, FALLBACK,
        TimeUnit.SECONDS.toNanos(20));
  }

  static LazyDirectory.Answer entry(String shard, long epoch, long revision) {
    return new LazyDirectory.Answer(new Route(shard, epoch, null, 0), false, revision);
  }

  static LazyDirectory.Answer noEntry(Route fallback, long revision) {
    return new LazyDirectory.Answer(fallback, true, revision);
  }

  static MapChange put(long key, String shard, long epoch) {
    return MapChange.newBuilder().setKeyspace(KS).setEntry(DirectoryEntry.newBuilder()
        .setKey(Key.newBuilder().setIntKey(key)).setShard(shard).setEpoch(epoch)).build();
  }

  static MapChange removed(long key) {
    return MapChange.newBuilder().setKeyspace(KS).setEntryRemoved(Key.newBuilder().setIntKey(key)).build();
  }

  Future<Route> lookup(LazyDirectory d, long key) {
    return pool.submit(() -> d.route(key));
  }

  @Test
  void aFetchOlderThanAWatchChangeDuringItNeverOverwritesIt() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    Future<Route> miss = lookup(d, 7);
    Pending p = f.next();
    assertEquals(10, p.atLeast, "the floor is the revision the keyspace was loaded at");
    // While the fetch is out, the watch moves key 7 to s9 at revision 12 ...
    d.apply(12, List.of(put(7, "s9", 4)), FALLBACK);
    // ... and the server that answers the fetch was at revision 11, when 7 was still on s1.
    p.reply.complete(entry("s1", 3, 11));
    assertEquals(new Route("s9", 4, null, 12), miss.get(10, TimeUnit.SECONDS),
        "the miss returns the newest answer, not its own older one");
    assertEquals("s9", d.route(7).shard(), "and the cache keeps it");
    assertEquals(1, f.count.get());
  }

  @Test
  void aFetchNewerThanTheWatchSurvivesTheOlderChangesThatFollow() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    Future<Route> miss = lookup(d, 7);
    // The server is ahead of our stream: at revision 20 key 7 is on s3.
    f.next().reply.complete(entry("s3", 6, 20));
    assertEquals("s3", miss.get(10, TimeUnit.SECONDS).shard());
    // Now the stream delivers the older history of key 7: nothing of it may win.
    d.apply(14, List.of(put(7, "s2", 5)), FALLBACK);
    d.apply(17, List.of(removed(7)), FALLBACK);
    assertEquals(new Route("s3", 6, null, 0), d.route(7));
    // A change past the fetched revision does.
    d.apply(21, List.of(put(7, "s4", 7)), FALLBACK);
    assertEquals(new Route("s4", 7, null, 21), d.route(7));
    assertEquals(1, f.count.get(), "every later lookup was a hit");
  }

  @Test
  void aMissAsksForAnAnswerNoOlderThanTheLastBatchTheWatchApplied() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    // The watch changed key 7 at revision 15 while nobody had it cached: the change is not kept anywhere,
    // so a later miss must not accept an answer from before 15.
    d.apply(15, List.of(put(7, "s9", 4)), FALLBACK);
    Future<Route> miss = lookup(d, 7);
    Pending p = f.next();
    assertEquals(15, p.atLeast);
    // A fetcher breaking that promise is caught rather than trusted.
    p.reply.complete(entry("s1", 3, 14));
    ShardmapException e = assertThrows(ShardmapException.class, () -> unwrap(miss));
    assertEquals(ErrorCode.INTERNAL, e.code());
    assertTrue(e.getMessage().contains("older than 15"), e.getMessage());
    // Not cached: the next lookup asks again.
    Future<Route> again = lookup(d, 7);
    f.next().reply.complete(entry("s9", 4, 15));
    assertEquals("s9", again.get(10, TimeUnit.SECONDS).shard());
  }

  @Test
  void deletesFallBackAndAnswersWithoutEntryFollowTheFallbackUntilAnEntryAppears() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    // Key 1 has an entry; key 2 has none (the fallback answered, as of revision 11).
    Future<Route> one = lookup(d, 1);
    f.next().reply.complete(entry("s1", 3, 11));
    assertEquals("s1", one.get(10, TimeUnit.SECONDS).shard());
    Future<Route> two = lookup(d, 2);
    f.next().reply.complete(noEntry(FALLBACK, 11));
    assertSame(FALLBACK, two.get(10, TimeUnit.SECONDS));

    // Revision 12 deletes key 1's entry and (as every delete does) raises the fallback's epoch past it.
    Route raised = new Route("fb", 6, null, 12);
    d.apply(12, List.of(removed(1)), raised);
    assertSame(raised, d.route(1), "a deleted entry's key goes to the fallback of that revision");
    assertSame(raised, d.route(2), "a cached 'no entry' follows the fallback");
    // The fallback moves to another shard at 13 (a layout change only): both keys follow it.
    Route moved = new Route("fb2", 7, null, 13);
    d.apply(13, List.of(), moved);
    assertSame(moved, d.route(1));
    assertSame(moved, d.route(2));
    // An entry is created for key 2 at 14: the cached negative answer gives way.
    d.apply(14, List.of(put(2, "s5", 8)), moved);
    assertEquals(new Route("s5", 8, null, 14), d.route(2));
    assertEquals(2, f.count.get(), "all of it through the watch, no new fetch");

    // A "no entry" answer from a server ahead of the stream carries that server's fallback, which wins
    // until the stream reaches its revision.
    Future<Route> three = lookup(d, 3);
    Route ahead = new Route("fb3", 9, null, 0);
    f.next().reply.complete(noEntry(ahead, 30));
    assertSame(ahead, three.get(10, TimeUnit.SECONDS));
    d.apply(20, List.of(), moved);
    assertSame(ahead, d.route(3), "revision 20 is older than the answer's 30");
    Route later = new Route("fb4", 10, null, 31);
    d.apply(31, List.of(), later);
    assertSame(later, d.route(3));

    // No entry and no fallback: NOT_FOUND naming the key and keyspace, and still cached.
    d.apply(32, List.of(), null);
    ShardmapException e = assertThrows(ShardmapException.class, () -> d.route(3));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("key 3") && e.getMessage().contains("'" + KS + "'"), e.getMessage());
    assertEquals(3, f.count.get());
  }

  @Test
  void concurrentMissesOfOneKeyShareOneFetch() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    int threads = 32;
    CountDownLatch go = new CountDownLatch(1);
    List<Future<Route>> lookups = new ArrayList<>();
    for (int i = 0; i < threads; i++) {
      lookups.add(pool.submit(() -> {
        go.await();
        return d.route(42);
      }));
    }
    go.countDown();
    Pending p = f.next();
    Thread.sleep(200); // let every thread reach the cache while the one fetch is out
    p.reply.complete(entry("s2", 1, 11));
    for (Future<Route> l : lookups) {
      assertEquals("s2", l.get(10, TimeUnit.SECONDS).shard());
    }
    assertEquals(1, f.count.get(), "one RPC for " + threads + " concurrent misses");
    assertNull(f.calls.poll());
  }

  @Test
  void anUnreachableDirectoryFailsTheMissAndItsWaitersButCachesNothing() throws Exception {
    ScriptedFetcher f = new ScriptedFetcher();
    LazyDirectory d = cache(f, 100, 10);
    Future<Route> first = lookup(d, 5);
    Pending p = f.next();
    Future<Route> waiter = lookup(d, 5);
    Thread.sleep(100);
    p.reply.completeExceptionally(new ShardmapException(ErrorCode.UNAVAILABLE,
        "cannot route key 5 of directory keyspace 'devices' (not in the client's cache): no directory server"));
    for (Future<Route> l : List.of(first, waiter)) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> unwrap(l));
      assertEquals(ErrorCode.UNAVAILABLE, e.code());
      assertTrue(e.getMessage().contains("key 5") && e.getMessage().contains("'devices'"), e.getMessage());
    }
    assertEquals(0, d.size(), "a failure is not cached");
    Future<Route> retry = lookup(d, 5);
    f.next().reply.complete(entry("s1", 1, 11));
    assertEquals("s1", retry.get(10, TimeUnit.SECONDS).shard());

    // If the watch answered for the key while its fetch failed, that answer is used.
    Future<Route> six = lookup(d, 6);
    Pending p6 = f.next();
    d.apply(12, List.of(put(6, "s7", 2)), FALLBACK);
    p6.reply.completeExceptionally(new ShardmapException(ErrorCode.UNAVAILABLE, "down"));
    assertEquals("s7", six.get(10, TimeUnit.SECONDS).shard());
  }

  /** A fetcher that answers at once from a function of the key. */
  static LazyDirectory.Fetcher immediate(Function<Long, LazyDirectory.Answer> answer, AtomicInteger calls) {
    return (ks, type, key, atLeast) -> {
      calls.incrementAndGet();
      return answer.apply(Keys.decodeInt64(key));
    };
  }

  @Test
  void theCacheStaysWithinItsSizeAndKeepsKeysInUse() {
    AtomicInteger calls = new AtomicInteger();
    LazyDirectory d = cache(immediate(k -> entry("s" + (k % 3), 1, 11), calls), 8, 10);
    for (long k = 0; k < 8; k++) {
      d.route(k);
    }
    assertEquals(8, d.size());
    assertEquals(8, calls.get());
    // A hot key, used between every cold miss, gets its second chance at every sweep and stays.
    for (long k = 100; k < 200; k++) {
      d.route(3);
      d.route(k);
      assertTrue(d.size() <= 8, "size " + d.size());
    }
    int before = calls.get();
    d.route(3);
    assertEquals(before, calls.get(), "the hot key is still cached");
    assertTrue(d.evictions() >= 90, "evictions " + d.evictions());
    assertEquals(stats.directoryMisses(), calls.get());
    assertTrue(stats.directoryHits() >= 100);
  }

  @Test
  void byteKeysAreCopiedSoTheCallerMayReuseItsArray() {
    AtomicInteger calls = new AtomicInteger();
    LazyDirectory d = new LazyDirectory(KS, KeyType.KEY_TYPE_BYTES, 10,
        (ks, type, key, atLeast) -> {
          calls.incrementAndGet();
          return entry(new String(key, StandardCharsets.UTF_8).equals("acme") ? "s1" : "s2", 1, 11);
        }, stats, 10, FALLBACK, TimeUnit.SECONDS.toNanos(5));
    byte[] buf = "acme".getBytes(StandardCharsets.UTF_8);
    assertEquals("s1", d.route(buf).shard());
    buf[0] = 'x'; // now "xcme"
    assertEquals("s2", d.route(buf).shard(), "a different key, not the cached 'acme'");
    assertEquals("s1", d.route("acme".getBytes(StandardCharsets.UTF_8)).shard());
    assertEquals(2, calls.get());
  }

  @Test
  void hitsOfIntegerKeysAllocateNothing() {
    AtomicInteger calls = new AtomicInteger();
    LazyDirectory d = cache(immediate(k -> k % 2 == 0 ? entry("s1", 1, 11) : noEntry(FALLBACK, 11), calls), 2048, 10);
    for (long k = 0; k < 1024; k++) {
      d.route(k);
    }
    long sink = 0;
    for (int i = 0; i < 300_000; i++) {
      sink += d.route(i & 1023).epoch();
    }
    com.sun.management.ThreadMXBean mx =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long before = mx.getThreadAllocatedBytes(Thread.currentThread().getId());
    for (int i = 0; i < 100_000; i++) {
      sink += d.route(i & 1023).epoch();
    }
    long allocated = mx.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
    assertTrue(allocated < 64 * 1024, "100,000 hits allocated " + allocated + " bytes (sink " + sink + ")");
    assertEquals(1024, calls.get());
  }

  @Test
  void refreshAsksEvenWhenCachedAndKeepsTheNewer() {
    AtomicInteger calls = new AtomicInteger();
    long[] revision = {11};
    LazyDirectory d = cache(immediate(k -> entry("s" + revision[0], revision[0], revision[0]), calls), 10, 10);
    assertEquals("s11", d.route(1).shard());
    revision[0] = 15;
    assertEquals("s15", d.refresh(1).shard());
    assertEquals("s15", d.route(1).shard());
    d.apply(20, List.of(put(1, "s20", 20)), FALLBACK);
    assertEquals("s20", d.route(1).shard());
    revision[0] = 30; // a server ahead of the stream
    assertEquals("s30", d.refresh(1).shard());
    revision[0] = 25; // another one, past the stream but behind the last answer: the cache keeps 30
    assertEquals("s30", d.refresh(1).shard());
    assertEquals("s30", d.route(1).shard());
    assertEquals(4, calls.get());
  }

  private static Route unwrap(Future<Route> f) throws Exception {
    try {
      return f.get(10, TimeUnit.SECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof ShardmapException se) {
        throw se;
      }
      throw e;
    }
  }
}
