package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MapEdits;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Each move unit's class on its own, on the in-memory store (no etcd, no PostgreSQL): the registry, what
 * a proposal reads, checks and marks, and what a cutover's hand-over writes or why it refuses.
 */
@Tag("unit")
class UnitKindsTest {
  private final CatalogPaths paths = new CatalogPaths("/sm");
  private final MapEdits edits = new MapEdits(paths);
  private final InMemoryMetaStore store = new InMemoryMetaStore();
  private final Set<String> registered = Set.of("s1", "s2", "s3");
  private final List<String> shardChecks = new ArrayList<>();

  private final UnitKind.PlanContext plan = new UnitKind.PlanContext() {
    @Override
    public CatalogPaths paths() {
      return paths;
    }

    @Override
    public KeyValue one(String key) {
      return read(key);
    }

    @Override
    public void requireShard(String field, String shard) {
      shardChecks.add(field + "=" + shard);
      if (!registered.contains(shard)) {
        throw ShardmapException.notFound(field + ": shard '" + shard + "' is not registered");
      }
    }

    @Override
    public void splitAt(String keyspace, byte[] at) {
      throw new AssertionError("no split in these tests");
    }
  };

  private final UnitKind.CutoverContext cutover = new UnitKind.CutoverContext() {
    @Override
    public CatalogPaths paths() {
      return paths;
    }

    @Override
    public MapEdits edits() {
      return edits;
    }

    @Override
    public KeyValue one(String key) {
      return read(key);
    }
  };

  private KeyValue read(String key) {
    try {
      RangeResult r = store.get(key).get();
      return r.kvs().isEmpty() ? null : r.kvs().get(0);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  static KeyspaceSpec spec(String name, Strategy s, KeyType type) {
    return KeyspaceSpec.newBuilder().setName(name).setStrategy(s).setKeyType(type).build();
  }

  static final GeoLayout GEO = GeoLayout.newBuilder().setDefaultRegion("eu")
      .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1").setEpoch(2))
      .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2").setEpoch(7))
      .addRegions(RegionAssignment.newBuilder().setRegion("ap").setShard("s2").setEpoch(1)).build();

  @BeforeEach
  void layouts() throws Exception {
    Txn.Builder t = Txn.builder();
    t.put(paths.layout("geo"), GEO.toByteArray());
    t.put(paths.layout("h"), HashLayout.newBuilder().addBuckets(BucketAssignment.newBuilder().setShard("s1").setEpoch(1))
        .addBuckets(BucketAssignment.newBuilder().setShard("s2").setEpoch(5)).build().toByteArray());
    KeyRange r = KeyRange.parse(KeyType.KEY_TYPE_INT64, "0..100", "r");
    t.put(paths.range("r", r.start()), RangeAssignment.newBuilder().setRange(r.toProto(KeyType.KEY_TYPE_INT64))
        .setShard("s1").setEpoch(3).build().toByteArray());
    for (String k : List.of("a", "b")) {
      t.put(paths.entry("d", k.getBytes(StandardCharsets.UTF_8)), DirectoryEntry.newBuilder()
          .setKey(Key.newBuilder().setStringKey(k)).setShard(k.equals("a") ? "s1" : "s2").setEpoch(4).build().toByteArray());
    }
    store.commit(t.build()).get();
  }

  private static MoveSpec.Builder move(String ks) {
    return MoveSpec.builder().keyspace(ks);
  }

  private static void refused(ErrorCode code, String message, Executable call) {
    ShardmapException e = assertThrows(ShardmapException.class, call);
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().startsWith(message), e.getMessage());
  }

  @Test
  void theRegistryMapsSpecsRecordsAndStrategiesToOneUnitEach() {
    assertTrue(UnitKinds.requested(move("x").range("0..").target("s1").build()) instanceof RangeMove);
    assertTrue(UnitKinds.requested(move("x").bucket(1).target("s1").build()) instanceof BucketMove);
    assertTrue(UnitKinds.requested(move("x").ringJoin().target("s1").build()) instanceof RingNodeMove);
    assertTrue(UnitKinds.requested(move("x").ringLeave("s1").build()) instanceof RingNodeMove);
    assertTrue(UnitKinds.requested(move("x").entries(List.of("1")).target("s1").build()) instanceof EntriesMove);
    assertTrue(UnitKinds.requested(move("x").region("eu").target("s1").build()) instanceof RegionMove);
    for (Strategy s : List.of(Strategy.STRATEGY_RANGE, Strategy.STRATEGY_HASH, Strategy.STRATEGY_CONSISTENT_HASH,
        Strategy.STRATEGY_DIRECTORY, Strategy.STRATEGY_GEOGRAPHIC)) {
      assertEquals(s, UnitKinds.forStrategy(s).strategy(), "every strategy has a unit that moves");
    }
    assertNull(UnitKinds.forStrategy(Strategy.STRATEGY_UNSPECIFIED));
    Migration region = Migration.newBuilder().setId("m").setUnit(MigrationUnit.newBuilder()
        .setRegion(io.shardmap.proto.v1.GeoRegionUnit.newBuilder().setRegion("us"))).build();
    assertSame(UnitKinds.forStrategy(Strategy.STRATEGY_GEOGRAPHIC), UnitKinds.of(region));
    assertEquals("region 'us'", MoveUnits.name(region));
    assertEquals("region", MoveUnits.kind(region));
    Migration empty = Migration.newBuilder().setId("e").setUnit(MigrationUnit.getDefaultInstance()).build();
    assertThrows(IllegalStateException.class, () -> UnitKinds.of(empty));
    assertEquals("(no unit)", MoveUnits.describe(empty));
  }

  @Test
  void aListedRegionIsProposedWithItsMarkerAndTheLayoutPinned() throws Exception {
    RegionMove kind = new RegionMove();
    KeyspaceSpec geo = spec("geo", Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES);
    Proposal p = kind.propose(plan, move("geo").region("us").target("s3").build(), geo);
    assertEquals("s2", p.source());
    assertEquals(7, p.epoch());
    assertEquals(read(paths.layout("geo")).modRevision(), p.recordRevision());
    assertEquals(List.of(paths.movingRegion("geo", "us")), p.markers());
    assertFalse(p.unit().getRegion().getDefaultRegion());
    assertEquals(0, p.unit().getRegion().getOtherRegionsCount());
    assertEquals(List.of("target=s3"), shardChecks);
    Migration m = Migration.newBuilder().setId("m").setKeyspace("geo").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setSource("s2").setTarget("s3").setRangeEpoch(7).setUnit(p.unit()).build();
    assertEquals("k IN (E'us')", kind.unit(m).contains(KeyKind.TEXT, "k"));
    assertEquals(kind.markers(paths, m), p.markers());
  }

  @Test
  void theDefaultRegionCarriesTheOtherRegionsItExcludes() {
    Proposal p = new RegionMove().propose(plan, move("geo").region("eu").target("s3").build(),
        spec("geo", Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES));
    assertTrue(p.unit().getRegion().getDefaultRegion());
    assertEquals(List.of("us", "ap"), p.unit().getRegion().getOtherRegionsList());
    MoveUnit u = new MoveUnit.Region("eu", true, p.unit().getRegion().getOtherRegionsList());
    assertEquals("(NOT k IN (decode('7573', 'hex'), decode('6170', 'hex')))", u.contains(KeyKind.BYTEA, "k"));
    assertNull(u.indexBound(KeyKind.BYTEA, "k"), "all but a list narrows no index scan");
  }

  @Test
  void regionProposalsRefuseWhatCannotMove() throws Exception {
    RegionMove kind = new RegionMove();
    KeyspaceSpec geo = spec("geo", Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES);
    refused(ErrorCode.NOT_FOUND, "region: 'mars' is not a region of keyspace 'geo' (unlisted names route with the "
        + "default region 'eu'", () -> kind.propose(plan, move("geo").region("mars").target("s3").build(), geo));
    refused(ErrorCode.INVALID_ARGUMENT, "region: a region name is 1-63 characters of [a-z0-9-]",
        () -> kind.propose(plan, move("geo").region("Mars").target("s3").build(), geo));
    refused(ErrorCode.FAILED_PRECONDITION, "target: shard 's2' already owns region 'us' of keyspace 'geo'",
        () -> kind.propose(plan, move("geo").region("us").target("s2").build(), geo));
    refused(ErrorCode.NOT_FOUND, "target: shard 's9' is not registered",
        () -> kind.propose(plan, move("geo").region("us").target("s9").build(), geo));
    store.commit(Txn.builder().put(paths.movingRegion("geo", "us"), "m1".getBytes(StandardCharsets.UTF_8)).build()).get();
    refused(ErrorCode.FAILED_PRECONDITION, "region: region 'us' of keyspace 'geo' is already being moved by "
        + "migration 'm1'", () -> kind.propose(plan, move("geo").region("us").target("s3").build(), geo));
  }

  @Test
  void aRegionsHandOverGivesItToTheTargetAtTheNextEpochUnlessTheLayoutMovedOn() throws Exception {
    RegionMove kind = new RegionMove();
    Proposal p = kind.propose(plan, move("geo").region("eu").target("s3").build(),
        spec("geo", Strategy.STRATEGY_GEOGRAPHIC, KeyType.KEY_TYPE_BYTES));
    Migration m = Migration.newBuilder().setId("m").setKeyspace("geo").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setSource("s1").setTarget("s3").setRangeEpoch(p.epoch()).setUnit(p.unit()).build();
    // Another region's cutover rewrote the layout meanwhile: this one reads it again and still finds its region.
    GeoLayout other = GEO.toBuilder().setRegions(1, GEO.getRegions(1).toBuilder().setShard("s3").setEpoch(8)).build();
    store.commit(Txn.builder().put(paths.layout("geo"), other.toByteArray()).build()).get();
    Txn.Builder txn = Txn.builder();
    assertNull(kind.handOver(cutover, m, txn));
    assertTrue(store.commit(txn.build()).get().succeeded());
    GeoLayout after = GeoLayout.parseFrom(read(paths.layout("geo")).value());
    assertEquals(RegionAssignment.newBuilder().setRegion("eu").setShard("s3").setEpoch(3).build(), after.getRegions(0));
    assertEquals(other.getRegions(1), after.getRegions(1), "the other regions are kept");
    assertEquals(3, kind.returnEpoch(m));

    // Now owned by s3 at epoch 3: the planned hand-over no longer applies.
    assertEquals("region 'eu' is now owned by 's3' at epoch 3", kind.handOver(cutover, m, Txn.builder()));
    // A default region whose set of other regions changed holds other keys than planned.
    GeoLayout listed = GEO.toBuilder().addRegions(RegionAssignment.newBuilder().setRegion("af").setShard("s2")).build();
    store.commit(Txn.builder().put(paths.layout("geo"), listed.toByteArray()).build()).get();
    assertTrue(kind.handOver(cutover, m, Txn.builder()).startsWith("the regions of the keyspace changed"));
  }

  @Test
  void otherUnitsProposeAndRefuseAsBefore() {
    KeyspaceSpec h = spec("h", Strategy.STRATEGY_HASH, KeyType.KEY_TYPE_INT64);
    refused(ErrorCode.INVALID_ARGUMENT, "bucket: keyspace 'h' has buckets 0-1, got 2",
        () -> new BucketMove().propose(plan, move("h").bucket(2).target("s3").build(), h));
    Proposal b = new BucketMove().propose(plan, move("h").bucket(1).target("s3").build(), h);
    assertEquals("s2", b.source());
    assertEquals(5, b.epoch());
    assertEquals(List.of(paths.movingBucket("h", 1)), b.markers());

    KeyspaceSpec r = spec("r", Strategy.STRATEGY_RANGE, KeyType.KEY_TYPE_INT64);
    refused(ErrorCode.NOT_FOUND, "range: 0..50 is not a range of keyspace 'r' (the range starting there is 0..100)",
        () -> new RangeMove().propose(plan, move("r").range("0..50").target("s3").build(), r));
    Proposal rp = new RangeMove().propose(plan, move("r").range("0..100").target("s3").build(), r);
    assertEquals(3, rp.epoch());
    assertNull(rp.unit(), "a range is recorded in Migration.range");

    KeyspaceSpec d = spec("d", Strategy.STRATEGY_DIRECTORY, KeyType.KEY_TYPE_BYTES);
    refused(ErrorCode.FAILED_PRECONDITION, "entries[1]: key 'b' is owned by 's2', entries[0] by 's1'",
        () -> new EntriesMove().propose(plan, move("d").entries(List.of("'a'", "'b'")).target("s3").build(), d));
    Proposal dp = new EntriesMove().propose(plan, move("d").entries(List.of("'a'")).target("s3").build(), d);
    assertEquals(1, dp.keys().size(), "entries are keys every table must be able to store");

    KeyspaceSpec g = spec("h", Strategy.STRATEGY_CONSISTENT_HASH, KeyType.KEY_TYPE_INT64);
    refused(ErrorCode.INTERNAL, "keyspace: 'nolayout' has no layout record",
        () -> new RingNodeMove().propose(plan, move("nolayout").ringLeave("s1").build(), g.toBuilder()
            .setName("nolayout").build()));
  }
}
