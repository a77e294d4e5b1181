/**
 * The routing core shared by the directory server and the client SDK: canonical keys ({@link
 * io.shardmap.core.Keys}), the one half-open {@link io.shardmap.core.KeyRange}, the hash function
 * ({@link io.shardmap.core.XxHash64}), the immutable table of each strategy ({@link
 * io.shardmap.core.RoutingTable}; the class of each strategy that builds it, validates specs and writes its
 * SQL predicates is in {@code io.shardmap.core.strategy}, the SQL text in {@code io.shardmap.core.sql}), and {@link
 * io.shardmap.core.DirectorySnapshot}, the immutable whole-directory value that server and SDK both
 * build by applying {@code MapChange}s in revision order, and {@link io.shardmap.core.Backoff}, the one
 * retry pause policy every component uses. The fence contract between migrator and SDK is here too:
 * {@link io.shardmap.core.FenceProtocol} (what a fence raises, how a write declares its route) and
 * {@link io.shardmap.core.FenceUnit} (which keys a fence row covers, and whether a map still routes them to
 * the fenced shard). Pure Java over the protobuf messages: no I/O,
 * no threads, no clocks. The one exception is {@code io.shardmap.core.ids} (global ids), whose generator
 * reads an injected clock and waits for it.
 *
 * <p>Errors are {@link io.shardmap.core.ShardmapException} with an {@link io.shardmap.core.ErrorCode}.
 */
package io.shardmap.core;
