package io.shardmap.client.internal;

import java.sql.SQLException;

/** What a PostgreSQL failure's SQLSTATE says about the statement that failed. Not API. */
public final class SqlStates {
  private SqlStates() {}

  /**
   * Connection-class SQLSTATEs ({@code 08xxx}) and the server ending the session (57P01 admin shutdown,
   * 57P02 crash shutdown, 57P03 cannot connect now, as after {@code pg_terminate_backend}): the session is
   * gone, so a statement sent on it has an unknown outcome, and an open transaction on it did not commit.
   */
  public static boolean isConnectionLoss(SQLException e) {
    String s = e.getSQLState();
    return s != null && (s.startsWith("08") || s.equals("57P01") || s.equals("57P02") || s.equals("57P03"));
  }
}
