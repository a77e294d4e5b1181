package io.shardmap.client.internal.txn;

import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.Counters.TxnOutcome;
import io.shardmap.client.internal.NotRunException;
import io.shardmap.client.internal.SqlStates;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.PreparedTransactions;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.function.Supplier;
import org.postgresql.core.TransactionState;

/**
 * Ends a cross-shard transaction on all its participants: all commit or none does (docs/transactions.md,
 * "Protocol"). One coordinator per {@code ShardmapData}; thread-safe, each call ends one transaction.
 *
 * <p>The steps, each sent to every shard concerned in parallel (one round trip each):
 * <ol>
 *   <li>which participants wrote ({@code txid_current_if_assigned()}); skipped with a single participant.
 *       None or one writer: plain COMMITs, no prepared transaction, no decision;
 *   <li>two or more writers: the first writer is the <b>decider</b>; every other writer runs {@code PREPARE
 *       TRANSACTION gid} (and the readers commit);
 *   <li>the decider inserts the COMMIT row of the gid and commits, in one round trip: the <b>commit
 *       point</b>. A resolver's ABORT row, written first, makes that insert fail, and nothing commits;
 *   <li>{@code COMMIT PREPARED gid} on the others. One that cannot be reached stays prepared, and the
 *       resolver commits it by the decision; the caller's transaction has committed all the same.
 * </ol>
 * Until the commit point any failure rolls everything back (prepared ones with ROLLBACK PREPARED), and the
 * transaction provably did not take effect: a gid can commit only through the COMMIT row, which only the
 * coordinator writes, after every prepare succeeded.
 */
public final class TxnCoordinator {
  /** A point of the two-phase protocol, for {@link Steps}. */
  public enum Step {
    /** The gid is made; no participant is prepared yet (shard: the decider). */
    PREPARES_START,
    /** About to send PREPARE TRANSACTION to the shard. */
    BEFORE_PREPARE,
    /** The shard prepared. */
    AFTER_PREPARE,
    /** Every other writer prepared; the decider's commit is next (shard: the decider). */
    BEFORE_DECIDE,
    /** The decider committed the decision: the commit point has passed (shard: the decider). */
    DECIDED,
    /** About to send COMMIT PREPARED to the shard. */
    BEFORE_COMMIT_PREPARED,
    /** The shard committed. */
    AFTER_COMMIT_PREPARED
  }

  /**
   * Told of each step of a two-phase commit as it happens, on the thread that does it. The seam where fault
   * tests stop or kill a coordinator at an exact point; {@link #NONE} otherwise.
   */
  public interface Steps {
    Steps NONE = (step, id, shard) -> { };

    void at(Step step, TxnId id, String shard);
  }

  private final Supplier<String> namespace;
  private final Steps steps;
  /** Whether a commit returns only once every shard committed (else once the decision is durable). */
  private final boolean awaitCommits;
  private final String coordinatorId;
  private final Counters stats;
  private final Executor executor;
  private final Duration decideTimeout;
  /** Shards known to have the decisions table (installed once; a table is never dropped by Shardmap). */
  private final Set<String> decidersReady = ConcurrentHashMap.newKeySet();

  /**
   * @param namespace the cluster's transaction namespace, asked when first needed (a directory round trip)
   * @param coordinatorId this process in gids: {@link #coordinatorId(String)} of the client id
   * @param executor runs the round trips to every shard but the first in parallel (the caller's thread takes
   *     the first); one that runs tasks on the caller's thread when saturated keeps everything correct
   * @param decideTimeout how long to wait, after losing the decider's connection during the commit point,
   *     for a commit still in progress there before reporting the outcome unknown
   * @param awaitCommits whether {@link #commit} returns only after COMMIT PREPARED on every other writer
   *     (read-your-writes on every shard), or as soon as the decision is durable
   */
  public TxnCoordinator(Supplier<String> namespace, String coordinatorId, Counters stats, Executor executor,
      Duration decideTimeout, boolean awaitCommits, Steps steps) {
    this.namespace = namespace;
    this.steps = steps;
    this.awaitCommits = awaitCommits;
    this.coordinatorId = coordinatorId;
    this.stats = stats;
    this.executor = executor;
    this.decideTimeout = decideTimeout;
  }

  /** A process id as a gid's coordinator part: [A-Za-z0-9_-], at most 40 characters, still telling. */
  public static String coordinatorId(String clientId) {
    String s = clientId.replaceAll("[^A-Za-z0-9_-]", "-");
    if (s.length() > 40) {
      s = s.substring(0, 31) + "-" + String.format("%08x", clientId.hashCode());
    }
    return s.isEmpty() ? "coordinator" : s;
  }

  /**
   * Rolls back every participant's transaction (nothing was prepared yet) and gives the connections back;
   * failures to roll back are added to {@code failure}.
   */
  public void rollback(List<Participant> ps, Throwable failure) {
    for (Participant p : ps) {
      try {
        p.raw.rollback();
      } catch (SQLException e) {
        failure.addSuppressed(e);
      }
      p.release();
    }
  }

  /**
   * Commits the work done on {@code ps} on all of them or on none, and gives their connections back.
   *
   * @return how it committed (for metrics): the number of writers
   * @throws NotRunException a connection was lost before the commit point: nothing committed, the work may run
   *     again
   * @throws ShardmapException INVALID_ARGUMENT when the work ended a transaction itself; ABORTED when it did
   *     not take effect (a transaction the work had let fail, a resolver's abort, a participant refusing to
   *     prepare); UNAVAILABLE when the outcome is unknown (the decider lost during the commit point and not
   *     reachable afterwards); FAILED_PRECONDITION for a shard that cannot take part (prepared transactions
   *     disabled, no decisions table)
   * @throws SQLException a failure of PostgreSQL at commit (a deferred constraint): nothing committed
   */
  public int commit(List<Participant> ps) throws SQLException {
    List<Participant> active = new ArrayList<>(ps.size());
    try {
      for (Participant p : ps) {
        if (p.marks.refused != null) {
          throw ShardmapException.invalid("work", "the work called " + p.marks.refused + " on shard " + p.shard()
              + ", which a cross-shard transaction does not allow: nothing was committed on any shard");
        }
      }
      for (Participant p : ps) {
        TransactionState s = p.state();
        if (s == TransactionState.FAILED) {
          throw new ShardmapException(ErrorCode.ABORTED, "the transaction on shard " + p.shard() + " had failed "
              + "(an SQL error the work caught and went on from): nothing was committed on any shard");
        }
        if (s == TransactionState.OPEN) {
          active.add(p);
        } else if (p.marks.used) {
          throw ShardmapException.invalid("work", "the work ended its transaction on shard " + p.shard()
              + " itself (COMMIT or ROLLBACK in its SQL): what it wrote there before that may be committed; "
              + "every other shard was rolled back. The SDK ends the transaction: return from the work to "
              + "commit, throw to roll back");
        }
      }
    } catch (RuntimeException | SQLException e) {
      rollback(ps, e);
      throw e;
    }
    if (active.size() <= 1) {
      return onePhase(ps, active);
    }
    // Participants that ran an INSERT/UPDATE/... are writers; only the others are asked (a SELECT may have
    // called a function that wrote). Taking a participant that changed no row for a writer costs a PREPARE,
    // never correctness.
    List<Participant> unsure = new ArrayList<>();
    for (Participant p : active) {
      if (!p.marks.wrote) {
        unsure.add(p);
      }
    }
    boolean[] wrote = new boolean[unsure.size()];
    Failures f = parallel(unsure, (i, p) -> {
      try (Statement s = p.raw.createStatement();
           ResultSet rs = s.executeQuery("SELECT txid_current_if_assigned() IS NOT NULL")) {
        rs.next();
        wrote[i] = rs.getBoolean(1);
      }
    });
    if (f.any()) {
      SQLException e = f.first();
      rollback(ps, e);
      if (f.allConnectionLoss()) {
        throw new NotRunException(e);
      }
      throw e;
    }
    List<Participant> writers = new ArrayList<>();
    List<Participant> readers = new ArrayList<>();
    for (Participant p : active) {
      int u = unsure.indexOf(p);
      (u < 0 || wrote[u] ? writers : readers).add(p);
    }
    if (writers.size() <= 1) {
      return onePhase(ps, active);
    }
    return twoPhase(ps, writers, readers);
  }

  /** No more than one participant wrote: plain COMMITs in parallel, no gid, no decision. */
  private int onePhase(List<Participant> ps, List<Participant> active) throws SQLException {
    Failures f = parallel(active, (i, p) -> p.raw.commit());
    release(ps);
    if (f.any()) {
      // As inTransaction: a failed COMMIT is passed on as is (a lost connection leaves the outcome unknown).
      throw f.first();
    }
    return active.isEmpty() ? 0 : 1;
  }

  private int twoPhase(List<Participant> ps, List<Participant> writers, List<Participant> readers)
      throws SQLException {
    Participant decider = writers.get(0);
    List<Participant> others = writers.subList(1, writers.size());
    TxnId id;
    try {
      ensureDecisionTable(decider);
      id = TxnId.random(namespace.get(), decider.shard(), coordinatorId);
    } catch (RuntimeException | SQLException e) {
      rollback(ps, e);
      throw e;
    }
    // Readers commit with the prepares: they hold no row lock (a locked row assigns a transaction id, which
    // makes a writer), so ending them before the decision changes nothing the others can see.
    List<Participant> second = new ArrayList<>(others);
    second.addAll(readers);
    int nOthers = others.size();
    steps.at(Step.PREPARES_START, id, decider.shard());
    Failures prepared = parallel(second, (i, p) -> {
      if (i < nOthers) {
        steps.at(Step.BEFORE_PREPARE, id, p.shard());
        PreparedTransactions.prepare(p.raw, id, p.shard());
        steps.at(Step.AFTER_PREPARE, id, p.shard());
      } else {
        p.raw.commit();
      }
    });
    boolean prepareFailed = false;
    for (int i = 0; i < nOthers; i++) {
      prepareFailed |= prepared.failed(i);
    }
    if (prepareFailed) {
      throw abortAfterPrepares(ps, decider, others, prepared, id);
    }
    List<String> shards = new ArrayList<>(nOthers);
    for (Participant p : others) {
      shards.add(p.shard());
    }
    try {
      steps.at(Step.BEFORE_DECIDE, id, decider.shard());
      DecisionRows.commitWithDecision(decider.raw, id, shards);
    } catch (ShardmapException | SQLException e) {
      if (e instanceof SQLException s && SqlStates.isConnectionLoss(s)) {
        Decision d = decisionAfterLoss(decider, id, s);
        if (d == Decision.ABORT) {
          rollbackPrepared(others, id, s);
          release(ps);
          throw new ShardmapException(ErrorCode.ABORTED, "transaction " + id + " did not commit: the connection to "
              + "its deciding shard " + decider.shard() + " was lost while committing, and the decision found "
              + "afterwards is ABORT (nothing took effect; safe to run again)", s);
        }
        // COMMIT stands: the commit point passed before the connection broke.
      } else {
        rollbackPrepared(others, id, e);
        release(ps);
        throw e;
      }
    }
    steps.at(Step.DECIDED, id, decider.shard());
    if (awaitCommits) {
      commitPrepared(others, id);
      release(ps);
    } else {
      // The decision is durable: the call may return now. The others commit on the executor (or on this
      // thread when it is saturated); what they wrote shows on their shards a round trip later.
      List<Participant> early = new ArrayList<>(ps);
      early.removeAll(others);
      release(early);
      executor.execute(() -> {
        commitPrepared(others, id);
        release(others);
      });
    }
    return writers.size();
  }

  /** COMMIT PREPARED on {@code others}; one that fails is left to the resolver, which commits it by the decision. */
  private void commitPrepared(List<Participant> others, TxnId id) {
    Failures committed = parallel(others, (i, p) -> {
      steps.at(Step.BEFORE_COMMIT_PREPARED, id, p.shard());
      p.raw.setAutoCommit(true);
      PreparedTransactions.commitPrepared(p.raw, id);
      steps.at(Step.AFTER_COMMIT_PREPARED, id, p.shard());
    });
    for (int i = 0; i < others.size(); i++) {
      if (committed.failed(i)) {
        stats.txnLeftToResolver();
      }
    }
  }

  /**
   * A prepare failed: nothing can commit (no decision was made). Rolls back everything and returns what to
   * throw, or throws NotRunException when only connections were lost and everything was rolled back.
   */
  private RuntimeException abortAfterPrepares(List<Participant> ps, Participant decider, List<Participant> others,
      Failures prepared, TxnId id) throws NotRunException {
    SQLException first = prepared.first();
    RuntimeException refusal = prepared.firstRuntime();
    Throwable cause = refusal != null ? refusal : first;
    try {
      decider.raw.rollback();
    } catch (SQLException e) {
      cause.addSuppressed(e);
    }
    boolean clean = true;
    for (int i = 0; i < others.size(); i++) {
      Participant p = others.get(i);
      try {
        if (!prepared.failed(i)) {
          p.raw.setAutoCommit(true);
          PreparedTransactions.rollbackPrepared(p.raw, id);
        } else if (prepared.connectionLoss(i)) {
          // Whether the PREPARE happened is unknown: roll it back from a fresh session if it did. If that
          // fails too, the resolver aborts it (it has no decision), and its row locks wait for that.
          try (Connection c = p.source().getConnection()) {
            PreparedTransactions.rollbackPrepared(c, id);
          }
        }
      } catch (SQLException | RuntimeException e) {
        clean = false;
        cause.addSuppressed(e);
      }
    }
    release(ps);
    if (clean && refusal == null && prepared.allConnectionLoss()) {
      throw new NotRunException(first);
    }
    if (refusal != null) {
      return refusal;
    }
    return new ShardmapException(ErrorCode.ABORTED, "transaction " + id + " did not commit: a shard failed to "
        + "prepare it (" + first.getMessage() + "); every shard was rolled back"
        + (clean ? "" : ", but a shard left prepared is finished by the resolver (its locks are held until then)")
        + ": nothing took effect", first);
  }

  /**
   * The decision of {@code id} after the decider's connection broke during its commit: the ABORT a resolver
   * would make, made now. It waits for the old session's commit if that is still running, so the answer is
   * final.
   *
   * @throws ShardmapException UNAVAILABLE when it cannot be known now
   */
  private Decision decisionAfterLoss(Participant decider, TxnId id, SQLException lost) {
    try (Connection c = decider.source().getConnection()) {
      Optional<Decision> d = DecisionRows.decideAbort(c, id, decideTimeout);
      if (d.isPresent()) {
        return d.get();
      }
    } catch (SQLException | RuntimeException e) {
      lost.addSuppressed(e);
    }
    throw new ShardmapException(ErrorCode.UNAVAILABLE, "the outcome of transaction " + id + " is unknown: the "
        + "connection to its deciding shard " + decider.shard() + " was lost while committing, and the decision "
        + "could not be read since. It committed if and only if shardmap.txn_decisions on " + decider.shard()
        + " holds COMMIT for it; the resolver finishes every shard either way", lost);
  }

  private void rollbackPrepared(List<Participant> others, TxnId id, Throwable failure) {
    Failures f = parallel(others, (i, p) -> {
      p.raw.setAutoCommit(true);
      PreparedTransactions.rollbackPrepared(p.raw, id);
    });
    for (int i = 0; i < others.size(); i++) {
      if (f.failed(i)) {
        failure.addSuppressed(f.errors[i]); // left prepared: the resolver aborts it
      }
    }
  }

  /** Makes sure the decider's shard has the decisions table, installing it once when it does not. */
  private void ensureDecisionTable(Participant decider) throws SQLException {
    if (decidersReady.contains(decider.shard())) {
      return;
    }
    if (!DecisionRows.installed(decider.raw)) {
      try (Connection c = decider.source().getConnection()) {
        DecisionRows.install(c);
      } catch (SQLException e) {
        throw DecisionRows.missingTable(decider.shard(), e);
      }
    }
    decidersReady.add(decider.shard());
  }

  private static void release(List<Participant> ps) {
    for (Participant p : ps) {
      p.release();
    }
  }

  private interface ShardStep {
    void run(int index, Participant p) throws SQLException;
  }

  /** What each participant's step threw, by index. */
  private static final class Failures {
    final Throwable[] errors;

    Failures(int n) {
      errors = new Throwable[n];
    }

    boolean failed(int i) {
      return errors[i] != null;
    }

    boolean any() {
      for (Throwable t : errors) {
        if (t != null) {
          return true;
        }
      }
      return false;
    }

    boolean connectionLoss(int i) {
      return errors[i] instanceof SQLException s && SqlStates.isConnectionLoss(s);
    }

    /** Every failure is a lost connection (and there is one). */
    boolean allConnectionLoss() {
      boolean one = false;
      for (int i = 0; i < errors.length; i++) {
        if (errors[i] != null) {
          if (!connectionLoss(i)) {
            return false;
          }
          one = true;
        }
      }
      return one;
    }

    /** The first SQL failure, or an SQLException standing for the first failure of another kind. */
    SQLException first() {
      for (Throwable t : errors) {
        if (t instanceof SQLException s) {
          return s;
        }
      }
      for (Throwable t : errors) {
        if (t != null) {
          return new SQLException(t.getMessage(), t);
        }
      }
      return null;
    }

    RuntimeException firstRuntime() {
      for (Throwable t : errors) {
        if (t instanceof RuntimeException r) {
          return r;
        }
      }
      return null;
    }
  }

  /**
   * Runs {@code step} for every participant at once: the first on this thread, the others on the executor;
   * returns when all have finished, with what each threw. An Error is rethrown after all finished.
   */
  private Failures parallel(List<Participant> ps, ShardStep step) {
    int n = ps.size();
    Failures f = new Failures(n);
    if (n == 0) {
      return f;
    }
    CountDownLatch done = new CountDownLatch(n - 1);
    for (int i = 1; i < n; i++) {
      int index = i;
      executor.execute(() -> {
        try {
          step.run(index, ps.get(index));
        } catch (Throwable t) {
          f.errors[index] = t;
        } finally {
          done.countDown();
        }
      });
    }
    try {
      step.run(0, ps.get(0));
    } catch (Throwable t) {
      f.errors[0] = t;
    }
    boolean interrupted = false;
    while (true) {
      try {
        done.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true; // the shards' steps are under way: their outcome must be known before going on
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    for (Throwable t : f.errors) {
      if (t instanceof Error e) {
        throw e;
      }
    }
    return f;
  }
}
