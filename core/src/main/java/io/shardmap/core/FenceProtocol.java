package io.shardmap.core;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The wire contract between a fenced PostgreSQL shard and whoever routes writes to it: what the fence
 * raises (SQLSTATE {@value #SQLSTATE}, a message naming the unit and carrying {@code fenced_epoch=E}) and how
 * a caller declares the route it used (three settings, the key in a form the fence compares without casts).
 * The migrator writes the fences from it and the client SDK reads the refusals and makes the declarations
 * from it (its {@code StaleRoute} explains the rules and why declarations are safe), so neither depends on
 * the other and the two sides cannot drift apart.
 */
public final class FenceProtocol {
  /** The SQLSTATE a fence raises ("SMF01": Shardmap fence, a user-defined class PostgreSQL allows). */
  public static final String SQLSTATE = "SMF01";

  /** Declaration setting: the keyspace whose map routed the call's key to this shard. */
  public static final String ROUTE_KEYSPACE = "shardmap.route_keyspace";
  /** Declaration setting: the epoch of the map entry that routed the key (decimal). */
  public static final String ROUTE_EPOCH = "shardmap.route_epoch";
  /**
   * Declaration setting: the key, as the fence compares it: an INT64 key in decimal, any other key as the
   * lower-case hex of its bytes (a string key's UTF-8) ({@link #declaredKey}).
   */
  public static final String ROUTE_KEY = "shardmap.route_key";

  private static final Pattern FENCED_EPOCH = Pattern.compile("fenced_epoch=(\\d+)");

  private FenceProtocol() {}

  /**
   * The text a fence raises, naming what it covers ({@code unit}: e.g. "hash bucket 3 of 8", "range [0,
   * 100)"). Whatever {@code unit} says, the message carries {@code fenced_epoch=E} as {@link #fencedEpoch}
   * reads it.
   */
  public static String message(String keyspace, String unit, long fencedEpoch) {
    return "shardmap: this shard no longer owns " + unit + " of keyspace '" + keyspace
        + "' (fenced_epoch=" + fencedEpoch + "); re-route with a newer map";
  }

  /** The fenced epoch a fence's message names, or -1 when it names none. */
  public static long fencedEpoch(String message) {
    Matcher m = FENCED_EPOCH.matcher(String.valueOf(message));
    return m.find() ? Long.parseLong(m.group(1)) : -1;
  }

  /** The declared form of an INT64 key: decimal, as PostgreSQL prints an integer column. */
  public static String declaredKey(long key) {
    return Long.toString(key);
  }

  /**
   * The declared form of a byte-string key: lower-case hex, as {@code encode(col, 'hex')} prints a bytea
   * column and {@code encode(convert_to(col, 'UTF8'), 'hex')} a text one.
   */
  public static String declaredKey(byte[] key) {
    return HexFormat.of().formatHex(key);
  }

  /** The declared form of a string key: the hex of its UTF-8. */
  public static String declaredKey(String key) {
    return declaredKey(key.getBytes(StandardCharsets.UTF_8));
  }
}
