package io.shardmap.client;

import io.grpc.ManagedChannelBuilder;

/**
 * Makes the gRPC channel to one directory server, for {@link ClientOptions.Builder#channelFactory}: TLS,
 * credentials, a proxy, or an in-process server in tests. Called once per target when a client starts;
 * the client adds its own message size limit and builds the channel, and shuts it down when it closes.
 */
@FunctionalInterface
public interface ChannelFactory {
  /**
   * A builder for the channel to {@code target}, one of {@link ClientOptions#targets()} as given.
   * Transport settings (keepalive, TLS) are the factory's; the default factory
   * ({@link ClientOptions#PLAINTEXT}) uses plaintext Netty with a 10 s keepalive.
   */
  ManagedChannelBuilder<?> builderFor(String target);
}
