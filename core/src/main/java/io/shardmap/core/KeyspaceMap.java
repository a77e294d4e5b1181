package io.shardmap.core;

import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.Strategy;
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
  private final RangeTable ranges;
  private final HashTable hash;
  private final Ring ring;
  private final DirectoryTable directory;
  private final GeoTable geo;
  private final String broken;

  private KeyspaceMap(KeyspaceSpec spec, long specRevision, long layoutRevision, RangeTable ranges,
                      HashTable hash, Ring ring, DirectoryTable directory, GeoTable geo, String broken) {
    this.spec = spec;
    this.specRevision = specRevision;
    this.layoutRevision = layoutRevision;
    this.ranges = ranges;
    this.hash = hash;
    this.ring = ring;
    this.directory = directory;
    this.geo = geo;
    this.broken = broken;
  }

  /** A keyspace whose layout has not been seen yet (only valid in the middle of loading). */
  public static KeyspaceMap withoutLayout(KeyspaceSpec spec, long specRevision) {
    return new KeyspaceMap(spec, specRevision, 0, null, null, null, null, null, null);
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

  public RangeTable ranges() {
    return require(ranges, Strategy.STRATEGY_RANGE);
  }

  public HashTable hash() {
    return require(hash, Strategy.STRATEGY_HASH);
  }

  public Ring ring() {
    return require(ring, Strategy.STRATEGY_CONSISTENT_HASH);
  }

  public DirectoryTable directory() {
    return require(directory, Strategy.STRATEGY_DIRECTORY);
  }

  public GeoTable geo() {
    return require(geo, Strategy.STRATEGY_GEOGRAPHIC);
  }

  private <T> T require(T table, Strategy s) {
    checkUsable();
    if (spec.getStrategy() != s) {
      throw ShardmapException.precondition("keyspace '" + name() + "' uses " + spec.getStrategy()
          + ", not " + s);
    }
    if (table == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' uses " + s
          + " but its layout in etcd is of another strategy");
    }
    return table;
  }

  /** Null unless the stored layout is inconsistent; then the reason. */
  public String broken() {
    return broken;
  }

  public boolean hasLayout() {
    return ranges != null || hash != null || ring != null || directory != null || geo != null;
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
    switch (spec.getStrategy()) {
      case STRATEGY_RANGE:
        return ranges().route(key);
      case STRATEGY_HASH:
        return hash().route(key);
      case STRATEGY_CONSISTENT_HASH:
        return ring().route(key);
      default:
        return routeOrNull(Keys.encodeInt64(key));
    }
  }

  /** Routes a canonical key (see {@link Keys}); {@code null} as for {@link #routeOrNull(long)}. */
  public Route routeOrNull(byte[] canonicalKey) {
    switch (spec.getStrategy()) {
      case STRATEGY_RANGE:
        return ranges().route(canonicalKey);
      case STRATEGY_HASH:
        return hash().route(canonicalKey);
      case STRATEGY_CONSISTENT_HASH:
        return ring().route(canonicalKey);
      case STRATEGY_DIRECTORY:
        return directory().route(canonicalKey);
      case STRATEGY_GEOGRAPHIC:
        return geo().route(canonicalKey);
      default:
        throw new ShardmapException(ErrorCode.INTERNAL, "keyspace '" + name() + "' has strategy "
            + spec.getStrategy());
    }
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
    if (broken != null || !hasLayout()) {
      return out;
    }
    switch (spec.getStrategy()) {
      case STRATEGY_RANGE -> ranges.routes().forEach(r -> out.add(r.shard()));
      case STRATEGY_HASH -> hash.layout().getBucketsList().forEach(b -> out.add(b.getShard()));
      case STRATEGY_CONSISTENT_HASH -> ring.layout().getShardsList().forEach(s -> out.add(s.getShard()));
      case STRATEGY_DIRECTORY -> {
        if (directory.fallback() != null) {
          out.add(directory.fallback().shard());
        }
        directory.forEach((k, r) -> out.add(r.shard()));
      }
      case STRATEGY_GEOGRAPHIC -> geo.regions().values().forEach(r -> out.add(r.shard()));
      default -> { }
    }
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
          case HASH -> m = m.withHash(c.getHash(), rev);
          case RING -> m = m.withRing(c.getRing(), rev);
          case GEO -> m = m.withGeo(c.getGeo(), rev);
          case DIRECTORY -> m = m.withDirectoryLayout(c.getDirectory(), rev);
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
        RangeTable next = m.ranges == null
            ? RangeTable.build(type, rangePuts, "ranges")
            : m.ranges.apply(removedStarts, rangePuts);
        m = m.copy(m.layoutRevision, next, m.hash, m.ring, m.directory, m.geo);
      }
      if (!entryPuts.isEmpty() || !removedEntries.isEmpty()) {
        DirectoryTable d = m.directory != null ? m.directory
            : DirectoryTable.empty(DirectoryLayout.getDefaultInstance(), 0);
        m = m.copy(m.layoutRevision, m.ranges, m.hash, m.ring, d.apply(removedEntries, entryPuts), m.geo);
      }
      return m;
    } catch (RuntimeException e) {
      // A record no writer of ours produces (hand-edited etcd, say): keep serving the other keyspaces.
      return new KeyspaceMap(spec, specRevision, layoutRevision, null, null, null, null, null,
          e.getMessage() + " (at revision " + revision + ")");
    }
  }

  /**
   * This directory keyspace with its spec and layout (fallback) but none of its entries: what a client
   * holds for a directory it loads lazily. Routing through the result fails with FAILED_PRECONDITION
   * (see {@link DirectoryTable#withoutEntries()}); entry changes must not be applied to it.
   */
  public KeyspaceMap withoutDirectoryEntries() {
    DirectoryTable d = directory();
    return copy(layoutRevision, null, null, null, d.withoutEntries(), null);
  }

  public KeyspaceMap withSpec(KeyspaceSpec newSpec, long revision) {
    return new KeyspaceMap(newSpec, revision, layoutRevision, ranges, hash, ring, directory, geo, broken);
  }

  private KeyspaceMap withHash(HashLayout layout, long revision) {
    return copy(revision, null, HashTable.of(layout, revision), null, null, null);
  }

  private KeyspaceMap withRing(RingLayout layout, long revision) {
    return copy(revision, null, null, Ring.of(layout, revision), null, null);
  }

  private KeyspaceMap withGeo(GeoLayout layout, long revision) {
    return copy(revision, null, null, null, null, GeoTable.of(layout, revision));
  }

  private KeyspaceMap withDirectoryLayout(DirectoryLayout layout, long revision) {
    DirectoryTable d = directory != null ? directory.withLayout(layout, revision)
        : DirectoryTable.empty(layout, revision);
    return copy(revision, null, null, null, d, null);
  }

  private KeyspaceMap copy(long layoutRev, RangeTable r, HashTable h, Ring g, DirectoryTable d, GeoTable geo) {
    return new KeyspaceMap(spec, specRevision, layoutRev, r, h, g, d, geo, null);
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
