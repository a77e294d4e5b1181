package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.store.InMemoryMetaStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A client that fails over to a replica behind its own map (cut off from etcd while the client's first
 * replica moved on) keeps its map: it watches the lagging replica from its own revision, which is past that
 * replica's snapshot, so the replica asks etcd: UNAVAILABLE while it is cut off (the client keeps trying),
 * accepted once etcd answers, and then it streams the changes that follow. The refusal of revisions from
 * the future must not refuse this valid one; the map never goes back in time, and no full re-read
 * happens. (Only etcd itself going back, after a restore, makes a client accept an older map:
 * {@link EtcdRestoreTest}.)
 */
@Tag("fault")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LaggingReplicaTest {

  private static DirectoryServer server(InMemoryMetaStore store) throws Exception {
    // Each replica has its own client of one in-memory store, so the test can hold back one replica's watch.
    return DirectoryServer.start(ServerOptions.loopbackForTests(List.of("http://127.0.0.1:1"), "/lag")
        .etcdTimeout(Duration.ofSeconds(1)).probeInterval(Duration.ofMillis(100))
        .watchHeartbeat(Duration.ofMillis(200)).build(), store);
  }

  private static long split(DirectoryServer s, long key) {
    ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", s.port()).usePlaintext().build();
    try {
      return ShardMapAdminServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
          .splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
              .setSplitKey(Key.newBuilder().setIntKey(key)).build()).getRevision();
    } finally {
      ch.shutdownNow();
    }
  }

  @Test
  void aLaggingReplicaNeverTakesTheMapBackAndStreamsOnceCaughtUp() throws Exception {
    try (InMemoryMetaStore cluster = new InMemoryMetaStore();
         InMemoryMetaStore storeA = cluster.newClient();
         InMemoryMetaStore storeB = cluster.newClient()) {
      DirectoryServer a = server(storeA);
      DirectoryServer b = server(storeB);
      ShardmapClient c = null;
      try {
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
        var admin = ShardMapAdminServiceGrpc.newBlockingStub(ch);
        for (String s : List.of("s1", "s2")) {
          admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
              .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
        }
        admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE))
            .addAllRangeShards(List.of("s1", "s2")).build());
        ch.shutdownNow();
        c = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + a.port(), "127.0.0.1:" + b.port())
            .keyspaces("users").backoff(Duration.ofMillis(20), Duration.ofMillis(100)).build());
        List<String> wentBack = new CopyOnWriteArrayList<>();
        List<Long> reReads = new CopyOnWriteArrayList<>();
        c.addListener((before, after, resync) -> {
          if (before != null && after.revision() < before.revision()) {
            wentBack.add(before.revision() + " -> " + after.revision());
          }
          if (resync) {
            reReads.add(after.revision());
          }
        });

        storeB.setUnavailable(true); // B is cut off and stays at its revision
        long ahead = 0;
        for (int i = 1; i <= 5; i++) {
          ahead = split(a, 100L * i);
        }
        long aheadRevision = ahead;
        ShardmapClient client = c;
        Await.until(Duration.ofSeconds(20), "the client follows A to the last split", () -> client.revision() >= aheadRevision);
        assertTrue(b.snapshot().revision() < aheadRevision, "B is behind");
        int ranges = c.snapshot().core().keyspace("users").ranges().size();

        a.close(); // the client must go to B, which is behind it and cannot confirm etcd's revision
        Await.until(Duration.ofSeconds(20), "the client tried B", () -> client.stats().failovers() >= 1);
        Thread.sleep(300); // some failed rounds on B while it is cut off (not a timing assertion)
        assertEquals(aheadRevision, c.revision(), "the map stays where it was");
        assertEquals(ranges, c.snapshot().core().keyspace("users").ranges().size());

        storeB.setUnavailable(false); // B catches up and accepts the client's revision
        Await.until(Duration.ofSeconds(20), "B reaches etcd again", () -> b.freshness().getEtcdQuorum()
            == io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE);
        long next = split(b, 10_000);
        Await.until(Duration.ofSeconds(20), "the client follows B to a new change", () -> client.revision() >= next
            && client.snapshot().core().keyspace("users").ranges().size() == ranges + 1);
        assertEquals(List.of(), wentBack, "the map never went back in time");
        assertEquals(List.of(), reReads, "no full re-read was needed");
      } finally {
        if (c != null) {
          c.close();
        }
        a.close();
        b.close();
      }
    }
  }
}
