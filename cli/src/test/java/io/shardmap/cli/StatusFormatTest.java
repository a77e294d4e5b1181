package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.protobuf.ByteString;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.MigrationPhase;
import io.shardmap.proto.v1.MoveStatus;
import io.shardmap.proto.v1.ShardStatus;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.proto.v1.UnitStatus;
import io.shardmap.cli.FakeDirectory.Result;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.function.Consumer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The text of {@code status} and {@code hot} for a fixed GetFleetStatusResponse, and their usage errors. */
@Tag("unit")
class StatusFormatTest {
  static final long NOW = 1_800_000_000_000L;

  static ByteString pos(long v) {
    return ByteString.copyFrom(Keys.encodeInt64(v));
  }

  static GetFleetStatusResponse response() {
    KeyspaceStatus users = KeyspaceStatus.newBuilder().setKeyspace("users").setStrategy(Strategy.STRATEGY_RANGE)
        .setUnits(3).setReadsPerSecond(1500).setWritesPerSecond(250.5).setSizesUnixMs(NOW - 120_000)
        .setLoadSkew(1.5).setSizeSkew(0.25)
        .addShards(ShardStatus.newBuilder().setShard("s1").setUnits(2).setRows(1_000_000).setBytes(3L << 30)
            .setReadsPerSecond(1400).setWritesPerSecond(200).setBusy(1.25))
        .addShards(ShardStatus.newBuilder().setShard("s2").setUnits(1).setRows(-1).setBytes(-1)
            .setReadsPerSecond(100).setWritesPerSecond(50.5).setBusy(0.05))
        .addHottest(UnitStatus.newBuilder().setStart(pos(0)).setEnd(pos(100)).setLabel("[0, 100)").setShard("s1")
            .setReadsPerSecond(1200).setWritesPerSecond(150).setRows(5000).setLoadShare(0.77))
        .addHottest(UnitStatus.newBuilder().setStart(pos(100)).setEnd(pos(200)).setLabel("[100, 200)")
            .setShard("s2").setReadsPerSecond(100).setWritesPerSecond(50.5).setRows(70).setLoadShare(0.086))
        .addSuggestions(Suggestion.newBuilder().setKind(Suggestion.Kind.KIND_SPLIT_AND_MOVE).setStart(pos(0))
            .setEnd(pos(100)).setLabel("[0, 100)").setSource("s1").setTarget("s2")
            .setSplitAt(Key.newBuilder().setIntKey(42)).setLoadSkewAfter(0.2).setSizeSkewAfter(0.1)
            .setText("split users [0, 100) at 42 ...: shardmapctl range split users 42 && migrator move users "
                + "42..100 --to s2"))
        .build();
    KeyspaceStatus dir = KeyspaceStatus.newBuilder().setKeyspace("docs").setStrategy(Strategy.STRATEGY_DIRECTORY)
        .setUnits(1024).build();
    MoveStatus move = MoveStatus.newBuilder().setId("m1").setKeyspace("users").setUnit("200..").setSource("s2")
        .setTarget("s3").setPhase(MigrationPhase.MIGRATION_PHASE_COPYING).setRowsCopied(250_000)
        .setRowsEstimate(1_000_000).setRowsPerSecond(50_000).setEtaMs(95_000).build();
    MoveStatus unknown = MoveStatus.newBuilder().setId("m2").setKeyspace("users").setUnit("bucket 3 of 8")
        .setSource("s1").setTarget("s2").setPhase(MigrationPhase.MIGRATION_PHASE_PREPARING).setEtaMs(-1).build();
    return GetFleetStatusResponse.newBuilder().setGeneratedUnixMs(NOW).addKeyspaces(users).addKeyspaces(dir)
        .addMoves(move).addMoves(unknown).build();
  }

  static String text(Consumer<PrintWriter> print) {
    StringWriter s = new StringWriter();
    PrintWriter w = new PrintWriter(s);
    print.accept(w);
    w.flush();
    return s.toString();
  }

  @Test
  void statusPrintsShardsSkewsHottestSuggestionsAndMoves() {
    String expected = """
        keyspace users (range, 3 units, 1,500 reads/s, 251 writes/s; sizes estimated 2m00s ago)
        SHARD  UNITS  ROWS       BYTES    READS/S  WRITES/S  BUSY  SHARE
        s1     2      1,000,000  3.0 GiB  1,400    200       1.25  91.4%
        s2     1      ?          ?        100      50.5      0.05  8.6%
        load skew 1.50, size skew 0.25 (largest shard over the mean, minus 1; 0 is even)
        hottest units:
        UNIT        SHARD  READS/S  WRITES/S  SHARE  ROWS   SUGGESTED
        [0, 100)    s1     1,200    150       77.0%  5,000  split at 42, move the upper part to s2
        [100, 200)  s2     100      50.5      8.6%   70     -
        suggestions (each with the skew expected once it and those above it are done):
          1. split users [0, 100) at 42 ...: shardmapctl range split users 42 && migrator move users 42..100 --to s2
             load skew 0.20, size skew 0.10 after

        keyspace docs (directory, 1024 units, 0.0 reads/s, 0.0 writes/s; sizes never taken)
        load skew 0.00, size skew 0.00 (largest shard over the mean, minus 1; 0 is even)

        running moves:
        ID  KEYSPACE  UNIT           MOVE    PHASE      PROGRESS                      RATE           ETA
        m1  users     200..          s2->s3  copying    25% (250,000/1,000,000 rows)  50,000 rows/s  1m35s
        m2  users     bucket 3 of 8  s1->s2  preparing  0 rows                        -              -
        """;
    assertEquals(expected, text(w -> StatusCommands.print(w, response())));
  }

  @Test
  void hotPrintsOnlyKeyspacesWithCalls() {
    String expected = """
        users:
        UNIT        SHARD  READS/S  WRITES/S  SHARE  ROWS   SUGGESTED
        [0, 100)    s1     1,200    150       77.0%  5,000  split at 42, move the upper part to s2
        [100, 200)  s2     100      50.5      8.6%   70     -
        """;
    assertEquals(expected, text(w -> StatusCommands.printHot(w, response())));
    assertEquals("no unit had calls in the window\n",
        text(w -> StatusCommands.printHot(w, GetFleetStatusResponse.getDefaultInstance())));
    assertEquals("no running moves\n", text(w -> StatusCommands.print(w, GetFleetStatusResponse.getDefaultInstance())));
  }

  @Test
  void outOfRangeOptionsAreUsageErrorsWithoutAnRpc() {
    try (FakeDirectory fake = new FakeDirectory()) {
      Result top = fake.run("status", "--top", "0");
      assertEquals(2, top.code(), top.err());
      Result window = fake.run("status", "--window", "30d");
      assertEquals(2, window.code(), window.err());
      Result hot = fake.run("hot", "--top", "1001");
      assertEquals(2, hot.code(), hot.err());
      assertEquals(0, fake.requests().size());
    }
  }
}
