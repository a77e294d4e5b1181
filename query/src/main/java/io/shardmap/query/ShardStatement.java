package io.shardmap.query;

import java.util.List;

/**
 * What one shard runs: PostgreSQL SQL with JDBC {@code ?} placeholders, and their values in order (as given
 * to {@code PreparedStatement.setObject}).
 */
public record ShardStatement(String sql, List<Object> params) {
  public ShardStatement {
    params = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(params));
  }
}
