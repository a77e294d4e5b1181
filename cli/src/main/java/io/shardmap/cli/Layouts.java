package io.shardmap.cli;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.support.cli.Table;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.LongSummaryStatistics;
import java.util.Map;

/** The text tables of each strategy's layout, shared by {@code keyspace get} and the commands changing it. */
final class Layouts {
  private Layouts() {}

  /** How {@code keyspace get} shows one strategy's map: what its header adds, and its layout's table. */
  interface View {
    /** Adds the strategy's own header lines (a ring's vnodes, a directory's fallback, ...) to {@code head}. */
    default void header(GetMapResponse map, Map<String, String> head) {}

    void print(PrintWriter out, GetMapResponse map);
  }

  /** The one place that maps a strategy to how it is printed; a strategy missing here prints as JSON only. */
  private static final Map<Strategy, View> VIEWS = new EnumMap<>(Strategy.class);

  static {
    VIEWS.put(Strategy.STRATEGY_RANGE, (out, map) -> ranges(out, map.getRangesList()));
    VIEWS.put(Strategy.STRATEGY_HASH, (out, map) -> buckets(out, map.getHash()));
    VIEWS.put(Strategy.STRATEGY_CONSISTENT_HASH, new View() {
      @Override
      public void header(GetMapResponse map, Map<String, String> head) {
        head.put("vnodes", Integer.toString(map.getSpec().getDefaultVnodes()));
      }

      @Override
      public void print(PrintWriter out, GetMapResponse map) {
        ring(out, map.getRing());
      }
    });
    VIEWS.put(Strategy.STRATEGY_DIRECTORY, new View() {
      @Override
      public void header(GetMapResponse map, Map<String, String> head) {
        head.put("fallback", map.getDirectory().getFallbackShard().isEmpty() ? "-"
            : map.getDirectory().getFallbackShard() + " (epoch " + map.getDirectory().getFallbackEpoch() + ")");
      }

      @Override
      public void print(PrintWriter out, GetMapResponse map) {
        entries(out, map.getEntriesList());
      }
    });
    VIEWS.put(Strategy.STRATEGY_GEOGRAPHIC, new View() {
      @Override
      public void header(GetMapResponse map, Map<String, String> head) {
        head.put("default", Text.orDash(map.getGeo().getDefaultRegion()));
      }

      @Override
      public void print(PrintWriter out, GetMapResponse map) {
        regions(out, map.getGeo());
      }
    });
  }

  /** How the strategy of {@code map} is printed, or null for one this CLI does not know (a newer server). */
  static View of(Strategy s) {
    return VIEWS.get(s);
  }

  static void ranges(PrintWriter out, List<RangeAssignment> ranges) {
    List<List<String>> rows = new ArrayList<>();
    for (RangeAssignment r : ranges) {
      rows.add(List.of(Text.range(r.getRange()), r.getShard(), Long.toString(r.getEpoch())));
    }
    Table.print(out, List.of("RANGE", "SHARD", "EPOCH"), rows);
  }

  static void buckets(PrintWriter out, HashLayout hash) {
    List<List<String>> rows = new ArrayList<>();
    for (int i = 0; i < hash.getBucketsCount(); i++) {
      BucketAssignment b = hash.getBuckets(i);
      rows.add(List.of(Integer.toString(i), b.getShard(), Long.toString(b.getEpoch())));
    }
    Table.print(out, List.of("BUCKET", "SHARD", "EPOCH"), rows);
  }

  static void ring(PrintWriter out, RingLayout ring) {
    List<List<String>> rows = new ArrayList<>();
    for (RingShard s : ring.getShardsList()) {
      LongSummaryStatistics e = s.getVnodeEpochsList().stream().mapToLong(Long::longValue).summaryStatistics();
      String epochs = e.getCount() == 0 ? "-"
          : e.getMin() == e.getMax() ? Long.toString(e.getMin()) : e.getMin() + "-" + e.getMax();
      rows.add(List.of(s.getShard(), Integer.toString(s.getVnodeEpochsCount()), epochs));
    }
    Table.print(out, List.of("SHARD", "VNODES", "EPOCHS"), rows);
  }

  static void entries(PrintWriter out, List<DirectoryEntry> entries) {
    List<List<String>> rows = new ArrayList<>();
    for (DirectoryEntry e : entries) {
      rows.add(List.of(Text.key(e.getKey()), e.getShard(), Long.toString(e.getEpoch())));
    }
    Table.print(out, List.of("KEY", "SHARD", "EPOCH"), rows);
  }

  static void regions(PrintWriter out, GeoLayout geo) {
    List<List<String>> rows = new ArrayList<>();
    for (RegionAssignment r : geo.getRegionsList()) {
      rows.add(List.of(r.getRegion(), r.getShard(), Long.toString(r.getEpoch()),
          r.getRegion().equals(geo.getDefaultRegion()) ? "yes" : ""));
    }
    Table.print(out, List.of("REGION", "SHARD", "EPOCH", "DEFAULT"), rows);
  }
}
