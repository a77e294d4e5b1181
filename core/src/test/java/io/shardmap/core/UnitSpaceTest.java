package io.shardmap.core;

import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.hash;
import static io.shardmap.core.TestData.intTable;
import static io.shardmap.core.TestData.range;
import static io.shardmap.core.TestData.ring;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.RegionAssignment;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Load units of every strategy: in position order, contiguous, and agreeing with routing. */
@Tag("unit")
class UnitSpaceTest {
  private static final Random RND = new Random(16);

  /** Every unit is non-empty, starts where the previous one ended, and is found again by its start. */
  private static void assertOrderedAndContiguous(RoutingTable t, boolean contiguous) {
    assertEquals(0, t.unitStart(0).length, "the first unit starts at the start of the space");
    for (int i = 0; i < t.unitCount(); i++) {
      byte[] s = t.unitStart(i);
      byte[] e = t.unitEnd(i);
      assertTrue(UnitSpace.before(s, e), "unit " + i + " is empty");
      if (i + 1 < t.unitCount()) {
        assertTrue(e.length > 0, "only the last unit reaches the end");
        assertTrue(Arrays.compareUnsigned(e, t.unitStart(i + 1)) <= 0, "unit " + i + " overlaps the next");
        if (contiguous) {
          assertTrue(Arrays.equals(e, t.unitStart(i + 1)), "a gap after unit " + i);
        }
      }
      assertEquals(i, UnitSpace.unitAt(t, s));
    }
    if (contiguous) {
      assertEquals(0, t.unitEnd(t.unitCount() - 1).length, "the last unit ends at the end of the space");
    }
  }

  /** Routing a key through its unit gives its route. */
  private static void assertAgreesWithRouting(RoutingTable t) {
    for (int n = 0; n < 20_000; n++) {
      long k = RND.nextLong();
      int u = t.unitOf(k);
      assertEquals(u, t.unitOf(Keys.encodeInt64(k)));
      assertSame(t.route(k), t.unitRoute(u), "key " + k);
    }
  }

  @Test
  void rangesAreTheirKeyRanges() {
    RangeTable t = intTable(range(INT64, "..-100", "a", 1), range(INT64, "-100..0", "b", 1),
        range(INT64, "0..5000", "a", 2), range(INT64, "5000..", "c", 1));
    assertEquals(4, t.unitCount());
    assertOrderedAndContiguous(t, true);
    assertAgreesWithRouting(t);
    assertEquals(2, t.unitOf(0L));
    assertEquals(1, t.unitOf(-1L));
    assertTrue(Arrays.equals(Keys.encodeInt64(0), t.unitStart(2)));
    assertEquals("[0, 5000)", t.describeUnit(2));
    assertEquals("[5000, +inf)", t.describeUnit(3));
    // The position of a key is the key itself.
    assertEquals(2, UnitSpace.unitAt(t, Keys.encodeInt64(4999)));
  }

  @Test
  void hashUnitsAreBuckets() {
    HashTable t = HashTable.of(hash("a", "b", "c", "a", "b"), 3);
    assertEquals(5, t.unitCount());
    assertOrderedAndContiguous(t, true);
    assertAgreesWithRouting(t);
    assertEquals("bucket 3 of 5", t.describeUnit(3));
  }

  @Test
  void ringUnitsAreArcsAndTheWrapAroundBelongsToTheFirstNode() {
    Ring t = Ring.of(ring(8, "a", "b", "c"), 3);
    assertEquals(25, t.unitCount(), "24 arcs plus the part above the last position");
    assertOrderedAndContiguous(t, true);
    assertAgreesWithRouting(t);
    assertSame(t.unitRoute(0), t.unitRoute(24));
    for (int n = 0; n < 2000; n++) {
      long k = RND.nextLong();
      int u = t.unitOf(k);
      byte[] p = UnitSpace.int64(XxHash64.hashInt64(k));
      assertTrue(Arrays.compareUnsigned(t.unitStart(u), p) <= 0 && UnitSpace.before(p, t.unitEnd(u)),
          "the key's hash lies in its unit");
    }
  }

  @Test
  void directoryUnitsAreGroupsOfKeysByHashWithoutOneOwner() {
    DirectoryTable t = DirectoryTable.empty(DirectoryLayout.getDefaultInstance(), 0);
    assertEquals(UnitSpace.DIRECTORY_GROUPS, t.unitCount());
    assertOrderedAndContiguous(t, true);
    assertNull(t.unitRoute(7));
    for (int n = 0; n < 2000; n++) {
      long k = RND.nextLong();
      assertEquals(t.unitOf(k), t.unitOf(Keys.encodeInt64(k)));
      assertTrue(t.unitOf(k) >= 0 && t.unitOf(k) < UnitSpace.DIRECTORY_GROUPS);
    }
  }

  @Test
  void regionsAreUnitsAndUnknownRegionsCountForTheDefault() {
    GeoTable t = GeoTable.of(GeoLayout.newBuilder()
        .addRegions(RegionAssignment.newBuilder().setRegion("us-east").setShard("us1").setEpoch(1))
        .addRegions(RegionAssignment.newBuilder().setRegion("eu-west").setShard("eu1").setEpoch(2))
        .addRegions(RegionAssignment.newBuilder().setRegion("ap-south").setShard("ap1").setEpoch(1))
        .setDefaultRegion("eu-west").build(), 4);
    assertEquals(3, t.unitCount());
    assertEquals("region ap-south", t.describeUnit(0));
    assertEquals(1, t.unitOf("eu-west".getBytes(StandardCharsets.UTF_8)));
    assertEquals(1, t.unitOf("mars".getBytes(StandardCharsets.UTF_8)));
    assertEquals("eu1", t.unitRoute(1).shard());
    // Regions are not contiguous: the space between two names belongs to no region's keys.
    for (int i = 1; i < 3; i++) {
      assertTrue(Arrays.compareUnsigned(t.unitEnd(i - 1), t.unitStart(i)) <= 0);
      assertEquals(i, UnitSpace.unitAt(t, t.unitStart(i)));
    }
  }

  @Test
  void endsCompareWithTheEmptyEndLast() {
    assertTrue(UnitSpace.compareEnds(UnitSpace.END, new byte[] {(byte) 0xff}) > 0);
    assertTrue(UnitSpace.compareStarts(UnitSpace.START, new byte[] {0}) < 0);
    assertTrue(UnitSpace.before(new byte[] {(byte) 0xff, 1}, UnitSpace.END));
  }
}
