/**
 * Migrator internals; not API (only {@code io.shardmap.migrator} and its CLI use them).
 *
 * <ul>
 *   <li>Units: what differs per move unit (range, hash bucket, ring node, directory entries, geographic
 *       region) is one class each behind {@link io.shardmap.migrator.internal.UnitKind}, listed in {@link
 *       io.shardmap.migrator.internal.UnitKinds}: proposing a move, its markers, its cutover hand-over and
 *       its rows as a SQL condition ({@link io.shardmap.migrator.internal.MoveUnit}, built from core's
 *       {@code KeySql}).
 *   <li>Planning: {@link io.shardmap.migrator.internal.Planner} keeps the common flow: it validates a move
 *       against etcd and both shards and records it with the unit's moving markers in one transaction;
 *       {@link io.shardmap.migrator.internal.Resharder} decides the moves that add or remove a shard of a
 *       hash or consistent-hash keyspace ({@link io.shardmap.migrator.internal.RingNodes} computes a ring
 *       node's arc).
 *   <li>Driving: {@link io.shardmap.migrator.internal.MoveDriver} takes one migration through its states
 *       (docs/migrator-design.md), each step idempotent; {@link io.shardmap.migrator.internal.MigrationSteps}
 *       decides, with no I/O, each step's next state and fields from what the step observed, and the
 *       driver persists that by a guarded etcd write
 *       ({@link io.shardmap.migrator.internal.MigrationStore}, {@link
 *       io.shardmap.migrator.internal.UnitRecords} for the unit's records and its cutover); its cutover is
 *       held to the pause budget by {@link io.shardmap.migrator.internal.CutoverBudget}.
 *   <li>The PostgreSQL side: {@link io.shardmap.migrator.internal.RangeTableMove} moves one unit of one
 *       table: change capture by trigger, chunked binary COPY, catch-up replayed by key (the change log is
 *       the migration's, and each logged key is replayed into every table it moves), verification,
 *       cleanup, every row chosen by the unit's SQL condition ({@link
 *       io.shardmap.migrator.internal.RoutingFunctions} installs core's SQL routing functions for buckets
 *       and arcs). {@link io.shardmap.migrator.internal.Fences} keeps the fences, whose table lock drains
 *       in-flight writers, decides who passes them (the migrator's role, a declared route) and lifts them
 *       from units that come back.
 *   <li>Reference tables: {@link io.shardmap.migrator.internal.ReferenceCopies} declares them (guard, copy
 *       by one binary COPY pipe under the guard's bypass, record last), gives copies to shards that lack
 *       them (epoch raised on every copy first) for {@code reference sync} and at a move's start, and
 *       removes them (docs/reference-tables.md).
 *   <li>Reference tables: {@link io.shardmap.migrator.internal.ReferenceVerifier} compares every copy of a
 *       reference table by checksums at one point (every copy's epoch row locked) and repairs copies by
 *       primary key from the majority or a named copy (docs/reference-verify.md).
 * </ul>
 */
package io.shardmap.migrator.internal;
