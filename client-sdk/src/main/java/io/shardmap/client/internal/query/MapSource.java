package io.shardmap.client.internal.query;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import java.util.function.Predicate;

/** The client's map as the executor sees it: the current one, and waiting for a newer one. */
public interface MapSource {
  /** The current map; fails (as routing does) when the keyspace is unknown or the map is past its staleness limit. */
  DirectorySnapshot current(String keyspace);

  /**
   * Waits until the current map's {@code keyspace} satisfies {@code ready} and returns that map, or null
   * when {@code deadlineNanos} ({@link System#nanoTime()} time) passes first.
   */
  DirectorySnapshot await(String keyspace, Predicate<KeyspaceMap> ready, long deadlineNanos)
      throws InterruptedException;
}
