package io.shardmap.core;

/**
 * Every failure Shardmap reports, each with the gRPC status code it travels as. Retry rules live with
 * the code: {@link #retryableForIdempotent()} is true for faults that did not change anything or whose
 * repetition is harmless for idempotent calls; non-idempotent calls retry only on codes that prove the
 * call did not run ({@link #provablyNotExecuted()}).
 */
public enum ErrorCode {
  /** A field breaks a rule; the message names the field and the rule. */
  INVALID_ARGUMENT("INVALID_ARGUMENT", false, true),
  /** A named keyspace, shard, range, entry or region does not exist. */
  NOT_FOUND("NOT_FOUND", false, true),
  /** The thing to create exists already. */
  ALREADY_EXISTS("ALREADY_EXISTS", false, true),
  /** The request is valid but the current state forbids it (e.g. removing a shard that owns data). */
  FAILED_PRECONDITION("FAILED_PRECONDITION", false, true),
  /** A routing decision used an epoch that has since changed: refresh that range and retry. */
  STALE_EPOCH("FAILED_PRECONDITION", true, true),
  /** Concurrent writers kept winning the compare-and-set; nothing was written. */
  ABORTED("ABORTED", true, true),
  /** The store (etcd quorum) or a server is unreachable; a write's outcome may be unknown. */
  UNAVAILABLE("UNAVAILABLE", true, false),
  /** A deadline passed; a write's outcome may be unknown. */
  DEADLINE_EXCEEDED("DEADLINE_EXCEEDED", true, false),
  /** A bug or an inconsistency in stored data. */
  INTERNAL("INTERNAL", false, false);

  private final String grpcCode;
  private final boolean retryableForIdempotent;
  private final boolean provablyNotExecuted;

  ErrorCode(String grpcCode, boolean retryableForIdempotent, boolean provablyNotExecuted) {
    this.grpcCode = grpcCode;
    this.retryableForIdempotent = retryableForIdempotent;
    this.provablyNotExecuted = provablyNotExecuted;
  }

  /** The name of the {@code io.grpc.Status.Code} this error travels as. */
  public String grpcCode() {
    return grpcCode;
  }

  public boolean retryableForIdempotent() {
    return retryableForIdempotent;
  }

  /** True when a failure with this code guarantees the request changed nothing. */
  public boolean provablyNotExecuted() {
    return provablyNotExecuted;
  }

  /** Whether a non-idempotent call may be retried after this error. */
  public boolean retryableForNonIdempotent() {
    return retryableForIdempotent && provablyNotExecuted;
  }
}
