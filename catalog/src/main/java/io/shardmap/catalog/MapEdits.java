package io.shardmap.catalog;

import com.google.protobuf.MessageLite;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Ring;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The one implementation of the map edits (every change of who owns which keys, made by the directory
 * server's admin API and by the migrator), one class per strategy ({@link StrategyEdits}: {@link #range()},
 * {@link #hash()}, {@link #ring()}, {@link #directory()}, {@link #geo()}; {@link #forStrategy} maps a
 * strategy to its class) with the rules and helpers they share here: each a pure plan over a {@link DirectorySnapshot} and the keyspace's
 * {@link MovingMarkers}, returning the records it writes and one {@link Txn} built with {@link
 * CatalogPaths} whose compares pin every record the plan read. Commit it with {@link CatalogTxns}.
 *
 * <p>The rules every edit keeps (docs/data-model.md):
 * <ul>
 *   <li>an edit that changes who owns a key raises that key's epoch past every epoch it had;
 *   <li>the ownership guard: every write that makes a shard an owner compares the shard's registration
 *       present and rewrites {@code shardrefs/{shard}} ({@link #guardOwners}), which deregistration
 *       compares unchanged since the snapshot that showed the shard owning nothing; and the shard must
 *       hold a copy of every reference table of the keyspace ({@link ReferenceTables}), read fresh by the
 *       planner like the markers;
 *   <li>a unit being moved by the migrator is refused, race-free (see {@link MovingMarkers}).
 * </ul>
 * Refusals are ShardmapExceptions naming the request field and the rule; nothing is written then.
 */
public final class MapEdits {
  private final CatalogPaths paths;
  private final RangeEdits range;
  private final HashEdits hash;
  private final RingEdits ring;
  private final DirectoryEdits directory;
  private final GeoEdits geo;
  private final ReferenceEdits reference;
  private final Map<Strategy, StrategyEdits> byStrategy = new java.util.EnumMap<>(Strategy.class);

  public MapEdits(CatalogPaths paths) {
    this.paths = paths;
    this.range = new RangeEdits(this);
    this.hash = new HashEdits(this);
    this.ring = new RingEdits(this);
    this.directory = new DirectoryEdits(this);
    this.geo = new GeoEdits(this);
    this.reference = new ReferenceEdits(paths);
    for (StrategyEdits e : List.of(range, hash, ring, directory, geo)) {
      byStrategy.put(e.strategy(), e);
    }
  }

  /** The registry: the edits of keyspaces using {@code s} (INTERNAL for a strategy without any). */
  public StrategyEdits forStrategy(Strategy s) {
    StrategyEdits e = s == null || s == Strategy.UNRECOGNIZED ? null : byStrategy.get(s);
    if (e == null) {
      throw new ShardmapException(io.shardmap.core.ErrorCode.INTERNAL, "no map edits for strategy " + s);
    }
    return e;
  }

  public RangeEdits range() {
    return range;
  }

  public HashEdits hash() {
    return hash;
  }

  public RingEdits ring() {
    return ring;
  }

  public DirectoryEdits directory() {
    return directory;
  }

  public GeoEdits geo() {
    return geo;
  }

  /** The writes of reference-table records (declare, add a copy, remove). */
  public ReferenceEdits reference() {
    return reference;
  }

  public CatalogPaths paths() {
    return paths;
  }

  /** What an edit writes ({@code txn}) and the records it produces ({@code value}). */
  public record Edit<T>(Txn txn, T value) {}

  /** The two ranges a split leaves. */
  public record Split(Route left, Route right) {}

  /** A layout edit with the share of the key space that changes owner. */
  public record LayoutChange<L>(L layout, double movedFraction) {}

  /** The keyspace {@code name}, which must use {@code strategy}; field names the request field. */
  public static KeyspaceMap keyspaceOf(DirectorySnapshot snap, String field, String name, Strategy strategy) {
    Names.keyspace(field, name);
    KeyspaceMap k = snap.keyspace(name);
    if (k.strategy() != strategy) {
      throw ShardmapException.precondition("keyspace '" + name + "' uses " + k.strategy() + "; this call "
          + "only applies to " + strategy + " keyspaces");
    }
    return k;
  }

  /** {@code shard}, which must be registered in {@code snap} (NOT_FOUND naming {@code field} if not). */
  public static String registered(DirectorySnapshot snap, String field, String shard) {
    Names.shard(field, shard);
    if (!snap.shards().containsKey(shard)) {
      throw ShardmapException.notFound(field + ": shard '" + shard + "' is not registered");
    }
    return shard;
  }

  /**
   * The ownership guard, the one place every write that makes shards owners of keys of {@code keyspace}
   * goes through: every owner is registered at commit time and is marked as an owner ({@code shardrefs},
   * compared by deregistration); every owner holds a copy of each reference table of the keyspace in
   * {@code refs} (else FAILED_PRECONDITION naming the shard, the table and the command that fixes it), and
   * the transaction compares those records unchanged since {@code refs} was read and rewrites the owners
   * guard that a declaration compares (why that is race-free: {@link ReferenceTables}). Nothing is added
   * for an empty {@code owners}.
   */
  public Txn.Builder guardOwners(Txn.Builder txn, String keyspace, Set<String> owners, ReferenceTables refs) {
    if (owners.isEmpty()) {
      return txn;
    }
    refs.requireCopies(keyspace, owners);
    for (String s : owners) {
      txn.compare(Compare.present(paths.shard(s)));
      txn.put(paths.shardRef(s), new byte[0]);
    }
    txn.compare(refs.unchangedSince(paths));
    txn.put(paths.ownersGuard(), new byte[0]);
    return txn;
  }

  // ---------------------------------------------------------------- layouts held in one record

  /** A rewrite of the keyspace's layout record, pinning the spec and the layout as in the snapshot. */
  public Txn.Builder layoutTxn(KeyspaceMap k, MessageLite newLayout) {
    return Txn.builder()
        .compare(Compare.modRevision(paths.spec(k.name()), k.specRevision()))
        .compare(Compare.modRevision(paths.layout(k.name()), k.layoutRevision()))
        .put(paths.layout(k.name()), bytes(newLayout));
  }

  private static byte[] bytes(MessageLite m) {
    return m.toByteArray();
  }
}
