package io.shardmap.server.internal;

import io.shardmap.catalog.StoreErrors;
import java.time.Duration;
import java.util.concurrent.TimeoutException;
import java.util.logging.Logger;

/**
 * A background writer's run of etcd failures, logged once: the first fault of a run is a warning, the
 * following ones are silent, and the next success says what recovered and from what. Used by the
 * publishers that retry on their own schedule (client presence, load columns). Thread-safe for one writer
 * thread and any readers of {@link #failing}.
 */
final class EtcdFaultLog {
  private final Logger log;
  private final Duration requestTimeout;
  private final long retryMs;
  private volatile String failing;

  EtcdFaultLog(Logger log, Duration requestTimeout, long retryMs) {
    this.log = log;
    this.requestTimeout = requestTimeout;
    this.retryMs = retryMs;
  }

  /** The first fault of the run that is going on, or null while etcd answers. */
  String failing() {
    return failing;
  }

  void recovered(String what) {
    if (failing != null) {
      log.info(what + " again after: " + failing);
      failing = null;
    }
  }

  void fault(String what, Exception e) {
    Throwable cause = StoreErrors.unwrap(e);
    String message = what + " (" + (cause instanceof TimeoutException ? "no answer from etcd within "
        + requestTimeout.toMillis() + " ms" : cause.getMessage()) + ")";
    if (failing == null) {
      log.warning(message + "; retrying every " + retryMs + " ms, logged once");
      failing = message;
    }
  }
}
