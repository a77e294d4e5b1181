package io.shardmap.bench;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * When each of n observers (clients' map listeners, a raw etcd watch) first saw a revision above
 * {@code after}: the {@code System.nanoTime()} taken in the observer's own callback, and the revision it
 * saw. Arm one before the write it should time; observers call {@link #mark} from their callbacks, which
 * is cheap and never blocks.
 */
public final class Arrivals {
  private final long after;
  private final AtomicLongArray revisions;
  private final long[] nanos;
  private final CountDownLatch all;

  public Arrivals(long after, int observers) {
    this.after = after;
    this.revisions = new AtomicLongArray(observers);
    this.nanos = new long[observers];
    this.all = new CountDownLatch(observers);
  }

  /** Observer {@code i} now holds {@code revision}; only its first revision above the threshold counts. */
  public void mark(int i, long revision) {
    long now = System.nanoTime();
    if (revision > after && revisions.compareAndSet(i, 0, revision)) {
      nanos[i] = now;
      // The count-down publishes nanos[i] to whoever returns from await().
      all.countDown();
    }
  }

  /** Waits until every observer has marked; false on timeout. */
  public boolean await(long timeout, TimeUnit unit) throws InterruptedException {
    return all.await(timeout, unit);
  }

  public int size() {
    return nanos.length;
  }

  public long missing() {
    return all.getCount();
  }

  /** The revision observer i saw, 0 if none yet. */
  public long revision(int i) {
    return revisions.get(i);
  }

  /** When observer i saw it (valid once {@link #await} returned true, or {@link #revision} is non-zero). */
  public long nanos(int i) {
    return nanos[i];
  }

  /** The earliest and the latest arrival, and the median one. */
  public long first() {
    long m = Long.MAX_VALUE;
    for (long n : nanos) {
      m = Math.min(m, n);
    }
    return m;
  }

  public long last() {
    long m = Long.MIN_VALUE;
    for (long n : nanos) {
      m = Math.max(m, n);
    }
    return m;
  }

  public long median() {
    long[] s = nanos.clone();
    java.util.Arrays.sort(s);
    return Report.quantile(s, 0.5);
  }
}
