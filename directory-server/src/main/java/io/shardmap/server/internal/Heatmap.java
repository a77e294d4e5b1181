package io.shardmap.server.internal;

import com.google.protobuf.ByteString;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.HeatmapRow;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Builds a heatmap: the history's columns laid over the current map's units, the units merged into at most
 * {@code maxRows} rows of adjacent units.
 *
 * <p>A band's counts are spread uniformly over the units of the current map it overlaps (with exact integer
 * remainders, so each column's row values sum to the column's totals). Rows: one per unit when there are
 * few enough; otherwise adjacent rows with the least calls together (over the whole window) are merged
 * first, ties going to the pair with fewer units, so hot units stay rows of their own and idle stretches
 * become wide rows.
 */
final class Heatmap {
  private Heatmap() {}

  static GetHeatmapResponse build(KeyspaceMap k, List<LoadHistory.TimedColumn> columns, int maxRows, long now) {
    GetHeatmapResponse.Builder b = GetHeatmapResponse.newBuilder().setKeyspace(k.name()).setGeneratedUnixMs(now);
    for (LoadHistory.TimedColumn c : columns) {
      b.addColumnStartUnixMs(c.startUnixMs()).addColumnMs(c.widthMs());
    }
    RoutingTable t;
    try {
      t = k.hasLayout() ? k.table() : null;
    } catch (RuntimeException e) {
      t = null;
    }
    if (t == null) {
      return b.build(); // no units yet (or a broken map): columns without rows
    }
    int n = t.unitCount();
    int[] rowStart = rows(t, columns, maxRows);
    int rows = rowStart.length;
    int cols = columns.size();
    long[][] reads = new long[rows][cols];
    long[][] writes = new long[rows][cols];
    long[][] busy = new long[rows][cols];
    for (int ci = 0; ci < cols; ci++) {
      LoadColumn col = columns.get(ci).column();
      for (int i = 0; i < col.bands(); i++) {
        long r = col.get(i, LoadColumn.READS);
        long w = col.get(i, LoadColumn.WRITES);
        long bz = col.get(i, LoadColumn.BUSY);
        if (r == 0 && w == 0 && bz == 0) {
          continue;
        }
        int first = UnitSpace.unitAt(t, col.start(i));
        int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, col.end(i)));
        int r0 = rowOf(rowStart, first);
        int r1 = rowOf(rowStart, last);
        long[] weights = new long[r1 - r0 + 1];
        long total = 0;
        for (int row = r0; row <= r1; row++) {
          int u0 = Math.max(first, rowStart[row]);
          int u1 = Math.min(last, row + 1 < rows ? rowStart[row + 1] - 1 : n - 1);
          weights[row - r0] = u1 - u0 + 1;
          total += weights[row - r0];
        }
        long[] out = new long[weights.length * LoadColumn.FIELDS];
        LoadColumn.split(r, weights, total, out, 0, LoadColumn.READS);
        LoadColumn.split(w, weights, total, out, 0, LoadColumn.WRITES);
        LoadColumn.split(bz, weights, total, out, 0, LoadColumn.BUSY);
        for (int row = r0; row <= r1; row++) {
          int o = (row - r0) * LoadColumn.FIELDS;
          reads[row][ci] += out[o + LoadColumn.READS];
          writes[row][ci] += out[o + LoadColumn.WRITES];
          busy[row][ci] += out[o + LoadColumn.BUSY];
        }
      }
    }
    for (int row = 0; row < rows; row++) {
      int u0 = rowStart[row];
      int u1 = row + 1 < rows ? rowStart[row + 1] - 1 : n - 1;
      HeatmapRow.Builder hr = HeatmapRow.newBuilder().setStart(ByteString.copyFrom(t.unitStart(u0)))
          .setEnd(ByteString.copyFrom(t.unitEnd(u1))).setUnits(u1 - u0 + 1)
          .setLabel(u0 == u1 ? t.describeUnit(u0) : t.describeUnit(u0) + " .. " + t.describeUnit(u1));
      String shard = owner(t, u0, u1);
      if (shard != null) {
        hr.setShard(shard);
      }
      for (int ci = 0; ci < cols; ci++) {
        hr.addReads(reads[row][ci]).addWrites(writes[row][ci]).addBusyMicros(busy[row][ci]);
      }
      b.addRows(hr);
    }
    return b.build();
  }

  /** The one shard owning every unit of [u0, u1], or null when there are several (or none). */
  private static String owner(RoutingTable t, int u0, int u1) {
    String shard = null;
    for (int u = u0; u <= u1; u++) {
      Route r = t.unitRoute(u);
      if (r == null || (shard != null && !shard.equals(r.shard()))) {
        return null;
      }
      shard = r.shard();
    }
    return shard;
  }

  private static int rowOf(int[] rowStart, int unit) {
    int lo = 0;
    int hi = rowStart.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (rowStart[mid] <= unit) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** The first unit of each row: at most {@code maxRows} rows, least-loaded neighbours merged first. */
  static int[] rows(RoutingTable t, List<LoadHistory.TimedColumn> columns, int maxRows) {
    int n = t.unitCount();
    if (n <= maxRows) {
      int[] all = new int[n];
      for (int i = 0; i < n; i++) {
        all[i] = i;
      }
      return all;
    }
    // Calls per unit over the window, bands spread uniformly (a difference array: one pass per band).
    double[] diff = new double[n + 1];
    for (LoadHistory.TimedColumn c : columns) {
      LoadColumn col = c.column();
      for (int i = 0; i < col.bands(); i++) {
        long calls = col.calls(i);
        if (calls == 0) {
          continue;
        }
        int first = UnitSpace.unitAt(t, col.start(i));
        int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, col.end(i)));
        double per = (double) calls / (last - first + 1);
        diff[first] += per;
        diff[last + 1] -= per;
      }
    }
    double[] load = new double[n];
    int[] units = new int[n];
    double run = 0;
    for (int i = 0; i < n; i++) {
      run += diff[i];
      load[i] = Math.max(0, run);
      units[i] = 1;
    }
    int[] next = new int[n];
    int[] prev = new int[n];
    boolean[] dead = new boolean[n];
    for (int i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Entries: {load of the pair, units of the pair, left}; stale ones skipped on poll.
    PriorityQueue<double[]> pq = new PriorityQueue<>((x, y) -> x[0] != y[0] ? Double.compare(x[0], y[0])
        : x[1] != y[1] ? Double.compare(x[1], y[1]) : Double.compare(x[2], y[2]));
    for (int i = 0; i + 1 < n; i++) {
      pq.add(new double[] {load[i] + load[i + 1], 2, i});
    }
    int alive = n;
    while (alive > maxRows) {
      double[] e = pq.poll();
      int l = (int) e[2];
      if (dead[l] || next[l] < 0) {
        continue;
      }
      int r = next[l];
      if (load[l] + load[r] != e[0] || units[l] + units[r] != e[1]) {
        continue;
      }
      load[l] += load[r];
      units[l] += units[r];
      dead[r] = true;
      next[l] = next[r];
      if (next[r] >= 0) {
        prev[next[r]] = l;
        pq.add(new double[] {load[l] + load[next[l]], units[l] + units[next[l]], l});
      }
      if (prev[l] >= 0) {
        pq.add(new double[] {load[prev[l]] + load[l], units[prev[l]] + units[l], prev[l]});
      }
      alive--;
    }
    int[] out = new int[alive];
    int m = 0;
    for (int i = 0; i >= 0; i = next[i]) {
      out[m++] = i;
    }
    return out;
  }
}
