package io.shardmap.migrator.internal;

import static io.shardmap.migrator.internal.RangeTableMove.ident;
import static io.shardmap.migrator.internal.RangeTableMove.literal;

import io.shardmap.client.StaleRoute;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The fences of one PostgreSQL shard: ranges of sharded tables that this shard no longer owns (or is about
 * to give up), where every write is refused with {@link StaleRoute#SQLSTATE}. They are rows of
 * {@code shardmap.fences}, enforced by one {@code BEFORE} row trigger per table whose function is
 * regenerated from those rows whenever they change.
 *
 * <p>Why a generated function rather than a trigger that queries the table: PostgreSQL resolves triggers
 * and functions from the latest catalog, but a query inside a trigger of a REPEATABLE READ transaction
 * sees that transaction's snapshot, which may predate the fence. Catalog changes are seen by everyone.
 *
 * <p>A fence of an INT64 range is stored as its bounds ({@code lo}, {@code hi}), so that a range moving back
 * can lift part of it ({@link #unfenceMoved}); a fence of any other unit ({@link MoveUnit}) as its SQL
 * condition on NEW and OLD ({@code cond_new}, {@code cond_old}), lifted only as a whole.
 *
 * <p>A fence is installed in one transaction that first locks every fenced table in SHARE ROW EXCLUSIVE
 * mode, under {@code lock_timeout}: the lock waits for every transaction that has written one of the
 * tables and blocks new writers until the fence commits, so when {@link #fence} returns true no write to
 * a fenced range is still open on this shard, and none can commit later.
 */
public final class Fences {
  /** The trigger's name on every fenced table; its function lives in schema {@code shardmap}. */
  static final String TRIGGER = "shardmap_fence";

  private Fences() {}

  /**
   * Fences, in one transaction, the range of every move (all of one migration: same id and range) with
   * {@code fencedEpoch}. Returns false, having changed nothing, when the table locks did not come within
   * {@code budget}. Idempotent.
   */
  public static boolean fence(Connection c, List<RangeTableMove> moves, long fencedEpoch, Duration budget)
      throws SQLException {
    return fence(c, moves, fencedEpoch, budget, true, () -> { });
  }

  /**
   * {@link #fence} in a transaction that is left open, holding the tables' locks: writers of the tables
   * wait (they are not refused) until the caller commits {@code c}, which puts the fence in force, or rolls
   * it back (or closes {@code c}), which lets them write on as if nothing had happened. The cutover drains
   * the change logs on another connection meanwhile (no write can be logged while the locks are held), and
   * commits the fence only once the rest of the pause fits its budget; an attempt that would overrun is
   * abandoned by a rollback, before any write was refused. Returns false, with the transaction rolled back,
   * when the locks did not come within {@code lockWait}. {@code beforeLock} runs right before the
   * {@code LOCK TABLE} request is sent: writers queue from that moment, so the pause starts there.
   */
  public static boolean prepareFence(Connection c, List<RangeTableMove> moves, long fencedEpoch, Duration lockWait,
                                     Runnable beforeLock) throws SQLException {
    return fence(c, moves, fencedEpoch, lockWait, false, beforeLock);
  }

  private static boolean fence(Connection c, List<RangeTableMove> moves, long fencedEpoch, Duration budget,
                               boolean commit, Runnable beforeLock) throws SQLException {
    try {
      RangeTableMove.SqlBody body = s -> {
        ensureSchema(s);
        s.execute("SET LOCAL lock_timeout = " + literal(Math.max(1, budget.toMillis()) + "ms"));
        List<String> tables = new ArrayList<>();
        moves.forEach(m -> tables.add(ident(m.table())));
        for (RangeTableMove m : moves) {
          serialize(c, m.table());
        }
        beforeLock.run();
        s.execute("LOCK TABLE " + String.join(", ", tables) + " IN SHARE ROW EXCLUSIVE MODE");
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO shardmap.fences (tbl, migration, key_column, lo, hi, "
            + "keyspace, epoch, cond_new, cond_old) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tbl, migration) "
            + "DO UPDATE SET key_column = EXCLUDED.key_column, lo = EXCLUDED.lo, hi = EXCLUDED.hi, "
            + "keyspace = EXCLUDED.keyspace, epoch = EXCLUDED.epoch, cond_new = EXCLUDED.cond_new, "
            + "cond_old = EXCLUDED.cond_old")) {
          for (RangeTableMove m : moves) {
            MoveUnit.Range r = m.int64Range();
            ps.setString(1, m.table());
            ps.setString(2, m.id());
            ps.setString(3, m.keyColumn());
            ps.setObject(4, r == null ? null : r.lo(), java.sql.Types.BIGINT);
            ps.setObject(5, r == null ? null : r.hi(), java.sql.Types.BIGINT);
            ps.setString(6, m.keyspace());
            ps.setLong(7, fencedEpoch);
            ps.setString(8, r == null ? m.inRange("NEW." + ident(m.keyColumn())) : null);
            ps.setString(9, r == null ? m.inRange("OLD." + ident(m.keyColumn())) : null);
            ps.addBatch();
          }
          ps.executeBatch();
        }
        for (RangeTableMove m : moves) {
          regenerate(c, s, m.table());
        }
      };
      if (!commit) {
        return prepare(c, budget, body);
      }
      RangeTableMove.inTransaction(c, body);
      return true;
    } catch (SQLException e) {
      if ("55P03".equals(e.getSQLState())) {
        return false;
      }
      throw e;
    }
  }

  /** Lifts the fences a migration put on this shard (a cancel after fencing). Idempotent. */
  public static void unfence(Connection c, String migrationId, List<String> tables) throws SQLException {
    RangeTableMove.ddl(c, s -> {
      ensureSchema(s);
      for (String t : tables) {
        serialize(c, t);
      }
      int removed;
      try (PreparedStatement ps = c.prepareStatement("DELETE FROM shardmap.fences WHERE migration = ?")) {
        ps.setString(1, migrationId);
        removed = ps.executeUpdate();
      }
      // Nothing fenced (the usual case on resume): touch no table, so no lock is requested at all.
      if (removed > 0) {
        for (String t : tables) {
          regenerate(c, s, t);
        }
      }
    });
  }

  private static boolean prepare(Connection c, Duration lockWait, RangeTableMove.SqlBody work) throws SQLException {
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      s.execute("SET LOCAL lock_timeout = " + literal(Math.max(1, lockWait.toMillis()) + "ms"));
      work.run(s);
      return true;
    } catch (SQLException | RuntimeException e) {
      c.rollback();
      if (e instanceof SQLException se && "55P03".equals(se.getSQLState())) {
        return false;
      }
      throw e;
    }
  }

  private static void unfenceRange(Connection c, Statement s, List<String> tables, Long lo, Long hi)
      throws SQLException {
    ensureSchema(s);
    for (String t : tables) {
      serialize(c, t);
      List<Object[]> rows = new ArrayList<>();
      try (PreparedStatement ps = c.prepareStatement("SELECT migration, key_column, lo, hi, keyspace, epoch "
          + "FROM shardmap.fences WHERE tbl = ? AND cond_new IS NULL")) {
        ps.setString(1, t);
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            rows.add(new Object[] {rs.getString(1), rs.getString(2), (Long) rs.getObject(3), (Long) rs.getObject(4),
                rs.getString(5), rs.getLong(6)});
          }
        }
      }
      boolean changed = false;
      for (Object[] r : rows) {
        Long flo = (Long) r[2];
        Long fhi = (Long) r[3];
        if (!overlaps(flo, fhi, lo, hi)) {
          continue;
        }
        changed = true;
        try (PreparedStatement del = c.prepareStatement("DELETE FROM shardmap.fences WHERE tbl = ? AND migration = ?")) {
          del.setString(1, t);
          del.setString(2, (String) r[0]);
          del.executeUpdate();
        }
        // What is left of the fence below and above the range, under derived names.
        if (lo != null && (flo == null || flo < lo)) {
          insert(c, t, r[0] + ":below", (String) r[1], flo, lo, (String) r[4], (Long) r[5]);
        }
        if (hi != null && (fhi == null || fhi > hi)) {
          insert(c, t, r[0] + ":above", (String) r[1], hi, fhi, (String) r[4], (Long) r[5]);
        }
      }
      if (changed) {
        regenerate(c, s, t);
      }
    }
  }

  /**
   * Serializes, until the transaction ends, every change of {@code table}'s fences on this shard. Each
   * change reads the table's fence rows and regenerates its function from what it read; two at once (a
   * fence of one migration, an unfence of another) could otherwise each write a function missing the
   * other's change. A transaction-level advisory lock, so writers of the table never wait for it.
   */
  private static void serialize(Connection c, String table) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))")) {
      ps.setString(1, "shardmap.fences." + table);
      ps.execute();
    }
  }

  /**
   * Lets the writes of the current transaction on {@code s}'s connection pass every fence of the shard:
   * the migrator's own writes (copy, replay and repair on a target that still fences the range it gave
   * away earlier; cleanup on a source it fenced). The setting holds the transaction's id and the fence
   * compares it with its own transaction's, so it works only in the transaction that set it: a session
   * {@code SET}, a role or database default, or a value left on a pooled connection passes nothing.
   */
  static void passFence(Statement s) throws SQLException {
    s.execute("SELECT set_config(" + literal(RangeTableMove.BYPASS_SETTING) + ", txid_current()::text, true)");
  }

  /**
   * Lifts the fences of this shard on the units of {@code moves} (all of one migration), which are moving
   * (back) to this shard: for an INT64 range, every fence on keys in it, a fence that covers more keeping
   * the parts outside the range; for any other unit, fences of exactly that unit. Idempotent.
   */
  public static void unfenceMoved(Connection c, List<RangeTableMove> moves) throws SQLException {
    RangeTableMove.ddl(c, s -> unfenceMoved(c, s, moves));
  }

  /**
   * {@link #unfenceMoved} in a transaction that is left open: it takes effect when the caller commits
   * {@code c}, and not at all when it rolls back or closes {@code c}. The cutover prepares the new owner's
   * unfence this way before it fences the source, so that once etcd has switched the owner only a COMMIT
   * separates the new owner from accepting writes. Until then its fence stays in force for everyone else
   * (they see the committed fence function). Returns false, with the transaction rolled back, when the
   * locks did not come within {@code lockWait}.
   */
  public static boolean prepareUnfenceMoved(Connection c, List<RangeTableMove> moves, Duration lockWait)
      throws SQLException {
    return prepare(c, lockWait, s -> unfenceMoved(c, s, moves));
  }

  private static void unfenceMoved(Connection c, Statement s, List<RangeTableMove> moves) throws SQLException {
    MoveUnit.Range r = moves.get(0).int64Range();
    if (r != null) {
      List<String> tables = new ArrayList<>();
      moves.forEach(m -> tables.add(m.table()));
      unfenceRange(c, s, tables, r.lo(), r.hi());
      return;
    }
    ensureSchema(s);
    for (RangeTableMove m : moves) {
      serialize(c, m.table());
      int removed;
      try (PreparedStatement ps = c.prepareStatement("DELETE FROM shardmap.fences WHERE tbl = ? AND cond_new = ?")) {
        ps.setString(1, m.table());
        ps.setString(2, m.inRange("NEW." + ident(m.keyColumn())));
        removed = ps.executeUpdate();
      }
      if (removed > 0) {
        regenerate(c, s, m.table());
      }
    }
  }

  /** True when [alo, ahi) and [blo, bhi) share a key (null = unbounded). */
  static boolean overlaps(Long alo, Long ahi, Long blo, Long bhi) {
    boolean aBeforeB = ahi != null && blo != null && ahi <= blo;
    boolean bBeforeA = bhi != null && alo != null && bhi <= alo;
    return !aBeforeB && !bBeforeA;
  }

  private static void insert(Connection c, String tbl, String migration, String keyColumn, Long lo, Long hi,
                             String keyspace, long epoch) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO shardmap.fences (tbl, migration, key_column, lo, hi, "
        + "keyspace, epoch) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tbl, migration) DO NOTHING")) {
      ps.setString(1, tbl);
      ps.setString(2, migration);
      ps.setString(3, keyColumn);
      ps.setObject(4, lo, java.sql.Types.BIGINT);
      ps.setObject(5, hi, java.sql.Types.BIGINT);
      ps.setString(6, keyspace);
      ps.setLong(7, epoch);
      ps.executeUpdate();
    }
  }

  /** The migrations whose fences are on {@code table} of this shard (for tests and status). */
  public static Set<String> fencesOn(Connection c, String table) throws SQLException {
    Set<String> out = new LinkedHashSet<>();
    try (Statement s = c.createStatement()) {
      ensureSchema(s);
    }
    try (PreparedStatement ps = c.prepareStatement("SELECT migration FROM shardmap.fences WHERE tbl = ? ORDER BY 1")) {
      ps.setString(1, table);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(rs.getString(1));
        }
      }
    }
    return out;
  }

  /**
   * Creates schema {@code shardmap} and the fences table if missing, one session at a time (see
   * {@link RangeTableMove#serialized}); later {@code IF NOT EXISTS} inside transactions then find them.
   */
  public static void ensureSchema(Connection c) throws SQLException {
    RangeTableMove.serialized(c, "schema", () -> {
      RangeTableMove.inTransaction(c, Fences::ensureSchema);
      return null;
    });
  }

  static void ensureSchema(Statement s) throws SQLException {
    s.execute("CREATE SCHEMA IF NOT EXISTS shardmap");
    s.execute("CREATE TABLE IF NOT EXISTS shardmap.fences (tbl text NOT NULL, migration text NOT NULL, "
        + "key_column text NOT NULL, lo bigint, hi bigint, keyspace text NOT NULL, epoch bigint NOT NULL, "
        + "PRIMARY KEY (tbl, migration))");
    // Fences of units other than INT64 ranges (added after the first release: shards fenced by it lack them).
    try (ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_attribute WHERE attrelid = 'shardmap.fences'::regclass "
        + "AND attname IN ('cond_new', 'cond_old') AND NOT attisdropped")) {
      rs.next();
      if (rs.getInt(1) == 2) {
        return;
      }
    }
    s.execute("ALTER TABLE shardmap.fences ADD COLUMN IF NOT EXISTS cond_new text, ADD COLUMN IF NOT EXISTS cond_old text");
  }

  private static String functionName(String table) {
    return "shardmap." + ident("fence_" + Integer.toHexString(table.hashCode()) + "_"
        + table.replaceAll("[^A-Za-z0-9_]", "_").substring(0, Math.min(table.length(), 30)));
  }

  /** Rewrites the table's fence function from its rows and makes sure the trigger calls it. */
  private static void regenerate(Connection c, Statement s, String table) throws SQLException {
    StringBuilder body = new StringBuilder();
    try (PreparedStatement ps = c.prepareStatement("SELECT key_column, lo, hi, keyspace, epoch, cond_new, cond_old "
        + "FROM shardmap.fences WHERE tbl = ? ORDER BY lo NULLS FIRST, migration")) {
      ps.setString(1, table);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          String k = ident(rs.getString(1));
          Long lo = (Long) rs.getObject(2);
          Long hi = (Long) rs.getObject(3);
          String condNew = rs.getString(6);
          body.append(" IF (TG_OP <> 'DELETE' AND ")
              .append(condNew != null ? condNew : RangeTableMove.inRange("NEW." + k, lo, hi))
              .append(") OR (TG_OP <> 'INSERT' AND ")
              .append(condNew != null ? rs.getString(7) : RangeTableMove.inRange("OLD." + k, lo, hi))
              .append(") THEN RAISE EXCEPTION USING ERRCODE = ").append(literal(StaleRoute.SQLSTATE))
              .append(", MESSAGE = ").append(literal(StaleRoute.message(rs.getString(4), rs.getLong(5))))
              .append("; END IF;");
        }
      }
    }
    String fn = functionName(table);
    s.execute("CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
        + " IF current_setting(" + literal(RangeTableMove.BYPASS_SETTING) + ", true) = txid_current()::text THEN"
        + "   RETURN coalesce(NEW, OLD); END IF;" + body + " RETURN coalesce(NEW, OLD); END $f$");
    boolean exists;
    try (PreparedStatement ps = c.prepareStatement("SELECT 1 FROM pg_trigger WHERE tgrelid = ?::regclass AND tgname = ?")) {
      ps.setString(1, ident(table));
      ps.setString(2, TRIGGER);
      try (ResultSet rs = ps.executeQuery()) {
        exists = rs.next();
      }
    }
    if (!exists) {
      s.execute("CREATE TRIGGER " + TRIGGER + " BEFORE INSERT OR UPDATE OR DELETE ON " + ident(table)
          + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()");
    }
  }
}
