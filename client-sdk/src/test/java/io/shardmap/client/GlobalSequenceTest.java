package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.ListSequencesRequest;
import io.shardmap.proto.v1.Sequence;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * SDK dense sequences on real etcd and two directory servers: the sequence's default block size is used, the
 * next block is prefetched, two clients never share a number, and bad input (unknown sequence, bad name, bad
 * block size) is refused naming it with nothing stored. The multi-process run with a kill is
 * {@link GlobalSequenceProcessesTest}.
 */
@Tag("integration")
class GlobalSequenceTest {
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(0).servers(2).extension();

  ShardmapClient a;
  ShardmapClient b;

  @BeforeEach
  void start() throws Exception {
    a = client("seq-a");
    b = client("seq-b");
  }

  ShardmapClient client(String id) throws InterruptedException {
    ShardmapFleet f = fleet.get();
    return ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users").clientId(id).backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
  }

  @AfterEach
  void stop() {
    for (ShardmapClient c : new ShardmapClient[] {a, b}) {
      if (c != null) {
        c.close();
      }
    }
  }

  ShardMapIdServiceGrpc.ShardMapIdServiceBlockingStub ids() {
    return ShardMapIdServiceGrpc.newBlockingStub(fleet.get().channel(0)).withDeadlineAfter(20, TimeUnit.SECONDS);
  }

  void create(CreateSequenceRequest.Builder req) {
    fleet.get().admin().withDeadlineAfter(20, TimeUnit.SECONDS).createSequence(req.build());
  }

  Sequence stored(String name) {
    return ids().getSequence(GetSequenceRequest.newBuilder().setName(name).build()).getSequence();
  }

  @Test
  void twoClientsShareASequenceWithoutDuplicates() {
    create(CreateSequenceRequest.newBuilder().setName("orders").setStart(1).setDefaultBlockSize(25));
    Set<Long> seen = new HashSet<>();
    try (GlobalSequence x = a.sequence("orders"); GlobalSequence y = b.sequence("orders", 10)) {
      long lastX = 0;
      long lastY = 0;
      for (int i = 0; i < 1_000; i++) {
        long vx = x.next();
        long vy = y.next();
        assertTrue(vx > lastX && vy > lastY, "increasing per client");
        lastX = vx;
        lastY = vy;
        assertTrue(seen.add(vx), "duplicate " + vx);
        assertTrue(seen.add(vy), "duplicate " + vy);
      }
      Sequence s = stored("orders");
      // x used 1,000 numbers in blocks of 25, y in blocks of 10 (at least 40 + 100 blocks, plus prefetches).
      assertTrue(s.getReservations() >= 140, "reservations " + s.getReservations());
      assertTrue(s.getNextValue() - 1 - 2_000 < 2 * 25 + 2 * 10, "unused: " + (s.getNextValue() - 1 - 2_000));
    }
  }

  @Test
  void badInputIsRefusedAndNothingIsStored() {
    ShardmapException e = assertThrows(ShardmapException.class, () -> a.sequence("nosuch"));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("sequence 'nosuch' does not exist"), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> a.sequence("Bad Name"));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().startsWith("name"), e.getMessage());
    create(CreateSequenceRequest.newBuilder().setName("orders"));
    for (int bad : new int[] {-1, 1_000_001}) {
      e = assertThrows(ShardmapException.class, () -> a.sequence("orders", bad));
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      assertTrue(e.getMessage().startsWith("blockSize"), e.getMessage());
    }
    assertEquals(1, ids().listSequences(ListSequencesRequest.getDefaultInstance()).getSequencesCount());
    Sequence s = stored("orders");
    assertEquals(0, s.getReservations());
    assertEquals(1, s.getNextValue());
  }

  @Test
  void closedSequenceRefuses() {
    create(CreateSequenceRequest.newBuilder().setName("orders"));
    GlobalSequence x = a.sequence("orders");
    assertEquals(1, x.next());
    x.close();
    ShardmapException e = assertThrows(ShardmapException.class, x::next);
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
  }
}
