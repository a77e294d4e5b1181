package io.shardmap.client.internal;

import io.shardmap.client.internal.ShardPools.ShardPool;
import java.sql.SQLException;

/**
 * COMMIT of a transaction with id {@link #xid()} broke on {@link #pool()}'s primary: the outcome is not known
 * yet ({@link CommitOutcome} finds it). Carries the work's result, which is the call's answer if the
 * transaction turns out committed. Never reaches the caller: unresolved, {@link #original()} is thrown.
 * Not API.
 */
public final class CommitUnknownException extends SQLException {
  private final transient String xid;
  private final transient ShardPool pool;
  private final transient Object result;

  public CommitUnknownException(SQLException original, String xid, ShardPool pool, Object result) {
    super(original.getMessage(), original.getSQLState(), original);
    this.xid = xid;
    this.pool = pool;
    this.result = result;
  }

  public SQLException original() {
    return (SQLException) getCause();
  }

  public String xid() {
    return xid;
  }

  public ShardPool pool() {
    return pool;
  }

  public Object result() {
    return result;
  }
}
