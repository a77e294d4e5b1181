/**
 * The merge operators of a cross-shard query, each small and tested against fake row sources: k-way
 * sort-merge, aggregation of partial aggregates, HAVING, in-memory ordering with a cap, offset and limit,
 * projection; and PostgreSQL's value semantics they need (ordering of each type, text in a collation,
 * numeric division scale). {@link io.shardmap.query.internal.merge.MergeSpec} is what the planner asks of
 * them; {@link io.shardmap.query.internal.merge.Merger#open} composes the operators for one spec and is the
 * only entry point. docs/cross-shard-queries.md (Merging) describes what each clause holds in memory and
 * which collations are merged exactly.
 */
package io.shardmap.query.internal.merge;
