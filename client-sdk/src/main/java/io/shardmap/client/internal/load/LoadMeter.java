package io.shardmap.client.internal.load;

import io.shardmap.client.internal.Counters;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RoutingTable;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongSupplier;

/**
 * The client's load accounting: per keyspace, what its calls cost each unit of the map (docs/client-sdk.md,
 * "Load accounting"), sent with the presence reports as {@code KeyspaceLoad} windows.
 *
 * <p>Guarantees:
 *
 * <ul>
 *   <li>{@link #record} takes no lock and allocates nothing (but for a geographic keyspace, whose unit lookup
 *       makes a String, as its routing does): one map read, the unit lookup of the bound table, two or three
 *       atomic adds on a stripe of the calling thread, and one {@link ThreadLocalRandom} draw for sampling;
 *   <li>counters are bound to the table they count against: when a keyspace's map changes its units (a split,
 *       a new layout), the old counters are retired and drained into the next reports with their own
 *       positions and layout revision, so a band is always cut by the map it was counted against;
 *   <li>each call is sent once: windows a server has not accepted stay pending and are merged with the
 *       next, within {@link #MAX_WINDOW_MS} per window and {@link #MAX_PENDING} windows in all; what falls
 *       off (and what a server refuses) is counted as dropped, never kept without bound;
 *   <li>memory per keyspace is bounded by {@code loadSlots}, not by the map's size.
 * </ul>
 *
 * <p>{@link #sync} runs on the map follower's thread, {@link #takeReport}, {@link #accepted} and
 * {@link #dropPending} on the reporter's; they share this object's lock, which {@link #record} never takes.
 */
public final class LoadMeter {
  /** The longest window a server accepts (KeyspaceLoad: at most 10 minutes). */
  public static final long MAX_WINDOW_MS = 600_000;
  /** Windows kept pending at most (and so sent in one report at most): the oldest beyond are dropped. */
  public static final int MAX_PENDING = 64;
  /** Retired counters kept at most; beyond, the oldest is drained at once. */
  static final int MAX_RETIRED = 64;
  /** Reports a retired binding is still drained in after it was retired (for calls that read it just before). */
  static final int RETIRED_DRAINS = 2;
  /** Units compared one by one to tell whether a new table has the old one's units (more: retire). */
  static final int MAX_COMPARED_UNITS = 4096;

  private final int maxSlots;
  private final int sampleEvery;
  private final int maxStripes;
  private final LongSupplier clockMs;
  private final Counters stats;
  /** Immutable; replaced whole under the lock, read without it on the hot path. */
  private volatile Map<String, UnitCounters> live = Map.of();
  private final List<UnitCounters> retired = new ArrayList<>();
  private final ArrayDeque<Window> pending = new ArrayDeque<>();
  private List<Window> sent = List.of();

  /**
   * @param maxSlots slots per keyspace at most (ClientOptions.loadSlots)
   * @param sampleEvery one call in this many has its key sampled
   * @param clockMs the wall clock, ms since the epoch (windows are sent in it)
   */
  public LoadMeter(int maxSlots, int sampleEvery, LongSupplier clockMs, Counters stats) {
    this(maxSlots, sampleEvery, defaultStripes(), clockMs, stats);
  }

  LoadMeter(int maxSlots, int sampleEvery, int maxStripes, LongSupplier clockMs, Counters stats) {
    this.maxSlots = maxSlots;
    this.sampleEvery = sampleEvery;
    this.maxStripes = maxStripes;
    this.clockMs = clockMs;
    this.stats = stats;
  }

  /** Twice the processors, a power of two from 2 to 16: threads rarely share a stripe. */
  static int defaultStripes() {
    int n = Math.max(2, Math.min(16, 2 * Runtime.getRuntime().availableProcessors()));
    return Integer.highestOneBit(n - 1) << 1;
  }

  /** Binds every keyspace of the map to counters of its current table (see the class comment). */
  public synchronized void sync(DirectorySnapshot snapshot) {
    Map<String, UnitCounters> next = new HashMap<>();
    boolean changed = false;
    for (Map.Entry<String, KeyspaceMap> e : snapshot.keyspaces().entrySet()) {
      KeyspaceMap k = e.getValue();
      if (k.broken() != null || !k.hasLayout()) {
        continue;
      }
      UnitCounters c = bound(e.getKey(), k.table(), k.layoutRevision(), k.keyType() == KeyType.KEY_TYPE_INT64);
      changed |= c != live.get(e.getKey());
      next.put(e.getKey(), c);
    }
    for (Map.Entry<String, UnitCounters> e : live.entrySet()) {
      if (next.get(e.getKey()) != e.getValue()) {
        retire(e.getValue());
        changed = true;
      }
    }
    if (changed) {
      live = Map.copyOf(next);
    }
  }

  /** Binds one keyspace (for tests and {@link #sync}); the previous counters, if other, are retired. */
  public synchronized void bind(String keyspace, RoutingTable table, long layoutRevision, boolean intKeys) {
    UnitCounters c = bound(keyspace, table, layoutRevision, intKeys);
    UnitCounters old = live.get(keyspace);
    if (c != old) {
      if (old != null) {
        retire(old);
      }
      Map<String, UnitCounters> next = new HashMap<>(live);
      next.put(keyspace, c);
      live = Map.copyOf(next);
    }
  }

  /** The keyspace's current counters if they fit the table, else new ones. */
  private UnitCounters bound(String keyspace, RoutingTable table, long layoutRevision, boolean intKeys) {
    UnitCounters c = live.get(keyspace);
    if (c != null && c.table == table) {
      return c;
    }
    if (c != null && sameUnits(c, table, layoutRevision, intKeys)) {
      c.table = table;
      return c;
    }
    return new UnitCounters(keyspace, table, layoutRevision, intKeys, maxSlots, maxStripes, clockMs.getAsLong());
  }

  /** Whether {@code table} has exactly the units of {@code c}'s table, at the same positions. */
  private static boolean sameUnits(UnitCounters c, RoutingTable table, long layoutRevision, boolean intKeys) {
    RoutingTable old = c.table;
    if (c.layoutRevision != layoutRevision || c.intKeys != intKeys || old.getClass() != table.getClass()
        || old.unitCount() != table.unitCount()) {
      return false;
    }
    if (table instanceof DirectoryTable) {
      return true; // entry groups by hash: the same for every table of the same layout
    }
    if (table.unitCount() > MAX_COMPARED_UNITS) {
      return false;
    }
    for (int i = 0; i < table.unitCount(); i++) {
      if (!Arrays.equals(old.unitStart(i), table.unitStart(i))) {
        return false;
      }
    }
    return true;
  }

  private void retire(UnitCounters c) {
    c.drainsLeft = RETIRED_DRAINS;
    retired.add(c);
    if (retired.size() > MAX_RETIRED) {
      drainInto(retired.remove(0), clockMs.getAsLong());
    }
  }

  /** Counts a call on an INT64 key; ignored for a keyspace not bound (unknown, broken) or of BYTES keys. */
  public void record(String keyspace, long key, boolean write, long nanos, boolean failed) {
    UnitCounters c = live.get(keyspace);
    if (c == null || !c.intKeys) {
      return;
    }
    c.addToSlot(c.slotOfKey(key), write, nanos, failed);
    if (sampleEvery == 1 || ThreadLocalRandom.current().nextInt(sampleEvery) == 0) {
      c.sample(key, null, write);
    }
  }

  /** Counts a call on a canonical key; ignored for a keyspace not bound or of INT64 keys. */
  public void record(String keyspace, byte[] canonicalKey, boolean write, long nanos, boolean failed) {
    UnitCounters c = live.get(keyspace);
    if (c == null || c.intKeys) {
      return;
    }
    c.add(c.table.unitOf(canonicalKey), write, nanos, failed);
    if (sampleEvery == 1 || ThreadLocalRandom.current().nextInt(sampleEvery) == 0) {
      c.sample(0, canonicalKey, write);
    }
  }

  /**
   * The load to send with the next report: what was counted since the last call, merged with what no server
   * accepted yet. Call {@link #accepted} or {@link #dropPending} after the report; otherwise (a failed
   * report) it stays pending for the next.
   */
  public synchronized List<KeyspaceLoad> takeReport() {
    long now = clockMs.getAsLong();
    for (Window w : pending) {
      w.inFlight = false; // the previous report failed: its windows may grow again
    }
    for (UnitCounters c : live.values()) {
      drainInto(c, now);
    }
    for (Iterator<UnitCounters> it = retired.iterator(); it.hasNext(); ) {
      UnitCounters c = it.next();
      drainInto(c, now);
      if (--c.drainsLeft <= 0) {
        it.remove();
      }
    }
    while (pending.size() > MAX_PENDING) {
      stats.loadDropped(pending.removeFirst().calls());
    }
    List<KeyspaceLoad> out = new ArrayList<>(pending.size());
    for (Window w : pending) {
      out.add(w.toProto(sampleEvery));
      w.inFlight = true;
    }
    sent = List.copyOf(pending);
    return out;
  }

  private void drainInto(UnitCounters c, long now) {
    Window w = c.drain(now);
    if (w == null) {
      return;
    }
    if (w.endMs - w.startMs > MAX_WINDOW_MS) {
      // Not drained for over 10 minutes (no report was due): a server refuses such a window.
      stats.loadDropped(w.calls());
      return;
    }
    for (Iterator<Window> it = pending.descendingIterator(); it.hasNext(); ) {
      Window p = it.next();
      if (p.counters == c) {
        if (!p.inFlight && w.endMs - p.startMs <= MAX_WINDOW_MS) {
          p.merge(w);
          return;
        }
        break;
      }
    }
    pending.addLast(w);
  }

  /** A server accepted the load of the last {@link #takeReport}: it is never sent again. */
  public synchronized void accepted() {
    long bands = 0;
    long calls = 0;
    for (Window w : sent) {
      if (pending.remove(w)) {
        bands += w.lastBands;
        calls += w.calls();
      }
    }
    sent = List.of();
    stats.loadReported(bands, calls);
  }

  /**
   * Drops the load of the last {@link #takeReport} (a server refused it as invalid): counted as dropped.
   *
   * @return the calls dropped
   */
  public synchronized long dropPending() {
    long calls = 0;
    for (Window w : sent) {
      if (pending.remove(w)) {
        calls += w.calls();
      }
    }
    sent = List.of();
    stats.loadDropped(calls);
    return calls;
  }

  /** Windows waiting for a server to accept them (for tests). */
  synchronized int pendingWindows() {
    return pending.size();
  }

  /** The counters a keyspace is bound to now (for tests), or null. */
  UnitCounters counters(String keyspace) {
    return live.get(keyspace);
  }
}
