package io.shardmap.migrator.internal;

import com.google.protobuf.ByteString;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.util.Optional;

/**
 * What each step of a migration decides, with no I/O: given the record as persisted and what the step
 * observed (rows copied, keys pending, a verified chunk, a cutover's outcome, the clients'
 * acknowledgements), the next version of the record, state and fields (docs/migrator-design.md, "State
 * machine, persisted in etcd"). {@link MoveDriver} does the PostgreSQL work and the guarded etcd write
 * and asks this class what comes next, so every transition is testable on plain records.
 *
 * <p>Every method returns a new builder from the record it is given and never changes its argument;
 * none sets {@code updated_unix_ms}, which the driver's write stamps.
 */
public final class MigrationSteps {
  /** Catch-up hands over to verification once fewer keys than this wait. */
  public static final long CATCH_UP_THRESHOLD = 1_000;

  private MigrationSteps() {}

  /**
   * An operator's cancel request, honoured only while the source still owns the unit (before the cutover
   * committed): CANCELLING. Empty when there is no request, or the cutover has committed.
   */
  public static Optional<Migration.Builder> cancelRequested(Migration m) {
    if (m.getCancelRequested() && States.beforeCutover(m.getState())) {
      return Optional.of(m.toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLING));
    }
    return Optional.empty();
  }

  /** PLANNED → PREPARING. */
  public static Migration.Builder planned(Migration m) {
    return m.toBuilder().setState(MigrationState.MIGRATION_STATE_PREPARING);
  }

  /**
   * PREPARING → COPYING from the first table: {@code created} are the tables the preparation created on
   * the target (only those are the migration's to drop on cancel), added once each.
   */
  public static Migration.Builder prepared(Migration m, Iterable<String> created, long nowMs) {
    Migration.Builder next = m.toBuilder();
    for (String t : created) {
      if (!next.getCreatedTablesList().contains(t)) {
        next.addCreatedTables(t);
      }
    }
    return next.setState(MigrationState.MIGRATION_STATE_COPYING).setCopyTable(0).clearCopyAfter()
        .setCopyStartedUnixMs(nowMs);
  }

  /** Whether the copy cursor is past the last of {@code tables} tables (a resumed copy that had finished). */
  public static boolean copyFinished(Migration m, int tables) {
    return m.getCopyTable() >= tables;
  }

  /**
   * What one stretch of copying of the cursor's table did.
   *
   * @param rows rows copied, summed over the stretch's chunks
   * @param bytes bytes copied, likewise
   * @param tableDone whether the table's last chunk was copied
   * @param last the key the last chunk ended at (the cursor to resume after); ignored when {@code tableDone}
   */
  public record Copied(long rows, long bytes, boolean tableDone, byte[] last) {}

  /**
   * COPYING: adds the stretch's counts and moves the cursor, to the next table when this one is done;
   * after the last table, CATCHING_UP. A cursor already past the last table goes straight to CATCHING_UP.
   */
  public static Migration.Builder copied(Migration m, int tables, Copied c) {
    if (copyFinished(m, tables)) {
      return m.toBuilder().setState(MigrationState.MIGRATION_STATE_CATCHING_UP);
    }
    int t = m.getCopyTable();
    Migration.Builder next = m.toBuilder().setRowsCopied(m.getRowsCopied() + c.rows())
        .setBytesCopied(m.getBytesCopied() + c.bytes());
    if (c.tableDone()) {
      next.setCopyTable(t + 1).clearCopyAfter();
      if (t + 1 >= tables) {
        next.setState(MigrationState.MIGRATION_STATE_CATCHING_UP);
      }
    } else if (c.last() != null) {
      next.setCopyAfter(ByteString.copyFrom(c.last()));
    }
    return next;
  }

  /**
   * CATCHING_UP: one round replayed {@code replayed} keys and left {@code lag} pending; below
   * {@link #CATCH_UP_THRESHOLD} the migration goes to VERIFYING from the first table.
   */
  public static Migration.Builder caughtUp(Migration m, long replayed, long lag) {
    Migration.Builder next = m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(lag);
    if (lag < CATCH_UP_THRESHOLD) {
      next.setState(MigrationState.MIGRATION_STATE_VERIFYING).setVerifyTable(0).clearVerifyAfter();
    }
    return next;
  }

  /** Whether the verify cursor is past the last of {@code tables} tables. */
  public static boolean verifyFinished(Migration m, int tables) {
    return m.getVerifyTable() >= tables;
  }

  /**
   * What one verified chunk found.
   *
   * @param replayed keys replayed before the chunk (verification keeps the lag small)
   * @param tableDone whether this was the table's last chunk
   * @param mismatched whether the chunk differed between source and target (and was repaired)
   * @param keysRepaired keys the repair rewrote
   * @param last the key the chunk ended at; ignored when {@code tableDone}
   */
  public record Verified(long replayed, boolean tableDone, boolean mismatched, long keysRepaired, byte[] last) {}

  /**
   * VERIFYING: counts the chunk (and its repair) and moves the cursor; after the last table, CUTTING_OVER.
   * A cursor already past the last table goes straight to CUTTING_OVER.
   */
  public static Migration.Builder verified(Migration m, int tables, Verified c) {
    if (verifyFinished(m, tables)) {
      return m.toBuilder().setState(MigrationState.MIGRATION_STATE_CUTTING_OVER);
    }
    int t = m.getVerifyTable();
    Migration.Builder next = m.toBuilder().setKeysReplayed(m.getKeysReplayed() + c.replayed())
        .setChunksVerified(m.getChunksVerified() + 1)
        .setChunksRepaired(m.getChunksRepaired() + (c.mismatched() ? 1 : 0))
        .setKeysRepaired(m.getKeysRepaired() + c.keysRepaired());
    if (c.tableDone()) {
      next.setVerifyTable(t + 1).clearVerifyAfter();
      if (t + 1 >= tables) {
        next.setState(MigrationState.MIGRATION_STATE_CUTTING_OVER);
      }
    } else {
      next.setVerifyAfter(ByteString.copyFrom(c.last()));
    }
    return next;
  }

  /** CUTTING_OVER, before fencing: the catch-up of an attempt replayed {@code replayed} keys and left {@code lag}. */
  public static Migration.Builder cutoverCaughtUp(Migration m, long replayed, long lag) {
    return m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(lag);
  }

  /** CUTTING_OVER, fenced: the drain under the fence replayed {@code replayed} keys (then rolled back or not). */
  public static Migration.Builder drained(Migration m, long replayed) {
    return m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed);
  }

  /**
   * A cutover attempt that missed its write-pause budget ({@code why}): counted in
   * {@code cutover_attempts} with {@code why} as the last error; at {@code max_cutover_attempts} the
   * migration goes to CANCELLING, saying so. Otherwise it stays CUTTING_OVER, to retry after a backoff.
   *
   * @param next the record with what the attempt observed so far (replayed keys, lag)
   */
  public static Migration.Builder missed(Migration.Builder next, String why) {
    int attempts = next.getCutoverAttempts() + 1;
    next.setCutoverAttempts(attempts).setLastError(why);
    if (attempts >= next.getOptions().getMaxCutoverAttempts()) {
      next.setState(MigrationState.MIGRATION_STATE_CANCELLING).setLastError("cancelled: the write pause budget "
          + "could not be met in " + attempts + " attempts; last: " + why);
    }
    return next;
  }

  /**
   * The record the cutover transaction writes with the owner switch: CLEANING_UP, the attempt counted,
   * the pause so far and its start, the client-routing figures reset, the last error cleared.
   */
  public static Migration cutOver(Migration m, long replayed, long pauseMs, long pauseStartedUnixMs, long nowMs) {
    return m.toBuilder().setState(MigrationState.MIGRATION_STATE_CLEANING_UP)
        .setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(0).setCutoverAttempts(m.getCutoverAttempts() + 1)
        .setPauseMs(pauseMs).setPauseStartedUnixMs(pauseStartedUnixMs)
        .setClientsRoutedMs(0).setClientsRoutedCount(0)
        .setCutoverUnixMs(nowMs).setUpdatedUnixMs(nowMs).setLastError("").build();
  }

  /** After the owner switch committed at {@code revision}: the revision and the whole write pause. */
  public static Migration.Builder cutOverRecorded(Migration m, long revision, long pauseMs) {
    return m.toBuilder().setCutoverRevision(revision).setPauseMs(pauseMs);
  }

  /**
   * A cutover transaction that did not commit, settled on the record as it is now ({@code current}).
   * When the migration record itself changed, the attempt is retried (the last error says why). Otherwise
   * the unit's records, the keyspace spec or the target's registration changed since planning (someone
   * bypassed the admin API's refusal): CANCELLING, with {@code changed} (what the hand-over found
   * changed, or null) in the last error.
   */
  public static Migration.Builder cutoverRefused(Migration current, boolean recordChanged, String changed,
                                                 boolean hasUnit) {
    if (recordChanged) {
      return current.toBuilder().setLastError("a cutover attempt met a change of the record");
    }
    return current.toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLING)
        .setLastError("cutover refused: " + (changed != null ? changed : "the " + (hasUnit ? "unit's records"
            : "range") + ", the keyspace spec or the target's registration changed since the move was planned"));
  }

  /** The map revision cleanup waits for clients to acknowledge: the cutover's, or the record's when unset. */
  public static long cleanupRevision(Migration m, long modRevision) {
    return m.getCutoverRevision() != 0 ? m.getCutoverRevision() : modRevision;
  }

  /** Whether cleanup's wait for acknowledgements has run out: the grace time after the cutover passed. */
  public static boolean graceElapsed(Migration m, long nowMs) {
    return nowMs >= m.getCutoverUnixMs() + m.getOptions().getCleanupGraceMs();
  }

  /** CLEANING_UP, still waiting: who is still behind, shown in status. */
  public static Migration.Builder stillWaiting(Migration m, String behind) {
    return m.toBuilder().setCleanupWaitingFor(behind);
  }

  /** Why cleanup stopped waiting: every live client acknowledged {@code revision}. */
  public static String acknowledgedReason(long revision) {
    return "every live client acknowledged revision " + revision;
  }

  /** Why cleanup stopped waiting: the grace time elapsed with {@code behind} still behind. */
  public static String graceReason(Migration m, String behind) {
    return "grace time elapsed (" + m.getOptions().getCleanupGraceMs() + " ms); still behind: " + behind;
  }

  /**
   * Cleanup stops waiting for acknowledgements. When every live client ({@code clients} of them,
   * {@code allAcked}) applied the cutover, the time from the pause's start is recorded once, as how long
   * clients took to be routed to the target (at least 1 ms; an upper bound). The reason is recorded and the
   * shown wait cleared; empty when the record already says all this (a resumed cleanup writes nothing).
   *
   * @param atStart the record when the step began (whose routing figure and reason count)
   * @param current the record as last persisted during the wait
   */
  public static Optional<Migration.Builder> doneWaiting(Migration atStart, Migration current, String reason,
                                                        boolean allAcked, long clients, long nowMs) {
    Migration.Builder routed = null;
    if (allAcked && atStart.getClientsRoutedMs() == 0 && atStart.getPauseStartedUnixMs() > 0 && clients > 0) {
      routed = current.toBuilder().setClientsRoutedMs(Math.max(1, nowMs - atStart.getPauseStartedUnixMs()))
          .setClientsRoutedCount(clients);
    }
    if (!reason.equals(atStart.getCleanupReason()) || routed != null || !current.getCleanupWaitingFor().isEmpty()) {
      return Optional.of((routed != null ? routed : current.toBuilder()).setCleanupReason(reason)
          .clearCleanupWaitingFor());
    }
    return Optional.empty();
  }

  /** CLEANING_UP, deleting: {@code deleted} source rows of the unit deleted so far. */
  public static Migration.Builder deleting(Migration m, long deleted) {
    return m.toBuilder().setRowsDeleted(deleted);
  }

  /** Cleanup's deletes wait for a row lock held on the source ({@code why}): the wait shows as the last error. */
  public static Migration.Builder deletingBlocked(Migration m, long deleted, String why) {
    return m.toBuilder().setRowsDeleted(deleted).setLastError(why);
  }

  /**
   * CLEANING_UP → DONE once every table's moved rows are deleted from the source; what cleanup waited for
   * (the last error) is over.
   */
  public static Migration.Builder cleanedUp(Migration m, long deleted, long nowMs) {
    return m.toBuilder().setRowsDeleted(deleted).setState(MigrationState.MIGRATION_STATE_DONE)
        .setFinishedUnixMs(nowMs).setLastError("");
  }

  /** CANCELLING → CANCELLED once the source is restored and the target's copies removed. */
  public static Migration cancelled(Migration m, long nowMs) {
    return m.toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLED).setUpdatedUnixMs(nowMs)
        .setFinishedUnixMs(nowMs).build();
  }
}
