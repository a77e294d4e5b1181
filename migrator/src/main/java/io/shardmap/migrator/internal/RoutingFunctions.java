package io.shardmap.migrator.internal;

import io.shardmap.core.sql.SqlRouting;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

/**
 * Installs {@link SqlRouting}'s functions (core holds their text) in schema {@code shardmap} of a shard, so
 * that change capture, copy, verification and the fence can decide inside PostgreSQL whether a row's key
 * belongs to a hash bucket or a ring arc (docs/migrator-design.md, "Routing in SQL").
 */
public final class RoutingFunctions {
  private RoutingFunctions() {}

  /**
   * Installs the functions on a shard (an autocommit connection) unless this version is there already.
   * Concurrent installers take turns (two {@code CREATE OR REPLACE} of one function at once fail with
   * "tuple concurrently updated"); see {@link RangeTableMove#serialized}.
   */
  public static void install(Connection c) throws SQLException {
    if (installed(c)) {
      return;
    }
    Fences.ensureSchema(c);
    RangeTableMove.serialized(c, "routing." + SqlRouting.VERSION, () -> {
      if (!installed(c)) {
        RangeTableMove.inTransaction(c, s -> {
          for (String ddl : SqlRouting.ddl()) {
            s.execute(ddl);
          }
        });
      }
      return null;
    });
  }

  private static boolean installed(Connection c) throws SQLException {
    // The last function created: if it exists, the transaction that created all of them committed.
    try (PreparedStatement ps = c.prepareStatement("SELECT to_regprocedure('shardmap.hash_" + SqlRouting.VERSION
        + "(bytea)') IS NOT NULL AND to_regprocedure('shardmap.hash_int8_" + SqlRouting.VERSION + "(bigint)') IS NOT NULL");
         ResultSet rs = ps.executeQuery()) {
      rs.next();
      return rs.getBoolean(1);
    }
  }
}
