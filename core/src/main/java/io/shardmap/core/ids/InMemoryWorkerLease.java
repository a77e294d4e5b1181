package io.shardmap.core.ids;

/**
 * A {@link WorkerLease} whose renewable values the caller sets: for tests (expire it, renew it) and for
 * benchmarks. It proves nothing about other processes, so two processes given the same worker id this way
 * can issue the same ids; production leases come from the lease service.
 */
public final class InMemoryWorkerLease implements WorkerLease {
  private final int workerId;
  private final long startAfterMillis;
  private volatile long validUntilNanos;
  private volatile long issueUntilMillis;

  public InMemoryWorkerLease(int workerId, long startAfterMillis, long validUntilNanos, long issueUntilMillis) {
    if (workerId < 0) {
      throw new IllegalArgumentException("workerId: must be >= 0, got " + workerId);
    }
    this.workerId = workerId;
    this.startAfterMillis = startAfterMillis;
    this.validUntilNanos = validUntilNanos;
    this.issueUntilMillis = issueUntilMillis;
  }

  /** A lease that never expires and has no predecessor: for benchmarks and tests that do not test leases. */
  public static InMemoryWorkerLease unbounded(int workerId) {
    return new InMemoryWorkerLease(workerId, Long.MIN_VALUE, Long.MAX_VALUE, Long.MAX_VALUE);
  }

  @Override
  public int workerId() {
    return workerId;
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

  /** A renewal (or, with values in the past, a loss): takes effect on the generator's next id. */
  public void set(long validUntilNanos, long issueUntilMillis) {
    this.validUntilNanos = validUntilNanos;
    this.issueUntilMillis = issueUntilMillis;
  }

  public void validUntilNanos(long nanos) {
    this.validUntilNanos = nanos;
  }

  public void issueUntilMillis(long millis) {
    this.issueUntilMillis = millis;
  }
}
