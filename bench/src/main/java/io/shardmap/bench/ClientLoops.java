package io.shardmap.bench;

import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.nio.NioIoHandler;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import java.util.concurrent.TimeUnit;

/**
 * The load generator's own transport threads. Without them grpc-java puts client connections on the same
 * shared event-loop group as both servers' connections, and whether a connection's two ends land on one
 * thread (no wake-up between them) or on two depends on registration order, which nothing controls: two
 * targets could then differ for a reason that has nothing to do with their servers. With separate client
 * threads every call crosses threads the same way for every target. Epoll where the servers use it
 * (Linux), NIO elsewhere.
 */
final class ClientLoops implements AutoCloseable {
  private final EventLoopGroup group;
  private final Class<? extends Channel> channelType;

  ClientLoops(int threads) {
    if (threads < 1 || threads > 64) {
      throw new IllegalArgumentException("client threads must be 1-64, got " + threads);
    }
    DefaultThreadFactory tf = new DefaultThreadFactory("bench-client", true);
    if (Epoll.isAvailable()) {
      group = new MultiThreadIoEventLoopGroup(threads, tf, EpollIoHandler.newFactory());
      channelType = EpollSocketChannel.class;
    } else {
      group = new MultiThreadIoEventLoopGroup(threads, tf, NioIoHandler.newFactory());
      channelType = NioSocketChannel.class;
    }
  }

  EventLoopGroup group() {
    return group;
  }

  Class<? extends Channel> channelType() {
    return channelType;
  }

  String describe() {
    return channelType.getSimpleName().replace("SocketChannel", "").toLowerCase(java.util.Locale.ROOT);
  }

  @Override
  public void close() {
    group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
  }
}
