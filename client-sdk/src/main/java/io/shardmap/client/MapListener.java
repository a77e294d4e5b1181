package io.shardmap.client;

/**
 * Observes map changes. Called on the client's follower thread, in revision order, after the new map is
 * visible to lookups; a slow listener delays later changes, so hand heavy work to another thread.
 *
 * <p>A directory keyspace the client holds lazily (see {@link ShardmapClient#snapshot()}) appears in both
 * maps with its spec and fallback only: its entry changes update the client's cache (before this call,
 * so lookups made from the listener already see them) and do not show in {@code before}/{@code after}.
 * The revision still advances with them.
 */
@FunctionalInterface
public interface MapListener {
  /**
   * @param before the map before this change ({@code null} on the first load)
   * @param after the map now used for lookups
   * @param resync true when {@code after} comes from a full re-read rather than a change stream
   */
  void onChange(MapView before, MapView after, boolean resync);
}
