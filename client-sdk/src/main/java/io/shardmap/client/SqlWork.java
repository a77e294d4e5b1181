package io.shardmap.client;

import java.sql.Connection;
import java.sql.SQLException;

/**
 * Work to run on the connection of a key's shard. It may run more than once when the SDK retries (a
 * fenced range, a lost connection), so keep side effects outside the database out of it, and do not
 * commit or close the connection yourself: the SDK does both.
 */
@FunctionalInterface
public interface SqlWork<T> {
  T run(Connection connection) throws SQLException;
}
