package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.LookupResponse;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc.ShardMapServiceBlockingStub;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.function.Executable;

/** Starting directory servers on a test etcd, with stubs, and the assertions the server tests share. */
final class TestSupport {
  private TestSupport() {}

  /** A prefix no other test uses, so tests can share one etcd cluster. */
  static String uniquePrefix() {
    return "/t" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  }

  static ServerOptions.Builder options(List<String> endpoints, String prefix) {
    // The server tests read the metrics endpoint and were written against a 500 ms heartbeat.
    return ServerOptions.loopbackForTests(endpoints, prefix).metrics("127.0.0.1", 0)
        .watchHeartbeat(Duration.ofMillis(500));
  }

  static MetaStore etcdClient(List<String> endpoints) {
    return EtcdMetaStore.builder().endpoints(endpoints).requestTimeout(Duration.ofSeconds(3))
        .connectTimeout(Duration.ofSeconds(3)).build();
  }

  /** A gRPC client of one replica. */
  static final class Client implements AutoCloseable {
    final ManagedChannel channel;
    final ShardMapServiceBlockingStub read;
    final ShardMapAdminServiceBlockingStub admin;

    Client(int port) {
      channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
          .maxInboundMessageSize(64 << 20).build();
      read = ShardMapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.HOURS);
      admin = ShardMapAdminServiceGrpc.newBlockingStub(channel);
    }

    ShardMapServiceBlockingStub read() {
      return ShardMapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    ShardMapAdminServiceBlockingStub admin() {
      return admin.withDeadlineAfter(20, TimeUnit.SECONDS);
    }

    void registerShards(String... names) {
      int port = 5433;
      for (String n : names) {
        admin().registerShard(RegisterShardRequest.newBuilder().setShard(shard(n, port++)).build());
      }
    }

    LookupResponse lookup(String keyspace, long key) {
      return read().lookup(LookupRequest.newBuilder().setKeyspace(keyspace).setKey(intKey(key)).build());
    }

    LookupResponse lookup(String keyspace, String key) {
      return read().lookup(LookupRequest.newBuilder().setKeyspace(keyspace).setKey(strKey(key)).build());
    }

    @Override
    public void close() {
      channel.shutdownNow();
      try {
        channel.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  static Shard shard(String name, int port) {
    return Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase(name)).build();
  }

  static Key intKey(long k) {
    return Key.newBuilder().setIntKey(k).build();
  }

  static Key strKey(String k) {
    return Key.newBuilder().setStringKey(k).build();
  }

  static KeyspaceSpec spec(String name, KeyType type, Strategy strategy) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(strategy)
        .addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("id")).build();
  }

  static CreateKeyspaceRequest.Builder create(String name, KeyType type, Strategy strategy) {
    return CreateKeyspaceRequest.newBuilder().setSpec(spec(name, type, strategy));
  }

  /** Asserts the call fails with {@code code} and a message containing every fragment. */
  static StatusRuntimeException assertStatus(Status.Code code, Executable call, String... fragments) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
    assertEquals(code, e.getStatus().getCode(), () -> "status of: " + e.getStatus());
    String msg = String.valueOf(e.getStatus().getDescription());
    for (String f : fragments) {
      assertTrue(msg.contains(f), () -> "message '" + msg + "' should mention '" + f + "'");
    }
    return e;
  }
}
