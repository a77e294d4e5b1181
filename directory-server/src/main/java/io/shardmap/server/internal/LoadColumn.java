package io.shardmap.server.internal;

import io.shardmap.core.RoutingTable;
import io.shardmap.core.UnitSpace;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.PriorityQueue;

/**
 * One column of the load history: the calls of one span of time, as bands that partition a keyspace's whole
 * unit space in position order. Immutable; every operation returns a new column and keeps the input's sums
 * exactly (counts are split with integer remainders carried, never rounded away).
 *
 * <p>Band {@code i} is {@code [starts[i], starts[i + 1])}, the last one ends at the end of the space, the
 * first starts at its start. Counts are four longs per band: reads, writes, busy microseconds, errors.
 * Bands with no calls are gaps; adjacent gaps are always one band, so a column costs memory only where
 * there was load.
 */
final class LoadColumn {
  static final int READS = 0;
  static final int WRITES = 1;
  static final int BUSY = 2;
  static final int ERRORS = 3;
  static final int FIELDS = 4;

  /** The column with no calls: one gap band over the whole space. */
  static final LoadColumn EMPTY = new LoadColumn(new byte[][] {UnitSpace.START}, new long[FIELDS]);

  /**
   * How many units of the current map a part of the space holds: the weight by which a band's counts are
   * split over finer boundaries (uniform over the band's units; a unit cut by the boundary counts on both
   * sides). Always at least 1.
   */
  interface UnitWeights {
    long units(byte[] start, byte[] end);

    /** Every piece weighs the same (no map known). */
    UnitWeights UNIFORM = (s, e) -> 1;

    static UnitWeights of(RoutingTable table) {
      if (table == null) {
        return UNIFORM;
      }
      return (s, e) -> {
        int first = UnitSpace.unitAt(table, s);
        int last = lastUnit(table, e);
        return Math.max(1, last - first + 1);
      };
    }

    /** The last unit of {@code table} with positions before the end {@code end}. */
    static int lastUnit(RoutingTable table, byte[] end) {
      if (end.length == 0) {
        return table.unitCount() - 1;
      }
      int u = UnitSpace.unitAt(table, end);
      // unitAt gives the unit starting at or before end: when it starts exactly there it is past the end.
      return u > 0 && Arrays.equals(table.unitStart(u), end) ? u - 1 : u;
    }
  }

  final byte[][] starts;
  final long[] counts;

  LoadColumn(byte[][] starts, long[] counts) {
    this.starts = starts;
    this.counts = counts;
  }

  int bands() {
    return starts.length;
  }

  byte[] start(int i) {
    return starts[i];
  }

  byte[] end(int i) {
    return i + 1 < starts.length ? starts[i + 1] : UnitSpace.END;
  }

  long get(int band, int field) {
    return counts[band * FIELDS + field];
  }

  /** Reads plus writes of band {@code i}: what "least load" and "hot" mean here. */
  long calls(int i) {
    return counts[i * FIELDS + READS] + counts[i * FIELDS + WRITES];
  }

  long total(int field) {
    long t = 0;
    for (int i = 0; i < starts.length; i++) {
      t += counts[i * FIELDS + field];
    }
    return t;
  }

  boolean isEmpty() {
    for (long c : counts) {
      if (c != 0) {
        return false;
      }
    }
    return true;
  }

  /** Heap held by this column, estimated (compressed references, 16-byte array headers). */
  long estimatedBytes() {
    long b = 16 + 16 + 16 + 4L * starts.length + 8L * counts.length;
    for (byte[] s : starts) {
      b += 16 + ((s.length + 7) & ~7);
    }
    return b;
  }

  /**
   * A column from bands given as parallel lists (in position order, not overlapping, possibly with gaps):
   * the gaps become bands with no calls.
   */
  static LoadColumn of(List<byte[]> bandStarts, List<byte[]> bandEnds, long[] bandCounts) {
    if (bandStarts.isEmpty()) {
      return EMPTY;
    }
    List<byte[]> s = new ArrayList<>();
    List<long[]> c = new ArrayList<>();
    byte[] cursor = UnitSpace.START;
    for (int i = 0; i < bandStarts.size(); i++) {
      byte[] bs = bandStarts.get(i);
      if (i == 0 ? bs.length > 0 : UnitSpace.compareStarts(cursor, bs) < 0) {
        s.add(cursor);
        c.add(new long[FIELDS]);
      }
      s.add(bs);
      c.add(Arrays.copyOfRange(bandCounts, i * FIELDS, i * FIELDS + FIELDS));
      cursor = bandEnds.get(i);
    }
    if (cursor.length > 0) {
      s.add(cursor);
      c.add(new long[FIELDS]);
    }
    long[] counts = new long[c.size() * FIELDS];
    for (int i = 0; i < c.size(); i++) {
      System.arraycopy(c.get(i), 0, counts, i * FIELDS, FIELDS);
    }
    return new LoadColumn(s.toArray(new byte[0][]), counts).withoutAdjacentGaps();
  }

  /** The sum of two columns over the union of their boundaries. */
  static LoadColumn sum(LoadColumn a, LoadColumn b, UnitWeights weights) {
    if (a.isEmpty()) {
      return b;
    }
    if (b.isEmpty()) {
      return a;
    }
    byte[][] union = union(a.starts, b.starts);
    long[] ca = a.spreadOnto(union, weights);
    long[] cb = b.spreadOnto(union, weights);
    for (int i = 0; i < ca.length; i++) {
      ca[i] += cb[i];
    }
    return new LoadColumn(union, ca).withoutAdjacentGaps();
  }

  /** The sorted union of two partitions' starts (both begin with the start of the space). */
  static byte[][] union(byte[][] a, byte[][] b) {
    byte[][] out = new byte[a.length + b.length][];
    int i = 0;
    int j = 0;
    int n = 0;
    while (i < a.length || j < b.length) {
      byte[] next;
      if (j >= b.length) {
        next = a[i++];
      } else if (i >= a.length) {
        next = b[j++];
      } else {
        int c = Arrays.compareUnsigned(a[i], b[j]);
        if (c <= 0) {
          next = a[i++];
          if (c == 0) {
            j++;
          }
        } else {
          next = b[j++];
        }
      }
      out[n++] = next;
    }
    return n == out.length ? out : Arrays.copyOf(out, n);
  }

  /**
   * This column's counts laid onto a finer partition {@code finer} (which holds every start of this
   * column): each band's counts split over the pieces inside it by their units, exactly.
   */
  long[] spreadOnto(byte[][] finer, UnitWeights weights) {
    long[] out = new long[finer.length * FIELDS];
    int k = 0;
    for (int i = 0; i < starts.length; i++) {
      // Pieces k..m-1 of the finer partition lie in band i.
      while (k < finer.length && Arrays.compareUnsigned(finer[k], starts[i]) < 0) {
        k++;
      }
      int m = k + 1;
      byte[] end = end(i);
      while (m < finer.length && UnitSpace.before(finer[m], end)) {
        m++;
      }
      if (m - k == 1 || isZero(i)) {
        System.arraycopy(counts, i * FIELDS, out, k * FIELDS, FIELDS);
      } else {
        long[] w = new long[m - k];
        long total = 0;
        for (int p = k; p < m; p++) {
          w[p - k] = weights.units(finer[p], p + 1 < finer.length ? finer[p + 1] : UnitSpace.END);
          total += w[p - k];
        }
        for (int f = 0; f < FIELDS; f++) {
          split(counts[i * FIELDS + f], w, total, out, k, f);
        }
      }
      k = m;
    }
    return out;
  }

  private boolean isZero(int i) {
    for (int f = 0; f < FIELDS; f++) {
      if (counts[i * FIELDS + f] != 0) {
        return false;
      }
    }
    return true;
  }

  /** Splits {@code v} by weights {@code w} (sum {@code total}) into out[(k + p) * FIELDS + f], exactly. */
  static void split(long v, long[] w, long total, long[] out, int k, int f) {
    long cum = 0;
    long given = 0;
    for (int p = 0; p < w.length; p++) {
      cum += w[p];
      long upTo = p == w.length - 1 ? v : mulDiv(v, cum, total);
      out[(k + p) * FIELDS + f] = upTo - given;
      given = upTo;
    }
  }

  /** floor(v * a / b) for v, a, b >= 0, a <= b, without overflow. */
  static long mulDiv(long v, long a, long b) {
    if (Math.multiplyHigh(v, a) == 0 && v * a >= 0) {
      return v * a / b;
    }
    return BigInteger.valueOf(v).multiply(BigInteger.valueOf(a)).divide(BigInteger.valueOf(b)).longValueExact();
  }

  /** The same column with runs of adjacent gap bands made one band (loses nothing: they hold no calls). */
  LoadColumn withoutAdjacentGaps() {
    int n = starts.length;
    boolean any = false;
    for (int i = 1; i < n && !any; i++) {
      any = isZero(i) && isZero(i - 1);
    }
    if (!any) {
      return this;
    }
    List<byte[]> s = new ArrayList<>(n);
    long[] c = new long[n * FIELDS];
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (i > 0 && isZero(i) && isZero(i - 1)) {
        continue;
      }
      s.add(starts[i]);
      System.arraycopy(counts, i * FIELDS, c, m * FIELDS, FIELDS);
      m++;
    }
    return new LoadColumn(s.toArray(new byte[0][]), Arrays.copyOf(c, m * FIELDS));
  }

  /**
   * At most {@code maxBands} bands: adjacent bands with the least calls together are merged first (ties:
   * the least busy time), so hot bands stay fine-grained and memory stays bounded whatever the number of
   * units. Sums are kept exactly.
   */
  LoadColumn capped(int maxBands) {
    int n = starts.length;
    if (n <= maxBands) {
      return this;
    }
    long[] c = counts.clone();
    int[] next = new int[n];
    int[] prev = new int[n];
    for (int i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    boolean[] dead = new boolean[n];
    // Entries {calls, busy, left}: the pair (left, next[left]); stale entries are skipped on poll.
    PriorityQueue<long[]> pq = new PriorityQueue<>((x, y) -> x[0] != y[0] ? Long.compare(x[0], y[0])
        : x[1] != y[1] ? Long.compare(x[1], y[1]) : Long.compare(x[2], y[2]));
    for (int i = 0; i + 1 < n; i++) {
      pq.add(pair(c, i, i + 1));
    }
    int alive = n;
    while (alive > maxBands) {
      long[] e = pq.poll();
      int left = (int) e[2];
      if (dead[left] || next[left] < 0) {
        continue;
      }
      int right = next[left];
      long[] now = pair(c, left, right);
      if (now[0] != e[0] || now[1] != e[1]) {
        continue;
      }
      for (int f = 0; f < FIELDS; f++) {
        c[left * FIELDS + f] += c[right * FIELDS + f];
      }
      dead[right] = true;
      next[left] = next[right];
      if (next[right] >= 0) {
        prev[next[right]] = left;
        pq.add(pair(c, left, next[left]));
      }
      if (prev[left] >= 0) {
        pq.add(pair(c, prev[left], left));
      }
      alive--;
    }
    byte[][] s = new byte[alive][];
    long[] out = new long[alive * FIELDS];
    int m = 0;
    for (int i = 0; i >= 0; i = next[i]) {
      s[m] = starts[i];
      System.arraycopy(c, i * FIELDS, out, m * FIELDS, FIELDS);
      m++;
    }
    return new LoadColumn(s, out);
  }

  private static long[] pair(long[] c, int l, int r) {
    long calls = c[l * FIELDS + READS] + c[l * FIELDS + WRITES] + c[r * FIELDS + READS] + c[r * FIELDS + WRITES];
    long busy = c[l * FIELDS + BUSY] + c[r * FIELDS + BUSY];
    return new long[] {calls, busy, l};
  }

  /** The same counts with every start replaced by an equal array from {@code intern} (shared memory). */
  LoadColumn interned(java.util.function.UnaryOperator<byte[]> intern) {
    byte[][] s = new byte[starts.length][];
    for (int i = 0; i < s.length; i++) {
      s[i] = intern.apply(starts[i]);
    }
    return new LoadColumn(s, counts);
  }
}
