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
}
