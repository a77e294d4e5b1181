package io.shardmap.core;

import java.util.Set;

/**
 * The immutable routing table of one keyspace, whichever its strategy: what {@link KeyspaceMap} routes
 * through. One implementation per strategy ({@link RangeTable}, {@link HashTable}, {@link Ring}, {@link
 * DirectoryTable}, {@link GeoTable}); the strategy class that builds it from its layout record is in
 * {@code io.shardmap.core.strategy}.
 */
public interface RoutingTable {
  /**
   * Routes an INT64 key; {@code null} only where no shard owns it (a directory miss). Range, hash and
   * ring tables route without allocating.
   */
  default Route route(long key) {
    return route(Keys.encodeInt64(key));
  }

  /** Routes a canonical key (see {@link Keys}); {@code null} only where no shard owns it. */
  Route route(byte[] canonicalKey);

  /** Adds every shard this table routes any key to. */
  void addOwners(Set<String> out);

  // Load units (docs/load.md): what load and size are counted by. Unit i covers the positions
  // [unitStart(i), unitEnd(i)) of the keyspace's unit space (UnitSpace), in unsigned byte order; units are
  // numbered in that order and never overlap. A unit's index means nothing beyond the table it came
  // from (a split renumbers the ranges after it); its positions are what reports carry.

  /** How many units this table has (at least 1). */
  int unitCount();

  /** The unit of an INT64 key, allocation-free. */
  default int unitOf(long key) {
    return unitOf(Keys.encodeInt64(key));
  }

  /** The unit of a canonical key (see {@link Keys}); every key has one, owned or not. */
  int unitOf(byte[] canonicalKey);

  /**
   * The route of every key of the unit; {@code null} where its keys may have several owners (a directory's
   * entry groups, which may also hold keys no shard owns).
   */
  Route unitRoute(int unit);

  /** Where the unit starts in the unit space (inclusive); an empty array is the start of the space. */
  byte[] unitStart(int unit);

  /** Where the unit ends in the unit space (exclusive); an empty array is the end of the space. */
  byte[] unitEnd(int unit);

  /** What an operator reads for the unit: a key range, a bucket, a ring arc, a region or an entry group. */
  String describeUnit(int unit);
}
