package io.shardmap.core.ids;

import java.util.concurrent.locks.LockSupport;

/**
 * The time an {@link IdGenerator} reads and the way it lets time pass, injected so tests can step the wall
 * clock (backwards too) and make waits advance a fake clock instead of sleeping.
 */
public interface IdClock {
  /** Wall-clock ms since the Unix epoch; may step backwards (NTP, VM migration). */
  long wallMillis();

  /** Monotonic ns (the {@link System#nanoTime()} scale), the scale of {@link WorkerLease#validUntilNanos()}. */
  long nanoTime();

  /**
   * Lets about {@code nanos} pass; may return early (the generator reads the clock again). The system
   * clock spins below 100 µs, where parking would overshoot a millisecond boundary, and parks above.
   */
  void pause(long nanos);

  /** {@link System#currentTimeMillis()} and {@link System#nanoTime()}. */
  IdClock SYSTEM = new IdClock() {
    @Override
    public long wallMillis() {
      return System.currentTimeMillis();
    }

    @Override
    public long nanoTime() {
      return System.nanoTime();
    }

    @Override
    public void pause(long nanos) {
      if (nanos < 100_000) {
        Thread.onSpinWait();
      } else {
        LockSupport.parkNanos(nanos);
      }
    }

    @Override
    public String toString() {
      return "IdClock.SYSTEM";
    }
  };
}
