package io.shardmap.migrator.internal;

import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;

/**
 * When a whole move, cleanup included, is expected to end (docs/migrator-design.md, "Progress and ETA"):
 * the time left in each phase still ahead, from the rows it has left and its rate.
 *
 * <ul>
 *   <li>Copy: the rows left of the planner's estimate ({@code rows_estimate}) at the copy's average rate
 *       so far.
 *   <li>Verification and cleanup's deletes: the rows copied (the estimate while the copy runs) less those
 *       already compared or deleted, at the phase's own average rate once it has run {@link #MIN_MEASURE_MS};
 *       before that at the copy's rate times {@link Priors#verifySpeed} or {@link Priors#deleteSpeed},
 *       ratios measured in the {@code migrate-load} benchmark (docs/benchmarks.md, issue 16). Each phase
 *       scans its rows once, so its time grows with the rows like the copy's.
 *   <li>Catch-up: a share of the copy's duration (it replays what was written meanwhile). Cutover and
 *       cleanup's wait for the clients' acknowledgements: fixed allowances ({@link Priors}), short next to
 *       the rest on moves long enough to want an ETA.
 * </ul>
 *
 * <p>Pure: a function of the record and the time it is asked at, which the caller passes (its clock).
 * No estimate (0) before the copy has run long enough to have a rate, without a row estimate, and once
 * the move has ended or is being cancelled. A cutover that must wait (a deferred attempt), a client that
 * does not acknowledge, or a machine that slows down make it late; each later record re-estimates.
 */
public final class MoveEta {
  /** Shortest stretch of a phase whose average rate is trusted over the prior. */
  public static final long MIN_MEASURE_MS = 300;

  /**
   * The model's constants.
   *
   * @param verifySpeed verification's rows/s as a multiple of the copy's (before verification is measured)
   * @param deleteSpeed cleanup's deleted rows/s as a multiple of the copy's (before the deletes are measured)
   * @param catchUpShare the catch-up after the copy, as a share of the copy's duration (it replays what was
   *     written during the copy)
   * @param cutoverMs the cutover (catch-up, fence, drain, owner switch), first attempt
   * @param ackWaitMs from the cutover until every live client acknowledged the new map
   */
  public record Priors(double verifySpeed, double deleteSpeed, double catchUpShare, long cutoverMs, long ackWaitMs) {
    /** Measured with the migrate-load benchmark (docs/benchmarks.md, "Issue 16: whole-move time"). */
    public static final Priors DEFAULT = new Priors(0.7, 1.25, 0.08, 300, 300);

    public Priors {
      if (!(verifySpeed > 0) || !(deleteSpeed > 0)) {
        throw new IllegalArgumentException("verifySpeed, deleteSpeed: must be above 0, got " + verifySpeed + ", "
            + deleteSpeed);
      }
      if (!(catchUpShare >= 0) || cutoverMs < 0 || ackWaitMs < 0) {
        throw new IllegalArgumentException("catchUpShare, cutoverMs, ackWaitMs: must not be negative");
      }
    }
  }

  private final Priors priors;

  public MoveEta(Priors priors) {
    this.priors = java.util.Objects.requireNonNull(priors, "priors");
  }

  /** The expected end of the whole move, as wall-clock ms, seen at {@code nowMs}; 0 when there is none. */
  public long etaUnixMs(Migration m, long nowMs) {
    long left = remainingMs(m, nowMs);
    return left < 0 ? 0 : nowMs + left;
  }

  /** Milliseconds left of the whole move at {@code nowMs}; -1 when there is no estimate. */
  public long remainingMs(Migration m, long nowMs) {
    MigrationState s = m.getState();
    boolean copying = s == MigrationState.MIGRATION_STATE_COPYING;
    if (s != MigrationState.MIGRATION_STATE_COPYING && s != MigrationState.MIGRATION_STATE_CATCHING_UP
        && s != MigrationState.MIGRATION_STATE_VERIFYING && s != MigrationState.MIGRATION_STATE_CUTTING_OVER
        && s != MigrationState.MIGRATION_STATE_CLEANING_UP) {
      return -1;
    }
    if (m.getCopyStartedUnixMs() <= 0 || m.getRowsCopied() <= 0 || (copying && m.getRowsEstimate() <= 0)) {
      return -1;
    }
    // The copy's rate: so far while it runs; afterwards up to verification's start (catch-up included).
    long copyEnd = copying || s == MigrationState.MIGRATION_STATE_CATCHING_UP || m.getVerifyStartedUnixMs() <= 0
        ? nowMs : m.getVerifyStartedUnixMs();
    long copyMs = copyEnd - m.getCopyStartedUnixMs();
    if (copyMs < MIN_MEASURE_MS) {
      return -1;
    }
    double copyRate = (double) m.getRowsCopied() / copyMs;
    // Rows each later phase scans: the rows copied, or while copying the larger of estimate and copied.
    long rows = copying ? Math.max(m.getRowsEstimate(), m.getRowsCopied()) : m.getRowsCopied();
    double left = 0;
    switch (s) {
      case MIGRATION_STATE_COPYING:
        left += (rows - m.getRowsCopied()) / copyRate;
        // fall through
      case MIGRATION_STATE_CATCHING_UP:
        left += priors.catchUpShare() * rows / copyRate + rows / (copyRate * priors.verifySpeed());
        left += priors.cutoverMs() + afterCutover(rows, copyRate);
        break;
      case MIGRATION_STATE_VERIFYING: {
        double rate = rate(m.getRowsVerified(), m.getVerifyStartedUnixMs(), nowMs, copyRate * priors.verifySpeed());
        left += Math.max(0, rows - m.getRowsVerified()) / rate;
        left += priors.cutoverMs() + afterCutover(rows, copyRate);
        break;
      }
      case MIGRATION_STATE_CUTTING_OVER:
        left += priors.cutoverMs() + afterCutover(rows, copyRate);
        break;
      case MIGRATION_STATE_CLEANING_UP:
        if (m.getDeleteStartedUnixMs() <= 0) {
          long waited = m.getCutoverUnixMs() > 0 ? nowMs - m.getCutoverUnixMs() : 0;
          left += Math.max(0, priors.ackWaitMs() - waited) + rows / (copyRate * priors.deleteSpeed());
        } else {
          double rate = rate(m.getRowsDeleted(), m.getDeleteStartedUnixMs(), nowMs, copyRate * priors.deleteSpeed());
          left += Math.max(0, rows - m.getRowsDeleted()) / rate;
        }
        break;
      default:
        return -1;
    }
    return Math.round(left);
  }

  /** Cleanup: the wait for the clients, then every copied row deleted from the source. */
  private double afterCutover(long rows, double copyRate) {
    return priors.ackWaitMs() + rows / (copyRate * priors.deleteSpeed());
  }

  /** A phase's average rows/ms since {@code startedMs}, or {@code prior} until it has run long enough. */
  private static double rate(long done, long startedMs, long nowMs, double prior) {
    long ms = nowMs - startedMs;
    if (startedMs <= 0 || done <= 0 || ms < MIN_MEASURE_MS) {
      return prior;
    }
    return (double) done / ms;
  }
}
