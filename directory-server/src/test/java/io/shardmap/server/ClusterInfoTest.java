package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.GetClusterInfoRequest;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.store.InMemoryMetaStore;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * GetClusterInfo: the cross-shard transaction namespace every server of a cluster gives its clients, made
 * from the etcd prefix; a prefix that makes none is the server's configuration problem, said as such.
 */
@Tag("integration")
class ClusterInfoTest {
  private static String namespaceOf(String prefix) throws Exception {
    try (InMemoryMetaStore store = new InMemoryMetaStore();
         DirectoryServer server = DirectoryServer.start(
             ServerOptions.loopbackForTests(List.of("http://127.0.0.1:1"), prefix).build(), store)) {
      ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
      try {
        return ShardMapServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
            .getClusterInfo(GetClusterInfoRequest.getDefaultInstance()).getTxnNamespace();
      } finally {
        ch.shutdownNow();
      }
    }
  }

  @Test
  void theNamespaceFollowsTheEtcdPrefix() throws Exception {
    assertEquals("shardmap-prod", namespaceOf("/shardmap/prod"));
    assertEquals("shardmap", namespaceOf("/shardmap"));
  }

  @Test
  void aPrefixThatMakesNoNamespaceIsAFailedPrecondition() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> namespaceOf("/" + "x".repeat(50)));
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("etcd prefix"), e.getStatus().getDescription());
  }
}
