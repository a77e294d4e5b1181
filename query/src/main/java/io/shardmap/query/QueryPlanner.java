package io.shardmap.query;

import io.shardmap.query.internal.plan.Planner;
import java.util.Optional;

/**
 * Plans cross-shard SELECTs. Everything that cannot be merged into exactly the answer one database would
 * give is refused here, before anything is sent to a shard: a {@link io.shardmap.core.ShardmapException} of
 * code INVALID_ARGUMENT whose field is {@code sql} and whose rule names the clause (unparseable SQL, a
 * statement that is not a SELECT, a window function, a LIMIT inside a subquery, a join of sharded tables
 * not on their shard key, a table that is not sharded in the keyspace, ...).
 *
 * <p>Reference tables ({@link ShardedTables#isReference}) may be joined to the sharded table of the FROM on
 * any condition by an inner, left, cross or comma join: every shard holds all of their rows, so each result
 * row is made on the shard that owns its sharded row, exactly once. They cannot be the FROM, nor the
 * preserved side of a RIGHT or FULL join (their unmatched rows would come from every shard).
 */
public final class QueryPlanner {
  private QueryPlanner() {}

  /** The sharded tables of one keyspace: a table's key column, or empty when the table is not sharded there. */
  @FunctionalInterface
  public interface ShardedTables {
    /** {@code table} as written in the statement, unquoted and lower-cased unless it was quoted. */
    Optional<String> keyColumn(String table);

    /**
     * Whether {@code table} (as in {@link #keyColumn}) is a reference table of the keyspace: a complete copy
     * on every shard (docs/reference-tables.md), so it may be joined to a sharded table on any condition.
     * None by default.
     */
    default boolean isReference(String table) {
      return false;
    }
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
