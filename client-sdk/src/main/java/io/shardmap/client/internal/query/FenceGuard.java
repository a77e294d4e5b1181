package io.shardmap.client.internal.query;

import io.shardmap.core.FenceUnit;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Whether one shard's part of a cross-shard query, run at a pinned map, may trust what the shard holds
 * (docs/cross-shard-queries.md, "Reading while data moves"). The part is <b>stale</b> iff the shard has a
 * fence row of the query's keyspace covering some key that the pinned map routes to this shard at an epoch
 * &lt;= the fence's epoch: the map predates a move off this shard (the unit may already be written on its
 * new owner, and cleanup may delete it here), so the part could miss rows. A fence below the route's epoch
 * is an old fence of a unit that has come back since, and does not make the part stale; with a map past
 * the move no key of the fence is routed here at or below its epoch (docs/data-model.md, "Epochs"), so a
 * fence that lingers after cleanup never makes a part stale forever.
 *
 * <p>The fences must be read in the part's REPEATABLE READ (or SERIALIZABLE) transaction, before its rows,
 * so both come from the transaction's one snapshot. A fence committed after that snapshot is invisible, and
 * so is every delete of cleanup (which comes after the fence), so the part still sees all the unit's rows
 * the source had. Whether the shard has a fences table is read through the catalog, which is at least as new
 * as the snapshot: a table absent then was absent at the snapshot, and so was every fence.
 *
 * <p>Cost: in the part's own round trip ({@link PartGuard#inline}), one more statement: the fences of the
 * keyspace, a handful of rows, on a shard whose fences table this guard has seen. On a shard it has not,
 * the probe ({@code to_regclass}) instead, which is all a shard the migrator never touched pays; where the
 * probe finds the table, the part is sent once more (docs/benchmarks.md, {@code fence-guard}). Which
 * fences a row covers comes from its {@code unit_id}
 * ({@link FenceUnit}); a row written by a migrator before that column existed is read from its INT64
 * bounds or its "bucket:" unit_spec where it has them, and otherwise taken as the whole keyspace, which
 * the verdict reports ({@link Verdict#notes}) because it can keep parts on that shard stale until an
 * operator sets the row's unit_id.
 *
 * <p>Why the keyspace and not the query's tables selects the fences: a move fences every table of the
 * keyspace at once, so any fence of the keyspace stands for all of its tables, and matching fence rows
 * by table names would depend on how a query spells them. Thread-safe.
 */
public final class FenceGuard {
  /**
   * The statement that reads the fences of a keyspace from a table with every column this release writes
   * (one row, of NULLs, when there are none: the isolation level comes back either way).
   */
  static final String READ_SQL = "SELECT current_setting('transaction_isolation'), f.migration, f.tbl, f.epoch, "
      + "f.lo, f.hi, f.unit_id, f.unit_spec, f.cond_new IS NOT NULL "
      + "FROM (VALUES (1)) one(x) LEFT JOIN shardmap.fences f ON f.keyspace = ?";

  /**
   * The same from a table an older migrator created and no migrator of this release has fenced with since
   * (it lacks unit_id, maybe cond_new and unit_spec): the row as JSON, where a missing column reads as NULL.
   * Several times slower than {@link #READ_SQL} (to_jsonb), and only until the table is brought up to date.
   */
  static final String READ_OLD_SQL = "SELECT current_setting('transaction_isolation'), f.migration, f.tbl, f.epoch, "
      + "f.lo, f.hi, f.j->>'unit_id', f.j->>'unit_spec', f.j->>'cond_new' IS NOT NULL "
      + "FROM (VALUES (1)) one(x) LEFT JOIN LATERAL (SELECT g.migration, g.tbl, g.epoch, g.lo, g.hi, to_jsonb(g) AS j "
      + "FROM shardmap.fences g WHERE g.keyspace = ?) f ON true";

  /**
   * Whether the fences table exists and may be read (0: absent, 1: readable, 2: not readable by this role),
   * and whether it has the columns {@link #READ_SQL} reads.
   */
  static final String PROBE_SQL = "SELECT current_setting('transaction_isolation'), CASE WHEN "
      + "to_regclass('shardmap.fences') IS NULL THEN 0 WHEN has_table_privilege(to_regclass('shardmap.fences'), "
      + "'SELECT') THEN 1 ELSE 2 END, (SELECT count(*) = 3 FROM pg_attribute WHERE attrelid = "
      + "to_regclass('shardmap.fences') AND attname IN ('unit_id', 'unit_spec', 'cond_new') AND NOT attisdropped)";

  /** Shards whose fences table this guard has read, and which statement reads it (so the probe is skipped). */
  private final Map<String, String> readable = new ConcurrentHashMap<>();

  /**
   * The verdict on one part. Fresh, or stale because of the fence of {@link #unit} at {@link #fencedEpoch}
   * put by {@link #migration}; {@link #notes} names fences read as the whole keyspace (rows without a
   * readable unit_id), fresh or not.
   */
  public record Verdict(boolean stale, String shard, String migration, FenceUnit unit, long fencedEpoch,
                        String message, List<String> notes) {
    public Verdict {
      notes = List.copyOf(notes);
    }

    /**
     * Whether {@code newer} no longer routes any key of the stale fence's unit to the shard at or below its
     * epoch (always true for a fresh verdict): the executor reruns the part once its map has got there
     * (the rerun checks again).
     */
    public boolean passedBy(KeyspaceMap newer) {
      return !stale || unit.routedAtOrBelow(newer, shard, fencedEpoch).isEmpty();
    }
  }

  /**
   * This guard as the hook of every cross-shard query's parts ({@code ShardmapData} installs it): a stale
   * verdict asks the executor to run the query again once its map has passed the fence. Its {@link
   * PartGuard#inline} statement rides in the part's own round trip: the fences read on a shard whose table
   * this guard has seen, else the probe, whose rows teach it which statement reads the table (then the part
   * is sent again, once per shard).
   */
  public PartGuard asPartGuard() {
    return new PartGuard() {
      @Override
      public Rerun check(Connection c, String keyspace, String shard, KeyspaceMap map) throws SQLException {
        return rerun(FenceGuard.this.check(c, keyspace, shard, map));
      }

      @Override
      public Inline inline(String keyspace, String shard) {
        String read = readable.get(shard);
        if (read == null) {
          return new Inline() {
            @Override
            public String sql() {
              return PROBE_SQL;
            }

            @Override
            public List<Object> params() {
              return List.of();
            }

            @Override
            public Rerun verdict(ResultSet rows, KeyspaceMap map) throws SQLException {
              // Absent: fresh, as in check. Readable: the fences were not read in this snapshot, so the
              // part's rows of this round trip cannot be trusted; the next attempt reads them.
              return probed(rows, shard) == null ? null : PartGuard.AGAIN;
            }
          };
        }
        return new Inline() {
          @Override
          public String sql() {
            return read;
          }

          @Override
          public List<Object> params() {
            return List.of(keyspace);
          }

          @Override
          public Rerun verdict(ResultSet rows, KeyspaceMap map) throws SQLException {
            return rerun(decide(fences(rows, shard), shard, map));
          }

          @Override
          public void failed(SQLException e) {
            forget(shard, e);
          }
        };
      }

      private Rerun rerun(Verdict v) {
        return v.stale() ? new Rerun("shard '" + v.shard() + "': " + v.message(), v::passedBy) : null;
      }
    };
  }

  /**
   * The verdict for the part on {@code shard} of a query on {@code keyspace} at {@code map}; {@code c} is the
   * part's connection, in a REPEATABLE READ or SERIALIZABLE transaction in which nothing has run yet. Runs
   * the probe (on a shard not seen yet) and the read as statements of their own.
   *
   * @throws IllegalStateException when {@code c} is in autocommit or a weaker isolation level (the fences
   *     and the rows would not be read in one snapshot)
   * @throws ShardmapException FAILED_PRECONDITION when the connection's role may not read the shard's
   *     fences, or the map is a directory held without its entries
   * @throws SQLException as JDBC reports it; a fences table seen before and dropped since is reported here
   *     once (the transaction is then aborted), the next check probes again
   */
  public Verdict check(Connection c, String keyspace, String shard, KeyspaceMap map) throws SQLException {
    if (c.getAutoCommit()) {
      throw new IllegalStateException("the fence check of shard '" + shard + "' needs a transaction (autocommit is "
          + "on): the fences and the query's rows must be read in one snapshot");
    }
    String read = readable.get(shard);
    if (read == null) {
      try (PreparedStatement ps = c.prepareStatement(PROBE_SQL); ResultSet rs = ps.executeQuery()) {
        read = probed(rs, shard);
        if (read == null) {
          return new Verdict(false, shard, null, null, 0, "fresh", List.of());
        }
      }
    }
    List<Candidate> fences;
    try (PreparedStatement ps = c.prepareStatement(read)) {
      ps.setString(1, keyspace);
      try (ResultSet rs = ps.executeQuery()) {
        fences = fences(rs, shard);
      }
    } catch (SQLException e) {
      forget(shard, e);
      throw e;
    }
    return decide(fences, shard, map);
  }

  /**
   * Reads the probe's row: null when the shard has no fences table (nothing fenced there before the
   * snapshot), else the statement that reads it, remembered for the shard.
   */
  private String probed(ResultSet rs, String shard) throws SQLException {
    rs.next();
    requireSnapshotIsolation(rs.getString(1), shard);
    switch (rs.getInt(2)) {
      case 0 -> {
        return null;
      }
      case 2 -> throw ShardmapException.precondition("shard '" + shard + "': this role may not read "
          + "shardmap.fences, so a cross-shard query cannot tell whether its part there is complete; run "
          + "GRANT SELECT ON shardmap.fences TO PUBLIC on the shard (the migrator grants it when it creates or "
          + "upgrades the table)");
      default -> {
        String read = rs.getBoolean(3) ? READ_SQL : READ_OLD_SQL;
        readable.put(shard, read);
        return read;
      }
    }
  }

  /** The fence rows of a read ({@link #READ_SQL} or {@link #READ_OLD_SQL}). */
  private static List<Candidate> fences(ResultSet rs, String shard) throws SQLException {
    List<Candidate> fences = new ArrayList<>();
    while (rs.next()) {
      requireSnapshotIsolation(rs.getString(1), shard);
      if (rs.getString(2) == null) {
        continue; // the one row of the outer VALUES when the keyspace has no fence here
      }
      fences.add(new Candidate(rs.getString(2), rs.getString(3), rs.getLong(4), (Long) rs.getObject(5),
          (Long) rs.getObject(6), rs.getString(7), rs.getString(8), rs.getBoolean(9)));
    }
    return fences;
  }

  /** A read failed: a fences table dropped, its grant revoked or a column dropped since it was probed. */
  private void forget(String shard, SQLException e) {
    if ("42P01".equals(e.getSQLState()) || "42501".equals(e.getSQLState()) || "42703".equals(e.getSQLState())) {
      readable.remove(shard);
    }
  }

  private static void requireSnapshotIsolation(String level, String shard) {
    if (!"repeatable read".equals(level) && !"serializable".equals(level)) {
      throw new IllegalStateException("the fence check of shard '" + shard + "' needs a REPEATABLE READ or "
          + "SERIALIZABLE transaction, got '" + level + "': the fences and the query's rows must be read in one "
          + "snapshot");
    }
  }

  /** One fence row as read: its unit from unit_id, else from what older rows have. */
  record Candidate(String migration, String table, long epoch, Long lo, Long hi, String unitId, String unitSpec,
                   boolean hasCondition) {}

  /** The verdict from the fence rows read (pure: tested without a database). */
  static Verdict decide(List<Candidate> fences, String shard, KeyspaceMap map) {
    List<String> notes = new ArrayList<>();
    Candidate worst = null;
    FenceUnit worstUnit = null;
    Route worstRoute = null;
    for (Candidate f : fences) {
      FenceUnit unit;
      if (f.unitId() != null) {
        try {
          unit = FenceUnit.decode(f.unitId());
        } catch (IllegalArgumentException e) {
          unit = new FenceUnit.Keyspace();
          notes.add(name(f) + ": its unit_id cannot be read (" + e.getMessage() + "); taken as the whole keyspace");
        }
      } else if (!f.hasCondition()) {
        unit = FenceUnit.Range.int64(f.lo(), f.hi());
      } else if (f.unitSpec() != null && f.unitSpec().startsWith("bucket:")) {
        // "bucket:b:n", then the buckets lifted from it since (";..."): the first is the unit it was put for.
        try {
          String[] p = f.unitSpec().split(";")[0].split(":");
          unit = new FenceUnit.Bucket(Integer.parseInt(p[1]), Integer.parseInt(p[2]));
        } catch (IllegalArgumentException | ArrayIndexOutOfBoundsException e) {
          unit = new FenceUnit.Keyspace();
          notes.add(name(f) + ": its unit_spec '" + f.unitSpec() + "' cannot be read; taken as the whole keyspace");
        }
      } else {
        unit = new FenceUnit.Keyspace();
        notes.add(name(f) + " was written before fence rows named their unit (no unit_id) and names it only in SQL; "
            + "taken as the whole keyspace until its unit_id is set (docs/cross-shard-queries.md)");
      }
      Optional<Route> r = unit.routedAtOrBelow(map, shard, f.epoch());
      if (r.isPresent() && (worst == null || f.epoch() > worst.epoch())) {
        worst = f;
        worstUnit = unit;
        worstRoute = r.get();
      }
    }
    if (worst == null) {
      return new Verdict(false, shard, null, null, 0, "fresh", notes);
    }
    String message = "stale: fence of " + worstUnit.describe() + " at epoch " + worst.epoch() + " (migration '"
        + worst.migration() + "', table " + worst.table() + ") on shard '" + shard + "', whose map still routes keys of it here at epoch " + worstRoute.epoch() + "; re-run once "
        + "the map routes it above " + worst.epoch();
    if (!notes.isEmpty()) {
      message += " (" + String.join("; ", notes) + ")";
    }
    return new Verdict(true, shard, worst.migration(), worstUnit, worst.epoch(), message, notes);
  }

  private static String name(Candidate f) {
    return "fence of migration '" + f.migration() + "' on table " + f.table() + " (epoch " + f.epoch() + ")";
  }
}
