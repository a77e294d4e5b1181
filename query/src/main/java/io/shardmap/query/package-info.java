/**
 * Cross-shard SELECTs, without any connection: {@link io.shardmap.query.QueryPlanner} parses one PostgreSQL
 * SELECT on a sharded table and either refuses it (naming the clause that cannot be merged exactly) or gives
 * a {@link io.shardmap.query.QueryPlan}: the statement every shard runs, restricted by the caller to the rows
 * that shard owns, and the merge of the shards' rows into the answer one database holding every row would
 * give. The client SDK runs the statements (module client-sdk, {@code ShardmapData.query}); everything here
 * is pure and tested against fakes and against PostgreSQL itself.
 *
 * <p>The plan's merge operators (sort-merge, aggregation, HAVING, DISTINCT, offset and limit) live in
 * {@code internal.merge}; the parser and rewriter in {@code internal.plan}. Nothing outside this module uses
 * either.
 */
package io.shardmap.query;
