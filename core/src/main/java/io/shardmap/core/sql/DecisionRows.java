package io.shardmap.core.sql;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Collection;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The decision of a cross-shard transaction carried by one of its participants, the <b>decider</b>
 * (docs/transactions.md): a row of {@code shardmap.txn_decisions} on the decider's shard, keyed by the gid.
 *
 * <p>The coordinator inserts a COMMIT row inside the decider's own transaction, after every other writer
 * prepared. Committing that transaction is the commit point: the row and the decider's writes become durable
 * together, and the decider needs no PREPARE. A resolver that finds another participant's transaction
 * prepared with no decision inserts an ABORT row with the same key. The primary key makes the two mutually
 * exclusive in PostgreSQL itself:
 * <ul>
 *   <li>the resolver's insert waits for a coordinator's uncommitted insert of the gid, then finds its COMMIT
 *       (committed) or inserts ABORT (rolled back, or the coordinator's session died);
 *   <li>a coordinator inserting after the resolver's ABORT committed gets a unique violation, so its
 *       transaction on the decider, with its writes, can never commit.
 * </ul>
 * A row, once committed, never changes; {@link #forget} deletes it once every participant has finished and
 * no coordinator can still be deciding (see there).
 *
 * <p>java.sql only; the caller owns every connection. The table is installed once per shard by {@link #ddl}
 * (a role that may create schema {@code shardmap}); the application's role needs SELECT, INSERT and DELETE on
 * it, which the DDL grants to PUBLIC.
 */
public final class DecisionRows {
  /** The decision a row records. */
  public enum Decision {
    COMMIT("c"),
    ABORT("a");

    private final String code;

    Decision(String code) {
      this.code = code;
    }

    static Decision of(String code) {
      return switch (code) {
        case "c" -> COMMIT;
        case "a" -> ABORT;
        default -> throw new IllegalStateException("shardmap.txn_decisions holds an unknown decision '" + code + "'");
      };
    }
  }

  private static final String UNIQUE_VIOLATION = "23505";
  private static final String LOCK_NOT_AVAILABLE = "55P03";
  private static final String UNDEFINED_TABLE = "42P01";
  /**
   * The condition under which a row {@code d} may be deleted once its participants finished. The sessions it
   * looks at are those {@code pg_stat_activity} shows the caller: a role sees the {@code xact_start} of its
   * own sessions only (or of all with superuser or {@code pg_read_all_stats}), so whoever forgets must run as
   * the coordinators' role or one of those.
   */
  private static final String FORGET_GUARD = "(d.decision = 'c' OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
      + "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start <= d.decided_at))";

  private DecisionRows() {}

  /** The statements that install the table on a shard; each may run again (IF NOT EXISTS). */
  public static List<String> ddl() {
    return List.of(
        "CREATE SCHEMA IF NOT EXISTS shardmap",
        "CREATE TABLE IF NOT EXISTS shardmap.txn_decisions (gid text PRIMARY KEY, "
            + "decision text NOT NULL CHECK (decision IN ('c', 'a')), participants text[] NOT NULL, "
            + "decided_at timestamptz NOT NULL DEFAULT now())",
        "GRANT USAGE ON SCHEMA shardmap TO PUBLIC",
        "GRANT SELECT, INSERT, DELETE ON shardmap.txn_decisions TO PUBLIC");
  }

  /**
   * Installs the table ({@link #ddl}) unless it is there, in one transaction on {@code c} (which must be in
   * autocommit), serialized with every other installer of schema {@code shardmap} on the database: PostgreSQL's
   * {@code CREATE ... IF NOT EXISTS} and {@code GRANT} fail when two sessions run them at once ("duplicate key",
   * "tuple concurrently updated"). The lock is the transaction-scoped advisory lock on
   * {@code hashtextextended('shardmap.ddl.schema', 0)}, the key the migrator's schema installation holds too.
   *
   * @throws SQLException when the role may not create the schema or the table (nothing is left half done)
   */
  public static void install(Connection c) throws SQLException {
    if (installed(c)) {
      return;
    }
    OwnTransaction.run(c, () -> {
      try (Statement s = c.createStatement()) {
        s.execute("SELECT pg_advisory_xact_lock(hashtextextended('shardmap.ddl.schema', 0))");
      }
      if (!installed(c)) {
        try (Statement s = c.createStatement()) {
          for (String ddl : ddl()) {
            s.execute(ddl);
          }
        }
      }
    });
  }

  /**
   * Records COMMIT for {@code id} in the decider's open transaction ({@code c}, autocommit off), which the
   * caller then commits: that commit is the commit point. Call it only after every other writer has
   * prepared.
   *
   * @param participants the shards that prepared {@code id}, which the resolver finishes after this
   * @throws ShardmapException ABORTED when a resolver has already recorded ABORT for {@code id}. The
   *     transaction on {@code c} is then failed and can only roll back, with the decider's writes, and the
   *     caller must roll back the prepared participants too.
   * @throws IllegalStateException when {@code c} is in autocommit (the row must commit with the work)
   */
  public static void recordCommit(Connection c, TxnId id, List<String> participants) throws SQLException {
    if (c.getAutoCommit()) {
      throw new IllegalStateException("the COMMIT decision of " + id + " must be written in the decider's "
          + "transaction (autocommit is on)");
    }
    if (participants.isEmpty()) {
      throw ShardmapException.invalid("participants", "a COMMIT decision names the prepared participants");
    }
    try (PreparedStatement ps = c.prepareStatement(
        "INSERT INTO shardmap.txn_decisions (gid, decision, participants) VALUES (?, 'c', ?)")) {
      ps.setString(1, id.toString());
      Array a = c.createArrayOf("text", participants.toArray());
      ps.setArray(2, a);
      ps.executeUpdate();
    } catch (SQLException e) {
      if (UNIQUE_VIOLATION.equals(e.getSQLState())) {
        throw new ShardmapException(ErrorCode.ABORTED, "transaction " + id + " was aborted by a resolver before "
            + "its commit could be recorded (the coordinator was too slow): roll it back everywhere", e);
      }
      throw e;
    }
  }

  /**
   * {@link #recordCommit} and the decider's COMMIT in one round trip: {@code INSERT ...; COMMIT} sent
   * together, the COMMIT skipped by PostgreSQL when the INSERT fails. When this returns, the transaction on
   * {@code c} (the decider's writes and the COMMIT row) is committed: the commit point has passed. On a
   * refusal nothing committed and the session is rolled back; on a lost connection the outcome is unknown
   * (ask {@link #decideAbort}, which waits for a commit still in progress).
   *
   * @throws ShardmapException ABORTED when a resolver recorded ABORT first (nothing committed);
   *     FAILED_PRECONDITION when the shard has no decisions table (naming it and how to install it)
   */
  public static void commitWithDecision(Connection c, TxnId id, List<String> participants) throws SQLException {
    if (c.getAutoCommit()) {
      throw new IllegalStateException("the COMMIT decision of " + id + " must be written in the decider's "
          + "transaction (autocommit is on)");
    }
    if (participants.isEmpty()) {
      throw ShardmapException.invalid("participants", "a COMMIT decision names the prepared participants");
    }
    StringBuilder sql = new StringBuilder("INSERT INTO shardmap.txn_decisions (gid, decision, participants) VALUES (")
        .append(PreparedTransactions.quote(id.toString())).append(", 'c', ARRAY[");
    for (int i = 0; i < participants.size(); i++) {
      sql.append(i == 0 ? "" : ", ").append(PreparedTransactions.quote(participants.get(i)));
    }
    sql.append("]::text[]); COMMIT");
    try (Statement s = c.createStatement()) {
      s.execute(sql.toString());
    } catch (SQLException e) {
      try {
        c.rollback();
      } catch (SQLException r) {
        e.addSuppressed(r);
      }
      if (UNIQUE_VIOLATION.equals(e.getSQLState())) {
        throw new ShardmapException(ErrorCode.ABORTED, "transaction " + id + " was aborted by a resolver before "
            + "its commit could be recorded (the coordinator was too slow): roll it back everywhere", e);
      }
      if (UNDEFINED_TABLE.equals(e.getSQLState())) {
        throw missingTable(id.decider(), e);
      }
      throw e;
    }
  }

  /**
   * FAILED_PRECONDITION: {@code shard} has no {@code shardmap.txn_decisions}, naming how to install it.
   */
  public static ShardmapException missingTable(String shard, Throwable cause) {
    return new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard " + shard + " has no table "
        + "shardmap.txn_decisions, which cross-shard transactions need on the shard that decides: run the "
        + "directory servers' resolver (--resolver-db-user, which installs it) or, as a role that may create "
        + "schema shardmap: " + String.join("; ", ddl()), cause);
  }

  /** True when {@code c}'s database has the decisions table. */
  public static boolean installed(Connection c) throws SQLException {
    try (Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT to_regclass('shardmap.txn_decisions') IS NOT NULL")) {
      rs.next();
      return rs.getBoolean(1);
    }
  }

  /**
   * The resolver's side: records ABORT for {@code id} unless a decision stands, and returns the decision
   * that stands. If a coordinator is inserting its COMMIT, this waits for it, at most {@code lockTimeout},
   * and returns empty when that runs out (the gid is still being decided: ask again later). Runs its own
   * short transaction on {@code c}, which must be in autocommit.
   */
  public static Optional<Decision> decideAbort(Connection c, TxnId id, Duration lockTimeout) throws SQLException {
    if (!c.getAutoCommit()) {
      throw new IllegalStateException("decideAbort runs its own transaction: the connection must be in autocommit");
    }
    long ms = Math.max(1, lockTimeout.toMillis());
    c.setAutoCommit(false);
    try {
      try (Statement s = c.createStatement()) {
        s.execute("SET LOCAL lock_timeout = '" + ms + "ms'");
      }
      Decision d;
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO shardmap.txn_decisions (gid, decision, participants) "
          + "VALUES (?, 'a', '{}') ON CONFLICT (gid) DO NOTHING RETURNING decision")) {
        ps.setString(1, id.toString());
        try (ResultSet rs = ps.executeQuery()) {
          d = rs.next() ? Decision.of(rs.getString(1)) : null;
        }
      }
      if (d == null) {
        d = readIn(c, id).orElseThrow(() -> new IllegalStateException("the decision of " + id + " conflicted "
            + "but cannot be read"));
      }
      c.commit();
      return Optional.of(d);
    } catch (SQLException e) {
      c.rollback();
      if (LOCK_NOT_AVAILABLE.equals(e.getSQLState())) {
        return Optional.empty();
      }
      throw e;
    } finally {
      c.setAutoCommit(true);
    }
  }

  /**
   * The committed decisions of {@code ids}, in one query; ids with none are absent from the map. A database
   * where the table is not installed holds no decision (a COMMIT row can only be written into the table), so
   * it answers an empty map rather than an error.
   */
  public static Map<TxnId, Decision> readAll(Connection c, Collection<TxnId> ids) throws SQLException {
    Map<TxnId, Decision> out = new HashMap<>();
    if (ids.isEmpty()) {
      return out;
    }
    Map<String, TxnId> byText = new HashMap<>();
    for (TxnId id : ids) {
      byText.put(id.toString(), id);
    }
    try (PreparedStatement ps = c.prepareStatement(
        "SELECT gid, decision FROM shardmap.txn_decisions WHERE gid = ANY (?)")) {
      ps.setArray(1, c.createArrayOf("text", byText.keySet().toArray()));
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.put(byText.get(rs.getString(1)), Decision.of(rs.getString(2)));
        }
      }
    } catch (SQLException e) {
      if (UNDEFINED_TABLE.equals(e.getSQLState()) && c.getAutoCommit()) {
        return out;
      }
      throw e;
    }
    return out;
  }

  /**
   * One decision row.
   *
   * @param participants the prepared participants a COMMIT row names; empty for an ABORT row (the resolver
   *     that wrote it does not know them all)
   */
  public record Row(TxnId id, Decision decision, List<String> participants) {
    public Row {
      participants = List.copyOf(participants);
    }
  }

  /**
   * Up to {@code limit} decision rows of cluster {@code namespace} in {@code c}'s database, oldest first: the
   * candidates of a garbage collection, which must read them <em>before</em> it lists the prepared
   * transactions of every shard (see {@link #forgetAll}). Rows of other clusters sharing the database are not
   * listed. Empty where the table is not installed.
   */
  public static List<Row> rows(Connection c, String namespace, int limit) throws SQLException {
    String pattern = TxnId.likePattern(TxnId.requireNamespace(namespace));
    List<Row> out = new ArrayList<>();
    try (PreparedStatement ps = c.prepareStatement("SELECT gid, decision, participants FROM shardmap.txn_decisions "
        + "WHERE gid LIKE ? ESCAPE '\\' ORDER BY decided_at, gid LIMIT ?")) {
      ps.setString(1, pattern);
      ps.setInt(2, limit);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          String gid = rs.getString(1);
          if (TxnId.belongsTo(gid, namespace)) {
            String[] participants = (String[]) rs.getArray(3).getArray();
            out.add(new Row(TxnId.parse(gid), Decision.of(rs.getString(2)), List.of(participants)));
          }
        }
      }
    } catch (SQLException e) {
      if (UNDEFINED_TABLE.equals(e.getSQLState()) && c.getAutoCommit()) {
        return out;
      }
      throw e;
    }
    return out;
  }

  /**
   * {@link #forget} of many ids in one statement, with the same guard (a COMMIT row goes, an ABORT row stays
   * while a transaction that began before it is open on this database). The caller must know that every
   * participant of each id has finished: it read the rows ({@link #rows}) and only then found none of these
   * ids prepared on any shard. Returns how many rows were deleted.
   */
  public static int forgetAll(Connection c, Collection<TxnId> ids) throws SQLException {
    if (ids.isEmpty()) {
      return 0;
    }
    try (PreparedStatement ps = c.prepareStatement("DELETE FROM shardmap.txn_decisions d WHERE d.gid = ANY (?) AND "
        + FORGET_GUARD)) {
      ps.setArray(1, c.createArrayOf("text", ids.stream().map(TxnId::toString).toArray()));
      return ps.executeUpdate();
    }
  }

  /** The committed decision of {@code id}, if any. */
  public static Optional<Decision> read(Connection c, TxnId id) throws SQLException {
    return readIn(c, id);
  }

  private static Optional<Decision> readIn(Connection c, TxnId id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT decision FROM shardmap.txn_decisions WHERE gid = ?")) {
      ps.setString(1, id.toString());
      try (ResultSet rs = ps.executeQuery()) {
        return rs.next() ? Optional.of(Decision.of(rs.getString(1))) : Optional.empty();
      }
    }
  }

  /**
   * Deletes the decision of {@code id} once every participant has finished it; true when a row was deleted.
   * A COMMIT row goes at once: its coordinator has committed, and no second commit can come. An ABORT row
   * stays while any transaction on this database that began before the abort is still open. That may be
   * the slow coordinator's transaction here, which began before any participant prepared (the coordinator
   * opens the decider's transaction in the work, before its prepares), and without the row its late
   * COMMIT insert would succeed. Then this returns false: forget it later.
   */
  public static boolean forget(Connection c, TxnId id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("DELETE FROM shardmap.txn_decisions d WHERE d.gid = ? AND "
        + FORGET_GUARD)) {
      ps.setString(1, id.toString());
      return ps.executeUpdate() == 1;
    }
  }
}
