package io.shardmap.catalog;

import io.shardmap.catalog.CatalogTxns.Plan;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The catalog writes of reference-table records (docs/reference-tables.md), each a pure plan for {@link
 * CatalogTxns}: declare, rewrite (a copy added, the epoch raised) and remove. The database side (copying,
 * guarding) is the migrator's; these only record what it did, in the order the contract of the records
 * requires (the copies exist and are guarded at the epoch before the record says so).
 */
public final class ReferenceEdits {
  private final CatalogPaths paths;

  public ReferenceEdits(CatalogPaths paths) {
    this.paths = paths;
  }

  /**
   * The shards that must hold a copy of a table declared for {@code keyspaces} (or every keyspace) in
   * {@code snap}: every owner of their keys. NOT_FOUND naming the keyspace when one does not exist.
   */
  public static Set<String> owners(DirectorySnapshot snap, Collection<String> keyspaces, boolean allKeyspaces) {
    Set<String> out = new TreeSet<>();
    Collection<KeyspaceMap> ks = allKeyspaces ? snap.keyspaces().values() : keyspaces.stream().map(k -> {
      Names.keyspace("keyspaces", k);
      return snap.keyspace(k);
    }).toList();
    for (KeyspaceMap k : ks) {
      out.addAll(k.owners());
    }
    return out;
  }

  /**
   * Declares {@code table} (its {@code copies} hold guarded copies at its {@code epoch}). Refused when a
   * field breaks a rule (INVALID_ARGUMENT naming it), a keyspace or copy is unknown (NOT_FOUND), an owner
   * of one of the keyspaces in {@code snap} is not among the copies (FAILED_PRECONDITION naming it), or
   * another declaration of the table exists (ALREADY_EXISTS). Returns null (nothing to write) when exactly
   * this record is already declared, so an interrupted declaration can be rerun.
   *
   * <p>The transaction compares the owners guard unchanged since {@code snap}'s revision (no shard became an
   * owner since the maps this checked were read: see {@link ReferenceTables}), the record absent, and
   * rewrites the reference guard.
   */
  public Plan<ReferenceTable> declare(DirectorySnapshot snap, ReferenceTables refs, ReferenceTable table) {
    ReferenceTable t = normalized(snap, table);
    ReferenceTables.Versioned existing = refs.tables().get(t.getTable());
    if (existing != null) {
      if (sameDeclaration(existing.table(), t)) {
        return null;
      }
      throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "table: " + t.getTable() + " is already a reference "
          + "table (" + describe(existing.table()) + "); remove it first to declare it again");
    }
    Set<String> required = owners(snap, t.getKeyspacesList(), t.getAllKeyspaces());
    required.removeAll(t.getCopiesList());
    if (!required.isEmpty()) {
      throw ShardmapException.precondition("copies: shard '" + required.iterator().next() + "' owns keys of "
          + (t.getAllKeyspaces() ? "a keyspace" : "keyspace(s) " + t.getKeyspacesList()) + " but has no copy of "
          + t.getTable() + "; every owner needs one");
    }
    Txn txn = Txn.builder()
        .compare(new Compare(paths.ownersGuard(), Compare.Target.MOD_REVISION, Compare.Op.LESS, snap.revision() + 1))
        .compare(Compare.absent(paths.referenceTable(t.getTable())))
        .put(paths.referenceTable(t.getTable()), t.toByteArray())
        .put(paths.referenceGuard(), new byte[0]).build();
    return new Plan<>(txn, rev -> t);
  }

  /**
   * Rewrites the record as read ({@code current}, compared at its mod revision) with {@code copies} and
   * {@code epoch}: after a copy was added (every copy guarded at {@code epoch}) or the epoch raised on every
   * copy. The epoch never goes down and a copy is never dropped here (INVALID_ARGUMENT); every added copy
   * must be registered (NOT_FOUND).
   */
  public Plan<ReferenceTable> rewrite(DirectorySnapshot snap, ReferenceTables.Versioned current,
                                      Collection<String> copies, long epoch) {
    ReferenceTable old = current.table();
    if (epoch < old.getEpoch()) {
      throw ShardmapException.invalid("epoch", "the epoch of " + old.getTable() + " is " + old.getEpoch()
          + "; it never goes down, got " + epoch);
    }
    Set<String> next = new TreeSet<>(copies);
    if (!next.containsAll(old.getCopiesList())) {
      throw ShardmapException.invalid("copies", "a copy of " + old.getTable() + " is never dropped from its record "
          + "while the table is declared (had " + old.getCopiesList() + ", got " + next + ")");
    }
    for (String s : next) {
      if (!old.getCopiesList().contains(s)) {
        MapEdits.registered(snap, "copies", s);
      }
    }
    ReferenceTable t = old.toBuilder().clearCopies().addAllCopies(next).setEpoch(epoch).build();
    Txn txn = Txn.builder().compare(Compare.modRevision(paths.referenceTable(old.getTable()), current.modRevision()))
        .put(paths.referenceTable(old.getTable()), t.toByteArray()).build();
    return new Plan<>(txn, rev -> t);
  }

  /** Removes the record as read (compared at its mod revision); the copies' data stay. */
  public Plan<ReferenceTable> remove(ReferenceTables.Versioned current) {
    String key = paths.referenceTable(current.table().getTable());
    Txn txn = Txn.builder().compare(Compare.modRevision(key, current.modRevision())).delete(key).build();
    return new Plan<>(txn, rev -> current.table());
  }

  /** Whether {@code a} and {@code b} declare the same table for the same keyspaces with the same key. */
  public static boolean sameDeclaration(ReferenceTable a, ReferenceTable b) {
    return a.getTable().equals(b.getTable()) && a.getAllKeyspaces() == b.getAllKeyspaces()
        && new TreeSet<>(a.getKeyspacesList()).equals(new TreeSet<>(b.getKeyspacesList()))
        && a.getPrimaryKeyList().equals(b.getPrimaryKeyList());
  }

  /** "public.countries of keyspaces [users] (copies [s1, s2], epoch 3)". */
  public static String describe(ReferenceTable t) {
    return t.getTable() + " of " + (t.getAllKeyspaces() ? "every keyspace" : "keyspaces " + t.getKeyspacesList())
        + " (copies " + t.getCopiesList() + ", epoch " + t.getEpoch() + ")";
  }

  /** The record checked and in canonical form: keyspaces and copies sorted and distinct. */
  private static ReferenceTable normalized(DirectorySnapshot snap, ReferenceTable t) {
    String name = t.getTable();
    if (name.isEmpty() || name.length() > 200 || name.chars().anyMatch(c -> c < 0x20 || c == 0x7f)
        || name.indexOf('.') <= 0) {
      throw ShardmapException.invalid("table", "a canonical schema-qualified table name (schema.table, as "
          + "format('%I.%I') prints it) of up to 200 printable characters is required, got '" + name + "'");
    }
    if (t.getAllKeyspaces() == (t.getKeyspacesCount() > 0)) {
      throw ShardmapException.invalid("keyspaces", "give the keyspaces of " + name + " or all_keyspaces, "
          + "exactly one of the two");
    }
    if (t.getPrimaryKeyCount() == 0) {
      throw ShardmapException.invalid("primary_key", "table " + name + " has no primary key; a reference table "
          + "needs one (its copies are compared and repaired row by row by it)");
    }
    if (t.getEpoch() <= 0) {
      throw ShardmapException.invalid("epoch", "a reference epoch is positive, got " + t.getEpoch());
    }
    Set<String> keyspaces = new TreeSet<>(t.getKeyspacesList());
    for (String k : keyspaces) {
      Names.keyspace("keyspaces", k);
      snap.keyspace(k);
    }
    Set<String> copies = new TreeSet<>(t.getCopiesList());
    for (String s : copies) {
      MapEdits.registered(snap, "copies", s);
    }
    return t.toBuilder().clearKeyspaces().addAllKeyspaces(List.copyOf(keyspaces)).clearCopies()
        .addAllCopies(List.copyOf(copies)).build();
  }
}
