/**
 * The fleet fixture: an etcd cluster, directory servers on a prefix of their own, and PostgreSQL shards
 * registered with them, in one {@link io.shardmap.testkit.fleet.ShardmapFleet} for tests (as a JUnit 5
 * extension) and for bench commands (as an {@code AutoCloseable}).
 *
 * <p>This is a module of its own, not part of {@code shardmap-testkit}, because it starts directory
 * servers: it depends on {@code shardmap-directory-server}, whose own tests depend on the test kit. The
 * directory server's tests therefore cannot use it; they share its server settings through
 * {@link io.shardmap.server.ServerOptions#loopbackForTests}. It does not depend on the client SDK: a client
 * plugs into a fleet through {@link io.shardmap.testkit.fleet.ShardmapFleet#targets()} and
 * {@link io.shardmap.testkit.fleet.ShardmapFleet#channelBuilder(String)}, which fits the SDK's
 * {@code ChannelFactory}.
 *
 * <p>Servers are reached in-process by default (no socket, no port); a fleet asks for real Netty sockets
 * with {@link io.shardmap.testkit.fleet.ShardmapFleet.Builder#sockets()} where the socket is the point:
 * failover between servers, a CLI in a child process, benchmark load.
 */
package io.shardmap.testkit.fleet;
