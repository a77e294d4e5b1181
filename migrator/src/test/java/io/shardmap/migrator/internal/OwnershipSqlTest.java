package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.migrator.internal.MoveUnitSqlTest.Sample;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A differential test of every strategy's "what does shard S owns" predicate ({@code StrategyKind#ownedBy},
 * built in core with no database) against core's routing, on real PostgreSQL with the routing functions
 * installed: for ~1500 random keys of each key column kind and every shard, the rows the predicate selects
 * are exactly the keys the map routes to that shard; and the shards' predicates partition the keys that
 * have an owner. Also each {@link MoveUnit.Region}'s condition against the geographic table.
 */
@Tag("consistency")
class OwnershipSqlTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");

  @BeforeAll
  static void setUp() throws SQLException {
    MoveUnitSqlTest.setUp();
  }

  static KeyspaceMap map(Strategy strategy, KeyType type, List<MapChange> changes) {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setStrategy(strategy).setKeyType(type).build();
    KeyspaceMap k = KeyspaceMap.withoutLayout(spec, 1).apply(2, changes);
    assertEquals(null, k.broken());
    return k;
  }

  static KeyType typeOf(Sample s) {
    return s.kind() == KeyKind.INT64 ? KeyType.KEY_TYPE_INT64 : KeyType.KEY_TYPE_BYTES;
  }

  /** For each shard: the predicate selects exactly what the map routes there; together they cover every owned key. */
  static void assertOwnership(Sample s, KeyspaceMap k) throws SQLException {
    Set<String> all = new HashSet<>();
    for (String shard : SHARDS) {
      String predicate = k.kind().ownedBy(k, shard, s.kind(), "k");
      Set<String> got = selectedWhere(s, predicate);
      Set<String> want = MoveUnitSqlTest.expected(s, key -> {
        Route r = k.routeOrNull(key);
        return r != null && r.shard().equals(shard);
      });
      assertEquals(want, got, k.strategy() + " " + s.kind() + " shard " + shard + ": " + predicate);
      assertTrue(java.util.Collections.disjoint(all, got), "two shards own one key");
      all.addAll(got);
    }
    assertEquals(MoveUnitSqlTest.expected(s, key -> k.routeOrNull(key) != null), all, "every owned key has an owner");
  }

  static Set<String> selectedWhere(Sample s, String condition) throws SQLException {
    Set<String> out = new HashSet<>();
    try (java.sql.PreparedStatement ps = MoveUnitSqlTest.c.prepareStatement("SELECT k FROM unnest(?::" + s.sqlType()
        + "[]) k WHERE " + condition)) {
      Object[] values = s.kind() == KeyKind.BYTEA ? s.values().toArray(new byte[0][]) : s.values().toArray();
      ps.setArray(1, MoveUnitSqlTest.c.createArrayOf(s.sqlType(), values));
      try (java.sql.ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(Keys.hex(s.kind().canonical(rs.getObject(1))));
        }
      }
    }
    return out;
  }

  @Test
  void rangeOwnershipMatchesRouting() throws SQLException {
    for (Sample s : MoveUnitSqlTest.samples()) {
      KeyType type = typeOf(s);
      // s1 holds two ranges (adjacent for BYTES, apart for INT64), s2 one, s3 one.
      List<String[]> layout = type == KeyType.KEY_TYPE_INT64
          ? List.<String[]>of(new String[] {"..-1000000000000000000", "s1"},
              new String[] {"-1000000000000000000..0", "s2"}, new String[] {"0..1000000000000000000", "s1"},
              new String[] {"1000000000000000000..", "s3"})
          : List.<String[]>of(new String[] {"..'c'", "s1"}, new String[] {"'c'..'m'", "s1"},
              new String[] {"'m'..0xc3", "s2"}, new String[] {"0xc3..", "s3"});
      List<MapChange> changes = new ArrayList<>();
      for (String[] r : layout) {
        changes.add(MapChange.newBuilder().setRange(RangeAssignment.newBuilder()
            .setRange(KeyRange.parse(type, r[0], "r").toProto(type)).setShard(r[1]).setEpoch(1)).build());
      }
      assertOwnership(s, map(Strategy.STRATEGY_RANGE, type, changes));
    }
  }

  @Test
  void hashOwnershipMatchesRouting() throws SQLException {
    HashLayout.Builder h = HashLayout.newBuilder();
    for (int b = 0; b < 16; b++) {
      h.addBuckets(BucketAssignment.newBuilder().setShard(SHARDS.get(b % 2 == 0 ? 0 : b % 3)).setEpoch(1));
    }
    for (Sample s : MoveUnitSqlTest.samples()) {
      assertOwnership(s, map(Strategy.STRATEGY_HASH, typeOf(s), List.of(MapChange.newBuilder().setHash(h).build())));
    }
  }

  @Test
  void ringOwnershipMatchesRouting() throws SQLException {
    RingLayout.Builder ring = RingLayout.newBuilder();
    for (String shard : SHARDS) {
      RingShard.Builder rs = RingShard.newBuilder().setShard(shard);
      for (int v = 0; v < 6; v++) {
        rs.addVnodeEpochs(1);
      }
      ring.addShards(rs);
    }
    RingLayout one = RingLayout.newBuilder().addShards(RingShard.newBuilder().setShard("s2").addVnodeEpochs(1)).build();
    for (Sample s : MoveUnitSqlTest.samples()) {
      assertOwnership(s, map(Strategy.STRATEGY_CONSISTENT_HASH, typeOf(s),
          List.of(MapChange.newBuilder().setRing(ring).build())));
      assertOwnership(s, map(Strategy.STRATEGY_CONSISTENT_HASH, typeOf(s),
          List.of(MapChange.newBuilder().setRing(one).build())));
    }
  }

  @Test
  void directoryOwnershipMatchesRoutingWithAndWithoutFallback() throws SQLException {
    for (Sample s : MoveUnitSqlTest.samples()) {
      KeyType type = typeOf(s);
      for (String fallback : List.of("s1", "")) {
        List<MapChange> changes = new ArrayList<>();
        changes.add(MapChange.newBuilder().setDirectory(DirectoryLayout.newBuilder().setFallbackShard(fallback)
            .setFallbackEpoch(fallback.isEmpty() ? 0 : 1)).build());
        for (int i = 0; i < 60; i++) {
          byte[] key = s.canonical().apply(s.values().get(i * 7));
          changes.add(MapChange.newBuilder().setEntry(DirectoryEntry.newBuilder().setKey(Keys.toProto(type, key))
              .setShard(SHARDS.get(i % 3)).setEpoch(1)).build());
        }
        assertOwnership(s, map(Strategy.STRATEGY_DIRECTORY, type, changes));
      }
    }
  }

  @Test
  void directoryWithoutItsEntriesCannotSayWhatAShardOwns() {
    KeyspaceMap k = map(Strategy.STRATEGY_DIRECTORY, KeyType.KEY_TYPE_INT64, List.of(MapChange.newBuilder()
        .setDirectory(DirectoryLayout.newBuilder().setFallbackShard("s1").setFallbackEpoch(1)).build()))
        .withoutDirectoryEntries();
    ShardmapException e = assertThrows(ShardmapException.class, () -> k.kind().ownedBy(k, "s1", KeyKind.INT64, "k"));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
  }

  /** Region names are strings: the TEXT sample's, as text and as bytea columns. */
  static List<Sample> regionSamples() {
    Sample text = MoveUnitSqlTest.samples().stream().filter(x -> x.kind() == KeyKind.TEXT).findFirst().orElseThrow();
    List<Object> bytes = text.values().stream().map(v -> (Object) ((String) v).getBytes(StandardCharsets.UTF_8)).toList();
    return List.of(text, new Sample(KeyKind.BYTEA, "bytea", bytes, o -> (byte[]) o));
  }

  static GeoLayout geo(Sample text) {
    GeoLayout.Builder g = GeoLayout.newBuilder();
    for (int i = 0; i < 30; i++) {
      g.addRegions(RegionAssignment.newBuilder().setRegion((String) text.values().get(i * 11)).setShard(SHARDS.get(i % 3))
          .setEpoch(1));
    }
    return g.setDefaultRegion((String) text.values().get(11)).build(); // region 1, on s2
  }

  @Test
  void geographicOwnershipMatchesRouting() throws SQLException {
    List<Sample> samples = regionSamples();
    GeoLayout g = geo(samples.get(0));
    for (Sample s : samples) {
      assertOwnership(s, map(Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES,
          List.of(MapChange.newBuilder().setGeo(g).build())));
    }
  }

  /** A region move unit selects the keys the map routes by that region: its name, or for the default every unlisted name. */
  @Test
  void regionUnitsSelectWhatRoutesByTheirRegion() throws SQLException {
    List<Sample> samples = regionSamples();
    GeoLayout g = geo(samples.get(0));
    KeyspaceMap k = map(Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES, List.of(MapChange.newBuilder().setGeo(g).build()));
    for (Sample s : samples) {
      Set<String> all = new HashSet<>();
      for (RegionAssignment r : g.getRegionsList()) {
        boolean isDefault = r.getRegion().equals(g.getDefaultRegion());
        List<String> others = isDefault ? g.getRegionsList().stream().map(RegionAssignment::getRegion)
            .filter(x -> !x.equals(r.getRegion())).toList() : List.of();
        Set<String> got = MoveUnitSqlTest.selected(s, new MoveUnit.Region(r.getRegion(), isDefault, others));
        Set<String> want = MoveUnitSqlTest.expected(s, key -> {
          String name = new String(key, StandardCharsets.UTF_8);
          return name.equals(r.getRegion()) || (isDefault && !k.geo().regions().containsKey(name));
        });
        assertEquals(want, got, s.kind() + " region " + r.getRegion());
        assertFalse(got.isEmpty(), "every listed region is a sample key");
        all.addAll(got);
      }
      assertEquals(MoveUnitSqlTest.expected(s, key -> true), all, "the regions cover every key");
    }
  }
}
