/**
 * The balance planner (docs/balancing.md): from a keyspace's units (where they are, who owns them, their
 * load and size), sampled keys and a {@link io.shardmap.core.balance.BalancePolicy}, the ordered splits and
 * moves that would even the keyspace out, with the skew expected after each. Pure and deterministic: the
 * same input and policy give the same plan; nothing here reads etcd or PostgreSQL. The directory server's
 * fleet status and the balancer's dry run both print its plans.
 *
 * <p>Also the balancer's stored policy ({@code BalancerPolicy} in fleet.proto) with its defaults and bounds
 * ({@link io.shardmap.core.balance.BalancerPolicies}) and quiet windows
 * ({@link io.shardmap.core.balance.QuietHours}): the directory plans with that policy, the migrator's balancer
 * acts on the plan.
 */
package io.shardmap.core.balance;
