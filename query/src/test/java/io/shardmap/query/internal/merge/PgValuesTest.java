package io.shardmap.query.internal.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.ColumnType.Collation;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Comparator;
import java.util.UUID;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class PgValuesTest {
  static final Collation C = new Collation("C", 'c', "C", true);
  static final Collation EN_ICU = new Collation("en-x-icu", 'i', "en", true);

  static Comparator<Object> order(String pgType, Collation coll) {
    return PgValues.order(new ColumnType(pgType, coll), "column 1", "ORDER BY");
  }

  @Test
  void textInCSortsByCodePointNotByUtf16Units() {
    Comparator<Object> c = order("text", C);
    String emoji = "\uD83D\uDE00"; // U+1F600, above U+FFFF
    String replacement = "\uFFFD";
    assertTrue(emoji.compareTo(replacement) < 0, "String.compareTo would put the emoji first");
    assertTrue(c.compare(replacement, emoji) < 0);
    assertTrue(c.compare("", "a") < 0);
    assertTrue(c.compare("B", "a") < 0);
    assertTrue(c.compare("ab", "abc") < 0);
    assertEquals(0, c.compare("é", "é"));
    for (String name : new String[] {"POSIX", "C.utf8", "C.UTF-8"}) {
      assertTrue(order("varchar", new Collation(name, 'c', name, true)).compare(replacement, emoji) < 0);
    }
    assertTrue(order("text", new Collation("ucs_basic", 'c', "C", true)).compare("B", "a") < 0);
  }

  @Test
  void icuCollationWithPostgresTieBreakByBytes() {
    Comparator<Object> c = order("text", EN_ICU);
    assertTrue(c.compare("a", "B") < 0);
    assertTrue(c.compare("a", "A") < 0, "ICU tertiary: lower case first");
    assertTrue(c.compare("e", "é") < 0);
    assertTrue(c.compare("é", "f") < 0);
    // Canonically equivalent spellings are equal to ICU; PostgreSQL then compares the bytes (strcmp).
    String composed = "\u00e9";
    String decomposed = "e\u0301";
    assertTrue(c.compare(decomposed, composed) < 0);
    assertTrue(c.compare(composed, decomposed) > 0);
    Comparator<Object> nondeterministic = order("text",
        new Collation("ci", 'i', "und-u-ks-level2", false));
    assertEquals(0, nondeterministic.compare("abc", "ABC"));
  }

  @Test
  void libcCollationsOtherThanByteOrderAreRefusedNamingColumnAndCollation() {
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> PgValues.order(new ColumnType("text", new Collation("en_US.utf8", 'c', "en_US.utf8", true)),
            "column 3", "ORDER BY"));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("column 3"), e.getMessage());
    assertTrue(e.getMessage().contains("en_US.utf8"), e.getMessage());
    assertTrue(e.getMessage().contains("COLLATE \"C\""), e.getMessage());
    ShardmapException noColl = assertThrows(ShardmapException.class, () -> order("text", null));
    assertTrue(noColl.getMessage().contains("no collation"), noColl.getMessage());
  }

  @Test
  void unsupportedTypesAreRefusedNamingColumnAndType() {
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> PgValues.order(new ColumnType("interval", null), "column 2", "MAX()"));
    assertTrue(e.getMessage().startsWith("MAX(): column 2 has type interval"), e.getMessage());
  }

  @Test
  void numbersCompareByValueAcrossClassesWithPostgresNanAndZero() {
    Comparator<Object> c = order("numeric", null);
    assertEquals(0, c.compare(1, 1L));
    assertEquals(0, c.compare(new BigDecimal("1.0"), new BigDecimal("1.00")));
    assertEquals(0, c.compare(new BigDecimal("1.00"), (short) 1));
    assertTrue(c.compare(new BigDecimal("0.1"), 0.1) < 0, "0.1 as a double is slightly above 0.1");
    assertTrue(c.compare(Long.MAX_VALUE, Long.MAX_VALUE - 1) > 0);
    assertTrue(c.compare(new BigDecimal("9223372036854775808"), Long.MAX_VALUE) > 0);
    assertTrue(c.compare(BigInteger.TWO.pow(70), Long.MAX_VALUE) > 0);
    assertTrue(c.compare(Double.NaN, Double.POSITIVE_INFINITY) > 0);
    assertTrue(c.compare(Double.NaN, new BigDecimal("1e100")) > 0);
    assertEquals(0, c.compare(Double.NaN, Double.NaN));
    assertTrue(c.compare(Double.NEGATIVE_INFINITY, new BigDecimal("-1e100")) < 0);
    assertEquals(0, c.compare(-0.0, 0.0));
    assertEquals(0, c.compare(-0.0f, 0));
    assertTrue(c.compare(Float.NaN, 1.0f) > 0);
  }

  @Test
  void booleansBytesUuidsAndTimes() {
    assertTrue(order("bool", null).compare(false, true) < 0);
    Comparator<Object> bytes = order("bytea", null);
    assertTrue(bytes.compare(new byte[] {0x7f}, new byte[] {(byte) 0x80}) < 0);
    assertTrue(bytes.compare(new byte[] {1}, new byte[] {1, 0}) < 0);
    Comparator<Object> uuid = order("uuid", null);
    UUID high = UUID.fromString("80000000-0000-0000-0000-000000000000");
    UUID low = UUID.fromString("00000000-0000-0000-0000-000000000001");
    assertTrue(high.compareTo(low) < 0, "UUID.compareTo is signed");
    assertTrue(uuid.compare(low, high) < 0);
    UUID lowLsb = UUID.fromString("00000000-0000-0000-8000-000000000000");
    assertTrue(uuid.compare(low, lowLsb) < 0);
    java.sql.Timestamp t1 = java.sql.Timestamp.valueOf("2024-01-01 00:00:00.000000001");
    java.sql.Timestamp t0 = java.sql.Timestamp.valueOf("2024-01-01 00:00:00");
    assertTrue(order("timestamptz", null).compare(t0, t1) < 0);
    assertTrue(order("date", null).compare(java.sql.Date.valueOf("2020-01-01"),
        java.sql.Date.valueOf("2020-01-02")) < 0);
    ColumnType bpchar = new ColumnType("bpchar", C);
    assertEquals(0, PgValues.order(bpchar, "c", "ORDER BY").compare("ab  ", "ab"));
    assertThrows(IllegalStateException.class, () -> order("int4", null).compare(1, "1"));
  }

  @Test
  void groupKeysAreEqualExactlyWhenPostgresEqualityIs() {
    ColumnType numeric = new ColumnType("numeric", null);
    ColumnType float8 = new ColumnType("float8", null);
    ColumnType text = new ColumnType("text", EN_ICU);
    assertEquals(key(new BigDecimal("1.0"), numeric), key(new BigDecimal("1.00"), numeric));
    assertEquals(key(new BigDecimal("0.000"), numeric), key(BigDecimal.ZERO, numeric));
    assertEquals(key(new BigDecimal("100"), numeric), key(new BigDecimal("1E+2"), numeric));
    assertEquals(key(1, new ColumnType("int4", null)), key(1L, new ColumnType("int8", null)));
    assertEquals(key(-0.0, float8), key(0.0, float8));
    assertEquals(key(Double.NaN, float8), key(Double.NaN, float8));
    assertNotEquals(key(1.0, float8), key(Double.NaN, float8));
    assertEquals(key(new byte[] {1, 2}, new ColumnType("bytea", null)),
        key(new byte[] {1, 2}, new ColumnType("bytea", null)));
    // ICU says equal, PostgreSQL's deterministic collation does not: distinct groups.
    assertNotEquals(key("\u00e9", text), key("e\u0301", text));
    assertEquals(key("ab ", new ColumnType("bpchar", C)), key("ab", new ColumnType("bpchar", C)));
    assertNotEquals(key("ab ", new ColumnType("varchar", C)), key("ab", new ColumnType("varchar", C)));
    ShardmapException e = assertThrows(ShardmapException.class, () -> PgValues.groupKey("a",
        new ColumnType("text", new Collation("ci", 'i', "und-u-ks-level2", false)), "column 1", "GROUP BY"));
    assertTrue(e.getMessage().contains("nondeterministic"), e.getMessage());
    assertThrows(ShardmapException.class,
        () -> PgValues.groupKey(new Object(), new ColumnType("interval", null), "column 1", "GROUP BY"));
  }

  private static Object key(Object v, ColumnType t) {
    return PgValues.groupKey(v, t, "column 1", "GROUP BY");
  }
}
