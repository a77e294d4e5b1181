package io.shardmap.query;

import java.util.List;

/**
 * What one shard runs: PostgreSQL SQL with JDBC {@code ?} placeholders, their values in order (as given to
 * {@code PreparedStatement.setObject}), and the most rows it can return.
 *
 * @param maxRows an upper bound on the statement's rows that the SQL itself guarantees (its per-shard LIMIT,
 *     or 1 for aggregates without GROUP BY), or -1 when it has none. An executor may read a bounded result
 *     whole instead of through a cursor.
 */
public record ShardStatement(String sql, List<Object> params, long maxRows) {
  public ShardStatement {
    params = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(params));
    if (maxRows < -1) {
      throw new IllegalArgumentException("maxRows must be -1 (unbounded) or a row count, got " + maxRows);
    }
  }

  /** A statement whose row count the SQL does not bound. */
  public ShardStatement(String sql, List<Object> params) {
    this(sql, params, -1);
  }
}
