package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** The shared map edits as pure plans on snapshots, and their transactions on the in-memory store. */
@Tag("unit")
class MapEditsTest {
  private final CatalogPaths paths = new CatalogPaths("/sm");
  private final MapEdits edits = new MapEdits(paths);
  private final ChangeDecoder decoder = new ChangeDecoder(paths);
  private final InMemoryMetaStore store = new InMemoryMetaStore();

  @BeforeEach
  void users() throws Exception {
    Txn.Builder t = Txn.builder();
    for (String s : new String[] {"s1", "s2"}) {
      t.put(paths.shard(s), Shard.newBuilder().setName(s).build().toByteArray());
    }
    t.put(paths.spec("users"), KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build().toByteArray());
    put(t, "..100", "s1", 1);
    put(t, "100..200", "s1", 3);
    put(t, "200..", "s2", 1);
    RingLayout ring = RingLayout.newBuilder().addShards(RingShard.newBuilder().setShard("s1").addVnodeEpochs(1)
        .addVnodeEpochs(1)).build();
    t.put(paths.spec("carts"), KeyspaceSpec.newBuilder().setName("carts").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_CONSISTENT_HASH).setDefaultVnodes(2).build().toByteArray());
    t.put(paths.layout("carts"), ring.toByteArray());
    t.put(paths.spec("tenants"), KeyspaceSpec.newBuilder().setName("tenants").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setStrategy(Strategy.STRATEGY_DIRECTORY).build().toByteArray());
    t.put(paths.layout("tenants"), DirectoryLayout.newBuilder().setFallbackShard("s1").setFallbackEpoch(4).build()
        .toByteArray());
    t.put(paths.spec("geo"), KeyspaceSpec.newBuilder().setName("geo").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setStrategy(Strategy.STRATEGY_GEOGRAPHIC).build().toByteArray());
    t.put(paths.layout("geo"), GeoLayout.newBuilder().setDefaultRegion("eu")
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1").setEpoch(2))
        .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2").setEpoch(7)).build().toByteArray());
    store.commit(t.build()).get();
  }

  private void put(Txn.Builder t, String range, String shard, long epoch) {
    KeyRange r = KeyRange.parse(KeyType.KEY_TYPE_INT64, range, "test");
    t.put(paths.range("users", r.start()), RangeAssignment.newBuilder().setRange(r.toProto(KeyType.KEY_TYPE_INT64))
        .setShard(shard).setEpoch(epoch).build().toByteArray());
  }

  private DirectorySnapshot snapshot() throws Exception {
    RangeResult all = store.getPrefix(paths.rootPrefix()).get();
    return DirectorySnapshot.empty(0).apply(all.revision(), decoder.toChanges(all.kvs()));
  }

  private ReferenceTables refs() {
    return ReferenceTables.read(store, paths, Duration.ofSeconds(2));
  }

  private MovingMarkers markers(String ks) {
    return MovingMarkers.read(store, paths, ks, Duration.ofSeconds(2));
  }

  private void mark(String key, String id) throws Exception {
    store.commit(Txn.builder().put(key, id.getBytes(StandardCharsets.UTF_8)).put(paths.movingGuard("users"),
        new byte[0]).build()).get();
  }

  private static void refused(ErrorCode code, Executable call, String message) {
    ShardmapException e = assertThrows(ShardmapException.class, call);
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains(message), e.getMessage());
  }

  @Test
  void splitKeepsOwnerAndEpochAndCommits() throws Exception {
    MapEdits.Edit<MapEdits.Split> e = edits.range().split(snapshot(), markers("users"), "users", Keys.encodeInt64(150),
        "split_key");
    assertEquals(new Route("s1", 3, KeyRange.parse(KeyType.KEY_TYPE_INT64, "100..150", "t"), 0), e.value().left());
    assertEquals(new Route("s1", 3, KeyRange.parse(KeyType.KEY_TYPE_INT64, "150..200", "t"), 0), e.value().right());
    assertTrue(store.commit(e.txn()).get().succeeded());
    assertEquals(4, snapshot().keyspace("users").ranges().size());
  }

  @Test
  void splitRefusesABoundaryAMarkedRangeAndAStrayMarker() throws Exception {
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.range().split(snapshot(), markers("users"), "users",
        Keys.encodeInt64(100), "split_key"), "split_key: 100 is already a range boundary");
    mark(paths.moving("users", Keys.encodeInt64(150)), "stray");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.range().split(snapshot(), markers("users"), "users",
        Keys.encodeInt64(150), "range"), "range: keyspace 'users' has a moving marker of migration 'stray' at 150");
    mark(paths.moving("users", Keys.encodeInt64(100)), "m1");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.range().split(snapshot(), markers("users"), "users",
        Keys.encodeInt64(120), "split_key"), "split_key: 100..200 of keyspace 'users' is being moved by migration 'm1'");
  }

  @Test
  void aMarkerWrittenAfterThePlanFailsItsTransaction() throws Exception {
    MapEdits.Edit<Route> e = edits.range().reassignRange(snapshot(), markers("users"), refs(), "users",
        KeyRange.parse(KeyType.KEY_TYPE_INT64, "100..200", "t"), "s2", 0);
    assertEquals(4, e.value().epoch());
    mark(paths.moving("users", Keys.encodeInt64(100)), "m1");
    assertFalse(store.commit(e.txn()).get().succeeded());
    assertEquals("s1", snapshot().keyspace("users").ranges().get(1).shard());
  }

  @Test
  void reassignGuardsTheNewOwnersRegistration() throws Exception {
    MapEdits.Edit<Route> e = edits.range().reassignRange(snapshot(), markers("users"), refs(), "users",
        KeyRange.parse(KeyType.KEY_TYPE_INT64, "..100", "t"), "s2", 0);
    store.commit(Txn.builder().delete(paths.shard("s2")).build()).get();
    assertFalse(store.commit(e.txn()).get().succeeded(), "the target was deregistered meanwhile");
    refused(ErrorCode.NOT_FOUND, () -> edits.range().reassignRange(snapshot(), markers("users"), refs(), "users",
        KeyRange.parse(KeyType.KEY_TYPE_INT64, "..100", "t"), "s2", 0), "shard: shard 's2' is not registered");
  }

  @Test
  void mergeNeedsOneOwner() throws Exception {
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.range().merge(snapshot(), markers("users"), "users",
        Keys.encodeInt64(200)), "have different owners ('s1' and 's2')");
    MapEdits.Edit<Route> e = edits.range().merge(snapshot(), markers("users"), "users", Keys.encodeInt64(100));
    assertEquals(3, e.value().epoch());
    assertTrue(store.commit(e.txn()).get().succeeded());
  }

  @Test
  void ringNodesJoinWithTheOwnershipGuardAndNotWhileOneMoves() throws Exception {
    MapEdits.Edit<MapEdits.LayoutChange<RingLayout>> e = edits.ring().addRingNodes(snapshot(), markers("carts"), refs(), "carts",
        "s2", 1, "keyspace");
    assertTrue(e.value().movedFraction() > 0 && e.value().movedFraction() < 1);
    assertEquals(e.value().layout(), RingEdits.ringStep(snapshot().keyspace("carts").ring().layout(), "s2", true));
    store.commit(Txn.builder().put(paths.movingRing("carts"), "r1".getBytes(StandardCharsets.UTF_8)).build()).get();
    assertFalse(store.commit(e.txn()).get().succeeded(), "a ring move started after the plan");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.ring().removeRingNodes(snapshot(), markers("carts"), "carts", "s1",
        1, "shard"), "shard: a ring node of keyspace 'carts' is being moved by migration 'r1'");
  }

  private static DirectoryEntry entry(String key, String shard) {
    return DirectoryEntry.newBuilder().setKey(Key.newBuilder().setBytesKey(ByteString.copyFromUtf8(key)))
        .setShard(shard).build();
  }

  @Test
  void directoryEntriesTakeEpochsFromTheFallbackAndDeletesRaiseIt() throws Exception {
    MapEdits.Edit<List<DirectoryEntry>> put = edits.directory().putEntries(snapshot(), markers("tenants"), refs(), "tenants",
        List.of(entry("acme", "s1"), entry("globex", "s2")));
    assertEquals(List.of(4L, 5L), put.value().stream().map(DirectoryEntry::getEpoch).toList());
    assertTrue(store.commit(put.txn()).get().succeeded());
    refused(ErrorCode.INVALID_ARGUMENT, () -> edits.directory().putEntries(snapshot(), markers("tenants"), refs(), "tenants",
        List.of(entry("a", "s1"), entry("a", "s2"))), "entries[1].key: the same key as entries[0]");
    MapEdits.Edit<Integer> del = edits.directory().deleteEntries(snapshot(), markers("tenants"), "tenants",
        List.of(entry("globex", "").getKey(), entry("nobody", "").getKey()));
    assertEquals(1, del.value());
    assertTrue(store.commit(del.txn()).get().succeeded());
    assertEquals(6, snapshot().keyspace("tenants").directory().layout().getFallbackEpoch(), "past globex's 5");
    store.commit(Txn.builder().put(paths.movingEntry("tenants", "acme".getBytes(StandardCharsets.UTF_8)),
        "d1".getBytes(StandardCharsets.UTF_8)).put(paths.movingGuard("tenants"), new byte[0]).build()).get();
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.directory().putEntries(snapshot(), markers("tenants"), refs(), "tenants",
        List.of(entry("acme", "s2"))), "entries[0].key: entry 'acme' of keyspace 'tenants' is being moved");
    MapEdits.Edit<List<DirectoryEntry>> other = edits.directory().putEntries(snapshot(), MovingMarkers.none("tenants", 1),
        refs(), "tenants", List.of(entry("initech", "s2")));
    assertFalse(store.commit(other.txn()).get().succeeded(), "a marker was written after the markers read");
  }

  @Test
  void regionsMoveWithEpochsPastTheKeysTheyTake() throws Exception {
    MapEdits.Edit<GeoLayout> set = edits.geo().setRegion(snapshot(), markers("geo"), refs(), "geo", "ap", "s2", true);
    assertEquals("ap", set.value().getDefaultRegion());
    assertEquals(8, set.value().getRegionsList().stream().filter(r -> r.getRegion().equals("ap")).findFirst()
        .orElseThrow().getEpoch(), "unknown regions change owner with the default: past every epoch");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.geo().removeRegion(snapshot(), markers("geo"), "geo", "eu"),
        "region: 'eu' is the default region");
    MapEdits.Edit<GeoLayout> removed = edits.geo().removeRegion(snapshot(), markers("geo"), "geo", "us");
    assertEquals(List.of(RegionAssignment.newBuilder().setRegion("eu").setShard("s1").setEpoch(8).build()),
        removed.value().getRegionsList());
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.directory().setFallback(snapshot(), refs(), "tenants", "s1"),
        "shard: 's1' is already the fallback");
  }

  /**
   * While a region moves the keyspace's regions cannot change (a new region or another default would change
   * the default region's keys), race-free: an edit planned before the marker was written fails to commit.
   */
  @Test
  void regionEditsAreRefusedWhileARegionMoves() throws Exception {
    MapEdits.Edit<GeoLayout> before = edits.geo().setRegion(snapshot(), markers("geo"), refs(), "geo", "ap", "s2", false);
    store.commit(Txn.builder().put(paths.movingRegion("geo", "us"), "r1".getBytes(StandardCharsets.UTF_8))
        .put(paths.movingGuard("geo"), new byte[0]).build()).get();
    assertFalse(store.commit(before.txn()).get().succeeded(), "a region marker was written after the markers read");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.geo().setRegion(snapshot(), markers("geo"), refs(), "geo", "ap", "s2",
        false), "region: keyspace 'geo' has units being moved by migration 'r1'");
    refused(ErrorCode.FAILED_PRECONDITION, () -> edits.geo().removeRegion(snapshot(), markers("geo"), "geo", "us"),
        "region: keyspace 'geo' has units being moved by migration 'r1'");
    assertEquals(Strategy.STRATEGY_GEOGRAPHIC, edits.forStrategy(Strategy.STRATEGY_GEOGRAPHIC).strategy());
    refused(ErrorCode.INTERNAL, () -> edits.forStrategy(Strategy.STRATEGY_UNSPECIFIED), "no map edits for strategy");
  }

  @Test
  void refuseAnyNamesEveryMigration() {
    MovingMarkers m = new MovingMarkers("users", Map.of("/a", "m2", "/b", "m1", "/c", "m2"), 9, 8);
    refused(ErrorCode.FAILED_PRECONDITION, () -> m.refuseAny("name"),
        "name: keyspace 'users' has units being moved by migrations 'm1', 'm2'; wait for them or cancel them "
            + "(migrator cancel m1; migrator cancel m2)");
    MovingMarkers.none("users", 3).refuseAny("name");
  }
}
