package io.shardmap.client.internal;

import io.shardmap.client.internal.ShardPools.ShardPool;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.function.Supplier;

/**
 * Learns whether a transaction on a Patroni shard committed when its connection broke inside COMMIT while the
 * primary itself stayed up (a dropped connection, a killed backend), so the SDK can answer the caller
 * instead of reporting an unknown outcome.
 *
 * <p>How: just before COMMIT the SDK asks the session for its transaction id and the server's start time
 * ({@code pg_current_xact_id_if_assigned()}, null when the transaction wrote nothing, and then the outcome
 * does not matter). If COMMIT then breaks, it asks the same primary, through the same pool, while the map
 * names no newer primary: {@code committed} answers the call, {@code aborted} runs it again, {@code in
 * progress} is asked again after a pause.
 *
 * <p>Only the same server instance is asked, never a primary after a failover nor the same server after a
 * restart: transaction ids are not unique across a failover. The promoted standby never saw the old
 * primary's local-only commit and hands the same id to its own next transaction, so {@code pg_xact_status}
 * there can say {@code committed} of somebody else's transaction; a clean-clone CI run lost an acknowledged
 * write exactly that way. Across a failover the outcome stays unknown, as without this class.
 */
public final class CommitOutcome {
  /** What the primary said of the transaction. */
  public enum Status { COMMITTED, ABORTED, UNKNOWN }

  private CommitOutcome() {}

  /**
   * The session's transaction id and its server's start time ({@code "xid@start"}), or null when the
   * transaction has none (wrote nothing).
   */
  public static String assignedId(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(
        "select pg_current_xact_id_if_assigned()::text, pg_postmaster_start_time()::text")) {
      rs.next();
      String xid = rs.getString(1);
      return xid == null ? null : xid + "@" + rs.getString(2);
    }
  }

  /**
   * Asks the primary that ran transaction {@code id} (from {@link #assignedId}) through {@code committedOn},
   * while {@code current} still gives that pool and the server was not restarted, until the answer is final;
   * UNKNOWN when the map names a newer primary, the server restarted, or the buffer's window passes.
   */
  public static Status resolve(String id, ShardPool committedOn, Supplier<ShardPool> current, FailoverBuffer buffer,
      SQLException failure) {
    int at = id.indexOf('@');
    String xid = id.substring(0, at);
    String started = id.substring(at + 1);
    FailoverBuffer.Wait wait = null;
    while (true) {
      if (current.get() != committedOn) {
        return Status.UNKNOWN; // a newer primary (or endpoints): its transaction ids are not ours to ask about
      }
      try (Connection c = committedOn.primary().getConnection();
          PreparedStatement ps = c.prepareStatement(
              "select pg_postmaster_start_time()::text, pg_is_in_recovery(), pg_xact_status(?::xid8)")) {
        ps.setString(1, xid);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          if (!started.equals(rs.getString(1)) || rs.getBoolean(2)) {
            return Status.UNKNOWN; // restarted (crashed, or demoted): no longer the instance that ran it
          }
          String status = rs.getString(3);
          if ("committed".equals(status)) {
            return Status.COMMITTED;
          }
          if ("aborted".equals(status)) {
            return Status.ABORTED;
          }
          // "in progress": the server still finishes it; asked again after a pause.
        }
      } catch (SQLException e) {
        // The primary cannot be reached now: wait as a buffered call does (a map change ends it above).
      }
      try {
        wait = buffer.await(wait, committedOn, current, failure);
      } catch (io.shardmap.core.ShardmapException windowPassed) {
        return Status.UNKNOWN;
      }
    }
  }
}
