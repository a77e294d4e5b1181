package io.shardmap.client;

import io.shardmap.core.FenceProtocol;
import java.sql.SQLException;

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
 *
 * <p><b>Declared routes.</b> A shard may also refuse with a fenced epoch <i>below</i> the epoch of the route
 * the call used: the key left this shard at that epoch and has since come back (a newer route names this
 * shard again), but the migrator has not lifted the old fence yet (the instant between etcd's owner switch
 * and the lift, or longer when the migrator died in between). Then the SDK runs the call again on the same
 * shard with a <i>declaration</i> as its first statement: the three settings {@link #ROUTE_KEYSPACE},
 * {@link #ROUTE_EPOCH} and {@link #ROUTE_KEY} say "my map routes this key of this keyspace to this shard at
 * this epoch" ({@link #declarationSql}). A fence lets a row through when a declaration names the row's key
 * and keyspace at an epoch above the fence's: that is a true statement about the map, and the map says
 * this shard owns the key again.
 *
 * <p>Why a declaration cannot open a fence it should not, even one set by hand or left on a pooled
 * connection: for any key, the epoch of the map entry routing it never decreases and rises whenever its
 * owner changes (docs/data-model.md, "Epochs"). A fence on shard S for key K is put at E, the highest
 * epoch K has had, when K leaves S. Any route of K to S after that has an epoch above E, and exists only
 * once K has been moved back to S (its rows copied there); any later fence of K on S is put at an epoch at
 * least as high as every epoch K had before it, so no declaration made earlier passes it. A declaration
 * with epoch e &gt; E for K on S is thus a permanent fact: K belonged to S again after that fence. (A
 * declaration that is not true, made up by hand, is bounded by the shard itself: a fence accepts
 * declarations only while a move brings its unit back, up to the epoch the unit gets there.)
 */
public final class StaleRoute {
  /** The SQLSTATE a fence raises ({@link FenceProtocol#SQLSTATE}). */
  public static final String SQLSTATE = FenceProtocol.SQLSTATE;

  /** Declaration setting: the keyspace whose map routed the call's key to this shard. */
  public static final String ROUTE_KEYSPACE = FenceProtocol.ROUTE_KEYSPACE;
  /** Declaration setting: the epoch of the map entry that routed the key (decimal). */
  public static final String ROUTE_EPOCH = FenceProtocol.ROUTE_EPOCH;
  /** Declaration setting: the key, as the fence compares it ({@link #declaredKey}). */
  public static final String ROUTE_KEY = FenceProtocol.ROUTE_KEY;

  private StaleRoute() {}

  /**
   * The text a fence raises, e.g. from PL/pgSQL:
   * {@code RAISE EXCEPTION USING ERRCODE = 'SMF01', MESSAGE = StaleRoute.message(...)}.
   */
  public static String message(String keyspace, long fencedEpoch) {
    return message(keyspace, "the key's map entry", fencedEpoch);
  }

  /**
   * The same, naming what the fence covers ({@code unit}: e.g. "hash bucket 3 of 8", "range [0, 100)").
   * Whatever {@code unit} says, the message carries {@code fenced_epoch=E} as {@link #fencedEpoch} reads it.
   */
  public static String message(String keyspace, String unit, long fencedEpoch) {
    return FenceProtocol.message(keyspace, unit, fencedEpoch);
  }

  /**
   * SQL that sets the declaration for the current transaction ({@code local}) or session, with three
   * parameters: keyspace, epoch (as text), key ({@link #declaredKey}).
   */
  public static String declarationSql(boolean local) {
    return "SELECT set_config('" + ROUTE_KEYSPACE + "', ?, " + local + "), set_config('" + ROUTE_EPOCH
        + "', ?, " + local + "), set_config('" + ROUTE_KEY + "', ?, " + local + ")";
  }

  /** SQL that clears a session-level declaration. */
  public static String clearDeclarationSql() {
    return "SELECT set_config('" + ROUTE_KEYSPACE + "', '', false), set_config('" + ROUTE_EPOCH
        + "', '', false), set_config('" + ROUTE_KEY + "', '', false)";
  }

  /** The declared form of an INT64 key: decimal, as PostgreSQL prints an integer column. */
  public static String declaredKey(long key) {
    return FenceProtocol.declaredKey(key);
  }

  /**
   * The declared form of a byte-string key: lower-case hex, as {@code encode(col, 'hex')} prints a bytea
   * column and {@code encode(convert_to(col, 'UTF8'), 'hex')} a text one.
   */
  public static String declaredKey(byte[] key) {
    return FenceProtocol.declaredKey(key);
  }

  /** The declared form of a string key: the hex of its UTF-8. */
  public static String declaredKey(String key) {
    return FenceProtocol.declaredKey(key);
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
    return FenceProtocol.fencedEpoch(f.getMessage());
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
