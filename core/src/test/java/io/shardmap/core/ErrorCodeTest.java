package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class ErrorCodeTest {

  /** code, grpc code, retry idempotent, provably not executed, retry non-idempotent. */
  private static final Object[][] TABLE = {
      {ErrorCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", false, true, false},
      {ErrorCode.NOT_FOUND, "NOT_FOUND", false, true, false},
      {ErrorCode.ALREADY_EXISTS, "ALREADY_EXISTS", false, true, false},
      {ErrorCode.FAILED_PRECONDITION, "FAILED_PRECONDITION", false, true, false},
      {ErrorCode.STALE_EPOCH, "FAILED_PRECONDITION", true, true, true},
      {ErrorCode.ABORTED, "ABORTED", true, true, true},
      {ErrorCode.UNAVAILABLE, "UNAVAILABLE", true, false, false},
      {ErrorCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", true, false, false},
      {ErrorCode.INTERNAL, "INTERNAL", false, false, false},
  };

  @Test
  void retryRules() {
    assertEquals(ErrorCode.values().length, TABLE.length, "every code has an expected retry rule in this test");
    for (Object[] row : TABLE) {
      ErrorCode c = (ErrorCode) row[0];
      assertEquals(row[1], c.grpcCode(), c + " gRPC code");
      assertEquals(row[2], c.retryableForIdempotent(), c + " retryable for idempotent calls");
      assertEquals(row[3], c.provablyNotExecuted(), c + " provably not executed");
      assertEquals(row[4], c.retryableForNonIdempotent(), c + " retryable for non-idempotent calls");
      // A call may only be retried non-idempotently if it is retryable at all and provably did nothing.
      assertEquals(c.retryableForIdempotent() && c.provablyNotExecuted(), c.retryableForNonIdempotent(), c.name());
    }
  }

  @Test
  void grpcCodesAreRealStatusCodeNames() {
    java.util.Set<String> grpc = java.util.Set.of("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED");
    for (ErrorCode c : ErrorCode.values()) {
      assertEquals(true, grpc.contains(c.grpcCode()), c + " travels as unknown gRPC code " + c.grpcCode());
    }
  }

  @Test
  void exceptionFactoriesSetCodeAndMessage() {
    ShardmapException e = ShardmapException.invalid("keys[2]", "must not be empty");
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertEquals("keys[2]: must not be empty", e.getMessage());
    assertEquals("INVALID_ARGUMENT: keys[2]: must not be empty", e.toString());
    assertEquals(ErrorCode.NOT_FOUND, ShardmapException.notFound("x").code());
    assertEquals(ErrorCode.FAILED_PRECONDITION, ShardmapException.precondition("x").code());
    RuntimeException cause = new RuntimeException("boom");
    assertEquals(cause, new ShardmapException(ErrorCode.UNAVAILABLE, "etcd", cause).getCause());
  }
}
