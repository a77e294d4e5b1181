package io.shardmap.client.internal.query;

import io.shardmap.core.KeyspaceMap;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.function.Predicate;

/**
 * The hook that decides whether one shard's part of a cross-shard query may trust what the shard holds at
 * the map the query pinned. {@link #check} runs as the first statement of the part's READ ONLY REPEATABLE
 * READ transaction, so it reads in the snapshot the part's rows come from. A part whose shard has been
 * fenced for a move the pinned map does not know about yet (its rows may already live on the new owner and
 * be deleted here) answers {@link Rerun}: the executor then drops every part of the run, waits until the
 * client's map satisfies {@link Rerun#passedBy}, re-plans the targets at that map and runs again (at most
 * {@code DataOptions.maxAttempts} runs within the query's deadline).
 *
 * <p>{@link #NONE} checks nothing and sends nothing (the part's own statement then takes its snapshot).
 * The migration-fence guard is installed by {@code ShardmapData}; implementations are thread-safe (one
 * instance serves every part of every query).
 */
@FunctionalInterface
public interface PartGuard {
  /** Checks nothing. */
  PartGuard NONE = (c, keyspace, shard, map) -> null;

  /**
   * Null when the part may go on; else why not and which map would do. {@code c} is the part's connection,
   * in a transaction in which nothing has run yet; {@code map} is the pinned map of the keyspace.
   */
  Rerun check(Connection c, String keyspace, String shard, KeyspaceMap map) throws SQLException;

  /**
   * A request to run the query again at a newer map.
   *
   * @param reason for the error when no such map comes in time (names the shard and the fence)
   * @param passedBy true for a map of the keyspace the query may run at
   */
  record Rerun(String reason, Predicate<KeyspaceMap> passedBy) {}
}
