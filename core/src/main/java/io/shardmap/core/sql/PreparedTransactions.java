package io.shardmap.core.sql;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * The participant side of a cross-shard transaction on one PostgreSQL shard: {@code PREPARE TRANSACTION},
 * {@code COMMIT PREPARED} / {@code ROLLBACK PREPARED}, and this cluster's prepared transactions in
 * {@code pg_prepared_xacts}. Used by the coordinator (the SDK) and by the resolver that finishes what a dead
 * coordinator left. Only gids that are {@link TxnId}s are ever sent, so nothing here can touch a prepared
 * transaction that is not Shardmap's; {@link #list} also leaves out other clusters' ({@link
 * TxnId#belongsTo}).
 *
 * <p>What PostgreSQL guarantees of a prepared transaction: it is durable (written to WAL before {@code
 * PREPARE TRANSACTION} returns), so it survives the end of its session and a crash or restart of the
 * server; until someone commits or rolls it back it keeps its row locks and pins the xmin horizon (vacuum
 * cannot remove rows that died after it began); any session of the same database may finish it, given the
 * role that prepared it or a superuser. Finishing it needs {@code max_prepared_transactions > 0} on the
 * server (a restart to change).
 *
 * <p>java.sql only; the caller owns every connection and its pool.
 */
public final class PreparedTransactions {

  /** What {@link #commitPrepared} or {@link #rollbackPrepared} found. */
  public enum Outcome {
    /** This call finished the transaction. */
    DONE,
    /**
     * No prepared transaction with this gid in this database: it was already finished (by whoever
     * committed or rolled it back first), or never prepared. Either way nothing was done; callers that
     * finish the same gid from several places rely on this being no error.
     */
    NOT_FOUND
  }

  /**
   * One prepared transaction of this cluster in one database.
   *
   * @param id its gid
   * @param prepared when {@code PREPARE TRANSACTION} ran (server clock)
   * @param age how long ago that was, by the server's clock at {@link #list} time (no client clock skew)
   * @param owner the role that prepared it (only it or a superuser may finish it)
   * @param database the database it was prepared in, where it must be finished
   */
  public record Prepared(TxnId id, Instant prepared, Duration age, String owner, String database) {}

  /** SQLSTATE object_not_in_prerequisite_state: what PREPARE raises when max_prepared_transactions is 0. */
  private static final String OBJECT_NOT_IN_PREREQUISITE_STATE = "55000";
  /** SQLSTATE duplicate_object: the gid is in use by another prepared transaction of the server. */
  private static final String DUPLICATE_OBJECT = "42710";
  /** SQLSTATE undefined_object: COMMIT/ROLLBACK PREPARED of a gid that is not prepared. */
  private static final String UNDEFINED_OBJECT = "42704";
  /** SQLSTATE in_failed_sql_transaction: the transaction to prepare had already failed. */
  private static final String IN_FAILED_SQL_TRANSACTION = "25P02";
  /** SQLSTATE out_of_memory: PREPARE when all max_prepared_transactions slots are taken. */
  private static final String OUT_OF_MEMORY = "53200";
  /** SQLSTATE feature_not_supported: COMMIT/ROLLBACK PREPARED from another database than the prepare's. */
  private static final String FEATURE_NOT_SUPPORTED = "0A000";

  private static final String LIST_SQL = "SELECT gid, prepared, extract(epoch FROM clock_timestamp() - prepared),"
      + " owner, database FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE ? ESCAPE '\\'"
      + " ORDER BY prepared, gid";

  private PreparedTransactions() {}

  /**
   * Prepares the transaction open on {@code c} as {@code id}: once this returns, its effects are durable on
   * the server but invisible to others, and they become visible only through {@link #commitPrepared}. The
   * session is then no longer in that transaction (the next statement on {@code c} starts a new one; the
   * caller must not {@code commit} or {@code rollback} it). When PostgreSQL refuses the PREPARE (every
   * exception below but a lost connection) nothing stays prepared: PostgreSQL rolls the transaction back,
   * and this method rolls back the session before throwing. When the connection is lost (SQLSTATE class
   * {@code 08}, or a failure after the PREPARE returned), whether it was prepared is unknown: the coordinator
   * must then decide to abort, which is safe either way ({@link #rollbackPrepared} of a gid that is not
   * prepared answers NOT_FOUND), and leave what it cannot reach to the resolver.
   *
   * <p>One round trip, like a plain commit: {@code SELECT 1; PREPARE TRANSACTION '<gid>'} sent together. The
   * {@code SELECT 1} is there because PostgreSQL answers {@code PREPARE TRANSACTION} in a transaction that an
   * earlier statement made fail with a plain {@code ROLLBACK} and no error; without it, a work that caught
   * its own SQL error would count as prepared, and a decision to commit would lose its writes on this shard.
   * In a failed transaction the {@code SELECT} raises instead (SQLSTATE 25P02) and the {@code PREPARE} is
   * not run.
   *
   * @param shard the shard's name, for error messages
   * @throws IllegalStateException if {@code c} is in autocommit (there is no transaction to prepare); nothing
   *     is sent
   * @throws ShardmapException FAILED_PRECONDITION if the server has prepared transactions disabled ({@code
   *     max_prepared_transactions = 0}) or all its slots are taken; ALREADY_EXISTS if the gid is in use on the
   *     server; ABORTED if the transaction had already failed (it is rolled back)
   * @throws SQLException any other failure, as PostgreSQL reported it
   */
  public static void prepare(Connection c, TxnId id, String shard) throws SQLException {
    if (c.getAutoCommit()) {
      throw new IllegalStateException("shard " + shard + ": cannot prepare transaction " + id
          + " on a connection in autocommit mode; there is no open transaction (setAutoCommit(false) first)");
    }
    try (Statement s = c.createStatement()) {
      // Statements after a failing one up to the end of the batch are skipped: no PREPARE after the SELECT
      // failed. Both results are consumed before execute returns.
      s.execute("SELECT 1; PREPARE TRANSACTION " + quote(id.toString()));
    } catch (SQLException e) {
      rollbackAfter(c, e);
      throw translatePrepareError(e, id, shard);
    }
  }

  /**
   * Commits the prepared transaction {@code id} on {@code c}, which must be in autocommit mode ({@code COMMIT
   * PREPARED} cannot run in a transaction block) and connected to the database it was prepared in. Durable
   * once it returns {@link Outcome#DONE}.
   *
   * @return DONE, or NOT_FOUND if no transaction {@code id} is prepared in this database (already finished)
   * @throws IllegalStateException if {@code c} is not in autocommit mode; nothing is sent
   * @throws ShardmapException FAILED_PRECONDITION if it was prepared in another database of the server
   * @throws SQLException any other failure (a transaction another session is finishing right now is
   *     reported "busy", SQLSTATE 55000; a role that may not finish it, 42501), as PostgreSQL reported it
   */
  public static Outcome commitPrepared(Connection c, TxnId id) throws SQLException {
    return finish(c, id, "COMMIT PREPARED ");
  }

  /**
   * Rolls back the prepared transaction {@code id}; as {@link #commitPrepared}, and its locks are released.
   *
   * @return DONE, or NOT_FOUND if no transaction {@code id} is prepared in this database (already finished)
   */
  public static Outcome rollbackPrepared(Connection c, TxnId id) throws SQLException {
    return finish(c, id, "ROLLBACK PREPARED ");
  }

  private static Outcome finish(Connection c, TxnId id, String command) throws SQLException {
    if (!c.getAutoCommit()) {
      throw new IllegalStateException(command.strip() + " " + id + " needs a connection in autocommit mode: it "
          + "cannot run inside a transaction block");
    }
    try (Statement s = c.createStatement()) {
      s.execute(command + quote(id.toString()));
      return Outcome.DONE;
    } catch (SQLException e) {
      if (UNDEFINED_OBJECT.equals(e.getSQLState())) {
        return Outcome.NOT_FOUND;
      }
      if (FEATURE_NOT_SUPPORTED.equals(e.getSQLState())) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, command.strip() + " " + id + ": it was "
            + "prepared in another database of this server than " + c.getCatalog() + "; it must be finished "
            + "from a connection to that database (" + e.getMessage() + ")", e);
      }
      throw e;
    }
  }

  /**
   * The prepared transactions of cluster {@code namespace} in {@code c}'s database, oldest first. Those of
   * other databases on the same server are not listed (they can only be finished from their own database),
   * nor any whose gid is not a {@link TxnId} of this namespace. The oldest's {@link Prepared#age} is what a
   * metric of the oldest prepared transaction reports. Runs one query; in autocommit it is its own
   * transaction, else it joins the caller's.
   *
   * @throws ShardmapException INVALID_ARGUMENT if {@code namespace} is not a namespace ({@link TxnId})
   */
  public static List<Prepared> list(Connection c, String namespace) throws SQLException {
    // A bad namespace would match nothing and silently hide everything: refused.
    String pattern = TxnId.likePattern(TxnId.requireNamespace(namespace));
    List<Prepared> out = new ArrayList<>();
    try (PreparedStatement ps = c.prepareStatement(LIST_SQL)) {
      ps.setString(1, pattern);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          String gid = rs.getString(1);
          if (!TxnId.belongsTo(gid, namespace)) {
            continue; // LIKE is only a pre-filter: the gid must parse, and be of this namespace
          }
          Instant prepared = rs.getTimestamp(2).toInstant();
          Duration age = Duration.ofNanos(Math.max(0L, rs.getBigDecimal(3).movePointRight(9).longValue()));
          out.add(new Prepared(TxnId.parse(gid), prepared, age, rs.getString(4), rs.getString(5)));
        }
      }
    }
    return out;
  }

  /**
   * The server's {@code max_prepared_transactions}: 0 means {@link #prepare} will fail. A coordinator asks
   * once per shard before its first cross-shard transaction there, so that it fails before doing any work.
   */
  public static int maxPreparedTransactions(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW max_prepared_transactions")) {
      rs.next();
      return Integer.parseInt(rs.getString(1));
    }
  }

  /**
   * The error a coordinator gives when {@link #maxPreparedTransactions} is 0 on {@code shard}: FAILED_PRECONDITION
   * naming the setting and the fix.
   */
  public static ShardmapException disabledError(String shard) {
    return new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard " + shard + " has prepared transactions "
        + "disabled (max_prepared_transactions = 0), which cross-shard transactions need: set "
        + "max_prepared_transactions > 0 (at least the number of cross-shard transactions in flight on the "
        + "shard, e.g. max_connections) in its postgresql.conf and restart PostgreSQL");
  }

  /** The error to throw for a failed PREPARE: ours when PostgreSQL's has a known cause, else its own. */
  private static SQLException translatePrepareError(SQLException e, TxnId id, String shard) {
    String state = e.getSQLState();
    if (OBJECT_NOT_IN_PREREQUISITE_STATE.equals(state)) {
      ShardmapException error = disabledError(shard);
      error.initCause(e);
      throw error;
    }
    if (IN_FAILED_SQL_TRANSACTION.equals(state)) {
      throw new ShardmapException(ErrorCode.ABORTED, "shard " + shard + ": transaction " + id + " was not "
          + "prepared: it had already failed (an earlier statement in it raised an error), so it was rolled "
          + "back; none of its writes took effect on this shard", e);
    }
    if (OUT_OF_MEMORY.equals(state)) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard " + shard + ": every slot of "
          + "max_prepared_transactions holds a prepared transaction, so " + id + " could not be prepared "
          + "(rolled back); raise max_prepared_transactions (a restart) or finish the in-doubt ones ("
          + e.getMessage() + ")", e);
    }
    if (DUPLICATE_OBJECT.equals(state)) {
      throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "shard " + shard + ": a transaction prepared as "
          + id + " already exists on this server; this one was rolled back (gids must be unique: use a new "
          + "TxnId per transaction)", e);
    }
    return e;
  }

  /** Leaves {@code c} out of any transaction after {@code failure}; a failure of that is added to it. */
  private static void rollbackAfter(Connection c, SQLException failure) {
    try {
      if (!c.isClosed()) {
        c.rollback();
      }
    } catch (SQLException e) {
      failure.addSuppressed(e);
    }
  }

  /** A SQL string literal. The gid is a TxnId (no quote can occur in it); doubling quotes costs nothing. */
  static String quote(String s) {
    return "'" + s.replace("'", "''") + "'";
  }
}
