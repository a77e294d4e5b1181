package io.shardmap.core;

import io.shardmap.proto.v1.KeyType;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * An immutable partition of the key space into ranges, each with its {@link Route}. Lookups are a binary
 * search over a primitive array (long[] for INT64 keys) and allocate nothing. Changes produce a new
 * table sharing the unchanged routes.
 *
 * <p>Invariant, checked by {@link #build} and {@link #apply}: the ranges are sorted, the first is
 * unbounded below, the last unbounded above, and each ends exactly where the next starts (no gap, no
 * overlap).
 */
public final class RangeTable implements RoutingTable {
  private final KeyType type;
  private final byte[][] starts;
  private final long[] intStarts;
  private final Route[] routes;

  private RangeTable(KeyType type, byte[][] starts, long[] intStarts, Route[] routes) {
    this.type = type;
    this.starts = starts;
    this.intStarts = intStarts;
    this.routes = routes;
  }

  private static long intStart(byte[] start) {
    return start.length == 0 ? Long.MIN_VALUE : Keys.decodeInt64(start);
  }

  /** Builds a table from routes in any order; fails with INVALID_ARGUMENT naming {@code field}. */
  public static RangeTable build(KeyType type, List<Route> routes, String field) {
    Route[] sorted = routes.toArray(new Route[0]);
    Arrays.sort(sorted, Comparator.comparing(r -> r.range().startRef(), Keys::compare));
    byte[][] starts = new byte[sorted.length][];
    for (int i = 0; i < sorted.length; i++) {
      starts[i] = sorted[i].range().startRef();
    }
    checkCoverage(type, sorted, 0, sorted.length, field);
    long[] ints = null;
    if (type == KeyType.KEY_TYPE_INT64) {
      ints = new long[starts.length];
      for (int i = 0; i < starts.length; i++) {
        ints[i] = intStart(starts[i]);
      }
    }
    return new RangeTable(type, starts, ints, sorted);
  }

  public KeyType keyType() {
    return type;
  }

  public int size() {
    return routes.length;
  }

  public Route get(int index) {
    return routes[index];
  }

  /** All routes in key order (a copy). */
  public List<Route> routes() {
    return List.of(routes);
  }

  public Route route(long key) {
    return routes[unitOf(key)];
  }

  /** Index of the range containing the key (the range is unit i: see {@link RoutingTable}). */
  @Override
  public int unitOf(long key) {
    long[] s = intStarts;
    if (s == null) {
      throw ShardmapException.invalid("key", "the keyspace has KEY_TYPE_BYTES keys; an integer key was given");
    }
    int lo = 0;
    int hi = s.length - 1;
    // The last start <= key; starts[0] is Long.MIN_VALUE so there always is one.
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (s[mid] <= key) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  public Route route(byte[] canonicalKey) {
    return routes[indexOf(canonicalKey)];
  }

  /** Index of the range containing the key. */
  public int indexOf(byte[] canonicalKey) {
    int lo = 0;
    int hi = starts.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (Keys.compare(starts[mid], canonicalKey) <= 0) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  @Override
  public int unitCount() {
    return routes.length;
  }

  @Override
  public int unitOf(byte[] canonicalKey) {
    return indexOf(canonicalKey);
  }

  @Override
  public Route unitRoute(int unit) {
    return routes[unit];
  }

  /** The range's start as a canonical key: the unit space of a range keyspace is its key space. */
  @Override
  public byte[] unitStart(int unit) {
    return starts[unit].clone();
  }

  @Override
  public byte[] unitEnd(int unit) {
    return unit + 1 < starts.length ? starts[unit + 1].clone() : UnitSpace.END;
  }

  @Override
  public String describeUnit(int unit) {
    return "[" + (unit == 0 ? "-inf" : Keys.describe(type, starts[unit])) + ", "
        + (unit + 1 < starts.length ? Keys.describe(type, starts[unit + 1]) : "+inf") + ")";
  }

  /** Index of the range that starts exactly at {@code start}, or -1. */
  public int indexOfStart(byte[] start) {
    int i = indexOf(start);
    return Arrays.equals(starts[i], start) ? i : -1;
  }

  /**
   * A new table with the ranges starting at {@code removedStarts} deleted and {@code puts} inserted or
   * replaced (matched by start). A change costs a binary search per changed range plus one bulk copy of
   * the untouched runs; only the neighbourhood of the changes is re-checked, so a split of a
   * 100,000-range table stays well under a millisecond.
   *
   * @throws ShardmapException INTERNAL if the result would break the coverage invariant
   */
  public RangeTable apply(List<byte[]> removedStarts, List<Route> puts) {
    // One change per start, in key order; a put wins over a removal of the same start (etcd cannot do
    // both to one key in one transaction, so this only matters for hand-made batches).
    java.util.TreeMap<byte[], Route> changes = new java.util.TreeMap<>(Keys::compare);
    for (byte[] start : removedStarts) {
      changes.put(start, null);
    }
    for (Route r : puts) {
      changes.put(r.range().startRef(), r);
    }
    int k = changes.size();
    int[] at = new int[k];
    boolean[] exists = new boolean[k];
    int size = routes.length;
    int j = 0;
    for (Map.Entry<byte[], Route> c : changes.entrySet()) {
      int floor = indexOf(c.getKey());
      exists[j] = Arrays.equals(starts[floor], c.getKey());
      at[j] = exists[j] ? floor : floor + 1;
      if (exists[j] && c.getValue() == null) {
        size--;
      } else if (!exists[j] && c.getValue() != null) {
        size++;
      }
      j++;
    }
    if (size == 0) {
      throw new ShardmapException(ErrorCode.INTERNAL, "range map would become empty");
    }
    Route[] out = new Route[size];
    byte[][] outStarts = new byte[size][];
    long[] outInts = intStarts == null ? null : new long[size];
    int[] touched = new int[k];
    int src = 0;
    int dst = 0;
    j = 0;
    for (Map.Entry<byte[], Route> c : changes.entrySet()) {
      int run = at[j] - src;
      copy(src, out, outStarts, outInts, dst, run);
      src += run;
      dst += run;
      if (exists[j]) {
        src++;
      }
      touched[j] = dst;
      Route put = c.getValue();
      if (put != null) {
        out[dst] = put;
        outStarts[dst] = c.getKey();
        if (outInts != null) {
          outInts[dst] = intStart(c.getKey());
        }
        dst++;
      }
      j++;
    }
    copy(src, out, outStarts, outInts, dst, routes.length - src);
    try {
      for (int t : touched) {
        checkCoverage(type, out, Math.max(0, t - 1), Math.min(size, t + 2), "ranges");
      }
    } catch (ShardmapException e) {
      // Changes come from etcd, which only our guarded writers change: a broken partition is our bug
      // or a hand edit, never the caller's input.
      throw new ShardmapException(ErrorCode.INTERNAL, e.getMessage());
    }
    return new RangeTable(type, outStarts, outInts, out);
  }

  private void copy(int from, Route[] out, byte[][] outStarts, long[] outInts, int to, int n) {
    System.arraycopy(routes, from, out, to, n);
    System.arraycopy(starts, from, outStarts, to, n);
    if (outInts != null) {
      System.arraycopy(intStarts, from, outInts, to, n);
    }
  }

  /** Checks that routes[from, to) are contiguous and that the ends of the whole table are unbounded. */
  private static void checkCoverage(KeyType type, Route[] r, int from, int to, String field) {
    if (r.length == 0) {
      throw ShardmapException.invalid(field, "at least one range is required");
    }
    if (!r[0].range().unboundedBelow()) {
      throw ShardmapException.invalid(field, "the ranges must cover the whole key space: nothing covers "
          + "keys below " + Keys.describe(type, r[0].range().startRef())
          + " (the first range must have no start)");
    }
    if (!r[r.length - 1].range().unboundedAbove()) {
      throw ShardmapException.invalid(field, "the ranges must cover the whole key space: nothing covers "
          + "keys from " + Keys.describe(type, r[r.length - 1].range().endRef())
          + " (the last range must have no end)");
    }
    for (int i = Math.max(1, from); i < to; i++) {
      byte[] prevEnd = r[i - 1].range().endRef();
      byte[] start = r[i].range().startRef();
      if (prevEnd.length == 0 || Keys.compare(prevEnd, start) > 0) {
        throw ShardmapException.invalid(field, "ranges overlap: " + r[i - 1].range().format(type)
            + " and " + r[i].range().format(type));
      }
      if (Keys.compare(prevEnd, start) < 0) {
        throw ShardmapException.invalid(field, "ranges leave a gap: nothing covers "
            + KeyRange.wrap(prevEnd, start).format(type));
      }
    }
  }

  @Override
  public void addOwners(java.util.Set<String> out) {
    for (Route r : routes()) {
      out.add(r.shard());
    }
  }
}
