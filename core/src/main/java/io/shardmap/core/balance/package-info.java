/**
 * Balancing: the balancer's policy with its defaults and bounds ({@link io.shardmap.core.balance.BalancerPolicies})
 * and quiet windows ({@link io.shardmap.core.balance.QuietHours}), shared by the directory (which plans with a
 * policy) and the migrator's balancer (which acts on the plan). Pure.
 */
package io.shardmap.core.balance;
