package io.shardmap.server.internal;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.StoreException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;

/** The one mapping from Shardmap and store failures to gRPC statuses. */
public final class Errors {
  private static final Logger log = Logger.getLogger(Errors.class.getName());

  private Errors() {}

  public static StatusRuntimeException toStatus(Throwable t) {
    Throwable e = unwrap(t);
    if (e instanceof StatusRuntimeException s) {
      return s;
    }
    if (e instanceof ShardmapException se) {
      return Status.fromCode(Status.Code.valueOf(se.code().grpcCode()))
          .withDescription(se.getMessage()).asRuntimeException();
    }
    if (e instanceof StoreException || e instanceof TimeoutException) {
      return toStatus(fromStore("etcd request", e));
    }
    log.log(Level.SEVERE, "unexpected failure", e);
    return Status.INTERNAL.withDescription("internal error: " + e).asRuntimeException();
  }

  /** A store failure (or a wait on one) as a ShardmapException with an operator-readable message. */
  public static ShardmapException fromStore(String what, Throwable t) {
    Throwable e = unwrap(t);
    if (e instanceof ShardmapException se) {
      return se;
    }
    if (e instanceof TimeoutException) {
      return new ShardmapException(ErrorCode.UNAVAILABLE, what + ": etcd did not answer in time "
          + "(no quorum or unreachable); a write may or may not have been applied", e);
    }
    if (e instanceof InterruptedException) {
      Thread.currentThread().interrupt();
      return new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted", e);
    }
    if (e instanceof StoreException s) {
      return switch (s.kind()) {
        case UNAVAILABLE, CLOSED -> new ShardmapException(ErrorCode.UNAVAILABLE, what + ": etcd unavailable ("
            + s.getMessage() + ")", s);
        case TOO_LARGE -> new ShardmapException(ErrorCode.INVALID_ARGUMENT, what
            + ": the change is too large for one etcd transaction (" + s.getMessage()
            + "); make it in smaller steps", s);
        case NOT_FOUND -> new ShardmapException(ErrorCode.NOT_FOUND, what + ": " + s.getMessage(), s);
        default -> new ShardmapException(ErrorCode.INTERNAL, what + ": " + s.getMessage(), s);
      };
    }
    return new ShardmapException(ErrorCode.INTERNAL, what + ": " + e, e);
  }

  private static Throwable unwrap(Throwable t) {
    Throwable e = t;
    while ((e instanceof ExecutionException || e instanceof CompletionException) && e.getCause() != null) {
      e = e.getCause();
    }
    return e;
  }
}
