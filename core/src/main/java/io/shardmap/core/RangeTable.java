package io.shardmap.core;

import io.shardmap.proto.v1.KeyType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * An immutable partition of the key space into ranges, each with its {@link Route}. Lookups are a binary
 * search over a primitive array (long[] for INT64 keys) and allocate nothing. Changes produce a new
 * table sharing the unchanged routes.
 *
 * <p>Invariant, checked by {@link #build} and {@link #apply}: the ranges are sorted, the first is
 * unbounded below, the last unbounded above, and each ends exactly where the next starts (no gap, no
 * overlap).
 */
public final class RangeTable {
  private final KeyType type;
  private final byte[][] starts;
  private final long[] intStarts;
  private final Route[] routes;

  private RangeTable(KeyType type, byte[][] starts, Route[] routes) {
    this.type = type;
    this.starts = starts;
    this.routes = routes;
    if (type == KeyType.KEY_TYPE_INT64) {
      intStarts = new long[starts.length];
      for (int i = 0; i < starts.length; i++) {
        intStarts[i] = starts[i].length == 0 ? Long.MIN_VALUE : Keys.decodeInt64(starts[i]);
      }
    } else {
      intStarts = null;
    }
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
    return new RangeTable(type, starts, sorted);
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
    return routes[lo];
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

  /** Index of the range that starts exactly at {@code start}, or -1. */
  public int indexOfStart(byte[] start) {
    int i = indexOf(start);
    return Arrays.equals(starts[i], start) ? i : -1;
  }

  /**
   * A new table with the ranges starting at {@code removedStarts} deleted and {@code puts} inserted or
   * replaced (matched by start). Only the neighbourhood of the changes is re-checked, so a change to a
   * 100,000-range table costs one array copy.
   *
   * @throws ShardmapException INTERNAL if the result would break the coverage invariant
   */
  public RangeTable apply(List<byte[]> removedStarts, List<Route> puts) {
    record Change(byte[] start, Route put) {}
    List<Change> changes = new ArrayList<>(removedStarts.size() + puts.size());
    for (byte[] s : removedStarts) {
      changes.add(new Change(s, null));
    }
    for (Route r : puts) {
      changes.add(new Change(r.range().startRef(), r));
    }
    // A put wins over a removal of the same start within one batch (etcd cannot do both in one txn).
    changes.sort(Comparator.comparing(Change::start, Keys::compare)
        .thenComparing(c -> c.put() == null ? 0 : 1));
    Route[] out = new Route[routes.length + puts.size()];
    byte[][] outStarts = new byte[out.length][];
    int[] touched = new int[changes.size() * 2 + 2];
    int touchedCount = 0;
    int n = 0;
    int i = 0;
    int c = 0;
    while (i < routes.length || c < changes.size()) {
      int cmp;
      if (c >= changes.size()) {
        cmp = -1;
      } else if (i >= routes.length) {
        cmp = 1;
      } else {
        cmp = Keys.compare(starts[i], changes.get(c).start());
      }
      if (cmp < 0) {
        outStarts[n] = starts[i];
        out[n++] = routes[i++];
        continue;
      }
      Change ch = changes.get(c++);
      // Collapse several changes of one start to the last one.
      while (c < changes.size() && Arrays.equals(changes.get(c).start(), ch.start())) {
        ch = changes.get(c++);
      }
      if (cmp == 0) {
        i++;
      }
      if (touchedCount < touched.length) {
        touched[touchedCount++] = n;
      }
      if (ch.put() != null) {
        outStarts[n] = ch.start();
        out[n++] = ch.put();
      }
    }
    Route[] result = Arrays.copyOf(out, n);
    byte[][] resultStarts = Arrays.copyOf(outStarts, n);
    if (n == 0) {
      throw new ShardmapException(ErrorCode.INTERNAL, "range map would become empty");
    }
    try {
      for (int t = 0; t < touchedCount; t++) {
        int at = touched[t];
        checkCoverage(type, result, Math.max(0, at - 1), Math.min(n, at + 2), "ranges");
      }
    } catch (ShardmapException e) {
      // Changes come from etcd, which only our guarded writers change: a broken partition is our bug
      // or a hand edit, never the caller's input.
      throw new ShardmapException(ErrorCode.INTERNAL, e.getMessage());
    }
    return new RangeTable(type, resultStarts, result);
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
}
