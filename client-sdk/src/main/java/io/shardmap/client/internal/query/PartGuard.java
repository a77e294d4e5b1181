package io.shardmap.client.internal.query;

import io.shardmap.core.KeyspaceMap;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.List;
import java.util.function.Predicate;

/**
 * The hook that decides whether one shard's part of a cross-shard query may trust what the shard holds at
 * the map the query pinned. The check reads in the snapshot the part's rows come from (the part's READ ONLY
 * REPEATABLE READ transaction). A part whose shard has been fenced for a move the pinned map does not know
 * about yet (its rows may already live on the new owner and be deleted here) answers {@link Rerun}: the
 * executor then drops every part of the run, waits until the client's map satisfies {@link Rerun#passedBy},
 * re-plans the targets at that map and runs again (at most {@code DataOptions.maxAttempts} runs within the
 * query's deadline).
 *
 * <p>A guard checks in one of two ways. {@link #inline} gives one statement that the executor sends in the
 * same round trip as the part's own, ahead of it in its transaction, and reads the verdict from its rows:
 * what the executor prefers. When a guard has none for a shard ({@code inline} returns null), the executor
 * calls {@link #check} first on the part's transaction, which costs round trips of its own.
 *
 * <p>{@link #NONE} checks nothing and sends nothing. The migration-fence guard is installed by
 * {@code ShardmapData}; implementations are thread-safe (one instance serves every part of every query).
 */
@FunctionalInterface
public interface PartGuard {
  /** Checks nothing. */
  PartGuard NONE = (c, keyspace, shard, map) -> null;

  /**
   * Null when the part may go on; else why not and which map would do. {@code c} is the part's connection,
   * in a REPEATABLE READ transaction in which no query has run yet; {@code map} is the pinned map of the
   * keyspace.
   */
  Rerun check(Connection c, String keyspace, String shard, KeyspaceMap map) throws SQLException;

  /**
   * The check of the part on {@code shard} as one statement sent with the part's own, or null when this guard
   * has none for the shard (then {@link #check} runs). Asked again for every attempt at a part, so a guard may
   * first send a statement that learns how to check the shard and answer {@link #AGAIN} from it.
   */
  default Inline inline(String keyspace, String shard) {
    return null;
  }

  /**
   * What an {@link Inline} statement's rows may answer besides a verdict: they only taught the guard how to
   * check the shard. The executor discards the part's rows of that round trip and sends the part again, in a
   * new transaction, with the guard's next {@link #inline} statement. Compared by identity.
   */
  Rerun AGAIN = new Rerun("the guard learned how to check the shard; the part is sent again", m -> true);

  /**
   * One check statement, sent in the part's transaction right before the part's statement, so both read
   * in one snapshot.
   */
  interface Inline {
    /** One PostgreSQL statement with JDBC {@code ?} placeholders. */
    String sql();

    /** The placeholders' values, in order. */
    List<Object> params();

    /**
     * The verdict from the statement's rows: null when the part may go on, a {@link Rerun}, or
     * {@link #AGAIN}. {@code map} is the pinned map of the keyspace.
     */
    Rerun verdict(ResultSet rows, KeyspaceMap map) throws SQLException;

    /**
     * The round trip that carried the statement failed with {@code e} (maybe in the part's own statement):
     * a guard that caches what it learned of the shard may drop it.
     */
    default void failed(SQLException e) {}
  }

  /**
   * A request to run the query again at a newer map.
   *
   * @param reason for the error when no such map comes in time (names the shard and the fence)
   * @param passedBy true for a map of the keyspace the query may run at
   */
  record Rerun(String reason, Predicate<KeyspaceMap> passedBy) {}
}
