/**
 * Migrator internals. {@link io.shardmap.migrator.internal.RangeTableMove} is the PostgreSQL side of
 * moving one key range of one table: change capture by trigger, streaming binary COPY, catch-up replayed by
 * key, and the fence whose table lock drains in-flight writers (docs/migrator-design.md);
 * {@link io.shardmap.migrator.internal.Fences} keeps the fences, decides who passes them (the migrator's
 * role, a declared route) and lifts them from units that come back. The etcd state machine
 * ({@link io.shardmap.migrator.internal.MoveDriver}, whose cutover is held to its pause budget by
 * {@link io.shardmap.migrator.internal.CutoverBudget}), the worker and the CLI build on it. What differs per
 * move unit (range, bucket, ring node, entries, region) is one class each behind
 * {@link io.shardmap.migrator.internal.UnitKind}, listed in {@link io.shardmap.migrator.internal.UnitKinds};
 * {@link io.shardmap.migrator.internal.Planner} keeps the common planning flow and
 * {@link io.shardmap.migrator.internal.RoutingFunctions} installs core's SQL routing functions. Not API.
 */
package io.shardmap.migrator.internal;
