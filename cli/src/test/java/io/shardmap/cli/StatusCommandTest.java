package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.cli.CtlRun.Result;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.LoadSample;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code shardmapctl status} and {@code hot} end to end: real etcd, a directory server on a loopback socket
 * and three PostgreSQL shards. A range keyspace of three ranges holds known rows (1,000 on s1, 100 on s2, 200
 * on s3, counted exactly by RefreshSizes); a client reports known load with ReportApplied: s2's range is hot
 * (6,000 calls against 100 and 50), and its sampled keys put half of its calls below 1080 and half from 1080
 * on (its middle key is 1500). Status must show the shards with those rows, the hot range first, and a
 * suggestion to split it at 1080 and move the upper part to s3, the shard with the least load and data.
 */
@Tag("integration")
@Timeout(180)
class StatusCommandTest {
  static final PostgresFixture PG = PostgresFixture.shared(3);

  @RegisterExtension
  static final ShardmapFleetExtension FLEET = ShardmapFleet.builder().sockets().shards(3).postgres(PG)
      .table("id bigint PRIMARY KEY, v text")
      .serverOptions(o -> o.resolver(PG.shard(0).user(), PG.shard(0).password()).sizeInterval(Duration.ofDays(7)))
      .extension();

  static String server;

  static Key k(long v) {
    return Key.newBuilder().setIntKey(v).build();
  }

  static ByteString pos(long v) {
    return ByteString.copyFrom(Keys.encodeInt64(v));
  }

  @BeforeAll
  static void start() throws Exception {
    ShardmapFleet f = FLEET.get();
    server = f.targets().get(0);
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(f.table()).setKeyColumn("id")))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setEnd(k(1000))).setShard("s1"))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(k(1000)).setEnd(k(2000)))
            .setShard("s2"))
        .addRanges(RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(k(2000))).setShard("s3"))
        .build());
    insert(f.shard(0), f.table(), 0, 1000);
    insert(f.shard(1), f.table(), 1000, 100);
    insert(f.shard(2), f.table(), 2000, 200);
    FleetServiceGrpc.newBlockingStub(f.channel(0)).withDeadlineAfter(60, TimeUnit.SECONDS)
        .refreshSizes(RefreshSizesRequest.newBuilder().setKeyspace("users").setExact(true).build());

    long now = System.currentTimeMillis();
    KeyspaceLoad.Builder load = KeyspaceLoad.newBuilder().setKeyspace("users").setStartUnixMs(now - 10_000)
        .setEndUnixMs(now).setSampleEvery(1)
        .addBands(LoadBand.newBuilder().setEnd(pos(1000)).setUnits(1).setReads(100).setBusyMicros(100_000))
        .addBands(LoadBand.newBuilder().setStart(pos(1000)).setEnd(pos(2000)).setUnits(1).setReads(5000)
            .setWrites(1000).setBusyMicros(6_000_000))
        .addBands(LoadBand.newBuilder().setStart(pos(2000)).setUnits(1).setReads(50).setBusyMicros(50_000));
    // 60 calls sampled on keys 1000..1059, 60 on 1080..1099 (three each): the load halves at 1080.
    for (long key = 1000; key < 1060; key++) {
      load.addSamples(LoadSample.newBuilder().setKey(pos(key)));
    }
    for (long key = 1080; key < 1100; key++) {
      for (int i = 0; i < 3; i++) {
        load.addSamples(LoadSample.newBuilder().setKey(pos(key)).setWrite(i == 0));
      }
    }
    f.read().withDeadlineAfter(30, TimeUnit.SECONDS).reportApplied(ReportAppliedRequest.newBuilder()
        .setClientId("status-test").setAppliedRevision(0).addLoad(load).build());
  }

  static void insert(PgInstance shard, String table, long from, int n) throws Exception {
    shard.exec("INSERT INTO " + table + " SELECT g, 'v' || g FROM generate_series(" + from + ", " + (from + n - 1)
        + ") g");
  }

  static Result ctl(String... args) {
    return CtlRun.as(server, "postgres", null, args);
  }

  @Test
  void statusShowsTheShardsTheHotRangeFirstAndASplitAtItsLoadMedian() {
    Result r = ctl("status", "--keyspace", "users");
    assertEquals(0, r.code(), r.err());
    String out = r.out();
    List<String> lines = out.lines().toList();
    assertTrue(lines.get(0).startsWith("keyspace users (range, 3 units, "), out);
    assertTrue(lines.get(0).contains("sizes counted"), out);
    // The shard table: units, exact rows, and each shard's share of the 6,150 calls.
    assertTrue(row(lines, "s1").matches("s1 +1 +1,000 +.*"), out);
    assertTrue(row(lines, "s2").matches("s2 +1 +100 +.* 97\\.6%"), out);
    assertTrue(row(lines, "s3").matches("s3 +1 +200 +.* 0\\.8%"), out);
    // The hottest unit first, with its share of the calls and the suggested split.
    int hot = lines.indexOf("hottest units:");
    assertTrue(hot > 0, out);
    assertTrue(lines.get(hot + 2).matches("\\[1000, 2000\\) +s2 +.* 97\\.6% +100 +split at 1080, move the upper "
        + "part to s3"), out);
    assertTrue(lines.get(hot + 3).startsWith("[-inf, 1000)"), out);
    assertTrue(out.contains("1. split users [1000, 2000) at 1080 (where its load halves) and move [1080, 2000) from "
        + "s2 to s3: shardmapctl range split users 1080 && migrator move users 1080..2000 --to s3"), out);
    assertTrue(out.contains("no running moves"), out);
  }

  @Test
  void hotListsOnlyTheHottestUnits() {
    Result r = ctl("hot", "--top", "2");
    assertEquals(0, r.code(), r.err());
    List<String> lines = r.out().lines().toList();
    assertEquals("users:", lines.get(0), r.out());
    assertTrue(lines.get(2).startsWith("[1000, 2000)"), r.out());
    assertTrue(lines.get(3).startsWith("[-inf, 1000)"), r.out());
    assertEquals(4, lines.size(), r.out());
  }

  @Test
  void jsonIsTheResponseAndBadRequestsAreRefused() {
    Result json = ctl("status", "--keyspace", "users", "-o", "json");
    assertEquals(0, json.code(), json.err());
    assertTrue(json.out().replaceAll("\\s+", "").contains("\"splitAt\":{\"intKey\":\"1080\"}"), json.out());

    Result flag = ctl("hot", "--keyspace", "users", "--json");
    assertEquals(0, flag.code(), flag.err());
    assertTrue(flag.out().startsWith("{") && flag.out().contains("\"hottest\""), flag.out());

    Result unknown = ctl("status", "--keyspace", "nope");
    assertEquals(3, unknown.code(), unknown.err());
    assertTrue(unknown.err().contains("NOT_FOUND") && unknown.err().contains("'nope'"), unknown.err());

    Result window = ctl("status", "--window", "10s");
    assertEquals(2, window.code(), window.err());
    assertTrue(window.err().contains("--window"), window.err());
  }

  private static String row(List<String> lines, String shard) {
    return lines.stream().filter(l -> l.startsWith(shard + " ")).findFirst().orElse("(no row for " + shard + ")");
  }
}
