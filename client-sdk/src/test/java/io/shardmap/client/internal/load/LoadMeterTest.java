package io.shardmap.client.internal.load;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.Counters;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.GeoTable;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Ring;
import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.LoadSample;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The load meter against real routing tables of every strategy: counts land in the band of the unit the key
 * belongs to, at that unit's positions; grouped slots cover every unit once with contiguous bands; retired
 * counters are sent with their own table's positions; eight threads lose no count even while reports drain;
 * sampling is about one in N and bounded; unaccepted load is merged into the next report, within bounds.
 */
@Tag("unit")
class LoadMeterTest {
  final AtomicLong clock = new AtomicLong(1_700_000_000_000L);
  final Counters stats = new Counters();

  LoadMeter meter(int slots, int sampleEvery) {
    return new LoadMeter(slots, sampleEvery, 4, clock::get, stats);
  }

  static RangeTable ranges(long... splits) {
    List<Route> routes = new ArrayList<>();
    byte[] start = new byte[0];
    for (int i = 0; i <= splits.length; i++) {
      byte[] end = i < splits.length ? Keys.encodeInt64(splits[i]) : new byte[0];
      routes.add(new Route("s" + (i % 3), 1, KeyRange.of(start, end, "test"), 0));
      start = end;
    }
    return RangeTable.build(KeyType.KEY_TYPE_INT64, routes, "ranges");
  }

  static HashTable hash(int buckets) {
    HashLayout.Builder b = HashLayout.newBuilder();
    for (int i = 0; i < buckets; i++) {
      b.addBuckets(BucketAssignment.newBuilder().setShard("s" + (i % 3)).setEpoch(1));
    }
    return HashTable.of(b.build(), 7);
  }

  static Ring ring(int vnodes, String... shards) {
    RingLayout.Builder b = RingLayout.newBuilder();
    for (String s : shards) {
      RingShard.Builder rs = RingShard.newBuilder().setShard(s);
      for (int i = 0; i < vnodes; i++) {
        rs.addVnodeEpochs(1);
      }
      b.addShards(rs);
    }
    return Ring.of(b.build(), 9);
  }

  static KeyspaceLoad only(List<KeyspaceLoad> loads) {
    assertEquals(1, loads.size(), "one window: " + loads);
    return loads.get(0);
  }

  /** The band whose positions hold {@code position} (bands are in order and do not overlap). */
  static LoadBand bandAt(KeyspaceLoad load, byte[] position) {
    for (LoadBand b : load.getBandsList()) {
      if (Arrays.compareUnsigned(b.getStart().toByteArray(), position) <= 0
          && UnitSpace.before(position, b.getEnd().toByteArray())) {
        return b;
      }
    }
    throw new AssertionError("no band holds " + Arrays.toString(position) + " in " + load);
  }

  /** Bands in order, not overlapping, each of at least one unit. */
  static void assertOrdered(KeyspaceLoad load) {
    byte[] prevEnd = null;
    for (LoadBand b : load.getBandsList()) {
      assertTrue(b.getUnits() >= 1);
      byte[] s = b.getStart().toByteArray();
      assertTrue(UnitSpace.before(s, b.getEnd().toByteArray()), "empty band " + b);
      if (prevEnd != null) {
        assertTrue(prevEnd.length > 0 && Arrays.compareUnsigned(prevEnd, s) <= 0, "bands overlap at " + b);
      }
      prevEnd = b.getEnd().toByteArray();
    }
  }

  @Test
  void rangeCallsLandInTheirRangeWithItsBounds() {
    LoadMeter m = meter(1024, 1_000_000);
    long t0 = clock.get();
    m.bind("users", ranges(0, 100, 1000), 0, true);
    for (int i = 0; i < 3; i++) {
      m.record("users", -5, false, 2_000, false);
    }
    m.record("users", 50, true, 4_000, true);
    m.record("users", 99, true, 4_000, false);
    m.record("users", 500, false, 1_000_000, false);
    m.record("users", 7L, false, 1, false);
    m.record("other", 7L, false, 1, false); // not bound: ignored
    m.record("users", new byte[] {1}, false, 1, false); // a bytes key on an INT64 keyspace: ignored
    clock.addAndGet(1500);
    KeyspaceLoad load = only(m.takeReport());
    assertEquals("users", load.getKeyspace());
    assertEquals(t0, load.getStartUnixMs());
    assertEquals(t0 + 1500, load.getEndUnixMs());
    assertOrdered(load);
    assertEquals(3, load.getBandsCount(), "only ranges with calls: " + load);
    LoadBand low = load.getBands(0);
    assertEquals(0, low.getStart().size(), "the first range starts at the start of the space");
    assertArrayEquals(Keys.encodeInt64(0), low.getEnd().toByteArray());
    assertEquals(3, low.getReads());
    assertEquals(6, low.getBusyMicros());
    LoadBand mid = load.getBands(1);
    assertArrayEquals(Keys.encodeInt64(0), mid.getStart().toByteArray());
    assertArrayEquals(Keys.encodeInt64(100), mid.getEnd().toByteArray());
    assertEquals(1, mid.getReads());
    assertEquals(2, mid.getWrites());
    assertEquals(1, mid.getErrors());
    assertEquals(8, mid.getBusyMicros());
    LoadBand high = load.getBands(2);
    assertArrayEquals(Keys.encodeInt64(100), high.getStart().toByteArray());
    assertArrayEquals(Keys.encodeInt64(1000), high.getEnd().toByteArray());
    assertEquals(1000, high.getBusyMicros());
    assertEquals(1, high.getUnits());
  }

  /** Every strategy: each key's count is in the band holding its unit's start, and nowhere else. */
  @Test
  void everyStrategyCountsEachKeyOnItsUnit() {
    Random rnd = new Random(16);
    Map<String, RoutingTable> tables = Map.of("hash", hash(64), "ring", ring(20, "a", "b", "c"),
        "dir", DirectoryTable.empty(DirectoryLayout.newBuilder().setFallbackShard("s3").build(), 5),
        "range", ranges(-1000, 0, 5, 1 << 20));
    for (Map.Entry<String, RoutingTable> e : tables.entrySet()) {
      LoadMeter m = meter(1024, 1_000_000);
      RoutingTable t = e.getValue();
      m.bind(e.getKey(), t, 11, true);
      Map<Integer, Long> perUnit = new HashMap<>();
      List<Long> keys = new ArrayList<>();
      for (int i = 0; i < 5000; i++) {
        long k = e.getKey().equals("range") ? rnd.nextInt(4000) - 2000 : rnd.nextLong();
        keys.add(k);
        m.record(e.getKey(), k, i % 2 == 0, 1000, false);
        perUnit.merge(t.unitOf(k), 1L, Long::sum);
      }
      clock.addAndGet(10);
      KeyspaceLoad load = only(m.takeReport());
      assertEquals(11, load.getLayoutRevision());
      assertOrdered(load);
      assertEquals(perUnit.size(), load.getBandsCount(), e.getKey() + ": one band per unit with calls");
      for (LoadBand b : load.getBandsList()) {
        int u = UnitSpace.unitAt(t, b.getStart().toByteArray());
        assertArrayEquals(t.unitStart(u), b.getStart().toByteArray());
        assertArrayEquals(t.unitEnd(u), b.getEnd().toByteArray());
        assertEquals(perUnit.get(u), b.getReads() + b.getWrites(), e.getKey() + " unit " + u);
      }
      if (e.getKey().equals("range")) {
        // A range's positions are its keys: every key lies in a band with calls, counted independently.
        for (long k : keys) {
          bandAt(load, Keys.encodeInt64(k));
        }
      }
    }
  }

  @Test
  void byteKeysOfDirectoryAndGeoKeyspaces() {
    LoadMeter m = meter(1024, 1_000_000);
    GeoTable geo = GeoTable.of(GeoLayout.newBuilder().setDefaultRegion("eu")
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1"))
        .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2"))
        .addRegions(RegionAssignment.newBuilder().setRegion("ap").setShard("s3")).build(), 4);
    m.bind("profiles", geo, 4, false);
    DirectoryTable dir = DirectoryTable.empty(DirectoryLayout.newBuilder().setFallbackShard("s3").build(), 5);
    m.bind("tenants", dir, 5, false);
    for (String r : List.of("eu", "us", "us", "ap", "xx")) {
      m.record("profiles", r.getBytes(StandardCharsets.UTF_8), true, 1000, false);
    }
    m.record("profiles", 1L, true, 1000, false); // an integer key on a BYTES keyspace: ignored
    byte[] tenant = "acme".getBytes(StandardCharsets.UTF_8);
    m.record("tenants", tenant, false, 1000, false);
    m.record("tenants", tenant, false, 1000, false);
    clock.addAndGet(10);
    Map<String, KeyspaceLoad> byName = new HashMap<>();
    for (KeyspaceLoad l : m.takeReport()) {
      byName.put(l.getKeyspace(), l);
    }
    KeyspaceLoad p = byName.get("profiles");
    assertOrdered(p);
    assertEquals(3, p.getBandsCount());
    assertEquals(1, bandAt(p, "ap".getBytes(StandardCharsets.UTF_8)).getWrites());
    assertEquals(2, bandAt(p, "eu".getBytes(StandardCharsets.UTF_8)).getWrites(), "a region-less key counts on the default");
    assertEquals(2, bandAt(p, "us".getBytes(StandardCharsets.UTF_8)).getWrites());
    KeyspaceLoad t = byName.get("tenants");
    assertEquals(1, t.getBandsCount());
    int group = dir.unitOf(tenant);
    assertArrayEquals(group == 0 ? new byte[0] : UnitSpace.int32(group), t.getBands(0).getStart().toByteArray());
    assertEquals(2, t.getBands(0).getReads());
  }

  /** More units than slots: every unit is in exactly one band, bands are contiguous and cover the space. */
  @Test
  void groupedUnitsAreCoveredOnceByContiguousBands() {
    for (int units : new int[] {17, 1000, 4099}) {
      LoadMeter m = meter(16, 1_000_000);
      long[] splits = new long[units - 1];
      for (int i = 0; i < splits.length; i++) {
        splits[i] = i * 10L;
      }
      RangeTable t = ranges(splits);
      assertEquals(units, t.unitCount());
      m.bind("users", t, 0, true);
      assertEquals(16, m.counters("users").slots);
      UnitCounters c = m.counters("users");
      Random rnd = new Random(units);
      for (int i = 0; i < 20_000; i++) {
        long k = i % 2 == 0 ? rnd.nextLong() : rnd.nextInt(units * 10 + 20) - 10;
        assertEquals(c.slotOf(t.unitOf(k)), c.slotOfKey(k), "the slot of key " + k + " by its own search");
      }
      for (int u = 0; u < units; u++) {
        m.record("users", u == 0 ? -1 : (u - 1) * 10L, false, 1000, false); // one call in every range
      }
      clock.addAndGet(10);
      KeyspaceLoad load = only(m.takeReport());
      assertTrue(load.getBandsCount() <= 16);
      assertEquals(0, load.getBands(0).getStart().size());
      assertEquals(0, load.getBands(load.getBandsCount() - 1).getEnd().size());
      int covered = 0;
      for (int i = 0; i < load.getBandsCount(); i++) {
        LoadBand b = load.getBands(i);
        if (i > 0) {
          assertArrayEquals(load.getBands(i - 1).getEnd().toByteArray(), b.getStart().toByteArray(), "gap before " + i);
        }
        assertEquals(b.getUnits(), b.getReads(), "one call per unit of the band");
        covered += b.getUnits();
      }
      assertEquals(units, covered, "every unit in exactly one band");
    }
  }

  /** More slots than a report may carry bands (4096): slots are grouped, every count still sent. */
  @Test
  void atMost4096BandsPerWindow() {
    LoadMeter m = meter(65536, 1_000_000);
    HashTable t = hash(4096);
    m.bind("h", t, 1, true);
    Random rnd = new Random(3);
    for (int i = 0; i < 100_000; i++) {
      m.record("h", rnd.nextLong(), false, 0, false);
    }
    KeyspaceLoad load = only(m.takeReport());
    assertTrue(load.getBandsCount() <= Window.MAX_BANDS);
    assertEquals(100_000, load.getBandsList().stream().mapToLong(LoadBand::getReads).sum());
  }

  /** A split retires the old counters: their calls are sent with the old table's positions and revision. */
  @Test
  void retiredCountersAreSentWithTheirOwnPositions() {
    LoadMeter m = meter(1024, 1_000_000);
    long t0 = clock.get();
    m.bind("users", ranges(100), 1, true);
    m.record("users", 150, false, 1000, false);
    m.record("users", 250, false, 1000, false);
    clock.addAndGet(100);
    long t1 = clock.get();
    m.bind("users", ranges(100, 200), 2, true); // [100, +inf) split at 200
    m.record("users", 150, true, 1000, false);
    clock.addAndGet(100);
    List<KeyspaceLoad> loads = m.takeReport();
    assertEquals(2, loads.size(), loads.toString());
    KeyspaceLoad now = loads.stream().filter(l -> l.getLayoutRevision() == 2).findFirst().orElseThrow();
    KeyspaceLoad old = loads.stream().filter(l -> l.getLayoutRevision() == 1).findFirst().orElseThrow();
    assertEquals(1, old.getBandsCount());
    assertArrayEquals(Keys.encodeInt64(100), old.getBands(0).getStart().toByteArray());
    assertEquals(0, old.getBands(0).getEnd().size(), "the old range [100, +inf)");
    assertEquals(2, old.getBands(0).getReads());
    assertEquals(t0, old.getStartUnixMs());
    assertEquals(1, now.getBandsCount());
    assertArrayEquals(Keys.encodeInt64(200), now.getBands(0).getEnd().toByteArray(), "the new range [100, 200)");
    assertEquals(1, now.getBands(0).getWrites());
    assertEquals(t1, now.getStartUnixMs());
    m.accepted();
    assertEquals(0, m.takeReport().size());
    m.accepted();
    // A call that read the counters just before they were retired still adds to them: the next report
    // sends it with the old positions (retired counters are drained for RETIRED_DRAINS reports).
    UnitCounters current = m.counters("users");
    m.bind("users", ranges(100, 200, 300), 3, true);
    current.add(current.table.unitOf(150), false, 0, false);
    clock.addAndGet(100);
    KeyspaceLoad late = only(m.takeReport());
    assertEquals(2, late.getLayoutRevision());
    assertArrayEquals(Keys.encodeInt64(200), late.getBands(0).getEnd().toByteArray());
  }

  /** A new table with the same units (a move, no split) keeps the counters: one window. */
  @Test
  void sameUnitsKeepTheCounters() {
    LoadMeter m = meter(1024, 1_000_000);
    m.bind("users", ranges(100), 0, true);
    UnitCounters c = m.counters("users");
    m.record("users", 1, false, 0, false);
    m.bind("users", ranges(100), 0, true);
    assertTrue(c == m.counters("users"));
    m.record("users", 1, false, 0, false);
    assertEquals(2, only(m.takeReport()).getBands(0).getReads());
  }

  /** Eight threads, a report drained every few milliseconds meanwhile: the sums are exact. */
  @Test
  void eightThreadsLoseNoCount() throws Exception {
    LoadMeter m = meter(1024, 64);
    RangeTable t = ranges(-1_000_000, 0, 1_000_000);
    m.bind("users", t, 0, true);
    int threads = 8;
    int calls = 200_000;
    CountDownLatch go = new CountDownLatch(1);
    List<Thread> workers = new ArrayList<>();
    for (int n = 0; n < threads; n++) {
      int id = n;
      Thread w = new Thread(() -> {
        try {
          go.await();
        } catch (InterruptedException e) {
          return;
        }
        Random rnd = new Random(id);
        for (int i = 0; i < calls; i++) {
          m.record("users", rnd.nextInt(4_000_000) - 2_000_000, id % 2 == 1, 3_000, i % 100 == 0);
        }
      });
      w.start();
      workers.add(w);
    }
    long reads = 0;
    long writes = 0;
    long busy = 0;
    long errors = 0;
    AtomicBoolean done = new AtomicBoolean();
    go.countDown();
    while (!done.get()) {
      done.set(workers.stream().noneMatch(Thread::isAlive));
      clock.addAndGet(1);
      for (KeyspaceLoad l : m.takeReport()) {
        for (LoadBand b : l.getBandsList()) {
          reads += b.getReads();
          writes += b.getWrites();
          busy += b.getBusyMicros();
          errors += b.getErrors();
        }
      }
      m.accepted();
    }
    for (Thread w : workers) {
      w.join();
    }
    assertEquals(4L * calls, reads);
    assertEquals(4L * calls, writes);
    assertEquals(8L * calls / 100, errors);
    assertEquals(8L * calls * 3, busy);
    assertEquals(8L * calls, stats.loadReportedCalls());
  }

  @Test
  void samplingIsAboutOneInNAndBounded() {
    LoadMeter m = meter(1024, 64);
    m.bind("users", ranges(0), 0, true);
    for (int i = 0; i < 32_000; i++) {
      m.record("users", i, i % 2 == 1, 0, false);
    }
    KeyspaceLoad load = only(m.takeReport());
    m.accepted();
    assertEquals(64, load.getSampleEvery());
    int n = load.getSamplesCount();
    assertTrue(n >= 380 && n <= 620, "about 500 samples (sd 22): " + n);
    Set<Long> distinct = new HashSet<>();
    for (LoadSample s : load.getSamplesList()) {
      long k = Keys.decodeInt64(s.getKey().toByteArray());
      assertTrue(k >= 0 && k < 32_000, "a key that was called: " + k);
      assertEquals(k % 2 == 1, s.getWrite(), "the call's write flag");
      distinct.add(k);
    }
    assertTrue(distinct.size() > n * 9 / 10, "spread over the calls");

    // Every call sampled: the reservoir keeps 1024, spread over the whole window, and says the rate it kept.
    LoadMeter all = meter(1024, 1);
    all.bind("users", ranges(0), 0, true);
    for (int i = 0; i < 200_000; i++) {
      all.record("users", i, false, 0, false);
    }
    KeyspaceLoad l = only(all.takeReport());
    assertEquals(UnitCounters.SAMPLE_CAPACITY, l.getSamplesCount());
    assertTrue(Math.abs(l.getSampleEvery() - 195) <= 1, "200000 / 1024 sampled calls per kept one: "
        + l.getSampleEvery());
    long late = l.getSamplesList().stream().filter(s -> Keys.decodeInt64(s.getKey().toByteArray()) >= 100_000).count();
    assertTrue(late > 400 && late < 624, "uniform over the window: " + late + " of 1024 from its second half");
  }

  /** A failed report's load is merged into the next one; an accepted one is never sent again. */
  @Test
  void unacceptedLoadIsMergedIntoTheNextReport() {
    LoadMeter m = meter(1024, 1_000_000);
    long t0 = clock.get();
    m.bind("users", ranges(0), 0, true);
    m.record("users", 5, false, 0, false);
    clock.addAndGet(2000);
    assertEquals(1, only(m.takeReport()).getBands(0).getReads());
    // (the report failed: neither accepted nor dropped)
    m.record("users", 6, false, 0, false);
    clock.addAndGet(2000);
    KeyspaceLoad merged = only(m.takeReport());
    assertEquals(2, merged.getBands(0).getReads());
    assertEquals(t0, merged.getStartUnixMs());
    assertEquals(t0 + 4000, merged.getEndUnixMs());
    m.accepted();
    assertEquals(2, stats.loadReportedCalls());
    assertEquals(1, stats.loadReportedBands());
    assertEquals(0, m.takeReport().size(), "sent once");
    m.record("users", 7, true, 0, false);
    assertEquals(1, m.takeReport().size());
    assertEquals(1, m.dropPending());
    assertEquals(1, stats.loadDropped());
    assertEquals(0, m.takeReport().size());
  }

  /** Never more than 10 minutes per window, never more than MAX_PENDING windows: the rest is dropped, counted. */
  @Test
  void pendingLoadIsBounded() {
    LoadMeter m = meter(1024, 1_000_000);
    m.bind("users", ranges(0), 0, true);
    m.record("users", 5, false, 0, false);
    clock.addAndGet(LoadMeter.MAX_WINDOW_MS + 1);
    assertEquals(0, m.takeReport().size(), "a window over 10 minutes is not sent");
    assertEquals(1, stats.loadDropped());
    // Reports keep failing for over an hour: windows of up to 10 minutes, at most MAX_PENDING of them.
    for (int i = 0; i < 5000; i++) {
      m.record("users", 5, false, 0, false);
      clock.addAndGet(20_000);
      List<KeyspaceLoad> loads = m.takeReport();
      assertTrue(loads.size() <= LoadMeter.MAX_PENDING);
      for (KeyspaceLoad l : loads) {
        assertTrue(l.getEndUnixMs() - l.getStartUnixMs() <= LoadMeter.MAX_WINDOW_MS);
      }
    }
    assertEquals(LoadMeter.MAX_PENDING, m.pendingWindows());
    List<KeyspaceLoad> last = m.takeReport();
    long sent = last.stream().flatMap(l -> l.getBandsList().stream()).mapToLong(LoadBand::getReads).sum();
    assertEquals(5001, sent + stats.loadDropped(), "every call is either still pending or counted as dropped");
  }
}
