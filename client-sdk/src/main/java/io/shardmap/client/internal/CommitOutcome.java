package io.shardmap.client.internal;

import io.shardmap.client.internal.ShardPools.ShardPool;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.function.Supplier;

/**
 * Learns whether a transaction on a Patroni shard committed when its connection broke inside COMMIT, so the
 * SDK can answer the caller instead of reporting an unknown outcome. Without this a failover leaves every
 * transaction that was waiting in COMMIT (with synchronous replication, most of a writer's time) unknown.
 *
 * <p>How: just before COMMIT the SDK asks the session for its transaction id
 * ({@code pg_current_xact_id_if_assigned()}, null when the transaction wrote nothing, and then the outcome
 * does not matter). If COMMIT then breaks, it asks the shard's primary as the map names it now
 * ({@code pg_xact_status}), and only while that server is a primary (not in recovery), until the answer is
 * final:
 *
 * <ul>
 *   <li>{@code committed}: the commit is durable on that primary (after a failover: it reached the
 *       synchronous standby that is now the primary). The call succeeded.
 *   <li>{@code aborted}, or (on a primary of a later term) an id "in the future": that primary never
 *       committed it; with synchronous replication an old primary's local-only commit is discarded when it
 *       rejoins (pg_rewind), so the transaction provably did not take effect and may run again.
 *   <li>{@code in progress}: the old primary still finishes it (the connection broke, the node did not):
 *       asked again after a pause.
 * </ul>
 *
 * <p>The questions are bounded by the same window as the failover buffer; when it passes the outcome stays
 * unknown and the caller gets the original failure, as before.
 */
public final class CommitOutcome {
  /** What the primary said of the transaction. */
  public enum Status { COMMITTED, ABORTED, UNKNOWN }

  private CommitOutcome() {}

  private static boolean inRecovery(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
      rs.next();
      return rs.getBoolean(1);
    }
  }

  /** The session's transaction id, or null when the transaction has none (wrote nothing). */
  public static String assignedId(Connection c) throws SQLException {
    try (Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("select pg_current_xact_id_if_assigned()::text")) {
      rs.next();
      return rs.getString(1);
    }
  }

  /**
   * Asks the current primary about transaction {@code xid} committed through {@code committedOn} until the
   * answer is final or the buffer's window passes.
   */
  public static Status resolve(String xid, ShardPool committedOn, Supplier<ShardPool> current, FailoverBuffer buffer,
      SQLException failure) {
    FailoverBuffer.Wait wait = null;
    while (true) {
      ShardPool now = current.get();
      if (now != null) {
        try (Connection c = now.primary().getConnection()) {
          // Only a primary's answer counts. The crashed old primary, restarted by Patroni as a standby, still
          // has its own local-only commits in its WAL and would say "committed" of a transaction the new
          // primary never received (it is discarded when the old node rejoins): an acknowledged write lost.
          // A standby the map already names, still being promoted, answers once its promotion is done.
          if (inRecovery(c)) {
            throw new SQLException("not a primary yet", "25006");
          }
          try (PreparedStatement ps = c.prepareStatement("select pg_xact_status(?::xid8)")) {
            ps.setString(1, xid);
            try (ResultSet rs = ps.executeQuery()) {
              rs.next();
              String status = rs.getString(1);
              if ("committed".equals(status)) {
                return Status.COMMITTED;
              }
              if ("aborted".equals(status)) {
                return Status.ABORTED;
              }
              // "in progress" (the old primary still finishes it), or null (too old to know: not a case that
              // can arise within the window): ask again after a pause.
            }
          }
        } catch (SQLException e) {
          if ("22023".equals(e.getSQLState()) && now != committedOn && now.primaryTerm() > committedOn.primaryTerm()) {
            return Status.ABORTED; // "in the future" on a later primary: it never saw this transaction
          }
          // No primary to ask yet (gone, restarted as a standby, not promoted): wait as a buffered call does.
        }
      }
      try {
        wait = buffer.await(wait, now == null ? committedOn : now, current, failure);
      } catch (io.shardmap.core.ShardmapException windowPassed) {
        return Status.UNKNOWN;
      }
    }
  }
}
