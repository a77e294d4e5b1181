package io.shardmap.core.sql;

import java.sql.Connection;
import java.sql.SQLException;

/**
 * Runs a body in a transaction of its own on a connection in autocommit, and leaves the connection in
 * autocommit whatever happens: committed when the body returns, rolled back (with a rollback failure kept as
 * suppressed) when it throws. For the installers and epoch changes of this package, which must never join a
 * caller's open transaction.
 */
final class OwnTransaction {
  interface Body {
    void run() throws SQLException;
  }

  private OwnTransaction() {}

  static void run(Connection c, Body body) throws SQLException {
    if (!c.getAutoCommit()) {
      throw new IllegalStateException("this runs its own transaction: the connection must be in autocommit");
    }
    c.setAutoCommit(false);
    try {
      body.run();
      c.commit();
    } catch (SQLException | RuntimeException e) {
      try {
        c.rollback();
      } catch (SQLException r) {
        e.addSuppressed(r);
      }
      throw e;
    } finally {
      c.setAutoCommit(true);
    }
  }
}
