package io.shardmap.core.strategy;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RangeTable;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.Route;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/** STRATEGY_RANGE: half-open key ranges, one etcd record each (no layout record). */
final class RangeStrategy implements StrategyKind {
  @Override
  public Strategy strategy() {
    return Strategy.STRATEGY_RANGE;
  }

  @Override
  public String label() {
    return "range";
  }

  @Override
  public String unitNoun() {
    return "ranges";
  }

  @Override
  public MapChange.ChangeCase layoutCase() {
    return MapChange.ChangeCase.CHANGE_NOT_SET;
  }

  @Override
  public Class<? extends RoutingTable> tableType() {
    return RangeTable.class;
  }

  @Override
  public RoutingTable withLayout(RoutingTable previous, MapChange change, long revision) {
    throw new IllegalArgumentException("a range keyspace has no layout record: " + change.getChangeCase());
  }

  @Override
  public void decodeLayout(byte[] record, MapChange.Builder into) {
    throw new IllegalArgumentException("a range keyspace has no layout record");
  }

  @Override
  public boolean copyLayout(GetMapResponse map, MapChange.Builder into) {
    return false;
  }

  @Override
  public long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries) {
    List<Route> routes = k.ranges().routes();
    long total = routes.size();
    for (long i = offset; i < Math.min(total, offset + pageSize); i++) {
      out.addRanges(KeyspaceMap.toProto(k.keyType(), routes.get((int) i)));
    }
    return total;
  }

  @Override
  public List<String> describeUnits(KeyspaceMap k) {
    List<String> out = new ArrayList<>();
    for (Route r : k.ranges().routes()) {
      out.add(r.range().format(k.keyType()) + " -> " + r.shard() + " (epoch " + r.epoch() + ")");
    }
    return out;
  }

  @Override
  public long layoutEntries(KeyspaceMap k) {
    return k.ranges().size();
  }

  @Override
  public SortedMap<String, Share> shares(KeyspaceMap k) {
    SortedMap<String, Share> out = new TreeMap<>();
    for (Route r : k.ranges().routes()) {
      double f = position(k.keyType(), r.range().end(), 1.0) - position(k.keyType(), r.range().start(), 0.0);
      out.merge(r.shard(), new Share(f, 1), (a, b) -> a.plus(f));
    }
    return out;
  }

  /** Where a bound lies in the key space, as a fraction (exact for INT64, by the first 8 bytes otherwise). */
  static double position(KeyType type, byte[] bound, double ifUnbounded) {
    if (bound.length == 0) {
      return ifUnbounded;
    }
    if (type == KeyType.KEY_TYPE_INT64) {
      long u = Keys.decodeInt64(bound) ^ Long.MIN_VALUE;
      return (u >= 0 ? (double) u : (double) u + 0x1p64) / 0x1p64;
    }
    double f = 0;
    double scale = 1.0 / 256;
    for (int i = 0; i < Math.min(8, bound.length); i++) {
      f += (bound[i] & 0xFF) * scale;
      scale /= 256;
    }
    return f;
  }

  @Override
  public String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref) {
    // Adjacent ranges of the shard merge into one condition, so a shard's predicate has one term per run.
    List<String> terms = new ArrayList<>();
    byte[] runStart = null;
    byte[] runEnd = null;
    for (Route r : k.ranges().routes()) {
      if (r.shard().equals(shard)) {
        if (runStart == null) {
          runStart = r.range().start();
        }
        runEnd = r.range().end();
      } else if (runStart != null) {
        terms.add(KeySql.range(column, ref, KeyRange.of(runStart, runEnd, "range")));
        runStart = null;
      }
    }
    if (runStart != null) {
      terms.add(KeySql.range(column, ref, KeyRange.of(runStart, runEnd, "range")));
    }
    return KeySql.or(terms);
  }
}
