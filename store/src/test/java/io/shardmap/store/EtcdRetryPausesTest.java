package io.shardmap.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * EtcdMetaStore's two retry loops pause by {@code io.shardmap.core.Backoff} as they did by hand before: a
 * resent call 50, 100, 200, 400, then 500 ms; a reopened watch 100 ms doubling to 3 s; each pause drawn
 * from the upper half of its step.
 */
@Tag("unit")
class EtcdRetryPausesTest {
  @Test
  void sendRetryPausesAreTheHandWrittenOnes() {
    for (int sends = 1; sends <= 40; sends++) {
      long handWritten = Math.min(500, 25L << Math.min(sends, 5));
      assertEquals(TimeUnit.MILLISECONDS.toNanos(handWritten), EtcdMetaStore.SEND_RETRY.ceilingNanos(sends - 1),
          "after send " + sends);
    }
  }

  @Test
  void watchRetryPausesAreTheHandWrittenOnes() {
    for (int failures = 1; failures <= 40; failures++) {
      long handWritten = Math.min(3_000, 100L << Math.min(failures - 1, 10));
      assertEquals(TimeUnit.MILLISECONDS.toNanos(handWritten), EtcdMetaStore.WATCH_RETRY.ceilingNanos(failures - 1),
          "after failure " + failures);
    }
  }

  @Test
  void eachPauseIsJitteredWithinTheUpperHalfOfItsStep() {
    SplittableRandom random = new SplittableRandom(7);
    for (int retry = 0; retry < 10; retry++) {
      long ceiling = EtcdMetaStore.WATCH_RETRY.ceilingNanos(retry);
      for (int i = 0; i < 200; i++) {
        long p = EtcdMetaStore.WATCH_RETRY.pauseNanos(retry, random);
        assertTrue(p >= ceiling / 2 && p <= ceiling, p + " outside [" + ceiling / 2 + ", " + ceiling + "]");
      }
    }
  }
}
