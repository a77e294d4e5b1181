package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class BackoffTest {
  private static final long MS = 1_000_000L;

  @Test
  void pausesDoubleFromInitialAndStopAtMax() {
    Backoff b = Backoff.exponential(Duration.ofMillis(50), Duration.ofMillis(1000)).withJitter(0);
    Backoff.Attempts a = b.start();
    long[] expected = {50, 100, 200, 400, 800, 1000, 1000};
    for (long e : expected) {
      assertEquals(e * MS, a.nextPauseNanos());
    }
    assertEquals(expected.length, a.retries());
    a.reset();
    assertEquals(50 * MS, a.nextPauseNanos());
  }

  @Test
  void aHugeRetryCountNeitherOverflowsNorExceedsMax() {
    Backoff b = Backoff.exponential(Duration.ofMillis(3), Duration.ofSeconds(5));
    for (int r : new int[] {30, 40, 62, 63, 64, 1000, Integer.MAX_VALUE}) {
      assertEquals(Duration.ofSeconds(5).toNanos(), b.ceilingNanos(r), "retry " + r);
    }
  }

  @Test
  void jitterStaysWithinItsBandAndSpreadsOverIt() {
    Backoff b = Backoff.exponential(Duration.ofMillis(100), Duration.ofMillis(100));
    SplittableRandom rnd = new SplittableRandom(42);
    long min = Long.MAX_VALUE;
    long max = Long.MIN_VALUE;
    for (int i = 0; i < 10_000; i++) {
      long p = b.pauseNanos(0, rnd);
      min = Math.min(min, p);
      max = Math.max(max, p);
    }
    assertTrue(min >= 50 * MS && max <= 100 * MS, min + ".." + max);
    assertTrue(min < 51 * MS && max > 99 * MS, "jitter covers its band: " + min + ".." + max);
  }

  @Test
  void badBoundsAreRefusedNamingTheBound() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Backoff.exponential(Duration.ZERO, Duration.ofSeconds(1)));
    assertTrue(e.getMessage().startsWith("backoff initial"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> Backoff.exponential(Duration.ofSeconds(2), Duration.ofSeconds(1)));
    assertTrue(e.getMessage().startsWith("backoff max"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> Backoff.exponential(Duration.ofSeconds(1), Duration.ofSeconds(1)).withJitter(1.5));
    assertTrue(e.getMessage().startsWith("backoff jitter"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> Backoff.exponential(Duration.ofSeconds(1), Duration.ofSeconds(1)).withJitter(Double.NaN));
  }
}
