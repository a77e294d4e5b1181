package io.shardmap.testkit;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/**
 * Waiting in tests for something another thread or process makes true (a watch delivering a change, a
 * server coming back). Always bounded: a change that never arrives fails the test with what was awaited,
 * instead of hanging it. The timeout is a bound on the wait, never an assertion about speed.
 */
public final class Await {
  private static final long POLL_MILLIS = 10;

  private Await() {}

  /**
   * Polls {@code condition} every 10 ms until it holds; throws {@link AssertionError} naming {@code what}
   * once {@code timeout} has passed without it holding.
   */
  public static void until(Duration timeout, String what, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() - deadline > 0) {
        throw new AssertionError("timed out after " + timeout + " waiting for: " + what);
      }
      Thread.sleep(POLL_MILLIS);
    }
  }
}
