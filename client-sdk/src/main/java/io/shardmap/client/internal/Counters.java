package io.shardmap.client.internal;

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

  private final LongAdder lookups = new LongAdder();
  private final LongAdder calls = new LongAdder();
  private final LongAdder callFailures = new LongAdder();
  private final LongAdder callNanos = new LongAdder();
  private final AtomicLong callMaxNanos = new AtomicLong();
  private final LongAdder[] retries = new LongAdder[RetryCause.values().length];
  private final LongAdder directoryHits = new LongAdder();
  private final LongAdder directoryMisses = new LongAdder();
  private final LongAdder reports = new LongAdder();
  private final LongAdder reportFailures = new LongAdder();

  public Counters() {
    for (int i = 0; i < retries.length; i++) {
      retries[i] = new LongAdder();
    }
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
}
