package io.shardmap.client.internal.query;

import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.pool.HikariPool;
import io.shardmap.client.internal.Counters;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.RowSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.postgresql.core.BaseConnection;
import org.postgresql.core.TransactionState;

/**
 * One shard's part of one run of a query: its connection (from the shard's query pool), its READ ONLY
 * REPEATABLE READ transaction and its statement, streamed to the merge through {@link #source}; or, for a
 * bounded part ({@link #detach}), its rows read whole on the worker's thread, with the connection given back.
 * A worker thread opens it; afterwards only the query's consumer thread reads it, while any thread may
 * {@link #cancel} it. A connection whose statement was cancelled is evicted from the pool instead of
 * returned: PostgreSQL's cancel request is asynchronous, and a late one must never hit the statement of
 * the connection's next user.
 */
final class Part {
  final String shard;
  final Targets.ShardTarget target;
  private final long queryStart;
  private final Counters stats;

  // Set by the worker while opening, read by the consumer after the attempt saw it started.
  private HikariDataSource pool;
  private Connection connection;
  private PreparedStatement statement;
  private ResultSet rows;

  private boolean cancelRequested;
  private boolean opening;
  /** True while a thread is inside a JDBC call that makes PostgreSQL run the statement (execute, fetch). */
  private volatile boolean busy;
  private boolean cancelled;
  private boolean released;
  private volatile boolean exhausted;
  private volatile long rowCount;
  private volatile String error;
  private volatile long endNanos;

  Part(Targets.ShardTarget target, long queryStart, Counters stats) {
    this.shard = target.shard();
    this.target = target;
    this.queryStart = queryStart;
    this.stats = stats;
  }

  /**
   * Takes a connection from {@code from}, waiting at most the pool's connection timeout and never past
   * {@code deadlineNanos}; false when the part was cancelled or released meanwhile (the connection, on which
   * nothing ran, went straight back to the pool). From true until {@link #opened} or a failure, the part is
   * {@link #opening}.
   *
   * @throws ShardmapException DEADLINE_EXCEEDED when the deadline passed while waiting
   */
  boolean connect(HikariDataSource from, long deadlineNanos) throws SQLException {
    Connection c = acquire(from, deadlineNanos);
    synchronized (this) {
      if (!cancelRequested && !released) {
        pool = from;
        connection = c;
        opening = true;
        stats.partConnectionTaken(); // given back in release(), which every part of a run gets
        return true;
      }
    }
    c.close();
    return false;
  }

  /**
   * A connection of {@code ds} within its connection timeout and the deadline. The pool's own wait takes a
   * limit through {@link HikariPool#getConnection(long)} (a pool not started yet has none: its timeout then
   * applies), so a query never waits past its deadline for a connection, whichever thread opens the part.
   */
  private static Connection acquire(HikariDataSource ds, long deadlineNanos) throws SQLException {
    long left = TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime() + 999_999); // rounded up
    if (left <= 0) {
      throw new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "the deadline passed before the part had a connection");
    }
    if (!(ds.getHikariPoolMXBean() instanceof HikariPool p) || left >= ds.getConnectionTimeout()) {
      return ds.getConnection();
    }
    try {
      return p.getConnection(left);
    } catch (java.sql.SQLTransientConnectionException e) {
      // The wait was the deadline's (shorter than the pool's timeout): it ran out, not the pool.
      throw new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "the deadline passed while the part waited for a "
            + "connection of the shard's query pool (" + e.getMessage() + (e.getCause() == null ? "" : "; last "
            + "connection failure: " + e.getCause().getMessage()) + ")", e);
    }
  }

  /** True while a worker holds the part's connection and has not finished opening it. */
  synchronized boolean opening() {
    return opening;
  }

  /** The worker is done opening the part (started, failed or stopped). */
  synchronized void openingDone() {
    opening = false;
  }

  Connection connection() {
    return connection;
  }

  /** Prepares the part's statement; false when the part was cancelled meanwhile. */
  synchronized boolean prepare(String sql) throws SQLException {
    if (cancelRequested) {
      return false;
    }
    statement = connection.prepareStatement(sql, ResultSet.TYPE_FORWARD_ONLY, ResultSet.CONCUR_READ_ONLY);
    return true;
  }

  /**
   * Closes the statement of an attempt whose rows are not used, and ends its transaction when it left one
   * open ({@code rollback}), so that the part can be sent again on the same connection.
   */
  void discardStatement(boolean rollback) throws SQLException {
    PreparedStatement s;
    synchronized (this) {
      s = statement;
      statement = null;
    }
    if (s != null) {
      s.close();
    }
    if (rollback) {
      connection.rollback();
    }
  }

  PreparedStatement statement() {
    return statement;
  }

  private int columns;

  void opened(ResultSet rs) throws SQLException {
    this.rows = rs;
    this.columns = rs.getMetaData().getColumnCount();
  }

  ResultSet rows() {
    return rows;
  }

  synchronized boolean cancelRequested() {
    return cancelRequested;
  }

  /**
   * Runs the part's statements to the first rows of the last one (the worker's call), marked busy meanwhile;
   * true when the first result is a result set.
   */
  boolean execute() throws SQLException {
    busy = true;
    try {
      return statement.execute();
    } finally {
      busy = false;
    }
  }

  /**
   * Cancels the part's statement if a thread is running it (executing, or fetching the next rows: between
   * fetches PostgreSQL runs nothing for it) and keeps a worker from starting one. Safe from any thread,
   * repeatable (a cancel that reached PostgreSQL before the statement did is lost, so callers waiting for a
   * worker repeat it).
   */
  synchronized void cancel() {
    cancelRequested = true;
    if (statement != null && busy && !exhausted && !released) {
      if (!cancelled) {
        stats.partCancelled();
      }
      cancelled = true;
      try {
        statement.cancel();
      } catch (SQLException e) {
        // The connection is gone already: nothing of the statement is left to run.
      }
    }
  }

  /** Whether a cancel was sent to the part's statement. */
  synchronized boolean cancelSent() {
    return cancelled;
  }

  /** Records a failure (the first one counts). */
  void fail(String why) {
    if (error == null) {
      error = why;
    }
    end();
  }

  String error() {
    return error;
  }

  long rows0() {
    return rowCount;
  }

  long elapsedNanos() {
    long e = endNanos;
    return (e == 0 ? System.nanoTime() : e) - queryStart;
  }

  private void end() {
    if (endNanos == 0) {
      endNanos = System.nanoTime();
    }
  }

  /**
   * Ends the transaction and gives the connection back (evicts it when a cancel was sent, see the class
   * comment); cancels first when another thread is running the statement. Unread rows are simply dropped
   * (closing a suspended portal and rolling back cost one round trip). Idempotent; never throws.
   */
  void release() {
    HikariDataSource p;
    Connection c;
    synchronized (this) {
      if (released) {
        return;
      }
      cancel();
      released = true;
      p = pool;
      c = connection;
    }
    end();
    if (c == null) {
      return;
    }
    boolean evict;
    synchronized (this) {
      evict = cancelled;
    }
    giveBack(p, c, statement, evict);
  }

  /**
   * Closes the part's statement and result, ends its transaction and returns {@code c} to {@code p}, or
   * evicts it ({@code evict}, or when ending the transaction fails). Never throws.
   */
  private void giveBack(HikariDataSource p, Connection c, PreparedStatement s, boolean evict) {
    try {
      if (rows != null) {
        rows.close();
      }
      if (s != null) {
        s.close();
      }
    } catch (SQLException e) {
      // closing a statement of a broken or cancelled connection: the connection goes below
    }
    try {
      if (!evict) {
        endTransaction(c);
      }
    } catch (SQLException e) {
      evict = true;
    }
    try {
      if (evict) {
        p.evictConnection(c);
      } else {
        c.close();
      }
    } catch (SQLException | RuntimeException e) {
      // a broken connection, or the pool is closed (ShardmapData closing): nothing is left to give back
    }
    stats.partConnectionReleased();
  }

  /**
   * Ends the part's transaction if one is still open: a streamed part's (read only: rolling back ends it
   * exactly as a commit would), or a bounded part's whose round trip failed before its COMMIT. A bounded part
   * that succeeded ended it in its round trip, and costs nothing here.
   */
  private static void endTransaction(Connection c) throws SQLException {
    if (!c.getAutoCommit()) {
      c.rollback();
    } else if (c.unwrap(BaseConnection.class).getTransactionState() != TransactionState.IDLE) {
      try (Statement s = c.createStatement()) {
        s.execute("ROLLBACK");
      }
    }
  }

  /** A detached part's rows, read whole on the worker's thread; null for a part still on its connection. */
  private volatile List<Object[]> buffered;
  private int nextBuffered;

  /**
   * Reads a whole part's rows (at most one fetch, already in memory) on the worker's thread, and gives its
   * connection back at once: its transaction ended in its round trip, so nothing is left on the server for
   * it, and the connection serves other queries while this one's result is read. Afterwards {@link
   * #connection} is null and the merge reads the copy; release and cancel have nothing left to do.
   */
  void detach() throws SQLException {
    List<Object[]> out = new ArrayList<>();
    while (rows.next()) {
      out.add(currentRow());
    }
    HikariDataSource p;
    Connection c;
    PreparedStatement s;
    synchronized (this) {
      if (released || cancelRequested) {
        return; // release() gives the connection back
      }
      buffered = out;
      p = pool;
      c = connection;
      s = statement;
      connection = null;
      statement = null;
    }
    giveBack(p, c, s, false);
  }

  /** The values of the result's current row. */
  private Object[] currentRow() throws SQLException {
    Object[] row = new Object[columns];
    for (int i = 0; i < row.length; i++) {
      row[i] = rows.getObject(i + 1);
    }
    return row;
  }

  /** Whether the part's rows were read whole and its connection given back ({@link #detach}). */
  boolean detached() {
    return buffered != null;
  }

  /** The part's rows for the merge; ends (and reports) the part when read to the end or when it fails. */
  RowSource source(Execution owner) {
    return new RowSource() {
      @Override
      public Object[] next() throws SQLException {
        if (exhausted || released) {
          return null;
        }
        List<Object[]> b = buffered;
        if (b != null) {
          if (nextBuffered >= b.size()) {
            exhausted = true;
            end();
            return null;
          }
          rowCount++;
          Object[] row = b.get(nextBuffered);
          b.set(nextBuffered++, null); // the merge owns the row now
          return row;
        }
        try {
          boolean more;
          busy = true;
          try {
            more = rows.next();
          } finally {
            busy = false;
          }
          if (!more) {
            exhausted = true;
            end();
            return null;
          }
          Object[] row = currentRow();
          rowCount++;
          return row;
        } catch (SQLException e) {
          return owner.partFailedWhileReading(Part.this, e);
        }
      }

      @Override
      public void close() {
        release();
      }
    };
  }

  boolean exhausted() {
    return exhausted;
  }
}
