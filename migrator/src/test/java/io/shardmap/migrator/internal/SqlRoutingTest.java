package io.shardmap.migrator.internal;

import io.shardmap.core.sql.SqlRouting;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.shardmap.core.HashTable;
import io.shardmap.core.Keys;
import io.shardmap.core.XxHash64;
import io.shardmap.testkit.PostgresFixture;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The SQL routing functions agree with core on real PostgreSQL, key by key: canonical bytes, xxHash64 and
 * hash buckets of thousands of random and edge-case INT64 keys and BYTES keys (from bytea and from text
 * columns, non-ASCII UTF-8 included). Ring arcs are checked in MoveUnitSqlTest. The cost per row is a
 * benchmark: {@code shardmap-bench sql-routing} (docs/benchmarks.md).
 */
@Tag("consistency")
class SqlRoutingTest {
  static final int[] BUCKETS = {1, 2, 3, 7, 16, 1000, 4096};

  static Connection c;

  @BeforeAll
  static void install() throws SQLException {
    c = PostgresFixture.shared(2).shard(0).connect();
    RoutingFunctions.install(c);
    // Idempotent: a second install (another migration, another worker) changes nothing.
    RoutingFunctions.install(c);
  }

  static List<Long> intKeys() {
    List<Long> out = new ArrayList<>(List.of(0L, 1L, -1L, 2L, -2L, 255L, 256L, -256L, Long.MIN_VALUE,
        Long.MIN_VALUE + 1, Long.MAX_VALUE, Long.MAX_VALUE - 1, (long) Integer.MAX_VALUE, (long) Integer.MIN_VALUE,
        1L << 32, -(1L << 32), 1L << 62, 0x00FF00FF00FF00FFL));
    SplittableRandom rnd = new SplittableRandom(42);
    for (int i = 0; i < 3000; i++) {
      out.add(i % 3 == 0 ? rnd.nextLong(-100_000, 100_000) : rnd.nextLong());
    }
    return out;
  }

  @Test
  void int64KeysHashAndBucketLikeCore() throws SQLException {
    List<Long> keys = intKeys();
    StringBuilder cols = new StringBuilder("SELECT k, " + SqlRouting.hashInt("k") + ", "
        + SqlRouting.hashBytes(SqlRouting.canonicalInt("k")) + ", " + SqlRouting.canonicalInt("k"));
    for (int n : BUCKETS) {
      cols.append(", ").append(SqlRouting.bucket(SqlRouting.hashInt("k"), n));
    }
    try (PreparedStatement ps = c.prepareStatement(cols + " FROM unnest(?::bigint[]) k")) {
      ps.setArray(1, c.createArrayOf("bigint", keys.toArray()));
      int seen = 0;
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          long k = rs.getLong(1);
          long h = XxHash64.hashInt64(k);
          assertEquals(h, XxHash64.hash(Keys.encodeInt64(k)));
          assertEquals(h, rs.getLong(2), () -> "hash_int8 of " + k);
          assertEquals(h, rs.getLong(3), () -> "hash of the canonical bytes of " + k);
          assertEquals(Keys.hex(Keys.encodeInt64(k)), Keys.hex(rs.getBytes(4)), () -> "canonical bytes of " + k);
          for (int i = 0; i < BUCKETS.length; i++) {
            assertEquals(HashTable.bucketOf(h, BUCKETS[i]), rs.getInt(5 + i), "bucket of " + k + " mod " + BUCKETS[i]);
          }
          seen++;
        }
      }
      assertEquals(keys.size(), seen);
    }
  }

  static List<byte[]> byteKeys() {
    List<byte[]> out = new ArrayList<>();
    out.add(new byte[0]);
    SplittableRandom rnd = new SplittableRandom(7);
    // Every length up to 80 (the 4-, 8- and 32-byte steps of xxHash and their neighbours), several times.
    for (int len = 1; len <= 80; len++) {
      for (int i = 0; i < 12; i++) {
        byte[] b = new byte[len];
        for (int j = 0; j < len; j++) {
          b[j] = (byte) rnd.nextInt(256);
        }
        out.add(b);
      }
    }
    for (int i = 0; i < 1500; i++) {
      byte[] b = new byte[rnd.nextInt(1, 1025)];
      for (int j = 0; j < b.length; j++) {
        b[j] = (byte) (i % 2 == 0 ? 0xFF - rnd.nextInt(3) : rnd.nextInt(256));
      }
      out.add(b);
    }
    return out;
  }

  @Test
  void byteaKeysHashAndBucketLikeCore() throws SQLException {
    List<byte[]> keys = byteKeys();
    StringBuilder cols = new StringBuilder("SELECT k, " + SqlRouting.hashBytes("k"));
    for (int n : BUCKETS) {
      cols.append(", ").append(SqlRouting.bucket(SqlRouting.hashBytes("k"), n));
    }
    try (PreparedStatement ps = c.prepareStatement(cols + " FROM unnest(?::bytea[]) k")) {
      ps.setArray(1, c.createArrayOf("bytea", keys.toArray(new byte[0][])));
      int seen = 0;
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          byte[] k = rs.getBytes(1);
          long h = XxHash64.hash(k);
          assertEquals(h, rs.getLong(2), () -> "hash of 0x" + Keys.hex(k) + " (" + k.length + " bytes)");
          for (int i = 0; i < BUCKETS.length; i++) {
            assertEquals(HashTable.bucketOf(h, BUCKETS[i]), rs.getInt(3 + i), "bucket of 0x" + Keys.hex(k));
          }
          seen++;
        }
      }
      assertEquals(keys.size(), seen);
    }
  }

  static List<String> textKeys() {
    List<String> out = new ArrayList<>(List.of("a", "ab", "abc", "abcd", "abcde", "abcdefg", "abcdefgh", "abcdefghi",
        "é", "ée", "日本", "日本語", "😀", "a😀b", "user:42", "ÄÖÜäöüß", "x'y\"z\\", "ﬁ", "\u00a0"));
    SplittableRandom rnd = new SplittableRandom(11);
    int[] blocks = {0x20, 0xC0, 0x400, 0x4E00, 0x1F600};
    for (int i = 0; i < 2000; i++) {
      StringBuilder s = new StringBuilder();
      int n = rnd.nextInt(1, 40);
      for (int j = 0; j < n; j++) {
        s.appendCodePoint(blocks[rnd.nextInt(blocks.length)] + rnd.nextInt(0x5E));
      }
      out.add(s.toString());
    }
    return out;
  }

  @Test
  void textKeysHashTheirUtf8LikeCore() throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW server_encoding")) {
      rs.next();
      assertEquals("UTF8", rs.getString(1), "text keys are their UTF-8 bytes only in a UTF8 database");
    }
    List<String> keys = textKeys();
    String canonical = "convert_to(k, 'UTF8')";
    try (PreparedStatement ps = c.prepareStatement("SELECT k, " + canonical + ", " + SqlRouting.hashBytes(canonical)
        + ", " + SqlRouting.bucket(SqlRouting.hashBytes(canonical), 16) + " FROM unnest(?::text[]) k")) {
      ps.setArray(1, c.createArrayOf("text", keys.toArray()));
      int seen = 0;
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          String k = rs.getString(1);
          byte[] utf8 = k.getBytes(StandardCharsets.UTF_8);
          assertEquals(Keys.hex(utf8), Keys.hex(rs.getBytes(2)), () -> "canonical bytes of '" + k + "'");
          long h = XxHash64.hash(utf8);
          assertEquals(h, rs.getLong(3), () -> "hash of '" + k + "'");
          assertEquals(HashTable.bucketOf(h, 16), rs.getInt(4), () -> "bucket of '" + k + "'");
          seen++;
        }
      }
      assertEquals(keys.size(), seen);
    }
  }

  /**
   * Over generated rows, PostgreSQL counts as many keys in a bucket as core does: int8 keys, short and
   * ~105-byte text keys. (What the functions cost per row is measured by {@code shardmap-bench sql-routing}.)
   */
  @Test
  void bucketCountsOverGeneratedRowsMatchCore() throws SQLException {
    int rows = 100_000;
    long[] expect = new long[3];
    for (int g = 1; g <= rows; g++) {
      expect[0] += HashTable.bucketOf(XxHash64.hashInt64(g), 16) == 3 ? 1 : 0;
      expect[1] += HashTable.bucketOf(XxHash64.hash(("user:" + g).getBytes(StandardCharsets.UTF_8)), 16) == 3 ? 1 : 0;
      expect[2] += HashTable.bucketOf(XxHash64.hash(("x".repeat(100) + g).getBytes(StandardCharsets.UTF_8)), 16) == 3
          ? 1 : 0;
    }
    count("SELECT count(*) FROM generate_series(1, " + rows + ") g WHERE g % 16 = 3", rows / 16);
    count("SELECT count(*) FROM generate_series(1, " + rows + ") g WHERE "
        + SqlRouting.bucket(SqlRouting.hashInt("g"), 16) + " = 3", expect[0]);
    count("SELECT count(*) FROM (SELECT 'user:' || g AS k FROM generate_series(1, " + rows + ") g) t WHERE "
        + SqlRouting.bucket(SqlRouting.hashBytes("convert_to(k, 'UTF8')"), 16) + " = 3", expect[1]);
    count("SELECT count(*) FROM (SELECT repeat('x', 100) || g AS k FROM generate_series(1, " + rows
        + ") g) t WHERE " + SqlRouting.bucket(SqlRouting.hashBytes("convert_to(k, 'UTF8')"), 16) + " = 3", expect[2]);
  }

  private static void count(String sql, long expectedCount) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      assertEquals(expectedCount, rs.getLong(1), sql);
    }
  }

  /** core's xxHash64 primes are the spec's (the SQL port imports them; the hashes above check the port). */
  @Test
  void xxHashPrimesAreTheSpecs() {
    assertEquals(0x9E3779B185EBCA87L, XxHash64.PRIME64_1);
    assertEquals(0xC2B2AE3D27D4EB4FL, XxHash64.PRIME64_2);
    assertEquals(0x165667B19E3779F9L, XxHash64.PRIME64_3);
    assertEquals(0x85EBCA77C2B2AE63L, XxHash64.PRIME64_4);
    assertEquals(0x27D4EB2F165667C5L, XxHash64.PRIME64_5);
  }
}
