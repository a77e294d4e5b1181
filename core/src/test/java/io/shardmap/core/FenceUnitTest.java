package io.shardmap.core;

import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The fenced-unit codec and its question "does this map route a key of the unit to shard S at an epoch
 * &lt;= E", per strategy, with maps from before the move (yes), after it (no), and after the map changed
 * shape since the fence (ranges split and merged, a hash resharded, ring nodes added, entries deleted,
 * regions listed).
 */
@Tag("unit")
class FenceUnitTest {
  private static KeyspaceMap map(KeyType type, Strategy s, List<MapChange> changes) {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setKeyType(type).setStrategy(s).build();
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, changes);
  }

  private static Key ik(long v) {
    return Key.newBuilder().setIntKey(v).build();
  }

  private static Key sk(String s) {
    return Key.newBuilder().setStringKey(s).build();
  }

  /** A range change; null bounds are unbounded. */
  private static MapChange range(Key start, Key end, String shard, long epoch) {
    io.shardmap.proto.v1.KeyRange.Builder r = io.shardmap.proto.v1.KeyRange.newBuilder();
    if (start != null) {
      r.setStart(start);
    }
    if (end != null) {
      r.setEnd(end);
    }
    return MapChange.newBuilder().setKeyspace("ks")
        .setRange(RangeAssignment.newBuilder().setRange(r).setShard(shard).setEpoch(epoch)).build();
  }

  private static KeyspaceMap ints(MapChange... ranges) {
    return map(INT64, Strategy.STRATEGY_RANGE, List.of(ranges));
  }

  private static boolean routes(FenceUnit u, KeyspaceMap m, String shard, long epoch) {
    return u.routedAtOrBelow(m, shard, epoch).isPresent();
  }

  @Test
  void everyKindRoundTripsThroughItsCode() {
    List<FenceUnit> units = List.of(
        FenceUnit.Range.int64(0L, 100L), FenceUnit.Range.int64(null, -5L), FenceUnit.Range.int64(7L, null),
        FenceUnit.Range.int64(null, null),
        FenceUnit.Range.bytes(KeyRange.of("m".getBytes(StandardCharsets.UTF_8), new byte[0], "r")),
        FenceUnit.Range.bytes(KeyRange.of(new byte[0], new byte[] {0, (byte) 0xff}, "r")),
        new FenceUnit.Bucket(3, 8), new FenceUnit.Bucket(0, 1),
        new FenceUnit.Arc(0xfffffffffffffff0L, 5), new FenceUnit.Arc(42, 42), new FenceUnit.Arc(0, -1L),
        new FenceUnit.Entries(List.of("k:1".getBytes(StandardCharsets.UTF_8), Keys.encodeInt64(-3))),
        new FenceUnit.Region("eu:west", false, List.of()),
        new FenceUnit.Region("eu", true, List.of("us", "ap, south")),
        new FenceUnit.Region("eu", true, List.of()),
        new FenceUnit.Keyspace());
    for (FenceUnit u : units) {
      String code = u.encode();
      assertTrue(code.startsWith("v1:"), code);
      assertEquals(u, FenceUnit.decode(code), code);
      assertEquals(code, FenceUnit.decode(code).encode());
    }
    assertEquals("v1:int64::100", FenceUnit.Range.int64(null, 100L).encode());
    assertEquals("v1:bucket:3:8", new FenceUnit.Bucket(3, 8).encode());
    assertEquals("v1:arc:fffffffffffffff0:0000000000000005", new FenceUnit.Arc(0xfffffffffffffff0L, 5).encode());
    assertEquals("range [-inf, 100)", FenceUnit.Range.int64(null, 100L).describe());
    assertEquals("hash bucket 3 of 8", new FenceUnit.Bucket(3, 8).describe());
  }

  @Test
  void codesItCannotReadAreRefusedWithTheReason() {
    assertTrue(assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v2:bucket:1:2")).getMessage()
        .contains("not of version v1"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:cube:1")).getMessage()
        .contains("unknown kind 'cube'"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:bucket:1")).getMessage()
        .contains("has 3 fields"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:bucket:x:8")).getMessage()
        .contains("bad number"));
    assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:bucket:8:8"));
    assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:int64:5:5"));
    assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:range:02:01"));
    assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode("v1:entries:zz"));
    assertThrows(IllegalArgumentException.class, () -> FenceUnit.decode(null));
  }

  /** [0, 100) left s1 at epoch 5 for s2 (epoch 6); later it split, half came back, and the halves merged. */
  @Test
  void anInt64RangeAgainstMapsBeforeAndAfterItsMoveAndSplitsAndMerges() {
    FenceUnit fence = FenceUnit.Range.int64(0L, 100L);
    KeyspaceMap before = ints(range(null, ik(0), "s1", 1), range(ik(0), ik(100), "s1", 5), range(ik(100), null, "s2", 1));
    assertEquals(5, fence.routedAtOrBelow(before, "s1", 5).orElseThrow().epoch());
    assertFalse(routes(fence, before, "s1", 4), "the route is above an older fence: the unit came back since");
    KeyspaceMap after = ints(range(null, ik(0), "s1", 1), range(ik(0), ik(100), "s2", 6), range(ik(100), null, "s2", 1));
    assertFalse(routes(fence, after, "s1", 5), "s1's neighbour [..0) at epoch 1 touches the fence but does not overlap");
    KeyspaceMap split = ints(range(null, ik(0), "s1", 1), range(ik(0), ik(50), "s2", 6), range(ik(50), ik(100), "s2", 6),
        range(ik(100), null, "s2", 1));
    assertFalse(routes(fence, split, "s1", 5));
    KeyspaceMap halfBack = ints(range(null, ik(0), "s1", 1), range(ik(0), ik(50), "s1", 7), range(ik(50), null, "s2", 6));
    assertFalse(routes(fence, halfBack, "s1", 5));
    KeyspaceMap merged = ints(range(null, ik(50), "s1", 7), range(ik(50), null, "s2", 6));
    assertFalse(routes(fence, merged, "s1", 5));
    // A map from before the move in which [0, 100) had been merged into a wider range of s1.
    KeyspaceMap mergedBefore = ints(range(null, ik(200), "s1", 5), range(ik(200), null, "s2", 1));
    assertTrue(routes(fence, mergedBefore, "s1", 5));
    assertTrue(routes(FenceUnit.Range.int64(null, -10L), mergedBefore, "s1", 5), "unbounded below");
    assertTrue(routes(FenceUnit.Range.int64(150L, null), mergedBefore, "s1", 5), "unbounded above");
    assertFalse(routes(FenceUnit.Range.int64(200L, null), mergedBefore, "s1", 5), "starts where s1's range ends");
  }

  @Test
  void aBytesRangeOverlapsByKeyOrder() {
    FenceUnit fence = FenceUnit.Range.bytes(KeyRange.of("m".getBytes(StandardCharsets.UTF_8),
        "t".getBytes(StandardCharsets.UTF_8), "r"));
    KeyspaceMap m = map(BYTES, Strategy.STRATEGY_RANGE, List.of(range(null, sk("g"), "s2", 1),
        range(sk("g"), sk("m"), "s1", 1), range(sk("m"), sk("n"), "s1", 3), range(sk("n"), null, "s2", 4)));
    assertEquals("s1", fence.routedAtOrBelow(m, "s1", 3).orElseThrow().shard());
    assertFalse(routes(fence, m, "s1", 2), "[g, m) is s1's at epoch 1 but ends where the fence starts");
    assertTrue(routes(fence, m, "s2", 4));
  }

  private static KeyspaceMap hash(int buckets, String shardOf3, long epochOf3) {
    HashLayout.Builder b = HashLayout.newBuilder();
    for (int i = 0; i < buckets; i++) {
      b.addBuckets(i == 3 ? BucketAssignment.newBuilder().setShard(shardOf3).setEpoch(epochOf3)
          : BucketAssignment.newBuilder().setShard(i % 2 == 0 ? "s1" : "s2").setEpoch(1));
    }
    return map(INT64, Strategy.STRATEGY_HASH, List.of(MapChange.newBuilder().setKeyspace("ks").setHash(b).build()));
  }

  /** Bucket 3 of 8 left s2 at epoch 5 for s3. */
  @Test
  void aHashBucketAgainstMapsBeforeAndAfterItsMove() {
    FenceUnit fence = new FenceUnit.Bucket(3, 8);
    assertTrue(routes(fence, hash(8, "s2", 5), "s2", 5));
    assertFalse(routes(fence, hash(8, "s3", 6), "s2", 5), "s2's other buckets (1, 5, 7) hold none of bucket 3");
    assertFalse(routes(fence, hash(8, "s2", 7), "s2", 5), "bucket 3 came back to s2 above the fence");
  }

  /**
   * After a reshard to m buckets, bucket c of m shares keys with bucket 3 of 8 iff c ≡ 3 mod gcd(8, m): the
   * candidates are exactly the buckets that random hashes of bucket 3 land in.
   */
  @Test
  void aResharedHashIsAskedAboutTheBucketsThatShareKeysWithTheFencedOne() {
    SplittableRandom rnd = new SplittableRandom(12);
    for (int m : new int[] {1, 2, 3, 4, 6, 8, 12, 16, 24, 7}) {
      List<Route> candidates = new ArrayList<>();
      HashLayout.Builder b = HashLayout.newBuilder();
      for (int i = 0; i < m; i++) {
        b.addBuckets(BucketAssignment.newBuilder().setShard("b" + i).setEpoch(1));
      }
      KeyspaceMap resharded = map(INT64, Strategy.STRATEGY_HASH, List.of(MapChange.newBuilder().setKeyspace("ks").setHash(b).build()));
      assertTrue(new FenceUnit.Bucket(3, 8).candidatesIn(resharded.table(), candidates));
      Set<String> expected = new HashSet<>();
      for (int i = 0; i < 200_000; i++) {
        long h = rnd.nextLong();
        if (HashTable.bucketOf(h, 8) == 3) {
          expected.add("b" + HashTable.bucketOf(h, m));
        }
      }
      Set<String> got = new HashSet<>();
      candidates.forEach(r -> got.add(r.shard()));
      assertEquals(expected, got, "buckets of " + m);
    }
    // Resharded to 12 (gcd 4): buckets 3, 7 and 11 hold keys of bucket 3 of 8; bucket 4 does not.
    HashLayout.Builder b = HashLayout.newBuilder();
    for (int i = 0; i < 12; i++) {
      b.addBuckets(BucketAssignment.newBuilder().setShard(i == 7 || i == 4 ? "s2" : "s1").setEpoch(i == 7 || i == 4 ? 5 : 9));
    }
    KeyspaceMap twelve = map(INT64, Strategy.STRATEGY_HASH, List.of(MapChange.newBuilder().setKeyspace("ks").setHash(b).build()));
    assertTrue(routes(new FenceUnit.Bucket(3, 8), twelve, "s2", 5));
    assertTrue(routes(new FenceUnit.Bucket(0, 8), twelve, "s2", 5), "bucket 4 of 12 shares keys with 0 of 8");
    assertFalse(routes(new FenceUnit.Bucket(1, 8), twelve, "s2", 5), "buckets 1, 5, 9 of 12 are s1's");
  }

  @Test
  void ringArcsIntersectAsHalfOpenCircularIntervals() {
    assertFalse(FenceUnit.Arc.intersect(10, 20, 20, 30));
    assertTrue(FenceUnit.Arc.intersect(10, 20, 19, 25));
    assertTrue(FenceUnit.Arc.intersect(10, 20, 5, 11));
    assertFalse(FenceUnit.Arc.intersect(10, 20, 5, 10));
    assertTrue(FenceUnit.Arc.intersect(0xfffffffffffffff0L, 5, 3, 4), "wrapping arc");
    assertTrue(FenceUnit.Arc.intersect(0xfffffffffffffff0L, 5, 0xfffffffffffffff8L, 0xfffffffffffffff9L));
    assertFalse(FenceUnit.Arc.intersect(0xfffffffffffffff0L, 5, 5, 0xfffffffffffffff0L), "the complement");
    assertTrue(FenceUnit.Arc.intersect(-1L, 0, 0xfffffffffffffff0L, 0), "(max, 0] is the position 0");
    assertTrue(FenceUnit.Arc.intersect(7, 7, 100, 101), "the whole ring");
    assertTrue(FenceUnit.Arc.intersect(0x7ffffffffffffff0L, 0x8000000000000010L, 0x8000000000000000L, 0x8000000000000001L),
        "across the sign bit, compared unsigned");
  }

  private static KeyspaceMap ring(RingLayout layout) {
    return map(INT64, Strategy.STRATEGY_CONSISTENT_HASH, List.of(MapChange.newBuilder().setKeyspace("ks").setRing(layout).build()));
  }

  /**
   * A node of s3 joins, taking the arc (its predecessor, its position] from its successor's shard: that arc
   * is fenced there at the successor's epoch. The map from before says yes; the one with the node added
   * says no (the successor's shrunk arc starts where the fenced one ends), even with more nodes added later.
   */
  @Test
  void aRingArcAgainstMapsBeforeAndAfterANodeJoins() {
    Ring before = Ring.of(TestData.ring(4, "s1", "s2"), 1);
    RingLayout joinedLayout = before.withAddedNodes("s3", 1);
    Ring joined = Ring.of(joinedLayout, 2);
    int j = -1;
    for (int i = 0; i < joined.size(); i++) {
      if (joined.ownerOf(i).equals("s3")) {
        j = i;
      }
    }
    int n = joined.size();
    FenceUnit fence = new FenceUnit.Arc(joined.positionOf((j + n - 1) % n), joined.positionOf(j));
    String source = joined.ownerOf((j + 1) % n);
    long fencedEpoch = 1;
    assertTrue(routes(fence, ring(TestData.ring(4, "s1", "s2")), source, fencedEpoch));
    assertFalse(routes(fence, ring(joinedLayout), source, fencedEpoch));
    assertEquals("s3", fence.routedAtOrBelow(ring(joinedLayout), "s3", 2).orElseThrow().shard());
    Ring more = Ring.of(joinedLayout, 3);
    RingLayout moreLayout = more.withAddedNodes("s4", 8);
    assertFalse(routes(fence, ring(moreLayout), source, fencedEpoch), "nodes added since");
    assertTrue(routes(new FenceUnit.Arc(5, 5), ring(moreLayout), source, fencedEpoch), "the whole ring");
  }

  private static KeyspaceMap directory(String fallback, long fallbackEpoch, Object... entries) {
    List<MapChange> changes = new ArrayList<>();
    changes.add(MapChange.newBuilder().setKeyspace("ks").setDirectory(DirectoryLayout.newBuilder()
        .setFallbackShard(fallback).setFallbackEpoch(fallbackEpoch)).build());
    for (int i = 0; i < entries.length; i += 3) {
      changes.add(MapChange.newBuilder().setKeyspace("ks").setEntry(DirectoryEntry.newBuilder()
          .setKey(sk((String) entries[i])).setShard((String) entries[i + 1]).setEpoch((Long) entries[i + 2])).build());
    }
    return map(BYTES, Strategy.STRATEGY_DIRECTORY, changes);
  }

  /** Entries a and b left s1 (epochs 2 and 1) for s2 at epoch 3; the fence is at 2. */
  @Test
  void directoryEntriesAreLookedUpOneByOne() {
    FenceUnit fence = new FenceUnit.Entries(List.of("a".getBytes(StandardCharsets.UTF_8), "b".getBytes(StandardCharsets.UTF_8)));
    assertTrue(routes(fence, directory("s1", 1, "a", "s1", 2L, "b", "s1", 1L, "c", "s2", 1L), "s1", 2));
    assertFalse(routes(fence, directory("s1", 1, "a", "s2", 3L, "b", "s2", 3L, "c", "s1", 1L), "s1", 2),
        "entry c of s1 is not in the unit");
    assertFalse(routes(fence, directory("s1", 4, "a", "s2", 3L), "s1", 2),
        "b's entry deleted since: the fallback took it above its epochs");
    assertTrue(routes(fence, directory("s1", 1, "a", "s2", 3L), "s1", 2), "a fallback at or below the fence routes b");
    KeyspaceMap layoutOnly = directory("s1", 1, "a", "s1", 2L).withoutDirectoryEntries();
    assertEquals(ErrorCode.FAILED_PRECONDITION, assertThrows(ShardmapException.class,
        () -> fence.routedAtOrBelow(layoutOnly, "s1", 2)).code());
    assertEquals(ErrorCode.FAILED_PRECONDITION, assertThrows(ShardmapException.class,
        () -> new FenceUnit.Keyspace().routedAtOrBelow(layoutOnly, "s1", 2)).code());
  }

  private static KeyspaceMap geo(String defaultRegion, Object... regions) {
    GeoLayout.Builder g = GeoLayout.newBuilder().setDefaultRegion(defaultRegion);
    for (int i = 0; i < regions.length; i += 3) {
      g.addRegions(RegionAssignment.newBuilder().setRegion((String) regions[i]).setShard((String) regions[i + 1])
          .setEpoch((Long) regions[i + 2]));
    }
    return map(BYTES, Strategy.STRATEGY_GEOGRAPHIC, List.of(MapChange.newBuilder().setKeyspace("ks").setGeo(g).build()));
  }

  @Test
  void aRegionIsLookedUpByNameAndTheDefaultCoversEveryOtherName() {
    FenceUnit us = new FenceUnit.Region("us", false, List.of());
    assertTrue(routes(us, geo("eu", "eu", "s1", 1L, "us", "s2", 1L), "s2", 1));
    assertFalse(routes(us, geo("eu", "eu", "s1", 1L, "us", "s3", 2L), "s2", 1));
    assertFalse(routes(us, geo("eu", "eu", "s1", 2L), "s2", 1), "no longer listed: routed with the default");
    FenceUnit eu = new FenceUnit.Region("eu", true, List.of("us", "ap"));
    assertTrue(routes(eu, geo("eu", "eu", "s1", 1L, "us", "s2", 1L, "ap", "s1", 1L), "s1", 1));
    assertFalse(routes(eu, geo("eu", "eu", "s3", 2L, "us", "s2", 1L, "ap", "s1", 1L), "s1", 1),
        "ap is s1's at epoch 1 but was listed apart from the default");
    assertTrue(routes(eu, geo("eu", "eu", "s3", 2L, "us", "s2", 1L, "ap", "s1", 1L, "sa", "s1", 1L), "s1", 1),
        "sa, listed since, held keys of the default");
  }

  /** A unit of another strategy than today's map (a keyspace created again): the whole keyspace. */
  @Test
  void aUnitOfAnotherStrategyCountsAsTheWholeKeyspace() {
    FenceUnit fence = FenceUnit.Range.int64(0L, 100L);
    assertTrue(routes(fence, hash(8, "s2", 5), "s1", 1));
    assertFalse(routes(fence, hash(8, "s2", 5), "s1", 0));
    assertTrue(routes(new FenceUnit.Keyspace(), ints(range(null, ik(0), "s1", 3), range(ik(0), null, "s2", 1)), "s2", 1));
    assertFalse(routes(new FenceUnit.Keyspace(), ints(range(null, ik(0), "s1", 3), range(ik(0), null, "s2", 1)), "s1", 2));
  }
}
