/**
 * Client internals. Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.MapFollower} loads the maps and follows the directory's watch
 *       stream on one thread, failing over between directory servers, and publishes one immutable
 *       {@link io.shardmap.client.internal.ClientView} (map, lazy caches, applied revision);
 *   <li>{@link io.shardmap.client.internal.ChangeRouter} is the follower's state machine as pure steps on
 *       that view (a watch message, a full read), tested without a server;
 *   <li>{@link io.shardmap.client.internal.SnapshotListener} is the follower's listener on core maps (the
 *       public {@code MapListener} is adapted onto it; the pools of {@code ShardmapData} use it directly);
 *   <li>{@link io.shardmap.client.internal.LazyDirectory} is the bounded, watch-updated answer cache of a
 *       directory keyspace too big to hold whole (its class comment explains the ordering rules);
 *   <li>{@link io.shardmap.client.internal.DirectoryRpc} asks directory servers single-key questions
 *       (cache misses, remote lookups) with failover inside one RPC timeout, and lends that failover to the
 *       id service's calls ({@code callAny}, used by {@code internal.ids}: leased worker ids of global ids);
 *   <li>{@link io.shardmap.client.internal.ShardPools} keeps one pool per shard primary and replica in step
 *       with the map (one set for single-key calls, one of its own for cross-shard queries, whose executor
 *       is in {@code internal.query}), each endpoint's pool with its circuit breaker
 *       ({@link io.shardmap.client.internal.EndpointBreaker}; an open one refuses calls with the
 *       {@link io.shardmap.client.internal.CircuitOpenException} callers get; the live breakers are listed
 *       on the {@link io.shardmap.client.internal.BreakerBoard} for the metrics);
 *   <li>{@link io.shardmap.client.internal.NotRunException} marks a failure after which the work provably
 *       did not take effect and may run again (single-shard calls and cross-shard commits alike), and
 *       {@link io.shardmap.client.internal.SqlStates} says which SQLSTATEs mean the session was lost;
 *   <li>{@link io.shardmap.client.internal.Counters} holds the live counters (read into the public
 *       {@code ClientStats}/{@code DataStats} snapshots), and
 *       {@link io.shardmap.client.internal.MicrometerMetrics} (the only class naming Micrometer types)
 *       publishes them when a registry was given.
 * </ul>
 */
package io.shardmap.client.internal;
