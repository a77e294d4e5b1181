package io.shardmap.core;

import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.core.strategy.Strategies;
import io.shardmap.core.strategy.StrategyKind;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The immutable map of one keyspace: its spec and the routing table of its strategy. Server and SDK
 * route with this same class, so they always agree.
 *
 * <p>A keyspace whose stored layout breaks an invariant (possible only if etcd was edited by hand) is kept
 * as <em>broken</em>: its lookups fail with INTERNAL and the reason, while other keyspaces keep working.
 */
public final class KeyspaceMap {
  private final KeyspaceSpec spec;
  private final long specRevision;
  private final long layoutRevision;
  /** The table of the spec's strategy (built by its {@link StrategyKind}); null before the layout is seen. */
  private final RoutingTable table;
  /** Whether {@link #table} is of the spec's strategy (computed once: routing is the hot path). */
  private final boolean tableFits;
  private final String broken;

  private KeyspaceMap(KeyspaceSpec spec, long specRevision, long layoutRevision, RoutingTable table,
                      String broken) {
    this.spec = spec;
    this.specRevision = specRevision;
    this.layoutRevision = layoutRevision;
    this.table = table;
    StrategyKind k = Strategies.find(spec.getStrategy());
    this.tableFits = k != null && k.tableType().isInstance(table);
    this.broken = broken;
  }

  /** A keyspace whose layout has not been seen yet (only valid in the middle of loading). */
  public static KeyspaceMap withoutLayout(KeyspaceSpec spec, long specRevision) {
    return new KeyspaceMap(spec, specRevision, 0, null, null);
  }

  public KeyspaceSpec spec() {
    return spec;
  }

  public String name() {
    return spec.getName();
  }

  public Strategy strategy() {
    return spec.getStrategy();
  }

  /** The class of this keyspace's strategy (routing, validation, units, SQL); see {@link Strategies}. */
  public StrategyKind kind() {
    StrategyKind k = Strategies.find(spec.getStrategy());
    if (k == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' has strategy "
          + spec.getStrategy());
    }
    return k;
  }

  public KeyType keyType() {
    return spec.getKeyType();
  }

  /** etcd mod revision of the spec record. */
  public long specRevision() {
    return specRevision;
  }

  /** etcd mod revision of the layout record (hash, ring, directory fallback, geo); 0 for range maps. */
  public long layoutRevision() {
    return layoutRevision;
  }

  /** The routing table, whichever the strategy (failing as {@link #route} does on a broken map). */
  public RoutingTable table() {
    checkUsable();
    return table;
  }

  public RangeTable ranges() {
    return require(RangeTable.class, Strategy.STRATEGY_RANGE);
  }

  public HashTable hash() {
    return require(HashTable.class, Strategy.STRATEGY_HASH);
  }

  public Ring ring() {
    return require(Ring.class, Strategy.STRATEGY_CONSISTENT_HASH);
  }

  public DirectoryTable directory() {
    return require(DirectoryTable.class, Strategy.STRATEGY_DIRECTORY);
  }

  public GeoTable geo() {
    return require(GeoTable.class, Strategy.STRATEGY_GEOGRAPHIC);
  }

  private <T extends RoutingTable> T require(Class<T> type, Strategy s) {
    checkUsable();
    if (spec.getStrategy() != s) {
      throw ShardmapException.precondition("keyspace '" + name() + "' uses " + spec.getStrategy()
          + ", not " + s);
    }
    if (!type.isInstance(table)) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' uses " + s
          + " but its layout in etcd is of another strategy");
    }
    return type.cast(table);
  }

  /** Null unless the stored layout is inconsistent; then the reason. */
  public String broken() {
    return broken;
  }

  public boolean hasLayout() {
    return table != null;
  }

  private void checkUsable() {
    if (broken != null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name()
          + "' has an inconsistent map in etcd: " + broken);
    }
    if (!hasLayout()) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' has no layout in etcd");
    }
  }

  /**
   * Routes an INT64 key; {@code null} only for a directory keyspace without fallback and without an entry.
   * Allocation-free for range, hash and consistent-hash keyspaces.
   */
  public Route routeOrNull(long key) {
    if (spec.getKeyType() != KeyType.KEY_TYPE_INT64) {
      throw ShardmapException.invalid("key", "keyspace '" + name()
          + "' has KEY_TYPE_BYTES keys; use string_key or bytes_key");
    }
    return usable().route(key);
  }

  /** Routes a canonical key (see {@link Keys}); {@code null} as for {@link #routeOrNull(long)}. */
  public Route routeOrNull(byte[] canonicalKey) {
    return usable().route(canonicalKey);
  }

  /** The table, if it is the spec's strategy's (a layout of another strategy in etcd is a broken map). */
  private RoutingTable usable() {
    checkUsable();
    if (!tableFits) {
      kind(); // an unknown strategy fails there
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' uses " + spec.getStrategy()
          + " but its layout in etcd is of another strategy");
    }
    return table;
  }

  /** Routes an INT64 key, failing with NOT_FOUND where no shard owns it (a directory miss). */
  public Route route(long key) {
    Route r = routeOrNull(key);
    return r != null ? r : route(Keys.encodeInt64(key));
  }

  /** Routes a canonical key, failing with NOT_FOUND where no shard owns it. */
  public Route route(byte[] canonicalKey) {
    Route r = routeOrNull(canonicalKey);
    if (r == null) {
      throw ShardmapException.notFound("key " + Keys.describe(keyType(), canonicalKey)
          + " has no entry in directory keyspace '" + name() + "' and the keyspace has no fallback shard");
    }
    return r;
  }

  /** Every shard this keyspace routes any key to. */
  public java.util.Set<String> owners() {
    java.util.Set<String> out = new java.util.HashSet<>();
    if (broken != null || table == null) {
      return out;
    }
    table.addOwners(out);
    return out;
  }

  /**
   * Applies the changes of one revision that belong to this keyspace (spec changes excluded: see
   * {@link #withSpec}). Range and directory changes of the batch are applied together, so a split or a
   * merge (two records in one transaction) never shows a half-done state. A broken map stays as it
   * is, with the reason of the first failure.
   */
  public KeyspaceMap apply(long revision, List<MapChange> changes) {
    if (broken != null) {
      // Later batches change records this map no longer holds: applying them would build a table from
      // the batch's puts alone, a fraction of the keyspace that may even look whole. Only a full read
      // of the keyspace repairs it (the directory server re-reads when a batch touches a broken one).
      return this;
    }
    KeyType type = spec.getKeyType();
    List<byte[]> removedStarts = new ArrayList<>();
    List<Route> rangePuts = new ArrayList<>();
    List<byte[]> removedEntries = new ArrayList<>();
    Map<byte[], Route> entryPuts = new IdentityHashMap<>();
    KeyspaceMap m = this;
    try {
      for (MapChange c : changes) {
        long rev = c.getModRevision() != 0 ? c.getModRevision() : revision;
        switch (c.getChangeCase()) {
          case RANGE -> rangePuts.add(rangeRoute(type, c.getRange(), rev));
          case RANGE_REMOVED_START -> removedStarts.add(Keys.canonical(type, c.getRangeRemovedStart(),
              "range_removed_start"));
          // A layout record: the strategy it belongs to builds the table (keeping what it keeps of the
          // previous one, such as a directory's entries).
          case HASH, RING, GEO, DIRECTORY -> m = m.copy(rev,
              Strategies.forLayout(c.getChangeCase()).withLayout(m.table, c, rev));
          case ENTRY -> {
            DirectoryEntry e = c.getEntry();
            entryPuts.put(Keys.canonical(type, e.getKey(), "entry.key"),
                new Route(e.getShard(), e.getEpoch(), null, rev));
          }
          case ENTRY_REMOVED -> removedEntries.add(Keys.canonical(type, c.getEntryRemoved(), "entry_removed"));
          default -> throw new IllegalArgumentException("not a layout change: " + c.getChangeCase());
        }
      }
      if (!rangePuts.isEmpty() || !removedStarts.isEmpty()) {
        RangeTable next = m.table instanceof RangeTable r
            ? r.apply(removedStarts, rangePuts)
            : RangeTable.build(type, rangePuts, "ranges");
        m = m.copy(m.layoutRevision, next);
      }
      if (!entryPuts.isEmpty() || !removedEntries.isEmpty()) {
        DirectoryTable d = m.table instanceof DirectoryTable t ? t
            : DirectoryTable.empty(DirectoryLayout.getDefaultInstance(), 0);
        m = m.copy(m.layoutRevision, d.apply(removedEntries, entryPuts));
      }
      return m;
    } catch (RuntimeException e) {
      // A record no writer of ours produces (hand-edited etcd, say): keep serving the other keyspaces.
      return new KeyspaceMap(spec, specRevision, layoutRevision, null, e.getMessage() + " (at revision " + revision + ")");
    }
  }

  /**
   * This directory keyspace with its spec and layout (fallback) but none of its entries: what a client
   * holds for a directory it loads lazily. Routing through the result fails with FAILED_PRECONDITION
   * (see {@link DirectoryTable#withoutEntries()}); entry changes must not be applied to it.
   */
  public KeyspaceMap withoutDirectoryEntries() {
    DirectoryTable d = directory();
    return copy(layoutRevision, d.withoutEntries());
  }

  public KeyspaceMap withSpec(KeyspaceSpec newSpec, long revision) {
    return new KeyspaceMap(newSpec, revision, layoutRevision, table, broken);
  }

  private KeyspaceMap copy(long layoutRev, RoutingTable t) {
    return new KeyspaceMap(spec, specRevision, layoutRev, t, null);
  }

  public static Route rangeRoute(KeyType type, RangeAssignment a, long revision) {
    return new Route(a.getShard(), a.getEpoch(), KeyRange.fromProto(type, a.getRange(), "range"), revision);
  }

  /** The range as the API shows it. */
  public static RangeAssignment toProto(KeyType type, Route r) {
    return RangeAssignment.newBuilder().setRange(r.range().toProto(type)).setShard(r.shard())
        .setEpoch(r.epoch()).build();
  }
}
