package io.shardmap.core;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;
import java.util.random.RandomGenerator;

/**
 * The one retry pause policy of the project: exponential growth from {@code initial} by a factor of two
 * up to {@code max}, each pause drawn uniformly from {@code [d * (1 - jitter), d]} so that many callers
 * failing together do not retry together (grpc-java's {@code ExponentialBackoffPolicy} shape). The policy
 * is an immutable value; each retry loop takes its own {@link Attempts} from {@link #start()}.
 *
 * <p>Pure: it computes pauses and never sleeps, so a caller waits the way its context needs (a sleep, a
 * scheduled task, a loop on an injected ticker that also watches a stop flag) and tests can step it.
 */
public final class Backoff {
  private final long initialNanos;
  private final long maxNanos;
  private final double jitter;

  private Backoff(long initialNanos, long maxNanos, double jitter) {
    this.initialNanos = initialNanos;
    this.maxNanos = maxNanos;
    this.jitter = jitter;
  }

  /**
   * Pauses doubling from {@code initial} to {@code max}, each jittered down by up to half.
   *
   * @throws IllegalArgumentException naming the bound if one is not positive or max is below initial
   */
  public static Backoff exponential(Duration initial, Duration max) {
    if (initial == null || initial.isNegative() || initial.isZero()) {
      throw new IllegalArgumentException("backoff initial: must be a positive duration, got " + initial);
    }
    if (max == null || max.compareTo(initial) < 0) {
      throw new IllegalArgumentException("backoff max: must be at least initial " + initial + ", got " + max);
    }
    return new Backoff(initial.toNanos(), max.toNanos(), 0.5);
  }

  /**
   * The same growth with pauses drawn from {@code [d * (1 - fraction), d]}; 0 gives exact pauses.
   *
   * @throws IllegalArgumentException if {@code fraction} is not within [0, 1]
   */
  public Backoff withJitter(double fraction) {
    if (!(fraction >= 0 && fraction <= 1)) {
      throw new IllegalArgumentException("backoff jitter: must be within [0, 1], got " + fraction);
    }
    return new Backoff(initialNanos, maxNanos, fraction);
  }

  public Duration initial() {
    return Duration.ofNanos(initialNanos);
  }

  public Duration max() {
    return Duration.ofNanos(maxNanos);
  }

  public double jitter() {
    return jitter;
  }

  /** The un-jittered pause before retry number {@code retry} (0 for the first): initial * 2^retry, capped. */
  public long ceilingNanos(int retry) {
    if (retry < 0) {
      throw new IllegalArgumentException("backoff retry: must be >= 0, got " + retry);
    }
    int shift = Math.min(retry, 62);
    long d = initialNanos << shift;
    return (d >>> shift) != initialNanos || d <= 0 || d > maxNanos ? maxNanos : d;
  }

  /** The pause before retry number {@code retry}, jittered with {@code random}. */
  public long pauseNanos(int retry, RandomGenerator random) {
    long d = ceilingNanos(retry);
    long spread = (long) (d * jitter);
    return spread <= 0 ? d : d - random.nextLong(spread + 1);
  }

  /** A fresh retry sequence with thread-local randomness. */
  public Attempts start() {
    return new Attempts(this, ThreadLocalRandom.current());
  }

  /** A fresh retry sequence drawing jitter from {@code random} (tests pass a seeded one). */
  public Attempts start(RandomGenerator random) {
    return new Attempts(this, random);
  }

  @Override
  public String toString() {
    return "Backoff[" + Duration.ofNanos(initialNanos) + " doubling to " + Duration.ofNanos(maxNanos)
        + ", jitter " + jitter + "]";
  }

  /**
   * One retry loop's position in a {@link Backoff}: not thread-safe, owned by the loop that retries.
   * {@link #reset()} after a success, so the next failure starts from the initial pause again.
   */
  public static final class Attempts {
    private final Backoff policy;
    private final RandomGenerator random;
    private int retries;

    private Attempts(Backoff policy, RandomGenerator random) {
      this.policy = policy;
      this.random = random;
    }

    /** The pause before the next retry; each call moves one step along the sequence. */
    public long nextPauseNanos() {
      long pause = policy.pauseNanos(retries, random);
      if (retries < Integer.MAX_VALUE) {
        retries++;
      }
      return pause;
    }

    /** Pauses taken since the start or the last reset. */
    public int retries() {
      return retries;
    }

    public void reset() {
      retries = 0;
    }
  }
}
