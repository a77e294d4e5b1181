package io.shardmap.server.internal;

import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.UnitSize;
import com.google.protobuf.ByteString;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The arithmetic of size estimates (docs/sizes.md), apart from any database: from what was read of each
 * sharded table on each shard, the rows and bytes per unit and per shard of one keyspace.
 *
 * <p>What one table on one shard gives ({@link TableCount}): its total rows (PostgreSQL's estimate, or an exact
 * count), its total bytes (table, indexes and TOAST), and how a set of its keys fell over the units: keys in
 * a unit the shard owns in the current map, per unit, and keys the shard does not own (leftovers of a move not
 * cleaned up yet). For an estimate the keys are a uniform sample; for an exact count they are every row. A
 * unit's rows are the table's total scaled by the unit's share of those keys; its bytes are its rows times the
 * table's bytes per row on that shard. Rows the shard does not own count in the shard's totals
 * ({@link ShardSize}), which are every row and byte of the tables there, and in no unit: a shard's leftovers
 * are its total minus the sum of its units.
 */
final class SizeEstimator {
  private SizeEstimator() {}

  /**
   * One table on one shard. {@code owned[u]}: keys read that lie in unit {@code u} and that this shard owns;
   * {@code notOwned}: keys read that it does not own; {@code read}: all keys read ({@code sum(owned) +
   * notOwned}). {@code rows}: the table's rows there; {@code bytes}: its total relation size.
   */
  record TableCount(String table, long rows, long bytes, long read, long[] owned, long notOwned) {
    TableCount {
      if (rows < 0 || bytes < 0 || read < 0 || notOwned < 0) {
        throw new IllegalArgumentException("counts must not be negative");
      }
    }

    /** A table absent from the shard (it owns nothing of it, or was never given it): no rows. */
    static TableCount absent(String table, int units) {
      return new TableCount(table, 0, 0, 0, new long[units], 0);
    }
  }

  /**
   * The rows of each unit: {@code rows * owned[u] / read}, rounded. Units with no key read get 0; so do all
   * units when no key was read at all (an empty sample of a non-empty table: its rows are then in the shard's
   * total only).
   */
  static long[] unitRows(TableCount t) {
    long[] out = new long[t.owned().length];
    if (t.read() == 0) {
      return out;
    }
    double scale = (double) t.rows() / t.read();
    for (int u = 0; u < out.length; u++) {
      out[u] = Math.round(t.owned()[u] * scale);
    }
    return out;
  }

  /** The table's bytes per row on its shard (0 for an empty table). */
  static double bytesPerRow(TableCount t) {
    return t.rows() == 0 ? 0 : (double) t.bytes() / t.rows();
  }

  /** The rows of the table on its shard that lie in units it does not own, scaled like {@link #unitRows}. */
  static long notOwnedRows(TableCount t) {
    return t.read() == 0 ? 0 : Math.round(t.notOwned() * ((double) t.rows() / t.read()));
  }

  /**
   * The keyspace's sizes. {@code counts}: per shard read, its tables; {@code missing}: owners that could not be
   * read, reported with rows and bytes -1 and without units. Units in position order; a unit owned by one shard
   * (every strategy but directory) has one entry, for its owner, also when it holds no row (unless the owner is
   * missing); a directory entry group has one per shard that owns keys of it that were read.
   */
  static KeyspaceSizes assemble(String keyspace, long takenUnixMs, boolean exact, long layoutRevision,
                                RoutingTable table, Map<String, List<TableCount>> counts, Set<String> missing) {
    int units = table.unitCount();
    Map<String, long[]> rows = new TreeMap<>();
    Map<String, double[]> bytes = new TreeMap<>();
    KeyspaceSizes.Builder out = KeyspaceSizes.newBuilder().setKeyspace(keyspace).setTakenUnixMs(takenUnixMs)
        .setExact(exact).setLayoutRevision(layoutRevision);
    Map<String, ShardSize> shards = new TreeMap<>();
    for (Map.Entry<String, List<TableCount>> e : counts.entrySet()) {
      long[] r = new long[units];
      double[] b = new double[units];
      long shardRows = 0;
      long shardBytes = 0;
      for (TableCount t : e.getValue()) {
        if (t.owned().length != units) {
          throw new IllegalArgumentException("table " + t.table() + " on " + e.getKey() + " was counted over "
              + t.owned().length + " units, the map has " + units);
        }
        long[] ur = unitRows(t);
        double perRow = bytesPerRow(t);
        for (int u = 0; u < units; u++) {
          r[u] += ur[u];
          b[u] += ur[u] * perRow;
        }
        shardRows += t.rows();
        shardBytes += t.bytes();
      }
      rows.put(e.getKey(), r);
      bytes.put(e.getKey(), b);
      shards.put(e.getKey(), ShardSize.newBuilder().setShard(e.getKey()).setRows(shardRows).setBytes(shardBytes)
          .build());
    }
    for (String m : missing) {
      shards.put(m, ShardSize.newBuilder().setShard(m).setRows(-1).setBytes(-1).build());
    }
    for (int u = 0; u < units; u++) {
      Route owner = table.unitRoute(u);
      ByteString start = ByteString.copyFrom(table.unitStart(u));
      ByteString end = ByteString.copyFrom(table.unitEnd(u));
      if (owner != null) {
        long[] r = rows.get(owner.shard());
        if (r != null) {
          out.addUnits(unit(start, end, owner.shard(), r[u], bytes.get(owner.shard())[u]));
        }
        continue;
      }
      for (Map.Entry<String, long[]> e : rows.entrySet()) {
        if (e.getValue()[u] > 0) {
          out.addUnits(unit(start, end, e.getKey(), e.getValue()[u], bytes.get(e.getKey())[u]));
        }
      }
    }
    out.addAllShards(new ArrayList<>(shards.values()));
    return out.build();
  }

  private static UnitSize unit(ByteString start, ByteString end, String shard, long rows, double bytes) {
    return UnitSize.newBuilder().setStart(start).setEnd(end).setShard(shard).setRows(rows)
        .setBytes(Math.round(bytes)).build();
  }
}
