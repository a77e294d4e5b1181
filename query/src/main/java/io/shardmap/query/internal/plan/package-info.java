/**
 * The planner of cross-shard queries: parses a SELECT with JSqlParser, refuses what cannot be merged
 * exactly (naming the clause), and rewrites it into the shard statement and the
 * {@link io.shardmap.query.internal.merge.MergeSpec} of its merge.
 */
package io.shardmap.query.internal.plan;
