package io.shardmap.query.internal.merge;

import com.ibm.icu.text.Collator;
import com.ibm.icu.text.RawCollationKey;
import com.ibm.icu.util.ULocale;
import io.shardmap.core.CodePointOrder;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * PostgreSQL's value semantics for the merge: the order of each type as PostgreSQL's ORDER BY sorts it, and
 * the equality GROUP BY and DISTINCT apply. Values are what PgJDBC's {@code getObject} returns.
 *
 * <p>Text orders in the column's collation. Only collations whose order can be reproduced exactly are
 * accepted: the byte-order ones ({@code C}, {@code POSIX}, {@code ucs_basic}, {@code C.utf8}: Unicode code
 * point order, which is UTF-8 byte order) and ICU collations (ICU4J of the same ICU version as the servers,
 * with PostgreSQL's tie-break of equal strings by their bytes for deterministic collations). Other libc
 * collations are refused: glibc's {@code strcoll} tables differ between glibc versions and from ICU, so no
 * Java comparator can promise PostgreSQL's order.
 */
final class PgValues {
  private PgValues() {}

  private static final Set<String> INTEGER_TYPES = Set.of("int2", "int4", "int8", "oid", "smallint",
      "integer", "bigint", "smallserial", "serial", "bigserial", "xid", "cid");
  private static final Set<String> NUMERIC_TYPES = Set.of("numeric", "decimal", "float4", "float8", "real",
      "double precision");
  private static final Set<String> TEXT_TYPES = Set.of("text", "varchar", "bpchar", "character varying",
      "character", "name");
  private static final Set<String> TIME_TYPES = Set.of("timestamp", "timestamptz", "date", "time");

  private static final Map<String, Collator> ICU_COLLATORS = new ConcurrentHashMap<>();

  /** Whether the column is an integer, numeric or floating point column. */
  static boolean isNumericType(ColumnType type) {
    String t = pgType(type);
    return INTEGER_TYPES.contains(t) || NUMERIC_TYPES.contains(t);
  }

  static String pgType(ColumnType type) {
    return type == null || type.pgType() == null ? "" : type.pgType().toLowerCase(Locale.ROOT);
  }

  /**
   * The order of non-null values of a column, as PostgreSQL's default btree operator class sorts them;
   * refuses (INVALID_ARGUMENT naming the column and its type or collation) what cannot be reproduced.
   *
   * @param what how the error names the column ("column 3", "GROUP BY column 1")
   * @param clause the clause that needs the order, for the error
   */
  static Comparator<Object> order(ColumnType type, String what, String clause) {
    String t = pgType(type);
    if (INTEGER_TYPES.contains(t) || NUMERIC_TYPES.contains(t)) {
      return checked(PgValues::compareNumbers, Number.class, type, what);
    }
    if (TEXT_TYPES.contains(t) || t.equals("char") || t.equals("\"char\"")) {
      Comparator<String> text = textOrder(type, what, clause);
      boolean blankPadded = t.equals("bpchar") || t.equals("character");
      Comparator<String> effective = blankPadded
          ? (a, b) -> text.compare(stripTrailingSpaces(a), stripTrailingSpaces(b)) : text;
      return checked((a, b) -> effective.compare((String) a, (String) b), String.class, type, what);
    }
    switch (t) {
      case "bool":
      case "boolean":
        return checked((a, b) -> Boolean.compare((Boolean) a, (Boolean) b), Boolean.class, type, what);
      case "bytea":
        return checked((a, b) -> Arrays.compareUnsigned((byte[]) a, (byte[]) b), byte[].class, type, what);
      case "uuid":
        return checked((a, b) -> compareUuids((UUID) a, (UUID) b), UUID.class, type, what);
      default:
        break;
    }
    if (TIME_TYPES.contains(t)) {
      return checked(PgValues::compareTimes, Object.class, type, what);
    }
    throw ShardmapException.invalid(clause, what + " has type " + (t.isEmpty() ? "(unknown)" : t)
        + ", which the cross-shard merge cannot order as PostgreSQL does (supported: integer, numeric, "
        + "floating point, text types in a byte-order or ICU collation, boolean, bytea, uuid, date, time, "
        + "timestamp, timestamptz); order or aggregate on a supported type, for example a cast");
  }

  private static Comparator<Object> checked(Comparator<Object> c, Class<?> expected, ColumnType type,
                                            String what) {
    return (a, b) -> {
      if (!expected.isInstance(a) || !expected.isInstance(b)) {
        throw new IllegalStateException(what + " of type " + pgType(type) + " holds a value of "
            + (expected.isInstance(a) ? b : a).getClass().getName() + ", not " + expected.getSimpleName());
      }
      return c.compare(a, b);
    };
  }

  /** The order of the column's collation, or the refusal naming it and what to use instead. */
  static Comparator<String> textOrder(ColumnType type, String what, String clause) {
    ColumnType.Collation coll = type.collation();
    if (coll == null) {
      throw ShardmapException.invalid(clause, what + " (" + pgType(type) + ") has no collation in the merge "
          + "options, so its PostgreSQL order is unknown");
    }
    if (isByteOrder(coll)) {
      return PgValues::compareCodePoints;
    }
    if (coll.provider() == 'i') {
      Comparator<String> collator = new IcuOrder(icuCollator(coll.locale()));
      if (coll.deterministic()) {
        return (a, b) -> {
          int c = collator.compare(a, b);
          return c != 0 ? c : compareCodePoints(a, b);
        };
      }
      return collator;
    }
    throw ShardmapException.invalid(clause, what + " is text in the libc collation \"" + coll.name()
        + "\" (locale " + coll.locale() + "), whose order a merge cannot reproduce exactly (glibc's strcoll "
        + "is neither Java's nor ICU's); write COLLATE \"C\" or an ICU collation such as \"und-x-icu\" in "
        + "the statement");
  }

  /** Collations that sort by bytes: C, POSIX, ucs_basic, C.UTF-8 (glibc's sorts by code point). */
  static boolean isByteOrder(ColumnType.Collation coll) {
    if (coll.provider() != 'c') {
      return false;
    }
    String locale = coll.locale() == null ? coll.name() : coll.locale();
    String l = locale.toLowerCase(Locale.ROOT);
    return l.equals("c") || l.equals("posix") || l.equals("c.utf8") || l.equals("c.utf-8");
  }

  private static Collator icuCollator(String locale) {
    return ICU_COLLATORS.computeIfAbsent(locale == null ? "" : locale, l -> {
      ULocale ul = l.contains("-") || l.equals("und") ? ULocale.forLanguageTag(l) : new ULocale(l);
      // Frozen collators are thread-safe, so one serves every merge.
      return Collator.getInstance(ul).freeze();
    });
  }

  /**
   * ICU order by sort keys, not by {@code Collator.compare}: ICU4J's incremental compare disagrees with
   * ICU4C (PostgreSQL's {@code ucol_strcollUTF8}) on some strings with expansions, for example
   * {@code 'Aaß' < 'aÅss'} in und-x-icu, while ICU4J's sort keys agree with ICU4C. One comparator serves
   * one merge (single-threaded), so it keeps the keys of recently compared strings (the heads of a k-way
   * merge, a running MIN or MAX) instead of recomputing them.
   */
  private static final class IcuOrder implements Comparator<String> {
    private static final int CACHED = 512;
    private final Collator collator;
    private final Map<String, RawCollationKey> keys = new LinkedHashMap<>(CACHED * 2, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, RawCollationKey> eldest) {
        return size() > CACHED;
      }
    };

    IcuOrder(Collator collator) {
      this.collator = collator;
    }

    @Override
    public int compare(String a, String b) {
      return key(a).compareTo(key(b));
    }

    private RawCollationKey key(String s) {
      RawCollationKey k = keys.get(s);
      if (k == null) {
        k = collator.getRawCollationKey(s, null);
        keys.put(s, k);
      }
      return k;
    }
  }

  static String stripTrailingSpaces(String s) {
    int end = s.length();
    while (end > 0 && s.charAt(end - 1) == ' ') {
      end--;
    }
    return s.substring(0, end);
  }

  /** Unicode code point order, which is the byte order of UTF-8 (String.compareTo is UTF-16 unit order). */
  static int compareCodePoints(String a, String b) {
    return CodePointOrder.compare(a, b);
  }

  /** PostgreSQL's uuid order: the 16 bytes unsigned (UUID.compareTo compares signed longs). */
  static int compareUuids(UUID a, UUID b) {
    int c = Long.compareUnsigned(a.getMostSignificantBits(), b.getMostSignificantBits());
    return c != 0 ? c : Long.compareUnsigned(a.getLeastSignificantBits(), b.getLeastSignificantBits());
  }

  /**
   * Numbers by value across Integer, Long, Short, BigInteger, BigDecimal, Double and Float: NaN equals NaN
   * and sorts above everything (infinity included), -0.0 equals 0.0, as PostgreSQL's numeric and float8.
   */
  static int compareNumbers(Object x, Object y) {
    Number a = (Number) x;
    Number b = (Number) y;
    if (isIntegral(a) && isIntegral(b) && !(a instanceof BigInteger) && !(b instanceof BigInteger)) {
      return Long.compare(a.longValue(), b.longValue());
    }
    boolean fa = a instanceof Double || a instanceof Float;
    boolean fb = b instanceof Double || b instanceof Float;
    if (fa || fb) {
      double da = a.doubleValue();
      double db = b.doubleValue();
      if (Double.isNaN(da) || Double.isNaN(db)) {
        return Boolean.compare(Double.isNaN(da), Double.isNaN(db));
      }
      if (Double.isInfinite(da) || Double.isInfinite(db) || (fa && fb)) {
        return da == db ? 0 : (da < db ? -1 : 1);
      }
    }
    return toBigDecimal(a).compareTo(toBigDecimal(b));
  }

  static boolean isIntegral(Object n) {
    return n instanceof Integer || n instanceof Long || n instanceof Short || n instanceof Byte
        || n instanceof BigInteger;
  }

  /** The exact value of a finite number. */
  static BigDecimal toBigDecimal(Number n) {
    if (n instanceof BigDecimal) {
      return (BigDecimal) n;
    }
    if (n instanceof BigInteger) {
      return new BigDecimal((BigInteger) n);
    }
    if (n instanceof Double || n instanceof Float) {
      return new BigDecimal(n.doubleValue());
    }
    return BigDecimal.valueOf(n.longValue());
  }

  private static int compareTimes(Object a, Object b) {
    if (a instanceof java.util.Date && b instanceof java.util.Date) {
      // java.sql.Timestamp keeps nanoseconds beyond the millisecond getTime.
      if (a instanceof java.sql.Timestamp && b instanceof java.sql.Timestamp) {
        return ((java.sql.Timestamp) a).compareTo((java.sql.Timestamp) b);
      }
      return Long.compare(((java.util.Date) a).getTime(), ((java.util.Date) b).getTime());
    }
    if (a instanceof OffsetDateTime && b instanceof OffsetDateTime) {
      return ((OffsetDateTime) a).toInstant().compareTo(((OffsetDateTime) b).toInstant());
    }
    if (a instanceof Instant && b instanceof Instant) {
      return ((Instant) a).compareTo((Instant) b);
    }
    if (a instanceof LocalDateTime && b instanceof LocalDateTime) {
      return ((LocalDateTime) a).compareTo((LocalDateTime) b);
    }
    if (a instanceof LocalDate && b instanceof LocalDate) {
      return ((LocalDate) a).compareTo((LocalDate) b);
    }
    if (a instanceof LocalTime && b instanceof LocalTime) {
      return ((LocalTime) a).compareTo((LocalTime) b);
    }
    throw new IllegalStateException("cannot compare a " + a.getClass().getName() + " with a "
        + b.getClass().getName() + " as date/time values");
  }

  /**
   * The key under which GROUP BY and DISTINCT put a value: equal keys exactly when PostgreSQL's equality
   * operator of the type says equal (numbers by value, so 1 = 1.00 and -0.0 = 0.0 and NaN = NaN; text of a
   * deterministic collation by its bytes, bpchar without trailing spaces; timestamps by instant). Null for
   * SQL NULL (GROUP BY puts all NULLs in one group).
   */
  static Object groupKey(Object v, ColumnType type, String what, String clause) {
    if (v == null) {
      return null;
    }
    if (v instanceof Number) {
      Number n = (Number) v;
      if (isIntegral(n) && !(n instanceof BigInteger)) {
        return n.longValue();
      }
      if (n instanceof Double || n instanceof Float) {
        // float4/float8 values, or numeric's NaN and infinities (PgJDBC gives those as Double); a numeric
        // column's finite values are BigDecimals, so a Double never needs to equal a BigDecimal.
        double d = n.doubleValue();
        return d == 0 ? 0.0 : d;
      }
      BigDecimal bd = toBigDecimal(n);
      return bd.signum() == 0 ? BigDecimal.ZERO : bd.stripTrailingZeros();
    }
    if (v instanceof String) {
      ColumnType.Collation coll = type == null ? null : type.collation();
      if (coll != null && !coll.deterministic()) {
        throw ShardmapException.invalid(clause, what + " is text in the nondeterministic collation \""
            + coll.name() + "\", whose equality (not byte equality) the merge cannot reproduce; write "
            + "COLLATE \"C\" or a deterministic collation in the statement");
      }
      String t = pgType(type);
      return t.equals("bpchar") || t.equals("character") ? stripTrailingSpaces((String) v) : v;
    }
    if (v instanceof byte[]) {
      return new Bytes((byte[]) v);
    }
    if (v instanceof OffsetDateTime) {
      return ((OffsetDateTime) v).toInstant();
    }
    if (v instanceof Boolean || v instanceof UUID || v instanceof java.util.Date || v instanceof Instant
        || v instanceof LocalDateTime || v instanceof LocalDate || v instanceof LocalTime) {
      return v;
    }
    throw ShardmapException.invalid(clause, what + " has type " + pgType(type) + " (Java "
        + v.getClass().getName() + "), whose PostgreSQL equality the merge cannot reproduce; group by a "
        + "supported type, for example a cast to text");
  }

  /** A byte array compared by content, for hash keys. */
  private record Bytes(byte[] value) {
    @Override
    public boolean equals(Object o) {
      return o instanceof Bytes && Arrays.equals(value, ((Bytes) o).value);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(value);
    }
  }
}
