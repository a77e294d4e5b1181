/**
 * The migrator's public API: {@link io.shardmap.migrator.Migrator} plans, drives, cancels and lists online
 * moves of one unit of a keyspace (a key range, a hash bucket, a ring node's arc, directory entries)
 * between PostgreSQL shards, and reshards hash and consistent-hash keyspaces with them; {@link
 * io.shardmap.migrator.MoveSpec} says what to move and how, {@link io.shardmap.migrator.MigratorOptions}
 * how to reach etcd and the shards. Both builders refuse a bad value when it is set, naming the field.
 * {@link io.shardmap.migrator.Migrator#verifyReference} and {@link io.shardmap.migrator.Migrator#repairReference}
 * compare and repair the copies of a reference table ({@link io.shardmap.migrator.ReferenceCheck}, {@link
 * io.shardmap.migrator.ReferenceRepair}; docs/reference-verify.md).
 *
 * <p>Applications keep writing during a move; what the move guarantees them, and why, is in
 * docs/migrator-design.md. Any number of Migrators may run against one directory: each migration is driven
 * by the one holding its etcd owner key and resumed by another after a crash. The {@code migrator} command line
 * ({@code io.shardmap.migrator.cli}) is a thin layer over this API; {@code internal} is not API.
 */
package io.shardmap.migrator;
