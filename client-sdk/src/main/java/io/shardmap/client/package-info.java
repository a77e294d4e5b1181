/**
 * The Shardmap client SDK: {@link io.shardmap.client.ShardmapClient} routes keys from a locally held,
 * watched copy of the shard maps (no RPC per lookup), using the same routing code as the directory
 * server ({@code io.shardmap.core}). Options come from {@link io.shardmap.client.ClientOptions}; map
 * changes can be observed with a {@link io.shardmap.client.MapListener}. Implementation details live in
 * {@code io.shardmap.client.internal}.
 */
package io.shardmap.client;
