package io.shardmap.core.ids;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class IdGeneratorTest {
  private static final long START = Instant.parse("2026-12-07T12:00:00Z").toEpochMilli();
  private static final IdLayout LAYOUT =
      IdLayout.builder().clock(Clock.fixed(Instant.ofEpochMilli(START), ZoneOffset.UTC)).build();

  private final SteppedClock clock = new SteppedClock(START);

  private IdGenerator generator(WorkerLease lease) {
    return IdGenerator.create(LAYOUT, lease, clock, Duration.ofSeconds(1));
  }

  private static ShardmapException refused(IdGenerator g, ErrorCode code, String text) {
    ShardmapException e = assertThrows(ShardmapException.class, g::next);
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains(text), e.getMessage());
    return e;
  }

  private static void assertStrictlyIncreasing(long[] ids) {
    for (int i = 1; i < ids.length; i++) {
      assertTrue(ids[i] > ids[i - 1], "id " + i + ": " + ids[i] + " after " + ids[i - 1]);
    }
  }

  private static void assertNoDuplicate(long[] ids) {
    long[] sorted = ids.clone();
    Arrays.sort(sorted);
    for (int i = 1; i < sorted.length; i++) {
      assertTrue(sorted[i] != sorted[i - 1], "duplicate id " + sorted[i]);
    }
  }

  @Test
  void strictlyIncreasingOverMillionsOfIdsFromSeveralThreads() throws Exception {
    IdGenerator g = generator(InMemoryWorkerLease.unbounded(7));
    int threads = 4;
    int perThread = 750_000;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<long[]>> parts = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        parts.add(pool.submit(() -> {
          long[] ids = new long[perThread];
          for (int i = 0; i < perThread; i++) {
            ids[i] = g.next();
          }
          return ids;
        }));
      }
      long[] all = new long[threads * perThread];
      int n = 0;
      for (Future<long[]> f : parts) {
        long[] ids = f.get();
        assertStrictlyIncreasing(ids); // what one thread sees is a sub-sequence of the generator's order
        System.arraycopy(ids, 0, all, n, ids.length);
        n += ids.length;
      }
      assertNoDuplicate(all);
      for (long id : all) {
        assertEquals(7, LAYOUT.workerOf(id));
        assertTrue(id > 0);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * Several threads on one generator while another steps the wall clock back and forth (some steps beyond
   * maxWait) and takes the lease away and back: calls refuse, but no id repeats and each thread's ids
   * strictly increase. (That a lost lease refuses at once: anExpiredLeaseStopsIssuingAtOnceAndARenewalResumes.)
   */
  @Test
  void noDuplicateWhileTheClockStepsAndTheLeaseComesAndGoes() throws Exception {
    InMemoryWorkerLease lease = new InMemoryWorkerLease(12, Long.MIN_VALUE, Long.MAX_VALUE, Long.MAX_VALUE);
    IdGenerator g = generator(lease);
    int threads = 3;
    int perThread = 300_000;
    java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
    java.util.concurrent.atomic.AtomicLong refusals = new java.util.concurrent.atomic.AtomicLong();
    ExecutorService pool = Executors.newFixedThreadPool(threads + 1);
    try {
      Future<?> stepper = pool.submit(() -> {
        java.util.SplittableRandom r = new java.util.SplittableRandom(14);
        int steps = 0;
        while (!done.get() && steps < 20_000) {
          steps++;
          int what = r.nextInt(10);
          if (what < 6) {
            long ms = r.nextLong(1, 1_500); // some beyond the 1 s bound
            clock.stepWall(-ms);
            Thread.yield();
            clock.stepWall(ms + r.nextLong(0, 3));
          } else if (what < 8) {
            lease.validUntilNanos(clock.nanoTime() - 1);
            Thread.yield();
            lease.validUntilNanos(Long.MAX_VALUE);
          } else {
            Thread.yield();
          }
        }
      });
      List<Future<long[]>> parts = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        parts.add(pool.submit(() -> {
          long[] ids = new long[perThread];
          int n = 0;
          int refused = 0;
          while (n < perThread && refused < 1_000_000) {
            try {
              ids[n] = g.next();
              n++;
            } catch (ShardmapException e) {
              assertTrue(e.code() == ErrorCode.UNAVAILABLE || e.code() == ErrorCode.FAILED_PRECONDITION, e.toString());
              refused++;
              refusals.incrementAndGet();
            }
          }
          return Arrays.copyOf(ids, n);
        }));
      }
      List<long[]> results = new ArrayList<>();
      for (Future<long[]> f : parts) {
        results.add(f.get());
      }
      done.set(true);
      stepper.get();
      int total = 0;
      for (long[] ids : results) {
        assertStrictlyIncreasing(ids);
        total += ids.length;
      }
      long[] all = new long[total];
      int at = 0;
      for (long[] ids : results) {
        System.arraycopy(ids, 0, all, at, ids.length);
        at += ids.length;
      }
      assertTrue(total > threads * perThread / 2, "most ids issued: " + total + ", refusals " + refusals.get());
      assertNoDuplicate(all);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void oneThreadIsStrictlyIncreasingWithNextAndFillMixed() {
    IdGenerator g = generator(InMemoryWorkerLease.unbounded(1));
    long[] ids = new long[2_000_000];
    int i = 0;
    while (i < ids.length) {
      if (i % 3 == 0) {
        int n = Math.min(ids.length - i, 1 + i % 9_000);
        g.fill(ids, i, n);
        i += n;
      } else {
        ids[i++] = g.next();
      }
    }
    assertStrictlyIncreasing(ids);
    assertThrows(ShardmapException.class, () -> g.fill(ids, ids.length - 1, 2));
  }

  @Test
  void anExhaustedSequenceWaitsForTheNextMillisecond() {
    IdGenerator g = generator(InMemoryWorkerLease.unbounded(3));
    long t0 = clock.wallMillis() - LAYOUT.epochMillis();
    for (int s = 0; s <= LAYOUT.maxSequence(); s++) {
      long id = g.next();
      assertEquals(t0, LAYOUT.timeOf(id));
      assertEquals(s, LAYOUT.sequenceOf(id));
    }
    assertEquals(0, clock.pauses.get());
    long id = g.next();
    assertTrue(clock.pauses.get() > 0, "it paused");
    assertEquals(t0 + 1, LAYOUT.timeOf(id));
    assertEquals(0, LAYOUT.sequenceOf(id));
  }

  @Test
  void aBackwardStepWithinTheBoundWaitsBeyondItRefusesAndNothingRepeats() {
    IdGenerator g = generator(InMemoryWorkerLease.unbounded(3));
    List<Long> issued = new ArrayList<>();
    issued.add(g.next());
    long lastTime = LAYOUT.timeOf(issued.get(0));
    clock.stepWall(-500);
    long before = clock.nanoTime();
    issued.add(g.next());
    assertTrue(clock.nanoTime() - before >= 499_000_000L, "waited for the clock to catch up");
    assertTrue(LAYOUT.timeOf(issued.get(1)) >= lastTime);
    assertTrue(issued.get(1) > issued.get(0));

    long t = LAYOUT.timeOf(g.next());
    clock.stepWall(-5_000);
    before = clock.nanoTime();
    ShardmapException e = refused(g, ErrorCode.FAILED_PRECONDITION, "stepped back");
    assertTrue(e.getMessage().contains("maxWait 1000 ms"), e.getMessage());
    long waited = clock.nanoTime() - before;
    assertTrue(waited >= 1_000_000_000L && waited < 1_100_000_000L, "waited the bound: " + waited);
    refused(g, ErrorCode.FAILED_PRECONDITION, "stepped back"); // still behind: still refused
    clock.advanceMillis(3_000); // still 1 s behind the last id
    issued.add(g.next()); // waits out the last second
    assertTrue(LAYOUT.timeOf(issued.get(issued.size() - 1)) >= t);
    for (int i = 0; i < 10_000; i++) {
      issued.add(g.next());
    }
    long[] all = issued.stream().mapToLong(Long::longValue).toArray();
    assertStrictlyIncreasing(all);
  }

  @Test
  void aZeroBoundRefusesAtOnce() {
    IdGenerator g = IdGenerator.create(LAYOUT, InMemoryWorkerLease.unbounded(3), clock, Duration.ZERO);
    long first = g.next();
    clock.stepWall(-1);
    refused(g, ErrorCode.FAILED_PRECONDITION, "stepped back");
    clock.stepWall(1);
    assertTrue(g.next() > first);
  }

  @Test
  void noIdAtOrBeforeStartAfter() {
    long wall = clock.wallMillis();
    IdGenerator g = generator(new InMemoryWorkerLease(5, wall + 300, Long.MAX_VALUE, Long.MAX_VALUE));
    long id = g.next();
    assertTrue(LAYOUT.unixMillisOf(id) > wall + 300, "the id's time is above startAfter");
    assertTrue(clock.wallMillis() > wall + 300, "it waited for the clock");

    IdGenerator far = generator(new InMemoryWorkerLease(6, clock.wallMillis() + 5_000, Long.MAX_VALUE, Long.MAX_VALUE));
    refused(far, ErrorCode.FAILED_PRECONDITION, "previous holder of this worker id");
  }

  @Test
  void anExpiredLeaseStopsIssuingAtOnceAndARenewalResumes() {
    long now = clock.nanoTime();
    InMemoryWorkerLease lease = new InMemoryWorkerLease(9, Long.MIN_VALUE, now + 10_000_000, Long.MAX_VALUE);
    IdGenerator g = generator(lease);
    long a = g.next();
    clock.advanceMillis(11);
    long pauses = clock.pauses.get();
    refused(g, ErrorCode.UNAVAILABLE, "lease could not be proven");
    assertEquals(pauses, clock.pauses.get(), "refused without waiting");
    lease.validUntilNanos(clock.nanoTime() + 10_000_000);
    long b = g.next();
    assertTrue(b > a);

    // A lease lost in the middle of a millisecond's sequence stops the next id too.
    lease.validUntilNanos(clock.nanoTime() - 1);
    refused(g, ErrorCode.UNAVAILABLE, "lease could not be proven");
  }

  /**
   * The process freezes (GC pause, SIGSTOP) in the middle of a call, between the call's two clock reads, for
   * longer than its lease; the lease service's issue-until mark is further ahead than that. The id, if one is
   * issued, must carry a time at which the lease was still provably held: a time after the lease's validity
   * would be an id stamped while another process may hold the worker id.
   */
  @Test
  void aFreezeInsideACallNeverYieldsAnIdStampedAfterTheLease() {
    long freezeMs = 3_000;
    long validMs = 500;
    for (int freezeAt = 1; freezeAt <= 3; freezeAt++) {
      SteppedClock base = new SteppedClock(START);
      long n0 = base.nanoTime();
      long w0 = base.wallMillis();
      // Valid for 500 ms from now; the recorded issue-until mark is far beyond the freeze.
      InMemoryWorkerLease lease = new InMemoryWorkerLease(4, Long.MIN_VALUE, n0 + validMs * 1_000_000, w0 + 10_000);
      long validUntilWall = w0 + validMs;
      int at = freezeAt;
      int[] reads = {0};
      IdClock freezing = new IdClock() {
        private void maybeFreeze() {
          if (++reads[0] == at) {
            base.advanceMillis(freezeMs); // both clocks move: the process did not run for 3 s
          }
        }

        @Override
        public long wallMillis() {
          maybeFreeze();
          return base.wallMillis();
        }

        @Override
        public long nanoTime() {
          maybeFreeze();
          return base.nanoTime();
        }

        @Override
        public void pause(long nanos) {
          base.pause(nanos);
        }
      };
      IdGenerator g = IdGenerator.create(LAYOUT, lease, freezing, Duration.ofSeconds(1));
      try {
        long id = g.next();
        assertTrue(LAYOUT.unixMillisOf(id) <= validUntilWall, "freeze at clock read " + at + ": id stamped "
            + LAYOUT.unixMillisOf(id) + ", " + (LAYOUT.unixMillisOf(id) - validUntilWall) + " ms after the lease "
            + "could last be proven (" + validUntilWall + ")");
      } catch (ShardmapException e) {
        assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
      }
    }
  }

  @Test
  void noIdAboveIssueUntil() {
    long wall = clock.wallMillis();
    InMemoryWorkerLease lease = new InMemoryWorkerLease(2, Long.MIN_VALUE, Long.MAX_VALUE, wall + 2);
    IdGenerator g = generator(lease);
    List<Long> ids = new ArrayList<>();
    ShardmapException e = null;
    while (e == null && ids.size() < 100_000) {
      try {
        ids.add(g.next());
      } catch (ShardmapException x) {
        e = x;
      }
    }
    assertTrue(e != null, "refused once the clock passed issueUntil");
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("may issue up to"), e.getMessage());
    assertEquals(3 * (LAYOUT.maxSequence() + 1), ids.size(), "every sequence of ms wall, wall+1, wall+2");
    for (long id : ids) {
      assertTrue(LAYOUT.unixMillisOf(id) <= wall + 2);
    }
    refused(g, ErrorCode.UNAVAILABLE, "may issue up to");
    lease.issueUntilMillis(clock.wallMillis() + 1_000);
    assertTrue(g.next() > ids.get(ids.size() - 1));
  }

  @Test
  void aWorkerIdOutsideTheLayoutIsRefused() {
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> generator(InMemoryWorkerLease.unbounded(1024)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith("workerId: must be within 0..1023"), e.getMessage());
    e = assertThrows(ShardmapException.class,
        () -> IdGenerator.create(LAYOUT, InMemoryWorkerLease.unbounded(1), clock, Duration.ofMinutes(2)));
    assertTrue(e.getMessage().startsWith("maxWait: "), e.getMessage());
  }

  @Test
  void aClockBeforeTheEpochIsRefusedAtOnce() {
    IdGenerator g = generator(InMemoryWorkerLease.unbounded(4));
    long first = g.next();
    long back = clock.wallMillis() - LAYOUT.epochMillis() + 10;
    clock.stepWall(-back);
    long pauses = clock.pauses.get();
    refused(g, ErrorCode.FAILED_PRECONDITION, "before the id layout's epoch 2026-01-01T00:00:00Z");
    assertEquals(pauses, clock.pauses.get(), "refused without waiting");
    clock.stepWall(back + 1);
    assertTrue(g.next() > first);
  }

  @Test
  void aFarStartAfterWaitsOnlyTheBound() {
    IdGenerator g = generator(new InMemoryWorkerLease(6, Long.MAX_VALUE - 1, Long.MAX_VALUE, Long.MAX_VALUE));
    long before = clock.nanoTime();
    refused(g, ErrorCode.FAILED_PRECONDITION, "previous holder of this worker id");
    assertEquals(1_000_000_000L, clock.nanoTime() - before, "waited exactly maxWait, no overflowed pause");
  }

  @Test
  void theLayoutRunningOutStopsIssuing() {
    IdLayout tight = IdLayout.builder().timeBits(36).workerBits(14).sequenceBits(13).minYears(1)
        .epoch(Instant.ofEpochMilli(START)).clock(Clock.fixed(Instant.ofEpochMilli(START), ZoneOffset.UTC)).build();
    SteppedClock late = new SteppedClock(tight.runsOutAt().toEpochMilli() - 1);
    IdGenerator g = IdGenerator.create(tight, InMemoryWorkerLease.unbounded(1), late, Duration.ofSeconds(1));
    long id = g.next();
    assertEquals(tight.maxTime(), tight.timeOf(id));
    late.advanceMillis(1);
    refused(g, ErrorCode.FAILED_PRECONDITION, "ran out at " + tight.runsOutAt());
  }

  /** The hotspot remedy: consecutive ids of one generator cover the 8 equal slices of [0, 2^63) evenly. */
  @Test
  void spreadIdsLandEvenlyOverEightEqualRangesAndStayUnique() {
    IdLayout spread = IdLayout.builder().spreadBits(3).clock(Clock.fixed(Instant.ofEpochMilli(START), ZoneOffset.UTC))
        .build();
    long slice = 1L << 60; // [0, 2^63) in 8 ranges
    // Time-ordered ids: every one lands in the same range (the hotspot).
    int[] plain = new int[8];
    IdGenerator ordered = generator(InMemoryWorkerLease.unbounded(11));
    for (int i = 0; i < 8_000; i++) {
      plain[(int) (ordered.next() / slice)]++;
    }
    assertEquals(8_000, Arrays.stream(plain).max().getAsInt(), Arrays.toString(plain));

    // Spread, at full rate (many ids per ms) and at one id per ms (sequence always 0).
    for (boolean onePerMs : new boolean[] {false, true}) {
      IdGenerator g = IdGenerator.create(spread, InMemoryWorkerLease.unbounded(11), clock, Duration.ofSeconds(1));
      int n = 80_000;
      long[] ids = new long[n];
      int[] counts = new int[8];
      long[] lastInRange = new long[8];
      Arrays.fill(lastInRange, -1);
      long prevOrdered = -1;
      for (int i = 0; i < n; i++) {
        if (onePerMs) {
          clock.advanceMillis(1);
        }
        long id = g.next();
        ids[i] = id;
        int r = (int) (id / slice);
        counts[r]++;
        assertTrue(id > lastInRange[r], "within one range ids stay in issue order");
        lastInRange[r] = id;
        long o = spread.unspread(id);
        assertTrue(o > prevOrdered, "the unspread ids strictly increase");
        prevOrdered = o;
      }
      for (int c : counts) {
        // 10,000 expected; at full rate exact, at one per ms binomial (sd 94): 6 sd either way.
        assertTrue(c > 9_400 && c < 10_600, (onePerMs ? "one per ms " : "full rate ") + Arrays.toString(counts));
      }
      assertNoDuplicate(ids);
    }
  }

  @Test
  void retireReturnsTheTimeOfTheLastIdAndStopsIssuing() {
    IdGenerator fresh = generator(InMemoryWorkerLease.unbounded(1));
    assertEquals(OptionalLong.empty(), fresh.retire(), "nothing issued, nothing to report");
    refused(fresh, ErrorCode.UNAVAILABLE, "retired");

    IdGenerator g = generator(InMemoryWorkerLease.unbounded(3));
    g.next();
    clock.advanceMillis(5);
    long[] batch = new long[10_000]; // spans several milliseconds
    g.fill(batch, 0, batch.length);
    long lastTime = LAYOUT.unixMillisOf(batch[batch.length - 1]);
    clock.advanceMillis(7); // the clock moves on: what counts is the last id issued, not the clock
    assertEquals(OptionalLong.of(lastTime), g.retire());
    assertEquals(OptionalLong.of(lastTime), g.retire(), "a second call gives the same answer");
    refused(g, ErrorCode.UNAVAILABLE, "retired");
    assertThrows(ShardmapException.class, () -> g.fill(new long[4], 0, 4));
  }

  @Test
  void noIdIsIssuedAboveWhatRetireReturnsEvenFromConcurrentThreads() throws Exception {
    IdGenerator g = IdGenerator.create(LAYOUT, InMemoryWorkerLease.unbounded(4), IdClock.SYSTEM,
        Duration.ofSeconds(1));
    int threads = 3;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      AtomicLong issued = new AtomicLong();
      List<Future<Long>> maxTimes = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        maxTimes.add(pool.submit(() -> {
          long max = Long.MIN_VALUE;
          for (int i = 0; i < 50_000_000; i++) { // bounded; ends at the first refusal
            long id;
            try {
              id = g.next();
            } catch (ShardmapException e) {
              assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
              return max;
            }
            issued.incrementAndGet();
            max = Math.max(max, LAYOUT.unixMillisOf(id));
          }
          throw new AssertionError("never refused");
        }));
      }
      while (issued.get() < 200_000) {
        Thread.onSpinWait();
      }
      long retiredAt = g.retire().orElseThrow();
      for (Future<Long> f : maxTimes) {
        long max = f.get();
        assertTrue(max <= retiredAt, "an id at " + max + " ms after retire() said " + retiredAt);
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
