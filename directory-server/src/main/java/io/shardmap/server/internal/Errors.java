package io.shardmap.server.internal;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.catalog.StoreErrors;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.StoreException;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;

/** The one mapping from Shardmap and store failures to gRPC statuses (store failures via catalog StoreErrors). */
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
      return toStatus(StoreErrors.fromStore("etcd request", e));
    }
    log.log(Level.SEVERE, "unexpected failure", e);
    return Status.INTERNAL.withDescription("internal error: " + e).asRuntimeException();
  }

  private static Throwable unwrap(Throwable t) {
    return StoreErrors.unwrap(t);
  }
}
