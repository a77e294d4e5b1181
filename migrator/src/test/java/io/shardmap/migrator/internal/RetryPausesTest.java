package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.Backoff;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The migrator's pauses, now core Backoff policies, are the ones its hand-written loops used to take. */
@Tag("unit")
class RetryPausesTest {
  @Test
  void readRetriesPause50To75MsDoublingTo1To1500Ms() {
    long backoffMs = 50; // the old loop: pause in [b, 1.5 b], b doubling from 50 ms to at most 1 s
    Backoff.Attempts pauses = MigrationStore.READ_BACKOFF.start(new SplittableRandom(1));
    for (int retry = 0; retry < 12; retry++) {
      long low = TimeUnit.MILLISECONDS.toNanos(backoffMs);
      long high = TimeUnit.MILLISECONDS.toNanos(backoffMs + backoffMs / 2);
      assertEquals(high, MigrationStore.READ_BACKOFF.ceilingNanos(retry), "retry " + retry);
      long p = pauses.nextPauseNanos();
      assertTrue(p >= low && p <= high, "retry " + retry + ": " + p);
      backoffMs = Math.min(1_000, backoffMs * 2);
    }
  }

  @Test
  void deferredCutoversWait400MsDoublingTo5s() {
    for (int attempts = 1; attempts <= 10; attempts++) {
      long old = TimeUnit.MILLISECONDS.toNanos(Math.min(5_000, 200L << Math.min(attempts, 5)));
      assertEquals(old, MoveDriver.CUTOVER_RETRY_BACKOFF.ceilingNanos(attempts - 1), "attempt " + attempts);
      assertEquals(old, MoveDriver.CUTOVER_RETRY_BACKOFF.pauseNanos(attempts - 1, new SplittableRandom(attempts)));
    }
  }
}
