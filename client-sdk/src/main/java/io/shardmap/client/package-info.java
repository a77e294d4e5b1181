/**
 * The Shardmap client SDK: {@link io.shardmap.client.ShardmapClient} routes keys from a locally held,
 * watched copy of the shard maps (no RPC per lookup), using the same routing code as the directory
 * server ({@code io.shardmap.core}); {@link io.shardmap.client.ShardmapData} runs work on the PostgreSQL
 * shard that owns a key. Options come from {@link io.shardmap.client.ClientOptions}; map changes can be
 * observed with a {@link io.shardmap.client.MapListener}. {@link io.shardmap.client.StaleRoute} is the
 * contract with fenced shards (the refusal, and the route declaration of a rerun after an old fence).
 * Implementation details live in {@code io.shardmap.client.internal}.
 *
 * <p><b>Types.</b> Keys are {@link io.shardmap.client.ShardKey}s (integer, text or bytes); integer keys
 * also have a {@code long} form where it is the allocation-free path:
 * {@link io.shardmap.client.ShardmapClient#route(String, long)} and the {@code ShardmapData} calls. Answers are the SDK's own immutable values: {@link io.shardmap.client.ShardRoute},
 * {@link io.shardmap.client.KeyRangeView}, {@link io.shardmap.client.ShardInfo},
 * {@link io.shardmap.client.KeyspaceInfo} and {@link io.shardmap.client.MapView} (a map version); counters
 * come as one {@link io.shardmap.client.ClientStats} or {@link io.shardmap.client.DataStats} reading. No
 * {@code io.shardmap.core}, protobuf or HikariCP type appears in a public signature. The channel to each
 * directory server comes from a {@link io.shardmap.client.ChannelFactory} (TLS, in-process tests).
 *
 * <p><b>Cross-shard queries.</b> {@link io.shardmap.client.ShardmapData#query} runs one SELECT described by a
 * {@link io.shardmap.client.CrossShardQuery} over every shard of a keyspace, or those owning a key range or a
 * set of keys, at one pinned map revision, each shard restricted to the rows it owns in that map, and streams
 * the merged answer as a {@link io.shardmap.client.QueryResult} (per-shard {@link io.shardmap.client.ShardStatus}
 * included); {@link io.shardmap.client.ShardmapData#queryList} maps a small answer with a
 * {@link io.shardmap.client.RowMapper}. Planning and merging are module {@code query}'s; the executor is in
 * {@code io.shardmap.client.internal.query}.
 *
 * <p><b>Big directories.</b> A directory keyspace with more entries than
 * {@link io.shardmap.client.ClientOptions.Builder#directoryCacheSize} (default 100,000) is not loaded
 * whole: the client holds its spec and fallback, caches per-key answers (bounded, CLOCK eviction, kept
 * current by the watch stream) and asks a directory server on a miss, failing with UNAVAILABLE rather
 * than guessing when none answers. {@link io.shardmap.client.ShardmapClient#snapshot()} describes what
 * the map holds for such a keyspace; {@link io.shardmap.client.ShardmapClient#lookupRemote} asks a
 * server directly for any key.
 *
 * <p><b>Global ids.</b> {@link io.shardmap.client.ShardmapClient#ids} makes a
 * {@link io.shardmap.client.GlobalIds}: Snowflake ids whose worker id is leased through the directory servers
 * and renewed in the background (docs/ids.md, "Using it from the SDK"). Its layout is core's
 * {@code io.shardmap.core.ids.IdLayout}, the one exception to the rule above: the layout is the value the
 * application shares with every other process of the generator (and with id decoding), so it is not copied.
 *
 * <p><b>Metrics.</b> With {@link io.shardmap.client.ClientOptions.Builder#meterRegistry} the client
 * publishes {@code shardmap.client.*} meters to Micrometer, an optional dependency (never loaded without
 * a registry). Failovers and full re-reads are also logged through {@code java.util.logging}, naming the
 * directory servers and revisions involved.
 */
package io.shardmap.client;
