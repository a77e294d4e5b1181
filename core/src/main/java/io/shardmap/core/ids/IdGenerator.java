package io.shardmap.core.ids;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.time.Duration;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Snowflake ids for one worker id: time (ms since the layout's epoch), worker, sequence. Thread-safe: the
 * whole state is one packed long ({@code time << sequenceBits | sequence} of the last id issued) advanced
 * by compare-and-set, so {@link #next()} allocates nothing and takes no lock.
 *
 * <p>Guarantees:
 * <ul>
 *   <li>Ids from one generator strictly increase in their time-ordered form ({@link IdLayout#unspread}), so
 *       with {@code spreadBits = 0} the ids themselves strictly increase; no id is issued twice.
 *   <li>Every id's time is above the lease's {@link WorkerLease#startAfterMillis()} and at most its
 *       {@link WorkerLease#issueUntilMillis()}, and is issued only while {@code nanoTime <=
 *       validUntilNanos}: once the process cannot prove its lease, the next call refuses with UNAVAILABLE
 *       and issues again as soon as the lease is renewed. The id's time is a wall-clock reading taken before
 *       that check, so it is a time at which the lease was still held, however long the process is frozen
 *       inside the call.
 *   <li>Waits: when a millisecond's sequence is used up, when the wall clock is behind the last id's time
 *       (stepped back) and when it is not yet past {@code startAfterMillis}, the call waits for the clock;
 *       if one call has waited {@code maxWait} in total it refuses with FAILED_PRECONDITION and issues
 *       nothing. It never reuses a time it has already passed.
 * </ul>
 */
public final class IdGenerator {
  /** The default bound on one call's waiting for the clock: long enough for NTP's 128 ms step threshold and a slow leap second smear, short enough to surface a broken clock. */
  public static final Duration DEFAULT_MAX_WAIT = Duration.ofSeconds(1);

  /** Pause hint while a millisecond's sequence is used up: below IdClock.SYSTEM's spin threshold. */
  private static final long SEQUENCE_PAUSE_NANOS = 10_000;

  /** A pause never exceeds maxWait's own bound (60 s), which also keeps the ns arithmetic from overflowing. */
  private static final long MAX_PAUSE_MILLIS = 60_000;

  private final IdLayout layout;
  private final WorkerLease lease;
  private final IdClock clock;
  private final long maxWaitNanos;
  private final int workerId;
  private final int sequenceBits;
  private final int timeShift;
  private final long sequenceMask;
  private final long workerShifted;
  private final long epochMillis;
  private final long maxTime;
  /** The state of a generator that {@link #retire()} stopped: no packed (time, sequence) is negative but -1. */
  private static final long RETIRED = Long.MIN_VALUE;

  /**
   * {@code time << sequenceBits | sequence} of the last id issued; -1 (time -1) before the first;
   * {@link #RETIRED} once retired.
   */
  private final AtomicLong last = new AtomicLong(-1);
  /** What the first {@link #retire()} returned, for later calls; guarded by {@code this}. */
  private OptionalLong retiredAt;

  private IdGenerator(IdLayout layout, WorkerLease lease, IdClock clock, Duration maxWait) {
    if (layout == null) {
      throw ShardmapException.invalid("layout", "must not be null");
    }
    if (lease == null) {
      throw ShardmapException.invalid("lease", "must not be null");
    }
    if (clock == null) {
      throw ShardmapException.invalid("clock", "must not be null");
    }
    if (maxWait == null || maxWait.isNegative() || maxWait.compareTo(Duration.ofMinutes(1)) > 0) {
      throw ShardmapException.invalid("maxWait", "must be within 0..60 s, got " + maxWait);
    }
    int worker = lease.workerId();
    if (worker < 0 || worker > layout.maxWorker()) {
      throw ShardmapException.invalid("workerId", "must be within 0.." + layout.maxWorker() + " for "
          + layout.workerBits() + " worker bits, got " + worker);
    }
    this.layout = layout;
    this.lease = lease;
    this.clock = clock;
    this.maxWaitNanos = maxWait.toNanos();
    this.workerId = worker;
    this.sequenceBits = layout.sequenceBits();
    this.timeShift = layout.workerBits() + layout.sequenceBits();
    this.sequenceMask = layout.maxSequence();
    this.workerShifted = (long) worker << layout.sequenceBits();
    this.epochMillis = layout.epochMillis();
    this.maxTime = layout.maxTime();
  }

  /** A generator on the system clock that waits at most {@link #DEFAULT_MAX_WAIT} per call. */
  public static IdGenerator create(IdLayout layout, WorkerLease lease) {
    return new IdGenerator(layout, lease, IdClock.SYSTEM, DEFAULT_MAX_WAIT);
  }

  /**
   * @param maxWait how long one call may wait for the clock in total (0..60 s) before refusing
   * @throws ShardmapException INVALID_ARGUMENT naming the field if an argument is null or out of range, or
   *     the lease's worker id does not fit the layout's worker bits
   */
  public static IdGenerator create(IdLayout layout, WorkerLease lease, IdClock clock, Duration maxWait) {
    return new IdGenerator(layout, lease, clock, maxWait);
  }

  public IdLayout layout() {
    return layout;
  }

  public int workerId() {
    return workerId;
  }

  /**
   * Stops this generator for good and returns the wall-clock time (ms since the Unix epoch) of the last id
   * it issued, empty if it issued none. Atomic with issuing: the state moves to "retired" by the same
   * compare-and-set that issues ids, so every id this generator ever returns (including from calls running
   * concurrently with this one) has a time at or below the returned value, and every later or losing
   * {@link #next()}/{@link #fill} refuses with UNAVAILABLE. Calling it again returns the same answer.
   *
   * <p>This is what a holder needs to hand its worker id back with an exact high-water mark
   * (docs/worker-leases.md, "A clean release"): no id above the returned time can appear afterwards.
   */
  public synchronized OptionalLong retire() {
    if (retiredAt != null) {
      return retiredAt;
    }
    long prev = last.getAndSet(RETIRED);
    retiredAt = prev < 0 ? OptionalLong.empty() : OptionalLong.of((prev >> sequenceBits) + epochMillis);
    return retiredAt;
  }

  /**
   * The next id.
   *
   * @throws ShardmapException UNAVAILABLE when the lease cannot be proven (expired, or the clock is past
   *     its issue-until mark); FAILED_PRECONDITION when the clock stayed behind for longer than maxWait,
   *     is before the layout's epoch, or the layout has run out. Nothing is issued then.
   */
  public long next() {
    long first = reserve(1);
    return layout.spread(((first >>> sequenceBits) << timeShift) | workerShifted | (first & sequenceMask));
  }

  /**
   * Fills {@code out[from .. from + n)} with ids, reserving up to a millisecond's remaining sequence per
   * compare-and-set. On a refusal the ids already written stay issued (and unique); the rest is untouched.
   */
  public void fill(long[] out, int from, int n) {
    if (out == null || from < 0 || n < 0 || n > out.length - from) {
      throw ShardmapException.invalid("out", "from " + from + " and n " + n + " must lie within the array of length "
          + (out == null ? "null" : out.length));
    }
    int i = from;
    int end = from + n;
    while (i < end) {
      int want = end - i;
      long first = reserve(want);
      long seq = first & sequenceMask;
      long got = Math.min(want, sequenceMask - seq + 1);
      long base = ((first >>> sequenceBits) << timeShift) | workerShifted;
      for (long k = 0; k < got; k++) {
        out[i++] = layout.spread(base | (seq + k));
      }
    }
  }

  /**
   * Takes {@code min(want, what is left of the millisecond)} sequence numbers and returns the first as
   * {@code time << sequenceBits | sequence}.
   */
  private long reserve(int want) {
    long waitedSince = 0;
    boolean waiting = false;
    for (;;) {
      long prev = last.get();
      if (prev == RETIRED) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "worker id " + workerId + ": this generator was "
            + "retired (its worker id is being handed back), so it issues no more ids");
      }
      // The wall clock is read BEFORE the lease is checked: the id's time is then a moment at which the lease
      // was still provably held, even if the process freezes (GC, SIGSTOP) anywhere in this call. Read after
      // the check, a freeze between the two reads would stamp the id with a time after the lease had lapsed.
      long wall = clock.wallMillis();
      long nowNanos = clock.nanoTime();
      long validUntil = lease.validUntilNanos();
      if (nowNanos - validUntil > 0) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "worker id " + workerId + ": its lease could not be "
            + "proven for the last " + (nowNanos - validUntil) / 1_000_000 + " ms, so no id is issued until it is "
            + "renewed (two processes must never share a worker id)");
      }
      long time = wall - epochMillis;
      if (time < 0) {
        // Only a clock stepped back past the epoch (a layout's epoch is not after its build time): waiting
        // cannot be bounded sensibly, and nothing before the epoch is representable.
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "worker id " + workerId + ": the clock (" + wall
            + " ms) is before the id layout's epoch " + layout.epoch());
      }
      long prevTime = prev >> sequenceBits;
      long behindNanos;
      if (time > prevTime) {
        long startAfter = lease.startAfterMillis();
        if (wall <= startAfter) {
          behindNanos = Math.min(startAfter - wall + 1, MAX_PAUSE_MILLIS) * 1_000_000;
        } else {
          checkIssuable(wall, time);
          long next = time << sequenceBits;
          if (last.compareAndSet(prev, next + Math.min(want, sequenceMask + 1) - 1)) {
            return next;
          }
          continue;
        }
      } else if (time == prevTime) {
        long seq = prev & sequenceMask;
        if (seq < sequenceMask) {
          checkIssuable(wall, time);
          if (last.compareAndSet(prev, prev + Math.min(want, sequenceMask - seq))) {
            return prev + 1;
          }
          continue;
        }
        behindNanos = SEQUENCE_PAUSE_NANOS;
      } else {
        behindNanos = Math.min(prevTime - time, MAX_PAUSE_MILLIS) * 1_000_000;
      }
      if (!waiting) {
        waiting = true;
        waitedSince = nowNanos;
      }
      long waited = nowNanos - waitedSince;
      if (waited >= maxWaitNanos) {
        throw clockBehind(wall, prevTime, waited);
      }
      clock.pause(Math.min(behindNanos, maxWaitNanos - waited));
    }
  }

  private void checkIssuable(long wall, long time) {
    long issueUntil = lease.issueUntilMillis();
    if (wall > issueUntil) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "worker id " + workerId + ": the clock (" + wall
          + " ms) is past the time the lease service recorded this worker may issue up to (" + issueUntil
          + " ms), so no id is issued until it records a later one");
    }
    if (time > maxTime) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "worker id " + workerId + ": the id layout ran "
          + "out at " + layout.runsOutAt() + " (its " + layout.timeBits() + " time bits are used up)");
    }
  }

  private ShardmapException clockBehind(long wall, long prevTime, long waitedNanos) {
    long startAfter = lease.startAfterMillis();
    String why = wall <= startAfter
        ? "is not past " + startAfter + " ms, up to which the previous holder of this worker id may have issued ids"
        : prevTime >= 0 && wall - epochMillis < prevTime
            ? "is behind the last id's time (" + (prevTime + epochMillis) + " ms): it stepped back"
            : "did not move past the millisecond whose sequence is used up (" + (prevTime + epochMillis) + " ms)";
    return new ShardmapException(ErrorCode.FAILED_PRECONDITION, "worker id " + workerId + ": the clock (" + wall
        + " ms) " + why + "; waited " + waitedNanos / 1_000_000 + " ms (maxWait " + maxWaitNanos / 1_000_000
        + " ms) and issued nothing rather than repeat an id");
  }

  @Override
  public String toString() {
    return "IdGenerator{worker=" + workerId + ", " + layout + "}";
  }
}
