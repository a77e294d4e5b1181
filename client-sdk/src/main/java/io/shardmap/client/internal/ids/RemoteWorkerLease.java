package io.shardmap.client.internal.ids;

import io.shardmap.core.ids.WorkerLease;

/**
 * A worker id leased through the directory servers' id service (see docs/worker-leases.md, "For the SDK").
 * One object per claim: {@link #workerId()} and {@link #startAfterMillis()} are fixed; the renewer moves
 * {@link #validUntilNanos()} and {@link #issueUntilMillis()} forward on each successful RenewWorker and drops
 * validity at once ({@link #lapse}) when the claim is lost or given up, so the generator refuses the next id.
 */
public final class RemoteWorkerLease implements WorkerLease {
  private final int workerId;
  private final long leaseId;
  private final long claimRevision;
  private final long startAfterMillis;
  private volatile long validUntilNanos;
  private volatile long issueUntilMillis;
  /** Set once by {@link #lapse}: later renewals (a reply already in flight) no longer revive it. */
  private volatile boolean lapsed;

  RemoteWorkerLease(int workerId, long leaseId, long claimRevision, long startAfterMillis, long validUntilNanos,
                    long issueUntilMillis) {
    this.workerId = workerId;
    this.leaseId = leaseId;
    this.claimRevision = claimRevision;
    this.startAfterMillis = startAfterMillis;
    this.validUntilNanos = validUntilNanos;
    this.issueUntilMillis = issueUntilMillis;
  }

  @Override
  public int workerId() {
    return workerId;
  }

  long leaseId() {
    return leaseId;
  }

  long claimRevision() {
    return claimRevision;
  }

  @Override
  public long validUntilNanos() {
    return validUntilNanos;
  }

  @Override
  public long issueUntilMillis() {
    return issueUntilMillis;
  }

  @Override
  public long startAfterMillis() {
    return startAfterMillis;
  }

  boolean lapsed() {
    return lapsed;
  }

  /**
   * A successful renewal sent at {@code sentNanos}: valid until then + ttl; issue-until only grows (a late
   * reply never lowers it). Ignored once lapsed.
   */
  synchronized void renewed(long sentNanos, long ttlMillis, long recordedIssueUntilMillis) {
    if (lapsed) {
      return;
    }
    long until = sentNanos + ttlMillis * 1_000_000;
    if (until - validUntilNanos > 0) {
      validUntilNanos = until;
    }
    if (recordedIssueUntilMillis > issueUntilMillis) {
      issueUntilMillis = recordedIssueUntilMillis;
    }
  }

  /** Stops issuing at once: the generator's next call sees validity in the past and refuses. */
  synchronized void lapse(long nowNanos) {
    lapsed = true;
    if (validUntilNanos - nowNanos >= 0) {
      validUntilNanos = nowNanos - 1;
    }
  }

  @Override
  public String toString() {
    return "RemoteWorkerLease{worker=" + workerId + ", lease=" + leaseId + ", claim=" + claimRevision + "}";
  }
}
