package io.shardmap.client;

import java.sql.SQLException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The contract between a fenced shard and the SDK. When the migrator moves a range, it first fences the
 * range on the source shard inside PostgreSQL (a trigger), so any write that reaches the source after the
 * fence fails with SQLSTATE {@value #SQLSTATE} and a message carrying {@code fenced_epoch=E}: every route
 * for that range at an epoch up to E is stale. The cutover then raises the range's epoch above E in etcd.
 *
 * <p>The SDK keeps, for every call, the epoch of the route it used. On this error it waits until its map
 * routes the key at an epoch above E (the watch brings it within milliseconds; a direct lookup covers a
 * stalled watch), then runs the call again on the new owner, provided the call provably did not run (a
 * transaction, which PostgreSQL rolled back) or is declared idempotent.
 */
public final class StaleRoute {
  /** The SQLSTATE a fence raises ("SMF01": Shardmap fence, a user-defined class PostgreSQL allows). */
  public static final String SQLSTATE = "SMF01";

  private static final Pattern FENCED_EPOCH = Pattern.compile("fenced_epoch=(\\d+)");

  private StaleRoute() {}

  /**
   * The text a fence raises, e.g. from PL/pgSQL:
   * {@code RAISE EXCEPTION USING ERRCODE = 'SMF01', MESSAGE = StaleRoute.message(...)}.
   */
  public static String message(String keyspace, long fencedEpoch) {
    return "shardmap: this shard no longer owns the key's range in keyspace '" + keyspace
        + "' (fenced_epoch=" + fencedEpoch + "); re-route with a newer map";
  }

  /** True when {@code e}, or an exception it chains, is a fence's refusal. */
  public static boolean isStaleRoute(SQLException e) {
    return find(e) != null;
  }

  /**
   * The fenced epoch named by the refusal in {@code e}'s chain, or -1 when the fence did not name one
   * (then every route up to the one used is treated as stale).
   */
  public static long fencedEpoch(SQLException e) {
    SQLException f = find(e);
    if (f == null) {
      throw new IllegalArgumentException("not a stale-route error: " + e);
    }
    Matcher m = FENCED_EPOCH.matcher(String.valueOf(f.getMessage()));
    return m.find() ? Long.parseLong(m.group(1)) : -1;
  }

  private static SQLException find(SQLException e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof SQLException s) {
        if (SQLSTATE.equals(s.getSQLState())) {
          return s;
        }
        // Batch updates chain their failures with getNextException, not getCause.
        for (SQLException n = s.getNextException(); n != null; n = n.getNextException()) {
          if (SQLSTATE.equals(n.getSQLState())) {
            return n;
          }
        }
      }
    }
    return null;
  }
}
