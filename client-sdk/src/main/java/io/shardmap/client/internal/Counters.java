package io.shardmap.client.internal;

import io.shardmap.core.ShardmapException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The client's counters, kept in plain {@link LongAdder}s so the hot path (a lookup, a shard call) never
 * touches a metrics library and never allocates. A metrics binder (Micrometer, when the application
 * supplies a registry) reads them on scrape.
 */
public final class Counters {
  /** Why a shard call was retried. */
  public enum RetryCause {
    /** The shard refused the call because its range moved (fenced); re-routed by a newer map. */
    STALE_ROUTE("stale_route"),
    /**
     * The key's current owner refused with a fence older than the route (the key moved back and the old
     * fence is not lifted yet); run again on the same shard with the route declared.
     */
    OLD_FENCE("old_fence"),
    /** No connection from any replica of the shard; the read went to the primary. */
    REPLICA_UNAVAILABLE("replica_unavailable"),
    /** The connection broke before the call could have run; tried once more. */
    CONNECTION("connection");

    private final String tag;

    RetryCause(String tag) {
      this.tag = tag;
    }

    /** The metric tag value. */
    public String tag() {
      return tag;
    }
  }

  /** How a cross-shard query ended. */
  public enum QueryOutcome {
    /** Read to its end, every shard answered. */
    OK("ok"),
    /** Partial mode: read to its end or closed, and at least one shard failed and is reported. */
    PARTIAL("partial"),
    /** Thrown to the caller (refused, or failed while starting or while being read). */
    FAILED("failed"),
    /** Closed by the caller before its last row; what still ran was cancelled. */
    CLOSED("closed");

    private final String tag;

    QueryOutcome(String tag) {
      this.tag = tag;
    }

    /** The metric tag value. */
    public String tag() {
      return tag;
    }
  }

  /** Why a cross-shard query failed: what an operator looks at next. */
  public enum QueryFailure {
    /** Bad input (INVALID_ARGUMENT, NOT_FOUND) refused before anything was sent to any shard. */
    REFUSED("refused"),
    /** The query's deadline passed (DEADLINE_EXCEEDED), wherever it was. */
    DEADLINE("deadline"),
    /** A shard's part failed (default mode), or every shard's (partial mode). */
    SHARD("shard"),
    /** The part guard kept asking for a newer map until the query's runs were used up (STALE_EPOCH). */
    STALE_MAP("stale_map"),
    /**
     * Anything else: a map that does not cover the keyspace, the merge's own failure (over
     * {@code maxInMemoryRows}, arithmetic in HAVING), a closed {@code ShardmapData}, an interrupt.
     */
    OTHER("other");

    private final String tag;

    QueryFailure(String tag) {
      this.tag = tag;
    }

    /** The metric tag value. */
    public String tag() {
      return tag;
    }

    /**
     * The cause of {@code e}, thrown where failures are {@code where}'s: a passed deadline and a stale map are
     * themselves wherever they surface (a part's statement_timeout, a wait for a newer map); before anything
     * was sent ({@code where} REFUSED) only bad input is a refusal.
     */
    public static QueryFailure of(Throwable e, QueryFailure where) {
      if (e instanceof ShardmapException s) {
        switch (s.code()) {
          case DEADLINE_EXCEEDED -> {
            return DEADLINE;
          }
          case STALE_EPOCH -> {
            return STALE_MAP;
          }
          case INVALID_ARGUMENT, NOT_FOUND -> {
            return where;
          }
          default -> {
            // below
          }
        }
      }
      return where == REFUSED ? OTHER : where;
    }
  }

  /** How a cross-shard transaction ({@code ShardmapData.acrossShards}) ended. */
  public enum TxnOutcome {
    /** Committed on every shard that wrote (those left prepared are committed by the resolver). */
    COMMITTED("committed"),
    /** Thrown to the caller with nothing committed: the work's own error, a refusal, an abort. */
    FAILED("failed"),
    /** Thrown with the outcome unknown (the deciding shard lost during the commit point). */
    UNKNOWN("unknown");

    private final String tag;

    TxnOutcome(String tag) {
      this.tag = tag;
    }

    /** The metric tag value. */
    public String tag() {
      return tag;
    }
  }

  /** Participant-count buckets of committed transactions: writers 0-1 (one phase), 2, 3, 4 or more. */
  public static final int TXN_WRITER_BUCKETS = 4;

  private final LongAdder lookups = new LongAdder();
  private final LongAdder calls = new LongAdder();
  private final LongAdder callFailures = new LongAdder();
  private final LongAdder callNanos = new LongAdder();
  private final AtomicLong callMaxNanos = new AtomicLong();
  private final LongAdder[] retries = adders(RetryCause.values().length);
  private final LongAdder directoryHits = new LongAdder();
  private final LongAdder directoryMisses = new LongAdder();
  private final LongAdder reports = new LongAdder();
  private final LongAdder reportFailures = new LongAdder();
  private final LongAdder loadBands = new LongAdder();
  private final LongAdder loadCalls = new LongAdder();
  private final LongAdder loadDropped = new LongAdder();
  private final LongAdder[] queries = adders(QueryOutcome.values().length);
  private final LongAdder[] queryNanos = adders(QueryOutcome.values().length);
  private final LongAdder[] queryFailures = adders(QueryFailure.values().length);
  private final LongAdder queryReruns = new LongAdder();
  private final LongAdder partsStarted = new LongAdder();
  private final LongAdder partFailures = new LongAdder();
  private final LongAdder partCancels = new LongAdder();
  private final LongAdder partConnections = new LongAdder();
  private final LongAdder[] txns = adders(TxnOutcome.values().length);
  private final LongAdder[] txnNanos = adders(TxnOutcome.values().length);
  private final LongAdder[] txnWriters = adders(TXN_WRITER_BUCKETS);
  private final LongAdder txnReruns = new LongAdder();
  private final LongAdder txnLeftToResolver = new LongAdder();
  private final LongAdder referenceReruns = new LongAdder();
  private final LongAdder referenceFetches = new LongAdder();
  private final LongAdder referenceDiffered = new LongAdder();
  private final LongAdder replicaFallbacks = new LongAdder();


  private static LongAdder[] adders(int n) {
    LongAdder[] a = new LongAdder[n];
    for (int i = 0; i < n; i++) {
      a[i] = new LongAdder();
    }
    return a;
  }

  public void lookup() {
    lookups.increment();
  }

  /** A finished shard call (including its retries) and how long it took. */
  public void call(long nanos, boolean failed) {
    calls.increment();
    callNanos.add(nanos);
    if (failed) {
      callFailures.increment();
    }
    long max = callMaxNanos.get();
    while (nanos > max && !callMaxNanos.compareAndSet(max, nanos)) {
      max = callMaxNanos.get();
    }
  }

  public void retry(RetryCause cause) {
    retries[cause.ordinal()].increment();
  }

  /**
   * A read of a shard that has replicas went to its primary: no replica was usable (lagging beyond
   * maxReplicaLag, unreachable, not in recovery, not checked yet) or none gave a connection.
   */
  public void replicaFallback() {
    replicaFallbacks.increment();
  }

  public long replicaFallbacks() {
    return replicaFallbacks.sum();
  }

  /** A lookup of a lazily loaded directory keyspace answered from the client's cache. */
  public void directoryHit() {
    directoryHits.increment();
  }

  /** A lookup of a lazily loaded directory keyspace that had to ask a directory server (or wait for one). */
  public void directoryMiss() {
    directoryMisses.increment();
  }

  public long directoryHits() {
    return directoryHits.sum();
  }

  public long directoryMisses() {
    return directoryMisses.sum();
  }

  public long lookups() {
    return lookups.sum();
  }

  public long calls() {
    return calls.sum();
  }

  public long callFailures() {
    return callFailures.sum();
  }

  public long callNanos() {
    return callNanos.sum();
  }

  /** The longest call so far. */
  public long callMaxNanos() {
    return callMaxNanos.get();
  }

  public long retries(RetryCause cause) {
    return retries[cause.ordinal()].sum();
  }

  /** A directory server accepted a report of the client's applied revision. */
  public void report() {
    reports.increment();
  }

  /** A report of the applied revision failed (it is only counted and logged). */
  public void reportFailure() {
    reportFailures.increment();
  }

  public long reports() {
    return reports.sum();
  }

  public long reportFailures() {
    return reportFailures.sum();
  }

  /** A directory server accepted load reports ({@code internal.load}): this many bands, covering this many calls. */
  public void loadReported(long bands, long calls) {
    loadBands.add(bands);
    loadCalls.add(calls);
  }

  /** Counted calls whose load was never reported (refused, too old, over the pending bound). */
  public void loadDropped(long calls) {
    loadDropped.add(calls);
  }

  public long loadReportedBands() {
    return loadBands.sum();
  }

  public long loadReportedCalls() {
    return loadCalls.sum();
  }

  public long loadDropped() {
    return loadDropped.sum();
  }

  /**
   * A cross-shard query ended without being thrown ({@code outcome} OK, PARTIAL or CLOSED), {@code nanos}
   * after it started.
   */
  public void queryEnded(QueryOutcome outcome, long nanos) {
    if (outcome == QueryOutcome.FAILED) {
      throw new IllegalArgumentException("a failed query is counted by queryFailed, with its cause");
    }
    queries[outcome.ordinal()].increment();
    queryNanos[outcome.ordinal()].add(nanos);
  }

  /**
   * A cross-shard query was thrown to its caller {@code nanos} after it started: one FAILED query and one
   * failure of {@code cause}, so that the failures by cause add up to the failed queries.
   */
  public void queryFailed(QueryFailure cause, long nanos) {
    queries[QueryOutcome.FAILED.ordinal()].increment();
    queryNanos[QueryOutcome.FAILED.ordinal()].add(nanos);
    queryFailures[cause.ordinal()].increment();
  }

  public long queries(QueryOutcome outcome) {
    return queries[outcome.ordinal()].sum();
  }

  public long queryNanos(QueryOutcome outcome) {
    return queryNanos[outcome.ordinal()].sum();
  }

  public long queryFailures(QueryFailure cause) {
    return queryFailures[cause.ordinal()].sum();
  }

  /** A query runs again at a newer map because a part's guard asked for one. */
  public void queryRerun() {
    queryReruns.increment();
  }

  public long queryReruns() {
    return queryReruns.sum();
  }

  /** A worker began opening a query's part (taking a connection for it, then sending it). */
  public void partStarted() {
    partsStarted.increment();
  }

  /** A query's part failed on its own (not cancelled by its query), while starting or while being read. */
  public void partFailed() {
    partFailures.increment();
  }

  /** A cancel was sent to PostgreSQL for a part's running statement (counted once per part). */
  public void partCancelled() {
    partCancels.increment();
  }

  public long partsStarted() {
    return partsStarted.sum();
  }

  public long partFailures() {
    return partFailures.sum();
  }

  public long partCancels() {
    return partCancels.sum();
  }

  /** A part took a connection of a query pool (exactly one {@link #partConnectionReleased} follows). */
  public void partConnectionTaken() {
    partConnections.increment();
  }

  /** A part gave its query-pool connection back (or evicted it). */
  public void partConnectionReleased() {
    partConnections.decrement();
  }

  /** Query-pool connections held by parts now: taken and not yet given back. */
  public long partConnections() {
    return partConnections.sum();
  }

  /**
   * A cross-shard transaction ended ({@code writers}: the shards that wrote, when it committed), {@code nanos}
   * after it started, reruns included.
   */
  public void txnEnded(TxnOutcome outcome, int writers, long nanos) {
    txns[outcome.ordinal()].increment();
    txnNanos[outcome.ordinal()].add(nanos);
    if (outcome == TxnOutcome.COMMITTED) {
      txnWriters[Math.min(TXN_WRITER_BUCKETS - 1, Math.max(0, writers - 1))].increment();
    }
  }

  public long txns(TxnOutcome outcome) {
    return txns[outcome.ordinal()].sum();
  }

  public long txnNanos(TxnOutcome outcome) {
    return txnNanos[outcome.ordinal()].sum();
  }

  /** Committed transactions by writer bucket: 0 = one phase (at most one writer), 1 = two, 2 = three, 3 = more. */
  public long txnsByWriters(int bucket) {
    return txnWriters[bucket].sum();
  }

  /** A cross-shard transaction's work runs again (a stale route or a lost connection before the commit point). */
  public void txnRerun() {
    txnReruns.increment();
  }

  public long txnReruns() {
    return txnReruns.sum();
  }

  /** A committed transaction's shard could not be sent COMMIT PREPARED: the resolver finishes it. */
  public void txnLeftToResolver() {
    txnLeftToResolver.increment();
  }

  public long txnsLeftToResolver() {
    return txnLeftToResolver.sum();
  }

  /** A cross-shard work ran again because a reference table's copies changed (SQLSTATE SMR01). */
  public void referenceRerun() {
    referenceReruns.increment();
  }

  public long referenceReruns() {
    return referenceReruns.sum();
  }

  /** The reference table records of a keyspace were read from a directory server. */
  public void referenceFetch() {
    referenceFetches.increment();
  }

  public long referenceFetches() {
    return referenceFetches.sum();
  }

  /** A reference write was refused because its copies returned different results. */
  public void referenceResultsDiffered() {
    referenceDiffered.increment();
  }

  public long referenceDiffered() {
    return referenceDiffered.sum();
  }

  private final BreakerBoard breakers = new BreakerBoard();

  /** The circuit breakers of the single-key pools of every ShardmapData on this client, for the metrics. */
  public BreakerBoard breakers() {
    return breakers;
  }
}
