package io.shardmap.core;

import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class KeyspaceMapTest {

  static KeyspaceSpec spec(String name, KeyType type, Strategy strategy) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(strategy).build();
  }

  static Key ik(long v) {
    return Key.newBuilder().setIntKey(v).build();
  }

  static Key sk(String s) {
    return Key.newBuilder().setStringKey(s).build();
  }

  /** A RANGE change for an INT64 keyspace; null bounds are unbounded. */
  static MapChange rangeChange(String ks, Long start, Long end, String shard, long epoch) {
    io.shardmap.proto.v1.KeyRange.Builder r = io.shardmap.proto.v1.KeyRange.newBuilder();
    if (start != null) {
      r.setStart(ik(start));
    }
    if (end != null) {
      r.setEnd(ik(end));
    }
    return MapChange.newBuilder().setKeyspace(ks)
        .setRange(RangeAssignment.newBuilder().setRange(r).setShard(shard).setEpoch(epoch)).build();
  }

  static MapChange rangeRemoved(String ks, long start) {
    return MapChange.newBuilder().setKeyspace(ks).setRangeRemovedStart(ik(start)).build();
  }

  static KeyspaceMap rangeMap() {
    return KeyspaceMap.withoutLayout(spec("orders", INT64, Strategy.STRATEGY_RANGE), 1)
        .apply(2, List.of(rangeChange("orders", null, 0L, "a", 1), rangeChange("orders", 0L, null, "b", 1)));
  }

  @Test
  void withoutLayoutIsUnusableUntilItsLayoutArrives() {
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec("orders", INT64, Strategy.STRATEGY_RANGE), 5);
    assertFalse(m.hasLayout());
    assertEquals(5, m.specRevision());
    assertError(ErrorCode.INTERNAL, () -> m.routeOrNull(1L), "orders", "no layout");
    assertTrue(m.owners().isEmpty());
  }

  @Test
  void rangeKeyspaceAppliesSplitMergeAndReassignBatches() {
    KeyspaceMap m = rangeMap();
    assertNull(m.broken());
    assertEquals("a", m.routeOrNull(-1L).shard());
    assertEquals("b", m.routeOrNull(0L).shard());
    assertEquals(2, m.routeOrNull(0L).modRevision(), "the revision of the batch is the route's mod revision");
    assertEquals(Set.of("a", "b"), m.owners());

    // Split [0, +inf) at 100 (one transaction: both records, same owner and epoch).
    KeyspaceMap split = m.apply(3, List.of(rangeChange("orders", 0L, 100L, "b", 1),
        rangeChange("orders", 100L, null, "b", 1)));
    assertEquals(3, split.ranges().size());
    assertEquals(KeyRange.parse(INT64, "100..", "r"), split.routeOrNull(100L).range());
    assertEquals(2, m.ranges().size(), "the old map is unchanged");

    // Reassign [100, +inf) to c with epoch 2.
    KeyspaceMap moved = split.apply(4, List.of(rangeChange("orders", 100L, null, "c", 2)));
    assertEquals(new Route("c", 2, KeyRange.parse(INT64, "100..", "r"), 4), moved.routeOrNull(Long.MAX_VALUE));
    assertEquals("b", moved.routeOrNull(99L).shard());

    // Merge [0,100) and [100,+inf) back (after reassigning to the same owner): removal + widened put.
    KeyspaceMap merged = moved.apply(5, List.of(rangeRemoved("orders", 100), rangeChange("orders", 0L, null, "c", 3)));
    assertEquals(2, merged.ranges().size());
    assertEquals(new Route("c", 3, KeyRange.parse(INT64, "0..", "r"), 5), merged.routeOrNull(100L));
    assertSame(merged.routeOrNull(7L), merged.routeOrNull(Keys.encodeInt64(7)));
    assertEquals(KeyRange.parse(INT64, "0..", "r").toProto(INT64),
        KeyspaceMap.toProto(INT64, merged.routeOrNull(7L)).getRange());
  }

  @Test
  void modRevisionOfAChangeWinsOverTheBatchRevision() {
    KeyspaceMap m = rangeMap().apply(9, List.of(rangeChange("orders", null, 0L, "z", 2).toBuilder()
        .setModRevision(8).build()));
    assertEquals(8, m.routeOrNull(-5L).modRevision());
  }

  @Test
  void hashKeyspace() {
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec("users", BYTES, Strategy.STRATEGY_HASH), 1)
        .apply(3, List.of(MapChange.newBuilder().setKeyspace("users").setHash(TestData.hash("a", "b", "c")).build()));
    assertEquals(3, m.layoutRevision());
    byte[] key = "alice".getBytes(StandardCharsets.UTF_8);
    assertSame(m.hash().route(key), m.route(key));
    assertEquals(Set.of("a", "b", "c"), m.owners());
    assertError(ErrorCode.INVALID_ARGUMENT, () -> m.routeOrNull(5L), "key", "KEY_TYPE_BYTES");
    assertError(ErrorCode.FAILED_PRECONDITION, m::ranges, "users", "STRATEGY_HASH");
    // A new layout replaces the old one.
    KeyspaceMap m2 = m.apply(4, List.of(MapChange.newBuilder().setKeyspace("users").setHash(TestData.hash("z")).build()));
    assertEquals("z", m2.route(key).shard());
    assertEquals(4, m2.layoutRevision());
  }

  @Test
  void consistentHashKeyspace() {
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec("carts", INT64, Strategy.STRATEGY_CONSISTENT_HASH), 1)
        .apply(3, List.of(MapChange.newBuilder().setKeyspace("carts").setRing(TestData.ring(64, "a", "b")).build()));
    for (long k = -500; k < 500; k++) {
      assertSame(m.ring().route(k), m.routeOrNull(k));
      assertSame(m.routeOrNull(k), m.routeOrNull(Keys.encodeInt64(k)));
    }
    assertEquals(Set.of("a", "b"), m.owners());
  }

  @Test
  void directoryKeyspaceEntriesAndFallback() {
    String ks = "tenants";
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec(ks, BYTES, Strategy.STRATEGY_DIRECTORY), 1)
        .apply(2, List.of(MapChange.newBuilder().setKeyspace(ks).setDirectory(DirectoryLayout.getDefaultInstance()).build()));
    byte[] acme = "acme".getBytes(StandardCharsets.UTF_8);
    assertNull(m.routeOrNull(acme), "no entry, no fallback");
    assertError(ErrorCode.NOT_FOUND, () -> m.route(acme), "'acme'", ks, "no fallback");

    KeyspaceMap m2 = m.apply(3, List.of(
        MapChange.newBuilder().setKeyspace(ks).setEntry(DirectoryEntry.newBuilder().setKey(sk("acme")).setShard("s1").setEpoch(1)).build(),
        MapChange.newBuilder().setKeyspace(ks).setEntry(DirectoryEntry.newBuilder().setKey(sk("globex")).setShard("s2").setEpoch(1)).build()));
    assertEquals(new Route("s1", 1, null, 3), m2.route(acme));
    assertEquals(2, m2.directory().size());

    KeyspaceMap m3 = m2.apply(4, List.of(
        MapChange.newBuilder().setKeyspace(ks).setEntryRemoved(sk("acme")).build(),
        MapChange.newBuilder().setKeyspace(ks).setDirectory(DirectoryLayout.newBuilder().setFallbackShard("fb").setFallbackEpoch(2)).build()));
    assertEquals(new Route("fb", 2, null, 4), m3.route(acme), "removed entry falls back");
    assertEquals("s2", m3.route("globex".getBytes(StandardCharsets.UTF_8)).shard(), "the layout change kept entries");
    assertEquals(Set.of("fb", "s2"), m3.owners());
    assertEquals("s1", m2.route(acme).shard(), "the old map is unchanged");
  }

  @Test
  void layoutOnlyDirectoryKeepsItsFallbackButRefusesToRoute() {
    String ks = "tenants";
    KeyspaceMap full = KeyspaceMap.withoutLayout(spec(ks, INT64, Strategy.STRATEGY_DIRECTORY), 1)
        .apply(2, List.of(
            MapChange.newBuilder().setKeyspace(ks).setEntry(DirectoryEntry.newBuilder().setKey(ik(7)).setShard("s1").setEpoch(3)).build(),
            MapChange.newBuilder().setKeyspace(ks).setDirectory(DirectoryLayout.newBuilder().setFallbackShard("fb").setFallbackEpoch(2)).build()));
    KeyspaceMap lazy = full.withoutDirectoryEntries();
    assertFalse(lazy.directory().entriesHeld());
    assertTrue(full.directory().entriesHeld());
    assertEquals(0, lazy.directory().size());
    assertEquals(new Route("fb", 2, null, 2), lazy.directory().fallback());
    // Key 7 has an entry on s1: a layout-only copy must not answer "fb" for it.
    assertError(ErrorCode.FAILED_PRECONDITION, () -> lazy.route(7L), "holds only its layout");
    assertError(ErrorCode.FAILED_PRECONDITION, () -> lazy.routeOrNull(8L), "holds only its layout");
    // Layout and spec changes still apply and keep it layout-only; entry changes are a caller bug.
    KeyspaceMap moved = lazy.apply(5, List.of(MapChange.newBuilder().setKeyspace(ks)
        .setDirectory(DirectoryLayout.newBuilder().setFallbackShard("fb2").setFallbackEpoch(4)).build()));
    assertEquals(new Route("fb2", 4, null, 5), moved.directory().fallback());
    assertFalse(moved.directory().entriesHeld());
    assertFalse(moved.withSpec(lazy.spec(), 6).directory().entriesHeld());
    assertNotNull(lazy.apply(7, List.of(MapChange.newBuilder().setKeyspace(ks)
        .setEntry(DirectoryEntry.newBuilder().setKey(ik(9)).setShard("s1")).build())).broken());
    assertEquals("s1", full.route(7L).shard(), "the full map is unchanged");
  }

  @Test
  void directoryEntriesBeforeTheLayoutRecordAreKept() {
    String ks = "tenants";
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec(ks, INT64, Strategy.STRATEGY_DIRECTORY), 1)
        .apply(2, List.of(
            MapChange.newBuilder().setKeyspace(ks).setEntry(DirectoryEntry.newBuilder().setKey(ik(7)).setShard("s1").setEpoch(1)).build(),
            MapChange.newBuilder().setKeyspace(ks).setDirectory(DirectoryLayout.newBuilder().setFallbackShard("fb")).build()));
    assertEquals("s1", m.routeOrNull(7L).shard());
    assertEquals("fb", m.routeOrNull(8L).shard());
  }

  @Test
  void geoKeyspace() {
    String ks = "profiles";
    GeoLayout geo = GeoLayout.newBuilder()
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("e1").setEpoch(1))
        .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("u1").setEpoch(1))
        .setDefaultRegion("us").build();
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec(ks, BYTES, Strategy.STRATEGY_GEOGRAPHIC), 1)
        .apply(2, List.of(MapChange.newBuilder().setKeyspace(ks).setGeo(geo).build()));
    assertEquals("e1", m.route("eu".getBytes(StandardCharsets.UTF_8)).shard());
    assertEquals("u1", m.route("mars".getBytes(StandardCharsets.UTF_8)).shard());
    assertEquals(Set.of("e1", "u1"), m.owners());
  }

  // ------------------------------------------------------------------ broken keyspaces

  private static void assertBroken(KeyspaceMap m, String... fragments) {
    assertNotNull(m.broken(), "the keyspace must be marked broken");
    for (String f : fragments) {
      assertTrue(m.broken().contains(f), "broken() should mention '" + f + "': " + m.broken());
    }
    ShardmapException e = assertError(ErrorCode.INTERNAL, () -> m.routeOrNull(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}),
        m.name(), "inconsistent");
    assertTrue(e.getMessage().contains(m.broken()), "the lookup error carries the reason: " + e.getMessage());
    assertTrue(m.owners().isEmpty(), "a broken keyspace routes nothing");
  }

  @Test
  void rangeBatchLeavingAGapBreaksTheKeyspace() {
    KeyspaceMap split = rangeMap().apply(3, List.of(rangeChange("orders", 0L, 100L, "b", 1),
        rangeChange("orders", 100L, null, "b", 1)));
    // A hand edit removed the range at 100 without widening its predecessor.
    KeyspaceMap broken = split.apply(4, List.of(rangeRemoved("orders", 100)));
    assertBroken(broken, "nothing covers keys from 100", "revision 4");
    assertError(ErrorCode.INTERNAL, () -> broken.routeOrNull(5L), "orders");
    assertError(ErrorCode.INTERNAL, broken::ranges, "orders");
    assertNull(split.broken(), "the previous map is unaffected");
  }

  @Test
  void halfASplitBreaksTheKeyspace() {
    KeyspaceMap half = rangeMap().apply(3, List.of(rangeChange("orders", 0L, 100L, "b", 1)));
    assertBroken(half, "nothing covers keys from 100");
  }

  @Test
  void aBrokenKeyspaceIgnoresLaterBatchesUntilAFullRead() {
    KeyspaceMap half = rangeMap().apply(3, List.of(rangeChange("orders", 0L, 100L, "b", 1)));
    // The records of a later batch alone would make a table that looks whole: one unbounded range.
    KeyspaceMap later = half.apply(4, List.of(rangeChange("orders", null, null, "c", 2)));
    assertSame(half, later);
    assertBroken(later, "nothing covers keys from 100", "revision 3");
  }

  @Test
  void invalidLayoutsOfEachStrategyBreakTheKeyspace() {
    KeyspaceMap hash = KeyspaceMap.withoutLayout(spec("h", INT64, Strategy.STRATEGY_HASH), 1)
        .apply(2, List.of(MapChange.newBuilder().setKeyspace("h").setHash(io.shardmap.proto.v1.HashLayout.getDefaultInstance()).build()));
    assertBroken(hash, "buckets");
    KeyspaceMap ring = KeyspaceMap.withoutLayout(spec("c", INT64, Strategy.STRATEGY_CONSISTENT_HASH), 1)
        .apply(2, List.of(MapChange.newBuilder().setKeyspace("c").setRing(io.shardmap.proto.v1.RingLayout.getDefaultInstance()).build()));
    assertBroken(ring, "virtual node");
    KeyspaceMap geo = KeyspaceMap.withoutLayout(spec("g", BYTES, Strategy.STRATEGY_GEOGRAPHIC), 1)
        .apply(2, List.of(MapChange.newBuilder().setKeyspace("g").setGeo(GeoLayout.newBuilder().setDefaultRegion("x")).build()));
    assertBroken(geo, "default_region");
    KeyspaceMap badKey = rangeMap().apply(3, List.of(MapChange.newBuilder().setKeyspace("orders")
        .setRangeRemovedStart(sk("not-an-int")).build()));
    assertBroken(badKey, "range_removed_start");
  }

  /**
   * The class contract: "A keyspace whose stored layout breaks an invariant (possible only if etcd was edited
   * by hand) is kept as broken: its lookups fail with INTERNAL and the reason". A record with an empty owner is
   * such a layout; today it escapes KeyspaceMap.apply as an IllegalArgumentException from Route's constructor.
   */
  @Test
  void rangeRecordWithoutOwnerBreaksTheKeyspaceInsteadOfThrowing() {
    KeyspaceMap m = rangeMap();
    KeyspaceMap broken = m.apply(3, List.of(rangeChange("orders", 0L, null, "", 2)));
    assertBroken(broken);
  }

  @Test
  void hashLayoutWithoutOwnerBreaksTheKeyspaceInsteadOfThrowing() {
    KeyspaceMap m = KeyspaceMap.withoutLayout(spec("h", INT64, Strategy.STRATEGY_HASH), 1);
    KeyspaceMap broken = m.apply(2, List.of(MapChange.newBuilder().setKeyspace("h")
        .setHash(TestData.hash("a", "")).build()));
    assertBroken(broken);
  }

  /**
   * A spec record whose strategy no longer matches the stored layout (only possible by hand-editing etcd: the
   * admin API never changes a keyspace's strategy) must give INTERNAL on lookup, like every other inconsistent
   * layout. Today the old range table is kept, hash() returns null and the lookup dies with a
   * NullPointerException.
   */
  @Test
  void specWhoseStrategyDoesNotMatchTheLayoutFailsWithInternalNotNpe() {
    KeyspaceMap m = rangeMap().withSpec(spec("orders", INT64, Strategy.STRATEGY_HASH), 3);
    assertError(ErrorCode.INTERNAL, () -> m.routeOrNull(5L), "orders");
    assertError(ErrorCode.INTERNAL, () -> m.routeOrNull(Keys.encodeInt64(5)), "orders");
  }
}
