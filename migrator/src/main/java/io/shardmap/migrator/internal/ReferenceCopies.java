package io.shardmap.migrator.internal;

import io.shardmap.catalog.ReferenceEdits;
import io.shardmap.catalog.ReferenceTables;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.ReferenceTable;
import java.io.IOException;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.postgresql.copy.PGCopyOutputStream;

/**
 * The database side of reference tables (docs/reference-tables.md): declaring one (guard and copy to every
 * owner of its keyspaces, then the record), giving copies to owners that lack one (sync, and a move's
 * start), and removing one. Every step may be rerun after a crash at any point: guards are installed
 * idempotently at an epoch that never goes down, a copy replaces what the target had, and the record is
 * written last with a compare-and-set, so it never names a copy that is not current and guarded.
 *
 * <p>Why nothing is lost while a copy is added: the epoch is first raised on every existing copy, which
 * waits for every transaction that wrote under the old epoch and refuses every later one, until the
 * record names the new epoch; only then is the data copied from an existing copy. Writers refused
 * meanwhile rerun once the record moved on.
 */
public final class ReferenceCopies {
  /** How long raising an epoch waits for writers still holding the copy's epoch row (prepared ones too). */
  static final String LOCK_TIMEOUT = "60s";
  private static final int MAX_ROUNDS = 8;

  private final MigrationStore ms;
  private final PgConnector pg;
  private final Consumer<String> log;
  private final Consumer<String> faults;

  public ReferenceCopies(MigrationStore ms, PgConnector pg, Consumer<String> log) {
    this(ms, pg, log, point -> { });
  }

  /**
   * @param faults called at the points a crash test stops at ({@code reference:raised} after the epoch was
   *     raised on every copy, {@code reference:copied} after the new copies were filled, before the record)
   */
  public ReferenceCopies(MigrationStore ms, PgConnector pg, Consumer<String> log, Consumer<String> faults) {
    this.ms = ms;
    this.pg = pg;
    this.log = log;
    this.faults = faults;
  }

  /** The records, by canonical table name. */
  public List<ReferenceTable> list() {
    List<ReferenceTable> out = new ArrayList<>();
    ms.readReferences().tables().values().forEach(v -> out.add(v.table()));
    return out;
  }

  /**
   * Declares {@code table} (any name form; canonicalized on {@code source}) a reference table of
   * {@code keyspaces}, or of every keyspace: guards the copy on the source, copies it to every other owner
   * of the keyspaces (replacing what they had) and guards those copies, then writes the record. Checks
   * everything first (the table has a primary key, exists with the same columns and key on every owner,
   * every keyspace and the source exist) and changes nothing if one fails. Rerunning a declaration that
   * is already recorded gives the copies it lacks (as {@link #sync}).
   */
  public ReferenceTable add(String table, List<String> keyspaces, boolean allKeyspaces, String source) {
    if (table == null || table.isBlank()) {
      throw ShardmapException.invalid("table", "the name of the table to copy is required");
    }
    if (allKeyspaces == !keyspaces.isEmpty()) {
      throw ShardmapException.invalid("keyspaces", "give the keyspaces of the table or --all-keyspaces, exactly one");
    }
    for (String k : keyspaces) {
      Names.keyspace("keyspaces", k);
    }
    Names.shard("source", source);
    pg.shard("source", source);
    String name;
    List<String> key;
    try (Connection src = pg.open("source", source)) {
      name = ReferenceGuard.canonicalName(src, "table", table);
      key = ReferenceGuard.primaryKey(src, name);
      if (key.isEmpty()) {
        throw ShardmapException.invalid("table", "table " + name + " on shard '" + source + "' has no primary key; "
            + "a reference table needs one (its copies are compared and repaired row by row by it). Add one "
            + "(ALTER TABLE " + name + " ADD PRIMARY KEY (...)) and run this again; nothing was changed");
      }
    } catch (SQLException e) {
      throw sqlFailure("reading table '" + table + "' on shard '" + source + "'", e);
    }
    ReferenceTable wanted = ReferenceTable.newBuilder().setTable(name).addAllKeyspaces(new TreeSet<>(keyspaces))
        .setAllKeyspaces(allKeyspaces).addAllPrimaryKey(key).build();
    for (int round = 1; ; round++) {
      DirectorySnapshot snap = ms.readMaps();
      ReferenceTables refs = ms.readReferences();
      ReferenceTables.Versioned existing = refs.tables().get(name);
      if (existing != null) {
        if (!ReferenceEdits.sameDeclaration(existing.table(), wanted)) {
          throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "table: " + ReferenceEdits.describe(existing.table())
              + " is already declared otherwise; remove it first (shardmap-migrator reference remove " + name + ")");
        }
        sync(name);
        return ms.readReferences().get(name).orElseThrow().table();
      }
      Set<String> copies = ReferenceEdits.owners(snap, wanted.getKeyspacesList(), allKeyspaces);
      copies.add(source);
      List<String> targets = new ArrayList<>(copies);
      targets.remove(source);
      Map<String, Connection> conns = new LinkedHashMap<>();
      try {
        Connection src = open(conns, source);
        List<Tables.Column> cols = Tables.columnsOf(src, name);
        for (String t : targets) {
          requireSameTable(src, source, open(conns, t), t, name, cols, key);
        }
        // One epoch for every copy: above any a crashed earlier run left on one of them.
        long epoch = 1;
        for (Connection c : conns.values()) {
          OptionalLong e = ReferenceGuard.epoch(c, name);
          epoch = Math.max(epoch, e.orElse(1));
        }
        ReferenceGuard.install(src, name, epoch);
        log.accept(name + ": guarded on " + source + " at epoch " + epoch);
        for (String t : targets) {
          copyTo(src, source, conns.get(t), t, name, key, epoch);
        }
        ReferenceTable record = wanted.toBuilder().addAllCopies(copies).setEpoch(epoch).build();
        try {
          ReferenceTable written = ms.txns(16).build().update("declare reference table " + name, () ->
              ms.edits().reference().declare(ms.readMaps(), ms.readReferences(), record), io.shardmap.catalog.CatalogTxns.FRESH_READS);
          log.accept(name + ": declared, copies " + copies + ", epoch " + epoch);
          return written != null ? written : ms.readReferences().get(name).orElseThrow().table();
        } catch (ShardmapException e) {
          // A shard became an owner since the maps were read: copy there too and declare again.
          if (e.code() != ErrorCode.FAILED_PRECONDITION || round >= MAX_ROUNDS || !e.getMessage().startsWith("copies:")) {
            throw e;
          }
          log.accept(name + ": " + e.getMessage() + "; copying there too");
        }
      } catch (SQLException e) {
        throw sqlFailure("declaring reference table " + name, e);
      } finally {
        closeAll(conns);
      }
    }
  }

  /**
   * Gives a copy of every reference table to every owner of its keyspaces that lacks one; returns the
   * records it changed. {@code only}: one table (canonical name) or null for all.
   */
  public List<ReferenceTable> sync(String only) {
    List<ReferenceTable> changed = new ArrayList<>();
    DirectorySnapshot snap = ms.readMaps();
    for (ReferenceTables.Versioned v : ms.readReferences().tables().values()) {
      ReferenceTable t = v.table();
      if (only != null && !only.equals(t.getTable())) {
        continue;
      }
      Set<String> missing = ReferenceEdits.owners(snap, t.getKeyspacesList(), t.getAllKeyspaces());
      missing.removeAll(t.getCopiesList());
      if (!missing.isEmpty()) {
        changed.add(addCopies(t.getTable(), missing));
      }
    }
    return changed;
  }

  /**
   * Gives each of {@code shards} (registered) a copy of every reference table of {@code keyspace} (null: of
   * every reference table) it lacks, so that they may become owners of its keys; returns the records changed.
   */
  public List<ReferenceTable> syncShards(List<String> shards, String keyspace) {
    for (String s : shards) {
      Names.shard("shard", s);
      pg.shard("shard", s);
    }
    if (keyspace != null) {
      Names.keyspace("keyspace", keyspace);
      ms.readMaps().keyspace(keyspace);
    }
    List<ReferenceTable> changed = new ArrayList<>();
    for (ReferenceTables.Versioned v : ms.readReferences().tables().values()) {
      if (keyspace == null || v.appliesTo(keyspace)) {
        Set<String> missing = new TreeSet<>(shards);
        missing.removeAll(v.table().getCopiesList());
        if (!missing.isEmpty()) {
          changed.add(addCopies(v.table().getTable(), missing));
        }
      }
    }
    return changed;
  }

  /**
   * Gives {@code shard} a copy of every reference table of {@code keyspace} it lacks, before it may own
   * keys of the keyspace (a move's start, a shard joining a ring); nothing when it has them all. Returns
   * the records as read after that (one etcd read when nothing was missing).
   */
  public ReferenceTables ensureOn(String keyspace, String shard) {
    ReferenceTables refs = ms.readReferences();
    List<ReferenceTables.Versioned> missing = refs.missingOn(keyspace, shard);
    if (missing.isEmpty()) {
      return refs;
    }
    for (ReferenceTables.Versioned v : missing) {
      addCopies(v.table().getTable(), Set.of(shard));
    }
    return ms.readReferences();
  }

  /**
   * The add-copy steps of the records' contract: raise the epoch to e+1 on every existing copy, copy the
   * data from one of them into each new shard (guarded at e+1 first, its rows replaced, under bypass), then
   * rewrite the record (copies + new, epoch e+1) comparing its mod revision. A lost race re-reads the
   * record and goes on from what it says.
   */
  ReferenceTable addCopies(String table, Set<String> shards) {
    for (int round = 1; ; round++) {
      ReferenceTables.Versioned v = ms.readReferences().get(table).orElseThrow(() ->
          ShardmapException.notFound("table: " + table + " is not a reference table (shardmap-migrator reference list)"));
      ReferenceTable t = v.table();
      Set<String> adding = new TreeSet<>(shards);
      adding.removeAll(t.getCopiesList());
      if (adding.isEmpty()) {
        return t;
      }
      if (t.getCopiesCount() == 0) {
        throw ShardmapException.precondition("table: reference table " + table + " has no copy to copy from");
      }
      Map<String, Connection> conns = new LinkedHashMap<>();
      try {
        long epoch = t.getEpoch() + 1;
        // Raise on every copy; if one is already higher (a crashed earlier run), raise all to that.
        for (int pass = 0; pass < 2; pass++) {
          long highest = epoch;
          for (String c : t.getCopiesList()) {
            highest = Math.max(highest, ReferenceGuard.raise(open(conns, c), table, epoch));
          }
          if (highest == epoch) {
            break;
          }
          epoch = highest;
        }
        log.accept(table + ": epoch raised to " + epoch + " on " + t.getCopiesList());
        faults.accept("reference:raised");
        String from = t.getCopies(0);
        Connection src = open(conns, from);
        List<Tables.Column> cols = Tables.columnsOf(src, table);
        for (String s : adding) {
          requireSameTable(src, from, open(conns, s), s, table, cols, t.getPrimaryKeyList());
        }
        for (String s : adding) {
          copyTo(src, from, conns.get(s), s, table, t.getPrimaryKeyList(), epoch);
        }
        faults.accept("reference:copied");
        Set<String> copies = new TreeSet<>(t.getCopiesList());
        copies.addAll(adding);
        long e = epoch;
        ReferenceTable written = ms.txns(1).build().update("add copies of " + table, () ->
            ms.edits().reference().rewrite(ms.readMaps(), v, copies, e), io.shardmap.catalog.CatalogTxns.FRESH_READS);
        log.accept(table + ": copies " + written.getCopiesList() + " at epoch " + e);
        return written;
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.ABORTED || round >= MAX_ROUNDS) {
          throw e;
        }
        // The record changed meanwhile (another sync): read it again.
      } catch (SQLException e) {
        throw sqlFailure("adding copies of " + table + " on " + adding, e);
      } finally {
        closeAll(conns);
      }
    }
  }

  /** Drops the guard of every copy, then the record; the copies' data stay. */
  public ReferenceTable remove(String table) {
    ReferenceTables.Versioned v = ms.readReferences().get(table).orElseThrow(() ->
        ShardmapException.notFound("table: " + table + " is not a reference table (shardmap-migrator reference list)"));
    Map<String, Connection> conns = new LinkedHashMap<>();
    try {
      for (String c : v.table().getCopiesList()) {
        ReferenceGuard.uninstall(open(conns, c), table);
      }
    } catch (SQLException e) {
      throw sqlFailure("removing the guards of " + table, e);
    } finally {
      closeAll(conns);
    }
    ms.txns(8).build().update("remove reference table " + table, () -> {
      ReferenceTables.Versioned now = ms.readReferences().get(table).orElse(null);
      return now == null ? null : ms.edits().reference().remove(now);
    }, io.shardmap.catalog.CatalogTxns.FRESH_READS);
    log.accept(table + ": removed; the guards of " + v.table().getCopiesList() + " are dropped, their data stay");
    return v.table();
  }

  /** The target's table must exist with the source's columns and primary key (FAILED_PRECONDITION naming both). */
  private static void requireSameTable(Connection src, String source, Connection dst, String target, String table,
                                       List<Tables.Column> cols, List<String> key) throws SQLException {
    List<Tables.Column> d = Tables.columnsOf(dst, table);
    if (d == null) {
      throw ShardmapException.precondition("table: " + table + " does not exist on shard '" + target + "'; create it "
          + "there with the same columns and primary key as on '" + source + "' and run this again; nothing was changed");
    }
    Tables.requireSameColumns(table, source, cols, target, d);
    List<String> k = ReferenceGuard.primaryKey(dst, table);
    if (!k.equals(key)) {
      throw ShardmapException.precondition("table: " + table + " has primary key " + k + " on shard '" + target
          + "' and " + key + " on '" + source + "'; make them equal first; nothing was changed");
    }
  }

  /**
   * Guards {@code target}'s copy at {@code epoch} (so nothing but a coordinated write or this bypass can
   * change it from here on), then makes its rows the source's in one transaction under bypass: one binary
   * COPY pipe, streamed into a temporary table, then the rows whose key the source lacks deleted and the
   * others upserted by the primary key {@code key}. Not TRUNCATE: sharded tables may reference the copy
   * by foreign key (orders.country), which TRUNCATE refuses even when nothing is referenced; a row still
   * referenced and absent from the source fails the copy, as it should.
   */
  private void copyTo(Connection src, String source, Connection dst, String target, String table, List<String> key,
                      long epoch) throws SQLException {
    ReferenceGuard.install(dst, table, epoch);
    List<Tables.Column> cols = Tables.columnsOf(src, table);
    StringBuilder b = new StringBuilder();
    for (Tables.Column c : cols) {
      if (!c.generated()) {
        b.append(b.length() == 0 ? "" : ", ").append(RangeTableMove.ident(c.name()));
      }
    }
    String columns = b.toString();
    List<String> keyCols = key.stream().map(RangeTableMove::ident).toList();
    List<String> rest = new ArrayList<>();
    for (Tables.Column c : cols) {
      if (!c.generated() && !key.contains(c.name())) {
        rest.add(RangeTableMove.ident(c.name()));
      }
    }
    String tmp = "pg_temp.shardmap_reference_copy";
    String sameKey = String.join(" AND ", keyCols.stream().map(k -> "x." + k + " = n." + k).toList());
    String upsert = rest.isEmpty() ? "DO NOTHING" : "DO UPDATE SET "
        + String.join(", ", rest.stream().map(c -> c + " = EXCLUDED." + c).toList()) + " WHERE ("
        + String.join(", ", rest.stream().map(c -> "x." + c).toList()) + ") IS DISTINCT FROM ("
        + String.join(", ", rest.stream().map(c -> "EXCLUDED." + c).toList()) + ")";
    long[] rows = {0, 0, 0};
    RangeTableMove.inTransaction(dst, s -> {
      ReferenceGuard.bypass(dst);
      s.execute("CREATE TEMP TABLE shardmap_reference_copy ON COMMIT DROP AS SELECT " + columns + " FROM " + table
          + " WITH NO DATA");
      CopyManager out = src.unwrap(PGConnection.class).getCopyAPI();
      try (PGCopyOutputStream in = new PGCopyOutputStream(dst.unwrap(PGConnection.class),
          "COPY " + tmp + " (" + columns + ") FROM STDIN (FORMAT binary)", 1 << 16)) {
        rows[0] = out.copyOut("COPY (SELECT " + columns + " FROM " + table + ") TO STDOUT (FORMAT binary)", in);
      } catch (IOException e) {
        throw new SQLException("copying " + table + " failed: " + e.getMessage(), "08000", e);
      }
      rows[1] = s.executeUpdate("DELETE FROM " + table + " x WHERE NOT EXISTS (SELECT 1 FROM " + tmp + " n WHERE "
          + sameKey + ")");
      rows[2] = s.executeUpdate("INSERT INTO " + table + " AS x (" + columns + ") SELECT " + columns + " FROM " + tmp
          + " ON CONFLICT (" + String.join(", ", keyCols) + ") " + upsert);
    });
    log.accept(table + ": copied " + rows[0] + " rows from " + source + " to " + target + " (" + rows[1]
        + " deleted, " + rows[2] + " inserted or changed there; guarded at epoch " + epoch + ")");
  }

  private Connection open(Map<String, Connection> conns, String shard) throws SQLException {
    Connection c = conns.get(shard);
    if (c == null) {
      c = pg.open("shard", shard);
      conns.put(shard, c);
      try (Statement s = c.createStatement()) {
        s.execute("SET lock_timeout = '" + LOCK_TIMEOUT + "'");
      }
    }
    return c;
  }

  private static void closeAll(Map<String, Connection> conns) {
    for (Connection c : conns.values()) {
      try {
        c.close();
      } catch (SQLException ignored) {
        // closing after the work is done or failed; nothing left to protect
      }
    }
  }

  private static ShardmapException sqlFailure(String what, SQLException e) {
    return new ShardmapException(ErrorCode.UNAVAILABLE, what + " failed (SQLSTATE " + e.getSQLState() + "): "
        + e.getMessage() + "; nothing is half done that a rerun does not finish: run it again", e);
  }
}
