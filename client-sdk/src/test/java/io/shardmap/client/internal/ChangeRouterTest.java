package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyRange;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.WatchResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The follower's state machine on snapshots, without a server: changes, heartbeats, resync requests, the
 * per-keyspace load revisions after a full read, a full read from a server behind the client (refused, or
 * accepted after OUT_OF_RANGE), and the lazy directory caches (entry changes routed to them, a directory
 * that grows past the cache size turning lazy, a lazy keyspace dropped).
 */
@Tag("unit")
class ChangeRouterTest {
  static final KeyRange ALL = KeyRange.FULL;
  final List<String> made = new ArrayList<>();
  final Counters stats = new Counters();

  LazyDirectory lazyOf(KeyspaceMap layoutOnly, long revision) {
    made.add(layoutOnly.name() + "@" + revision);
    return new LazyDirectory(layoutOnly.name(), layoutOnly.keyType(), 10,
        (ks, type, key, atLeast) -> {
          throw new AssertionError("no fetch in these tests");
        }, stats, revision, layoutOnly.directory().fallback(), 1_000_000);
  }

  ChangeRouter router(int cacheSize) {
    return new ChangeRouter(cacheSize, this::lazyOf);
  }

  static MapChange range(String shard, long epoch) {
    return MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder()
        .setRange(ALL.toProto(KeyType.KEY_TYPE_INT64)).setShard(shard).setEpoch(epoch)).build();
  }

  static Key key(String k) {
    return Key.newBuilder().setBytesKey(ByteString.copyFrom(k, StandardCharsets.UTF_8)).build();
  }

  static MapChange entry(String k, String shard, long epoch) {
    return MapChange.newBuilder().setKeyspace("tenants").setEntry(DirectoryEntry.newBuilder().setKey(key(k))
        .setShard(shard).setEpoch(epoch)).build();
  }

  static MapChange fallback(String shard, long epoch) {
    return MapChange.newBuilder().setKeyspace("tenants").setDirectory(DirectoryLayout.newBuilder()
        .setFallbackShard(shard).setFallbackEpoch(epoch)).build();
  }

  static KeyspaceMap users(long rev) {
    return KeyspaceMap.withoutLayout(KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build(), rev).apply(rev, List.of(range("s1", 1)));
  }

  static KeyspaceMap tenants(long rev, MapChange... entries) {
    List<MapChange> changes = new ArrayList<>(List.of(fallback("s9", 1)));
    changes.addAll(List.of(entries));
    return KeyspaceMap.withoutLayout(KeyspaceSpec.newBuilder().setName("tenants").setKeyType(KeyType.KEY_TYPE_BYTES)
        .setStrategy(Strategy.STRATEGY_DIRECTORY).build(), rev).apply(rev, changes);
  }

  static ClientView view(long rev, Map<String, Long> loadRevisions, KeyspaceMap... keyspaces) {
    Map<String, KeyspaceMap> m = new java.util.HashMap<>();
    for (KeyspaceMap k : keyspaces) {
      m.put(k.name(), k);
    }
    return new ClientView(new DirectorySnapshot(rev, m, Map.of()), Map.of(), loadRevisions, rev);
  }

  static WatchResponse change(long rev, MapChange... changes) {
    return WatchResponse.newBuilder().setRevision(rev).addAllChanges(List.of(changes)).build();
  }

  static String owner(ClientView v, String ks, String k) {
    return v.snapshot().keyspace(ks).route(k.getBytes(StandardCharsets.UTF_8)).shard();
  }

  @Test
  void aChangeIsAppliedAndAdvancesTheAppliedRevision() {
    ClientView v = view(10, Map.of(), users(10));
    ChangeRouter.Step s = router(100).step(v, change(12, range("s2", 2)));
    assertTrue(s.mapChanged());
    assertFalse(s.resync());
    assertEquals("s2", s.view().snapshot().keyspace("users").route(5L).shard());
    assertEquals(12, s.view().snapshot().revision());
    assertEquals(12, s.view().appliedRevision());
    assertEquals("s1", v.snapshot().keyspace("users").route(5L).shard(), "the old view never changes");
  }

  @Test
  void aHeartbeatAdvancesOnlyTheAppliedRevision() {
    ClientView v = view(10, Map.of(), users(10));
    ChangeRouter.Step s = router(100).step(v, WatchResponse.newBuilder().setRevision(15).setProgress(true).build());
    assertFalse(s.mapChanged());
    assertSame(v.snapshot(), s.view().snapshot());
    assertEquals(15, s.view().appliedRevision());
    // A later heartbeat at an older revision takes nothing back.
    assertSame(s.view(), router(100).step(s.view(),
        WatchResponse.newBuilder().setRevision(14).setProgress(true).build()).view());
  }

  @Test
  void aChangeTheMapAlreadyHoldsIsSkipped() {
    ClientView v = view(10, Map.of(), users(10));
    ChangeRouter.Step s = router(100).step(v, change(10, range("s2", 2)));
    assertFalse(s.mapChanged());
    assertEquals("s1", s.view().snapshot().keyspace("users").route(5L).shard());
  }

  @Test
  void resyncRequiredLeavesTheViewForAFullRead() {
    ClientView v = view(10, Map.of(), users(10));
    ChangeRouter.Step s = router(100).step(v,
        WatchResponse.newBuilder().setRevision(30).setResyncRequired(true).build());
    assertTrue(s.resync());
    assertSame(v, s.view());
  }

  @Test
  void afterAFullReadChangesAKeyspaceAlreadyHoldsAreSkippedPerKeyspace() {
    // Shards read at 10, users at 20, tenants at 10: a users change at 15 is already in its map.
    ClientView v = view(10, Map.of("users", 20L, "tenants", 10L), users(20), tenants(10));
    ChangeRouter.Step s = router(100).step(v, change(15, range("s2", 2), entry("acme", "s3", 1)));
    assertEquals("s1", s.view().snapshot().keyspace("users").route(5L).shard(), "users at 20 holds it");
    assertEquals("s3", owner(s.view(), "tenants", "acme"), "tenants at 10 does not");
    assertEquals(Map.of("users", 20L, "tenants", 10L), s.view().keyspaceLoadRevisions());
    ChangeRouter.Step later = router(100).step(s.view(), change(21, range("s4", 3)));
    assertEquals("s4", later.view().snapshot().keyspace("users").route(5L).shard());
    assertEquals(Map.of(), later.view().keyspaceLoadRevisions(), "the watch has passed every load revision");
  }

  @Test
  void aFullReadFromAServerBehindIsRefusedUnlessEtcdWentBack() {
    ClientView v = view(100, Map.of(), users(100));
    assertEquals(ChangeRouter.LoadDecision.INSTALL, ChangeRouter.judgeLoad(ClientView.EMPTY, 5, false));
    assertEquals(ChangeRouter.LoadDecision.INSTALL, ChangeRouter.judgeLoad(v, 100, false));
    assertEquals(ChangeRouter.LoadDecision.SERVER_BEHIND, ChangeRouter.judgeLoad(v, 90, false));
    assertThrows(IllegalArgumentException.class, () -> ChangeRouter.loaded(v,
        new DirectorySnapshot(90, Map.of(), Map.of()), Map.of(), Map.of(), ChangeRouter.LoadDecision.SERVER_BEHIND));

    // After OUT_OF_RANGE (etcd never reached our revision): the older map is installed, applied goes back.
    assertEquals(ChangeRouter.LoadDecision.INSTALL_OLDER, ChangeRouter.judgeLoad(v, 90, true));
    ClientView older = ChangeRouter.loaded(v, new DirectorySnapshot(90, Map.of("users", users(90)), Map.of()),
        Map.of("users", 90L), Map.of(), ChangeRouter.LoadDecision.INSTALL_OLDER);
    assertEquals(90, older.snapshot().revision());
    assertEquals(90, older.appliedRevision());

    // A newer read never takes the applied revision back (heartbeats may have carried it past the map).
    ClientView ahead = v.withAppliedRevision(120);
    ClientView newer = ChangeRouter.loaded(ahead, new DirectorySnapshot(110, Map.of(), Map.of()), Map.of(),
        Map.of(), ChangeRouter.LoadDecision.INSTALL);
    assertEquals(120, newer.appliedRevision());
  }

  @Test
  void entryChangesOfALazyDirectoryGoToItsCacheAndTheRestToTheMap() {
    KeyspaceMap layoutOnly = tenants(10).withoutDirectoryEntries();
    LazyDirectory cache = lazyOf(layoutOnly, 10);
    ClientView v = new ClientView(new DirectorySnapshot(10, Map.of("tenants", layoutOnly), Map.of()),
        Map.of("tenants", cache), Map.of(), 10);
    ChangeRouter.Step s = router(2).step(v, change(11, entry("acme", "s3", 1), fallback("s8", 2)));
    assertTrue(s.mapChanged());
    assertEquals(List.of(entry("acme", "s3", 1)), s.lazyChanges().get("tenants"));
    assertSame(cache, s.view().lazy().get("tenants"));
    KeyspaceMap after = s.view().snapshot().keyspace("tenants");
    assertFalse(after.directory().entriesHeld(), "entries stay out of the map");
    assertEquals("s8", after.directory().fallback().shard(), "the fallback change reaches the map");

    // A fallback change alone still names the cache, whose "no entry" answers follow the fallback.
    ChangeRouter.Step moved = router(2).step(s.view(), change(12, fallback("s7", 3)));
    assertEquals(Map.of("tenants", List.of()), moved.lazyChanges());
    assertEquals("s7", moved.view().snapshot().keyspace("tenants").directory().fallback().shard());
  }

  @Test
  void aWholeDirectoryThatGrowsPastTheCacheSizeTurnsLazy() {
    ClientView v = view(10, Map.of(), tenants(10, entry("a", "s1", 1), entry("b", "s2", 1)));
    ChangeRouter.Step small = router(3).step(v, change(11, entry("c", "s1", 1)));
    assertTrue(small.view().lazy().isEmpty(), "3 entries fit a cache of 3");
    ChangeRouter.Step grown = router(3).step(small.view(), change(12, entry("d", "s2", 1)));
    assertEquals(List.of("tenants"), grown.grown());
    assertEquals(List.of("tenants@12"), made);
    assertNotNull(grown.view().lazy().get("tenants"));
    assertFalse(grown.view().snapshot().keyspace("tenants").directory().entriesHeld());
    assertTrue(grown.lazyChanges().isEmpty(), "the new cache starts at this revision; it needs no changes");
  }

  @Test
  void aDroppedLazyKeyspaceLeavesWithItsCache() {
    KeyspaceMap layoutOnly = tenants(10).withoutDirectoryEntries();
    ClientView v = new ClientView(new DirectorySnapshot(10, Map.of("tenants", layoutOnly), Map.of()),
        Map.of("tenants", lazyOf(layoutOnly, 10)), Map.of(), 10);
    ChangeRouter.Step s = router(2).step(v, change(11,
        MapChange.newBuilder().setKeyspace("tenants").setKeyspaceDropped(true).build()));
    assertNull(s.view().lazy().get("tenants"));
    assertNull(s.view().snapshot().keyspaces().get("tenants"));
    assertTrue(s.lazyChanges().isEmpty());
  }
}
