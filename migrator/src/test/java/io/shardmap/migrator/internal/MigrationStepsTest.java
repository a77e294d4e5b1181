package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationOptions;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every transition of a migration's state machine on plain records ({@link MigrationSteps}), and the
 * guarded write that persists them on the in-memory store ({@link MigrationStore#update}).
 */
@Tag("unit")
class MigrationStepsTest {
  private static final int TABLES = 2;

  private static Migration planned() {
    return Migration.newBuilder().setId("m1").setKeyspace("ks").setSource("s1").setTarget("s2")
        .setState(MigrationState.MIGRATION_STATE_PLANNED)
        .addTables(ShardedTable.newBuilder().setName("orders").setKeyColumn("id"))
        .addTables(ShardedTable.newBuilder().setName("items").setKeyColumn("order_id"))
        .setOptions(MigrationOptions.newBuilder().setPauseBudgetMs(200).setChunkRows(100)
            .setCleanupGraceMs(10_000).setCleanupBatchRows(100).setMaxCutoverAttempts(3))
        .build();
  }

  private static Migration in(MigrationState s) {
    return planned().toBuilder().setState(s).build();
  }

  private static byte[] key(String k) {
    return k.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void happyPathOfTwoTablesPassesEveryStateInOrder() {
    Migration m = planned();
    List<MigrationState> seen = new java.util.ArrayList<>(List.of(m.getState()));

    m = MigrationSteps.planned(m).build();
    seen.add(m.getState());

    m = MigrationSteps.prepared(m, List.of("items"), 1_000).build();
    seen.add(m.getState());
    assertEquals(0, m.getCopyTable());
    assertTrue(m.getCopyAfter().isEmpty());
    assertEquals(1_000, m.getCopyStartedUnixMs());
    assertEquals(List.of("items"), m.getCreatedTablesList());

    // First table in two stretches, the cursor saved between them; then the second in one.
    m = MigrationSteps.copied(m, TABLES, new MigrationSteps.Copied(100, 4_000, false, key("k100"))).build();
    assertEquals(MigrationState.MIGRATION_STATE_COPYING, m.getState());
    assertEquals(0, m.getCopyTable());
    assertArrayEquals(key("k100"), m.getCopyAfter().toByteArray());
    m = MigrationSteps.copied(m, TABLES, new MigrationSteps.Copied(50, 2_000, true, null)).build();
    assertEquals(MigrationState.MIGRATION_STATE_COPYING, m.getState());
    assertEquals(1, m.getCopyTable());
    assertTrue(m.getCopyAfter().isEmpty());
    m = MigrationSteps.copied(m, TABLES, new MigrationSteps.Copied(30, 900, true, null)).build();
    seen.add(m.getState());
    assertEquals(180, m.getRowsCopied());
    assertEquals(6_900, m.getBytesCopied());
    assertEquals(2, m.getCopyTable());

    m = MigrationSteps.caughtUp(m, 40, 0).build();
    seen.add(m.getState());
    assertEquals(0, m.getVerifyTable());

    m = MigrationSteps.verified(m, TABLES, new MigrationSteps.Verified(1, true, false, 0, null)).build();
    assertEquals(MigrationState.MIGRATION_STATE_VERIFYING, m.getState());
    assertEquals(1, m.getVerifyTable());
    m = MigrationSteps.verified(m, TABLES, new MigrationSteps.Verified(2, true, false, 0, null)).build();
    seen.add(m.getState());
    assertEquals(2, m.getChunksVerified());
    assertEquals(43, m.getKeysReplayed());

    m = MigrationSteps.cutoverCaughtUp(m, 5, 3).build();
    assertEquals(48, m.getKeysReplayed());
    assertEquals(3, m.getLagKeys());
    m = MigrationSteps.cutOver(m, 3, 12, 5_000, 5_012);
    seen.add(m.getState());
    assertEquals(51, m.getKeysReplayed());
    assertEquals(0, m.getLagKeys());
    assertEquals(1, m.getCutoverAttempts());
    assertEquals(5_012, m.getCutoverUnixMs());
    assertEquals(5_000, m.getPauseStartedUnixMs());
    m = MigrationSteps.cutOverRecorded(m, 77, 14).build();
    assertEquals(77, m.getCutoverRevision());
    assertEquals(14, m.getPauseMs());

    m = MigrationSteps.deleting(m, 100).build();
    assertEquals(MigrationState.MIGRATION_STATE_CLEANING_UP, m.getState());
    m = MigrationSteps.cleanedUp(m, 180, 9_000).build();
    seen.add(m.getState());
    assertEquals(180, m.getRowsDeleted());
    assertEquals(9_000, m.getFinishedUnixMs());

    assertEquals(List.of(MigrationState.MIGRATION_STATE_PLANNED, MigrationState.MIGRATION_STATE_PREPARING,
        MigrationState.MIGRATION_STATE_COPYING, MigrationState.MIGRATION_STATE_CATCHING_UP,
        MigrationState.MIGRATION_STATE_VERIFYING, MigrationState.MIGRATION_STATE_CUTTING_OVER,
        MigrationState.MIGRATION_STATE_CLEANING_UP, MigrationState.MIGRATION_STATE_DONE), seen);
    assertTrue(States.terminal(m.getState()));
  }

  @Test
  void aResumedPrepareAddsACreatedTableOnce() {
    Migration m = in(MigrationState.MIGRATION_STATE_PREPARING).toBuilder().addCreatedTables("items").build();
    Migration next = MigrationSteps.prepared(m, List.of("items", "orders"), 1).build();
    assertEquals(List.of("items", "orders"), next.getCreatedTablesList());
  }

  @Test
  void aResumedCopyOrVerifyPastTheLastTableMovesOn() {
    Migration copying = in(MigrationState.MIGRATION_STATE_COPYING).toBuilder().setCopyTable(TABLES).build();
    assertTrue(MigrationSteps.copyFinished(copying, TABLES));
    assertEquals(MigrationState.MIGRATION_STATE_CATCHING_UP, MigrationSteps.copied(copying, TABLES, null).getState());
    Migration verifying = in(MigrationState.MIGRATION_STATE_VERIFYING).toBuilder().setVerifyTable(TABLES).build();
    assertTrue(MigrationSteps.verifyFinished(verifying, TABLES));
    assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER,
        MigrationSteps.verified(verifying, TABLES, null).getState());
    assertFalse(MigrationSteps.copyFinished(in(MigrationState.MIGRATION_STATE_COPYING), TABLES));
  }

  @Test
  void aCancelRequestIsHonouredInEveryStateBeforeTheCutoverAndInNoneAfter() {
    Set<MigrationState> before = EnumSet.of(MigrationState.MIGRATION_STATE_PLANNED,
        MigrationState.MIGRATION_STATE_PREPARING, MigrationState.MIGRATION_STATE_COPYING,
        MigrationState.MIGRATION_STATE_CATCHING_UP, MigrationState.MIGRATION_STATE_VERIFYING,
        MigrationState.MIGRATION_STATE_CUTTING_OVER);
    for (MigrationState s : MigrationState.values()) {
      if (s == MigrationState.UNRECOGNIZED) {
        continue;
      }
      Migration requested = in(s).toBuilder().setCancelRequested(true).setCopyTable(1).setRowsCopied(7).build();
      Optional<Migration.Builder> next = MigrationSteps.cancelRequested(requested);
      if (before.contains(s)) {
        assertTrue(next.isPresent(), s.name());
        assertEquals(MigrationState.MIGRATION_STATE_CANCELLING, next.get().getState(), s.name());
        // Nothing else changes: the cancel step reads the progress to undo it.
        assertEquals(requested, next.get().setState(s).build(), s.name());
      } else {
        assertTrue(next.isEmpty(), s.name());
      }
      assertTrue(MigrationSteps.cancelRequested(in(s)).isEmpty(), "no request: " + s.name());
    }
  }

  @Test
  void aMissedBudgetBelowTheLimitIsRetriedAndAtTheLimitCancels() {
    Migration m = in(MigrationState.MIGRATION_STATE_CUTTING_OVER);
    Migration first = MigrationSteps.missed(MigrationSteps.cutoverCaughtUp(m, 10, 5_000), "too far behind").build();
    assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER, first.getState());
    assertEquals(1, first.getCutoverAttempts());
    assertEquals("too far behind", first.getLastError());
    assertEquals(10, first.getKeysReplayed());
    assertEquals(5_000, first.getLagKeys());

    Migration second = MigrationSteps.missed(first.toBuilder(), "locks not granted").build();
    assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER, second.getState());
    assertEquals(2, second.getCutoverAttempts());
    assertEquals("locks not granted", second.getLastError());

    Migration third = MigrationSteps.missed(second.toBuilder(), "abandoned").build();
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLING, third.getState());
    assertEquals(3, third.getCutoverAttempts());
    assertEquals("cancelled: the write pause budget could not be met in 3 attempts; last: abandoned",
        third.getLastError());
  }

  @Test
  void anAbandonedDrainCountsItsReplayedKeysAndKeepsTheLag() {
    Migration m = in(MigrationState.MIGRATION_STATE_CUTTING_OVER).toBuilder().setKeysReplayed(5).setLagKeys(9).build();
    Migration next = MigrationSteps.drained(m, 4).build();
    assertEquals(9, next.getKeysReplayed());
    assertEquals(9, next.getLagKeys());
    assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER, next.getState());
  }

  @Test
  void aRefusedCutoverRetriesOnARecordChangeAndOtherwiseCancels() {
    Migration m = in(MigrationState.MIGRATION_STATE_CUTTING_OVER);
    Migration retried = MigrationSteps.cutoverRefused(m, true, null, false).build();
    assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER, retried.getState());
    assertEquals("a cutover attempt met a change of the record", retried.getLastError());

    Migration range = MigrationSteps.cutoverRefused(m, false, null, false).build();
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLING, range.getState());
    assertEquals("cutover refused: the range, the keyspace spec or the target's registration changed since the "
        + "move was planned", range.getLastError());
    Migration named = MigrationSteps.cutoverRefused(m, false, "bucket 3 is owned by s9", true).build();
    assertEquals("cutover refused: bucket 3 is owned by s9", named.getLastError());
  }

  @Test
  void catchUpHandsOverToVerifyingOnlyBelowTheThreshold() {
    Migration m = in(MigrationState.MIGRATION_STATE_CATCHING_UP).toBuilder().setKeysReplayed(100)
        .setVerifyTable(1).setVerifyAfter(com.google.protobuf.ByteString.copyFrom(key("stale"))).build();
    Migration above = MigrationSteps.caughtUp(m, 500, MigrationSteps.CATCH_UP_THRESHOLD).build();
    assertEquals(MigrationState.MIGRATION_STATE_CATCHING_UP, above.getState());
    assertEquals(600, above.getKeysReplayed());
    assertEquals(MigrationSteps.CATCH_UP_THRESHOLD, above.getLagKeys());

    Migration below = MigrationSteps.caughtUp(m, 500, MigrationSteps.CATCH_UP_THRESHOLD - 1).build();
    assertEquals(MigrationState.MIGRATION_STATE_VERIFYING, below.getState());
    assertEquals(0, below.getVerifyTable());
    assertTrue(below.getVerifyAfter().isEmpty());
  }

  @Test
  void verifyCountsRepairedChunksAndKeysAndMovesItsCursor() {
    Migration m = in(MigrationState.MIGRATION_STATE_VERIFYING);
    m = MigrationSteps.verified(m, TABLES, new MigrationSteps.Verified(3, false, true, 12, key("k50"))).build();
    assertEquals(1, m.getChunksVerified());
    assertEquals(1, m.getChunksRepaired());
    assertEquals(12, m.getKeysRepaired());
    assertEquals(3, m.getKeysReplayed());
    assertEquals(0, m.getVerifyTable());
    assertArrayEquals(key("k50"), m.getVerifyAfter().toByteArray());
    m = MigrationSteps.verified(m, TABLES, new MigrationSteps.Verified(0, true, false, 0, null)).build();
    assertEquals(2, m.getChunksVerified());
    assertEquals(1, m.getChunksRepaired());
    assertEquals(12, m.getKeysRepaired());
    assertEquals(1, m.getVerifyTable());
    assertEquals(MigrationState.MIGRATION_STATE_VERIFYING, m.getState());
  }

  /** A cleanup delete held back by a row lock says so in the last error, until it goes on and when done. */
  @Test
  void aBlockedCleanupShowsWhyUntilItGoesOnAndDoneClearsIt() {
    Migration m = in(MigrationState.MIGRATION_STATE_CLEANING_UP);
    Migration blocked = MigrationSteps.deletingBlocked(m, 30, "cleanup waits: a row lock").build();
    assertEquals("cleanup waits: a row lock", blocked.getLastError());
    assertEquals(30, blocked.getRowsDeleted());
    assertEquals(MigrationState.MIGRATION_STATE_CLEANING_UP, blocked.getState());
    Migration done = MigrationSteps.cleanedUp(blocked, 40, 5_000).build();
    assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState());
    assertEquals("", done.getLastError(), "a resumed cleanup that went through leaves no stale wait");
    assertEquals(40, done.getRowsDeleted());
  }

  @Test
  void cleanupWaitsForAcknowledgementsUntilTheGraceTime() {
    Migration m = in(MigrationState.MIGRATION_STATE_CLEANING_UP).toBuilder().setCutoverUnixMs(1_000)
        .setPauseStartedUnixMs(990).setCutoverRevision(0).build();
    assertEquals(42, MigrationSteps.cleanupRevision(m, 42));
    assertEquals(7, MigrationSteps.cleanupRevision(m.toBuilder().setCutoverRevision(7).build(), 42));
    assertFalse(MigrationSteps.graceElapsed(m, 10_999));
    assertTrue(MigrationSteps.graceElapsed(m, 11_000));

    Migration waiting = MigrationSteps.stillWaiting(m, "client c1 at revision 41").build();
    assertEquals("client c1 at revision 41", waiting.getCleanupWaitingFor());
    assertEquals(MigrationState.MIGRATION_STATE_CLEANING_UP, waiting.getState());

    // Everyone acknowledged: the routing time from the pause's start, the reason, the wait cleared.
    String reason = MigrationSteps.acknowledgedReason(42);
    assertEquals("every live client acknowledged revision 42", reason);
    Migration acked = MigrationSteps.doneWaiting(m, waiting, reason, true, 3, 1_030).orElseThrow().build();
    assertEquals(40, acked.getClientsRoutedMs());
    assertEquals(3, acked.getClientsRoutedCount());
    assertEquals(reason, acked.getCleanupReason());
    assertTrue(acked.getCleanupWaitingFor().isEmpty());
    // A resumed cleanup whose record already says it all writes nothing, and keeps the first figure.
    assertTrue(MigrationSteps.doneWaiting(acked, acked, reason, true, 3, 5_000).isEmpty());

    // The grace time ran out: the reason names who is behind, no routing figure.
    String grace = MigrationSteps.graceReason(m, "client c1 at revision 41");
    assertEquals("grace time elapsed (10000 ms); still behind: client c1 at revision 41", grace);
    Migration late = MigrationSteps.doneWaiting(m, waiting, grace, false, 3, 11_000).orElseThrow().build();
    assertEquals(0, late.getClientsRoutedMs());
    assertEquals(grace, late.getCleanupReason());
    assertTrue(late.getCleanupWaitingFor().isEmpty());

    // No client listed: no figure (it would time nobody), at least 1 ms otherwise.
    assertEquals(0, MigrationSteps.doneWaiting(m, m, reason, true, 0, 1_030).orElseThrow().getClientsRoutedMs());
    assertEquals(1, MigrationSteps.doneWaiting(m, m, reason, true, 1, 990).orElseThrow().getClientsRoutedMs());
  }

  @Test
  void cancellingEndsCancelled() {
    Migration done = MigrationSteps.cancelled(in(MigrationState.MIGRATION_STATE_CANCELLING), 4_000);
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, done.getState());
    assertEquals(4_000, done.getFinishedUnixMs());
    assertEquals(4_000, done.getUpdatedUnixMs());
    assertTrue(States.terminal(done.getState()));
  }

  // ------------------------------------------------------------------ the guarded write, in memory

  private final InMemoryMetaStore store = new InMemoryMetaStore();
  private final CatalogPaths paths = new CatalogPaths("/sm");
  private final MigrationStore ms = new MigrationStore(store, paths, Duration.ofSeconds(5), Duration.ofMillis(200),
      System::nanoTime, Clock.fixed(Instant.ofEpochMilli(1_000), ZoneOffset.UTC));

  private MigrationStore.Versioned stored(Migration m) {
    ms.commit("test", Txn.builder().put(paths.migration(m.getId()), m.toByteArray()).build());
    return ms.require(m.getId());
  }

  private long lease() throws Exception {
    return store.grantLease(Duration.ofSeconds(60)).get();
  }

  @Test
  void anUpdateAfterLosingOwnershipIsRefusedAndChangesNothing() throws Exception {
    MigrationStore.Versioned v = stored(in(MigrationState.MIGRATION_STATE_COPYING));
    MigrationStore.Ownership w1 = ms.claim("m1", "w1", lease()).orElseThrow();
    assertTrue(ms.claim("m1", "w2", lease()).isEmpty(), "held by w1");
    ms.release(w1);
    MigrationStore.Ownership w2 = ms.claim("m1", "w2", lease()).orElseThrow();

    Migration next = MigrationSteps.caughtUp(v.migration(), 10, 0).build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> ms.update(v, w1, next));
    assertEquals(ErrorCode.ABORTED, e.code());
    assertEquals(v, ms.require("m1"));
    assertEquals("w2", ms.owners().get("m1"));
    // The new owner's write, from the same read, goes through.
    assertEquals(next, ms.update(v, w2, next).migration());
  }

  @Test
  void aCancelRequestWrittenConcurrentlyIsNotOverwritten() throws Exception {
    MigrationStore.Versioned v = stored(in(MigrationState.MIGRATION_STATE_VERIFYING));
    MigrationStore.Ownership own = ms.claim("m1", "w1", lease()).orElseThrow();
    // The operator's request lands between the driver's read and its write.
    ms.requestCancel("m1");
    Migration next = MigrationSteps.verified(v.migration(), TABLES,
        new MigrationSteps.Verified(0, true, false, 0, null)).build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> ms.update(v, own, next));
    assertEquals(ErrorCode.ABORTED, e.code());
    MigrationStore.Versioned current = ms.require("m1");
    assertTrue(current.migration().getCancelRequested());
    assertEquals(MigrationState.MIGRATION_STATE_VERIFYING, current.migration().getState());
    assertEquals(0, current.migration().getVerifyTable());

    // Re-read (as the driver does on ABORTED): the next step is the cancel, which keeps the request.
    Migration cancelling = MigrationSteps.cancelRequested(current.migration()).orElseThrow().build();
    MigrationStore.Versioned written = ms.update(current, own, cancelling);
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLING, ms.require("m1").migration().getState());
    assertTrue(ms.require("m1").migration().getCancelRequested());
    assertSame(cancelling, written.migration());
  }

  @Test
  void aFailedWriteLeavesTheRecordAsItWas() throws Exception {
    MigrationStore.Versioned v = stored(in(MigrationState.MIGRATION_STATE_CATCHING_UP));
    MigrationStore.Ownership own = ms.claim("m1", "w1", lease()).orElseThrow();
    store.failNext(1, StoreException.Kind.UNAVAILABLE);
    Migration next = MigrationSteps.caughtUp(v.migration(), 10, 0).build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> ms.update(v, own, next));
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertEquals(v, ms.require("m1"));
    // Nothing was written, so the same guarded write from the same read applies once.
    assertEquals(MigrationState.MIGRATION_STATE_VERIFYING, ms.update(v, own, next).migration().getState());
    assertThrows(ShardmapException.class, () -> ms.update(v, own, next));
  }
}
