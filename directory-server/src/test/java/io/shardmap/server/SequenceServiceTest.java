package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.CreateSequenceResponse;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.ListSequencesRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockResponse;
import io.shardmap.proto.v1.Sequence;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc.ShardMapIdServiceBlockingStub;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Dense sequences (ShardMapIdService's sequence calls) on real etcd through two directory servers: create,
 * get and list; blocks from concurrent reservers on both servers tile [start, next_value) with no overlap
 * and no hole; bad input and overflow refused naming the field, with the stored record unchanged. See
 * docs/ids.md, "Dense sequences".
 */
@Tag("integration")
class SequenceServiceTest {
  EtcdCluster etcd;
  CatalogPaths paths;
  MetaStore store;
  DirectoryServer a;
  DirectoryServer b;
  ManagedChannel channelA;
  ManagedChannel channelB;

  @BeforeEach
  void setUp() throws Exception {
    etcd = EtcdCluster.shared();
    String prefix = TestSupport.uniquePrefix();
    paths = new CatalogPaths(prefix);
    store = TestSupport.etcdClient(etcd.clientEndpoints());
    a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("seq-a").build());
    b = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("seq-b").build());
    channelA = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    channelB = NettyChannelBuilder.forAddress("127.0.0.1", b.port()).usePlaintext().build();
  }

  @AfterEach
  void tearDown() throws Exception {
    channelA.shutdownNow();
    channelB.shutdownNow();
    a.close();
    b.close();
    store.close();
  }

  private ShardMapIdServiceBlockingStub ids(ManagedChannel c) {
    return ShardMapIdServiceGrpc.newBlockingStub(c).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  private io.shardmap.proto.v1.ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin(ManagedChannel c) {
    return io.shardmap.proto.v1.ShardMapAdminServiceGrpc.newBlockingStub(c).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  private KeyValue raw(String name) throws Exception {
    List<KeyValue> kvs = store.get(paths.sequence(name)).get(5, TimeUnit.SECONDS).kvs();
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  @Test
  void createGetListAndDefaults() throws Exception {
    CreateSequenceResponse c = admin(channelA).createSequence(CreateSequenceRequest.newBuilder().setName("orders")
        .setStart(1000).setDefaultBlockSize(50).build());
    assertEquals(1000, c.getSequence().getNextValue());
    admin(channelB).createSequence(CreateSequenceRequest.newBuilder().setName("invoices").build());
    Sequence inv = ids(channelA).getSequence(GetSequenceRequest.newBuilder().setName("invoices").build()).getSequence();
    assertEquals(1, inv.getStart());
    assertEquals(1000, inv.getDefaultBlockSize());
    List<String> names = ids(channelB).listSequences(ListSequencesRequest.getDefaultInstance()).getSequencesList()
        .stream().map(Sequence::getName).toList();
    assertEquals(List.of("invoices", "orders"), names);

    ReserveSequenceBlockResponse r = ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest.newBuilder()
        .setName("orders").build());
    assertEquals(1000, r.getFirst());
    assertEquals(1049, r.getLast());
    Sequence after = ids(channelA).getSequence(GetSequenceRequest.newBuilder().setName("orders").build()).getSequence();
    assertEquals(1050, after.getNextValue());
    assertEquals(1, after.getReservations());
    assertEquals(Sequence.parseFrom(raw("orders").value()), after);
  }

  /** 8 threads on two servers reserve blocks of random sizes: together they tile [1, next_value) exactly. */
  @Test
  void concurrentReservationsTileTheSequence() throws Exception {
    admin(channelA).createSequence(CreateSequenceRequest.newBuilder().setName("tiles").build());
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<List<long[]>>> parts = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        ManagedChannel ch = t % 2 == 0 ? channelA : channelB;
        long seed = t;
        parts.add(pool.submit(() -> {
          Random rnd = new Random(seed);
          List<long[]> blocks = new ArrayList<>();
          for (int i = 0; i < 25; i++) {
            ReserveSequenceBlockResponse r = ids(ch).reserveSequenceBlock(ReserveSequenceBlockRequest.newBuilder()
                .setName("tiles").setCount(1 + rnd.nextInt(20)).setRequestId("t" + seed + ":" + i).build());
            blocks.add(new long[] {r.getFirst(), r.getLast()});
          }
          return blocks;
        }));
      }
      List<long[]> all = new ArrayList<>();
      for (Future<List<long[]>> p : parts) {
        all.addAll(p.get(60, TimeUnit.SECONDS));
      }
      all.sort((x, y) -> Long.compare(x[0], y[0]));
      long expect = 1;
      for (long[] blk : all) {
        assertEquals(expect, blk[0], "blocks must neither overlap nor leave a hole");
        assertTrue(blk[1] >= blk[0]);
        expect = blk[1] + 1;
      }
      Sequence s = Sequence.parseFrom(raw("tiles").value());
      assertEquals(expect, s.getNextValue());
      assertEquals(200, s.getReservations());
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void badInputIsRefusedNamingTheFieldAndChangesNothing() throws Exception {
    admin(channelA).createSequence(CreateSequenceRequest.newBuilder().setName("orders").setStart(5).build());
    KeyValue before = raw("orders");

    assertStatus(Status.Code.ALREADY_EXISTS, () -> admin(channelB).createSequence(CreateSequenceRequest.newBuilder()
        .setName("orders").setStart(99).build()), "orders", "already exists");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> admin(channelA).createSequence(CreateSequenceRequest.newBuilder()
        .setName("Bad Name").build()), "name", "[a-z0-9_-]");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> admin(channelA).createSequence(CreateSequenceRequest.newBuilder()
        .setName("neg").setStart(-3).build()), "start", "-3");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> admin(channelA).createSequence(CreateSequenceRequest.newBuilder()
        .setName("huge").setDefaultBlockSize(2_000_000).build()), "default_block_size", "1000000");
    assertEquals(null, raw("neg"));
    assertEquals(null, raw("huge"));

    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelA).reserveSequenceBlock(ReserveSequenceBlockRequest
        .newBuilder().setName("nosuch").setCount(10).build()), "sequence 'nosuch' does not exist");
    assertEquals(null, raw("nosuch"));
    assertStatus(Status.Code.NOT_FOUND, () -> ids(channelA).getSequence(GetSequenceRequest.newBuilder()
        .setName("nosuch").build()), "nosuch");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest
        .newBuilder().setName("orders").setCount(-1).build()), "count", "-1");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest
        .newBuilder().setName("orders").setCount(1_000_001).build()), "count", "1000000");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest
        .newBuilder().setName("orders/x").setCount(1).build()), "name");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest
        .newBuilder().setName("orders").setCount(1).setRequestId("has space").build()), "request_id");

    KeyValue after = raw("orders");
    assertEquals(before.modRevision(), after.modRevision());
    assertEquals(5, Sequence.parseFrom(after.value()).getNextValue());
  }

  /** A block that would pass 2^63-1 is refused and changes nothing; the last numbers can still be had. */
  @Test
  void overflowIsRefused() throws Exception {
    long start = Long.MAX_VALUE - 10;
    admin(channelA).createSequence(CreateSequenceRequest.newBuilder().setName("end").setStart(start).build());
    KeyValue before = raw("end");
    assertStatus(Status.Code.FAILED_PRECONDITION, () -> ids(channelA).reserveSequenceBlock(
        ReserveSequenceBlockRequest.newBuilder().setName("end").setCount(11).build()), "10 numbers left",
        "overflow int64");
    assertEquals(before.modRevision(), raw("end").modRevision());
    ReserveSequenceBlockResponse r = ids(channelB).reserveSequenceBlock(ReserveSequenceBlockRequest.newBuilder()
        .setName("end").setCount(10).build());
    assertEquals(start, r.getFirst());
    assertEquals(Long.MAX_VALUE - 1, r.getLast());
    assertStatus(Status.Code.FAILED_PRECONDITION, () -> ids(channelA).reserveSequenceBlock(
        ReserveSequenceBlockRequest.newBuilder().setName("end").setCount(1).build()), "0 numbers left");
  }
}
