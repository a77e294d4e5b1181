package io.shardmap.client.internal.load;

import com.google.protobuf.ByteString;
import io.shardmap.core.Keys;
import io.shardmap.core.RangeTable;
import io.shardmap.core.RoutingTable;
import io.shardmap.proto.v1.LoadSample;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The load counters of one keyspace bound to one version of its routing table: the units of that table, in
 * at most {@code maxSlots} slots (slot = unit × slots / units, so adjacent units share a slot and each slot
 * holds a contiguous run of units), each slot with reads, writes, busy nanoseconds and errors.
 *
 * <p>Counters are striped: each thread adds to the stripe its id hashes to, with an atomic add (threads that
 * share a stripe stay exact, only slower); a drain subtracts exactly what it read, so no count is lost or
 * counted twice whatever runs alongside. No lock and no allocation on {@link #add}.
 */
final class UnitCounters {
  static final int READS = 0;
  static final int WRITES = 1;
  static final int BUSY = 2;
  static final int ERRORS = 3;
  static final int FIELDS = 4;
  /** Longs (128 bytes) before and after each stripe's cells: stripes never share a cache line. */
  private static final int PAD = 16;
  /** Sampled keys kept per drain window (a reservoir beyond). */
  static final int SAMPLE_CAPACITY = 1024;
  /** Longer sampled keys are not kept (LoadSample.key holds at most 1024 bytes). */
  static final int MAX_SAMPLE_KEY = 1024;
  private static final VarHandle CELLS = MethodHandles.arrayElementVarHandle(long[].class);
  private static final VarHandle FLAGS = MethodHandles.arrayElementVarHandle(byte[].class);

  final String keyspace;
  /**
   * The table units are found and placed by. Replaced only by a table with the same units (a directory's
   * entries changed, a range moved without a split), so that an old table is not kept alive for its units.
   */
  volatile RoutingTable table;
  final long layoutRevision;
  final boolean intKeys;
  final int units;
  final int slots;
  /** slot = (unit × mul) >>> 32: 2^32 when every unit has its own slot, floor(slots × 2^32 / units) otherwise. */
  private final long mul;
  /**
   * For an INT64 range table with more units than slots: the first key of each slot. The slot of a key is
   * then a binary search over at most {@code maxSlots} keys (a few cache lines) instead of the table's own
   * search over every range (which, on a large map, misses the cache at each step).
   */
  private final long[] slotKeys;
  private final long[][] stripes;
  private final int stripeMask;
  private final AtomicReference<Samples> samples = new AtomicReference<>(new Samples());
  /** Where the next drain's window starts (wall clock ms); guarded by the meter. */
  long windowStartMs;
  /** Once retired: drains left before it is forgotten (a call that read it just before may still add). */
  int drainsLeft = -1;

  UnitCounters(String keyspace, RoutingTable table, long layoutRevision, boolean intKeys, int maxSlots,
               int maxStripes, long nowMs) {
    this.keyspace = keyspace;
    this.table = table;
    this.layoutRevision = layoutRevision;
    this.intKeys = intKeys;
    this.units = table.unitCount();
    this.slots = Math.min(units, maxSlots);
    this.mul = units <= maxSlots ? 1L << 32 : ((long) slots << 32) / units;
    if (table instanceof RangeTable && intKeys && units > slots) {
      slotKeys = new long[slots];
      for (int i = 0; i < slots; i++) {
        byte[] start = table.unitStart(firstUnit(i));
        slotKeys[i] = start.length == 0 ? Long.MIN_VALUE : Keys.decodeInt64(start);
      }
    } else {
      slotKeys = null;
    }
    // Stripes times slots stays within 2^17 cells' worth of slots: at most 4 MiB however large loadSlots is.
    int n = Math.max(1, Math.min(maxStripes, Integer.highestOneBit(Math.max(1, (1 << 17) / slots))));
    this.stripes = new long[n][];
    for (int i = 0; i < n; i++) {
      stripes[i] = new long[PAD + slots * FIELDS + PAD];
    }
    this.stripeMask = n - 1;
    this.windowStartMs = nowMs;
  }

  int slotOf(int unit) {
    return (int) ((unit * mul) >>> 32);
  }

  /** The first unit of slot {@code s}; {@link #units} for {@code s == slots}. Slots are contiguous runs. */
  int firstUnit(int s) {
    int lo = 0;
    int hi = units;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (slotOf(mid) >= s) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }

  int stripeCount() {
    return stripes.length;
  }

  /** The slot of an INT64 key (only for counters with {@link #intKeys}). */
  int slotOfKey(long key) {
    long[] k = slotKeys;
    if (k == null) {
      return slotOf(table.unitOf(key));
    }
    int lo = 0;
    int hi = k.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (k[mid] <= key) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** Counts one call on {@code unit}. */
  void add(int unit, boolean write, long nanos, boolean failed) {
    addToSlot(slotOf(unit), write, nanos, failed);
  }

  /** Counts one call on a slot: the hot path (two or three uncontended atomic adds, one cache line). */
  void addToSlot(int slot, boolean write, long nanos, boolean failed) {
    long id = Thread.currentThread().getId();
    long[] cells = stripes[(int) ((id * 0x9E3779B97F4A7C15L) >>> 40) & stripeMask];
    int i = PAD + slot * FIELDS;
    // The casts give the calls the exact type (long[], int, long)long: as statements they would be typed
    // void, and a VarHandle adapts such a call, boxing the result where the call is not inlined.
    long unused = (long) CELLS.getAndAdd(cells, i + (write ? WRITES : READS), 1L);
    unused = (long) CELLS.getAndAdd(cells, i + BUSY, nanos);
    if (failed) {
      unused = (long) CELLS.getAndAdd(cells, i + ERRORS, 1L);
    }
  }

  void sample(long intKey, byte[] key, boolean write) {
    samples.get().add(intKey, key, write);
  }

  /**
   * Takes what was counted since the previous drain as a window ending at {@code nowMs}, or null when
   * nothing was; the next window starts where this one ends.
   */
  Window drain(long nowMs) {
    long start = windowStartMs;
    long end = Math.max(nowMs, start + 1);
    windowStartMs = end;
    long[] sums = new long[slots * FIELDS];
    boolean any = false;
    for (long[] cells : stripes) {
      for (int i = 0; i < sums.length; i++) {
        long v = (long) CELLS.getOpaque(cells, PAD + i);
        if (v != 0) {
          long unused = (long) CELLS.getAndAdd(cells, PAD + i, -v);
          sums[i] += v;
          any = true;
        }
      }
    }
    Samples s = samples.get();
    List<LoadSample> taken = List.of();
    long seen = 0;
    if (s.seen.get() > 0) {
      s = samples.getAndSet(new Samples());
      seen = s.seen.get();
      taken = s.toProto(intKeys);
    }
    if (!any && taken.isEmpty()) {
      return null;
    }
    return new Window(this, start, end, any ? sums : new long[slots * FIELDS], taken, seen);
  }

  /** Keys of sampled calls, a reservoir of {@link #SAMPLE_CAPACITY}: uniform over the window's samples. */
  static final class Samples {
    private final long[] ints = new long[SAMPLE_CAPACITY];
    private final byte[][] keys = new byte[SAMPLE_CAPACITY][];
    /** 0: not written yet; 1: a read; 2: a write (written last, with release). */
    private final byte[] flags = new byte[SAMPLE_CAPACITY];
    final AtomicLong seen = new AtomicLong();

    void add(long intKey, byte[] key, boolean write) {
      if (key != null && key.length > MAX_SAMPLE_KEY) {
        return;
      }
      long n = seen.getAndIncrement();
      int i;
      if (n < SAMPLE_CAPACITY) {
        i = (int) n;
      } else {
        long j = ThreadLocalRandom.current().nextLong(n + 1);
        if (j >= SAMPLE_CAPACITY) {
          return;
        }
        i = (int) j;
      }
      ints[i] = intKey;
      keys[i] = key;
      FLAGS.setRelease(flags, i, (byte) (write ? 2 : 1));
    }

    /**
     * The samples written so far (a slot taken but not yet written is left out; a reservoir slot rewritten
     * during the drain may pair one sample's key with another's write flag, which shifts nothing that
     * matters for a split point).
     */
    List<LoadSample> toProto(boolean intKeys) {
      int n = (int) Math.min(seen.get(), SAMPLE_CAPACITY);
      List<LoadSample> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        byte f = (byte) FLAGS.getAcquire(flags, i);
        if (f == 0) {
          continue;
        }
        byte[] k = intKeys ? Keys.encodeInt64(ints[i]) : keys[i];
        if (k == null) {
          continue;
        }
        out.add(LoadSample.newBuilder().setKey(ByteString.copyFrom(k)).setWrite(f == 2).build());
      }
      return out;
    }
  }
}
