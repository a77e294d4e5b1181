package io.shardmap.catalog;

import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * The reference-table records ({@link CatalogPaths#referenceTable}, docs/reference-tables.md) as etcd held
 * them at {@code revision}, each with its mod revision, and the coverage rule every ownership edit applies
 * to them ({@link #requireCopies}).
 *
 * <p>Why a map edit and a declaration can never leave a shard owning keys of a keyspace without a copy of
 * one of its reference tables. A declaration compares {@link CatalogPaths#ownersGuard} unchanged since the
 * read of the maps that gave it the owners it copies to, and rewrites {@link CatalogPaths#referenceGuard};
 * every edit that makes a shard an owner checks the records of this read, compares the reference guard
 * unchanged since it ({@link #unchangedSince}) and rewrites the owners guard ({@link MapEdits#guardOwners}).
 * etcd applies one transaction at a time, so whichever commits second fails its compare and re-plans: the
 * declaration then sees the new owner (and is refused until it has a copy), the edit sees the new record
 * (and is refused until the shard has a copy). Adding a copy only widens {@code copies}: it compares the
 * record's own mod revision and needs no guard.
 *
 * <p>Like moving markers, the records are not part of the watched maps: planners read them from etcd (one
 * linearizable prefix read) on every attempt.
 */
public record ReferenceTables(Map<String, Versioned> tables, long revision) {
  /** One record and the mod revision it had in the read (what a rewrite of it compares). */
  public record Versioned(ReferenceTable table, long modRevision) {
    /** Whether the table is copied on the shards of keyspace {@code keyspace}. */
    public boolean appliesTo(String keyspace) {
      return table.getAllKeyspaces() || table.getKeyspacesList().contains(keyspace);
    }
  }

  public ReferenceTables {
    tables = Map.copyOf(new TreeMap<>(tables));
  }

  /** One linearizable read of every record, made while planning (nothing written yet). */
  public static ReferenceTables read(MetaStore store, CatalogPaths paths, Duration timeout) {
    RangeResult rr;
    try {
      rr = store.getPrefix(paths.referenceTablesPrefix()).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStoreRead("the reference tables", e);
    }
    return of(paths, rr);
  }

  /** The records among the keys of a read of (at least) {@link CatalogPaths#referenceTablesPrefix}. */
  public static ReferenceTables of(CatalogPaths paths, RangeResult rr) {
    Map<String, Versioned> out = new TreeMap<>();
    String prefix = paths.referenceTablesPrefix();
    for (KeyValue kv : rr.kvs()) {
      if (kv.key().startsWith(prefix)) {
        ReferenceTable t = Records.decode(kv, ReferenceTable.parser());
        out.put(kv.key().substring(prefix.length()), new Versioned(t, kv.modRevision()));
      }
    }
    return new ReferenceTables(out, rr.revision());
  }

  /** No records, as read at {@code revision}. */
  public static ReferenceTables none(long revision) {
    return new ReferenceTables(Map.of(), revision);
  }

  /** The record of {@code table} (canonical name), if declared. */
  public Optional<Versioned> get(String table) {
    return Optional.ofNullable(tables.get(table));
  }

  /** The records that apply to keyspace {@code keyspace} (declared for it, or for every keyspace), by name. */
  public List<Versioned> forKeyspace(String keyspace) {
    List<Versioned> out = new ArrayList<>();
    for (Versioned v : tables.values()) {
      if (v.appliesTo(keyspace)) {
        out.add(v);
      }
    }
    return out;
  }

  /**
   * The tables of {@code keyspace} that lack a copy on {@code shard}, by name: what must be copied there
   * before the shard may own keys of the keyspace.
   */
  public List<Versioned> missingOn(String keyspace, String shard) {
    List<Versioned> out = new ArrayList<>();
    for (Versioned v : forKeyspace(keyspace)) {
      if (!v.table().getCopiesList().contains(shard)) {
        out.add(v);
      }
    }
    return out;
  }

  /**
   * The coverage rule: refuses (FAILED_PRECONDITION naming the shard, the table and the command that fixes
   * it) when one of {@code owners} lacks a copy of a reference table of {@code keyspace}. The plan must also
   * compare {@link #unchangedSince}: that compare, not this read, makes the refusal race-free.
   */
  public void requireCopies(String keyspace, Set<String> owners) {
    for (String s : new TreeSet<>(owners)) {
      List<Versioned> missing = missingOn(keyspace, s);
      if (!missing.isEmpty()) {
        Versioned v = missing.get(0);
        throw ShardmapException.precondition("shard '" + s + "' has no copy of reference table "
            + v.table().getTable() + " of keyspace '" + keyspace + "'" + (missing.size() > 1 ? " (nor of "
            + (missing.size() - 1) + " more)" : "") + ", so it cannot own keys of the keyspace; copy them "
            + "there first: shardmap-migrator reference sync --shard " + s + " --keyspace " + keyspace
            + " (a migrator move to the shard does it itself)");
      }
    }
  }

  /** "No reference table was declared since this read": every declaration rewrites the reference guard. */
  public Compare unchangedSince(CatalogPaths paths) {
    return new Compare(paths.referenceGuard(), Compare.Target.MOD_REVISION, Compare.Op.LESS, revision + 1);
  }
}
