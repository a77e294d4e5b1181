package io.shardmap.query.internal.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.query.ColumnType;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.RowSource;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.SortKey;
import io.shardmap.testkit.PostgresFixture;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * PostgreSQL 15's ORDER BY against the merge's comparators, per type: random values with NULLs split into
 * three partitions, each sorted by PostgreSQL, k-way merged; the merge must give PostgreSQL's order of all
 * rows (equal up to values the order ties), for ASC/DESC and NULLS FIRST/LAST.
 */
@Tag("integration")
class PostgresOrderAgreementTest {
  static final int ROWS = 1000;
  static Connection conn;

  @BeforeAll
  static void connect() throws SQLException {
    conn = PostgresFixture.shared(1).shard(0).connect();
  }

  @AfterAll
  static void disconnect() throws SQLException {
    conn.close();
  }

  /** Characters that disagree between UTF-16 order, code point order and ICU: ASCII, accents, CJK, emoji. */
  static final String[] PIECES = {"a", "A", "b", "B", "z", "Z", "0", "9", " ", "-", "_", ".", "é", "É", "e\u0301",
      "ß", "ss", "ø", "Å", "ä", "日", "本", "中", "\u00a0", "\uFFFD", "\uE000", "\uD83D\uDE00", "\uD83D\uDC4D",
      "\uD834\uDD1E", "ı", "İ", "Ω", "ж",
      // Ignorable to ICU, so only PostgreSQL's tie-break by bytes orders them; U+FEFF and U+E0001 also
      // order differently by UTF-16 unit and by code point.
      "\u0001", "\u200B", "\uFEFF", "\uDB40\uDC01"};

  static String randomText(SplittableRandom rnd) {
    int n = rnd.nextInt(5);
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < n; i++) {
      b.append(PIECES[rnd.nextInt(PIECES.length)]);
    }
    return b.toString();
  }

  static String randomNumeric(SplittableRandom rnd) {
    switch (rnd.nextInt(20)) {
      case 0:
        return "NaN";
      case 1:
        return "Infinity";
      case 2:
        return "-Infinity";
      case 3:
        return rnd.nextBoolean() ? "1.0" : "1.000";
      default:
        java.math.BigDecimal v = java.math.BigDecimal.valueOf(rnd.nextLong(-100_000, 100_000), rnd.nextInt(6));
        return v.toPlainString();
    }
  }

  static String randomFloat(SplittableRandom rnd) {
    String[] specials = {"NaN", "Infinity", "-Infinity", "-0", "0", "1e-300", "-1e300"};
    return rnd.nextInt(5) == 0 ? specials[rnd.nextInt(specials.length)]
        : Double.toString((rnd.nextDouble() - 0.5) * Math.pow(10, rnd.nextInt(-5, 6)));
  }

  void check(String name, String sqlType, Function<SplittableRandom, String> gen) throws SQLException {
    String table = "qmerge_order_" + name;
    try (Statement s = conn.createStatement()) {
      s.execute("DROP TABLE IF EXISTS " + table);
      s.execute("CREATE TABLE " + table + " (id int, part int, v " + sqlType + ")");
    }
    SplittableRandom rnd = new SplittableRandom(name.hashCode());
    try (PreparedStatement ins = conn.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
      for (int i = 0; i < ROWS; i++) {
        String v = rnd.nextInt(10) == 0 ? null : gen.apply(rnd);
        ins.setInt(1, i);
        ins.setInt(2, rnd.nextInt(3));
        ins.setObject(3, v, java.sql.Types.OTHER); // untyped: PostgreSQL reads the text as the column type
        ins.addBatch();
      }
      ins.executeBatch();
    }
    String expr = "v";
    ColumnType type = null;
    for (boolean desc : new boolean[] {false, true}) {
      for (boolean nullsFirst : new boolean[] {false, true}) {
        String order = " ORDER BY " + expr + (desc ? " DESC" : " ASC") + (nullsFirst ? " NULLS FIRST" : " NULLS LAST");
        List<Object[]> all = new ArrayList<>();
        type = query("SELECT v FROM " + table + order, all);
        List<RowSource> parts = new ArrayList<>();
        for (int p = 0; p < 3; p++) {
          List<Object[]> rows = new ArrayList<>();
          query("SELECT v FROM " + table + " WHERE part = " + p + order, rows);
          parts.add(new FakeSource(rows));
        }
        List<SortKey> keys = List.of(new SortKey(0, desc, nullsFirst));
        RowOrder cmp = new RowOrder(keys, List.of(type), "ORDER BY");
        for (int i = 1; i < all.size(); i++) {
          assertTrue(cmp.compare(all.get(i - 1), all.get(i)) <= 0, name + order + ": PostgreSQL puts "
              + show(all.get(i - 1)[0]) + " before " + show(all.get(i)[0]));
        }
        List<Object[]> merged = MergerTest.drain(Merger.open(new MergeSpec(1, keys, null, List.of(), Bound.NONE,
            Bound.NONE, List.of(0)), parts, List.of(), new MergeOptions(1, List.of(type))));
        assertEquals(all.size(), merged.size());
        for (int i = 0; i < all.size(); i++) {
          assertEquals(0, cmp.compare(all.get(i), merged.get(i)), name + order + " row " + i + ": PostgreSQL "
              + show(all.get(i)[0]) + ", merge " + show(merged.get(i)[0]));
          if (all.get(i)[0] instanceof String) {
            // A deterministic collation ties only identical strings: the very same sequence.
            assertEquals(show(all.get(i)[0]), show(merged.get(i)[0]), name + order + " row " + i);
          }
        }
        assertEquals(multiset(all), multiset(merged), name + order);
      }
    }
  }

  /** Runs a one-column query; returns the column's type with its collation, as the SDK probes it. */
  static ColumnType query(String sql, List<Object[]> out) throws SQLException {
    try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      String pgType = rs.getMetaData().getColumnTypeName(1);
      while (rs.next()) {
        out.add(new Object[] {rs.getObject(1)});
      }
      return new ColumnType(pgType, collationOf(sql));
    }
  }

  static ColumnType.Collation collationOf(String sql) throws SQLException {
    String probe = "SELECT c.collname, c.collprovider, coalesce(c.colliculocale, c.collcollate), c.collisdeterministic"
        + " FROM pg_collation c WHERE c.oid = (SELECT coalesce(nullif(a.attcollation, 0), 0) FROM pg_attribute a"
        + " WHERE a.attrelid = ?::regclass AND a.attname = 'v')";
    String table = sql.replaceAll(".* FROM (\\S+).*", "$1");
    try (PreparedStatement ps = conn.prepareStatement(probe)) {
      ps.setString(1, table);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          return null;
        }
        String name = rs.getString(1);
        char provider = rs.getString(2).charAt(0);
        String locale = rs.getString(3);
        if (name.equals("default")) {
          // This test's databases are initdb --locale=C: the default is libc C.
          provider = 'c';
          locale = "C";
        }
        return new ColumnType.Collation(name, provider, locale, rs.getBoolean(4));
      }
    }
  }

  static String show(Object v) {
    if (v instanceof byte[]) {
      return HexFormat.of().formatHex((byte[]) v);
    }
    if (v instanceof String) {
      return "'" + v + "' " + ((String) v).codePoints().mapToObj(Integer::toHexString).toList();
    }
    return v == null ? "NULL" : v + " (" + v.getClass().getSimpleName() + ")";
  }

  static List<String> multiset(List<Object[]> rows) {
    List<String> out = new ArrayList<>();
    for (Object[] r : rows) {
      out.add(show(r[0]));
    }
    out.sort(null);
    return out;
  }

  @Test
  void integers() throws SQLException {
    check("int4", "int4", r -> Integer.toString(r.nextInt(20) == 0 ? Integer.MIN_VALUE : r.nextInt(-50, 50)));
    check("int8", "int8", r -> Long.toString(r.nextInt(10) == 0 ? Long.MAX_VALUE : r.nextLong()));
  }

  @Test
  void numericWithNanInfinitiesAndTrailingZeros() throws SQLException {
    check("numeric", "numeric", PostgresOrderAgreementTest::randomNumeric);
  }

  @Test
  void float8WithNanSignedZeroAndInfinities() throws SQLException {
    check("float8", "float8", PostgresOrderAgreementTest::randomFloat);
  }

  @Test
  void textInC() throws SQLException {
    check("text_c", "text COLLATE \"C\"", PostgresOrderAgreementTest::randomText);
    check("varchar_c", "varchar(20) COLLATE \"C\"", PostgresOrderAgreementTest::randomText);
  }

  @Test
  void textInIcuCollations() throws SQLException {
    List<String> icu = new ArrayList<>();
    try (Statement s = conn.createStatement();
         ResultSet rs = s.executeQuery("SELECT collname FROM pg_collation WHERE collprovider = 'i'"
             + " AND collname IN ('und-x-icu', 'en-x-icu', 'de-x-icu', 'sv-x-icu')")) {
      while (rs.next()) {
        icu.add(rs.getString(1));
      }
    }
    assertTrue(icu.contains("und-x-icu") && icu.contains("en-x-icu"),
        "PostgreSQL 15 built with ICU has und-x-icu and en-x-icu; found " + icu);
    for (String coll : icu) {
      check("text_" + coll.replace("-", "_"), "text COLLATE \"" + coll + "\"", PostgresOrderAgreementTest::randomText);
    }
  }

  @Test
  void boolByteaUuidTimestamptzDate() throws SQLException {
    check("bool", "bool", r -> Boolean.toString(r.nextBoolean()));
    check("bytea", "bytea", r -> {
      byte[] b = new byte[r.nextInt(4)];
      for (int i = 0; i < b.length; i++) {
        b[i] = (byte) r.nextInt(256);
      }
      return "\\x" + HexFormat.of().formatHex(b);
    });
    check("uuid", "uuid", r -> new java.util.UUID(r.nextInt(4) == 0 ? r.nextLong() : r.nextLong(4),
        r.nextLong()).toString());
    check("date", "date", r -> r.nextInt(25) == 0 ? "infinity"
        : java.time.LocalDate.ofEpochDay(r.nextLong(-100_000, 100_000)).toString());
  }

  @Test
  void timestamptz() throws SQLException {
    // Microseconds over several centuries, and the infinities.
    check("timestamptz", "timestamptz", r -> {
      if (r.nextInt(25) == 0) {
        return r.nextBoolean() ? "infinity" : "-infinity";
      }
      long micros = r.nextLong(-2_000_000_000_000_000L, 4_000_000_000_000_000L);
      java.time.Instant t = java.time.Instant.EPOCH.plusNanos(micros * 1000);
      return t.toString();
    });
  }
}
