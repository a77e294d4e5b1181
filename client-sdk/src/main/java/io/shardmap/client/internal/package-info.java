/**
 * Client internals. Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.MapFollower} loads the maps and follows the directory's watch
 *       stream on one thread, failing over between directory servers;
 *   <li>{@link io.shardmap.client.internal.LazyDirectory} is the bounded, watch-updated answer cache of a
 *       directory keyspace too big to hold whole (its class comment explains the ordering rules);
 *   <li>{@link io.shardmap.client.internal.DirectoryRpc} asks directory servers single-key questions
 *       (cache misses, remote lookups) with failover inside one RPC timeout;
 *   <li>{@link io.shardmap.client.internal.Counters} holds the counters, and
 *       {@link io.shardmap.client.internal.MicrometerMetrics} (the only class naming Micrometer types)
 *       publishes them when a registry was given.
 * </ul>
 */
package io.shardmap.client.internal;
