/**
 * The balancer (docs/balancing.md): one process per deployment that holds an etcd lease, reads its policy
 * from etcd, asks a directory server for the plan ({@code FleetService.GetFleetStatus} with the policy: the
 * same planner the status command's suggestions come from) and starts the planned splits and moves through
 * the migrator, a few at a time, outside quiet hours, never moving a unit again within its cooldown.
 * {@link io.shardmap.migrator.internal.balance.BalancerRound} is pure (with the policy's bounds and quiet
 * windows in {@code io.shardmap.core.balance}, which the directory plans with too); the rest does the I/O.
 */
package io.shardmap.migrator.internal.balance;
