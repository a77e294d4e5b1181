package io.shardmap.query;

import java.sql.SQLException;

/**
 * A stream of rows: each shard's answer to its statement (the SDK adapts a JDBC ResultSet), or the merged
 * answer. Values are what PgJDBC's {@code getObject} gives for the column (Integer, Long, BigDecimal,
 * Double, String, Boolean, byte[], java.sql.Timestamp, ...), SQL NULL as null. Single-threaded: one
 * consumer calls {@link #next} until it returns null, then {@link #close}.
 */
public interface RowSource extends AutoCloseable {
  /** The next row (an array the caller may keep), or null when there is none. */
  Object[] next() throws SQLException;

  /** Releases what the stream holds (a shard's statement: cancels it if unread rows remain). Idempotent. */
  @Override
  void close();
}
