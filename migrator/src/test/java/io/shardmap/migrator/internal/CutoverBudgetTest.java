package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The cutover's budget decisions on a fake tick count: no servers, no sleeping. */
@Tag("unit")
class CutoverBudgetTest {
  private static final long MS = 1_000_000L;

  @Test
  void theLockMayWaitOnlyWhatTheDrainAndTheCommitsLeave() {
    assertEquals(Duration.ofMillis(60), CutoverBudget.lockWait(Duration.ofMillis(100), Duration.ofMillis(40)));
    assertEquals(Duration.ZERO, CutoverBudget.lockWait(Duration.ofMillis(100), Duration.ofMillis(100)));
    assertEquals(Duration.ZERO, CutoverBudget.lockWait(Duration.ofMillis(100), Duration.ofMillis(250)));
  }

  @Test
  void oneDeadlineFromTheLockRequestDecidesWhetherTheSwitchMayFollow() {
    long start = 7_000 * MS; // any tick: only differences count
    CutoverBudget b = new CutoverBudget(Duration.ofMillis(100), start);
    long commits = 30 * MS;
    // Locked after 20 ms, drained after 60 ms: 40 ms left covers 30 ms of commits.
    assertTrue(b.fits(start + 60 * MS, commits));
    assertEquals(40 * MS, b.remainingNanos(start + 60 * MS));
    // Exactly enough is enough; a nanosecond later it is not: the attempt is abandoned.
    assertTrue(b.fits(start + 70 * MS, commits));
    assertFalse(b.fits(start + 70 * MS + 1, commits));
    // A drain stalled past the deadline: over, whatever the commits cost.
    assertFalse(b.fits(start + 150 * MS, 0));
    assertEquals(-50 * MS, b.remainingNanos(start + 150 * MS));
    assertEquals(150 * MS, b.elapsedNanos(start + 150 * MS));
  }

  @Test
  void theTickMayWrapAround() {
    long start = Long.MAX_VALUE - 10 * MS;
    CutoverBudget b = new CutoverBudget(Duration.ofMillis(100), start);
    assertTrue(b.fits(start + 50 * MS, 50 * MS)); // overflows to a negative tick
    assertFalse(b.fits(start + 50 * MS, 51 * MS));
  }

  @Test
  void theEstimateIsTheLatestSampleOrTheRecentMedianWhicheverIsLarger() {
    CutoverBudget.Recent r = new CutoverBudget.Recent(3);
    assertEquals(9, r.estimate(9), "no sample yet: the caller's fallback");
    r.add(5 * MS);
    assertEquals(5 * MS, r.estimate(0));
    r.add(40 * MS);
    assertEquals(40 * MS, r.estimate(0), "etcd is slow right now: the latest sample counts");
    r.add(6 * MS);
    assertEquals(6 * MS, r.estimate(0), "one spike among fast commits does not hold the next attempt back");
    r.add(30 * MS); // 5 leaves: 40, 6, 30
    assertEquals(30 * MS, r.estimate(0));
    r.add(20 * MS); // 40 leaves: 6, 30, 20; median 20, latest 20
    assertEquals(20 * MS, r.estimate(0));
    r.add(2 * MS); // 6 leaves: 30, 20, 2; median 20 > latest 2: one fast sample does not promise too much
    assertEquals(20 * MS, r.estimate(0));
  }

  @Test
  void aBudgetOrWindowThatMeansNothingIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> new CutoverBudget(Duration.ZERO, 0));
    assertThrows(IllegalArgumentException.class, () -> new CutoverBudget.Recent(0));
  }

  @Test
  void pausesAreReportedInWholeMillisecondsRoundedUp() {
    assertEquals(0, MoveDriver.ms(0));
    assertEquals(1, MoveDriver.ms(200_000));
    assertEquals(100, MoveDriver.ms(100 * MS));
    assertEquals(101, MoveDriver.ms(100 * MS + 1));
  }
}
