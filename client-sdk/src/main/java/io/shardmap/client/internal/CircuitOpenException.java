package io.shardmap.client.internal;

import java.sql.SQLTransientConnectionException;

/**
 * A call refused by the circuit breaker of a shard endpoint: the endpoint failed (lost connections, no
 * connection within the timeout, or calls slower than the slow-call threshold) on enough of its recent calls
 * that calls to it now fail at once, without borrowing a connection, until a probe finds it back (see
 * {@code DataOptions.breakerOpenDuration}). Nothing ran on any shard for the refused call, so it is safe to
 * run again. SQLSTATE {@value #SQLSTATE} ("client unable to establish connection"), so code that treats
 * connection-class failures as retryable does so here too.
 *
 * <p>Thrown to the caller of a single-key call at once, without the SDK's reruns, as long as the key still
 * routes to the same shard endpoints; when the map changed them (a failover), the call is run again on the new
 * endpoints, whose breakers start closed.
 */
public final class CircuitOpenException extends SQLTransientConnectionException {
  private static final long serialVersionUID = 1L;

  /** The SQLSTATE of every refusal: 08001, sqlclient_unable_to_establish_sqlconnection. */
  public static final String SQLSTATE = "08001";

  private final String shard;
  private final String endpoint;
  /** The pool set whose breaker refused; identity only (the same endpoints still in the map?). */
  private final transient Object origin;

  /**
   * @param shard the shard's name
   * @param endpoint the endpoint refused, {@code host:port/database}
   * @param message the whole message (see {@link ShardPools.ShardPool})
   * @param origin the pools the breaker belongs to, compared by identity in {@link #isFrom}
   */
  public CircuitOpenException(String shard, String endpoint, String message, Object origin) {
    super(message, SQLSTATE);
    this.shard = shard;
    this.endpoint = endpoint;
    this.origin = origin;
  }

  /** The shard whose endpoint refused the call. */
  public String shard() {
    return shard;
  }

  /** The endpoint refused, {@code host:port/database}. */
  public String endpoint() {
    return endpoint;
  }

  /** True when {@code pools} is the very pool set whose breaker refused (the shard's endpoints did not change). */
  public boolean isFrom(Object pools) {
    return pools != null && pools == origin;
  }

  /**
   * No stack trace: an open breaker refuses thousands of calls a second, and filling a trace for each (the
   * refusal happens in one place, which the message names) costs allocation and garbage-collection pauses
   * that the calls to healthy shards would feel.
   */
  @Override
  public synchronized Throwable fillInStackTrace() {
    return this;
  }
}
