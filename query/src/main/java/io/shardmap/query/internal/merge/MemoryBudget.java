package io.shardmap.query.internal.merge;

import io.shardmap.core.ShardmapException;

/**
 * The rows one merge holds in memory at once (groups, distinct values, rows waiting to be sorted), against
 * {@link io.shardmap.query.MergeOptions#maxInMemoryRows}. Past the cap the merge fails with
 * INVALID_ARGUMENT naming the clause that needed the memory, instead of running out of heap.
 */
final class MemoryBudget {
  private final long max;
  private long used;

  MemoryBudget(long max) {
    this.max = max;
  }

  /** Takes one row; fails naming {@code clause} and {@code what} it holds when the cap is reached. */
  void acquire(String clause, String what) {
    if (used >= max) {
      throw ShardmapException.invalid(clause, "the cross-shard merge would hold more than " + max + " "
          + what + " in memory (maxInMemoryRows = " + max + "); raise maxInMemoryRows in the query's "
          + "options if the heap allows, or narrow the query (a WHERE on fewer rows, fewer groups, a LIMIT)");
    }
    used++;
  }

  void release(long rows) {
    used -= rows;
  }

  long used() {
    return used;
  }
}
