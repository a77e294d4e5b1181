package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationPhase;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.MoveStatus;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.proto.v1.UnitSize;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * GetFleetStatus assembled from an in-memory load history, fixed sizes and migration records over the map
 * of LoadHistoryTest (orders: [-inf, 0), [0, 100), [100, 200) on s1, [200, +inf) on s2): shards, skews, the
 * hottest units, the planner's suggestion with its command, moves with phase, rate and ETA, bad requests,
 * and the gauges.
 */
@Tag("unit")
class FleetStatusTest {
  static final long NOW = 1_800_000_000_000L;
  final AtomicLong now = new AtomicLong(NOW);
  final DirectorySnapshot snap = LoadHistoryTest.snapshot(0, 100, 200);
  final LoadHistory history = LoadHistory.over(LoadHistory.Settings.defaults(), now::get, () -> snap);
  final List<Migration> migrations = new ArrayList<>();

  static ByteString pos(Long key) {
    return key == null ? ByteString.EMPTY : ByteString.copyFrom(Keys.encodeInt64(key));
  }

  static UnitSize size(Long start, Long end, String shard, long rows) {
    return UnitSize.newBuilder().setStart(pos(start)).setEnd(pos(end)).setShard(shard).setRows(rows)
        .setBytes(rows * 100).build();
  }

  /** Equal calls and rows on each of s1's three ranges, none on s2's: s1 carries everything. */
  FleetStatus status() {
    history.record(KeyspaceLoad.newBuilder().setKeyspace("orders").setStartUnixMs(NOW - 60_000).setEndUnixMs(NOW)
        .addBands(LoadBand.newBuilder().setEnd(pos(0L)).setUnits(1).setReads(6000).setBusyMicros(60_000_000))
        .addBands(LoadBand.newBuilder().setStart(pos(0L)).setEnd(pos(100L)).setUnits(1).setReads(3000)
            .setWrites(3000))
        .addBands(LoadBand.newBuilder().setStart(pos(100L)).setEnd(pos(200L)).setUnits(1).setWrites(6000))
        .build());
    KeyspaceSizes sizes = KeyspaceSizes.newBuilder().setKeyspace("orders").setTakenUnixMs(NOW - 5000).setExact(true)
        .addUnits(size(null, 0L, "s1", 1000)).addUnits(size(0L, 100L, "s1", 1000))
        .addUnits(size(100L, 200L, "s1", 1000)).addUnits(size(200L, null, "s2", 0))
        .addShards(ShardSize.newBuilder().setShard("s1").setRows(3000).setBytes(300_000))
        .addShards(ShardSize.newBuilder().setShard("s2").setRows(10).setBytes(1000)).build();
    return new FleetStatus(() -> snap, history, ks -> ks.equals("orders") ? Optional.of(sizes) : Optional.empty(),
        () -> List.copyOf(migrations), now::get);
  }

  @Test
  void shardsSkewsHottestAndASuggestionWithItsCommand() throws Exception {
    GetFleetStatusResponse r = status().status(GetFleetStatusRequest.newBuilder().setKeyspace("orders").build());
    KeyspaceStatus k = r.getKeyspaces(0);
    assertEquals(4, k.getUnits());
    assertEquals(2, k.getShardsCount());
    assertEquals("s1", k.getShards(0).getShard());
    assertEquals(3, k.getShards(0).getUnits());
    assertEquals(3000, k.getShards(0).getRows(), "the shard's own totals");
    assertEquals(300_000, k.getShards(0).getBytes());
    assertEquals(10, k.getShards(1).getRows());
    // 18,000 calls over the 60 s from the column's start to now.
    assertEquals(300, k.getReadsPerSecond() + k.getWritesPerSecond(), 1e-9);
    assertEquals(150, k.getShards(0).getReadsPerSecond(), 1e-9);
    assertEquals(150, k.getShards(0).getWritesPerSecond(), 1e-9);
    assertEquals(1.0, k.getShards(0).getBusy(), 1e-9, "60 s of calls in 60 s: one in flight");
    assertEquals(1.0, k.getLoadSkew(), 1e-9, "all calls on one of two shards");
    assertEquals(300_000.0 / 150_500 - 1, k.getSizeSkew(), 1e-9);
    assertEquals(NOW - 5000, k.getSizesUnixMs());
    assertEquals(3, k.getHottestCount(), "s2's idle range is not hot");
    for (int i = 0; i < 3; i++) {
      assertEquals(1.0 / 3, k.getHottest(i).getLoadShare(), 1e-9);
      assertEquals(1000, k.getHottest(i).getRows());
    }
    // One unit moves to s2: equal candidates, the first in position order.
    assertEquals(1, k.getSuggestionsCount(), k.getSuggestionsList().toString());
    Suggestion s = k.getSuggestions(0);
    assertEquals(Suggestion.Kind.KIND_MOVE, s.getKind());
    assertEquals("move orders [-inf, 0) from s1 to s2: migrator move orders ..0 --to s2", s.getText());
    assertEquals(1.0 / 3, s.getLoadSkewAfter(), 1e-9);
  }

  @Test
  void aUnitUnderARunningMoveIsNotSuggestedAndMovesShowPhaseRateAndEta() throws Exception {
    migrations.add(Migration.newBuilder().setId("m1").setKeyspace("orders").setKeyType(KeyType.KEY_TYPE_INT64)
        .setRange(KeyRange.newBuilder().setEnd(Key.newBuilder().setIntKey(0))).setSource("s1").setTarget("s2")
        .setState(MigrationState.MIGRATION_STATE_COPYING).setCreatedUnixMs(NOW - 20_000)
        .setCopyStartedUnixMs(NOW - 10_000).setRowsCopied(500).setRowsEstimate(1000).setEtaUnixMs(NOW + 30_000)
        .build());
    migrations.add(Migration.newBuilder().setId("m0").setKeyspace("orders").setState(MigrationState.MIGRATION_STATE_DONE)
        .build());
    GetFleetStatusResponse r = status().status(GetFleetStatusRequest.getDefaultInstance());
    assertEquals(1, r.getMovesCount(), "finished moves are left out");
    MoveStatus m = r.getMoves(0);
    assertEquals("..0", m.getUnit());
    assertEquals(MigrationPhase.MIGRATION_PHASE_COPYING, m.getPhase());
    assertEquals(50, m.getRowsPerSecond(), 1e-9);
    assertEquals(30_000, m.getEtaMs(), "the migrator's own estimate");
    assertEquals(1000, m.getRowsEstimate());
    Suggestion s = r.getKeyspaces(0).getSuggestions(0);
    assertEquals("[0, 100)", s.getLabel(), "the range being moved is not suggested again");
  }

  @Test
  void withoutTheMigratorsEstimateTheEtaIsTheCopysEnd() {
    Migration old = Migration.newBuilder().setId("m2").setState(MigrationState.MIGRATION_STATE_COPYING)
        .setCopyStartedUnixMs(NOW - 10_000).setRowsCopied(1000).setRowsEstimate(4000).build();
    MoveStatus m = FleetStatus.move(old, NOW);
    assertEquals(100, m.getRowsPerSecond(), 1e-9);
    assertEquals(30_000, m.getEtaMs());
    assertEquals(-1, FleetStatus.move(old.toBuilder().setRowsEstimate(0).build(), NOW).getEtaMs());
    assertEquals(MigrationPhase.MIGRATION_PHASE_PREPARING, FleetStatus.phase(MigrationState.MIGRATION_STATE_PLANNED));
    assertEquals(MigrationPhase.MIGRATION_PHASE_CLEANING_UP,
        FleetStatus.phase(MigrationState.MIGRATION_STATE_CLEANING_UP));
    assertEquals(MigrationPhase.MIGRATION_PHASE_UNSPECIFIED,
        FleetStatus.phase(MigrationState.MIGRATION_STATE_CANCELLING));
  }

  @Test
  void badRequestsAreRefusedNamingTheField() {
    FleetStatus f = status();
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> f.status(GetFleetStatusRequest.newBuilder().setKeyspace("nope").build()));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("'nope'"), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> f.status(GetFleetStatusRequest.newBuilder().setWindowSeconds(59)
        .build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith("window_seconds:"), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> f.status(GetFleetStatusRequest.newBuilder().setTop(1001).build()));
    assertTrue(e.getMessage().startsWith("top:"), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> f.status(GetFleetStatusRequest.newBuilder().setTop(-1).build()));
    assertTrue(e.getMessage().startsWith("top:"), e.getMessage());
  }

  @Test
  void gaugesFollowTheStatusAndDropFinishedMoves() throws Exception {
    ServerMetrics metrics = new ServerMetrics();
    migrations.add(Migration.newBuilder().setId("m1").setKeyspace("orders").setState(
        MigrationState.MIGRATION_STATE_VERIFYING).setEtaUnixMs(NOW + 42_000).build());
    FleetStatus f = status();
    metrics.fleet(f.status(GetFleetStatusRequest.getDefaultInstance()));
    String text = metrics.scrape();
    assertTrue(text.contains("shardmap_keyspace_load_skew{keyspace=\"orders\"} 1.0"), text);
    assertTrue(text.contains("shardmap_keyspace_size_skew{keyspace=\"orders\"}"), text);
    assertTrue(text.contains("shardmap_moves_running 1.0"), text);
    assertTrue(text.contains("shardmap_move_eta_seconds{id=\"m1\"} 42.0"), text);
    migrations.clear();
    metrics.fleet(f.status(GetFleetStatusRequest.getDefaultInstance()));
    text = metrics.scrape();
    assertTrue(text.contains("shardmap_moves_running 0.0"), text);
    assertTrue(!text.contains("shardmap_move_eta_seconds{"), text);
  }
}
