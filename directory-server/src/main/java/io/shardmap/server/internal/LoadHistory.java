package io.shardmap.server.internal;

import io.shardmap.core.UnitSpace;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * The load the SDK clients reported, per keyspace, over unit space and time (docs/load.md): what
 * GetHeatmap draws and what the fleet status reads. Pure (no I/O; the wall clock is injected) and thread
 * safe (one lock per keyspace; every call is short).
 *
 * <p><b>Columns.</b> Each keyspace has columns of time; each column is a list of bands in position order
 * (a partition of the unit space, see {@link io.shardmap.core.UnitSpace}) with reads, writes, busy
 * microseconds and errors. A report's window is credited whole to the 1-minute column that holds its last
 * millisecond (windows are at most 10 minutes and the SDK reports every few seconds, so nothing is split
 * across columns). Bands of reports made against different map versions are merged by position: a
 * column's boundaries are the union of the boundaries, and a band's counts are split over finer boundaries
 * uniformly over the units of the server's current map in each piece (a unit cut by a boundary counts on
 * both sides); integer remainders are carried, so every sum is kept exactly.
 *
 * <p><b>Retention ladder</b> ({@link Settings#ladder}): by default 1-minute columns for 6 hours, 10-minute
 * columns for 4 days, 1-hour columns for 28 days, then dropped. A column is folded into the coarser column
 * holding it once that coarser column's whole span is older than the finer tier's retention (so a finer
 * column lives at least its retention, and columns never overlap). Folding adds counts: sums are exact.
 *
 * <p><b>Memory bound.</b> A column holds at most {@link Settings#maxBands} bands: beyond it the adjacent
 * bands with the fewest calls together are merged (hot bands stay fine-grained), and adjacent bands
 * without calls are always one band. Memory is at most columns x maxBands, whatever the number of ranges.
 *
 * <p><b>Servers.</b> Clients report to different directory servers. A 1-minute column younger than {@link
 * Settings#openMs} is kept as one part per server: this server's part grows with its reports ({@link
 * #record}); another server's part is replaced whole each time that server republishes it ({@link
 * #replace}). Older, the parts are summed into one column and no longer change.
 *
 * <p><b>Samples.</b> Keys the clients sampled (one call in {@code sample_every}) over the last {@link
 * Settings#sampleWindowMs}, at most {@link Settings#maxSamples} per keyspace (the newest), each weighted by
 * its {@code sample_every}: where a hot unit's load halves. Samples are this server's reports' only (not
 * exchanged between servers).
 *
 * <p><b>API for readers</b> (the fleet status): {@link #totals(String, long, long)} gives, for a keyspace
 * and a time window, the per-band totals in position order (bands of every column overlapping the window,
 * merged by position) and the samples of the window; {@link #columns} gives the columns themselves.
 * Positions are laid over the current map with {@link io.shardmap.core.UnitSpace#unitAt} and {@link
 * LoadColumn.UnitWeights#lastUnit}.
 */
public final class LoadHistory {
  /** One rung of the retention ladder: columns {@code columnMs} wide kept for {@code retentionMs}. */
  public record Tier(long columnMs, long retentionMs) {}

  /** A band's totals: positions [start, end) of the unit space (an empty end is the end of the space). */
  public record Band(byte[] start, byte[] end, long reads, long writes, long busyMicros, long errors) {}

  /** A sampled key: canonical bytes, whether a write, how many calls it stands for, when reported. */
  public record Sample(byte[] key, boolean write, long weight, long unixMs) {}

  /**
   * What {@link #totals} answers: the time the columns cover ({@code fromUnixMs}, {@code untilUnixMs}; both 0
   * when no column overlaps the window), the bands in position order, and the samples of the window.
   */
  public record Totals(long fromUnixMs, long untilUnixMs, List<Band> bands, List<Sample> samples) {
    public long reads() {
      return bands.stream().mapToLong(Band::reads).sum();
    }

    public long writes() {
      return bands.stream().mapToLong(Band::writes).sum();
    }
  }

  /** One column as a reader sees it: [startUnixMs, startUnixMs + widthMs). */
  record TimedColumn(long startUnixMs, long widthMs, LoadColumn column) {}

  /** The ladder and bounds; {@link #defaults()} in production, smaller ones in tests. */
  public record Settings(List<Tier> ladder, int maxBands, long openMs, long sampleWindowMs, int maxSamples) {
    public static final List<Tier> DEFAULT_LADDER = List.of(
        new Tier(Duration.ofMinutes(1).toMillis(), Duration.ofHours(6).toMillis()),
        new Tier(Duration.ofMinutes(10).toMillis(), Duration.ofDays(4).toMillis()),
        new Tier(Duration.ofHours(1).toMillis(), Duration.ofDays(28).toMillis()));
    public static final int DEFAULT_MAX_BANDS = 4096;
    /** How long other servers may republish a 1-minute column: the lease TTL of the published columns. */
    public static final long DEFAULT_OPEN_MS = Duration.ofMinutes(17).toMillis();

    public Settings {
      ladder = List.copyOf(ladder);
      if (ladder.isEmpty()) {
        throw new IllegalArgumentException("load ladder: at least one tier");
      }
      for (int i = 0; i < ladder.size(); i++) {
        Tier t = ladder.get(i);
        if (t.columnMs() < 1 || t.retentionMs() < t.columnMs()) {
          throw new IllegalArgumentException("load ladder tier " + i + ": column >= 1 ms and retention >= column, got "
              + t);
        }
        if (i > 0 && (t.columnMs() % ladder.get(i - 1).columnMs() != 0
            || t.retentionMs() < ladder.get(i - 1).retentionMs())) {
          throw new IllegalArgumentException("load ladder tier " + i + ": its column must be a multiple of the "
              + "previous tier's and its retention at least as long, got " + t);
        }
      }
      if (maxBands < 2) {
        throw new IllegalArgumentException("load max bands: at least 2, got " + maxBands);
      }
      if (openMs < 0 || sampleWindowMs < 0 || maxSamples < 0) {
        throw new IllegalArgumentException("load settings: open, sample window and max samples must be >= 0");
      }
    }

    public static Settings defaults() {
      return new Settings(DEFAULT_LADDER, DEFAULT_MAX_BANDS, DEFAULT_OPEN_MS, Duration.ofMinutes(10).toMillis(), 4096);
    }

    public Settings withLadder(List<Tier> l) {
      return new Settings(l, maxBands, openMs, sampleWindowMs, maxSamples);
    }

    public Settings withMaxBands(int n) {
      return new Settings(ladder, n, openMs, sampleWindowMs, maxSamples);
    }

    public Settings withOpenMs(long ms) {
      return new Settings(ladder, maxBands, ms, sampleWindowMs, maxSamples);
    }

    long minuteMs() {
      return ladder.get(0).columnMs();
    }

    long longestRetentionMs() {
      return ladder.get(ladder.size() - 1).retentionMs();
    }
  }

  /** This server's own part of one open column, to publish. */
  record OwnPart(String keyspace, long minuteUnixMs, LoadColumn column) {}

  /** The key of this server's own parts (server ids are never empty). */
  static final String LOCAL = "";

  private final Settings settings;
  private final String localServer = LOCAL;
  private final LongSupplier wallClockMillis;
  private final Function<String, LoadColumn.UnitWeights> weights;
  private final ConcurrentHashMap<String, KeyspaceHistory> keyspaces = new ConcurrentHashMap<>();

  /** {@code weights}: per keyspace, how its current map splits a band (uniform over its units). */
  LoadHistory(Settings settings, LongSupplier wallClockMillis,
                     Function<String, LoadColumn.UnitWeights> weights) {
    this.settings = settings;
    this.wallClockMillis = wallClockMillis;
    this.weights = weights;
  }

  public Settings settings() {
    return settings;
  }

  /** A history whose bands are split by the current maps of {@code snapshots}. */
  public static LoadHistory over(Settings settings, LongSupplier wallClockMillis,
                                 java.util.function.Supplier<io.shardmap.core.DirectorySnapshot> snapshots) {
    return new LoadHistory(settings, wallClockMillis, ks -> weights(snapshots.get(), ks));
  }

  /**
   * Credits one checked keyspace load of this server's clients (see {@link LoadReports} for the checks; the
   * server records through it): its bands to the 1-minute column holding its last millisecond.
   */
  public void record(io.shardmap.proto.v1.KeyspaceLoad load) {
    record(load.getKeyspace(), load.getEndUnixMs(), LoadReports.column(load));
  }

  /** How a keyspace's current map in {@code snap} splits bands (uniform when it has no usable map). */
  static LoadColumn.UnitWeights weights(io.shardmap.core.DirectorySnapshot snap, String keyspace) {
    io.shardmap.core.KeyspaceMap k = snap.keyspaces().get(keyspace);
    try {
      return k != null && k.hasLayout() ? LoadColumn.UnitWeights.of(k.table()) : LoadColumn.UnitWeights.UNIFORM;
    } catch (RuntimeException e) {
      return LoadColumn.UnitWeights.UNIFORM;
    }
  }

  private KeyspaceHistory ks(String keyspace) {
    return keyspaces.computeIfAbsent(keyspace, k -> new KeyspaceHistory());
  }

  /** Credits one report of this server's clients: {@code column} to the 1-minute column holding endMs - 1. */
  void record(String keyspace, long endUnixMs, LoadColumn column) {
    long minute = Math.floorDiv(endUnixMs - 1, settings.minuteMs()) * settings.minuteMs();
    KeyspaceHistory h = ks(keyspace);
    synchronized (h) {
      h.addPart(localServer, minute, column, weights.apply(keyspace), true);
    }
  }

  /** Keeps sampled keys of one report (at most {@link Settings#maxSamples} per keyspace, the newest). */
  void recordSamples(String keyspace, List<Sample> samples) {
    if (samples.isEmpty() || settings.maxSamples() == 0) {
      return;
    }
    KeyspaceHistory h = ks(keyspace);
    synchronized (h) {
      for (Sample s : samples) {
        h.samples.addLast(s);
      }
      h.trimSamples(wallClockMillis.getAsLong());
    }
  }

  /**
   * Another server's part of one 1-minute column, replacing what that server published before (its
   * republications are cumulative). {@code server} {@link #LOCAL} is this server's own part, published
   * earlier: it is not replaced (this server is its origin), except when there is none: a restarted server
   * with the same id resumes its columns from etcd.
   */
  void replace(String keyspace, String server, long minuteUnixMs, LoadColumn column) {
    KeyspaceHistory h = ks(keyspace);
    synchronized (h) {
      if (server.equals(localServer)) {
        Map<String, LoadColumn> parts = h.open.get(minuteUnixMs);
        if (parts != null && parts.containsKey(server)) {
          return;
        }
      }
      h.addPart(server, minuteUnixMs, column, weights.apply(keyspace), false);
    }
  }

  /** This server's parts changed since the last call (each once), for publishing. */
  List<OwnPart> takeChangedOwnParts() {
    List<OwnPart> out = new ArrayList<>();
    for (Map.Entry<String, KeyspaceHistory> e : keyspaces.entrySet()) {
      KeyspaceHistory h = e.getValue();
      synchronized (h) {
        for (Long minute : h.dirty) {
          Map<String, LoadColumn> parts = h.open.get(minute);
          LoadColumn own = parts == null ? null : parts.get(localServer);
          if (own != null) {
            out.add(new OwnPart(e.getKey(), minute, own));
          }
        }
        h.dirty.clear();
      }
    }
    return out;
  }

  /** Marks an own part changed again (its publication failed), if it is still open. */
  void markChanged(String keyspace, long minuteUnixMs) {
    KeyspaceHistory h = keyspaces.get(keyspace);
    if (h != null) {
      synchronized (h) {
        if (h.open.containsKey(minuteUnixMs)) {
          h.dirty.add(minuteUnixMs);
        }
      }
    }
  }

  /** Closes open columns that are old enough and folds columns down the ladder; drops the oldest. */
  public void maintain() {
    long now = wallClockMillis.getAsLong();
    for (Map.Entry<String, KeyspaceHistory> e : keyspaces.entrySet()) {
      KeyspaceHistory h = e.getValue();
      synchronized (h) {
        h.maintain(now, weights.apply(e.getKey()));
      }
    }
  }

  /**
   * The columns of a keyspace overlapping [sinceUnixMs, untilUnixMs), oldest first (open columns summed over
   * servers). Maintains the keyspace first.
   */
  List<TimedColumn> columns(String keyspace, long sinceUnixMs, long untilUnixMs) {
    KeyspaceHistory h = keyspaces.get(keyspace);
    if (h == null || sinceUnixMs >= untilUnixMs) {
      return List.of();
    }
    LoadColumn.UnitWeights w = weights.apply(keyspace);
    List<TimedColumn> out = new ArrayList<>();
    synchronized (h) {
      h.maintain(wallClockMillis.getAsLong(), w);
      Map.Entry<Long, TimedColumn> first = h.closed.floorEntry(sinceUnixMs);
      long from = first != null ? first.getKey() : sinceUnixMs;
      for (TimedColumn c : h.closed.subMap(from, true, untilUnixMs, false).values()) {
        if (c.startUnixMs() + c.widthMs() > sinceUnixMs) {
          out.add(c);
        }
      }
      long m = settings.minuteMs();
      for (Map.Entry<Long, Map<String, LoadColumn>> o : h.open.subMap(sinceUnixMs - m, false, untilUnixMs, false)
          .entrySet()) {
        LoadColumn sum = LoadColumn.EMPTY;
        for (LoadColumn part : o.getValue().values()) {
          sum = LoadColumn.sum(sum, part, w);
        }
        out.add(new TimedColumn(o.getKey(), m, sum.capped(settings.maxBands())));
      }
    }
    out.sort((a, b) -> Long.compare(a.startUnixMs(), b.startUnixMs()));
    return out;
  }

  /**
   * Per-band totals of a keyspace over the columns overlapping [sinceUnixMs, untilUnixMs), in position order
   * (the columns merged by position, at most {@link Settings#maxBands} bands), and the samples reported in
   * the window. An unknown keyspace has no bands and no samples.
   */
  public Totals totals(String keyspace, long sinceUnixMs, long untilUnixMs) {
    List<TimedColumn> cols = columns(keyspace, sinceUnixMs, untilUnixMs);
    LoadColumn.UnitWeights w = weights.apply(keyspace);
    LoadColumn sum = LoadColumn.EMPTY;
    for (TimedColumn c : cols) {
      sum = LoadColumn.sum(sum, c.column(), w).capped(settings.maxBands());
    }
    List<Band> bands = new ArrayList<>(sum.bands());
    for (int i = 0; i < sum.bands(); i++) {
      bands.add(new Band(sum.start(i), sum.end(i), sum.get(i, LoadColumn.READS), sum.get(i, LoadColumn.WRITES),
          sum.get(i, LoadColumn.BUSY), sum.get(i, LoadColumn.ERRORS)));
    }
    List<Sample> samples = new ArrayList<>();
    KeyspaceHistory h = keyspaces.get(keyspace);
    if (h != null) {
      synchronized (h) {
        for (Sample s : h.samples) {
          if (s.unixMs() >= sinceUnixMs && s.unixMs() < untilUnixMs) {
            samples.add(s);
          }
        }
      }
    }
    long from = cols.isEmpty() ? 0 : cols.get(0).startUnixMs();
    long until = cols.isEmpty() ? 0 : cols.stream().mapToLong(c -> c.startUnixMs() + c.widthMs()).max().getAsLong();
    return new Totals(from, until, List.copyOf(bands), List.copyOf(samples));
  }

  /** Keyspaces with any history. */
  public Set<String> keyspaces() {
    return Set.copyOf(keyspaces.keySet());
  }

  /** Heap held by the history, estimated (columns, open parts, samples and interned positions). */
  public long estimatedBytes() {
    long b = 0;
    for (KeyspaceHistory h : keyspaces.values()) {
      synchronized (h) {
        b += h.estimatedBytes();
      }
    }
    return b;
  }

  /** Bands held in every column and open part. */
  public long bandCount() {
    long n = 0;
    for (KeyspaceHistory h : keyspaces.values()) {
      synchronized (h) {
        for (TimedColumn c : h.closed.values()) {
          n += c.column().bands();
        }
        for (Map<String, LoadColumn> parts : h.open.values()) {
          for (LoadColumn p : parts.values()) {
            n += p.bands();
          }
        }
      }
    }
    return n;
  }

  /** Columns held (closed columns plus open minutes), for tests and the benchmark. */
  public int columnCount(String keyspace) {
    KeyspaceHistory h = keyspaces.get(keyspace);
    if (h == null) {
      return 0;
    }
    synchronized (h) {
      return h.closed.size() + h.open.size();
    }
  }

  /** Per keyspace; guarded by its own monitor. */
  private final class KeyspaceHistory {
    /** Closed columns by start; they never overlap. */
    final TreeMap<Long, TimedColumn> closed = new TreeMap<>();
    /** Open 1-minute columns: one part per server. */
    final TreeMap<Long, Map<String, LoadColumn>> open = new TreeMap<>();
    /** Open minutes whose local part changed since it was last taken for publishing. */
    final Set<Long> dirty = new HashSet<>();
    final ArrayDeque<Sample> samples = new ArrayDeque<>();
    /**
     * Equal positions share one array across columns (reports arrive as fresh arrays). Bounded: cleared
     * when full, which only costs sharing.
     */
    final HashMap<ByteBuffer, byte[]> intern = new HashMap<>();

    byte[] intern(byte[] p) {
      if (p.length == 0) {
        return UnitSpace.START;
      }
      if (intern.size() >= 4 * settings.maxBands()) {
        intern.clear();
      }
      return intern.computeIfAbsent(ByteBuffer.wrap(p), k -> p);
    }

    void addPart(String server, long minute, LoadColumn column, LoadColumn.UnitWeights w, boolean add) {
      long now = wallClockMillis.getAsLong();
      LoadColumn c = column.interned(this::intern);
      if (minute + settings.minuteMs() <= now - settings.openMs()) {
        // Too old to be republished: straight into the closed columns.
        addClosed(minute, settings.minuteMs(), c, w);
        return;
      }
      Map<String, LoadColumn> parts = open.computeIfAbsent(minute, k -> new HashMap<>());
      LoadColumn before = parts.get(server);
      LoadColumn next = add && before != null ? LoadColumn.sum(before, c, w).capped(settings.maxBands())
          : c.capped(settings.maxBands());
      parts.put(server, next);
      if (server.equals(localServer)) {
        dirty.add(minute);
      }
    }

    /** Adds into the closed column holding {@code start}, or a new one {@code width} wide. */
    void addClosed(long start, long width, LoadColumn c, LoadColumn.UnitWeights w) {
      Map.Entry<Long, TimedColumn> holder = closed.floorEntry(start);
      if (holder != null && holder.getKey() + holder.getValue().widthMs() > start) {
        TimedColumn t = holder.getValue();
        closed.put(t.startUnixMs(), new TimedColumn(t.startUnixMs(), Math.max(t.widthMs(), width),
            LoadColumn.sum(t.column(), c, w).capped(settings.maxBands())));
      } else {
        closed.put(start, new TimedColumn(start, width, c.capped(settings.maxBands())));
      }
    }

    void maintain(long now, LoadColumn.UnitWeights w) {
      long m = settings.minuteMs();
      while (!open.isEmpty() && open.firstKey() + m <= now - settings.openMs()) {
        Map.Entry<Long, Map<String, LoadColumn>> e = open.pollFirstEntry();
        dirty.remove(e.getKey());
        LoadColumn sum = LoadColumn.EMPTY;
        for (LoadColumn part : e.getValue().values()) {
          sum = LoadColumn.sum(sum, part, w);
        }
        if (!sum.isEmpty()) {
          addClosed(e.getKey(), m, sum, w);
        }
      }
      List<Tier> ladder = settings.ladder();
      for (int t = 0; t < ladder.size(); t++) {
        long width = ladder.get(t).columnMs();
        long horizon = now - ladder.get(t).retentionMs();
        boolean last = t == ladder.size() - 1;
        long coarse = last ? 0 : ladder.get(t + 1).columnMs();
        // Only columns starting before the horizon can be due.
        for (TimedColumn c : new ArrayList<>(closed.headMap(horizon, false).values())) {
          if (c.widthMs() != width) {
            continue;
          }
          if (last) {
            if (c.startUnixMs() + width <= horizon) {
              closed.remove(c.startUnixMs());
            }
            continue;
          }
          long target = Math.floorDiv(c.startUnixMs(), coarse) * coarse;
          if (target + coarse <= horizon) {
            closed.remove(c.startUnixMs());
            addClosed(target, coarse, c.column(), w);
          }
        }
      }
      trimSamples(now);
    }

    void trimSamples(long now) {
      while (!samples.isEmpty() && (samples.size() > settings.maxSamples()
          || samples.peekFirst().unixMs() < now - settings.sampleWindowMs())) {
        samples.pollFirst();
      }
    }

    long estimatedBytes() {
      long b = 64 + 48L * (closed.size() + open.size());
      for (TimedColumn c : closed.values()) {
        b += 32 + c.column().estimatedBytes();
      }
      for (Map<String, LoadColumn> parts : open.values()) {
        for (LoadColumn p : parts.values()) {
          b += 48 + p.estimatedBytes();
        }
      }
      for (Sample s : samples) {
        b += 64 + s.key().length;
      }
      // Interned positions are counted in every column that refers to them (an overestimate), and the
      // intern table's own entries here.
      b += 64L * intern.size();
      return b;
    }
  }
}
