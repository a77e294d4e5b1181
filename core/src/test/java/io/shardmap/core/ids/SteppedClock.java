package io.shardmap.core.ids;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A fake {@link IdClock}: monotonic ns advance only when asked or when the generator pauses (a pause of n
 * ns advances them by n), and the wall clock follows them plus a step the test sets (backwards too).
 */
final class SteppedClock implements IdClock {
  private final long wallBase;
  private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
  private final AtomicLong wallStep = new AtomicLong();
  final AtomicLong pauses = new AtomicLong();

  SteppedClock(long wallMillis) {
    this.wallBase = wallMillis - nanos.get() / 1_000_000;
  }

  @Override
  public long wallMillis() {
    return wallBase + nanos.get() / 1_000_000 + wallStep.get();
  }

  @Override
  public long nanoTime() {
    return nanos.get();
  }

  @Override
  public void pause(long n) {
    pauses.incrementAndGet();
    nanos.addAndGet(Math.max(1, n));
  }

  void advanceMillis(long ms) {
    nanos.addAndGet(ms * 1_000_000);
  }

  /** Steps only the wall clock (NTP step, VM restore); the monotonic clock does not move. */
  void stepWall(long ms) {
    wallStep.addAndGet(ms);
  }
}
