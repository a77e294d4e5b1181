package io.shardmap.client;

import java.sql.SQLException;

/**
 * The work of a cross-shard transaction ({@link ShardmapData#acrossShards}): it takes a connection per shard
 * from {@code tx}, by keyspace and key, and uses them. Returning commits every shard it touched, together;
 * throwing rolls them all back. It may run more than once (a range fenced by a move, a connection lost
 * before the commit point), so keep side effects outside the database out of it, and never commit, roll
 * back or close the connections yourself.
 */
@FunctionalInterface
public interface CrossShardWork<T> {
  T run(CrossShardTransaction tx) throws SQLException;
}
