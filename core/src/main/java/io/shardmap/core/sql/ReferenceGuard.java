package io.shardmap.core.sql;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The database side of reference tables (docs/reference-tables.md): on every shard that holds a copy of a
 * reference table, a statement trigger refuses every INSERT, UPDATE, DELETE and TRUNCATE of the copy unless
 * the transaction declared the table's current <em>reference epoch</em> for that shard, which only the SDK's
 * coordinated write (every copy in one cross-shard transaction) does, or the migrator's copy and repair
 * bypass it for their own transaction.
 *
 * <p>The epoch is the version of the table's set of copies: it is raised on every copy whenever a copy is
 * added or removed. Why that makes writes reach every copy: each guarded statement takes a share lock on
 * the table's epoch row ({@code shardmap.reference_tables}) until its transaction ends (a prepared one keeps
 * it until COMMIT/ROLLBACK PREPARED), and {@link #raise} updates that row, so it waits for every transaction
 * that wrote the copy under the old epoch. Once the epoch is raised on every old copy, no transaction that
 * knew only the old set of copies can commit a write anywhere: it is refused ({@link #STALE_SQLSTATE}, the
 * message carrying {@code reference_epoch=E}) and must re-read the copies and write them all again.
 *
 * <p>A write refused because it declared nothing (psql on one copy) fails with {@link #UNDECLARED_SQLSTATE},
 * naming the table and the ways to write it. The guard is a trigger: a superuser who disables triggers
 * ({@code session_replication_role = replica}) is not stopped; ordinary roles are.
 */
public final class ReferenceGuard {
  /** A write declared an epoch the copy no longer has: the set of copies changed; re-read it and rerun. */
  public static final String STALE_SQLSTATE = "SMR01";
  /** A write declared no epoch for the table at all (not through Shardmap): never retried. */
  public static final String UNDECLARED_SQLSTATE = "SMR02";
  /**
   * Declaration setting (transaction-local): the epochs the transaction writes under, as
   * {@code ,schema.table=E,schema.table=E,} ({@link #declaration}).
   */
  public static final String EPOCHS_SETTING = "shardmap.reference_epochs";
  /** Bypass setting: the migrator's copy/repair transaction sets it to its own {@code txid_current()}. */
  public static final String BYPASS_SETTING = "shardmap.reference_bypass";
  /** The trigger's name on every guarded copy. */
  public static final String TRIGGER = "shardmap_reference_guard";

  private static final Pattern EPOCH = Pattern.compile("reference_epoch=(\\d+)");
  private static final String LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('shardmap.ddl.schema', 0))";

  private ReferenceGuard() {}

  /** The schema, table and function shared by every guarded copy of the database; each may run again. */
  public static List<String> ddl() {
    return List.of(
        "CREATE SCHEMA IF NOT EXISTS shardmap",
        "GRANT USAGE ON SCHEMA shardmap TO PUBLIC",
        "CREATE TABLE IF NOT EXISTS shardmap.reference_tables (tbl text PRIMARY KEY, "
            + "epoch bigint NOT NULL CHECK (epoch > 0))",
        "GRANT SELECT ON shardmap.reference_tables TO PUBLIC",
        // SECURITY DEFINER: the share lock needs a privilege writers of the copy do not have on the epochs.
        "CREATE OR REPLACE FUNCTION shardmap.reference_guard() RETURNS trigger LANGUAGE plpgsql "
            + "SECURITY DEFINER SET search_path = pg_catalog AS $g$\n"
            + "DECLARE e bigint; d text;\n"
            + "BEGIN\n"
            + "  SELECT r.epoch INTO e FROM shardmap.reference_tables r WHERE r.tbl = TG_ARGV[0] FOR SHARE;\n"
            + "  IF current_setting('" + BYPASS_SETTING + "', true) = txid_current()::text THEN RETURN NULL; END IF;\n"
            + "  d := coalesce(current_setting('" + EPOCHS_SETTING + "', true), '');\n"
            + "  IF e IS NOT NULL AND strpos(d, ',' || TG_ARGV[0] || '=' || e || ',') > 0 THEN RETURN NULL; END IF;\n"
            + "  IF strpos(d, ',' || TG_ARGV[0] || '=') > 0 THEN\n"
            + "    RAISE EXCEPTION USING ERRCODE = '" + STALE_SQLSTATE + "', MESSAGE = 'shardmap: the copies of "
            + "reference table ' || TG_ARGV[0] || ' changed (reference_epoch=' || coalesce(e, 0) || ' on this "
            + "shard); re-read its copies and write every one again';\n"
            + "  END IF;\n"
            + "  RAISE EXCEPTION USING ERRCODE = '" + UNDECLARED_SQLSTATE + "', MESSAGE = 'shardmap: ' || "
            + "TG_ARGV[0] || ' is a reference table, copied on every shard of its keyspaces; a write to one "
            + "copy is refused. Write it through the Shardmap SDK (ShardmapData.writeReference, or "
            + "CrossShardTransaction.referenceCopies), which changes every copy in one transaction; mend a "
            + "copy with shardmap-migrator reference repair';\n"
            + "END $g$");
  }

  /**
   * Guards the copy {@code table} (canonical name, {@link #canonicalName}) at {@code epoch}, in one
   * transaction on {@code c} (which must be in autocommit), serialized with every installer of schema
   * {@code shardmap} (the advisory lock {@link DecisionRows#install} and the migrator hold). Installing
   * again sets the epoch to at least {@code epoch} (never lower) and keeps the one trigger.
   */
  public static void install(Connection c, String table, long epoch) throws SQLException {
    requireEpoch(epoch);
    OwnTransaction.run(c, () -> {
      try (Statement s = c.createStatement()) {
        s.execute(LOCK);
        for (String ddl : ddl()) {
          s.execute(ddl);
        }
      }
      upsert(c, table, epoch);
      try (Statement s = c.createStatement()) {
        s.execute("DROP TRIGGER IF EXISTS " + TRIGGER + " ON " + table);
        s.execute("CREATE TRIGGER " + TRIGGER + " BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + table
            + " FOR EACH STATEMENT EXECUTE FUNCTION shardmap.reference_guard(" + literal(table) + ")");
      }
    });
  }

  /**
   * Raises the epoch of the copy {@code table} on {@code c} to {@code epoch} (never lowers it) and returns the
   * epoch it has now, in one transaction on {@code c} (autocommit). Waits for every transaction that wrote
   * the copy under an older epoch (bounded by the session's {@code lock_timeout}); once it returns, none can
   * commit a write declared with an older epoch.
   *
   * @throws ShardmapException NOT_FOUND when the copy is not guarded on this database
   */
  public static long raise(Connection c, String table, long epoch) throws SQLException {
    requireEpoch(epoch);
    long[] now = new long[1];
    OwnTransaction.run(c, () -> {
      try (PreparedStatement p = c.prepareStatement("UPDATE shardmap.reference_tables SET epoch = greatest(epoch, ?) "
          + "WHERE tbl = ? RETURNING epoch")) {
        p.setLong(1, epoch);
        p.setString(2, table);
        try (ResultSet rs = p.executeQuery()) {
          if (!rs.next()) {
            throw new ShardmapException(ErrorCode.NOT_FOUND, "table: " + table + " is not a guarded reference copy "
                + "on this database");
          }
          now[0] = rs.getLong(1);
        }
      }
    });
    return now[0];
  }

  /** The epoch of the guarded copy {@code table} on {@code c}, or empty when it is not guarded there. */
  public static OptionalLong epoch(Connection c, String table) throws SQLException {
    try (PreparedStatement p = c.prepareStatement("SELECT epoch FROM shardmap.reference_tables WHERE tbl = ?")) {
      p.setString(1, table);
      try (ResultSet rs = p.executeQuery()) {
        return rs.next() ? OptionalLong.of(rs.getLong(1)) : OptionalLong.empty();
      }
    } catch (SQLException e) {
      if ("42P01".equals(e.getSQLState()) || "3F000".equals(e.getSQLState())) {
        return OptionalLong.empty(); // nothing was ever guarded on this database
      }
      throw e;
    }
  }

  /** Removes the guard of {@code table} (trigger and epoch row) in one transaction on {@code c} (autocommit). */
  public static void uninstall(Connection c, String table) throws SQLException {
    OwnTransaction.run(c, () -> {
      try (Statement s = c.createStatement()) {
        s.execute(LOCK);
        s.execute("DROP TRIGGER IF EXISTS " + TRIGGER + " ON " + table);
      }
      if (epoch(c, table).isPresent()) {
        try (PreparedStatement p = c.prepareStatement("DELETE FROM shardmap.reference_tables WHERE tbl = ?")) {
          p.setString(1, table);
          p.executeUpdate();
        }
      }
    });
  }

  /** The setting's value declaring {@code epochs} (canonical table name to epoch). */
  public static String declaration(Map<String, Long> epochs) {
    StringBuilder b = new StringBuilder(",");
    for (Map.Entry<String, Long> e : new TreeMap<>(epochs).entrySet()) {
      requireEpoch(e.getValue());
      b.append(e.getKey()).append('=').append(e.getValue()).append(',');
    }
    return b.toString();
  }

  /**
   * Declares, for the rest of {@code c}'s open transaction, that it writes the reference tables in
   * {@code epochs} under those epochs (replacing any earlier declaration of the transaction).
   */
  public static void declare(Connection c, Map<String, Long> epochs) throws SQLException {
    try (PreparedStatement p = c.prepareStatement("SELECT set_config('" + EPOCHS_SETTING + "', ?, true)")) {
      p.setString(1, declaration(epochs));
      p.execute();
    }
  }

  /** Lets {@code c}'s open transaction write guarded copies without declaring epochs (copy and repair). */
  public static void bypass(Connection c) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("SELECT set_config('" + BYPASS_SETTING + "', txid_current()::text, true)");
    }
  }

  /** The epoch a {@link #STALE_SQLSTATE} refusal names, or -1 when the message names none. */
  public static long refusedEpoch(String message) {
    Matcher m = EPOCH.matcher(String.valueOf(message));
    return m.find() ? Long.parseLong(m.group(1)) : -1;
  }

  /**
   * The canonical name of the table {@code name} resolves to on {@code c}, {@code schema.table} quoted only
   * where PostgreSQL needs it ({@code format('%I.%I')}): the name every copy, record and declaration uses.
   *
   * @throws ShardmapException NOT_FOUND naming {@code field} when no such table exists there
   */
  public static String canonicalName(Connection c, String field, String name) throws SQLException {
    try (PreparedStatement p = c.prepareStatement("SELECT format('%I.%I', n.nspname, t.relname) FROM pg_class t "
        + "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE t.oid = to_regclass(?) AND t.relkind IN ('r', 'p')")) {
      p.setString(1, name);
      try (ResultSet rs = p.executeQuery()) {
        if (!rs.next()) {
          throw new ShardmapException(ErrorCode.NOT_FOUND, field + ": no table '" + name + "' on this database");
        }
        return rs.getString(1);
      }
    } catch (SQLException e) {
      if ("42602".equals(e.getSQLState()) || "42601".equals(e.getSQLState()) || "3F000".equals(e.getSQLState())) {
        throw new ShardmapException(ErrorCode.INVALID_ARGUMENT, field + ": '" + name + "' is not a table name ("
            + e.getMessage() + ")");
      }
      throw e;
    }
  }

  /** The primary key columns of {@code table} on {@code c}, in key order; empty when it has none. */
  public static List<String> primaryKey(Connection c, String table) throws SQLException {
    List<String> cols = new ArrayList<>();
    try (PreparedStatement p = c.prepareStatement("SELECT a.attname FROM pg_index i "
        + "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        + "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        + "WHERE i.indrelid = to_regclass(?) AND i.indisprimary ORDER BY k.n")) {
      p.setString(1, table);
      try (ResultSet rs = p.executeQuery()) {
        while (rs.next()) {
          cols.add(rs.getString(1));
        }
      }
    }
    return cols;
  }

  private static void upsert(Connection c, String table, long epoch) throws SQLException {
    try (PreparedStatement p = c.prepareStatement("INSERT INTO shardmap.reference_tables (tbl, epoch) VALUES (?, ?) "
        + "ON CONFLICT (tbl) DO UPDATE SET epoch = greatest(shardmap.reference_tables.epoch, excluded.epoch)")) {
      p.setString(1, table);
      p.setLong(2, epoch);
      p.executeUpdate();
    }
  }

  private static void requireEpoch(long epoch) {
    if (epoch <= 0) {
      throw new ShardmapException(ErrorCode.INVALID_ARGUMENT, "epoch: a reference epoch is positive, got " + epoch);
    }
  }

  private static String literal(String s) {
    return "'" + s.replace("'", "''") + "'";
  }
}
