/**
 * The executor of cross-shard queries ({@code ShardmapData.query}). Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.query.Targets} (pure) checks that the pinned map covers the
 *       keyspace, picks the shards a target asks, and builds each shard's predicate: the rows it owns at that
 *       map ({@code StrategyKind.ownedBy}) ANDed with the target's keys or key range;
 *   <li>{@link io.shardmap.client.internal.query.QueryExecutor} opens one part per shard, in parallel up to the
 *       query's limit (the caller's thread opens parts too), each on the shard's query pool (separate from
 *       single-key calls' pools) in one round trip: a READ ONLY REPEATABLE READ transaction with the deadline
 *       as statement timeout, the {@link io.shardmap.client.internal.query.PartGuard}'s check, and the part's
 *       statement (with a fetch size, or whole and with its transaction ended when its SQL bounds its rows);
 *       it re-runs at a newer map when the guard asks, and fails (cancelling the others) naming every failed
 *       shard, or in partial mode keeps the healthy ones;
 *   <li>{@link io.shardmap.client.internal.query.Execution} is the running query: the plan's merge over the
 *       parts' rows, the deadline, the per-shard statuses, and close;
 *   <li>{@link io.shardmap.client.internal.query.Part} is one shard's connection, transaction and cursor (or,
 *       for a bounded part, its rows read whole and its connection given back at once), and the cancel rules
 *       (a connection whose statement was cancelled is evicted, never reused);
 *   <li>{@code ColumnTypes} reads the shard statement's column types and collations for the merge (cached).
 * </ul>
 *
 * <p>Each counts what happens in it into the client's {@code Counters} (queries by outcome and failure cause,
 * re-runs, parts started, failed and cancelled, query-pool connections held): the executor a query thrown
 * while starting, the execution how a started query ends (once, at its end), a part its connection and
 * cancel. Nothing is counted per row.
 */
package io.shardmap.client.internal.query;
