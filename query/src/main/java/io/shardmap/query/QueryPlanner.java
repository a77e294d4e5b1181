package io.shardmap.query;

import io.shardmap.query.internal.plan.Planner;
import java.util.Optional;

/**
 * Plans cross-shard SELECTs. Everything that cannot be merged into exactly the answer one database would
 * give is refused here, before anything is sent to a shard: a {@link io.shardmap.core.ShardmapException} of
 * code INVALID_ARGUMENT whose field is {@code sql} and whose rule names the clause (unparseable SQL, a
 * statement that is not a SELECT, a window function, a LIMIT inside a subquery, a join of sharded tables
 * not on their shard key, a table that is not sharded in the keyspace, ...).
 */
public final class QueryPlanner {
  private QueryPlanner() {}

  /** The sharded tables of one keyspace: a table's key column, or empty when the table is not sharded there. */
  @FunctionalInterface
  public interface ShardedTables {
    /** {@code table} as written in the statement, unquoted and lower-cased unless it was quoted. */
    Optional<String> keyColumn(String table);
  }

  /** Parses, checks and rewrites {@code sql} (one SELECT with JDBC {@code ?} placeholders). */
  public static QueryPlan plan(String sql, ShardedTables tables) {
    return Planner.plan(sql, tables);
  }

  /**
   * Plans {@code sql} (one SELECT with JDBC {@code ?} placeholders) to run on every shard as written, with the
   * ownership predicate ANDed into its WHERE, and its rows combined by {@code merge}: for what the merge
   * cannot be derived from, such as a window function partitioned by the shard key (see {@link Merge}).
   * Refuses (INVALID_ARGUMENT) what is still checked: field {@code sql} for a statement that is not a read of
   * sharded tables the predicate can reach; field {@code merge} for a merge that does not fit the statement's
   * columns.
   */
  public static QueryPlan plan(String sql, ShardedTables tables, Merge merge) {
    return Planner.plan(sql, tables, merge);
  }
}
