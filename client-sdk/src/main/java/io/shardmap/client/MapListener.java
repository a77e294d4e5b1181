package io.shardmap.client;

import io.shardmap.core.DirectorySnapshot;

/**
 * Observes map changes. Called on the client's follower thread, in revision order, after the new map is
 * visible to lookups; a slow listener delays later changes, so hand heavy work to another thread.
 */
@FunctionalInterface
public interface MapListener {
  /**
   * @param before the map before this change ({@code null} on the first load)
   * @param after the map now used for lookups
   * @param resync true when {@code after} comes from a full re-read rather than a change stream
   */
  void onChange(DirectorySnapshot before, DirectorySnapshot after, boolean resync);
}
