package io.shardmap.core.strategy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.DirectoryTable;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.GeoTable;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Ring;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.GetMapResponse;
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
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Each strategy class on its own, without servers: the registry covers every strategy, each builds its
 * routing table from its layout record (and a keyspace routes through it), validation refusals name the
 * field and the rule, and what each says about its units, shares, GetMap pages and ownership predicates.
 */
@Tag("unit")
class StrategiesTest {
  static final KeyType INT64 = KeyType.KEY_TYPE_INT64;
  static final KeyType BYTES = KeyType.KEY_TYPE_BYTES;

  static KeyspaceMap map(Strategy strategy, KeyType type, MapChange... changes) {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setStrategy(strategy).setKeyType(type).build();
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, List.of(changes));
  }

  static MapChange range(KeyType type, String range, String shard, long epoch) {
    return MapChange.newBuilder().setRange(RangeAssignment.newBuilder()
        .setRange(KeyRange.parse(type, range, "r").toProto(type)).setShard(shard).setEpoch(epoch)).build();
  }

  static MapChange hash(String... shards) {
    HashLayout.Builder h = HashLayout.newBuilder();
    for (String s : shards) {
      h.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(1));
    }
    return MapChange.newBuilder().setHash(h).build();
  }

  static MapChange ring(int vnodes, String... shards) {
    RingLayout.Builder r = RingLayout.newBuilder();
    for (String s : shards) {
      RingShard.Builder rs = RingShard.newBuilder().setShard(s);
      for (int v = 0; v < vnodes; v++) {
        rs.addVnodeEpochs(1);
      }
      r.addShards(rs);
    }
    return MapChange.newBuilder().setRing(r).build();
  }

  static MapChange geo() {
    return MapChange.newBuilder().setGeo(GeoLayout.newBuilder().setDefaultRegion("eu")
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1").setEpoch(3))
        .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2").setEpoch(1))
        .addRegions(RegionAssignment.newBuilder().setRegion("ap").setShard("s2").setEpoch(1))).build();
  }

  static MapChange fallback(String shard) {
    return MapChange.newBuilder().setDirectory(DirectoryLayout.newBuilder().setFallbackShard(shard)
        .setFallbackEpoch(1)).build();
  }

  static MapChange entry(long key, String shard) {
    return MapChange.newBuilder().setEntry(DirectoryEntry.newBuilder().setKey(io.shardmap.proto.v1.Key.newBuilder()
        .setIntKey(key)).setShard(shard).setEpoch(2)).build();
  }

  static void refused(ErrorCode code, String message, Executable call) {
    ShardmapException e = assertThrows(ShardmapException.class, call);
    assertEquals(code, e.code(), e.getMessage());
    assertEquals(message, e.getMessage());
  }

  @Test
  void theRegistryHasOneClassPerStrategyAndRefusesTheRest() {
    for (Strategy s : Strategy.values()) {
      if (s == Strategy.STRATEGY_UNSPECIFIED || s == Strategy.UNRECOGNIZED) {
        assertNull(Strategies.find(s));
        continue;
      }
      StrategyKind k = Strategies.of(s);
      assertEquals(s, k.strategy());
      if (k.layoutCase() != MapChange.ChangeCase.CHANGE_NOT_SET) {
        assertSame(k, Strategies.forLayout(k.layoutCase()));
      }
    }
    assertEquals(5, Strategies.all().size());
    refused(ErrorCode.INVALID_ARGUMENT, "spec.strategy: choose one of STRATEGY_RANGE, STRATEGY_HASH, "
        + "STRATEGY_CONSISTENT_HASH, STRATEGY_DIRECTORY, STRATEGY_GEOGRAPHIC",
        () -> Strategies.of(Strategy.STRATEGY_UNSPECIFIED, "spec.strategy"));
    refused(ErrorCode.INTERNAL, "unknown strategy UNRECOGNIZED", () -> Strategies.of(Strategy.UNRECOGNIZED));
    assertThrows(IllegalArgumentException.class, () -> Strategies.forLayout(MapChange.ChangeCase.RANGE));
  }

  @Test
  void eachStrategyBuildsItsTableFromItsLayoutAndTheKeyspaceRoutesThroughIt() {
    KeyspaceMap r = map(Strategy.STRATEGY_RANGE, INT64, range(INT64, "..0", "s1", 1), range(INT64, "0..", "s2", 4));
    assertTrue(r.table() instanceof RangeTable);
    assertEquals("s1", r.route(-5).shard());
    assertEquals(4, r.route(5).epoch());

    KeyspaceMap h = map(Strategy.STRATEGY_HASH, INT64, hash("s1", "s2", "s3"));
    assertTrue(h.table() instanceof HashTable);
    for (long k = 0; k < 100; k++) {
      assertEquals(h.hash().route(k), h.route(k));
    }

    KeyspaceMap g = map(Strategy.STRATEGY_CONSISTENT_HASH, BYTES, ring(4, "s1", "s2"));
    assertTrue(g.table() instanceof Ring);
    byte[] key = "abc".getBytes(StandardCharsets.UTF_8);
    assertEquals(g.ring().route(key), g.route(key));

    KeyspaceMap d = map(Strategy.STRATEGY_DIRECTORY, INT64, fallback("s1"), entry(7, "s2"));
    assertTrue(d.table() instanceof DirectoryTable);
    assertEquals("s2", d.route(7).shard());
    assertEquals("s1", d.route(8).shard());
    // A new fallback keeps the entries (records of their own).
    KeyspaceMap d2 = d.apply(3, List.of(fallback("s3")));
    assertEquals("s2", d2.route(7).shard());
    assertEquals("s3", d2.route(8).shard());
    KeyspaceMap none = map(Strategy.STRATEGY_DIRECTORY, INT64, MapChange.newBuilder()
        .setDirectory(DirectoryLayout.getDefaultInstance()).build());
    assertNull(none.routeOrNull(8));

    KeyspaceMap geo = map(Strategy.STRATEGY_GEOGRAPHIC, BYTES, geo());
    assertTrue(geo.table() instanceof GeoTable);
    assertEquals("s2", geo.route("us".getBytes(StandardCharsets.UTF_8)).shard());
    assertEquals("s1", geo.route("mars".getBytes(StandardCharsets.UTF_8)).shard(), "unlisted: the default region's");
  }

  @Test
  void aLayoutOfAnotherStrategyMakesTheKeyspaceUnroutableNotWrong() {
    KeyspaceMap k = map(Strategy.STRATEGY_RANGE, INT64, hash("s1"));
    refused(ErrorCode.INTERNAL, "keyspace 'ks' uses STRATEGY_RANGE but its layout in etcd is of another strategy",
        () -> k.route(1));
    KeyspaceMap broken = map(Strategy.STRATEGY_GEOGRAPHIC, BYTES, MapChange.newBuilder().setGeo(GeoLayout.newBuilder()
        .setDefaultRegion("nowhere").addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1"))).build());
    assertTrue(broken.broken().startsWith("default_region: the default region 'nowhere' must be one of the regions"),
        broken.broken());
  }

  @Test
  void validationNamesTheFieldAndTheRule() {
    KeyspaceSpec.Builder out = KeyspaceSpec.newBuilder();
    KeyspaceSpec geoInt = KeyspaceSpec.newBuilder().setStrategy(Strategy.STRATEGY_GEOGRAPHIC).setKeyType(INT64).build();
    refused(ErrorCode.INVALID_ARGUMENT, "spec.key_type: a geographic keyspace's keys are region names: use "
        + "KEY_TYPE_BYTES (or leave it unset)", () -> Strategies.of(Strategy.STRATEGY_GEOGRAPHIC).validate(geoInt, out));
    KeyspaceSpec geoUnset = KeyspaceSpec.newBuilder().setStrategy(Strategy.STRATEGY_GEOGRAPHIC).build();
    KeyspaceSpec.Builder normalized = geoUnset.toBuilder();
    Strategies.of(Strategy.STRATEGY_GEOGRAPHIC).validate(geoUnset, normalized);
    assertEquals(BYTES, normalized.getKeyType());

    KeyspaceSpec hashUnset = KeyspaceSpec.newBuilder().setStrategy(Strategy.STRATEGY_HASH).build();
    refused(ErrorCode.INVALID_ARGUMENT, "spec.key_type: choose KEY_TYPE_INT64 or KEY_TYPE_BYTES",
        () -> Strategies.of(Strategy.STRATEGY_HASH).validate(hashUnset, out));
    KeyspaceSpec rangeVnodes = KeyspaceSpec.newBuilder().setStrategy(Strategy.STRATEGY_RANGE).setKeyType(INT64)
        .setDefaultVnodes(3).build();
    refused(ErrorCode.INVALID_ARGUMENT, "spec.default_vnodes: only applies to STRATEGY_CONSISTENT_HASH",
        () -> Strategies.of(Strategy.STRATEGY_RANGE).validate(rangeVnodes, out));

    StrategyKind ring = Strategies.of(Strategy.STRATEGY_CONSISTENT_HASH);
    KeyspaceSpec ringDefault = KeyspaceSpec.newBuilder().setStrategy(Strategy.STRATEGY_CONSISTENT_HASH)
        .setKeyType(INT64).build();
    KeyspaceSpec.Builder withVnodes = ringDefault.toBuilder();
    ring.validate(ringDefault, withVnodes);
    assertEquals(RingStrategy.DEFAULT_VNODES, withVnodes.getDefaultVnodes());
    KeyspaceSpec tooMany = ringDefault.toBuilder().setDefaultVnodes(Ring.MAX_VNODES_PER_SHARD + 1).build();
    refused(ErrorCode.INVALID_ARGUMENT, "spec.default_vnodes: must be 1-8192, got 8193",
        () -> ring.validate(tooMany, out));
  }

  @Test
  void unitsSharesAndPagesOfEachStrategy() {
    KeyspaceMap r = map(Strategy.STRATEGY_RANGE, INT64, range(INT64, "..0", "s1", 1), range(INT64, "0..", "s2", 4));
    assertEquals(List.of("..0 -> s1 (epoch 1)", "0.. -> s2 (epoch 4)"), r.kind().describeUnits(r));
    assertEquals(0.5, r.kind().shares(r).get("s1").fraction(), 1e-9);
    GetMapResponse.Builder page = GetMapResponse.newBuilder();
    assertEquals(2, r.kind().page(r, page, 1, 10, false));
    assertEquals(1, page.getRangesCount(), "from the offset");

    KeyspaceMap h = map(Strategy.STRATEGY_HASH, INT64, hash("s1", "s2", "s1", "s1"));
    assertEquals("bucket 1 -> s2 (epoch 1)", h.kind().describeUnits(h).get(1));
    assertEquals(new StrategyKind.Share(0.75, 3), h.kind().shares(h).get("s1"));
    assertEquals(4, h.kind().layoutEntries(h));
    MapChange.Builder c = MapChange.newBuilder();
    assertTrue(h.kind().copyLayout(GetMapResponse.newBuilder().setHash(h.hash().layout()).build(), c));
    assertEquals(h.hash().layout(), c.getHash());
    assertFalse(r.kind().copyLayout(GetMapResponse.getDefaultInstance(), MapChange.newBuilder()));

    KeyspaceMap g = map(Strategy.STRATEGY_CONSISTENT_HASH, INT64, ring(3, "s1", "s2"));
    Map<String, StrategyKind.Share> shares = g.kind().shares(g);
    assertEquals(1.0, shares.get("s1").fraction() + shares.get("s2").fraction(), 1e-9);
    assertEquals(3, shares.get("s2").units(), "virtual nodes");
    assertEquals(6, g.kind().describeUnits(g).size());

    KeyspaceMap d = map(Strategy.STRATEGY_DIRECTORY, INT64, fallback("s1"), entry(7, "s2"));
    assertTrue(d.kind().loadsLazily());
    assertFalse(g.kind().loadsLazily());
    assertEquals(List.of("fallback -> s1 (epoch 1)", "7 -> s2 (epoch 2)"), d.kind().describeUnits(d));
    GetMapResponse.Builder dp = GetMapResponse.newBuilder();
    assertEquals(0, d.kind().page(d, dp, 0, 10, true), "skipping entries pages nothing");
    assertEquals(1, dp.getEntryCount());
    assertEquals(0, dp.getEntriesCount());

    KeyspaceMap geo = map(Strategy.STRATEGY_GEOGRAPHIC, BYTES, geo());
    assertEquals("eu (default) -> s1 (epoch 3)", geo.kind().describeUnits(geo).get(0));
    assertEquals(new StrategyKind.Share(2.0 / 3, 2), geo.kind().shares(geo).get("s2"));
  }

  @Test
  void aWholeGetMapAnswerReadsBackIntoTheMapItCameFrom() {
    KeyspaceMap d = map(Strategy.STRATEGY_DIRECTORY, INT64, fallback("s1"), entry(7, "s2"));
    GetMapResponse.Builder answer = GetMapResponse.newBuilder().setSpec(d.spec()).setRevision(9);
    d.kind().page(d, answer, 0, 100, false);
    KeyspaceMap back = Strategies.read(answer.build());
    assertEquals(d.kind().describeUnits(d), back.kind().describeUnits(back));
    assertEquals(Map.of("fallback", "s1 (epoch 1)"), back.kind().summary(back));

    KeyspaceMap r = map(Strategy.STRATEGY_RANGE, INT64, range(INT64, "..0", "s1", 1), range(INT64, "0..", "s2", 4));
    GetMapResponse.Builder ranges = GetMapResponse.newBuilder().setSpec(r.spec()).setRevision(9);
    r.kind().page(r, ranges, 0, 100, false);
    assertEquals(r.kind().describeUnits(r), Strategies.read(ranges.build()).kind().describeUnits(Strategies.read(ranges.build())));
    assertEquals(Map.of(), r.kind().summary(r));

    KeyspaceMap geo = map(Strategy.STRATEGY_GEOGRAPHIC, BYTES, geo());
    assertEquals(Map.of("default", "eu"), geo.kind().summary(geo));
    assertEquals("regions", geo.kind().unitNoun());
  }

  @Test
  void ownershipPredicatesHaveOneTermPerRunAndFalseForNothing() {
    KeyspaceMap r = map(Strategy.STRATEGY_RANGE, INT64, range(INT64, "..0", "s1", 1), range(INT64, "0..10", "s1", 1),
        range(INT64, "10..", "s2", 1));
    assertEquals("(k < 10)", r.kind().ownedBy(r, "s1", KeyKind.INT64, "k"), "adjacent ranges merge");
    assertEquals("(k >= 10)", r.kind().ownedBy(r, "s2", KeyKind.INT64, "k"));
    assertEquals("false", r.kind().ownedBy(r, "s3", KeyKind.INT64, "k"));

    KeyspaceMap h = map(Strategy.STRATEGY_HASH, INT64, hash("s1", "s2", "s1"));
    assertEquals("shardmap.bucket_v1(shardmap.hash_int8_v1((k)::bigint), 3) IN (0, 2)",
        h.kind().ownedBy(h, "s1", KeyKind.INT64, "k"));
    assertEquals("false", h.kind().ownedBy(h, "s9", KeyKind.INT64, "k"));

    KeyspaceMap one = map(Strategy.STRATEGY_CONSISTENT_HASH, INT64, ring(3, "s1"));
    assertEquals("true", one.kind().ownedBy(one, "s1", KeyKind.INT64, "k"), "a ring of one shard");

    KeyspaceMap geo = map(Strategy.STRATEGY_GEOGRAPHIC, BYTES, geo());
    assertEquals("k IN (E'us', E'ap')", geo.kind().ownedBy(geo, "s2", KeyKind.TEXT, "k"));
    assertEquals("(NOT k IN (E'us', E'ap'))", geo.kind().ownedBy(geo, "s1", KeyKind.TEXT, "k"),
        "the default region's owner owns every unlisted name");

    KeyspaceMap d = map(Strategy.STRATEGY_DIRECTORY, INT64, fallback("s1"), entry(7, "s2"), entry(9, "s1"));
    assertEquals("(NOT k IN (7))", d.kind().ownedBy(d, "s1", KeyKind.INT64, "k"));
    assertEquals("k IN (7)", d.kind().ownedBy(d, "s2", KeyKind.INT64, "k"));
    refused(ErrorCode.FAILED_PRECONDITION, "keyspace 'ks': this copy of the directory holds only its layout, not its "
        + "entries, so it cannot say which keys a shard owns",
        () -> d.kind().ownedBy(d.withoutDirectoryEntries(), "s1", KeyKind.INT64, "k"));
    assertEquals(Set.of("s1", "s2"), d.owners());
  }
}
