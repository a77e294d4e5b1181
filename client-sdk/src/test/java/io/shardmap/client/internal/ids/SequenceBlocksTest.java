package io.shardmap.client.internal.ids;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The block and prefetch logic of dense sequences, with an executor the test runs by hand (no sleeps): the
 * prefetch starts at half a block and next() then makes no reservation of its own; a failed prefetch is tried
 * again when the block is used up and refused UNAVAILABLE if that fails too; a reservation still in flight is
 * waited for within the bound and kept for the next call; many threads get every number once, increasing
 * per thread; close stops at once.
 */
@Tag("unit")
class SequenceBlocksTest {
  /** Runs what was submitted only when the test says so, or at once in direct mode. */
  static final class ManualExecutor implements Executor {
    final Deque<Runnable> queue = new ArrayDeque<>();
    volatile boolean direct;

    @Override
    public synchronized void execute(Runnable r) {
      if (direct) {
        r.run();
      } else {
        queue.add(r);
      }
    }

    synchronized int queued() {
      return queue.size();
    }

    void runAll() {
      Runnable r;
      while ((r = poll()) != null) {
        r.run();
      }
    }

    synchronized Runnable poll() {
      return queue.poll();
    }
  }

  /** Consecutive blocks from 1 (as the server's next_value), counting calls; fails while {@link #failing}. */
  static final class FakeSource implements SequenceBlocks.Source {
    final AtomicLong next = new AtomicLong(1);
    final AtomicInteger calls = new AtomicInteger();
    volatile String failing;

    @Override
    public long[] reserve(long count) {
      calls.incrementAndGet();
      if (failing != null) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, failing);
      }
      long first = next.getAndAdd(count);
      return new long[] {first, first + count - 1};
    }
  }

  final ManualExecutor executor = new ManualExecutor();
  final FakeSource source = new FakeSource();

  SequenceBlocks blocks(long size, long maxWaitNanos) {
    return new SequenceBlocks("orders", size, source, executor, maxWaitNanos, System::nanoTime);
  }

  @Test
  void prefetchStartsAtHalfABlockAndNextNeverCallsTheSource() {
    SequenceBlocks s = blocks(10, 0);
    assertEquals(1, source.calls.get());
    for (long v = 1; v <= 5; v++) {
      assertEquals(v, s.next());
    }
    assertEquals(0, executor.queued(), "no prefetch before half the block is used");
    assertEquals(6, s.next());
    assertEquals(1, executor.queued(), "the prefetch is submitted when the number at half the block is taken");
    assertEquals(1, source.calls.get(), "next() itself reserves nothing");
    executor.runAll();
    assertEquals(2, source.calls.get());
    for (long v = 7; v <= 10; v++) {
      assertEquals(v, s.next());
    }
    // The block is used up: the prefetched one is installed with no wait (maxWait 0) and no reservation.
    assertEquals(11, s.next());
    assertEquals(2, source.calls.get());
    assertArrayEquals(new long[] {11, 20, 12}, s.currentBlock());
    for (long v = 12; v <= 15; v++) {
      assertEquals(v, s.next());
    }
    assertEquals(0, executor.queued());
    assertEquals(16, s.next());
    assertEquals(1, executor.queued(), "one prefetch per block");
  }

  @Test
  void aBlockOfOnePrefetchesOnItsOnlyNumber() {
    SequenceBlocks s = blocks(1, 0);
    assertEquals(1, s.next());
    assertEquals(1, executor.queued());
    executor.runAll();
    assertEquals(2, s.next());
  }

  @Test
  void aFailedPrefetchIsTriedAgainWhenNeededThenRefusedUnavailable() {
    SequenceBlocks s = blocks(4, TimeUnit.SECONDS.toNanos(5));
    s.next();
    s.next();
    s.next();                                   // 3 = first + 4/2: prefetch submitted
    source.failing = "no directory server answered (test)";
    executor.runAll();                          // the prefetch fails
    assertEquals(2, source.calls.get());
    assertEquals(4, s.next());
    executor.direct = true;                     // from here reservations complete when submitted
    ShardmapException e = assertThrows(ShardmapException.class, s::next);
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("sequence 'orders': its block is used up")
        && e.getMessage().contains("no directory server answered (test)"), e.getMessage());
    assertEquals(3, source.calls.get(), "one more reservation when the block was needed, then the refusal");
    source.failing = null;
    // The next call tries again and gets the block above everything reserved so far.
    assertEquals(5, s.next());
  }

  @Test
  void aReservationInFlightIsWaitedForWithinTheBoundAndKept() {
    SequenceBlocks s = blocks(2, TimeUnit.MILLISECONDS.toNanos(20));
    assertEquals(1, s.next());
    assertEquals(2, s.next());                  // 2 = first + 2/2: prefetch submitted, not run
    ShardmapException e = assertThrows(ShardmapException.class, s::next);
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("still in flight"), e.getMessage());
    assertEquals(1, source.calls.get());
    assertEquals(1, executor.queued(), "the slow path did not start a second reservation");
    executor.runAll();
    assertEquals(3, s.next());
    assertEquals(2, source.calls.get());
  }

  @Test
  void manyThreadsGetEveryNumberOnceIncreasingPerThread() throws Exception {
    executor.direct = true;
    SequenceBlocks s = blocks(7, TimeUnit.SECONDS.toNanos(10));
    int threads = 4;
    int each = 20_000;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<long[]>> parts = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        parts.add(pool.submit(() -> {
          long[] out = new long[each];
          for (int i = 0; i < each; i++) {
            out[i] = s.next();
            if (i > 0 && out[i] <= out[i - 1]) {
              throw new AssertionError("not increasing on one thread: " + out[i - 1] + " then " + out[i]);
            }
          }
          return out;
        }));
      }
      boolean[] seen = new boolean[threads * each + 1];
      for (Future<long[]> p : parts) {
        for (long v : p.get(60, TimeUnit.SECONDS)) {
          assertTrue(v >= 1 && v <= threads * each, "out of range: " + v);
          assertTrue(!seen[(int) v], "duplicate " + v);
          seen[(int) v] = true;
        }
      }
      // Every block is used up before the next is installed: the numbers are exactly 1..N.
      long reserved = source.next.get() - 1;
      assertTrue(reserved - threads * each < 2 * 7, "at most the rest of a block and one prefetched block unused");
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void closeStopsAtOnce() {
    SequenceBlocks s = blocks(10, 0);
    assertEquals(1, s.next());
    s.close();
    ShardmapException e = assertThrows(ShardmapException.class, s::next);
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("closed"), e.getMessage());
  }

  @Test
  void aBlockBelowThePreviousOneIsRefused() {
    executor.direct = true;
    SequenceBlocks s = blocks(2, TimeUnit.SECONDS.toNanos(5));
    source.next.set(1);                         // the source goes back: its next block overlaps [1, 2]
    assertEquals(1, s.next());
    assertEquals(2, s.next());
    ShardmapException e = assertThrows(ShardmapException.class, s::next);
    assertEquals(ErrorCode.INTERNAL, e.code());
    assertTrue(e.getMessage().contains("does not lie above the previous one"), e.getMessage());
  }

  @Test
  void aBadBlockFromTheSourceIsRefused() {
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> new SequenceBlocks("orders", 10, n -> new long[] {5, 4}, executor, 0, System::nanoTime));
    assertEquals(ErrorCode.INTERNAL, e.code());
  }
}
