package io.shardmap.client.internal.txn;

import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.SQLException;
import org.postgresql.core.BaseConnection;
import org.postgresql.core.TransactionState;

/**
 * One shard of a cross-shard transaction: its pooled connection, in a transaction from the first statement
 * of the work to the coordinator's end of it, and the guarded view of it the work uses.
 */
public final class Participant {
  /** What the work did with the connection, as its guard saw it. Written by the work's thread only. */
  static final class Marks {
    /** A statement was executed (so an idle driver means the work ended the transaction itself). */
    boolean used;
    /** A statement that surely writes ran: no need to ask the server whether this participant wrote. */
    boolean wrote;
    /** The refused call, when the work tried to end the transaction itself. */
    String refused;
    /**
     * The lock_timeout (ms) the transaction's statements must run under from now on, 0 for none; sent as
     * SET LOCAL just before the next statement the work executes here ({@link #lockTimeoutSet}).
     */
    long lockTimeoutMs;
    boolean lockTimeoutSet;
    /**
     * The reference epochs the transaction declares here ({@code ReferenceGuard.declaration}), null for none;
     * sent with the next statement the work executes here, in the same round trip as the lock timeout, when
     * {@link #declarationSent} is false.
     */
    String declaration;
    boolean declarationSent;
    /** The coordinator has ended the transaction: the connection is no longer the work's. */
    volatile boolean ended;
  }

  private final String shard;
  private final HikariDataSource source;
  final Connection raw;
  final Marks marks = new Marks();
  private final GuardedConnection guard;

  private Participant(String shard, HikariDataSource source, Connection raw) {
    this.shard = shard;
    this.source = source;
    this.raw = raw;
    this.guard = new GuardedConnection(raw, shard, marks);
  }

  /**
   * Takes a connection of {@code source} (the shard's primary pool) for a new participant, its transaction
   * begun with the first statement sent.
   */
  public static Participant open(String shard, HikariDataSource source) throws SQLException {
    Connection c = source.getConnection();
    try {
      c.setAutoCommit(false);
    } catch (SQLException | RuntimeException e) {
      c.close();
      throw e;
    }
    return new Participant(shard, source, c);
  }

  /**
   * Bounds every lock wait of this participant's later statements by {@code ms} (SET LOCAL lock_timeout, sent
   * with the next statement the work runs here, so a participant that runs none pays nothing).
   */
  public void requireLockTimeout(long ms) {
    marks.lockTimeoutMs = ms;
  }

  /**
   * Declares, for the rest of this participant's transaction, the reference epochs of
   * {@code ReferenceGuard.declaration} value {@code declaration} (replacing an earlier one): sent with the
   * next statement the work runs here, so declaring costs no round trip of its own.
   */
  public void declareReferences(String declaration) {
    marks.declaration = declaration;
    marks.declarationSent = false;
  }

  public String shard() {
    return shard;
  }

  /** The connection the work uses: ending its transaction is refused ({@link GuardedConnection}). */
  public Connection connection() {
    return guard.proxy;
  }

  /** The pooled connection itself, for the SDK's own statements (a route declaration). */
  public Connection raw() {
    return raw;
  }

  HikariDataSource source() {
    return source;
  }

  /** The driver's view of the session's transaction, known without a round trip. */
  TransactionState state() throws SQLException {
    return raw.unwrap(BaseConnection.class).getTransactionState();
  }

  /** Gives the connection back to its pool; the work's view of it refuses everything from now on. */
  void release() {
    marks.ended = true;
    try {
      raw.close();
    } catch (SQLException e) {
      // A connection that cannot be closed cleanly is evicted by the pool; nothing to undo.
    }
  }
}
