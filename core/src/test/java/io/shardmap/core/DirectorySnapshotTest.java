package io.shardmap.core;

import static io.shardmap.core.KeyspaceMapTest.rangeChange;
import static io.shardmap.core.KeyspaceMapTest.rangeRemoved;
import static io.shardmap.core.KeyspaceMapTest.spec;
import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class DirectorySnapshotTest {

  private static MapChange shard(String name) {
    return MapChange.newBuilder().setShard(Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("db-" + name).setPort(5432).setDatabase("app"))).build();
  }

  private static MapChange specChange(String ks, Strategy strategy) {
    return MapChange.newBuilder().setKeyspace(ks).setSpec(spec(ks, INT64, strategy)).build();
  }

  /** A snapshot at revision 10 with shards a, b and range keyspace "orders" = (-inf,0):a, [0,+inf):b. */
  private static DirectorySnapshot base() {
    return DirectorySnapshot.empty(0).apply(10, List.of(shard("a"), shard("b"),
        rangeChange("orders", null, 0L, "a", 1), specChange("orders", Strategy.STRATEGY_RANGE),
        rangeChange("orders", 0L, null, "b", 1)));
  }

  @Test
  void specsAndLayoutOfOneRevisionApplyTogetherWhateverTheirOrder() {
    DirectorySnapshot s = base();
    assertEquals(10, s.revision());
    assertEquals("a", s.keyspace("orders").routeOrNull(-1L).shard(), "layout listed before its spec is applied");
    assertEquals(10, s.keyspace("orders").specRevision());
    assertEquals(10, s.shard("a").getRevision(), "a shard record carries the revision that wrote it");
    assertEquals("db-a", s.shard("a").getPrimary().getHost());
  }

  @Test
  void shardsArePutAndRemoved() {
    DirectorySnapshot s = base().apply(11, List.of(shard("c"), MapChange.newBuilder().setShardRemoved("a").build()));
    assertEquals(List.of("b", "c"), s.shards().keySet().stream().sorted().toList());
    assertEquals(11, s.shard("c").getRevision());
    assertEquals(10, s.shard("b").getRevision());
    assertError(ErrorCode.NOT_FOUND, () -> s.shard("a"), "'a'");
    assertNotNull(base().shard("a"));
    DirectorySnapshot mod = s.apply(12, List.of(shard("c").toBuilder().setModRevision(11).build()));
    assertEquals(11, mod.shard("c").getRevision(), "a change's own mod revision wins");
  }

  @Test
  void specUpdateKeepsTheLayoutAndDropRemovesTheKeyspace() {
    DirectorySnapshot s = base().apply(11, List.of(MapChange.newBuilder().setKeyspace("orders")
        .setSpec(spec("orders", INT64, Strategy.STRATEGY_RANGE).toBuilder().addTables(
            io.shardmap.proto.v1.ShardedTable.newBuilder().setName("orders").setKeyColumn("id"))).build()));
    assertEquals(1, s.keyspace("orders").spec().getTablesCount());
    assertEquals(11, s.keyspace("orders").specRevision());
    assertEquals("b", s.keyspace("orders").routeOrNull(5L).shard(), "a spec update keeps the layout");

    DirectorySnapshot dropped = s.apply(12, List.of(
        rangeChange("orders", null, 0L, "b", 2),
        MapChange.newBuilder().setKeyspace("orders").setKeyspaceDropped(true).build()));
    assertFalse(dropped.keyspaces().containsKey("orders"));
    assertError(ErrorCode.NOT_FOUND, () -> dropped.keyspace("orders"), "'orders'");
    assertEquals("a", s.keyspace("orders").routeOrNull(-1L).shard(), "the old snapshot keeps the keyspace");
  }

  @Test
  void dropAndRecreateInOneRevision() {
    DirectorySnapshot s = base().apply(11, List.of(
        rangeChange("orders", null, 0L, "b", 2), // a change of the old keyspace, superseded by the drop
        MapChange.newBuilder().setKeyspace("orders").setKeyspaceDropped(true).build(),
        specChange("orders", Strategy.STRATEGY_HASH),
        MapChange.newBuilder().setKeyspace("orders").setHash(TestData.hash("b")).build()));
    assertEquals(Strategy.STRATEGY_HASH, s.keyspace("orders").strategy());
    assertNull(s.keyspace("orders").broken(), "changes before the drop must not reach the new keyspace");
    assertEquals("b", s.keyspace("orders").routeOrNull(-1L).shard());
  }

  @Test
  void layoutWithoutSpecIsIgnored() {
    DirectorySnapshot s = base().apply(11, List.of(rangeChange("ghost", null, null, "a", 1)));
    assertFalse(s.keyspaces().containsKey("ghost"));
    assertEquals(11, s.revision());
  }

  @Test
  void revisionsMustIncrease() {
    DirectorySnapshot s = base();
    assertThrows(IllegalArgumentException.class, () -> s.apply(9, List.of()));
    assertThrows(IllegalArgumentException.class, () -> s.apply(10, List.of(shard("c"))));
    assertSame(s.keyspaces(), s.apply(10, List.of()).keyspaces(), "an empty batch at the same revision is a no-op");
    DirectorySnapshot progressed = s.apply(15, List.of());
    assertEquals(15, progressed.revision());
    assertSame(s.keyspaces(), progressed.keyspaces(), "an empty batch shares everything");
  }

  @Test
  void snapshotsAreImmutableAndShareUntouchedKeyspaces() {
    DirectorySnapshot s = base().apply(11, List.of(specChange("other", Strategy.STRATEGY_HASH),
        MapChange.newBuilder().setKeyspace("other").setHash(TestData.hash("a")).build()));
    DirectorySnapshot next = s.apply(12, List.of(rangeChange("orders", null, 0L, "b", 2)));
    assertSame(s.keyspace("other"), next.keyspace("other"), "an untouched keyspace is shared");
    assertEquals("a", s.keyspace("orders").routeOrNull(-1L).shard(), "the old snapshot is unchanged");
    assertEquals("b", next.keyspace("orders").routeOrNull(-1L).shard());
    assertThrows(UnsupportedOperationException.class, () -> next.keyspaces().remove("orders"));
    assertThrows(UnsupportedOperationException.class, () -> next.shards().clear());
  }

  @Test
  void aSplitOrMergeInOneBatchNeverShowsAHalfState() {
    DirectorySnapshot s = base();
    List<MapChange> split = new ArrayList<>(List.of(rangeChange("orders", 0L, 100L, "b", 1),
        rangeChange("orders", 100L, null, "b", 1)));
    for (int order = 0; order < 2; order++) {
      Collections.reverse(split);
      DirectorySnapshot after = s.apply(11, split);
      KeyspaceMap k = after.keyspace("orders");
      assertNull(k.broken(), "a split batch must apply cleanly: " + k.broken());
      assertEquals(3, k.ranges().size());
      assertEquals(KeyRange.parse(INT64, "0..100", "r"), k.routeOrNull(99L).range());
      assertEquals(KeyRange.parse(INT64, "100..", "r"), k.routeOrNull(100L).range());
      assertEquals(2, s.keyspace("orders").ranges().size(), "readers of the old snapshot see no half split");

      List<MapChange> merge = new ArrayList<>(List.of(rangeRemoved("orders", 100),
          rangeChange("orders", 0L, null, "b", 1)));
      for (int mo = 0; mo < 2; mo++) {
        Collections.reverse(merge);
        KeyspaceMap merged = after.apply(12, merge).keyspace("orders");
        assertNull(merged.broken(), "a merge batch must apply cleanly: " + merged.broken());
        assertEquals(2, merged.ranges().size());
        assertEquals(3, after.keyspace("orders").ranges().size());
      }
    }
    // The same records applied one per revision do show the half state, which the map reports as broken.
    assertNotNull(s.apply(11, List.of(split.get(0))).keyspace("orders").broken());
  }

  @Test
  void aBrokenKeyspaceDoesNotAffectOthers() {
    DirectorySnapshot s = base().apply(11, List.of(specChange("other", Strategy.STRATEGY_HASH),
        MapChange.newBuilder().setKeyspace("other").setHash(TestData.hash("a", "b")).build()));
    DirectorySnapshot bad = s.apply(12, List.of(rangeRemoved("orders", 0),
        MapChange.newBuilder().setKeyspace("other").setHash(TestData.hash("b", "a")).build()));
    assertNotNull(bad.keyspace("orders").broken());
    assertError(ErrorCode.INTERNAL, () -> bad.keyspace("orders").routeOrNull(1L), "orders");
    Random rnd = new Random(1);
    for (int i = 0; i < 100; i++) {
      long k = rnd.nextLong();
      assertNotNull(bad.keyspace("other").routeOrNull(k), "the healthy keyspace still routes");
    }
    assertEquals(12, bad.revision());
  }

  /** Same contract as KeyspaceMapTest: a hand-edited record with an empty owner must not fail the snapshot. */
  @Test
  void aRecordWithoutOwnerBreaksOnlyItsKeyspace() {
    DirectorySnapshot s = base().apply(11, List.of(specChange("other", Strategy.STRATEGY_HASH),
        MapChange.newBuilder().setKeyspace("other").setHash(TestData.hash("a", "b")).build()));
    DirectorySnapshot bad = s.apply(12, List.of(rangeChange("orders", 0L, null, "", 2)));
    assertNotNull(bad.keyspace("orders").broken(), "orders must be broken");
    assertNotNull(bad.keyspace("other").routeOrNull(5L), "other keyspaces keep working");
  }

  @Test
  void bytesKeyspaceInSnapshot() {
    DirectorySnapshot s = DirectorySnapshot.empty(0).apply(1, List.of(
        MapChange.newBuilder().setKeyspace("u").setSpec(spec("u", BYTES, Strategy.STRATEGY_HASH)).build(),
        MapChange.newBuilder().setKeyspace("u").setHash(TestData.hash("x", "y")).build()));
    assertTrue(s.keyspace("u").route(new byte[] {1}).shard().matches("[xy]"));
  }
}
