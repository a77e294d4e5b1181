/**
 * Client internals: {@link io.shardmap.client.internal.MapFollower} loads the maps and follows the
 * directory's watch stream on one thread, failing over between directory servers. Not API.
 */
package io.shardmap.client.internal;
