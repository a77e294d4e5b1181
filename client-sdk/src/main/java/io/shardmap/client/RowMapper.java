package io.shardmap.client;

import java.sql.SQLException;

/** Makes one value of the current row of a {@link QueryResult} ({@link ShardmapData#queryList}). */
@FunctionalInterface
public interface RowMapper<T> {
  T map(QueryResult row) throws SQLException;
}
