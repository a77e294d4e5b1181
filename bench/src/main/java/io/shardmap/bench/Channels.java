package io.shardmap.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Client channels of the load generators: one TCP connection each, to loopback only. */
final class Channels implements AutoCloseable {
  private final List<ManagedChannel> channels = new ArrayList<>();

  /**
   * {@code n} channels to 127.0.0.1:port on the load generator's own threads. Callbacks run on those
   * transport threads (direct executor), like the servers' handlers, so no extra thread hop is measured
   * on either side.
   */
  Channels(ClientLoops loops, int port, int n) {
    for (int i = 0; i < n; i++) {
      channels.add(NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().directExecutor()
          .eventLoopGroup(loops.group()).channelType(loops.channelType())
          .maxInboundMessageSize(32 << 20).build());
    }
  }

  /** Connects every channel now, so connection set-up is not part of the first phase. */
  void connect() throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    for (ManagedChannel ch : channels) {
      while (ch.getState(true) != io.grpc.ConnectivityState.READY) {
        if (System.nanoTime() - deadline > 0) {
          throw new IllegalStateException("channel not READY after 10 s: " + ch.getState(false));
        }
        Thread.sleep(5);
      }
    }
  }

  List<ManagedChannel> list() {
    return channels;
  }

  ManagedChannel first() {
    return channels.get(0);
  }

  @Override
  public void close() {
    for (ManagedChannel ch : channels) {
      ch.shutdownNow();
    }
    for (ManagedChannel ch : channels) {
      try {
        ch.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }
}
