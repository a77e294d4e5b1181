package io.shardmap.core.sql;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * SQL conditions on a key column that select a set of keys the way Shardmap routes them: a half-open range
 * of canonical bytes, a hash bucket, a ring arc, a list of keys or everything but a list. Each is a
 * boolean expression over {@code ref} (a column of {@link KeyKind} {@code kind}, or {@code NEW.col} in a
 * trigger). A NULL key is routed nowhere and these make no promise about it (a condition selecting every key
 * is {@code true}); sharded tables' key columns are meant to be NOT NULL. Conditions on buckets and
 * arcs call {@link SqlRouting}'s functions, which must be installed on the database.
 *
 * <p>These are the only places key-selecting SQL is written: the migrator's move units and each strategy's
 * "what does shard S own" ({@code StrategyKind#ownedBy}) are built from them, so the copied, fenced and
 * scattered-to sets of rows agree with the routing code by construction (and the differential tests
 * compare them with it on real PostgreSQL).
 */
public final class KeySql {
  private KeySql() {}

  public static final String TRUE = "true";
  public static final String FALSE = "false";

  /** The keys in {@code range}. INT64 columns compare integers; bytea and text compare canonical bytes. */
  public static String range(KeyKind kind, String ref, KeyRange range) {
    return switch (kind) {
      case INT64 -> intRange(ref, range.unboundedBelow() ? null : Keys.decodeInt64(range.start()),
          range.unboundedAbove() ? null : Keys.decodeInt64(range.end()));
      // bytea orders like canonical bytes (unsigned, shorter first), so the column's index serves it.
      case BYTEA -> byteBounds(ref, range);
      // A text column orders by its collation, not by UTF-8 bytes: compare the bytes themselves.
      case TEXT -> byteBounds(kind.canonicalSql(ref), range);
    };
  }

  /** The integers in [lo, hi) (null: unbounded on that side). */
  public static String intRange(String ref, Long lo, Long hi) {
    String c = lo == null ? "" : ref + " >= " + lo;
    if (hi != null) {
      c = (c.isEmpty() ? "" : c + " AND ") + ref + " < " + hi;
    }
    return c.isEmpty() ? TRUE : "(" + c + ")";
  }

  private static String byteBounds(String bytes, KeyRange range) {
    List<String> c = new ArrayList<>();
    if (!range.unboundedBelow()) {
      c.add(bytes + " >= " + KeyKind.bytea(range.start()));
    }
    if (!range.unboundedAbove()) {
      c.add(bytes + " < " + KeyKind.bytea(range.end()));
    }
    return c.isEmpty() ? TRUE : "(" + String.join(" AND ", c) + ")";
  }

  /** The keys in the given buckets of {@code buckets} hash buckets (xxHash64 mod N, unsigned). */
  public static String buckets(KeyKind kind, String ref, Collection<Integer> which, int buckets) {
    if (which.isEmpty()) {
      return FALSE;
    }
    String b = SqlRouting.bucket(kind.hashSql(ref), buckets);
    if (which.size() == 1) {
      return b + " = " + which.iterator().next();
    }
    StringBuilder s = new StringBuilder(b).append(" IN (");
    int i = 0;
    for (int x : which) {
      s.append(i++ == 0 ? "" : ", ").append(x);
    }
    return s.append(')').toString();
  }

  /**
   * The keys whose ring position (xxHash64, unsigned) lies in the arc (after, upTo]; {@code after == upTo}
   * is the whole ring (a ring of one node).
   */
  public static String arc(KeyKind kind, String ref, long after, long upTo) {
    if (after == upTo) {
      return TRUE;
    }
    // Flipping the sign bit makes signed order the unsigned ring order. The hash is referenced once
    // (a range containment), so it is computed once per row.
    long a = after ^ Long.MIN_VALUE;
    long u = upTo ^ Long.MIN_VALUE;
    String pos = "(" + kind.hashSql(ref) + " # (" + Long.MIN_VALUE + ")::bigint)";
    if (a < u) {
      return "(" + int8range(a, u) + " @> " + pos + ")";
    }
    // Wraps past the top: everything except (upTo, after].
    return "(NOT " + int8range(u, a) + " @> " + pos + ")";
  }

  /** SQL: the int8range (x, y] (x &lt; y). */
  private static String int8range(long x, long y) {
    return "int8range(" + (x + 1) + ", " + (y == Long.MAX_VALUE ? "NULL" : Long.toString(y + 1)) + ")";
  }

  /** The listed keys (canonical bytes); none: no key. */
  public static String in(KeyKind kind, String ref, Collection<byte[]> keys) {
    if (keys.isEmpty()) {
      return FALSE;
    }
    StringBuilder b = new StringBuilder(ref).append(" IN (");
    int i = 0;
    for (byte[] k : keys) {
      b.append(i++ == 0 ? "" : ", ").append(kind.literal(k));
    }
    return b.append(')').toString();
  }

  /** Every key but the listed ones; none listed: every key. */
  public static String notIn(KeyKind kind, String ref, Collection<byte[]> keys) {
    return keys.isEmpty() ? TRUE : "(NOT " + in(kind, ref, keys) + ")";
  }

  /** The disjunction of conditions (none: false). */
  public static String or(List<String> conditions) {
    if (conditions.isEmpty()) {
      return FALSE;
    }
    if (conditions.contains(TRUE)) {
      return TRUE;
    }
    return conditions.size() == 1 ? conditions.get(0) : "(" + String.join(" OR ", conditions) + ")";
  }
}
