package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.ReportAppliedRequest;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Load accounting end to end on real etcd, a real directory server and three PostgreSQL shards: a client that
 * makes known reads and writes on known keys sends ReportApplied requests whose bands add up to exactly
 * those calls, each on the range holding its key, each call once; a server that refuses the load as
 * INVALID_ARGUMENT gets the heartbeat again at once without it. What the client sent is read by an
 * interceptor on the client's own channel (the server's side of load is not needed for this).
 */
@Tag("integration")
class LoadReportTest {
  /** Keys of the evenly split range keyspace "users": one per shard. */
  static final long[] KEYS = {Long.MIN_VALUE + 10, 0, Long.MAX_VALUE - 10};

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3).table("id bigint, skey text, v text")
      .extension();

  final List<ReportAppliedRequest> sent = new CopyOnWriteArrayList<>();
  /** While set, a report with load is answered INVALID_ARGUMENT (as a validating server would). */
  final AtomicBoolean refuseLoad = new AtomicBoolean();
  PostgresFixture pg;
  String table;
  ShardmapClient client;
  ShardmapData data;

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    table = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addAllRangeShards(f.shardNames()).build());
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("sessions")
            .setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_HASH)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("skey")))
        .addAllHashBuckets(f.shardNames()).build());
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
        .channelFactory(t -> f.channelBuilder(t).intercept(new Capture()))
        .keyspaces("users", "sessions").reportInterval(Duration.ofMillis(200)).loadSampleEvery(1)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).build());
  }

  @AfterEach
  void stop() {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
  }

  /** Records each ReportApplied request; refuses those with load while {@link #refuseLoad} is set. */
  final class Capture implements ClientInterceptor {
    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      ClientCall<Q, R> call = next.newCall(method, options);
      if (!method.getFullMethodName().equals(ShardMapServiceGrpc.getReportAppliedMethod().getFullMethodName())) {
        return call;
      }
      AtomicBoolean refused = new AtomicBoolean();
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
            @Override
            public void onClose(Status status, Metadata trailers) {
              super.onClose(refused.get() ? Status.INVALID_ARGUMENT.withDescription("load[0].bands[0].reads: "
                  + "refused by the test") : status, trailers);
            }
          }, headers);
        }

        @Override
        public void sendMessage(Q message) {
          ReportAppliedRequest r = (ReportAppliedRequest) message;
          sent.add(r);
          if (refuseLoad.get() && r.getLoadCount() > 0) {
            refused.set(true);
            cancel("refused by the test", null);
            return;
          }
          super.sendMessage(message);
        }

        @Override
        public void halfClose() {
          if (!refused.get()) {
            super.halfClose();
          }
        }
      };
    }
  }

  /** Sums of what was sent for {@code keyspace}: reads, writes, errors. */
  long[] sentTotals(String keyspace) {
    long[] t = new long[3];
    for (ReportAppliedRequest r : sent) {
      for (KeyspaceLoad l : r.getLoadList()) {
        if (l.getKeyspace().equals(keyspace)) {
          for (LoadBand b : l.getBandsList()) {
            t[0] += b.getReads();
            t[1] += b.getWrites();
            t[2] += b.getErrors();
          }
        }
      }
    }
    return t;
  }

  /** Reads summed over every band sent for "users" that holds {@code key} (its range). */
  long readsAt(long key) {
    byte[] p = Keys.encodeInt64(key);
    long n = 0;
    for (ReportAppliedRequest r : sent) {
      for (KeyspaceLoad l : r.getLoadList()) {
        if (l.getKeyspace().equals("users")) {
          for (LoadBand b : l.getBandsList()) {
            if (Arrays.compareUnsigned(b.getStart().toByteArray(), p) <= 0 && UnitSpace.before(p, b.getEnd().toByteArray())) {
              n += b.getReads();
            }
          }
        }
      }
    }
    return n;
  }

  static int insert(Connection c, String table, long id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, 'x')")) {
      ps.setLong(1, id);
      return ps.executeUpdate();
    }
  }

  @Test
  void bandsAddUpToTheCallsMadeEachOnItsRange() throws Exception {
    // Key i gets i + 1 reads; every key gets 2 writes (one in a transaction, one autocommit); 3 calls fail.
    for (int i = 0; i < KEYS.length; i++) {
      long k = KEYS[i];
      data.inTransaction("users", k, c -> insert(c, table, k));
      data.withConnection("users", k, Idempotence.IDEMPOTENT, c -> insert(c, table, k));
      for (int r = 0; r <= i; r++) {
        data.read("users", k, c -> c.createStatement().executeQuery("SELECT 1").next());
      }
    }
    for (long k : KEYS) {
      assertThrows(SQLException.class, () -> data.read("users", k, c -> c.createStatement().executeQuery(
          "SELECT * FROM no_such_table").next()));
    }
    for (String s : List.of("a", "b", "c", "d")) {
      data.withConnection("sessions", ShardKey.of(s), Idempotence.IDEMPOTENT, c -> 1);
    }
    // A cross-shard transaction: one write per shard part, on the key that opened it.
    data.acrossShards(tx -> insert(tx.connection("users", KEYS[0]), table, KEYS[0])
        + insert(tx.connection("users", KEYS[2]), table, KEYS[2]));
    // An application's own call after a lookup, counted through the public method.
    client.recordLoad("sessions", ShardKey.of("e"), false, 1_000_000, false);
    assertThrows(ShardmapException.class, () -> client.recordLoad("sessions", ShardKey.of("e"), false, -1, false));

    Await.until(Duration.ofSeconds(20), "the load reports to add up", () -> sentTotals("users")[0] >= 9);
    int reportsThen = sent.size();
    Await.until(Duration.ofSeconds(20), "two more reports", () -> sent.size() >= reportsThen + 2);
    assertEquals(List.of(9L, 6L + 2L, 3L), Arrays.stream(sentTotals("users")).boxed().toList(),
        "reads (1 + 2 + 3 and 3 failed), writes (2 per key, 2 cross-shard parts), errors: each call sent once");
    assertEquals(1 + 1, readsAt(KEYS[0]));
    assertEquals(2 + 1, readsAt(KEYS[1]));
    assertEquals(3 + 1, readsAt(KEYS[2]));
    assertEquals(List.of(1L, 4L, 0L), Arrays.stream(sentTotals("sessions")).boxed().toList());
    for (ReportAppliedRequest r : sent) {
      for (KeyspaceLoad l : r.getLoadList()) {
        assertTrue(l.getEndUnixMs() > l.getStartUnixMs(), l.toString());
        assertTrue(Math.abs(l.getEndUnixMs() - System.currentTimeMillis()) < 600_000, "wall clock ms: " + l);
        assertEquals(1, l.getSampleEvery(), "every call sampled (loadSampleEvery 1)");
        for (var s : l.getSamplesList()) {
          if (l.getKeyspace().equals("sessions")) {
            assertTrue(List.of("a", "b", "c", "d", "e").contains(s.getKey().toString(StandardCharsets.UTF_8)));
          } else {
            assertTrue(Arrays.stream(KEYS).anyMatch(k -> k == Keys.decodeInt64(s.getKey().toByteArray())));
          }
        }
      }
    }
    assertEquals(9 + 8 + 1 + 4, client.counters().loadReportedCalls(), "reads and writes of both keyspaces");
  }

  @Test
  void refusedLoadIsDroppedAndTheHeartbeatSentAgainWithoutIt() throws Exception {
    Await.until(Duration.ofSeconds(20), "a first report", () -> client.follower().reporter().lastAccepted() > 0);
    refuseLoad.set(true);
    for (int i = 0; i < 5; i++) {
      data.read("users", KEYS[0], c -> 1);
    }
    Await.until(Duration.ofSeconds(20), "the load to be refused and dropped",
        () -> client.counters().loadDropped() == 5);
    // The refused request is followed at once by the same heartbeat without load.
    int refusedAt = -1;
    for (int i = 0; i < sent.size(); i++) {
      if (sent.get(i).getLoadCount() > 0) {
        refusedAt = i;
        break;
      }
    }
    assertTrue(refusedAt >= 0);
    Await.until(Duration.ofSeconds(5), "the resent heartbeat", () -> sent.size() > 1 + sentIndexWithLoad());
    ReportAppliedRequest refused = sent.get(refusedAt);
    ReportAppliedRequest again = sent.get(refusedAt + 1);
    assertEquals(0, again.getLoadCount());
    assertEquals(refused.getAppliedRevision(), again.getAppliedRevision());
    Await.until(Duration.ofSeconds(5), "the revision recorded",
        () -> client.follower().reporter().lastAccepted() >= refused.getAppliedRevision());
    // Calls after the server takes load again are sent; the dropped ones are not.
    refuseLoad.set(false);
    data.read("users", KEYS[1], c -> 1);
    Await.until(Duration.ofSeconds(20), "the new call's load", () -> client.counters().loadReportedCalls() == 1);
    assertEquals(1, sentTotals("users")[0] - 5, "the 5 refused reads were sent once (refused), then dropped");
  }

  @Test
  void accountingOffSendsNoLoad() throws Exception {
    ShardmapFleet f = fleet.get();
    try (ShardmapClient off = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
            .channelFactory(t -> f.channelBuilder(t).intercept(new Capture())).clientId("load-off")
            .keyspaces("users").reportInterval(Duration.ofMillis(200)).loadAccounting(false).build());
         ShardmapData offData = ShardmapData.open(off, DataOptions.builder().user(pg.shard(0).user())
             .password(pg.shard(0).password()).maxPoolSize(2).build())) {
      assertEquals(null, off.loadMeter(), "no counters allocated");
      offData.read("users", KEYS[0], c -> 1);
      off.recordLoad("users", KEYS[0], true, 1000, false);
      Await.until(Duration.ofSeconds(20), "three reports of the client without accounting",
          () -> sent.stream().filter(r -> r.getClientId().equals("load-off")).count() >= 3);
      assertTrue(sent.stream().filter(r -> r.getClientId().equals("load-off")).allMatch(r -> r.getLoadCount() == 0));
    }
  }

  private int sentIndexWithLoad() {
    for (int i = 0; i < sent.size(); i++) {
      if (sent.get(i).getLoadCount() > 0) {
        return i;
      }
    }
    return Integer.MAX_VALUE - 1;
  }
}
