package io.shardmap.client.internal;

import io.shardmap.core.DirectorySnapshot;

/**
 * The follower's listener of published maps, on the core types; the public {@link io.shardmap.client.MapListener}
 * is adapted onto it. Same contract: called on the follower thread, in revision order, after the map is
 * visible to lookups.
 */
@FunctionalInterface
public interface SnapshotListener {
  void onChange(DirectorySnapshot before, DirectorySnapshot after, boolean resync);
}
