package io.shardmap.query;

import java.util.List;

/**
 * How a merge may run.
 *
 * @param maxInMemoryRows the most rows a merge may hold at once where it must hold them (groups of a GROUP
 *     BY or DISTINCT, rows of an ORDER BY over aggregates, distinct values of COUNT(DISTINCT)); past it the
 *     merge fails with INVALID_ARGUMENT naming the clause and this limit, never with an OutOfMemoryError
 * @param columns the type of each column of the shards' rows, in order (from one shard's result metadata
 *     and collation probe: every shard runs the same statement on the same schema)
 */
public record MergeOptions(long maxInMemoryRows, List<ColumnType> columns) {
  public MergeOptions {
    if (maxInMemoryRows < 1) {
      throw io.shardmap.core.ShardmapException.invalid("maxInMemoryRows", "must be at least 1");
    }
    columns = List.copyOf(columns);
  }
}
