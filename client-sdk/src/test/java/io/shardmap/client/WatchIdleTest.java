package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A directory replica that hangs without closing its connections (a partition, a stopped process) is
 * left after watchIdleTimeout, and the client follows another replica: no change is missed for long.
 */
@Tag("integration")
class WatchIdleTest {

  /** A TCP pass-through that can go silent while keeping every connection open. */
  static final class FreezableProxy implements AutoCloseable {
    final ServerSocket listener;
    final List<Socket> sockets = new CopyOnWriteArrayList<>();
    volatile boolean frozen;

    FreezableProxy(int targetPort) throws IOException {
      listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
      Thread acceptor = new Thread(() -> {
        while (!listener.isClosed()) {
          try {
            Socket in = listener.accept();
            Socket out = new Socket(InetAddress.getLoopbackAddress(), targetPort);
            sockets.add(in);
            sockets.add(out);
            pump(in, out);
            pump(out, in);
          } catch (IOException e) {
            return;
          }
        }
      }, "proxy-accept");
      acceptor.setDaemon(true);
      acceptor.start();
    }

    private void pump(Socket from, Socket to) {
      Thread t = new Thread(() -> {
        byte[] buf = new byte[16384];
        try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
          int n;
          while ((n = in.read(buf)) >= 0) {
            while (frozen) {
              Thread.sleep(20);
            }
            out.write(buf, 0, n);
          }
        } catch (IOException | InterruptedException e) {
          // connection over
        }
      }, "proxy-pump");
      t.setDaemon(true);
      t.start();
    }

    int port() {
      return listener.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      listener.close();
      for (Socket s : sockets) {
        s.close();
      }
    }
  }

  private static DirectoryServer server(EtcdCluster etcd, String prefix) throws Exception {
    return DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix)
        .watchHeartbeat(Duration.ofMillis(250)).build());
  }

  @Test
  void aSilentReplicaIsLeftAfterTheIdleTimeout() throws Exception {
    EtcdCluster etcd = EtcdCluster.shared();
    String prefix = "/i" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (DirectoryServer a = server(etcd, prefix); DirectoryServer b = server(etcd, prefix);
         FreezableProxy proxyA = new FreezableProxy(a.port())) {
      ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", b.port()).usePlaintext().build();
      try {
        var admin = ShardMapAdminServiceGrpc.newBlockingStub(ch);
        for (String s : List.of("s1", "s2")) {
          admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
              .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
        }
        admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addRangeShards("s1").build());
        try (ShardmapClient c = ShardmapClient.start(ClientOptions.builder()
            .targets("127.0.0.1:" + proxyA.port(), "127.0.0.1:" + b.port()).keyspaces("users")
            .backoff(Duration.ofMillis(20), Duration.ofMillis(100)).watchIdleTimeout(Duration.ofSeconds(1)).build())) {
          assertEquals(0, c.stats().failovers());
          proxyA.frozen = true;
          CountDownLatch seen = new CountDownLatch(1);
          c.addListener((before, after, resync) -> {
            if ("s2".equals(after.core().keyspace("users").route(0L).shard())) {
              seen.countDown();
            }
          });
          long t0 = System.nanoTime();
          admin.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
              .setRange(KeyRange.getDefaultInstance()).setShard("s2").build());
          assertTrue(seen.await(10, TimeUnit.SECONDS), "the change arrives through the other replica");
          long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
          assertTrue(ms >= 700 && ms < 3000, "left the silent replica after about 1 s, took " + ms + " ms");
          assertTrue(c.stats().failovers() >= 1);
        }
      } finally {
        ch.shutdownNow();
      }
    }
  }

  @Test
  void theIdleTimeoutIsValidated() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().watchIdleTimeout(Duration.ofMillis(50)));
    assertTrue(e.getMessage().startsWith("watchIdleTimeout:"), e.getMessage());
  }
}
