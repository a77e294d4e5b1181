package io.shardmap.client.internal;

import java.sql.SQLException;

/**
 * A failure after which the work provably did not take effect (nothing was committed: a connection lost
 * before COMMIT or before a cross-shard transaction's commit point, a pool replaced before borrowing), so the
 * SDK may run it again. Used by {@code ShardmapData}'s single-shard calls and by the cross-shard
 * {@code TxnCoordinator}; it never reaches the caller: when no attempt is left, {@link #original()} is
 * thrown instead. Not API.
 */
public final class NotRunException extends SQLException {
  public NotRunException(SQLException original) {
    super(original.getMessage(), original.getSQLState(), original);
  }

  /** The failure itself, as the caller gets it once the attempts are used up. */
  public SQLException original() {
    return (SQLException) getCause();
  }

  /** No stack trace of its own: it never reaches the caller, and its cause carries the one that matters. */
  @Override
  public synchronized Throwable fillInStackTrace() {
    return this;
  }
}
