package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import io.shardmap.catalog.CatalogTxns;
import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationOptions;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Drives one migration, which this worker owns, through its states until it is DONE or CANCELLED
 * (docs/migrator-design.md). Each step does its PostgreSQL work idempotently, asks {@link MigrationSteps}
 * for the record's next version (state and fields) given what it observed, then persists that with a
 * guarded etcd write; a worker that resumes the migration repeats at most the last step.
 *
 * <p>Only one worker touches a migration's data at a time, twice guarded: the etcd owner key (every write
 * compares it) and a PostgreSQL advisory lock on the source held for the whole drive, which a worker that
 * lost its lease but still runs keeps until it notices and closes its connections.
 */
public final class MoveDriver {
  private static final Logger log = Logger.getLogger(MoveDriver.class.getName());
  private static final int REPLAY_BATCH = 5_000;
  /** Longest time a long step (cleanup's wait, its deletes) goes without persisting, and so showing, progress. */
  private static final long PROGRESS_PERSIST_NANOS = TimeUnit.SECONDS.toNanos(1);
  /** Between deferred cutover attempts (by attempt number, no jitter: one worker per migration): 400 ms doubling to 5 s. */
  static final Backoff CUTOVER_RETRY_BACKOFF = Backoff.exponential(Duration.ofMillis(400), Duration.ofSeconds(5))
      .withJitter(0);
  /** Lost races of the cutover commit, fence held: barely a pause. */
  private static final Backoff CUTOVER_CONFLICT_BACKOFF = Backoff.exponential(Duration.ofNanos(1_000),
      Duration.ofMillis(1));

  /** Who has acknowledged which map revision; see {@link ClientAckSource}. */
  public interface ClientAckSource {
    /** Whether every live client has applied {@code revision}, and how many were counted. */
    Acked waitingFor(long revision);
  }

  /**
   * @param behind empty when every live client has applied the revision; else who is still behind
   * @param clients live clients counted (0 when none are listed, or the acknowledgements were unreadable)
   */
  public record Acked(java.util.Optional<String> behind, long clients) {}

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
  /** Monotonic nanoseconds: the budget's clock (see {@link CutoverBudget}). */
  private final LongSupplier ticker;
  /** How long this driver's recent etcd record writes took: what the owner switch is expected to cost. */
  private final CutoverBudget.Recent etcdCommits = new CutoverBudget.Recent(5);

  private MigrationStore.Versioned v;
  private List<RangeTableMove> moves;
  /** The whole move's expected end, written into every persisted record ({@code eta_unix_ms}). */
  private final MoveEta eta = new MoveEta(MoveEta.Priors.DEFAULT);

  /**
   * @param stop asked at every step boundary (and in cleanup's waits): once true, the drive returns the
   *     record as persisted, not ended, so that its caller can hand the migration back
   * @param ticker monotonic nanoseconds: every deadline and duration of the drive, the cutover's pause
   *     and its budget
   */
  public MoveDriver(MigrationStore ms, PgConnector pg, MigrationStore.Ownership own, BooleanSupplier leaseAlive,
                    BooleanSupplier stop, ClientAckSource acks, Clock clock, LongSupplier ticker, Duration poll,
                    Consumer<String> faults, Consumer<Migration> progress) {
    this.ticker = ticker;
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
    long deadline = ticker.getAsLong() + Duration.ofSeconds(30).toNanos();
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
      if (ticker.getAsLong() > deadline) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "migration " + own.id() + ": another worker's session "
            + "on the source still holds the migration's advisory lock");
      }
      sleep(poll);
    }
  }

  private void step(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    MigrationState s = m.getState();
    java.util.Optional<Migration.Builder> cancelling = MigrationSteps.cancelRequested(m);
    if (cancelling.isPresent()) {
      if (s == MigrationState.MIGRATION_STATE_CUTTING_OVER) {
        Fences.unfence(src, m.getId(), tableNames(), ticker);
      }
      update(cancelling.get());
      return;
    }
    switch (s) {
      case MIGRATION_STATE_PLANNED -> update(MigrationSteps.planned(m));
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
    List<String> created = new ArrayList<>();
    // Before anything routes to the target, it gets current copies of the keyspace's reference tables
    // (docs/reference-tables.md); a crash here resumes in this step and finishes it (each step reruns).
    new ReferenceCopies(ms, pg, line -> log.info("migration " + m.getId() + ": " + line), faults)
        .ensureOn(m.getKeyspace(), m.getTarget());
    faults.accept("preparing:reference-copies");
    // The migrator writes through fences on both sides (cleanup on the source; copy, replay and repair on
    // a target that still fences the unit): its role must be allowed to, or the move would fail late.
    Fences.requirePass(src, m.getSource());
    Fences.requirePass(dst, m.getTarget());
    Fences.ensureSchema(src);
    Fences.ensureSchema(dst);
    // A target that still fences the unit from an earlier move lets route declarations through once it
    // is the owner again, up to the epoch the unit gets here, and no others (Fences.arm).
    Fences.arm(dst, moves, Fences.returnEpoch(m), ticker);
    for (RangeTableMove t : moves) {
      List<Tables.Column> s = Tables.columns(src, t.table());
      if (s == null) {
        throw ShardmapException.precondition("tables: table " + t.table() + " no longer exists on source shard '"
            + m.getSource() + "'");
      }
      if (Tables.columns(dst, t.table()) == null && m.getOptions().getCreateMissingTables()) {
        // Only a table this migration created is its to drop on cancel (another may be filling it).
        if (Tables.createIfMissing(src, dst, t.table())) {
          created.add(t.table());
        }
      }
      List<Tables.Column> d = Tables.columns(dst, t.table());
      if (d == null) {
        throw ShardmapException.precondition("target: table " + t.table() + " does not exist on shard '"
            + m.getTarget() + "'");
      }
      Tables.requireSameColumns(t.table(), m.getSource(), s, m.getTarget(), d);
      if (t.unit().needsRouting()) {
        RoutingFunctions.install(src);
        RoutingFunctions.install(dst);
      }
      t.installCapture(src, ticker);
    }
    faults.accept("preparing:captured");
    // The rows to move, for the whole move's ETA: the planner's estimate (EXPLAIN, nothing is read).
    long estimate = 0;
    for (RangeTableMove t : moves) {
      try {
        estimate += t.estimateRange(src);
      } catch (SQLException e) {
        log.fine(() -> "migration " + m.getId() + ": no row estimate of " + t.table() + ": " + e.getMessage());
      }
    }
    update(MigrationSteps.prepared(m, created, clock.millis()).setRowsEstimate(estimate));
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
    if (MigrationSteps.copyFinished(m, moves.size())) {
      update(MigrationSteps.copied(m, moves.size(), null));
      return;
    }
    byte[] after = m.getCopyAfter().isEmpty() ? null : m.getCopyAfter().toByteArray();
    long rows = 0;
    long bytes = 0;
    boolean done;
    long saveBy = ticker.getAsLong() + Math.min(COPY_SAVE_MAX_NANOS, 10 * copySaveNanos);
    while (true) {
      RangeTableMove.CopiedChunk c = moves.get(t).copyChunk(src, dst, after, m.getOptions().getChunkRows());
      faults.accept("copying:chunk");
      rows += c.rows();
      bytes += c.bytes();
      done = c.done();
      if (done) {
        break;
      }
      after = c.last();
      if (ticker.getAsLong() - saveBy >= 0 || stop.getAsBoolean()) {
        break;
      }
    }
    long t0 = ticker.getAsLong();
    update(MigrationSteps.copied(m, moves.size(), new MigrationSteps.Copied(rows, bytes, done, after)));
    copySaveNanos = ticker.getAsLong() - t0;
  }

  /** Replays one round of logged keys into every table; returns the keys replayed. */
  private long replayAll(Connection src, Connection dst) throws SQLException {
    return RangeTableMove.replayRound(moves, src, dst, REPLAY_BATCH);
  }

  /** Keys waiting in the migration's change log (one for all its tables). */
  private long pending(Connection src) throws SQLException {
    return moves.get(0).pendingKeys(src);
  }

  private void catchUp(Connection src, Connection dst) throws SQLException {
    long deadline = ticker.getAsLong() + Duration.ofSeconds(1).toNanos();
    long replayed = 0;
    long round;
    do {
      round = replayAll(src, dst);
      replayed += round;
    } while (round > 0 && ticker.getAsLong() < deadline);
    long lag = pending(src);
    faults.accept("catching-up:round");
    update(MigrationSteps.caughtUp(v.migration(), replayed, lag));
  }

  /** Longest stretch of verifying between two saves of the verify cursor (and replay rounds). */
  private static final long VERIFY_SAVE_MAX_NANOS = TimeUnit.SECONDS.toNanos(1);

  /**
   * Verifies chunks of the current table for up to {@link #VERIFY_SAVE_MAX_NANOS}, then saves the cursor
   * once, as the copy does: saving (an etcd write) after every chunk cost a round trip per chunk. A replay
   * round still precedes each chunk's comparison (a key written after it is replayed later). A crash repeats the chunks
   * since the last save, which converges: comparing and repairing a chunk twice changes nothing.
   */
  private void verify(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    if (MigrationSteps.verifyFinished(m, moves.size())) {
      update(MigrationSteps.verified(m, moves.size(), null));
      return;
    }
    long startedMs = m.getVerifyStartedUnixMs() != 0 ? m.getVerifyStartedUnixMs() : clock.millis();
    long saveBy = ticker.getAsLong() + VERIFY_SAVE_MAX_NANOS;
    Migration cur = m;
    long rows = 0;
    while (true) {
      int t = cur.getVerifyTable();
      byte[] after = cur.getVerifyAfter().isEmpty() ? null : cur.getVerifyAfter().toByteArray();
      // A replay round right before each chunk's comparison keeps the lag small, so that few chunks differ.
      RangeTableMove.VerifiedChunk c = moves.get(t).verifyChunk(src, dst, after, m.getOptions().getChunkRows(),
          () -> replayAll(src, dst));
      faults.accept("verifying:chunk");
      rows += c.rows();
      cur = MigrationSteps.verified(cur, moves.size(), new MigrationSteps.Verified(c.replayed(), c.done(),
          c.mismatched(), c.keysRepaired(), c.last())).build();
      if (MigrationSteps.verifyFinished(cur, moves.size()) || ticker.getAsLong() - saveBy >= 0
          || stop.getAsBoolean()) {
        break;
      }
    }
    update(cur.toBuilder().setVerifyStartedUnixMs(startedMs).setRowsVerified(m.getRowsVerified() + rows));
  }

  /**
   * One cutover attempt, held to the write-pause budget end to end (docs/migrator-design.md, "Cutover").
   * Before any lock: catch up, estimate the final drain from the measured replay rate (the attempt ends
   * unfenced if it would not fit half the budget), and measure what the commits ahead cost (etcd's, from
   * this driver's recent record writes; PostgreSQL's, with a probe transaction). Then one deadline runs
   * from the lock request: the source's locks are waited for only as long as the budget less the drain
   * and the commits; the fence is written but not committed, so writers wait rather than being refused;
   * the change logs are drained while it holds them. Only if the commits still fit what is left of the
   * budget does the fence commit and the owner switch follow; otherwise the fence's transaction and the
   * target's prepared lift are rolled back, and writers go on at the source as if nothing had happened
   * (none was refused), and the attempt is retried after a backoff ({@link #missed}).
   *
   * <p>The target may still fence part of the range, from a move that took it away earlier. Its
   * applications' writes must stay refused until etcd names it the owner, and be accepted right after:
   * the lifting of that fence is prepared on a connection of its own before the source is fenced, and
   * committed once the owner switch has committed (rolled back, with the connection, otherwise).
   */
  private void cutOver(Connection src, Connection dst) throws SQLException {
    try (Connection lift = pg.open("target", v.migration().getTarget());
         Connection fence = pg.open("source", v.migration().getSource())) {
      cutOver(src, dst, lift, fence);
    }
  }

  private void cutOver(Connection src, Connection dst, Connection lift, Connection fence) throws SQLException {
    Migration m = v.migration();
    MigrationOptions o = m.getOptions();
    long budgetMs = o.getPauseBudgetMs();
    Duration budget = Duration.ofMillis(budgetMs);
    // A fence left by an attempt that did not commit (this worker's or a crashed one's) comes off first:
    // the source is still the owner.
    Fences.unfence(src, m.getId(), tableNames(), ticker);
    // A reference table declared since the move's start: copy it to the target now, before the fence (one
    // etcd read when nothing is missing). The cutover checks the records read here, so that the write pause
    // has no extra etcd read, and compares them unchanged: a table declared after this still refuses it.
    String migrationId = m.getId();
    io.shardmap.catalog.ReferenceTables refsBeforeFence = new ReferenceCopies(ms, pg,
        line -> log.info("migration " + migrationId + ": " + line)).ensureOn(m.getKeyspace(), m.getTarget());
    long catchUpEnd = ticker.getAsLong() + Duration.ofSeconds(5).toNanos();
    long replayed = 0;
    double msPerKey = 0.05;
    long lag;
    while (true) {
      long t0 = ticker.getAsLong();
      long n = replayAll(src, dst);
      replayed += n;
      if (n > 0) {
        msPerKey = (ticker.getAsLong() - t0) / 1e6 / n;
      }
      lag = pending(src);
      if (lag == 0 || lag * msPerKey <= budgetMs / 4.0 || ticker.getAsLong() - catchUpEnd > 0) {
        break;
      }
    }
    double estimateMs = lag * msPerKey;
    if (estimateMs > budgetMs / 2.0) {
      missed(MigrationSteps.cutoverCaughtUp(m, replayed, lag),
          "cutover deferred before fencing: " + lag + " keys behind, about " + Math.round(estimateMs)
              + " ms to drain, over half the " + budgetMs + " ms pause budget");
      return;
    }
    // Record the catch-up; the write is also a fresh sample of what an etcd commit costs right now.
    update(MigrationSteps.cutoverCaughtUp(m, replayed, lag));
    m = v.migration();
    replayed = 0;
    faults.accept("cutting-over:caught-up");
    // What the commits that must follow the drain cost right now (PostgreSQL commits flush WAL): the
    // target's, probed before its lift is prepared on the same connection, and the source's fence's.
    long liftCommit = probeCommit(lift);
    if (!Fences.prepareUnfenceMoved(lift, moves, budget)) {
      missed(m.toBuilder(), "cutover deferred: the target's fence rows did not come within the " + budgetMs
          + " ms pause budget (another migration is changing its fences)");
      return;
    }
    long fenceCommit = probeCommit(fence);
    long etcdCommit = etcdCommits.estimate(fenceCommit);
    long commits = fenceCommit + etcdCommit + liftCommit;
    long drain = (long) (estimateMs * 1e6);
    Duration lockWait = CutoverBudget.lockWait(budget, Duration.ofNanos(drain + commits));
    String costs = "etcd commit ~" + ms(etcdCommit) + " ms, PostgreSQL commits ~" + ms(fenceCommit) + " ms (source) and ~"
        + ms(liftCommit) + " ms (target), drain ~" + Math.round(estimateMs) + " ms";
    if (lockWait.toMillis() < 1) {
      lift.rollback();
      missed(m.toBuilder(), "cutover deferred before fencing: the measured costs (" + costs + ") leave nothing of "
          + "the " + budgetMs + " ms pause budget to wait for the source's table locks");
      return;
    }
    // The pause starts when the LOCK TABLE request is sent (writers queue behind it from then on), after
    // the fence transaction's preliminaries (schema check, the fence rows' advisory lock).
    long[] lockRequestedAt = new long[2];
    if (!Fences.prepareFence(fence, moves, m.getRangeEpoch(), lockWait, () -> {
      lockRequestedAt[0] = ticker.getAsLong();
      lockRequestedAt[1] = clock.millis();
    })) {
      lift.rollback(); // not held through the backoff
      missed(m.toBuilder(), "cutover deferred: the fence's table locks did not come within " + lockWait.toMillis()
          + " ms (the " + budgetMs + " ms pause budget less " + costs + "; a long transaction is writing a moved "
          + "table)");
      return;
    }
    long locked = ticker.getAsLong();
    long lockRequested = lockRequestedAt[0];
    long pauseStartedUnixMs = lockRequestedAt[1];
    CutoverBudget pause = new CutoverBudget(budget, lockRequested);
    faults.accept("cutting-over:fenced");
    // The locks are held: nothing can be logged any more, and the log holds the last changes.
    boolean fits;
    while ((fits = pause.fits(ticker.getAsLong(), commits))) {
      long n = replayAll(src, dst);
      if (n == 0) {
        break;
      }
      replayed += n;
    }
    faults.accept("cutting-over:drained");
    long drained = ticker.getAsLong();
    if (!fits || !pause.fits(drained, commits)) {
      // Before the point of no return: roll back, and the writers waiting on the locks go on at the source.
      fence.rollback();
      long held = ticker.getAsLong();
      lift.rollback();
      faults.accept("cutting-over:abandoned");
      missed(MigrationSteps.drained(m, replayed), "cutover abandoned before the owner "
          + "switch: " + ms(pause.elapsedNanos(drained)) + " ms into the pause (lock and fence rows "
          + ms(locked - lockRequested) + " ms, drain " + ms(drained - locked) + " ms), less than the " + ms(commits)
          + " ms the commits ahead need "
          + "was left of the " + budgetMs + " ms pause budget; the fence was rolled back, writers waited "
          + ms(held - lockRequested) + " ms and none was refused");
      return;
    }
    fence.commit();
    long fenceCommitted = ticker.getAsLong();
    faults.accept("cutting-over:fence-committed");
    CatalogPaths paths = ms.paths();
    long now = clock.millis();
    Migration next = MigrationSteps.cutOver(m, replayed, ms(pause.elapsedNanos(ticker.getAsLong())),
        pauseStartedUnixMs, now);
    String[] changed = {null};
    int[] attempts = {0};
    MigrationStore.Versioned planned = v;
    Migration cut = m;
    // The fence is held: conflicts are retried at once (a layout record rewritten by another unit's
    // cutover), and an unknown outcome is read back for up to 5 minutes, writers waiting, nothing lost.
    Long committed;
    try {
      committed = ms.txns(16).conflictBackoff(CUTOVER_CONFLICT_BACKOFF).readBackFor(Duration.ofMinutes(5))
        .readBackBackoff(Backoff.exponential(poll, poll).withJitter(0)).build()
        .update("cutover of migration " + cut.getId(), () -> {
          // A layout record is rewritten by other units' cutovers: unless our record changed, plan again.
          if (++attempts[0] > 1 && (!UnitRecords.inLayout(cut) || ms.require(cut.getId()).modRevision() != planned.modRevision())) {
            return null;
          }
          Txn.Builder txn = ms.ownedTxn(planned, own)
              .compare(Compare.modRevision(paths.spec(cut.getKeyspace()), cut.getSpecModRevision()));
          changed[0] = UnitRecords.handOver(ms, cut, txn);
          if (changed[0] != null) {
            return null;
          }
          // The move's start gave the target its reference copies; a table declared since without one there
          // refuses the cutover (no owner without copies): undone below like any refused cutover.
          io.shardmap.catalog.ReferenceTables refs = attempts[0] == 1 ? refsBeforeFence : ms.readReferences();
          List<io.shardmap.catalog.ReferenceTables.Versioned> missing = refs.missingOn(cut.getKeyspace(), cut.getTarget());
          if (!missing.isEmpty()) {
            changed[0] = "the target '" + cut.getTarget() + "' has no copy of reference table "
                + missing.get(0).table().getTable() + " (declared after the move started); run shardmap-migrator "
                + "reference sync --shard " + cut.getTarget() + " --keyspace " + cut.getKeyspace() + ", then move again";
            return null;
          }
          ms.edits().guardOwners(txn, cut.getKeyspace(), java.util.Set.of(cut.getTarget()), refs);
          UnitRecords.markers(paths, cut).forEach(txn::delete);
          txn.put(paths.migration(cut.getId()), next.toByteArray());
          return new CatalogTxns.Plan<>(txn.build(), rev -> rev);
        }, CatalogTxns.FRESH_READS);
    } catch (ShardmapException e) {
      if (e.code() != ErrorCode.ABORTED) {
        throw e;
      }
      committed = null; // lost 16 races for the layout record: settled below like any failed commit
    }
    TxnResult r = committed != null ? new TxnResult(true, committed) : new TxnResult(false, 0);
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
        // Otherwise the unit's records, the spec or the target's registration changed since the move was
        // planned (the admin API refuses such changes while the marker exists, so someone bypassed it): undo it.
        update(MigrationSteps.cutoverRefused(current.migration(), recordChanged, changed[0], m.hasUnit()));
        Fences.unfence(src, m.getId(), tableNames(), ticker);
        return;
      }
    }
    long switched = ticker.getAsLong();
    etcdCommits.add(switched - fenceCommitted);
    long revision = r.revision();
    v = new MigrationStore.Versioned(next, revision);
    faults.accept("cutting-over:committed");
    try {
      lift.commit();
    } catch (SQLException e) {
      // The target refuses its own range's writes until the cleanup step (next) lifts its fence again.
      log.log(Level.WARNING, "migration " + m.getId() + ": lifting the target's old fence at cutover failed; "
          + "cleanup lifts it: " + e.getMessage());
    }
    long end = ticker.getAsLong();
    long pauseMs = ms(pause.elapsedNanos(end));
    String id = m.getId();
    String parts = "lock and fence rows " + ms(locked - lockRequested) + " ms, drain " + ms(drained - locked)
        + " ms, fence commit " + ms(fenceCommitted - drained) + " ms, etcd switch " + ms(switched - fenceCommitted) + " ms, target commit "
        + ms(end - switched) + " ms";
    log.info(() -> "migration " + id + ": cut over at revision " + revision + ", write pause " + pauseMs
        + " ms (budget " + budgetMs + " ms): " + parts);
    update(MigrationSteps.cutOverRecorded(v.migration(), revision, pauseMs));
  }

  private void missed(Migration.Builder observed, String why) {
    Migration.Builder next = MigrationSteps.missed(observed, why);
    int attempts = next.getCutoverAttempts();
    log.warning(() -> "migration " + next.getId() + ": " + why + " (attempt " + attempts + " of "
        + next.getOptions().getMaxCutoverAttempts() + ")");
    if (next.getState() == MigrationState.MIGRATION_STATE_CANCELLING) {
      update(next);
      return;
    }
    update(next);
    long backoffEnd = ticker.getAsLong() + CUTOVER_RETRY_BACKOFF.ceilingNanos(attempts - 1);
    while (ticker.getAsLong() - backoffEnd < 0 && !stop.getAsBoolean()) {
      sleep(poll);
    }
  }

  /**
   * How long one cleanup delete waits for a row lock of the moved unit on the source, and the pauses before
   * it tries again: a transaction prepared for two-phase commit keeps its row locks until it is finished,
   * and a delete waiting without a bound could neither be stopped nor say why it waits.
   */
  static final Duration CLEANUP_LOCK_WAIT = Duration.ofSeconds(1);
  static final Backoff CLEANUP_LOCK_RETRY = Backoff.exponential(Duration.ofMillis(50), Duration.ofSeconds(2));

  /** How long after the cutover cleanup polls the client acknowledgements every 20 ms rather than every poll. */
  private static final long ACK_FAST_POLL_MS = 3_000;

  private void cleanUp(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    // The target owns the unit: lift fences it kept from moving the unit away earlier (the cutover
    // did, unless it crashed or failed between etcd's commit and the target's).
    Fences.unfenceMoved(dst, moves, ticker);
    RangeTableMove.removeCapture(moves, src, ticker);
    long revision = MigrationSteps.cleanupRevision(m, v.modRevision());
    String reason;
    Acked acked;
    long ackedAtMs;
    // Not at once: right after the switch this loop polls fast to time the clients, and a write would blur it.
    long lastPersist = ticker.getAsLong();
    while (true) {
      acked = acks.waitingFor(revision);
      ackedAtMs = clock.millis();
      java.util.Optional<String> behind = acked.behind();
      if (behind.isEmpty()) {
        reason = MigrationSteps.acknowledgedReason(revision);
        break;
      }
      if (MigrationSteps.graceElapsed(m, ackedAtMs)) {
        reason = MigrationSteps.graceReason(m, behind.get());
        break;
      }
      if (stop.getAsBoolean()) {
        return; // nothing more to persist: whoever resumes waits out the same grace, counted from the cutover
      }
      if (!leaseAlive.getAsBoolean()) {
        throw new ShardmapException(ErrorCode.ABORTED, "migration " + own.id() + ": lease lost during cleanup");
      }
      // The wait shows as progress (and in status): who is still behind, rewritten about every second.
      if (ticker.getAsLong() - lastPersist >= PROGRESS_PERSIST_NANOS) {
        update(MigrationSteps.stillWaiting(v.migration(), behind.get()));
        lastPersist = ticker.getAsLong();
      }
      // Right after the switch clients learn the map within milliseconds: look often, so that the figure
      // measures them and not this loop.
      sleep(clock.millis() - m.getCutoverUnixMs() < ACK_FAST_POLL_MS ? Duration.ofMillis(Math.min(20, poll.toMillis()))
          : poll);
    }
    // The end of the pause a client can see, as far as the acknowledgements tell (an upper bound).
    java.util.Optional<Migration.Builder> settled = MigrationSteps.doneWaiting(m, v.migration(), reason,
        acked.behind().isEmpty(), acked.clients(), ackedAtMs);
    if (settled.isPresent()) {
      update(settled.get());
    }
    m = v.migration();
    long deleted = m.getRowsDeleted();
    lastPersist = ticker.getAsLong();
    if (m.getDeleteStartedUnixMs() == 0) {
      update(v.migration().toBuilder().setDeleteStartedUnixMs(clock.millis()));
      m = v.migration();
    }
    for (RangeTableMove t : moves) {
      // Chunks along the key column's index (RangeTableMove.deleteChunk); a resumed cleanup starts again
      // at the unit's start, where the deleted rows are gone.
      byte[] after = null;
      Backoff.Attempts blocked = null;
      while (true) {
        RangeTableMove.DeletedChunk n;
        try {
          n = t.deleteChunk(src, after, m.getOptions().getCleanupBatchRows(), CLEANUP_LOCK_WAIT);
        } catch (SQLException e) {
          if (!"55P03".equals(e.getSQLState())) {
            throw e;
          }
          // A transaction still holds a row lock of the unit on the source (a prepared one waits for its
          // coordinator or the resolver). Wait holding nothing, stoppable, and say so.
          if (blocked == null) {
            blocked = CLEANUP_LOCK_RETRY.start();
            update(MigrationSteps.deletingBlocked(v.migration(), deleted, "cleanup waits: a transaction holds a row "
                + "lock of the moved unit on source " + m.getSource() + " (a prepared transaction is ended by its "
                + "coordinator or the resolver); the deletes are retried"));
            lastPersist = ticker.getAsLong();
          }
          if (stop.getAsBoolean()) {
            return;
          }
          if (!leaseAlive.getAsBoolean()) {
            throw new ShardmapException(ErrorCode.ABORTED, "migration " + own.id() + ": lease lost during cleanup");
          }
          sleep(Duration.ofNanos(blocked.nextPauseNanos()));
          continue;
        }
        if (blocked != null) {
          blocked = null;
          update(MigrationSteps.deleting(v.migration(), deleted).setLastError(""));
          lastPersist = ticker.getAsLong();
        }
        deleted += n.rows();
        if (n.rows() > 0) {
          faults.accept("cleaning-up:batch");
        }
        if (n.done()) {
          break;
        }
        after = n.last();
        if (stop.getAsBoolean()) {
          update(MigrationSteps.deleting(v.migration(), deleted));
          return;
        }
        // Persisted (and so shown as progress) about every second; a crash repeats at most that much.
        if (ticker.getAsLong() - lastPersist >= PROGRESS_PERSIST_NANOS) {
          update(MigrationSteps.deleting(v.migration(), deleted));
          lastPersist = ticker.getAsLong();
        }
        sleep(Duration.ofMillis(m.getOptions().getCleanupPauseMs()));
      }
    }
    update(MigrationSteps.cleanedUp(v.migration(), deleted, clock.millis()));
  }

  private void cancel(Connection src, Connection dst) throws SQLException {
    Migration m = v.migration();
    Fences.unfence(src, m.getId(), tableNames(), ticker);
    Fences.disarm(dst, m.getId(), tableNames(), ticker);
    RangeTableMove.removeCapture(moves, src, ticker);
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
    Migration next = MigrationSteps.cancelled(m, clock.millis());
    Txn.Builder txn = ms.ownedTxn(v, own);
    UnitRecords.markers(ms.paths(), m).forEach(txn::delete);
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

  /**
   * Persists the next version of the record and reports it as progress: every persisted version reaches
   * the progress consumer, also those written inside a long step (cleanup's wait and delete batches), not
   * only the one a step ends with.
   */
  private void update(Migration.Builder next) {
    long t0 = ticker.getAsLong();
    long now = clock.millis();
    next.setUpdatedUnixMs(now);
    next.setEtaUnixMs(eta.etaUnixMs(next.build(), now));
    v = ms.update(v, own, next.build());
    etcdCommits.add(ticker.getAsLong() - t0);
    progress.accept(v.migration());
  }

  /**
   * What a PostgreSQL commit costs on {@code c} right now: a transaction that is given an id, so that its
   * commit writes and flushes a WAL record like the fence's and the lift's do. Leaves {@code c} in autocommit.
   */
  private long probeCommit(Connection c) throws SQLException {
    long t0 = ticker.getAsLong();
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      s.execute("SELECT txid_current()");
      c.commit();
    } finally {
      c.setAutoCommit(true);
    }
    return ticker.getAsLong() - t0;
  }

  /** Nanoseconds as whole milliseconds, rounded up (a pause of 0.2 ms is reported as 1 ms, not 0). */
  static long ms(long nanos) {
    return nanos <= 0 ? 0 : (nanos + 999_999) / 1_000_000;
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
