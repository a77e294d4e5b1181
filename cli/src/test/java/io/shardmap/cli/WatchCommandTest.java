package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.util.JsonFormat;
import io.grpc.Status;
import io.shardmap.cli.FakeDirectory.Result;
import io.shardmap.proto.v1.*;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Tag("unit")
@Timeout(30)
class WatchCommandTest {
  private final FakeDirectory fake = new FakeDirectory();

  @AfterEach
  void close() {
    fake.close();
  }

  private static Key intKey(long v) {
    return Key.newBuilder().setIntKey(v).build();
  }

  private static final WatchResponse SPLIT = WatchResponse.newBuilder().setRevision(41)
      .addChanges(MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder()
          .setRange(KeyRange.newBuilder().setEnd(intKey(100))).setShard("s1").setEpoch(2)))
      .addChanges(MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder()
          .setRange(KeyRange.newBuilder().setStart(intKey(100)).setEnd(intKey(200))).setShard("s1").setEpoch(2)))
      .build();
  private static final WatchResponse PROGRESS = WatchResponse.newBuilder().setRevision(42).setProgress(true).build();
  private static final WatchResponse SHARD = WatchResponse.newBuilder().setRevision(43)
      .addChanges(MapChange.newBuilder().setShard(Shard.newBuilder().setName("s4")
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5436).setDatabase("s4"))
          .setState(ShardState.SHARD_STATE_ACTIVE)))
      .build();

  @Test
  void watchesFromTheCurrentRevisionAndStopsAfterCountChanges() throws Exception {
    fake.answer("ListKeyspaces", ListKeyspacesResponse.newBuilder().setRevision(40).build());
    fake.watch(List.of(SPLIT, PROGRESS, SHARD, SHARD), null);

    Result r = fake.run("watch", "users", "orders", "--count", "3");

    assertEquals(0, r.code(), r::toString);
    assertEquals(WatchRequest.newBuilder().addKeyspaces("users").addKeyspaces("orders").setAfterRevision(40).build(),
        fake.only(WatchRequest.class));
    assertEquals(""
        + "41  users  range ..100 -> s1 (epoch 2)\n"
        + "41  users  range 100..200 -> s1 (epoch 2)\n"
        + "43  -  shard s4 = 127.0.0.1:5436/s4, active\n", r.out());
    assertTrue(fake.watchCancelled.await(5, TimeUnit.SECONDS), "the stream was cancelled on the server");
  }

  @Test
  void countCutsAResponseShortAndJsonIsOneLinePerResponse() throws Exception {
    fake.watch(List.of(PROGRESS, SPLIT), null);

    Result r = fake.run("watch", "--after", "7", "--count", "1", "--output", "json");

    assertEquals(0, r.code(), r::toString);
    assertEquals(7, fake.only(WatchRequest.class).getAfterRevision());
    assertEquals(List.of(), fake.all(ListKeyspacesRequest.class), "--after needs no current revision");
    String[] lines = r.out().split("\n");
    assertEquals(1, lines.length, r::toString);
    WatchResponse.Builder parsed = WatchResponse.newBuilder();
    JsonFormat.parser().merge(lines[0], parsed);
    assertEquals(SPLIT.toBuilder().clearChanges().addChanges(SPLIT.getChanges(0)).build(), parsed.build());
  }

  @Test
  void resyncRequiredExitsFourWithAHint() {
    fake.watch(List.of(WatchResponse.newBuilder().setRevision(90).setResyncRequired(true).build()), null);

    Result r = fake.run("watch", "--after", "3");

    assertEquals(4, r.code(), r::toString);
    assertTrue(r.err().startsWith("error: FAILED_PRECONDITION: resync required: the server no longer has the "
        + "changes after revision 3"), r::toString);
  }

  @Test
  void aRevisionFromTheFutureExitsTwo() {
    fake.watch(List.of(), Status.OUT_OF_RANGE.withDescription("after_revision: 1000 is past etcd's current "
        + "revision 34 (this server's snapshot is at revision 34); ..."));

    Result r = fake.run("watch", "--after", "1000");

    assertEquals(2, r.code(), r::toString);
    assertTrue(r.err().startsWith("error: OUT_OF_RANGE: after_revision: 1000 is past etcd's current revision 34"),
        r::toString);
  }

  @Test
  void aBrokenStreamIsUnavailableAfterWhatArrived() {
    fake.watch(List.of(SHARD), Status.UNAVAILABLE.withDescription("server shutting down"));

    Result r = fake.run("watch", "--after", "3");

    assertEquals(5, r.code(), r::toString);
    assertEquals("43  -  shard s4 = 127.0.0.1:5436/s4, active\n", r.out());
    assertTrue(r.err().startsWith("error: UNAVAILABLE: server shutting down"), r::toString);
  }

  @Test
  void describesEveryKindOfChange() {
    assertEquals("keyspace users (int64 keys, range), tables users(id)",
        WatchCommand.describe(MapChange.newBuilder().setSpec(CommandsTest.USERS).build()));
    assertEquals("shard s5 = h:1/d, down, region eu, replicas h2:2/d,[::1]:3/d", WatchCommand.describe(MapChange
        .newBuilder().setShard(Shard.newBuilder().setName("s5").setState(ShardState.SHARD_STATE_DOWN).setRegion("eu")
            .setPrimary(Endpoint.newBuilder().setHost("h").setPort(1).setDatabase("d"))
            .addReplicas(Endpoint.newBuilder().setHost("h2").setPort(2).setDatabase("d"))
            .addReplicas(Endpoint.newBuilder().setHost("::1").setPort(3).setDatabase("d"))).build()));
    assertEquals("keyspace dropped", WatchCommand.describe(MapChange.newBuilder().setKeyspaceDropped(true).build()));
    assertEquals("shard s2 deregistered", WatchCommand.describe(MapChange.newBuilder().setShardRemoved("s2").build()));
    assertEquals("range starting at 100 removed",
        WatchCommand.describe(MapChange.newBuilder().setRangeRemovedStart(intKey(100)).build()));
    assertEquals("buckets 0=s1 1=s2", WatchCommand.describe(MapChange.newBuilder().setHash(HashLayout.newBuilder()
        .addBuckets(BucketAssignment.newBuilder().setShard("s1")).addBuckets(BucketAssignment.newBuilder()
            .setShard("s2"))).build()));
    assertEquals("ring s1 x2", WatchCommand.describe(MapChange.newBuilder().setRing(RingLayout.newBuilder()
        .addShards(RingShard.newBuilder().setShard("s1").addVnodeEpochs(1).addVnodeEpochs(1))).build()));
    assertEquals("fallback -> s1 (epoch 3)", WatchCommand.describe(MapChange.newBuilder()
        .setDirectory(DirectoryLayout.newBuilder().setFallbackShard("s1").setFallbackEpoch(3)).build()));
    assertEquals("fallback removed", WatchCommand.describe(MapChange.newBuilder()
        .setDirectory(DirectoryLayout.getDefaultInstance()).build()));
    assertEquals("entry 'acme' -> s2 (epoch 5)", WatchCommand.describe(MapChange.newBuilder()
        .setEntry(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setStringKey("acme")).setShard("s2")
            .setEpoch(5)).build()));
    assertEquals("entry 0x00 removed", WatchCommand.describe(MapChange.newBuilder()
        .setEntryRemoved(Key.newBuilder().setBytesKey(com.google.protobuf.ByteString.copyFrom(new byte[] {0})))
        .build()));
    assertEquals("regions eu=s1 us=s2, default eu", WatchCommand.describe(MapChange.newBuilder()
        .setGeo(GeoLayout.newBuilder().setDefaultRegion("eu")
            .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1"))
            .addRegions(RegionAssignment.newBuilder().setRegion("us").setShard("s2"))).build()));
  }

  @Test
  void countMustBePositive() {
    Result r = fake.run("watch", "--count", "0");
    assertEquals(2, r.code(), r::toString);
    assertEquals(List.of(), fake.requests());
  }
}
