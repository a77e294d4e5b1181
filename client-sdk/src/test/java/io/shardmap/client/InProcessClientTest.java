package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
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
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client's channel factory and the server's mountable services: a directory server mounted on an
 * in-process gRPC server over the in-memory store, followed by a client whose channels are in-process too.
 * No socket is opened.
 */
@Tag("integration")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InProcessClientTest {

  @Test
  void aClientFollowsAnInProcessDirectoryThroughItsChannelFactory() throws Exception {
    try (InMemoryMetaStore store = new InMemoryMetaStore();
         ShardmapFleet fleet = ShardmapFleet.builder().store(store).serverOptions(o -> o
             .etcdTimeout(Duration.ofSeconds(1)).probeInterval(Duration.ofMillis(100))
             .watchHeartbeat(Duration.ofMillis(200))).build()) {
      DirectoryServer server = fleet.server(0);
      String name = fleet.targets().get(0);
      assertEquals(-1, server.port(), "an in-process server has no port");
      ManagedChannel ch = InProcessChannelBuilder.forName(name).directExecutor().build();
      try {
        var admin = ShardMapAdminServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
        for (String s : List.of("s1", "s2")) {
          admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
              .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
        }
        admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE))
            .addAllRangeShards(List.of("s1", "s2")).build());

        ClientOptions options = ClientOptions.builder().targets(name).keyspaces("users")
            .channelFactory(InProcessChannelBuilder::forName).build();
        try (ShardmapClient client = ShardmapClient.start(options)) {
          assertEquals("s1", client.route("users", -5).shard());
          assertEquals("s2", client.route("users", 5).shard());
          assertEquals(io.shardmap.core.ErrorCode.INVALID_ARGUMENT, assertThrows(io.shardmap.core.ShardmapException.class,
              () -> client.route("users", (ShardKey) null)).code(), "a missing key is refused naming it");
          long rev = admin.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
              .setSplitKey(Key.newBuilder().setIntKey(1000)).build()).getRevision();
          Await.until(Duration.ofSeconds(20), "the split arrives through the in-process watch", () -> client.revision() >= rev);
          assertTrue(client.stats().appliedRevision() >= rev);
          assertEquals(0, client.stats().failovers());
        }
      } finally {
        ch.shutdownNow();
      }
    }
  }

  @Test
  void targetsMustBeHostPortOnlyForTheDefaultChannelFactory() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().targets("directory-a").keyspaces("users").build());
    assertTrue(e.getMessage().startsWith("targets: 'directory-a' is not host:port"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().channelFactory(null));
    ClientOptions.builder().targets("directory-a").keyspaces("users")
        .channelFactory(InProcessChannelBuilder::forName).build();
  }
}
