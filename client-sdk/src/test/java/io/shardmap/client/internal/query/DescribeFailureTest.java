package io.shardmap.client.internal.query;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** How a part's failure is worded in the query's error. */
@Tag("unit")
class DescribeFailureTest {
  @Test
  void aPoolTimeoutNamesTheLastConnectionFailure() {
    // What HikariCP throws when logins keep failing: the timeout, with the server's refusal as its cause.
    SQLException login = new SQLException("FATAL: password authentication failed for user \"app\"", "28P01");
    SQLTransientConnectionException timeout = new SQLTransientConnectionException(
        "s2-query - Connection is not available, request timed out after 5000ms (total=0, active=0, idle=0, waiting=0)",
        "08001", login);
    assertEquals("s2: s2-query - Connection is not available, request timed out after 5000ms (total=0, active=0, "
        + "idle=0, waiting=0) (last connection failure: FATAL: password authentication failed for user \"app\")",
        QueryExecutor.describe("s2", timeout));
  }

  @Test
  void otherFailuresAreTheirOwnMessage() {
    assertEquals("s1: ERROR: division by zero",
        QueryExecutor.describe("s1", new SQLException("ERROR: division by zero", "22012")));
  }
}
