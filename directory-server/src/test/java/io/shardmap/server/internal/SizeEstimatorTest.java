package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.core.DirectoryTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.server.internal.SizeEstimator.TableCount;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The arithmetic of size estimates: scaling a sample to the table's rows, and laying it over the map's units. */
@Tag("unit")
class SizeEstimatorTest {
  /** INT64 ranges (-inf, 0) on s1, [0, 1000) on s2, [1000, +inf) on s1. */
  static RangeTable ranges() {
    byte[] zero = Keys.encodeInt64(0);
    byte[] thousand = Keys.encodeInt64(1000);
    return RangeTable.build(KeyType.KEY_TYPE_INT64, List.of(
        new Route("s1", 1, KeyRange.of(new byte[0], zero, "r"), 1),
        new Route("s2", 1, KeyRange.of(zero, thousand, "r"), 1),
        new Route("s1", 1, KeyRange.of(thousand, new byte[0], "r"), 1)), "ranges");
  }

  @Test
  void aSampleIsScaledToTheTablesRowsAndItsBytesPerRow() {
    // 100,000 rows, 20,000 keys read: each key stands for 5 rows.
    TableCount t = new TableCount("t", 100_000, 8_000_000, 20_000, new long[] {10_000, 0, 5_000}, 5_000);
    assertArrayEquals(new long[] {50_000, 0, 25_000}, SizeEstimator.unitRows(t));
    assertEquals(25_000, SizeEstimator.notOwnedRows(t), "rows of units the shard does not own, scaled alike");
    assertEquals(80.0, SizeEstimator.bytesPerRow(t), 1e-9);
  }

  @Test
  void noKeyReadGivesNoUnitRowsButTheTotalStays() {
    TableCount t = new TableCount("t", 700, 90_000, 0, new long[3], 0);
    assertArrayEquals(new long[3], SizeEstimator.unitRows(t));
    assertEquals(0, SizeEstimator.notOwnedRows(t));
    KeyspaceSizes s = SizeEstimator.assemble("ks", 5, false, 9, ranges(), Map.of("s1", List.of(t),
        "s2", List.of(TableCount.absent("t", 3))), Set.of());
    assertEquals(ShardSize.newBuilder().setShard("s1").setRows(700).setBytes(90_000).build(), s.getShards(0));
    assertEquals(0, s.getUnits(0).getRows());
  }

  @Test
  void unitsInOrderWithTheirOwnerNotOwnedRowsOnlyInTheShardTotalsAndMissingShardsMarked() {
    // s1 read: 4,000 of its 10,000 rows; 1,000 keys in unit 0, none in unit 2 (which it owns), 3,000 in unit 1
    // (s2's: leftovers of a move).
    Map<String, List<TableCount>> counts = new TreeMap<>();
    counts.put("s1", List.of(new TableCount("t", 10_000, 1_000_000, 4_000, new long[] {1_000, 0, 0}, 3_000)));
    KeyspaceSizes s = SizeEstimator.assemble("ks", 1234, false, 77, ranges(), counts, Set.of("s2"));
    assertEquals("ks", s.getKeyspace());
    assertEquals(1234, s.getTakenUnixMs());
    assertEquals(77, s.getLayoutRevision());
    // Unit 1's owner s2 could not be read: no entry. Unit 2 is s1's with no key sampled: an entry of 0.
    assertEquals(2, s.getUnitsCount());
    UnitSize u0 = s.getUnits(0);
    assertEquals("s1", u0.getShard());
    assertEquals(2_500, u0.getRows());
    assertEquals(250_000, u0.getBytes(), "rows x 100 bytes per row");
    assertEquals(0, u0.getStart().size(), "the first range starts at the start of the space");
    UnitSize u2 = s.getUnits(1);
    assertEquals("s1", u2.getShard());
    assertEquals(0, u2.getRows());
    assertArrayEquals(Keys.encodeInt64(1000), u2.getStart().toByteArray());
    // The shard's totals hold every row, so its leftovers are the total minus its units: 7,500.
    assertEquals(List.of(ShardSize.newBuilder().setShard("s1").setRows(10_000).setBytes(1_000_000).build(),
        ShardSize.newBuilder().setShard("s2").setRows(-1).setBytes(-1).build()), s.getShardsList());
  }

  @Test
  void tablesAddUpEachWithItsOwnBytesPerRow() {
    Map<String, List<TableCount>> counts = new TreeMap<>();
    counts.put("s1", List.of(
        new TableCount("a", 1_000, 100_000, 1_000, new long[] {600, 0, 400}, 0), // 100 bytes per row
        new TableCount("b", 2_000, 20_000, 1_000, new long[] {500, 0, 500}, 0))); // 10 bytes per row
    counts.put("s2", List.of(TableCount.absent("a", 3), TableCount.absent("b", 3)));
    KeyspaceSizes s = SizeEstimator.assemble("ks", 1, true, 1, ranges(), counts, Set.of());
    assertEquals(3, s.getUnitsCount());
    assertEquals(600 + 1_000, s.getUnits(0).getRows());
    assertEquals(600 * 100 + 1_000 * 10, s.getUnits(0).getBytes());
    assertEquals("s2", s.getUnits(1).getShard());
    assertEquals(0, s.getUnits(1).getRows(), "an owner without the tables: its units hold 0");
    assertEquals(400 + 1_000, s.getUnits(2).getRows());
    assertEquals(3_000, s.getShards(0).getRows());
    assertEquals(120_000, s.getShards(0).getBytes());
  }

  @Test
  void aDirectoryGroupHasOneEntryPerShardWithRowsInIt() {
    DirectoryTable dir = DirectoryTable.empty(DirectoryLayout.newBuilder().setFallbackShard("s1").build(), 1);
    int units = dir.unitCount();
    long[] a = new long[units];
    long[] b = new long[units];
    a[5] = 10;
    b[5] = 30;
    b[900] = 60;
    Map<String, List<TableCount>> counts = new TreeMap<>();
    counts.put("s1", List.of(new TableCount("t", 10, 100, 10, a, 0)));
    counts.put("s2", List.of(new TableCount("t", 90, 900, 90, b, 0)));
    KeyspaceSizes s = SizeEstimator.assemble("ks", 1, true, 1, dir, counts, Set.of());
    assertEquals(3, s.getUnitsCount(), "groups without rows are left out");
    assertEquals(List.of("s1", "s2", "s2"), s.getUnitsList().stream().map(UnitSize::getShard).toList());
    assertEquals(s.getUnits(0).getStart(), s.getUnits(1).getStart(), "one group, two shards");
    assertEquals(List.of(10L, 30L, 60L), s.getUnitsList().stream().map(UnitSize::getRows).toList());
  }

  @Test
  void countsOverAnotherUnitCountAreRefused() {
    Map<String, List<TableCount>> counts = Map.of("s1", List.of(new TableCount("t", 1, 1, 1, new long[2], 0)));
    assertThrows(IllegalArgumentException.class,
        () -> SizeEstimator.assemble("ks", 1, true, 1, ranges(), counts, Set.of()));
    assertThrows(IllegalArgumentException.class, () -> new TableCount("t", -1, 0, 0, new long[1], 0));
  }
}
