package io.shardmap.migrator.internal;

import com.google.protobuf.ByteString;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationOptions;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.server.internal.StoreLayout;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Drives one migration, which this worker owns, through its states until it is DONE or CANCELLED
 * (docs/migrator-design.md). Each step does its PostgreSQL work idempotently, then persists its progress
 * with a guarded etcd write; a worker that resumes the migration repeats at most the last step.
 *
 * <p>Only one worker touches a migration's data at a time, twice guarded: the etcd owner key (every write
 * compares it) and a PostgreSQL advisory lock on the source held for the whole drive, which a worker that
 * lost its lease but still runs keeps until it notices and closes its connections.
 */
public final class MoveDriver {
  private static final Logger log = Logger.getLogger(MoveDriver.class.getName());
  /** Catch-up hands over to verification once fewer keys than this wait. */
  static final long CATCH_UP_THRESHOLD = 1_000;
  private static final int REPLAY_BATCH = 5_000;

  /** Who has acknowledged which map revision; see {@link ClientAckSource}. */
  public interface ClientAckSource {
    /** Empty when every live client has applied {@code revision}; else who is still behind. */
    java.util.Optional<String> waitingFor(long revision);
  }

  private final MigrationStore ms;
  private final PgConnector pg;
  private final MigrationStore.Ownership own;
  private final BooleanSupplier leaseAlive;
  private final BooleanSupplier stop;
  private final ClientAckSource acks;
  private final Clock clock;
  private final Duration poll;
  private final Consumer<String> faults;
  private final Consumer<Migration> progress;

  private MigrationStore.Versioned v;
  private List<RangeTableMove> moves;

  /**
   * @param stop asked at every step boundary (and in cleanup's waits): once true, the drive returns the
   *     record as persisted, not ended, so that its caller can hand the migration back
   */
  public MoveDriver(MigrationStore ms, PgConnector pg, MigrationStore.Ownership own, BooleanSupplier leaseAlive,
                    BooleanSupplier stop, ClientAckSource acks, Clock clock, Duration poll, Consumer<String> faults,
                    Consumer<Migration> progress) {
    this.ms = ms;
    this.pg = pg;
    this.own = own;
    this.leaseAlive = leaseAlive;
    this.stop = stop;
    this.acks = acks;
    this.clock = clock;
    this.poll = poll;
    this.faults = faults;
    this.progress = progress;
  }

  /**
   * Runs the migration to DONE or CANCELLED and returns its final record; or, once {@code stop} is true,
   * returns at the next step boundary with the record as persisted there.
   */
  public Migration drive() throws SQLException {
    v = ms.require(own.id());
    Migration m = v.migration();
    try (Connection src = pg.open("source", m.getSource()); Connection dst = pg.open("target", m.getTarget())) {
      // Every table moves the same unit (the planner refuses a keyspace without tables).
      moves = tableMoves(m, src);
      lockSource(src);
      while (!States.terminal(v.migration().getState())) {
        if (stop.getAsBoolean()) {
          return v.migration();
        }
        if (!leaseAlive.getAsBoolean()) {
          throw new ShardmapException(ErrorCode.ABORTED, "migration " + own.id() + ": worker " + own.worker()
              + " lost its etcd lease; stopping (another worker will resume it)");
        }
        try {
          step(src, dst);
        } catch (ShardmapException e) {
          if (e.code() != ErrorCode.ABORTED) {
            throw e;
          }
          // The record changed under us: an operator's cancel request, or a takeover. Re-read and check.
          v = ms.require(own.id());
          if (!ms.owners().getOrDefault(own.id(), "").equals(own.worker())) {
            throw e;
          }
        }
        progress.accept(v.migration());
      }
      return v.migration();
    }
  }

  /**
   * The data path of each sharded table of a migration. The key columns' kinds (integer, text, bytea) are
   * read from {@code source} for BYTES keyspaces.
   */
  public static List<RangeTableMove> tableMoves(Migration m, Connection source) throws SQLException {
    MoveUnit unit = MoveUnits.of(m);
    List<RangeTableMove> out = new ArrayList<>();
    for (ShardedTable t : m.getTablesList()) {
      KeyKind kind = KeyKind.INT64;
      if (m.getKeyType() != io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64) {
        kind = Tables.keyKind(source, m.getKeyType(), t.getName(), t.getKeyColumn(), m.getSource());
      }
      out.add(new RangeTableMove(m.getId(), m.getKeyspace(), t.getName(), t.getKeyColumn(), kind, unit,
          Fences.wording(m)));
    }
    return out;
  }

  /**
   * A session-level advisory lock on the source, keyed by the migration id: a previous owner that lost
   * its lease but still runs holds it until its connections close.
   */
  private void lockSource(Connection src) throws SQLException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (true) {
      try (PreparedStatement ps = src.prepareStatement("SELECT pg_try_advisory_lock(hashtextextended(?, 0))")) {
        ps.setString(1, "shardmap.migration." + own.id());
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          if (rs.getBoolean(1)) {
            return;
          }
        }
      }
      if (System.nanoTime() > deadline) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "migration " + own.id() + ": another worker's session "
            + "on the source still holds the migration's advisory lock");
      }
      sleep(poll);
    }
  }

  private void step(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    MigrationState s = m.getState();
    if (m.getCancelRequested() && States.beforeCutover(s)) {
      if (s == MigrationState.MIGRATION_STATE_CUTTING_OVER) {
        Fences.unfence(src, m.getId(), tableNames());
      }
      update(m.toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLING));
      return;
    }
    switch (s) {
      case MIGRATION_STATE_PLANNED -> update(m.toBuilder().setState(MigrationState.MIGRATION_STATE_PREPARING));
      case MIGRATION_STATE_PREPARING -> prepare(src, dst);
      case MIGRATION_STATE_COPYING -> copy(src, dst);
      case MIGRATION_STATE_CATCHING_UP -> catchUp(src, dst);
      case MIGRATION_STATE_VERIFYING -> verify(src, dst);
      case MIGRATION_STATE_CUTTING_OVER -> cutOver(src, dst);
      case MIGRATION_STATE_CLEANING_UP -> cleanUp(src, dst);
      case MIGRATION_STATE_CANCELLING -> cancel(src, dst);
      default -> throw new ShardmapException(ErrorCode.INTERNAL, "migration " + m.getId() + " in state " + s);
    }
  }

  private void prepare(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    Migration.Builder next = m.toBuilder();
    // The migrator writes through fences on both sides (cleanup on the source; copy, replay and repair on
    // a target that still fences the unit): its role must be allowed to, or the move would fail late.
    Fences.requirePass(src, m.getSource());
    Fences.requirePass(dst, m.getTarget());
    Fences.ensureSchema(src);
    Fences.ensureSchema(dst);
    // A target that still fences the unit from an earlier move lets route declarations through once it
    // is the owner again, up to the epoch the unit gets here, and no others (Fences.arm).
    Fences.arm(dst, moves, Fences.returnEpoch(m));
    for (RangeTableMove t : moves) {
      List<Tables.Column> s = Tables.columns(src, t.table());
      if (s == null) {
        throw ShardmapException.precondition("tables: table " + t.table() + " no longer exists on source shard '"
            + m.getSource() + "'");
      }
      if (Tables.columns(dst, t.table()) == null && m.getOptions().getCreateMissingTables()) {
        // Only a table this migration created is its to drop on cancel (another may be filling it).
        if (Tables.createIfMissing(src, dst, t.table()) && !next.getCreatedTablesList().contains(t.table())) {
          next.addCreatedTables(t.table());
        }
      }
      List<Tables.Column> d = Tables.columns(dst, t.table());
      if (d == null) {
        throw ShardmapException.precondition("target: table " + t.table() + " does not exist on shard '"
            + m.getTarget() + "'");
      }
      Tables.requireSameColumns(t.table(), m.getSource(), s, m.getTarget(), d);
      if (t.unit().needsRouting()) {
        SqlRouting.install(src);
        SqlRouting.install(dst);
      }
      t.installCapture(src);
    }
    faults.accept("preparing:captured");
    update(next.setState(MigrationState.MIGRATION_STATE_COPYING).setCopyTable(0).clearCopyAfter()
        .setCopyStartedUnixMs(clock.millis()));
  }

  /** Longest stretch of copying between two saves of the copy cursor. */
  private static final long COPY_SAVE_MAX_NANOS = TimeUnit.SECONDS.toNanos(1);

  /** What the last save of the copy cursor took; the next save waits ten times that (see copy()). */
  private long copySaveNanos;

  /**
   * Copies chunks of the current table, then saves the cursor once: after ten times as long as the last
   * save took, at most {@link #COPY_SAVE_MAX_NANOS}, so the etcd writes cost at most about a tenth of the
   * copy. Saving after every chunk cost an etcd round trip per chunk, a fifth of the copy time (docs/
   * benchmarks.md, "Migrator"). A crash repeats the copying since the last save, which converges all
   * the same because each chunk first deletes the target's rows of its keys.
   */
  private void copy(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    int t = m.getCopyTable();
    if (t >= moves.size()) {
      update(m.toBuilder().setState(MigrationState.MIGRATION_STATE_CATCHING_UP));
      return;
    }
    byte[] after = m.getCopyAfter().isEmpty() ? null : m.getCopyAfter().toByteArray();
    Migration.Builder next = m.toBuilder();
    long saveBy = System.nanoTime() + Math.min(COPY_SAVE_MAX_NANOS, 10 * copySaveNanos);
    while (true) {
      RangeTableMove.CopiedChunk c = moves.get(t).copyChunk(src, dst, after, m.getOptions().getChunkRows());
      faults.accept("copying:chunk");
      next.setRowsCopied(next.getRowsCopied() + c.rows()).setBytesCopied(next.getBytesCopied() + c.bytes());
      if (c.done()) {
        next.setCopyTable(t + 1).clearCopyAfter();
        if (t + 1 >= moves.size()) {
          next.setState(MigrationState.MIGRATION_STATE_CATCHING_UP);
        }
        break;
      }
      after = c.last();
      next.setCopyAfter(ByteString.copyFrom(after));
      if (System.nanoTime() - saveBy >= 0 || stop.getAsBoolean()) {
        break;
      }
    }
    long t0 = System.nanoTime();
    update(next);
    copySaveNanos = System.nanoTime() - t0;
  }

  /** Replays one round of logged keys of every table; returns the keys replayed. */
  private long replayAll(Connection src, Connection dst) throws SQLException {
    long n = 0;
    for (RangeTableMove t : moves) {
      n += t.replayRound(src, dst, REPLAY_BATCH);
    }
    return n;
  }

  private long pending(Connection src) throws SQLException {
    long n = 0;
    for (RangeTableMove t : moves) {
      n += t.pendingKeys(src);
    }
    return n;
  }

  private void catchUp(Connection src, Connection dst) throws SQLException {
    long deadline = System.nanoTime() + Duration.ofSeconds(1).toNanos();
    long replayed = 0;
    long round;
    do {
      round = replayAll(src, dst);
      replayed += round;
    } while (round > 0 && System.nanoTime() < deadline);
    long lag = pending(src);
    faults.accept("catching-up:round");
    Migration.Builder next = v.migration().toBuilder().setKeysReplayed(v.migration().getKeysReplayed() + replayed)
        .setLagKeys(lag);
    if (lag < CATCH_UP_THRESHOLD) {
      next.setState(MigrationState.MIGRATION_STATE_VERIFYING).setVerifyTable(0).clearVerifyAfter();
    }
    update(next);
  }

  private void verify(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    int t = m.getVerifyTable();
    if (t >= moves.size()) {
      update(m.toBuilder().setState(MigrationState.MIGRATION_STATE_CUTTING_OVER));
      return;
    }
    // Keep the lag small while verifying: a chunk differs less often, and cutover starts closer.
    long replayed = replayAll(src, dst);
    byte[] after = m.getVerifyAfter().isEmpty() ? null : m.getVerifyAfter().toByteArray();
    RangeTableMove.VerifiedChunk c = moves.get(t).verifyChunk(src, dst, after, m.getOptions().getChunkRows());
    faults.accept("verifying:chunk");
    Migration.Builder next = m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed)
        .setChunksVerified(m.getChunksVerified() + 1)
        .setChunksRepaired(m.getChunksRepaired() + (c.mismatched() ? 1 : 0))
        .setKeysRepaired(m.getKeysRepaired() + c.keysRepaired());
    if (c.done()) {
      next.setVerifyTable(t + 1).clearVerifyAfter();
      if (t + 1 >= moves.size()) {
        next.setState(MigrationState.MIGRATION_STATE_CUTTING_OVER);
      }
    } else {
      next.setVerifyAfter(ByteString.copyFrom(c.last()));
    }
    update(next);
  }

  /**
   * One cutover attempt. Before fencing: catch up, then estimate the final drain from the measured replay
   * rate; if it would not fit half the budget, the attempt ends without fencing. Then fence (the lock
   * waits at most the budget), drain, and switch the owner in one etcd transaction.
   *
   * <p>The target may still fence part of the range, from a move that took it away earlier. Its
   * applications' writes must stay refused until etcd names it the owner, and be accepted right after:
   * the lifting of that fence is prepared on a connection of its own before the source is fenced, and
   * committed once the owner switch has committed (rolled back, with the connection, otherwise).
   */
  private void cutOver(Connection src, Connection dst) throws SQLException {
    try (Connection lift = pg.open("target", v.migration().getTarget())) {
      cutOver(src, dst, lift);
    }
  }

  private void cutOver(Connection src, Connection dst, Connection lift) throws SQLException {
    Migration m = v.migration();
    MigrationOptions o = m.getOptions();
    long budgetMs = o.getPauseBudgetMs();
    // A fence left by an attempt that did not commit (this worker's or a crashed one's) comes off first:
    // the source is still the owner.
    Fences.unfence(src, m.getId(), tableNames());
    long catchUpEnd = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    long replayed = 0;
    double msPerKey = 0.05;
    long lag;
    while (true) {
      long t0 = System.nanoTime();
      long n = replayAll(src, dst);
      replayed += n;
      if (n > 0) {
        msPerKey = (System.nanoTime() - t0) / 1e6 / n;
      }
      lag = pending(src);
      if (lag == 0 || lag * msPerKey <= budgetMs / 4.0 || System.nanoTime() > catchUpEnd) {
        break;
      }
    }
    double estimateMs = lag * msPerKey;
    if (estimateMs > budgetMs / 2.0) {
      missed(m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(lag),
          "cutover deferred before fencing: " + lag + " keys behind, about " + Math.round(estimateMs)
              + " ms to drain, over half the " + budgetMs + " ms pause budget");
      return;
    }
    faults.accept("cutting-over:caught-up");
    if (!Fences.prepareUnfenceMoved(lift, moves, Duration.ofMillis(budgetMs))) {
      missed(m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(lag),
          "cutover deferred: the target's fence rows did not come within the " + budgetMs + " ms pause budget "
              + "(another migration is changing its fences)");
      return;
    }
    long fenceStart = System.nanoTime();
    if (!Fences.fence(src, moves, m.getRangeEpoch(), Duration.ofMillis(budgetMs))) {
      lift.rollback(); // not held through the backoff
      missed(m.toBuilder().setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(lag),
          "cutover deferred: the fence's table lock did not come within the " + budgetMs + " ms pause budget "
              + "(a long transaction is writing a moved table)");
      return;
    }
    faults.accept("cutting-over:fenced");
    // Fenced: nothing can be logged any more; the log holds the last changes.
    long n;
    while ((n = replayAll(src, dst)) > 0) {
      replayed += n;
    }
    faults.accept("cutting-over:drained");
    StoreLayout keys = ms.keys();
    long now = clock.millis();
    long pauseMs = (System.nanoTime() - fenceStart) / 1_000_000;
    Migration next = m.toBuilder().setState(MigrationState.MIGRATION_STATE_CLEANING_UP)
        .setKeysReplayed(m.getKeysReplayed() + replayed).setLagKeys(0).setCutoverAttempts(m.getCutoverAttempts() + 1)
        .setPauseMs(pauseMs).setCutoverUnixMs(now).setUpdatedUnixMs(now).setLastError("").build();
    TxnResult r;
    String changed;
    for (int attempt = 1; ; attempt++) {
      Txn.Builder txn = ms.ownedTxn(v, own)
          .compare(Compare.modRevision(keys.spec(m.getKeyspace()), m.getSpecModRevision()))
          .compare(Compare.present(keys.shard(m.getTarget())));
      changed = UnitRecords.handOver(ms, m, txn);
      if (changed != null) {
        r = new TxnResult(false, 0);
        break;
      }
      txn.put(keys.shardRef(m.getTarget()), new byte[0]);
      UnitRecords.markers(keys, m).forEach(txn::delete);
      txn.put(keys.migration(m.getId()), next.toByteArray());
      try {
        r = ms.commit("cutover of migration " + m.getId(), txn.build());
      } catch (ShardmapException unknown) {
        // The outcome is unknown. Keep the fence (writers wait, nothing is lost) until etcd tells which.
        r = readBack(next, unknown);
      }
      // A layout record is rewritten by other units' cutovers: unless our record changed, read it again.
      if (r.succeeded() || !UnitRecords.inLayout(m) || attempt >= 16
          || ms.require(m.getId()).modRevision() != v.modRevision()) {
        break;
      }
    }
    if (!r.succeeded()) {
      MigrationStore.Versioned current = ms.require(m.getId());
      if (current.migration().getState() == MigrationState.MIGRATION_STATE_CLEANING_UP) {
        r = new TxnResult(true, current.modRevision());
      } else {
        boolean recordChanged = current.modRevision() != v.modRevision();
        v = current;
        // Rewrite the record before lifting the fence: a cutover transaction still in flight compares the
        // record's old mod revision, so once this write commits it can never apply. If it applied first,
        // this write fails (ABORTED), the fence stays, and the next step sees CLEANING_UP.
        if (recordChanged) {
          update(current.migration().toBuilder().setLastError("a cutover attempt met a change of the record"));
        } else {
          // The unit's records, the spec or the target's registration changed since the move was planned
          // (the admin API refuses such changes while the marker exists, so someone bypassed it): undo it.
          update(current.migration().toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLING)
              .setLastError("cutover refused: " + (changed != null ? changed : "the " + (m.hasUnit() ? "unit's records"
                  : "range") + ", the keyspace spec or the target's registration changed since the move was planned")));
        }
        Fences.unfence(src, m.getId(), tableNames());
        return;
      }
    }
    long revision = r.revision();
    v = new MigrationStore.Versioned(next, revision);
    log.info(() -> "migration " + m.getId() + ": cut over at revision " + revision + ", write pause "
        + pauseMs + " ms (budget " + budgetMs + " ms)");
    faults.accept("cutting-over:committed");
    try {
      lift.commit();
    } catch (SQLException e) {
      // The target refuses its own range's writes until the cleanup step (next) lifts its fence again.
      log.log(Level.WARNING, "migration " + m.getId() + ": lifting the target's old fence at cutover failed; "
          + "cleanup lifts it: " + e.getMessage());
    }
    update(v.migration().toBuilder().setCutoverRevision(revision));
  }

  /** After an unknown cutover outcome: the record says whether it applied; wait for etcd to say. */
  private TxnResult readBack(Migration committed, ShardmapException unknown) {
    long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
    while (true) {
      try {
        MigrationStore.Versioned now = ms.require(committed.getId());
        if (now.migration().getState() == MigrationState.MIGRATION_STATE_CLEANING_UP) {
          return new TxnResult(true, now.modRevision());
        }
        return new TxnResult(false, now.modRevision());
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE || System.nanoTime() > deadline) {
          throw unknown;
        }
        log.log(Level.WARNING, "migration " + committed.getId() + ": cutover outcome unknown, fence kept; "
            + "asking etcd again: " + e.getMessage());
        sleep(poll);
      }
    }
  }

  private void missed(Migration.Builder next, String why) {
    int attempts = next.getCutoverAttempts() + 1;
    next.setCutoverAttempts(attempts).setLastError(why);
    log.warning(() -> "migration " + next.getId() + ": " + why + " (attempt " + attempts + " of "
        + next.getOptions().getMaxCutoverAttempts() + ")");
    if (attempts >= next.getOptions().getMaxCutoverAttempts()) {
      next.setState(MigrationState.MIGRATION_STATE_CANCELLING).setLastError("cancelled: the write pause budget "
          + "could not be met in " + attempts + " attempts; last: " + why);
      update(next);
      return;
    }
    update(next);
    long backoffEnd = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.min(5_000, 200L << Math.min(attempts, 5)));
    while (System.nanoTime() < backoffEnd && !stop.getAsBoolean()) {
      sleep(poll);
    }
  }

  private void cleanUp(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    // The target owns the unit: lift fences it kept from moving the unit away earlier (the cutover
    // did, unless it crashed or failed between etcd's commit and the target's).
    Fences.unfenceMoved(dst, moves);
    for (RangeTableMove t : moves) {
      t.removeCapture(src);
    }
    long revision = m.getCutoverRevision();
    if (revision == 0) {
      revision = v.modRevision();
    }
    long graceEnd = m.getCutoverUnixMs() + m.getOptions().getCleanupGraceMs();
    String reason;
    while (true) {
      java.util.Optional<String> behind = acks.waitingFor(revision);
      if (behind.isEmpty()) {
        reason = "every live client acknowledged revision " + revision;
        break;
      }
      if (clock.millis() >= graceEnd) {
        reason = "grace time elapsed (" + m.getOptions().getCleanupGraceMs() + " ms); still behind: " + behind.get();
        break;
      }
      if (stop.getAsBoolean()) {
        return; // nothing to persist: whoever resumes waits out the same grace, counted from the cutover
      }
      if (!leaseAlive.getAsBoolean()) {
        throw new ShardmapException(ErrorCode.ABORTED, "migration " + own.id() + ": lease lost during cleanup");
      }
      sleep(poll);
    }
    if (!reason.equals(m.getCleanupReason())) {
      update(m.toBuilder().setCleanupReason(reason));
      m = v.migration();
    }
    long deleted = m.getRowsDeleted();
    long lastPersist = System.nanoTime();
    for (RangeTableMove t : moves) {
      int n;
      while ((n = t.deleteBatch(src, m.getOptions().getCleanupBatchRows())) > 0) {
        deleted += n;
        faults.accept("cleaning-up:batch");
        if (stop.getAsBoolean()) {
          update(v.migration().toBuilder().setRowsDeleted(deleted));
          return;
        }
        if (System.nanoTime() - lastPersist > 1_000_000_000L) {
          update(v.migration().toBuilder().setRowsDeleted(deleted));
          lastPersist = System.nanoTime();
        }
        sleep(Duration.ofMillis(m.getOptions().getCleanupPauseMs()));
      }
    }
    update(v.migration().toBuilder().setRowsDeleted(deleted).setState(MigrationState.MIGRATION_STATE_DONE)
        .setFinishedUnixMs(clock.millis()));
  }

  private void cancel(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    Fences.unfence(src, m.getId(), tableNames());
    Fences.disarm(dst, m.getId(), tableNames());
    for (RangeTableMove t : moves) {
      t.removeCapture(src);
    }
    faults.accept("cancelling:source-restored");
    for (RangeTableMove t : moves) {
      if (Tables.columns(dst, t.table()) == null) {
        continue;
      }
      while (t.deleteBatch(dst, m.getOptions().getCleanupBatchRows()) > 0) {
        faults.accept("cancelling:batch");
      }
    }
    for (String created : m.getCreatedTablesList()) {
      Tables.dropIfEmpty(dst, created, () -> neededElsewhere(m, created));
    }
    long now = clock.millis();
    Migration next = m.toBuilder().setState(MigrationState.MIGRATION_STATE_CANCELLED).setUpdatedUnixMs(now)
        .setFinishedUnixMs(now).build();
    Txn.Builder txn = ms.ownedTxn(v, own);
    UnitRecords.markers(ms.keys(), m).forEach(txn::delete);
    v = ms.commitOwned(v, own, txn, next);
  }

  /** Whether another unfinished migration to this one's target moves rows of {@code table}. */
  private boolean neededElsewhere(Migration m, String table) {
    for (MigrationStore.Versioned other : ms.list()) {
      Migration o = other.migration();
      if (!o.getId().equals(m.getId()) && o.getTarget().equals(m.getTarget()) && !States.terminal(o.getState())
          && o.getTablesList().stream().anyMatch(t -> t.getName().equals(table))) {
        return true;
      }
    }
    return false;
  }

  private List<String> tableNames() {
    List<String> out = new ArrayList<>();
    moves.forEach(t -> out.add(t.table()));
    return out;
  }

  private void update(Migration.Builder next) {
    v = ms.update(v, own, next.setUpdatedUnixMs(clock.millis()).build());
  }

  private static void sleep(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted");
    }
  }
}
