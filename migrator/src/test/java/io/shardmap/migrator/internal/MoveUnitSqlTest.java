package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.Ring;
import io.shardmap.core.XxHash64;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.Function;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every {@link MoveUnit}'s SQL condition selects exactly the keys core routes to it, on real PostgreSQL,
 * for integer, text and bytea key columns: BYTES ranges against {@link KeyRange#contains}, buckets
 * against {@link HashTable}, ring arcs against {@link Ring} (every key in exactly the arc of the node
 * that owns it), entries by equality. Then one unit's whole data path (copy, fence, cleanup) on a text key.
 */
@Tag("integration")
class MoveUnitSqlTest {
  static PgInstance src;
  static PgInstance dst;
  static Connection c;

  @BeforeAll
  static void setUp() throws SQLException {
    PostgresFixture pg = PostgresFixture.shared(2);
    src = pg.shard(0);
    dst = pg.shard(1);
    c = src.connect();
    RoutingFunctions.install(c);
  }

  record Sample(KeyKind kind, String sqlType, List<Object> values, Function<Object, byte[]> canonical) {}

  static List<Sample> samples() {
    SplittableRandom rnd = new SplittableRandom(3);
    List<Object> ints = new ArrayList<>(List.of(Long.MIN_VALUE, Long.MAX_VALUE, 0L, -1L));
    List<Object> texts = new ArrayList<>(List.of("a", "é", "日本", "😀x", "O'Brien", "a\\b", "$f$ END $f$", "\\x24"));
    List<Object> bytes = new ArrayList<>(List.of(new byte[] {0}, new byte[] {(byte) 0xff}, new byte[] {0x61}));
    for (int i = 0; i < 1500; i++) {
      ints.add(rnd.nextLong());
      StringBuilder s = new StringBuilder();
      for (int j = rnd.nextInt(1, 12); j > 0; j--) {
        s.appendCodePoint(rnd.nextInt(4) == 0 ? 0xE0 + rnd.nextInt(40) : 'a' + rnd.nextInt(26));
      }
      texts.add(s.toString());
      byte[] b = new byte[rnd.nextInt(1, 20)];
      for (int j = 0; j < b.length; j++) {
        b[j] = (byte) rnd.nextInt(256);
      }
      bytes.add(b);
    }
    return List.of(
        new Sample(KeyKind.INT64, "bigint", ints, o -> Keys.encodeInt64((Long) o)),
        new Sample(KeyKind.TEXT, "text", texts, o -> ((String) o).getBytes(StandardCharsets.UTF_8)),
        new Sample(KeyKind.BYTEA, "bytea", bytes, o -> (byte[]) o));
  }

  /** The canonical keys (hex) of the sample for which {@code unit}'s condition holds in SQL. */
  static Set<String> selected(Sample s, MoveUnit unit) throws SQLException {
    Set<String> out = new HashSet<>();
    try (PreparedStatement ps = c.prepareStatement("SELECT k FROM unnest(?::" + s.sqlType() + "[]) k WHERE "
        + unit.contains(s.kind(), "k"))) {
      // pgjdbc takes a bytea[] only as byte[][].
      Object[] values = s.kind() == KeyKind.BYTEA ? s.values().toArray(new byte[0][]) : s.values().toArray();
      ps.setArray(1, c.createArrayOf(s.sqlType(), values));
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(Keys.hex(s.kind().canonical(rs.getObject(1))));
        }
      }
    }
    return out;
  }

  static Set<String> expected(Sample s, java.util.function.Predicate<byte[]> in) {
    Set<String> out = new HashSet<>();
    for (Object v : s.values()) {
      byte[] k = s.canonical().apply(v);
      if (in.test(k)) {
        out.add(Keys.hex(k));
      }
    }
    return out;
  }

  @Test
  void rangesSelectWhatKeyRangeContains() throws SQLException {
    for (Sample s : samples()) {
      KeyType type = s.kind() == KeyKind.INT64 ? KeyType.KEY_TYPE_INT64 : KeyType.KEY_TYPE_BYTES;
      List<KeyRange> ranges = type == KeyType.KEY_TYPE_INT64
          ? List.of(KeyRange.parse(type, "-100..5000000000", "r"), KeyRange.parse(type, "..0", "r"),
              KeyRange.parse(type, "0..", "r"))
          : List.of(KeyRange.parse(type, "'b'..'m'", "r"), KeyRange.parse(type, "..'c'", "r"),
              KeyRange.parse(type, "0x80..", "r"), KeyRange.parse(type, "'é'..0xff", "r"));
      for (KeyRange r : ranges) {
        MoveUnit u = new MoveUnit.Range(r);
        Set<String> want = expected(s, r::contains);
        assertFalse(want.isEmpty() || want.size() == s.values().size(), "a range that splits the sample: " + r);
        assertEquals(want, selected(s, u), s.kind() + " " + r.format(type));
      }
    }
  }

  @Test
  void bucketsSelectWhatHashTableRoutesThere() throws SQLException {
    for (Sample s : samples()) {
      for (int n : new int[] {1, 3, 16}) {
        Set<String> all = new HashSet<>();
        for (int b = 0; b < n; b++) {
          int bucket = b;
          Set<String> got = selected(s, new MoveUnit.Bucket(b, n));
          assertEquals(expected(s, k -> HashTable.bucketOf(XxHash64.hash(k), n) == bucket), got,
              s.kind() + " bucket " + b + " of " + n);
          all.addAll(got);
        }
        assertEquals(expected(s, k -> true), all);
      }
    }
  }

  @Test
  void ringArcsSelectWhatTheRingRoutesToTheirNode() throws SQLException {
    RingLayout.Builder layout = RingLayout.newBuilder();
    for (String shard : List.of("s1", "s2", "s3")) {
      RingShard.Builder rs = RingShard.newBuilder().setShard(shard);
      for (int v = 0; v < 6; v++) {
        rs.addVnodeEpochs(1);
      }
      layout.addShards(rs);
    }
    Ring ring = Ring.of(layout.build(), 0);
    // Node positions in ring (unsigned) order; node i owns (pos[i - 1], pos[i]], node 0 wraps around.
    TreeMap<Long, String> byFlipped = new TreeMap<>();
    for (RingShard rs : layout.getShardsList()) {
      for (int v = 0; v < rs.getVnodeEpochsCount(); v++) {
        byFlipped.put(Ring.position(rs.getShard(), v) ^ Long.MIN_VALUE, rs.getShard() + "#" + v);
      }
    }
    List<Long> pos = byFlipped.keySet().stream().map(p -> p ^ Long.MIN_VALUE).toList();
    for (Sample s : samples()) {
      Set<String> all = new HashSet<>();
      for (int i = 0; i < pos.size(); i++) {
        int node = i;
        MoveUnit arc = new MoveUnit.Arc(pos.get((i + pos.size() - 1) % pos.size()), pos.get(i));
        Set<String> got = selected(s, arc);
        assertEquals(expected(s, k -> ring.nodeAt(XxHash64.hash(k)) == node), got, s.kind() + " arc of node " + i);
        assertTrue(java.util.Collections.disjoint(all, got), "arcs do not overlap");
        all.addAll(got);
      }
      assertEquals(expected(s, k -> true), all, "the arcs cover the ring");
      assertEquals(expected(s, k -> true), selected(s, new MoveUnit.Arc(42, 42)), "one node owns everything");
    }
  }

  @Test
  void entriesSelectExactlyTheirKeys() throws SQLException {
    for (Sample s : samples()) {
      List<byte[]> keys = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        keys.add(s.canonical().apply(s.values().get(i)));
      }
      Set<String> want = new HashSet<>();
      keys.forEach(k -> want.add(Keys.hex(k)));
      assertEquals(want, selected(s, new MoveUnit.Entries(keys)), s.kind().toString());
    }
  }

  /** A bucket of a text-keyed table: chunked copy, verification, the fence and cleanup touch only its rows. */
  @Test
  void aBucketOfATextKeyedTableMovesAloneAndIsFenced() throws Exception {
    String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    String table = "bk_" + uid;
    String ddl = "CREATE TABLE " + table + " (k text PRIMARY KEY, v bigint NOT NULL)";
    for (PgInstance p : List.of(src, dst)) {
      try (Connection x = p.connect(); Statement st = x.createStatement()) {
        st.execute(ddl);
        RoutingFunctions.install(x);
      }
    }
    try (Statement st = c.createStatement()) {
      st.execute("INSERT INTO " + table + " SELECT 'user:' || g, g FROM generate_series(1, 5000) g");
    }
    MoveUnit.Bucket unit = new MoveUnit.Bucket(5, 8);
    java.util.function.IntPredicate inBucket = g -> HashTable.bucketOf(
        XxHash64.hash(("user:" + g).getBytes(StandardCharsets.UTF_8)), 8) == 5;
    long expected = java.util.stream.IntStream.rangeClosed(1, 5000).filter(inBucket).count();
    RangeTableMove move = new RangeTableMove("m" + uid, "ks", table, "k", KeyKind.TEXT, unit);
    try (Connection s = src.connect(); Connection d = dst.connect()) {
      move.installCapture(s);
      long rows = 0;
      byte[] after = null;
      int chunks = 0;
      while (true) {
        RangeTableMove.CopiedChunk ch = move.copyChunk(s, d, after, 700);
        rows += ch.rows();
        chunks++;
        if (ch.done()) {
          break;
        }
        after = ch.last();
      }
      assertEquals(expected, rows, "the chunks copied the bucket's rows");
      assertTrue(chunks >= 7, "chunks follow the key order of the whole table: " + chunks);
      assertEquals(expected, count(d, table, "true"));
      // Writes inside and outside the bucket, caught up by key.
      int g1 = java.util.stream.IntStream.rangeClosed(1, 5000).filter(inBucket).findFirst().orElseThrow();
      int g2 = java.util.stream.IntStream.rangeClosed(1, 5000).filter(inBucket.negate()).findFirst().orElseThrow();
      try (Statement st = s.createStatement()) {
        st.executeUpdate("UPDATE " + table + " SET v = -1 WHERE k IN ('user:" + g1 + "', 'user:" + g2 + "')");
      }
      assertEquals(1, move.replayRound(s, d, 100), "only the bucket's key was logged");
      assertEquals(0, move.verifyAndRepair(s, d, 1000).mismatched());
      assertTrue(move.fence(s, 4, Duration.ofSeconds(5)));
      try (Statement st = s.createStatement()) {
        SQLException e = assertThrows(SQLException.class,
            () -> st.executeUpdate("UPDATE " + table + " SET v = 0 WHERE k = 'user:" + g1 + "'"));
        assertTrue(StaleRoute.isStaleRoute(e));
        assertEquals(4, StaleRoute.fencedEpoch(e));
        assertEquals(1, st.executeUpdate("UPDATE " + table + " SET v = 0 WHERE k = 'user:" + g2 + "'"),
            "a key of another bucket stays writable");
      }
      int deleted = 0;
      int n;
      while ((n = move.deleteBatch(s, 100)) > 0) {
        deleted += n;
      }
      assertEquals(expected, deleted);
      assertEquals(5000 - expected, count(s, table, "true"), "the source keeps every other bucket");
      Fences.unfenceMoved(s, List.of(move));
      assertEquals(Set.of(), Fences.fencesOn(s, table));
      move.removeCapture(s);
    } finally {
      for (PgInstance p : List.of(src, dst)) {
        try (Connection x = p.connect(); Statement st = x.createStatement()) {
          st.execute("DROP TABLE IF EXISTS " + table);
          st.execute("DELETE FROM shardmap.fences WHERE tbl = '" + table + "'");
        } catch (SQLException ignored) {
          // shardmap.fences exists only where something was fenced
        }
      }
    }
  }

  static long count(Connection x, String table, String where) throws SQLException {
    try (Statement st = x.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM " + table
        + " WHERE " + where)) {
      rs.next();
      return rs.getLong(1);
    }
  }
}
