package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The load history with an injected clock: the retention ladder folds columns with their sums kept exactly
 * and drops them after the last rung; bands of two map versions merge by position; the band cap merges the
 * least loaded bands and keeps every total; another server's republished part replaces its previous one;
 * the heatmap keeps a hot unit a row of its own.
 */
@Tag("unit")
class LoadHistoryTest {
  static final long MIN = 60_000;
  static final long HOUR = 60 * MIN;
  static final long DAY = 24 * HOUR;
  /** A day boundary, so every rung's columns align with it. */
  static final long T0 = 20_000 * DAY;

  final AtomicLong now = new AtomicLong(T0);

  /** Range keyspace "orders" over INT64 keys, ranges starting at each of {@code starts} (plus -inf). */
  static DirectorySnapshot snapshot(long... starts) {
    List<MapChange> changes = new ArrayList<>();
    changes.add(MapChange.newBuilder().setKeyspace("orders").setSpec(KeyspaceSpec.newBuilder().setName("orders")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).build());
    Long prev = null;
    for (int i = 0; i <= starts.length; i++) {
      Long end = i < starts.length ? starts[i] : null;
      io.shardmap.proto.v1.KeyRange.Builder r = io.shardmap.proto.v1.KeyRange.newBuilder();
      if (prev != null) {
        r.setStart(Key.newBuilder().setIntKey(prev));
      }
      if (end != null) {
        r.setEnd(Key.newBuilder().setIntKey(end));
      }
      changes.add(MapChange.newBuilder().setKeyspace("orders").setRange(RangeAssignment.newBuilder().setRange(r)
          .setShard(i < 3 ? "s1" : "s2").setEpoch(1)).build());
      prev = end;
    }
    return DirectorySnapshot.empty(0).apply(10, changes);
  }

  static byte[] pos(long key) {
    return Keys.encodeInt64(key);
  }

  static LoadBand band(Long start, Long end, long reads, long writes) {
    LoadBand.Builder b = LoadBand.newBuilder().setUnits(1).setReads(reads).setWrites(writes).setBusyMicros(reads);
    if (start != null) {
      b.setStart(ByteString.copyFrom(pos(start)));
    }
    if (end != null) {
      b.setEnd(ByteString.copyFrom(pos(end)));
    }
    return b.build();
  }

  KeyspaceLoad load(LoadBand... bands) {
    return KeyspaceLoad.newBuilder().setKeyspace("orders").setStartUnixMs(now.get() - 5000)
        .setEndUnixMs(now.get()).addAllBands(List.of(bands)).build();
  }

  LoadHistory history(LoadHistory.Settings settings, DirectorySnapshot snap) {
    return LoadHistory.over(settings, now::get, () -> snap);
  }

  static long reads(LoadHistory.Totals t) {
    return t.reads();
  }

  @Test
  void theLadderFoldsColumnsWithExactSumsAndDropsThemAfterTheLastRung() {
    LoadHistory h = history(LoadHistory.Settings.defaults(), snapshot(0, 100, 200, 300));
    Random rnd = new Random(7);
    List<long[]> recorded = new ArrayList<>(); // {time, reads}
    // Five days of reports, one every 7 minutes.
    for (long t = T0; t < T0 + 5 * DAY; t += 7 * MIN) {
      now.set(t);
      long r = 1 + rnd.nextInt(1_000_000);
      h.record(load(band(0L, 100L, r, 1), band(150L, 300L, 3 * r + 1, 2)));
      recorded.add(new long[] {t, r + 3 * r + 1});
    }
    long all = recorded.stream().mapToLong(x -> x[1]).sum();
    now.set(T0 + 5 * DAY + 30 * MIN);
    LoadHistory.Totals t = h.totals("orders", 0, Long.MAX_VALUE);
    assertEquals(all, reads(t), "every fold keeps the sums exactly");
    List<LoadHistory.TimedColumn> cols = h.columns("orders", 0, Long.MAX_VALUE);
    long prevEnd = Long.MIN_VALUE;
    for (LoadHistory.TimedColumn c : cols) {
      long age = now.get() - (c.startUnixMs() + c.widthMs());
      // A column is folded once the coarser column holding it has ended a retention ago.
      if (age >= 4 * DAY + 50 * MIN) {
        assertEquals(HOUR, c.widthMs(), "width of the column ending " + age / MIN + " min ago");
      } else if (age >= 6 * HOUR + 9 * MIN && age < 4 * DAY) {
        assertEquals(10 * MIN, c.widthMs(), "width of the column ending " + age / MIN + " min ago");
      }
      if (age < 6 * HOUR) {
        assertEquals(MIN, c.widthMs(), "younger than 6 h: 1-minute columns");
      }
      assertTrue(c.startUnixMs() >= prevEnd, "columns never overlap");
      assertEquals(0, c.startUnixMs() % c.widthMs(), "columns align to their width");
      prevEnd = c.startUnixMs() + c.widthMs();
    }
    // Unfolded there would be one column per report (1029); folded: about 52 + 540 + 24.
    assertTrue(cols.size() < 650, "folded: " + cols.size() + " columns");

    // 28 days and 2 hours after the start: the first hour columns are gone, the rest kept exactly.
    now.set(T0 + 28 * DAY + 2 * HOUR);
    long horizon = now.get() - 28 * DAY;
    long kept = recorded.stream().filter(x -> Math.floorDiv(x[0] - 1, HOUR) * HOUR + HOUR > horizon)
        .mapToLong(x -> x[1]).sum();
    assertTrue(kept < all && kept > 0);
    assertEquals(kept, reads(h.totals("orders", 0, Long.MAX_VALUE)), "columns past 28 days are dropped whole");

    now.set(T0 + 40 * DAY);
    h.maintain();
    assertEquals(0, h.columnCount("orders"));
    assertEquals(0, reads(h.totals("orders", 0, Long.MAX_VALUE)));
  }

  @Test
  void bandsOfTwoMapVersionsMergeByPositionSplitUniformlyOverUnits() {
    // Current map: (-inf,0) [0,100) [100,200) [200,300) [300,inf).
    LoadHistory h = history(LoadHistory.Settings.defaults(), snapshot(0, 100, 200, 300));
    // A client a split behind: one band over [0,300) (three units now), 301 reads.
    h.record(load(band(0L, 300L, 301, 0)));
    // A client with the current map: two bands.
    h.record(load(band(0L, 100L, 10, 0), band(100L, 200L, 20, 0)));
    LoadHistory.Totals t = h.totals("orders", 0, Long.MAX_VALUE);
    List<long[]> got = t.bands().stream().map(b -> new long[] {b.reads()}).toList();
    assertEquals(5, t.bands().size(), "union of boundaries: " + t.bands());
    assertArrayEquals(UnitSpace.START, t.bands().get(0).start());
    assertArrayEquals(pos(0), t.bands().get(1).start());
    assertArrayEquals(pos(100), t.bands().get(2).start());
    assertArrayEquals(pos(200), t.bands().get(3).start());
    assertArrayEquals(pos(300), t.bands().get(4).start());
    assertArrayEquals(UnitSpace.END, t.bands().get(4).end());
    // 301 over three units: 100, 100, 101 (the remainder carried, nothing lost).
    assertEquals(List.of(0L, 110L, 120L, 101L, 0L), got.stream().map(x -> x[0]).toList());
    assertEquals(331, t.reads());
  }

  @Test
  void theBandCapMergesTheLeastLoadedBandsAndKeepsEveryTotal() {
    long[] starts = new long[200];
    for (int i = 0; i < starts.length; i++) {
      starts[i] = i * 10L;
    }
    LoadHistory h = history(LoadHistory.Settings.defaults().withMaxBands(16), snapshot(starts));
    Random rnd = new Random(3);
    List<LoadBand> bands = new ArrayList<>();
    long sum = 0;
    for (int i = 0; i < 199; i++) {
      long r = i == 120 ? 5_000_000 : rnd.nextInt(100);
      bands.add(band(i * 10L, i * 10L + 10, r, 1));
      sum += r;
    }
    h.record(load(bands.toArray(new LoadBand[0])));
    LoadHistory.Totals t = h.totals("orders", 0, Long.MAX_VALUE);
    assertTrue(t.bands().size() <= 16, t.bands().size() + " bands");
    assertEquals(sum, t.reads());
    assertEquals(199, t.writes());
    boolean hotAlone = t.bands().stream().anyMatch(b -> java.util.Arrays.equals(b.start(), pos(1200))
        && java.util.Arrays.equals(b.end(), pos(1210)) && b.reads() == 5_000_000);
    assertTrue(hotAlone, "the hot band stays a band of its own: " + t.bands());
    assertTrue(h.bandCount() <= 16);
  }

  @Test
  void anotherServersRepublishedPartReplacesItsPreviousOne() {
    LoadHistory h = history(LoadHistory.Settings.defaults(), snapshot(0, 100));
    long minute = Math.floorDiv(now.get() - 1, MIN) * MIN;
    h.record(load(band(0L, 100L, 5, 0)));
    h.replace("orders", "other", minute, LoadReports.column(load(band(0L, 100L, 40, 0))));
    h.replace("orders", "other", minute, LoadReports.column(load(band(0L, 100L, 70, 0))));
    assertEquals(75, h.totals("orders", 0, Long.MAX_VALUE).reads(), "5 local + the other server's latest 70");
    // This server's own part echoed back (LOCAL) does not replace what it has.
    h.replace("orders", LoadHistory.LOCAL, minute, LoadReports.column(load(band(0L, 100L, 1, 0))));
    assertEquals(75, h.totals("orders", 0, Long.MAX_VALUE).reads());
    List<LoadHistory.OwnPart> own = h.takeChangedOwnParts();
    assertEquals(1, own.size());
    assertEquals(5, own.get(0).column().total(LoadColumn.READS), "only this server's part is published");
    assertEquals(List.of(), h.takeChangedOwnParts(), "nothing changed since");
    // Once closed (older than the open time) the parts are summed and stay.
    now.addAndGet(LoadHistory.Settings.DEFAULT_OPEN_MS + 2 * MIN);
    h.maintain();
    assertEquals(75, h.totals("orders", 0, Long.MAX_VALUE).reads());
  }

  @Test
  void samplesAreKeptForTheWindowAndBounded() {
    LoadHistory h = history(LoadHistory.Settings.defaults(), snapshot(0));
    List<LoadHistory.Sample> s = new ArrayList<>();
    for (int i = 0; i < 5000; i++) {
      s.add(new LoadHistory.Sample(pos(i), i % 2 == 0, 16, now.get()));
    }
    h.recordSamples("orders", s);
    List<LoadHistory.Sample> kept = h.totals("orders", 0, Long.MAX_VALUE).samples();
    assertEquals(4096, kept.size(), "at most 4096, the newest");
    assertArrayEquals(pos(4999), kept.get(kept.size() - 1).key());
    now.addAndGet(Duration.ofMinutes(11).toMillis());
    h.maintain();
    assertEquals(0, h.totals("orders", 0, Long.MAX_VALUE).samples().size(), "older than 10 minutes: gone");
  }

  @Test
  void theHeatmapKeepsAHotUnitARowOfItsOwnAndSumsEveryColumn() {
    long[] starts = new long[99];
    for (int i = 0; i < starts.length; i++) {
      starts[i] = (i + 1) * 10L;
    }
    DirectorySnapshot snap = snapshot(starts); // 100 units
    LoadHistory h = history(LoadHistory.Settings.defaults(), snap);
    h.record(load(band(0L, 500L, 1000, 0), band(500L, 510L, 1_000_000, 7)));
    now.addAndGet(MIN);
    h.record(load(band(null, 990L, 999, 0)));
    KeyspaceMap k = snap.keyspaces().get("orders");
    GetHeatmapResponse r = Heatmap.build(k, h.columns("orders", 0, Long.MAX_VALUE), 8, now.get());
    assertEquals(2, r.getColumnStartUnixMsCount());
    assertTrue(r.getRowsCount() <= 8);
    long units = r.getRowsList().stream().mapToLong(x -> x.getUnits()).sum();
    assertEquals(100, units, "every unit in exactly one row");
    assertTrue(r.getRowsList().stream().anyMatch(x -> x.getUnits() == 1 && x.getReads(0) == 1_000_000
        && x.getWrites(0) == 7 && x.getLabel().contains("500")), "the hot unit alone: " + r.getRowsList());
    for (int c = 0; c < 2; c++) {
      final int ci = c;
      long sum = r.getRowsList().stream().mapToLong(x -> x.getReads(ci)).sum();
      assertEquals(c == 0 ? 1_001_000 : 999, sum, "column " + c + " sums exactly");
    }
  }
}
