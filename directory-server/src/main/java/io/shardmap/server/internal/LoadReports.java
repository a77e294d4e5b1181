package io.shardmap.server.internal;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.LoadSample;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * The load part of ReportApplied: checks it whole before anything of the report is recorded
 * ({@link #check}), then credits it to the {@link LoadHistory} and the per-shard counters ({@link #record}).
 * Runs on the transport threads: no I/O, bounded work (at most 64 x 4096 bands).
 *
 * <p>Rules (each refusal is INVALID_ARGUMENT naming the field, e.g. {@code load[2].bands[5].reads}): at
 * most {@value #MAX_KEYSPACES} keyspaces, each in the server's snapshot; a window with end after start, at
 * most {@value #MAX_WINDOW_MS} ms long, ending at most {@value #MAX_FUTURE_MS} ms after the server's clock;
 * at most {@value #MAX_BANDS} bands, in position order, not overlapping, each with start before end, at
 * least one unit and no negative count; at most {@value #MAX_CALLS_PER_SECOND} calls per second of window
 * and at most {@value #MAX_BUSY} calls in flight on average (busy microseconds over window microseconds),
 * per band and in total; at most {@value #MAX_SAMPLES} samples with keys of at most {@value #MAX_SAMPLE_KEY}
 * bytes, and {@code sample_every} at least 1 when there are samples (never negative).
 *
 * <p>Hash keyspaces: bucket positions only mean the same under one bucket count. For each hash keyspace
 * this server remembers the bucket count it last saw and the first layout revision it saw it at; bands of
 * a report whose {@code layout_revision} is not between that revision and the current layout's are dropped
 * (the report is accepted, its samples kept, {@code shardmap_load_reports_total{result="dropped_layout"}}).
 * A server that starts knows only its first snapshot's layout, so reports of clients a layout behind are
 * dropped until they catch up.
 */
public final class LoadReports {
  public static final int MAX_KEYSPACES = 64;
  public static final long MAX_WINDOW_MS = 600_000;
  public static final long MAX_FUTURE_MS = 60_000;
  public static final int MAX_BANDS = 4096;
  public static final long MAX_CALLS_PER_SECOND = 10_000_000;
  public static final long MAX_BUSY = 100_000;
  public static final int MAX_SAMPLES = 1024;
  public static final int MAX_SAMPLE_KEY = 1024;
  /** Bands over more units than this have their calls spread over this many units for the shard counters. */
  private static final int MAX_UNITS_PER_BAND_FOR_SHARDS = 1024;

  /** A checked keyspace load with the map it was checked against. */
  record Checked(KeyspaceMap map, KeyspaceLoad load) {}

  private record BucketEra(int buckets, long sinceLayoutRevision) {}

  private final LoadHistory history;
  private final ServerMetrics metrics;
  private final LongSupplier wallClockMillis;
  private final ConcurrentHashMap<String, BucketEra> bucketEras = new ConcurrentHashMap<>();

  public LoadReports(LoadHistory history, ServerMetrics metrics, LongSupplier wallClockMillis) {
    this.history = history;
    this.metrics = metrics;
    this.wallClockMillis = wallClockMillis;
  }

  public LoadHistory history() {
    return history;
  }

  /** Checks every load of the report against {@code snap}; throws (recording nothing) on the first fault. */
  List<Checked> check(ReportAppliedRequest req, DirectorySnapshot snap) {
    try {
      return checkAll(req, snap, wallClockMillis.getAsLong());
    } catch (ShardmapException e) {
      metrics.loadReport("refused");
      throw e;
    }
  }

  static List<Checked> checkAll(ReportAppliedRequest req, DirectorySnapshot snap, long now) {
    if (req.getLoadCount() > MAX_KEYSPACES) {
      throw ShardmapException.invalid("load", "at most " + MAX_KEYSPACES + " keyspaces per report, got "
          + req.getLoadCount());
    }
    List<Checked> out = new ArrayList<>(req.getLoadCount());
    for (int i = 0; i < req.getLoadCount(); i++) {
      KeyspaceLoad l = req.getLoad(i);
      String f = "load[" + i + "]";
      Names.keyspace(f + ".keyspace", l.getKeyspace());
      KeyspaceMap k = snap.keyspaces().get(l.getKeyspace());
      if (k == null) {
        throw ShardmapException.invalid(f + ".keyspace", "no keyspace '" + l.getKeyspace() + "'");
      }
      checkOne(l, f, now);
      out.add(new Checked(k, l));
    }
    return out;
  }

  private static void checkOne(KeyspaceLoad l, String f, long now) {
    long start = l.getStartUnixMs();
    long end = l.getEndUnixMs();
    if (end <= start) {
      throw ShardmapException.invalid(f + ".end_unix_ms", "must be after start_unix_ms (" + start + "), got " + end);
    }
    if (end - start > MAX_WINDOW_MS) {
      throw ShardmapException.invalid(f + ".end_unix_ms", "the window may be at most " + MAX_WINDOW_MS
          + " ms long, got " + (end - start) + " ms");
    }
    if (end > now + MAX_FUTURE_MS) {
      throw ShardmapException.invalid(f + ".end_unix_ms", "ends " + (end - now) + " ms after the server's clock "
          + "(at most " + MAX_FUTURE_MS + " ms allowed)");
    }
    if (l.getBandsCount() > MAX_BANDS) {
      throw ShardmapException.invalid(f + ".bands", "at most " + MAX_BANDS + " bands, got " + l.getBandsCount());
    }
    long windowMs = end - start;
    // Calls allowed per window: 10^7 per second; busy allowed: 10^5 x the window in microseconds.
    long maxCalls = satMul(MAX_CALLS_PER_SECOND, windowMs) / 1000;
    long maxBusy = satMul(MAX_BUSY, satMul(windowMs, 1000));
    byte[] prevEnd = null;
    long calls = 0;
    long busy = 0;
    for (int j = 0; j < l.getBandsCount(); j++) {
      LoadBand b = l.getBands(j);
      String bf = f + ".bands[" + j + "]";
      byte[] s = b.getStart().toByteArray();
      byte[] e = b.getEnd().toByteArray();
      if (e.length > 0 && UnitSpace.compareStarts(s, e) >= 0) {
        throw ShardmapException.invalid(bf + ".end", "must be after start (an empty end is the end of the space)");
      }
      if (prevEnd != null && (prevEnd.length == 0 || UnitSpace.compareStarts(s, prevEnd) < 0)) {
        throw ShardmapException.invalid(bf + ".start", "bands must be in position order and not overlap: starts "
            + "before the end of bands[" + (j - 1) + "]");
      }
      prevEnd = e;
      if (b.getUnits() < 1) {
        throw ShardmapException.invalid(bf + ".units", "must be >= 1, got " + b.getUnits());
      }
      nonNegative(bf + ".reads", b.getReads());
      nonNegative(bf + ".writes", b.getWrites());
      nonNegative(bf + ".busy_micros", b.getBusyMicros());
      nonNegative(bf + ".errors", b.getErrors());
      long bc = satAdd(b.getReads(), b.getWrites());
      if (bc > maxCalls) {
        throw ShardmapException.invalid(bf + ".reads", "reads + writes " + bc + " exceed " + MAX_CALLS_PER_SECOND
            + " calls per second of the " + windowMs + " ms window");
      }
      if (b.getErrors() > maxCalls) {
        throw ShardmapException.invalid(bf + ".errors", b.getErrors() + " exceed " + MAX_CALLS_PER_SECOND
            + " calls per second of the " + windowMs + " ms window");
      }
      if (b.getBusyMicros() > maxBusy) {
        throw ShardmapException.invalid(bf + ".busy_micros", b.getBusyMicros() + " is more than " + MAX_BUSY
            + " calls in flight for the whole " + windowMs + " ms window");
      }
      calls = satAdd(calls, bc);
      busy = satAdd(busy, b.getBusyMicros());
    }
    if (calls > maxCalls) {
      throw ShardmapException.invalid(f + ".bands", "reads + writes of all bands (" + calls + ") exceed "
          + MAX_CALLS_PER_SECOND + " calls per second of the " + windowMs + " ms window");
    }
    if (busy > maxBusy) {
      throw ShardmapException.invalid(f + ".bands", "busy_micros of all bands (" + busy + ") is more than "
          + MAX_BUSY + " calls in flight for the whole " + windowMs + " ms window");
    }
    if (l.getSamplesCount() > MAX_SAMPLES) {
      throw ShardmapException.invalid(f + ".samples", "at most " + MAX_SAMPLES + " samples, got "
          + l.getSamplesCount());
    }
    for (int j = 0; j < l.getSamplesCount(); j++) {
      int n = l.getSamples(j).getKey().size();
      if (n > MAX_SAMPLE_KEY) {
        throw ShardmapException.invalid(f + ".samples[" + j + "].key", "at most " + MAX_SAMPLE_KEY + " bytes, got "
            + n);
      }
    }
    if (l.getSampleEvery() < 0 || (l.getSamplesCount() > 0 && l.getSampleEvery() < 1)) {
      throw ShardmapException.invalid(f + ".sample_every", "must be >= 1 when samples are sent (never negative), "
          + "got " + l.getSampleEvery());
    }
  }

  private static void nonNegative(String field, long v) {
    if (v < 0) {
      throw ShardmapException.invalid(field, "must be >= 0, got " + v);
    }
  }

  private static long satAdd(long a, long b) {
    long r = a + b;
    return ((a ^ r) & (b ^ r)) < 0 ? Long.MAX_VALUE : r;
  }

  private static long satMul(long a, long b) {
    return Math.multiplyHigh(a, b) != 0 || a * b < 0 ? Long.MAX_VALUE : a * b;
  }

  /** Records checked loads (after the rest of the report was accepted). */
  void record(List<Checked> loads) {
    long now = wallClockMillis.getAsLong();
    for (Checked c : loads) {
      KeyspaceLoad l = c.load();
      KeyspaceMap k = c.map();
      if (!l.getSamplesList().isEmpty()) {
        List<LoadHistory.Sample> samples = new ArrayList<>(l.getSamplesCount());
        for (LoadSample s : l.getSamplesList()) {
          samples.add(new LoadHistory.Sample(s.getKey().toByteArray(), s.getWrite(), l.getSampleEvery(), now));
        }
        history.recordSamples(k.name(), samples);
      }
      if (l.getBandsCount() == 0) {
        metrics.loadReport("accepted");
        continue;
      }
      if (k.strategy() == Strategy.STRATEGY_HASH && !sameBuckets(k, l.getLayoutRevision())) {
        metrics.loadReport("dropped_layout");
        continue;
      }
      LoadColumn col = column(l);
      history.record(k.name(), l.getEndUnixMs(), col);
      countByShard(k, l);
      metrics.loadReport("accepted");
    }
  }

  /** The bands of a checked load as a column (gaps between bands hold no calls). */
  static LoadColumn column(KeyspaceLoad l) {
    List<byte[]> starts = new ArrayList<>(l.getBandsCount());
    List<byte[]> ends = new ArrayList<>(l.getBandsCount());
    long[] counts = new long[l.getBandsCount() * LoadColumn.FIELDS];
    for (int j = 0; j < l.getBandsCount(); j++) {
      LoadBand b = l.getBands(j);
      starts.add(b.getStart().toByteArray());
      ends.add(b.getEnd().toByteArray());
      counts[j * LoadColumn.FIELDS + LoadColumn.READS] = b.getReads();
      counts[j * LoadColumn.FIELDS + LoadColumn.WRITES] = b.getWrites();
      counts[j * LoadColumn.FIELDS + LoadColumn.BUSY] = b.getBusyMicros();
      counts[j * LoadColumn.FIELDS + LoadColumn.ERRORS] = b.getErrors();
    }
    return LoadColumn.of(starts, ends, counts);
  }

  /** Whether a hash report's layout revision lies in the era of the current bucket count (see class doc). */
  private boolean sameBuckets(KeyspaceMap k, long layoutRevision) {
    RoutingTable t;
    try {
      t = k.table();
    } catch (RuntimeException e) {
      return false;
    }
    int buckets = t.unitCount();
    BucketEra era = bucketEras.compute(k.name(), (name, old) ->
        old != null && old.buckets() == buckets ? old : new BucketEra(buckets, k.layoutRevision()));
    return layoutRevision >= era.sinceLayoutRevision() && layoutRevision <= k.layoutRevision();
  }

  /**
   * shardmap_load_calls_total per keyspace and shard: each band's calls spread uniformly over the units of
   * the current map it overlaps, each unit's share to its owner ("several" for a directory's entry groups).
   */
  private void countByShard(KeyspaceMap k, KeyspaceLoad l) {
    RoutingTable t;
    try {
      t = k.table();
    } catch (RuntimeException e) {
      return;
    }
    for (LoadBand b : l.getBandsList()) {
      if (b.getReads() == 0 && b.getWrites() == 0 && b.getErrors() == 0) {
        continue;
      }
      int first = UnitSpace.unitAt(t, b.getStart().toByteArray());
      int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, b.getEnd().toByteArray()));
      int n = last - first + 1;
      int step = Math.max(1, n / MAX_UNITS_PER_BAND_FOR_SHARDS);
      int picked = (n + step - 1) / step;
      long[] w = new long[picked];
      java.util.Arrays.fill(w, 1);
      long[] split = new long[picked * LoadColumn.FIELDS];
      LoadColumn.split(b.getReads(), w, picked, split, 0, LoadColumn.READS);
      LoadColumn.split(b.getWrites(), w, picked, split, 0, LoadColumn.WRITES);
      LoadColumn.split(b.getErrors(), w, picked, split, 0, LoadColumn.ERRORS);
      for (int p = 0; p < picked; p++) {
        Route r = t.unitRoute(first + p * step);
        String shard = r == null ? "several" : r.shard();
        metrics.loadCalls(k.name(), shard, split[p * LoadColumn.FIELDS + LoadColumn.READS],
            split[p * LoadColumn.FIELDS + LoadColumn.WRITES], split[p * LoadColumn.FIELDS + LoadColumn.ERRORS]);
      }
    }
  }
}
