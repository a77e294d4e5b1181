/**
 * One class per sharding strategy behind {@link io.shardmap.core.strategy.StrategyKind}, and the registry
 * {@link io.shardmap.core.strategy.Strategies} that maps a strategy to its class: building the routing
 * table from the layout record, validating a spec's strategy fields, paging a map, describing its units
 * and shares, and the SQL predicate "the keys shard S owns". The implementations are package-private: other
 * code reaches them only through the registry, and nothing outside it switches on the strategy.
 */
package io.shardmap.core.strategy;
