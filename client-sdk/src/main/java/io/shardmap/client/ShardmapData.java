package io.shardmap.client;

import com.zaxxer.hikari.HikariDataSource;
import io.shardmap.client.internal.CircuitOpenException;
import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.Counters.QueryFailure;
import io.shardmap.client.internal.Counters.RetryCause;
import io.shardmap.client.internal.CommitOutcome;
import io.shardmap.client.internal.CommitUnknownException;
import io.shardmap.client.internal.FailoverBuffer;
import io.shardmap.client.internal.NotRunException;
import io.shardmap.client.internal.SqlStates;
import io.shardmap.client.internal.ShardPools;
import io.shardmap.client.internal.SnapshotListener;
import io.shardmap.client.internal.ShardPools.ShardPool;
import io.shardmap.client.internal.query.Execution;
import io.shardmap.client.internal.query.MapSource;
import io.shardmap.client.internal.query.FenceGuard;
import io.shardmap.client.internal.query.PartGuard;
import io.shardmap.client.internal.query.QueryExecutor;
import io.shardmap.client.internal.query.QueryTarget;
import io.shardmap.client.internal.txn.Participant;
import io.shardmap.client.internal.txn.ReferenceRecords;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.client.internal.txn.TxnCoordinator;
import io.shardmap.client.internal.Counters.TxnOutcome;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.sql.DataSource;

/**
 * Runs work on the PostgreSQL shard that owns a key: routes the key with the client's local map, takes a
 * connection from that shard's pool, and handles the faults a moving fleet produces.
 *
 * <p><b>Stale routes.</b> Each call remembers the route (owner and epoch) it used. When the migrator has
 * fenced the range on that shard, the shard refuses with {@link StaleRoute#SQLSTATE}; the SDK then waits
 * for its map to name the range's new owner and runs the call again there, without the caller seeing it,
 * if the call provably did not run: {@link #inTransaction} always (PostgreSQL rolled the transaction
 * back), {@link #read} always, {@link #withConnection} only when declared {@link Idempotence#IDEMPOTENT}.
 * Otherwise, or when no newer route comes within {@link DataOptions#staleRouteTimeout()}, the call fails
 * with a {@link ShardmapException} of code {@link ErrorCode#STALE_EPOCH}, chaining the database error.
 * A refusal whose fenced epoch is below the route's own (the key came back to that shard, and its old
 * fence is not lifted yet) is rerun at once on the same shard with the route declared, under the same
 * conditions ({@link StaleRoute}, "Declared routes"); only such reruns declare, so the normal path sends
 * no extra statement.
 *
 * <p><b>Lost connections.</b> A connection that breaks while a transaction's work runs (before the SDK
 * sends COMMIT) means the transaction did not commit, so the call runs again on a fresh connection. A
 * break during COMMIT leaves the outcome unknown and is reported, never retried.
 *
 * <p><b>Replicas.</b> {@link #read} uses a random usable replica of the shard when it has any, moving to the
 * next usable replica and finally to the primary when one cannot give a connection in
 * {@link DataOptions#replicaConnectionTimeout()}. A replica is usable while its periodic check (every
 * {@link DataOptions#replicaCheckInterval()}, off the callers' threads) finds it reachable, in recovery, and
 * lagging at most {@link DataOptions#maxReplicaLag()}; so replica reads may lag the primary by about that
 * bound, and a promoted or misconfigured "replica" is never read. Reads of a shard with replicas that go to
 * the primary are counted ({@link DataStats#replicaFallbacks()}).
 *
 * <p><b>Circuit breakers.</b> Each shard endpoint (primary, each replica) has a breaker that learns from the
 * calls on it ({@code DataOptions.breaker*}). Once enough of them failed for want of a connection (lost, or
 * none within the timeout) or ran too slow, calls to that endpoint fail at once with a
 * {@code CircuitOpenException} (SQLSTATE 08001; nothing ran) instead of each waiting out a timeout, and reads
 * skip such a replica; after the open duration a few probe calls go through and close it again if they
 * succeed. Calls to other shards never wait on a failing one. The work's own SQL errors do not count.
 *
 * <p>Errors of the work itself (its SQL) reach the caller unchanged as {@link SQLException}s; routing
 * failures (unknown keyspace, stale map past its limit) are {@link ShardmapException}s.
 *
 * <p><b>Cross-shard queries.</b> {@link #query} runs one SELECT over every shard of a keyspace (or those
 * owning a key range or a set of keys) at one pinned map revision, each shard restricted to the rows it owns
 * in that map, and merges their rows into the answer one database would give (docs/client-sdk.md,
 * "Cross-shard queries"). Queries take connections from pools of their own
 * ({@link DataOptions#queryPoolSize()} per shard endpoint), never from the single-key calls' pools.
 */
public final class ShardmapData implements AutoCloseable {
  /** Whether running a {@link #withConnection} work twice is harmless. */
  public enum Idempotence { IDEMPOTENT, NOT_IDEMPOTENT }

  private enum Mode { TRANSACTION, AUTOCOMMIT_IDEMPOTENT, AUTOCOMMIT, READ }

  /** How long the watched map gets to bring a cutover before the directory is asked directly. */
  private static final long REMOTE_LOOKUP_AFTER_NANOS = TimeUnit.MILLISECONDS.toNanos(200);

  private final ShardmapClient client;
  private final DataOptions options;
  private final Counters stats;
  /** The client's load accounting; null when off (the hot path checks only this field). */
  private final io.shardmap.client.internal.load.LoadMeter load;
  private final ShardPools pools;
  /** Cross-shard queries' own pools, so that queries never take single-key calls' connections. */
  private final ShardPools queryPools;
  private final QueryExecutor queries;
  /** Runs the round trips of a cross-shard commit to every shard but the caller's first, in parallel. */
  private final java.util.concurrent.ThreadPoolExecutor txnExecutor;
  private final TxnCoordinator txns;
  /** The reference table records per keyspace, read from a directory server when needed. */
  private final ReferenceRecords references;
  /** Holds calls to a Patroni shard between its primary's failure and the map naming the next. */
  private final FailoverBuffer failover;
  /** The failover buffer's Micrometer meters; null without a registry. */
  private final AutoCloseable failoverMetrics;
  private final Object mapChanged = new Object();
  private final SnapshotListener listener = (before, after, resync) -> onMapChange(after);
  private volatile long mapChanges;
  private volatile boolean closed;
  /** The replica gauges (see MicrometerMetrics#bindReplicas); null without a registry. */
  private AutoCloseable replicaMetrics;

  private ShardmapData(ShardmapClient client, DataOptions options, PartGuard guard, TxnCoordinator.Steps steps) {
    this.client = client;
    this.options = options;
    this.stats = client.counters();
    this.load = client.loadMeter();
    this.pools = new ShardPools(options, stats.breakers());
    this.queryPools = new ShardPools(options, "query", options.queryPoolSize());
    this.queries = new QueryExecutor(queryPools, maps, guard, options.maxAttempts(), stats);
    java.util.concurrent.atomic.AtomicInteger threads = new java.util.concurrent.atomic.AtomicInteger();
    // Bounded; when every thread is busy the caller runs the step itself (serially, still correct).
    this.txnExecutor = new java.util.concurrent.ThreadPoolExecutor(0, 64, 30, TimeUnit.SECONDS,
        new java.util.concurrent.SynchronousQueue<>(), r -> {
          Thread t = new Thread(r, "shardmap-txn-" + threads.incrementAndGet());
          t.setDaemon(true);
          return t;
        }, new java.util.concurrent.ThreadPoolExecutor.CallerRunsPolicy());
    this.txns = new TxnCoordinator(this::txnNamespace, TxnCoordinator.coordinatorId(client.clientId()), stats,
        txnExecutor, DECIDE_AFTER_LOSS_TIMEOUT, options.crossShardCommitWait(), steps);
    this.references = new ReferenceRecords(client::referenceTables, stats);
    this.failover = new FailoverBuffer(options.failoverBufferSize(), options.failoverBufferWindow(),
        options.failoverProbeInterval(), System::nanoTime);
    Object registry = client.options().meterRegistry();
    this.failoverMetrics = registry == null ? null
        : io.shardmap.client.internal.MicrometerMetrics.bindFailover(registry, failover);
  }

  /**
   * How long a coordinator that lost its deciding shard's connection during the commit point waits there for
   * that commit to finish before calling the outcome unknown (a commit in progress takes milliseconds).
   */
  private static final java.time.Duration DECIDE_AFTER_LOSS_TIMEOUT = java.time.Duration.ofSeconds(2);

  private String txnNamespace() {
    try {
      return client.txnNamespace();
    } catch (ShardmapException e) {
      throw new ShardmapException(ErrorCode.ABORTED, "cannot commit a transaction across shards: the cluster's "
          + "transaction namespace could not be learned from a directory server (" + e.getMessage() + "); "
          + "nothing was committed", e);
    }
  }

  /** Opens pools for the shards of the client's map and keeps them in step with it. */
  public static ShardmapData open(ShardmapClient client, DataOptions options) {
    return open(client, options, new FenceGuard().asPartGuard());
  }

  /**
   * {@link #open(ShardmapClient, DataOptions)} with the guard every cross-shard query's part runs first (see
   * {@link PartGuard}): where the SDK chooses it, and where tests put one of theirs.
   */
  static ShardmapData open(ShardmapClient client, DataOptions options, PartGuard guard) {
    return open(client, options, guard, TxnCoordinator.Steps.NONE);
  }

  /**
   * {@link #open(ShardmapClient, DataOptions)} with a listener of every two-phase commit's steps: where fault
   * tests stop or kill a coordinator at an exact point of the protocol.
   */
  static ShardmapData open(ShardmapClient client, DataOptions options, PartGuard guard, TxnCoordinator.Steps steps) {
    ShardmapData d = new ShardmapData(client, options, guard, steps);
    client.addCoreListener(d.listener);
    DirectorySnapshot now = client.coreSnapshot();
    d.pools.sync(now);
    d.queryPools.sync(now);
    d.failover.mapChanged(primaryTerms(now));
    if (client.options().meterRegistry() != null) {
      // Only with a registry: Micrometer classes are never loaded otherwise.
      d.replicaMetrics = io.shardmap.client.internal.MicrometerMetrics.bindReplicas(client.options().meterRegistry(),
          d.pools.replicaHealth());
    }
    return d;
  }

  private void onMapChange(DirectorySnapshot after) {
    if (closed) {
      return;
    }
    pools.sync(after);
    queryPools.sync(after);
    failover.mapChanged(primaryTerms(after));
    synchronized (mapChanged) {
      mapChanges++;
      mapChanged.notifyAll();
    }
  }

  /** The primary terms of the map's Patroni shards. */
  private static Map<String, Long> primaryTerms(DirectorySnapshot map) {
    Map<String, Long> terms = new java.util.HashMap<>();
    for (io.shardmap.proto.v1.Shard s : map.shards().values()) {
      if (s.hasPatroni()) {
        terms.put(s.getName(), s.getPrimaryTerm());
      }
    }
    return terms;
  }

  /** Runs {@code work} in a transaction on the primary of the key's shard and commits it. */
  public <T> T inTransaction(String keyspace, ShardKey key, SqlWork<T> work) throws SQLException {
    return call(keyspace, 0, nonNull(key), Mode.TRANSACTION, work);
  }

  /**
   * {@link #inTransaction(String, ShardKey, SqlWork)} for an integer key without making a {@link ShardKey}:
   * like {@link ShardmapClient#route(String, long)}, the SDK's part of the call then allocates nothing.
   */
  public <T> T inTransaction(String keyspace, long key, SqlWork<T> work) throws SQLException {
    return call(keyspace, key, null, Mode.TRANSACTION, work);
  }

  /** Runs {@code work} on an autocommit connection to the primary of the key's shard. */
  public <T> T withConnection(String keyspace, ShardKey key, Idempotence idempotence, SqlWork<T> work)
      throws SQLException {
    return call(keyspace, 0, nonNull(key), autocommit(idempotence), work);
  }

  /** {@link #withConnection(String, ShardKey, Idempotence, SqlWork)} for an integer key, allocation-free. */
  public <T> T withConnection(String keyspace, long key, Idempotence idempotence, SqlWork<T> work)
      throws SQLException {
    return call(keyspace, key, null, autocommit(idempotence), work);
  }

  /** Runs read-only {@code work} on a replica of the key's shard, or its primary if it has none. */
  public <T> T read(String keyspace, ShardKey key, SqlWork<T> work) throws SQLException {
    return call(keyspace, 0, nonNull(key), Mode.READ, work);
  }

  /** {@link #read(String, ShardKey, SqlWork)} for an integer key, allocation-free. */
  public <T> T read(String keyspace, long key, SqlWork<T> work) throws SQLException {
    return call(keyspace, key, null, Mode.READ, work);
  }

  /**
   * Runs {@code work} as one transaction across every shard it touches, and commits it on all of them or on
   * none (docs/transactions.md). The work takes one connection per shard from its {@link
   * CrossShardTransaction}, lazily, by keyspace and key (any keyspaces and strategies). When it returns:
   * <ul>
   *   <li>one shard touched, or only one that wrote: a plain COMMIT, as {@link #inTransaction};
   *   <li>two or more wrote: two-phase commit. The others prepare, one of them (the decider) commits the
   *       decision with its own writes, then the others commit. A coordinator that dies midway leaves
   *       nothing half done: the directory servers' resolver finishes every shard by the decision, or aborts
   *       what was never decided.
   * </ul>
   * Returns once every shard has committed (one left unreachable after the commit point is committed by the
   * resolver, and counted in {@code shardmap.client.txn.left_to_resolver}).
   *
   * <p>The work runs again, on fresh transactions, when a shard refuses it because a move fenced a range it
   * touched (once the map names the new owner), when a reference table's copy refuses it for a stale epoch
   * (SQLSTATE SMR01: the table's copies changed; once the table's record shows the new epoch, see
   * {@link CrossShardTransaction#referenceCopies}), or when a connection breaks before the commit point: in
   * every case nothing committed anywhere. Up to {@link DataOptions#maxAttempts()} runs.
   *
   * <p>Isolation: each shard's transaction is its own (READ COMMITTED unless the work sets otherwise); the
   * shards commit atomically, not at one instant, so a reader on two shards may see one side committed
   * before the other (docs/transactions.md, "Isolation").
   *
   * @throws ShardmapException INVALID_ARGUMENT when the work commits, rolls back or closes a connection
   *     itself (nothing committed), or for a bad key; NOT_FOUND for an unknown keyspace; ABORTED when the
   *     transaction did not take effect (safe to run again); UNAVAILABLE when its outcome is unknown (the
   *     deciding shard was lost while committing); STALE_EPOCH when the runs were used up on fenced ranges;
   *     FAILED_PRECONDITION when a shard cannot take part (max_prepared_transactions = 0)
   * @throws SQLException the work's own SQL errors (nothing committed), as PostgreSQL reported them
   */
  public <T> T acrossShards(CrossShardWork<T> work) throws SQLException {
    if (work == null) {
      throw ShardmapException.invalid("work", "a CrossShardWork is required");
    }
    if (closed) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this ShardmapData is closed");
    }
    long start = System.nanoTime();
    TxnOutcome outcome = TxnOutcome.FAILED;
    int writers = 0;
    // Keys refused by a fence older than their route: declared on every later run (see StaleRoute).
    Map<String, Boolean> declare = new java.util.HashMap<>();
    // A Patroni shard whose primary could not be reached in this attempt (see patroniFailure), and this
    // transaction's wait in the failover buffer, shared by all its attempts.
    ShardPool[] unreachable = new ShardPool[1];
    FailoverBuffer.Wait buffered = null;
    // The last run's transaction: its shard parts are counted in the load accounting.
    CrossShardTransaction[] lastTx = new CrossShardTransaction[1];
    try {
      for (int attempt = 1; ; attempt++) {
        unreachable[0] = null;
        CrossShardTransaction tx = new CrossShardTransaction(new CrossShardTransaction.Opener() {
          @Override
          public Participant open(CrossShardTransaction t, String keyspace, long intKey, ShardKey key)
              throws SQLException {
            return participant(t, keyspace, intKey, key, declare, unreachable);
          }

          @Override
          public ReferenceTable reference(String keyspace, String table) {
            return references.record(keyspace, table);
          }

          @Override
          public Participant openShard(CrossShardTransaction t, String shard) throws SQLException {
            return participantOf(t, shard, unreachable);
          }
        });
        lastTx[0] = tx;
        T result;
        try {
          result = work.run(tx);
        } catch (SQLException e) {
          ShardPool failedOver = patroniFailure(tx, e, unreachable[0]);
          txns.rollback(tx.end(), e);
          if (failedOver != null) {
            // Nothing committed anywhere (every shard's transaction was open): wait for the shard's next
            // primary as a single-key call does, then run the whole transaction again.
            String shard = failedOver.shard();
            buffered = failover.await(buffered, failedOver, () -> pools.get(shard, client.coreSnapshot()),
                e instanceof NotRunException n ? n.original() : e);
            stats.txnRerun();
            attempt--;
            continue;
          }
          if (StaleRoute.isStaleRoute(e)) {
            awaitRerun(tx.routes(), e, attempt, declare);
            stats.txnRerun();
            continue;
          }
          SQLException staleCopies = staleReference(e);
          if (staleCopies != null) {
            awaitNewerCopies(tx.references(), staleCopies, attempt);
            stats.txnRerun();
            stats.referenceRerun();
            continue;
          }
          if (e instanceof NotRunException n && n.original() instanceof CircuitOpenException open
              && open.isFrom(pools.get(open.shard(), client.coreSnapshot()))) {
            throw open; // the shard's breaker is still open: a rerun would be refused the same way
          }
          if ((e instanceof NotRunException || SqlStates.isConnectionLoss(e)) && attempt < options.maxAttempts()) {
            stats.txnRerun(); // nothing was committed: every shard's transaction was still open
            continue;
          }
          throw e instanceof NotRunException n ? n.original() : e;
        } catch (RuntimeException | Error e) {
          txns.rollback(tx.end(), e);
          throw e;
        }
        try {
          writers = txns.commit(tx.end());
          outcome = TxnOutcome.COMMITTED;
          return result;
        } catch (NotRunException n) {
          if (attempt >= options.maxAttempts()) {
            throw n.original();
          }
          stats.txnRerun();
        } catch (ShardmapException e) {
          if (e.code() == ErrorCode.UNAVAILABLE) {
            outcome = TxnOutcome.UNKNOWN; // the coordinator's only UNAVAILABLE: the decider lost mid-commit
          }
          throw e;
        }
      }
    } finally {
      long nanos = System.nanoTime() - start;
      stats.txnEnded(outcome, writers, nanos);
      if (load != null && lastTx[0] != null) {
        recordParts(lastTx[0], nanos, outcome != TxnOutcome.COMMITTED);
      }
    }
  }

  /**
   * Counts a cross-shard transaction's last run in the load accounting: one write per shard part opened by a
   * key, on that key's unit (parts opened by shard name, such as reference copies, have no unit and are not
   * counted), each with an equal share of the transaction's time.
   */
  private void recordParts(CrossShardTransaction tx, long nanos, boolean failed) {
    List<CrossShardTransaction.UsedRoute> used = tx.routes();
    java.util.Set<String> shards = new java.util.HashSet<>();
    List<CrossShardTransaction.UsedRoute> parts = new ArrayList<>();
    for (CrossShardTransaction.UsedRoute u : used) {
      if (shards.add(u.route().shard())) {
        parts.add(u);
      }
    }
    for (CrossShardTransaction.UsedRoute u : parts) {
      recordLoad(u.keyspace(), u.intKey(), u.key(), true, nanos / parts.size(), failed);
    }
  }

  /**
   * Runs {@code work} once on every copy of reference table {@code table} of {@code keyspace}, all in one
   * cross-shard transaction ({@link #acrossShards} with {@link CrossShardTransaction#referenceCopies}), and
   * commits every copy or none (docs/reference-sdk.md). It runs on the first copy (by shard name), then on all
   * the others at once, each on its own thread: the work must not share unsynchronized mutable state between
   * its runs. Returns the work's result, which must be the same on
   * every copy: the work's results are compared ({@link java.util.Objects#deepEquals}; return values such as
   * update counts, not JDBC objects), and copies that return different results (copies that diverged: an
   * UPDATE that changed a row on one copy and none on another) refuse the write, with nothing committed
   * anywhere.
   *
   * <p>When the table's copies change while the work runs (a shard added to them), a copy refuses it with
   * SQLSTATE {@value ReferenceGuard#STALE_SQLSTATE}; the SDK rolls every copy back, reads the table's record
   * again until it shows at least the copies' new epoch, and runs the work again on the new copies (bounded
   * by {@link DataOptions#maxAttempts()} runs and {@link DataOptions#staleRouteTimeout()} of waiting per run).
   *
   * <p>Reads do not need this: every copy is whole, so a query on any one shard reads (and joins) the
   * table locally.
   *
   * @throws ShardmapException FAILED_PRECONDITION when the copies returned different results (the message
   *     names every shard and its result, and the command that compares the copies); NOT_FOUND naming the
   *     table when it is not a reference table of the keyspace, or for an unknown keyspace; INVALID_ARGUMENT
   *     for a malformed table name or a null work; STALE_EPOCH when the copies kept changing; the other
   *     outcomes of {@link #acrossShards}
   * @throws SQLException the work's own SQL errors (nothing committed)
   */
  public <T> T writeReference(String keyspace, String table, SqlWork<T> work) throws SQLException {
    if (work == null) {
      throw ShardmapException.invalid("work", "an SqlWork is required");
    }
    return acrossShards(tx -> {
      Map<String, Connection> copies = tx.referenceCopies(keyspace, table);
      List<String> shards = new ArrayList<>(copies.keySet());
      List<T> results = onEveryCopy(new ArrayList<>(copies.values()), work);
      T first = results.get(0);
      boolean same = true;
      for (T r : results) {
        same &= java.util.Objects.deepEquals(first, r);
      }
      if (!same) {
        stats.referenceResultsDiffered();
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < shards.size(); i++) {
          b.append(i == 0 ? "" : ", ").append(shards.get(i)).append('=').append(describe(results.get(i)));
        }
        String name = references.record(keyspace, table).getTable();
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "the copies of reference table " + name
            + " returned different results for the same write (" + b + "): they hold different rows. Nothing "
            + "was committed on any copy. Compare them with `shardmap-migrator reference verify " + name
            + "` and mend them with `shardmap-migrator reference repair " + name + "`");
      }
      return first;
    });
  }

  /**
   * Runs {@code work} on the first copy, then on all the others at once: one on this thread, the rest on the
   * transaction executor (on this thread too when it is saturated). So the copies cost two round trips per
   * statement, not one per statement and copy, and two writers of the same rows cannot deadlock across
   * copies: the work takes the same row locks on every copy, the first copy's locks order the writers, and a
   * writer waiting there holds nothing on the others (with every copy at once, two writers locked the same
   * row on different copies and waited for each other until the cross-shard lock timeout). Returns the
   * results in copy order once all have finished; when any failed, throws (after all finished, so no
   * connection is still in use) a copy's stale-epoch refusal first (the rerun needs it), else a fence's,
   * else the first failure in order, the others suppressed in it.
   */
  private <T> List<T> onEveryCopy(List<Connection> copies, SqlWork<T> work) throws SQLException {
    int n = copies.size();
    Object[] out = new Object[n];
    Throwable[] failed = new Throwable[n];
    out[0] = work.run(copies.get(0)); // alone first: see above
    java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(Math.max(0, n - 2));
    for (int i = 2; i < n; i++) {
      int k = i;
      txnExecutor.execute(() -> {
        try {
          out[k] = work.run(copies.get(k));
        } catch (Throwable t) {
          failed[k] = t;
        } finally {
          done.countDown();
        }
      });
    }
    if (n > 1) {
      try {
        out[1] = work.run(copies.get(1));
      } catch (Throwable t) {
        failed[1] = t;
      }
    }
    boolean interrupted = false;
    while (true) {
      try {
        done.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true; // the copies' statements are under way: their connections must be free before going on
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    Throwable first = null;
    for (Throwable t : failed) {
      if (t instanceof SQLException e && staleReference(e) != null) {
        first = t;
        break;
      }
    }
    for (Throwable t : failed) {
      if (first == null && t instanceof SQLException e && StaleRoute.isStaleRoute(e)) {
        first = t;
      }
    }
    for (Throwable t : failed) {
      if (first == null && t != null) {
        first = t;
      }
    }
    if (first != null) {
      for (Throwable t : failed) {
        if (t != null && t != first) {
          first.addSuppressed(t);
        }
      }
      if (first instanceof SQLException e) {
        throw e;
      }
      if (first instanceof RuntimeException e) {
        throw e;
      }
      if (first instanceof Error e) {
        throw e;
      }
      throw new IllegalStateException("the work failed on a copy", first);
    }
    List<T> results = new ArrayList<>(n);
    for (Object o : out) {
      @SuppressWarnings("unchecked")
      T r = (T) o;
      results.add(r);
    }
    return results;
  }

  private static String describe(Object value) {
    if (value instanceof int[] a) {
      return java.util.Arrays.toString(a);
    }
    if (value instanceof long[] a) {
      return java.util.Arrays.toString(a);
    }
    if (value instanceof Object[] a) {
      return java.util.Arrays.deepToString(a);
    }
    String s = String.valueOf(value);
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  /** The stale-epoch refusal of a reference copy in {@code e}'s chain (SQLSTATE SMR01), or null. */
  static SQLException staleReference(SQLException e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof SQLException s && ReferenceGuard.STALE_SQLSTATE.equals(s.getSQLState())) {
        return s;
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return null;
  }

  private static final Pattern STALE_TABLE = Pattern.compile("of reference table (.+?) changed \\(reference_epoch=");

  /** The canonical table a stale-epoch refusal names, or null when its message names none this SDK reads. */
  static String staleTable(SQLException refusal) {
    Matcher m = STALE_TABLE.matcher(String.valueOf(refusal.getMessage()));
    return m.find() ? m.group(1) : null;
  }

  /**
   * After a reference copy refused a run for a stale epoch: reads the records of the tables concerned again
   * (with the client's backoff between reads) until one shows an epoch at least the refused one, so that the
   * next run writes the new copies. Throws when the runs are used up or no such record comes in time.
   */
  private void awaitNewerCopies(List<CrossShardTransaction.UsedReference> used, SQLException refusal, int attempt) {
    long refused = ReferenceGuard.refusedEpoch(refusal.getMessage());
    String table = staleTable(refusal);
    java.util.Set<CrossShardTransaction.UsedReference> concerned = new java.util.LinkedHashSet<>();
    for (CrossShardTransaction.UsedReference u : used) {
      if (u.table().equals(table)) {
        concerned.add(new CrossShardTransaction.UsedReference(u.keyspace(), u.table(), 0));
      }
    }
    if (concerned.isEmpty()) {
      if (table != null || used.isEmpty()) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "a reference copy refused the write as declared "
            + "with a stale epoch, for a table the work did not take through referenceCopies (" + table + "): "
            + refusal.getMessage(), refusal);
      }
      for (CrossShardTransaction.UsedReference u : used) {
        concerned.add(new CrossShardTransaction.UsedReference(u.keyspace(), u.table(), 0));
      }
    }
    String name = table != null ? table : concerned.iterator().next().table();
    long declared = 0;
    for (CrossShardTransaction.UsedReference u : used) {
      if (u.table().equals(name)) {
        declared = Math.max(declared, u.epoch());
      }
    }
    if (attempt >= options.maxAttempts()) {
      throw new ShardmapException(ErrorCode.STALE_EPOCH, "gave up after " + attempt + " runs: a copy of reference "
          + "table " + name + " kept refusing the write as stale (it has epoch " + refused + ", the work declared "
          + declared + ")" + (refused >= 0 && refused < declared ? ": that copy is behind the table's record, "
          + "which no declaration leaves behind; check the copies with `shardmap-migrator reference verify "
          + name + "`" : ": its copies kept changing"), refusal);
    }
    long deadline = System.nanoTime() + options.staleRouteTimeout().toNanos();
    io.shardmap.core.Backoff.Attempts pauses = io.shardmap.core.Backoff.exponential(
        client.options().initialBackoff(), client.options().maxBackoff()).start();
    long seen = -1;
    while (true) {
      for (CrossShardTransaction.UsedReference u : concerned) {
        ReferenceTable now = references.refresh(u.keyspace(), u.table());
        if (now == null) {
          throw new ShardmapException(ErrorCode.NOT_FOUND, "reference table " + u.table() + " of keyspace '"
              + u.keyspace() + "' was removed while the work ran (its copies refused the write: "
              + refusal.getMessage() + ")", refusal);
        }
        seen = Math.max(seen, now.getEpoch());
        if (refused <= 0 || now.getEpoch() >= refused) {
          return;
        }
      }
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        throw new ShardmapException(ErrorCode.STALE_EPOCH, "the copies of reference table " + name + " changed "
            + "(a copy has epoch " + refused + "), and its record still says epoch " + seen + " after "
            + options.staleRouteTimeout().toMillis() + " ms: a change of its copies has not finished (see "
            + "`shardmap-migrator reference list`); nothing was committed", refusal);
      }
      try {
        TimeUnit.NANOSECONDS.sleep(Math.min(left, pauses.nextPauseNanos()));
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while waiting for the new copies of "
            + "reference table " + name, refusal);
      }
    }
  }

  /** The participant of {@code key}'s shard in {@code tx}, opened (and the route declared) as needed. */
  private Participant participant(CrossShardTransaction tx, String keyspace, long intKey, ShardKey key,
      Map<String, Boolean> declare, ShardPool[] unreachable) throws SQLException {
    Route route = route(keyspace, intKey, key);
    tx.used(new CrossShardTransaction.UsedRoute(keyspace, intKey, key, route));
    Participant p = participantOf(tx, route.shard(), unreachable);
    String declared = declaredKey(intKey, key);
    if (declare.containsKey(keyspace + '\0' + declared)) {
      declare(p.raw(), new Declaration(keyspace, route.epoch(), declared), true);
    }
    return p;
  }

  /**
   * The Patroni shard to wait for before running a failed cross-shard transaction again, or null: when the
   * buffer is on and the failure proves nothing ran (NotRun, or a connection lost before the commit), the
   * shard whose primary could not be borrowed from, else one whose participant's connection broke.
   */
  private ShardPool patroniFailure(CrossShardTransaction tx, SQLException e, ShardPool unreachable) {
    // 25006: a participant turned out read-only (a standby the map already names, still being promoted, or
    // a demoted primary). Before the commit point nothing committed anywhere, so any such failure may rerun.
    boolean readOnly = "25006".equals(e.getSQLState());
    if (options.failoverBufferWindow().isZero()
        || !(e instanceof NotRunException || SqlStates.isConnectionLoss(e) || readOnly)) {
      return null;
    }
    if (unreachable != null) {
      return unreachable;
    }
    for (Participant p : tx.participants()) {
      ShardPool pool = pools.get(p.shard(), client.coreSnapshot());
      try {
        // Which participant refused as read-only the exception does not say: any Patroni one is waited on
        // (a probe interval at most when it was not that one).
        if (pool != null && pool.followsPatroni() && (readOnly || p.raw().isClosed())) {
          return pool;
        }
      } catch (SQLException ignored) {
        // isClosed does not fail on pgjdbc; a driver that did would just not be waited for
      }
    }
    return null;
  }

  /**
   * The participant of {@code shard} in {@code tx}, opened (with the lock bound of two shards) as needed;
   * a Patroni shard whose primary cannot be borrowed from is noted in {@code unreachable[0]}.
   */
  private Participant participantOf(CrossShardTransaction tx, String shard, ShardPool[] unreachable)
      throws SQLException {
    Participant p = tx.participant(shard);
    if (p == null) {
      ShardPool pool = pools.get(shard, client.coreSnapshot());
      if (pool == null) {
        throw new NotRunException(new SQLException("shard '" + shard + "' is not registered in the map at "
            + "revision " + client.revision() + " (the client's map may be behind the directory)", "08003"));
      }
      try {
        pool.acquire(pool.primary()); // an open breaker refuses at once: nothing ran (see CircuitOpenException)
      } catch (NotRunException refused) {
        if (pool.followsPatroni()) {
          unreachable[0] = pool; // a Patroni shard's failing primary: wait for the next one
        }
        throw refused;
      }
      long borrowStart = System.nanoTime();
      try {
        p = Participant.open(shard, pool.primary());
        pool.record(pool.primary(), borrowStart, null); // the breaker learns of the borrow only
      } catch (RuntimeException | Error e) {
        pool.record(pool.primary(), borrowStart, e);
        throw e;
      } catch (SQLException e) {
        pool.record(pool.primary(), borrowStart, e);
        if (pool.isClosed()) {
          throw new NotRunException(e); // replaced between lookup and borrow (endpoints changed): route again
        }
        if (pool.followsPatroni()) {
          unreachable[0] = pool; // a failover under way: nothing ran; wait for the next primary
          throw new NotRunException(e);
        }
        throw e;
      }
      tx.add(p);
      if (!options.crossShardLockTimeout().isZero()) {
        // Two shards or more: a deadlock across them is invisible to each PostgreSQL. A cycle that crosses
        // shards has a transaction waiting on one shard while it holds locks on another, that is, a
        // statement run once two shards are open: bounding the lock waits of those statements breaks every
        // such cycle. Statements run while only one shard was open need no bound (a cycle there is one
        // PostgreSQL's, which detects it), and a participant that runs none after this pays nothing.
        List<Participant> all = tx.participants();
        if (all.size() >= 2) {
          long ms = options.crossShardLockTimeout().toMillis();
          for (Participant q : all) {
            q.requireLockTimeout(ms);
          }
        }
      }
    }
    return p;
  }

  private static String declaredKey(long intKey, ShardKey key) {
    return key == null ? StaleRoute.declaredKey(intKey) : key.isInteger() ? StaleRoute.declaredKey(key.intValue())
        : StaleRoute.declaredKey(key.bytesUnsafe());
  }

  /**
   * After a fence refused a run of a cross-shard work: waits until the map routes one of the keys the run
   * used at or below the fenced epoch at a newer epoch, or, when every key's route is newer than the fence
   * (an old fence on a key that came back), marks those keys to be declared. Throws when the runs are used
   * up or no newer route comes.
   */
  private void awaitRerun(List<CrossShardTransaction.UsedRoute> used, SQLException e, int attempt,
      Map<String, Boolean> declare) {
    long fenced = StaleRoute.fencedEpoch(e);
    List<KeyRef> stale = new ArrayList<>();
    CrossShardTransaction.UsedRoute last = null;
    for (CrossShardTransaction.UsedRoute u : used) {
      last = u;
      if (fenced < 0 || u.route().epoch() <= fenced) {
        stale.add(new KeyRef(u.keyspace(), u.intKey(), u.key()));
      }
    }
    if (last == null) {
      throw new ShardmapException(ErrorCode.STALE_EPOCH, "a shard refused the cross-shard transaction as moved, "
          + "but the work asked for no connection through it: " + e.getMessage(), e);
    }
    if (attempt >= options.maxAttempts()) {
      throw new ShardmapException(ErrorCode.STALE_EPOCH, "gave up after " + attempt + " runs of the cross-shard "
          + "transaction: " + fenceWording(e, last.keyspace()) + " kept being refused as moved", e);
    }
    if (stale.isEmpty()) {
      for (CrossShardTransaction.UsedRoute u : used) {
        declare.put(u.keyspace() + '\0' + declaredKey(u.intKey(), u.key()), Boolean.TRUE);
      }
      return;
    }
    awaitNewerRoute(stale, fenced < 0 ? last.route().epoch() : fenced, last.route(), e);
  }

  private static ShardKey nonNull(ShardKey key) {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    return key;
  }

  /**
   * The primary pool of a shard, for work not tied to a key (schema changes, per-shard jobs). No routing
   * and no stale-route protection.
   */
  public DataSource primary(String shard) {
    ShardPool p = pools.get(shard, client.coreSnapshot());
    if (p == null) {
      throw ShardmapException.notFound("shard '" + shard + "' is not registered");
    }
    return p.primary();
  }

  /** A reading of this object's pools and of the client's shard-call counters (see {@link DataStats}). */
  /** The failover buffer's figures and the failovers of Patroni shards seen so far. */
  public FailoverStats failoverStats() {
    return new FailoverStats(failover.waiting(), failover.buffered(), failover.overflows(), failover.timeouts(),
        failover.failoversSeen(), failover.firstCallAfterFailover());
  }

  public DataStats stats() {
    return new DataStats(pools.openedCount(), pools.closedCount(), pools.pools().keySet(), stats.calls(),
        stats.callFailures(), java.time.Duration.ofNanos(stats.callNanos()), stats.retries(RetryCause.STALE_ROUTE),
        stats.retries(RetryCause.OLD_FENCE), stats.retries(RetryCause.REPLICA_UNAVAILABLE),
        stats.retries(RetryCause.CONNECTION), stats.replicaFallbacks(), replicaLags(),
        pools.breakerStates());
  }

  /** The replicas' lag as routing uses it, for {@link DataStats#replicaLags()}. */
  private Map<String, java.time.Duration> replicaLags() {
    Map<String, java.time.Duration> out = new java.util.TreeMap<>();
    pools.replicaHealth().lags().forEach((k, nanos) ->
        out.put(k, nanos < 0 ? DataStats.UNKNOWN_LAG : java.time.Duration.ofNanos(nanos)));
    return out;
  }

  private static Mode autocommit(Idempotence i) {
    return i == Idempotence.IDEMPOTENT ? Mode.AUTOCOMMIT_IDEMPOTENT : Mode.AUTOCOMMIT;
  }

  /** The route of the call's key: {@code key}, or the integer {@code intKey} when {@code key} is null. */
  private Route route(String keyspace, long intKey, ShardKey key) {
    return key == null ? client.coreRoute(keyspace, intKey) : client.coreRoute(keyspace, key);
  }

  private <T> T call(String keyspace, long intKey, ShardKey key, Mode mode, SqlWork<T> work) throws SQLException {
    if (closed) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this ShardmapData is closed");
    }
    long start = System.nanoTime();
    boolean failed = true;
    try {
      Route route = route(keyspace, intKey, key);
      // Set once a shard refused with a fence older than the route (see StaleRoute, "Declared routes"):
      // from then on every run of this call declares its route.
      boolean declare = false;
      // Set once the call waits in the failover buffer; bounds all its waits together.
      FailoverBuffer.Wait buffered = null;
      for (int attempt = 1; ; attempt++) {
        ShardPool pool = null;
        try {
          pool = pools.get(route.shard(), client.coreSnapshot());
          if (pool == null) {
            // Deregistered since we routed (only a shard owning nothing can be): the route is stale.
            route = route(keyspace, intKey, key);
            pool = pools.get(route.shard(), client.coreSnapshot());
            if (pool == null) {
              throw new ShardmapException(ErrorCode.INTERNAL, "shard '" + route.shard() + "' owns the key but "
                  + "is not registered in the map at revision " + client.revision());
            }
          }
          Declaration d = declare ? new Declaration(keyspace, route.epoch(),
              key == null ? StaleRoute.declaredKey(intKey) : key.isInteger() ? StaleRoute.declaredKey(key.intValue())
                  : StaleRoute.declaredKey(key.bytesUnsafe()))
              : null;
          T result = runOnce(pool, mode, work, d);
          failed = false;
          if (pool.followsPatroni() && mode != Mode.READ) {
            failover.succeeded(pool.shard());
          }
          return result;
        } catch (SQLException caught) {
          SQLException e = caught;
          if (e instanceof CommitUnknownException u) {
            String shard = u.pool().shard();
            CommitOutcome.Status outcome = CommitOutcome.resolve(u.xid(), u.pool(),
                () -> pools.get(shard, client.coreSnapshot()), failover, u.original());
            if (outcome == CommitOutcome.Status.COMMITTED) {
              failed = false;
              failover.succeeded(shard);
              @SuppressWarnings("unchecked")
              T result = (T) u.result();
              return result;
            }
            if (outcome == CommitOutcome.Status.UNKNOWN) {
              throw u.original();
            }
            e = new NotRunException(u.original()); // aborted: provably not applied, so it may run again
          }
          if (!options.failoverBufferWindow().isZero()
              && FailoverBuffer.isFailover(pool, e, mode != Mode.READ)) {
            // The shard's primary is gone or demoted and nothing ran: wait for the map to name the next one
            // (or for this one to answer again), then route again. Bounded by the buffer's window, not by
            // maxAttempts: a failover takes as many probes as it takes.
            stats.retry(RetryCause.CONNECTION);
            ShardPool failedPool = pool;
            String shard = pool.shard();
            buffered = failover.await(buffered, failedPool, () -> pools.get(shard, client.coreSnapshot()),
                e instanceof NotRunException n ? n.original() : e);
            attempt--;
            route = route(keyspace, intKey, key);
            continue;
          }
          if (StaleRoute.isStaleRoute(e)) {
            long fenced = StaleRoute.fencedEpoch(e);
            if (fenced >= 0 && fenced < route.epoch()) {
              // An old fence on the key's current owner: the key came back to this shard and the fence
              // from when it left is not lifted yet. No newer route can come; declare this one instead.
              if (mode == Mode.AUTOCOMMIT) {
                throw new ShardmapException(ErrorCode.STALE_EPOCH, "shard " + route.shard() + " refused the call "
                    + "with a fence from before the key's move back to it (" + fenceWording(e, keyspace)
                    + ": fenced_epoch=" + fenced + ", the map routes the key there at epoch " + route.epoch()
                    + "); not retried because the work is not idempotent and ran in autocommit mode, so part of "
                    + "it may have been applied", e);
              }
              if (attempt >= options.maxAttempts()) {
                throw exhausted(keyspace, route, attempt, e);
              }
              stats.retry(declare ? RetryCause.STALE_ROUTE : RetryCause.OLD_FENCE);
              declare = true;
              Route now = route(keyspace, intKey, key);
              if (now.epoch() > route.epoch()) {
                route = now; // the map moved on meanwhile: declare what it says now
              }
              continue;
            }
            Route newer = awaitNewerRoute(keyspace, intKey, key, fenced < 0 ? route.epoch() : fenced, route, e);
            if (mode == Mode.AUTOCOMMIT) {
              throw new ShardmapException(ErrorCode.STALE_EPOCH, "shard " + route.shard() + " refused the call "
                  + "because " + fenceWording(e, keyspace) + " moved to " + newer.shard()
                  + " (epoch " + route.epoch() + " -> " + newer.epoch() + "); not retried because the work is "
                  + "not idempotent and ran in autocommit mode, so part of it may have been applied", e);
            }
            if (attempt >= options.maxAttempts()) {
              throw exhausted(keyspace, route, attempt, e);
            }
            stats.retry(RetryCause.STALE_ROUTE);
            route = newer;
          } else if (e instanceof NotRunException n) {
            if (n.original() instanceof CircuitOpenException open && sameEndpoints(open, keyspace, intKey, key)) {
              throw open; // another run would be refused the same way: fail fast
            }
            if (attempt >= options.maxAttempts()) {
              throw n.original();
            }
            stats.retry(RetryCause.CONNECTION);
            route = route(keyspace, intKey, key);
          } else {
            throw e;
          }
        }
      }
    } finally {
      long nanos = System.nanoTime() - start;
      stats.call(nanos, failed);
      if (load != null) {
        recordLoad(keyspace, intKey, key, mode != Mode.READ, nanos, failed);
      }
    }
  }

  /** Counts a call in the load accounting; never throws (a call's own failure must reach its caller). */
  private void recordLoad(String keyspace, long intKey, ShardKey key, boolean write, long nanos, boolean failed) {
    try {
      if (key == null) {
        load.record(keyspace, intKey, write, nanos, failed);
      } else if (key.isInteger()) {
        load.record(keyspace, key.intValue(), write, nanos, failed);
      } else {
        load.record(keyspace, key.bytesUnsafe(), write, nanos, failed);
      }
    } catch (RuntimeException e) {
      // A key the bound table cannot place (of the other type: the call itself failed on it): not counted.
    }
  }

  /**
   * Whether the key still routes to the shard whose breaker refused, through the same pools (its endpoints
   * did not change in the map): then its breaker is still open, and only a changed map is worth a rerun.
   */
  private boolean sameEndpoints(CircuitOpenException open, String keyspace, long intKey, ShardKey key) {
    return route(keyspace, intKey, key).shard().equals(open.shard())
        && open.isFrom(pools.get(open.shard(), client.coreSnapshot()));
  }

  /** A route declared to the shard (see {@link StaleRoute}); {@code key} in {@link StaleRoute#declaredKey} form. */
  private record Declaration(String keyspace, long epoch, String key) {}

  private static final Pattern FENCE_UNIT = Pattern.compile("no longer owns (.+) of keyspace '");

  /**
   * What the fence said it covers ("hash bucket 3 of 8", "range [0, 100)"), or "the key's map entry" when
   * it said nothing this SDK reads (a fence of another version), with the keyspace.
   */
  static String fenceWording(SQLException e, String keyspace) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      Matcher m = FENCE_UNIT.matcher(String.valueOf(t.getMessage()));
      if (m.find() && !m.group(1).startsWith("the key's")) {
        return m.group(1) + " of keyspace '" + keyspace + "'";
      }
    }
    return "the key's map entry in keyspace '" + keyspace + "'";
  }

  private ShardmapException exhausted(String keyspace, Route route, int attempts, SQLException e) {
    return new ShardmapException(ErrorCode.STALE_EPOCH, "gave up after " + attempts + " runs: "
        + fenceWording(e, keyspace) + " kept being refused as moved (last tried shard " + route.shard()
        + " at epoch " + route.epoch() + ")", e);
  }

  /**
   * Waits until the key routes at an epoch above {@code fencedEpoch}: through the watched map, and every
   * 200 ms also by asking a directory server ({@link ShardmapClient#lookupRemote}), so a stalled watch does
   * not hold the call to its timeout. The remote answer is used for this call only; the map itself still
   * changes only through the watch, in revision order.
   * Between the fence and the cutover's etcd commit there is a short window in which no newer route
   * exists anywhere yet; waiting covers it.
   */
  private Route awaitNewerRoute(String keyspace, long intKey, ShardKey key, long fencedEpoch, Route used,
      SQLException cause) {
    return awaitNewerRoute(List.of(new KeyRef(keyspace, intKey, key)), fencedEpoch, used, cause);
  }

  /** A key as a call names it: {@code key}, or the integer {@code intKey} when {@code key} is null. */
  private record KeyRef(String keyspace, long intKey, ShardKey key) {}

  /** {@link #awaitNewerRoute} until any of {@code keys} routes above {@code fencedEpoch}; returns that route. */
  private Route awaitNewerRoute(List<KeyRef> keys, long fencedEpoch, Route used, SQLException cause) {
    String keyspace = keys.get(0).keyspace();
    long start = System.nanoTime();
    long deadline = start + options.staleRouteTimeout().toNanos();
    long nextRemote = start + REMOTE_LOOKUP_AFTER_NANOS;
    boolean remoteUsable = true;
    while (true) {
      long seen = mapChanges;
      Route r = null;
      for (KeyRef k : keys) {
        r = route(k.keyspace(), k.intKey(), k.key());
        if (r.epoch() > fencedEpoch) {
          return r;
        }
      }
      long now = System.nanoTime();
      if (remoteUsable && now - nextRemote >= 0) {
        try {
          for (KeyRef k : keys) {
            Route remote = client.coreLookupRemote(k.keyspace(), k.key() == null ? ShardKey.of(k.intKey()) : k.key());
            if (remote.epoch() > fencedEpoch) {
              return remote;
            }
          }
        } catch (ShardmapException e) {
          if (!e.code().retryableForIdempotent()) {
            throw e;
          }
          // No directory answers (each try can take rpcTimeout): leave it to the watched map.
          remoteUsable = false;
        }
        now = System.nanoTime();
        nextRemote = now + REMOTE_LOOKUP_AFTER_NANOS;
      }
      if (now - deadline >= 0) {
        throw new ShardmapException(ErrorCode.STALE_EPOCH, "shard " + used.shard() + " refused the call because "
            + fenceWording(cause, keyspace) + " is fenced up to epoch " + fencedEpoch + ", and no "
            + "newer route appeared within " + options.staleRouteTimeout().toMillis() + " ms (the map routes it "
            + "to " + r.shard() + " at epoch " + r.epoch() + ")", cause);
      }
      synchronized (mapChanged) {
        if (mapChanges == seen) {
          try {
            mapChanged.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(deadline - now), 50)));
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while waiting for a newer route", cause);
          }
        }
      }
    }
  }

  private <T> T runOnce(ShardPool pool, Mode mode, SqlWork<T> work, Declaration declared) throws SQLException {
    // Which pool the connection came from: its endpoint's breaker learns the outcome, and a declaration is
    // cleared on it.
    Borrowed from = new Borrowed();
    Connection c = mode == Mode.READ ? readConnection(pool, from) : primaryConnection(pool, from);
    Throwable failure = null;
    try {
      if (mode != Mode.TRANSACTION) {
        try {
          if (declared == null) {
            return work.run(c);
          }
          // Autocommit: a transaction-local setting would end with the declaration's own statement, so the
          // declaration is made for the session and cleared before the connection goes back to the pool.
          // Were the clearing lost, the connection is evicted; a declaration that stayed would still only
          // state a fact about the map (see StaleRoute), so it could pass no fence it should not.
          declare(c, declared, false);
          try {
            return work.run(c);
          } finally {
            clearDeclaration(from.pool, c);
          }
        } catch (SQLException e) {
          if (mode != Mode.AUTOCOMMIT && SqlStates.isConnectionLoss(e)) {
            throw new NotRunException(e);
          }
          throw e;
        }
      }
      c.setAutoCommit(false);
      T result;
      try {
        if (declared != null) {
          declare(c, declared, true); // ends with the transaction
        }
        result = work.run(c);
      } catch (SQLException e) {
        rollbackQuietly(c, e);
        // COMMIT was never sent, so a transaction on a broken connection did not commit.
        throw SqlStates.isConnectionLoss(e) ? new NotRunException(e) : e;
      } catch (RuntimeException | Error e) {
        rollbackQuietly(c, e);
        throw e;
      }
      // A failure in COMMIT itself is passed on as is: if the connection broke, the outcome is unknown;
      // on a Patroni shard the call learns it from the primary afterwards (CommitOutcome), by the id
      // taken here, just before COMMIT.
      String xid = null;
      if (pool.followsPatroni() && options.resolveUnknownCommits()) {
        try {
          xid = CommitOutcome.assignedId(c);
        } catch (SQLException e) {
          rollbackQuietly(c, e);
          throw SqlStates.isConnectionLoss(e) ? new NotRunException(e) : e;
        }
      }
      try {
        c.commit();
      } catch (SQLException e) {
        if (xid != null && SqlStates.isConnectionLoss(e)) {
          throw new CommitUnknownException(e, xid, pool, result);
        }
        throw e;
      }
      return result;
    } catch (Throwable t) {
      failure = t;
      throw t;
    } finally {
      try {
        c.close();
      } finally {
        pool.record(from.pool, from.start, failure); // exactly once per permission taken
      }
    }
  }

  private static void declare(Connection c, Declaration d, boolean local) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(StaleRoute.declarationSql(local))) {
      ps.setString(1, d.keyspace());
      ps.setString(2, Long.toString(d.epoch()));
      ps.setString(3, d.key());
      ps.execute();
    }
  }

  private static void clearDeclaration(HikariDataSource from, Connection c) {
    try (Statement s = c.createStatement()) {
      s.execute(StaleRoute.clearDeclarationSql());
    } catch (SQLException e) {
      // Not worth failing a call that ran: the connection just does not go back to the pool.
      from.evictConnection(c);
    }
  }

  /**
   * The pool a call's connection came from, and when borrowing from it began: the endpoint's breaker times
   * the call from there (borrowing counts towards a slow call; a replica waited for before does not).
   */
  private static final class Borrowed {
    HikariDataSource pool;
    long start;
  }

  /**
   * A connection of the shard's primary; {@code from} is set to its pool. Its breaker's permission is taken
   * first (refused: a {@link NotRunException} of a {@link CircuitOpenException}); the caller records the
   * call's outcome on it once a connection was returned.
   */
  private Connection primaryConnection(ShardPool pool, Borrowed from) throws SQLException {
    pool.acquire(pool.primary());
    long start = System.nanoTime();
    try {
      from.pool = pool.primary();
      from.start = start;
      // A Patroni shard's primary that cannot be reached (a failover under way) ends in NotRun: nothing ran;
      // the call routes again, through the failover buffer.
      // Fixed shards borrow directly: no supplier is allocated on the common path.
      return pool.followsPatroni() ? pools.borrowPrimary(pool, () -> pools.get(pool.shard(), client.coreSnapshot()))
          : pool.primary().getConnection();
    } catch (SQLException e) {
      pool.record(pool.primary(), start, e);
      if (pool.isClosed()) {
        // Replaced between lookup and borrow (endpoints changed): nothing ran; route again.
        throw e instanceof NotRunException ? e : new NotRunException(e);
      }
      throw e;
    }
  }

  /**
   * A connection of a usable replica (see {@link io.shardmap.client.internal.ReplicaHealth}: reachable, in
   * recovery, within {@link DataOptions#maxReplicaLag()}), else of the primary; {@code from} is set to its
   * pool. A replica whose breaker is open is skipped like one that gives no connection. A read of a shard
   * with replicas that ends up on the primary is counted.
   */
  private Connection readConnection(ShardPool pool, Borrowed from) throws SQLException {
    HikariDataSource[] replicas = pool.replicas();
    if (replicas.length > 0) {
      io.shardmap.client.internal.ReplicaHealth health = pools.replicaHealth();
      int first = replicas.length == 1 ? 0 : ThreadLocalRandom.current().nextInt(replicas.length);
      for (int i = 0; i < replicas.length; i++) {
        int k = (first + i) % replicas.length;
        if (!health.usable(pool, k)) {
          continue;
        }
        HikariDataSource r = replicas[k];
        if (!pool.tryAcquire(r)) {
          stats.retry(RetryCause.REPLICA_UNAVAILABLE);
          continue;
        }
        long start = System.nanoTime();
        try {
          Connection c = r.getConnection();
          from.pool = r;
          from.start = start;
          return c;
        } catch (SQLException e) {
          pool.record(r, start, e);
          stats.retry(RetryCause.REPLICA_UNAVAILABLE);
        }
      }
      stats.replicaFallback();
    }
    return primaryConnection(pool, from);
  }

  private static void rollbackQuietly(Connection c, Throwable failure) {
    try {
      c.rollback();
    } catch (SQLException e) {
      failure.addSuppressed(e);
    }
  }

  /** The client's map for the query executor: pinned at a query's start, awaited for a re-run. */
  private final MapSource maps = new MapSource() {
    @Override
    public DirectorySnapshot current(String keyspace) {
      return client.coreSnapshotFor(keyspace);
    }

    @Override
    public DirectorySnapshot await(String keyspace, Predicate<KeyspaceMap> ready, long deadlineNanos)
        throws InterruptedException {
      while (true) {
        long seen = mapChanges;
        DirectorySnapshot s = client.coreSnapshotFor(keyspace);
        if (ready.test(s.keyspace(keyspace))) {
          return s;
        }
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
          return null;
        }
        synchronized (mapChanged) {
          if (mapChanges == seen) {
            mapChanged.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 50)));
          }
        }
      }
    }
  };

  /**
   * Runs a cross-shard query: one PostgreSQL SELECT over the shards {@code q} targets, at one map revision
   * pinned when it starts, each shard restricted to the rows it owns in that map, their rows merged into
   * the answer the same SELECT gives on one database holding every row (docs/client-sdk.md, "Cross-shard
   * queries"). Returns once every shard's part has started; the rows stream as the result is read, and the
   * result must be closed.
   *
   * <p>Refused before anything is sent (INVALID_ARGUMENT naming the field, or NOT_FOUND for an unknown
   * keyspace): SQL that is not one SELECT on a table the keyspace shards or that cannot be merged exactly
   * (the error names the clause), a wrong number of parameters, keys of the wrong type, a key range on a
   * keyspace that is not range-sharded. FAILED_PRECONDITION when the map does not cover the keyspace or
   * names an unregistered shard.
   *
   * @throws ShardmapException naming every failed shard and why (default mode; the other shards'
   *     statements are cancelled), or when every shard failed (partial mode); DEADLINE_EXCEEDED
   */
  public QueryResult query(CrossShardQuery q) {
    if (q == null) {
      throw ShardmapException.invalid("query", "a CrossShardQuery is required");
    }
    return query(q, plannedOrRefused(q));
  }

  /**
   * Every row of a cross-shard query made into a value by {@code mapper}, read to the end (the result is
   * closed before this returns). For small answers; stream large ones with {@link #query}.
   */
  public <T> List<T> queryList(CrossShardQuery q, RowMapper<T> mapper) throws SQLException {
    if (mapper == null) {
      throw ShardmapException.invalid("mapper", "a RowMapper is required");
    }
    if (q == null) {
      throw ShardmapException.invalid("query", "a CrossShardQuery is required");
    }
    return queryList(q, plannedOrRefused(q), mapper);
  }

  /** {@link #plan}, its refusal (bad SQL, an unknown keyspace) counted as a query that failed. */
  private QueryPlan plannedOrRefused(CrossShardQuery q) {
    long start = System.nanoTime();
    try {
      return plan(q);
    } catch (RuntimeException e) {
      stats.queryFailed(QueryFailure.of(e, QueryFailure.REFUSED), System.nanoTime() - start);
      throw e;
    }
  }

  /**
   * Plans by keyspace, sharded tables, the reference tables' snapshot and SQL: plans are immutable and
   * reusable with other parameters.
   */
  private record PlanKey(String keyspace, Map<String, String> tables, long references, String sql,
      io.shardmap.query.Merge merge) {}

  private static final int MAX_PLANS = 1024;
  private final Map<PlanKey, QueryPlan> plans = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * The plan of {@code q}'s SQL for its keyspace's sharded and reference tables (planning refuses bad SQL
   * here). The reference tables are asked for only when the SQL names a table the keyspace does not shard;
   * a table not among them is looked up once more (declared since the SDK read them) before the refusal.
   */
  private QueryPlan plan(CrossShardQuery q) {
    Map<String, String> tables = tables(client.coreSnapshotFor(q.keyspace()).keyspace(q.keyspace()));
    boolean[] reloaded = {false};
    while (true) {
      PlanKey key = new PlanKey(q.keyspace(), tables, references.revision(q.keyspace()), q.sql(),
          q.merge().orElse(null));
      QueryPlan p = plans.get(key);
      if (p != null) {
        return p;
      }
      boolean[] askedReference = {false};
      QueryPlanner.ShardedTables sharded = new QueryPlanner.ShardedTables() {
        @Override
        public java.util.Optional<String> keyColumn(String t) {
          return java.util.Optional.ofNullable(tables.get(t));
        }

        @Override
        public boolean isReference(String t) {
          askedReference[0] = true;
          return references.isReference(q.keyspace(), t);
        }
      };
      try {
        p = q.merge().isPresent() ? QueryPlanner.plan(q.sql(), sharded, q.merge().get())
            : QueryPlanner.plan(q.sql(), sharded);
      } catch (ShardmapException e) {
        if (askedReference[0] && !reloaded[0] && e.getMessage().contains("nor one of its reference tables")) {
          reloaded[0] = true;
          references.reload(q.keyspace());
          continue;
        }
        throw e;
      }
      if (plans.size() >= MAX_PLANS) {
        plans.clear(); // a service has a bounded set of statements; this only bounds a runaway one
      }
      // Keyed by the snapshot the planner consulted (the revision may have moved while planning).
      plans.put(new PlanKey(q.keyspace(), tables, references.revision(q.keyspace()), q.sql(),
          q.merge().orElse(null)), p);
      return p;
    }
  }

  /**
   * Runs a cross-shard query with {@code plan} (the query's SQL, planned): checks {@code q} against the
   * pinned map (keyspace, key type, target), then runs it. The seam between planning and running.
   */
  QueryResult query(CrossShardQuery q, QueryPlan plan) {
    if (closed) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this ShardmapData is closed");
    }
    long start = System.nanoTime();
    DirectorySnapshot pinned;
    QueryTarget target;
    String keyColumn;
    try {
      pinned = client.coreSnapshotFor(q.keyspace());
      KeyspaceMap k = pinned.keyspace(q.keyspace());
      target = target(q, k);
      keyColumn = tables(k).get(plan.table());
      if (keyColumn == null) {
        throw ShardmapException.invalid("sql", "table " + plan.table() + " is not sharded in keyspace '"
            + q.keyspace() + "' (its tables: " + tables(k).keySet() + ")");
      }
      plan.shardStatement(io.shardmap.core.sql.KeySql.TRUE, q.params()); // refuses a wrong parameter list here
    } catch (RuntimeException e) {
      stats.queryFailed(QueryFailure.of(e, QueryFailure.REFUSED), System.nanoTime() - start);
      throw e;
    }
    QueryExecutor.Request r = new QueryExecutor.Request(q.keyspace(), plan, keyColumn, q.params(), target, start,
        start + q.deadline().toNanos(), q.partialResults(), q.onReplicas(), q.fetchSize(), q.maxInMemoryRows(),
        q.parallelism());
    Execution e = queries.run(r, pinned);
    return new QueryResult(e, plan.columnLabels());
  }

  /** Every row of a cross-shard query, made by {@code mapper}, read to the end. */
  <T> List<T> queryList(CrossShardQuery q, QueryPlan plan, RowMapper<T> mapper) throws SQLException {
    try (QueryResult r = query(q, plan)) {
      List<T> out = new ArrayList<>();
      while (r.next()) {
        out.add(mapper.map(r));
      }
      return out;
    }
  }

  /** The keyspace's sharded tables: name to key column. */
  static Map<String, String> tables(KeyspaceMap k) {
    Map<String, String> out = new java.util.LinkedHashMap<>();
    for (ShardedTable t : k.spec().getTablesList()) {
      out.put(t.getName(), t.getKeyColumn());
    }
    return out;
  }

  /** The query's target in canonical keys, checked against the keyspace (nothing is sent yet). */
  static QueryTarget target(CrossShardQuery q, KeyspaceMap k) {
    boolean intKeys = k.keyType() == KeyType.KEY_TYPE_INT64;
    switch (q.target()) {
      case KEY_RANGE -> {
        if (k.strategy() != Strategy.STRATEGY_RANGE) {
          throw ShardmapException.invalid("keyRange", "keyspace '" + k.name() + "' uses " + k.kind().label()
              + " sharding, where a key range is spread over every shard; key ranges apply to range keyspaces "
              + "only (use keys(...) or all shards)");
        }
        byte[] lo = q.rangeStart().map(key -> checked(key, intKeys, k, "keyRange")).orElse(new byte[0]);
        byte[] hi = q.rangeEnd().map(key -> checked(key, intKeys, k, "keyRange")).orElse(new byte[0]);
        return new QueryTarget.Range(lo, hi);
      }
      case KEYS -> {
        List<byte[]> keys = new ArrayList<>();
        for (ShardKey key : q.keys()) {
          keys.add(checked(key, intKeys, k, "keys"));
        }
        return new QueryTarget.Keys(keys);
      }
      default -> {
        return new QueryTarget.All();
      }
    }
  }

  private static byte[] checked(ShardKey key, boolean intKeys, KeyspaceMap k, String field) {
    if (key.isInteger() != intKeys) {
      throw ShardmapException.invalid(field, "keyspace '" + k.name() + "' has " + (intKeys ? "INT64" : "BYTES")
          + " keys; " + key + " is " + (key.isInteger() ? "an integer key" : "a byte-string key"));
    }
    return key.canonical();
  }

  /** Closes every pool (waiting for borrowed connections). The client stays open. */
  @Override
  public void close() {
    closed = true;
    client.removeCoreListener(listener);
    failover.onNewShard(shard -> {});
    if (failoverMetrics != null) {
      try {
        failoverMetrics.close();
      } catch (Exception e) {
        throw new IllegalStateException("removing the failover meters failed", e);
      }
    }
    txnExecutor.shutdown();
    queries.close();
    queryPools.close();
    pools.close();
    if (replicaMetrics != null) {
      try {
        replicaMetrics.close();
      } catch (Exception e) {
        throw new IllegalStateException("removing the replica gauges failed", e);
      }
    }
  }
}
