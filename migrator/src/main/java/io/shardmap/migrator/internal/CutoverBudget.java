package io.shardmap.migrator.internal;

import java.time.Duration;
import java.util.ArrayDeque;

/**
 * The write-pause budget of one cutover attempt, as one deadline counted from the moment the source's
 * table locks are requested (writers queue behind that request at once, before it is granted). Every later
 * step of the attempt spends from it, and the attempt goes past the point of no return (committing the
 * source's fence, then etcd's owner switch) only while what is left covers the measured cost of getting
 * there: the fence's commit, etcd's commit and the target's lift commit ({@link #fits}).
 *
 * <p>Pure arithmetic on a monotonic tick count in nanoseconds supplied by the caller, so that the decisions
 * can be tested without servers or sleeping.
 */
final class CutoverBudget {
  private final long budgetNanos;
  private final long start;

  /**
   * @param startNanos the tick at which the source's lock request is sent (the pause's first instant)
   */
  CutoverBudget(Duration budget, long startNanos) {
    if (budget.isNegative() || budget.isZero()) {
      throw new IllegalArgumentException("budget: must be positive, got " + budget);
    }
    this.budgetNanos = budget.toNanos();
    this.start = startNanos;
  }

  /**
   * How long the source's table locks may be waited for, so that the drain and the commits after it still
   * fit: the budget less {@code reserve}. Zero when nothing is left (the attempt should not lock at all).
   */
  static Duration lockWait(Duration budget, Duration reserve) {
    Duration left = budget.minus(reserve);
    return left.isNegative() ? Duration.ZERO : left;
  }

  /** Pause so far, at tick {@code now}. */
  long elapsedNanos(long now) {
    return now - start;
  }

  /** What is left of the budget at tick {@code now} (negative once overrun). */
  long remainingNanos(long now) {
    return budgetNanos - (now - start);
  }

  /**
   * Whether the attempt may go on at tick {@code now}, with {@code reserveNanos} still to spend before
   * writes are accepted again (the commits ahead). False once what is left does not cover it.
   */
  boolean fits(long now, long reserveNanos) {
    return remainingNanos(now) >= reserveNanos;
  }

  /**
   * The latest few samples of one latency (etcd's commit); the estimate is the larger of the latest
   * sample (how it is right now: the cutover takes one just before it locks) and the median of the window
   * (so one fast sample on a loaded machine does not promise too much, and one slow spike does not hold
   * back the attempts after it, as the largest sample would).
   */
  static final class Recent {
    private final int window;
    private final ArrayDeque<Long> samples = new ArrayDeque<>();

    Recent(int window) {
      if (window < 1) {
        throw new IllegalArgumentException("window: must be at least 1, got " + window);
      }
      this.window = window;
    }

    void add(long nanos) {
      if (samples.size() == window) {
        samples.removeFirst();
      }
      samples.addLast(Math.max(0, nanos));
    }

    /** The larger of the latest sample and the recent median; {@code otherwise} when none was taken yet. */
    long estimate(long otherwise) {
      if (samples.isEmpty()) {
        return otherwise;
      }
      long[] sorted = samples.stream().mapToLong(Long::longValue).sorted().toArray();
      return Math.max(samples.getLast(), sorted[sorted.length / 2]);
    }

    boolean isEmpty() {
      return samples.isEmpty();
    }
  }
}
