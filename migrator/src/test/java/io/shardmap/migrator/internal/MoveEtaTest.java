package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The whole move's ETA model on records at chosen moments (the clock is the {@code nowMs} passed in): the
 * phases left, each at its measured rate or, before it is measured, at the copy's rate times its prior.
 * Priors here are round numbers so that every expectation can be worked out by hand: verification twice
 * as fast as the copy, deletes four times, catch-up a hundredth of the copy's (whole, estimated) duration,
 * cutover 200 ms, clients' acknowledgements 300 ms.
 */
@Tag("unit")
class MoveEtaTest {
  static final long T0 = 1_700_000_000_000L;
  static final MoveEta ETA = new MoveEta(new MoveEta.Priors(2.0, 4.0, 0.01, 200, 300));

  static Migration.Builder copying(long estimate, long copied) {
    return Migration.newBuilder().setId("m").setState(MigrationState.MIGRATION_STATE_COPYING)
        .setCopyStartedUnixMs(T0).setRowsEstimate(estimate).setRowsCopied(copied);
  }

  @Test
  void whileCopyingEveryPhaseAheadIsPricedAtTheCopysRate() {
    // 100,000 of 1,000,000 rows in 1 s: 100 rows/ms. Copy left 9,000 ms; verify 1,000,000 at 200/ms =
    // 5,000 ms; deletes at 400/ms = 2,500 ms; catch-up 1% of the 10,000 ms copy; cutover 200, clients 300.
    Migration m = copying(1_000_000, 100_000).build();
    assertEquals(9_000 + 100 + 5_000 + 200 + 300 + 2_500, ETA.remainingMs(m, T0 + 1_000));
    assertEquals(T0 + 1_000 + 17_100, ETA.etaUnixMs(m, T0 + 1_000));
  }

  @Test
  void aSlowerCopyPushesTheWholeEstimateOut() {
    // The same rows copied in 2 s: 50 rows/ms, and every phase priced from it doubles.
    Migration m = copying(1_000_000, 100_000).build();
    assertEquals(18_000 + 200 + 10_000 + 200 + 300 + 5_000, ETA.remainingMs(m, T0 + 2_000));
  }

  @Test
  void anEstimateBelowTheRowsCopiedCountsTheRowsCopied() {
    // Stale statistics: 500,000 estimated, 600,000 copied in 3 s (200/ms): no copy left, the rest on 600,000.
    Migration m = copying(500_000, 600_000).build();
    assertEquals(0 + 30 + 1_500 + 200 + 300 + 750, ETA.remainingMs(m, T0 + 3_000));
  }

  @Test
  void verificationUsesItsOwnRateOnceMeasuredAndThePriorBefore() {
    // Copied 1,000,000 rows from T0 to T0 + 10 s (verification began then): 100 rows/ms.
    Migration.Builder b = Migration.newBuilder().setState(MigrationState.MIGRATION_STATE_VERIFYING)
        .setCopyStartedUnixMs(T0).setRowsEstimate(900_000).setRowsCopied(1_000_000).setVerifyStartedUnixMs(T0 + 10_000);
    // Just begun (under MIN_MEASURE_MS): the prior, 200 rows/ms: 5,000 ms, then cutover and cleanup.
    assertEquals(5_000 + 200 + 300 + 2_500, ETA.remainingMs(b.build(), T0 + 10_100));
    // 400,000 compared in 1 s: 400 rows/ms, faster than the prior; 600,000 left = 1,500 ms.
    b.setRowsVerified(400_000);
    assertEquals(1_500 + 200 + 300 + 2_500, ETA.remainingMs(b.build(), T0 + 11_000));
  }

  @Test
  void cleanupWaitsForTheClientsThenDeletesAtItsMeasuredRate() {
    Migration.Builder b = Migration.newBuilder().setState(MigrationState.MIGRATION_STATE_CLEANING_UP)
        .setCopyStartedUnixMs(T0).setRowsCopied(1_000_000).setVerifyStartedUnixMs(T0 + 10_000)
        .setCutoverUnixMs(T0 + 15_000);
    // 100 ms after the cutover: 200 ms of the allowance left, then 1,000,000 rows at 400/ms.
    assertEquals(200 + 2_500, ETA.remainingMs(b.build(), T0 + 15_100));
    // A wait longer than the allowance adds nothing more.
    assertEquals(2_500, ETA.remainingMs(b.build(), T0 + 16_000));
    // Deleting since T0 + 16 s: 250,000 rows in 500 ms (500/ms): 750,000 left = 1,500 ms.
    b.setDeleteStartedUnixMs(T0 + 16_000).setRowsDeleted(250_000);
    assertEquals(1_500, ETA.remainingMs(b.build(), T0 + 16_500));
  }

  @Test
  void cuttingOverLeavesTheCutoverAndCleanup() {
    Migration m = Migration.newBuilder().setState(MigrationState.MIGRATION_STATE_CUTTING_OVER)
        .setCopyStartedUnixMs(T0).setRowsCopied(1_000_000).setVerifyStartedUnixMs(T0 + 10_000).build();
    assertEquals(200 + 300 + 2_500, ETA.remainingMs(m, T0 + 14_000));
  }

  @Test
  void noEstimateWithoutARateARowEstimateOrAMoveToFinish() {
    assertEquals(-1, ETA.remainingMs(copying(1_000_000, 0).build(), T0 + 5_000), "nothing copied yet");
    assertEquals(-1, ETA.remainingMs(copying(1_000_000, 1_000).build(), T0 + 100), "copying for 100 ms only");
    assertEquals(-1, ETA.remainingMs(copying(0, 100_000).build(), T0 + 1_000), "no row estimate");
    assertEquals(0, ETA.etaUnixMs(copying(0, 100_000).build(), T0 + 1_000), "0: none");
    for (MigrationState s : new MigrationState[] {MigrationState.MIGRATION_STATE_PLANNED,
        MigrationState.MIGRATION_STATE_PREPARING, MigrationState.MIGRATION_STATE_DONE,
        MigrationState.MIGRATION_STATE_CANCELLING, MigrationState.MIGRATION_STATE_CANCELLED}) {
      assertEquals(0, ETA.etaUnixMs(copying(1_000_000, 100_000).setState(s).build(), T0 + 1_000), s.name());
    }
  }

  @Test
  void priorsAreValidated() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new MoveEta.Priors(0, 1, 0, 0, 0));
    assertEquals("verifySpeed, deleteSpeed: must be above 0, got 0.0, 1.0", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new MoveEta.Priors(1, 1, -1, 0, 0));
  }
}
