package io.shardmap.cli;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.support.cli.Table;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.LongSummaryStatistics;

/** The text tables of each strategy's layout, shared by {@code keyspace get} and the commands changing it. */
final class Layouts {
  private Layouts() {}

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
