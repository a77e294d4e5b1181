package io.shardmap.bench;

import java.time.Duration;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Writes at a fixed rate, open loop: write i is due at {@code t0 + i / rate} whatever happened to earlier
 * writes, and is handed to a pool of threads at that moment. Its latency counts from when it was due, not
 * from when a thread took it up, so a stall shows in every write due during it: nothing is left out
 * because the writer itself was held up (no coordinated omission). Bounded by a count and a time.
 *
 * <p>Keys are drawn with a fixed seed: a fraction inside [base, base + insideSpan), where base is what
 * {@link #insideBase} last set when the write was due, the rest inside [outsideLo, outsideHi).
 */
final class FixedRateWriter implements AutoCloseable {
  /** One write of {@code key}; {@code seq} is the write's number (a value that differs per write). */
  interface Write {
    void run(long key, long seq) throws Exception;
  }

  private final double rate;
  private final int maxWrites;
  private final Write write;
  private final ThreadPoolExecutor pool;
  private final Thread dispatcher;
  /** Per write: its key, or for a key inside, its offset from the base. */
  private final long[] keys;
  private final boolean[] inside;
  /** Per write: ns from t0 to when it was due, its latency (ns), 1 ok / 2 failed (0: not run). */
  private final long[] due;
  private final long[] latency;
  private final byte[] status;
  private final AtomicLong errors = new AtomicLong();
  private final AtomicReference<Throwable> firstError = new AtomicReference<>();
  private volatile long insideBase;
  private volatile boolean stop;
  private volatile int dispatched;
  private final long maxTimeNanos;
  private long t0;
  private long deadline;

  FixedRateWriter(double rate, int threads, Duration maxTime, double insideFraction, long insideSpan,
                  long outsideLo, long outsideHi, long seed, Write write) {
    if (rate <= 0 || rate > 100_000 || threads < 1 || insideFraction < 0 || insideFraction > 1) {
      throw new IllegalArgumentException("rate 0-100000/s, threads >= 1, inside fraction 0-1");
    }
    this.rate = rate;
    this.write = write;
    long n = (long) Math.ceil(rate * maxTime.toNanos() / 1e9);
    if (n > 50_000_000) {
      throw new IllegalArgumentException("rate x max time is over 50,000,000 writes: " + n);
    }
    maxWrites = (int) n;
    keys = new long[maxWrites];
    inside = new boolean[maxWrites];
    SplittableRandom rnd = new SplittableRandom(seed);
    for (int i = 0; i < maxWrites; i++) {
      inside[i] = rnd.nextDouble() < insideFraction;
      keys[i] = inside[i] ? rnd.nextLong(insideSpan) : rnd.nextLong(outsideLo, outsideHi);
    }
    due = new long[maxWrites];
    latency = new long[maxWrites];
    status = new byte[maxWrites];
    maxTimeNanos = maxTime.toNanos();
    pool = new ThreadPoolExecutor(threads, threads, 1, TimeUnit.MINUTES, new LinkedBlockingQueue<>(), r -> {
      Thread t = new Thread(r, "fixed-rate-writer");
      t.setDaemon(true);
      return t;
    });
    pool.prestartAllCoreThreads();
    dispatcher = new Thread(this::dispatch, "fixed-rate-dispatcher");
    dispatcher.setDaemon(true);
  }

  /** Writes due from now on to keys inside go to [base, base + insideSpan). */
  void insideBase(long base) {
    insideBase = base;
  }

  /** Starts the schedule now; returns t0, the nanoTime every due time counts from. */
  long start() {
    t0 = System.nanoTime();
    deadline = t0 + maxTimeNanos;
    dispatcher.start();
    return t0;
  }

  private void dispatch() {
    double period = 1e9 / rate;
    for (int i = 0; i < maxWrites && !stop; i++) {
      long at = t0 + (long) (i * period);
      if (at >= deadline) {
        break;
      }
      long wait;
      while ((wait = at - System.nanoTime()) > 0 && !stop) {
        LockSupport.parkNanos(wait);
      }
      if (stop) {
        break;
      }
      int w = i;
      due[w] = at - t0;
      long key = inside[w] ? insideBase + keys[w] : keys[w];
      pool.execute(() -> run(w, key, at));
      dispatched = i + 1;
    }
  }

  private void run(int w, long key, long at) {
    byte s = 1;
    try {
      write.run(key, w);
    } catch (Exception | AssertionError e) {
      s = 2;
      errors.incrementAndGet();
      firstError.compareAndSet(null, e);
    }
    latency[w] = System.nanoTime() - at;
    status[w] = s;
  }

  /** Stops scheduling and waits (at most {@code wait}) for the writes under way; returns the results. */
  Samples stop(Duration wait) throws InterruptedException {
    stop = true;
    dispatcher.join(wait.toMillis());
    pool.shutdown();
    if (!pool.awaitTermination(wait.toMillis(), TimeUnit.MILLISECONDS)) {
      throw new IllegalStateException("writes still running " + wait + " after the writer stopped");
    }
    int n = dispatched;
    return new Samples(t0, Arrays.copyOf(due, n), Arrays.copyOf(latency, n), Arrays.copyOf(status, n),
        Arrays.copyOf(inside, n), errors.get(), firstError.get());
  }

  @Override
  public void close() {
    stop = true;
    pool.shutdownNow();
  }

  /** What was written: per write due time (ns after t0), latency, status, whether its key was inside. */
  record Samples(long t0, long[] due, long[] latency, byte[] status, boolean[] inside, long errors, Throwable firstError) {
    /**
     * The writes due in [from, to) (nanoTime) whose key was inside (true), outside (false) or either
     * (null).
     */
    Window window(long from, long to, Boolean insideOnly) {
      return windows(new long[] {from}, new long[] {to}, insideOnly);
    }

    /** Several windows pooled: all their latencies; the longest gap within any one of them. */
    Window windows(long[] from, long[] to, Boolean insideOnly) {
      long[] lat = new long[due.length];
      int n = 0;
      long failed = 0;
      long gap = 0;
      for (int w = 0; w < from.length; w++) {
        long[] done = new long[due.length];
        int k = 0;
        for (int i = 0; i < due.length; i++) {
          long at = t0 + due[i];
          if (at < from[w] || at >= to[w] || (insideOnly != null && inside[i] != insideOnly)) {
            continue;
          }
          if (status[i] == 2) {
            failed++;
          }
          lat[n++] = latency[i];
          done[k++] = at + latency[i];
        }
        Arrays.sort(done, 0, k);
        for (int i = 1; i < k; i++) {
          gap = Math.max(gap, done[i] - done[i - 1]);
        }
      }
      return new Window(Report.Dist.of(Arrays.copyOf(lat, n)), failed, gap);
    }
  }

  /**
   * Latencies of the writes of a window, the failed ones among them, and the longest time between two
   * consecutive completions (a pause shows as a gap; at a fixed rate the normal gap is 1 / rate).
   */
  record Window(Report.Dist latency, long failed, long longestGapNanos) {}
}
