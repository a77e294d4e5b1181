package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.LoadSample;
import io.shardmap.proto.v1.ReportAppliedRequest;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Every rule of the load part of ReportApplied, each refused with the field named. */
@Tag("unit")
class LoadReportsTest {
  static final long NOW = 1_800_000_000_000L;
  static final DirectorySnapshot SNAP = LoadHistoryTest.snapshot(0, 100, 200);

  static LoadBand band(long start, long end, long reads) {
    return LoadBand.newBuilder().setStart(ByteString.copyFrom(Keys.encodeInt64(start)))
        .setEnd(ByteString.copyFrom(Keys.encodeInt64(end))).setUnits(1).setReads(reads).setWrites(1)
        .setBusyMicros(1000).build();
  }

  static KeyspaceLoad good() {
    return KeyspaceLoad.newBuilder().setKeyspace("orders").setStartUnixMs(NOW - 2000).setEndUnixMs(NOW)
        .addBands(band(0, 100, 5)).addBands(band(100, 200, 6))
        .addSamples(LoadSample.newBuilder().setKey(ByteString.copyFrom(Keys.encodeInt64(7)))).setSampleEvery(10)
        .build();
  }

  static ReportAppliedRequest req(KeyspaceLoad... loads) {
    return ReportAppliedRequest.newBuilder().setClientId("c1").setAppliedRevision(10).addAllLoad(List.of(loads))
        .build();
  }

  static void refused(String field, String rule, UnaryOperator<KeyspaceLoad.Builder> change) {
    refused(req(good(), change.apply(good().toBuilder()).build()), field, rule);
  }

  static void refused(ReportAppliedRequest r, String field, String rule) {
    ShardmapException e = assertThrows(ShardmapException.class, () -> LoadReports.checkAll(r, SNAP, NOW));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith(field + ": "), () -> "'" + e.getMessage() + "' names " + field);
    assertTrue(e.getMessage().contains(rule), () -> "'" + e.getMessage() + "' says " + rule);
  }

  @Test
  void aGoodReportPasses() {
    assertEquals(2, LoadReports.checkAll(req(good(), good()), SNAP, NOW).size());
    // Empty bands and no samples are fine; so is a window ending a little in the future.
    LoadReports.checkAll(req(KeyspaceLoad.newBuilder().setKeyspace("orders").setStartUnixMs(NOW)
        .setEndUnixMs(NOW + 59_000).build()), SNAP, NOW);
  }

  @Test
  void everyRuleIsRefusedNamingTheField() {
    KeyspaceLoad[] many = new KeyspaceLoad[65];
    java.util.Arrays.fill(many, good());
    refused(req(many), "load", "at most 64 keyspaces");
    refused("load[1].keyspace", "no keyspace 'nope'", b -> b.setKeyspace("nope"));
    refused("load[1].end_unix_ms", "after start_unix_ms", b -> b.setEndUnixMs(NOW - 2000));
    refused("load[1].end_unix_ms", "at most 600000 ms long", b -> b.setStartUnixMs(NOW - 600_001));
    refused("load[1].end_unix_ms", "after the server's clock", b -> b.setStartUnixMs(NOW + 1000)
        .setEndUnixMs(NOW + 61_000));
    refused("load[1].bands", "at most 4096 bands", b -> {
      b.clearBands();
      for (int i = 0; i < 4097; i++) {
        b.addBands(band(i, i + 1, 0));
      }
      return b;
    });
    refused("load[1].bands[1].start", "position order", b -> b.setBands(1, band(50, 150, 1)));
    refused("load[1].bands[1].start", "position order", b -> b.setBands(0, band(100, 200, 1))
        .setBands(1, band(0, 100, 1)));
    refused("load[1].bands[0].end", "after start", b -> b.setBands(0, band(100, 100, 1)));
    refused("load[1].bands[1].units", ">= 1", b -> b.setBands(1, band(100, 200, 1).toBuilder().setUnits(0).build()));
    refused("load[1].bands[1].reads", ">= 0", b -> b.setBands(1, band(100, 200, -1)));
    refused("load[1].bands[1].writes", ">= 0", b -> b.setBands(1, band(100, 200, 1).toBuilder().setWrites(-1)
        .build()));
    refused("load[1].bands[1].busy_micros", ">= 0", b -> b.setBands(1, band(100, 200, 1).toBuilder()
        .setBusyMicros(-5).build()));
    refused("load[1].bands[1].errors", ">= 0", b -> b.setBands(1, band(100, 200, 1).toBuilder().setErrors(-5)
        .build()));
    // 2 s window: 20,000,000 calls allowed; 200,000 s of busy time (10^5 calls in flight).
    refused("load[1].bands[1].reads", "calls per second", b -> b.setBands(1, band(100, 200, 20_000_000)));
    refused("load[1].bands", "calls per second", b -> b.setBands(0, band(0, 100, 10_000_000))
        .setBands(1, band(100, 200, 10_000_000)));
    refused("load[1].bands[1].busy_micros", "calls in flight", b -> b.setBands(1, band(100, 200, 1).toBuilder()
        .setBusyMicros(200_000_000_001L).build()));
    refused("load[1].bands[1].reads", "calls per second", b -> b.setBands(1, band(100, 200, Long.MAX_VALUE)));
    refused("load[1].samples", "at most 1024 samples", b -> {
      for (int i = 0; i < 1024; i++) {
        b.addSamples(LoadSample.newBuilder().setKey(ByteString.copyFromUtf8("k")));
      }
      return b;
    });
    refused("load[1].samples[1].key", "at most 1024 bytes", b -> b.addSamples(LoadSample.newBuilder()
        .setKey(ByteString.copyFrom(new byte[1025]))));
    refused("load[1].sample_every", ">= 1 when samples are sent", b -> b.setSampleEvery(0));
    refused("load[1].sample_every", "never negative", b -> b.clearSamples().setSampleEvery(-1));
    refused("load[1].keyspace", "", b -> b.setKeyspace("bad name!"));
  }
}
