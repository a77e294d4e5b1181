/**
 * Benchmarks of Shardmap, run from one jar ({@code bench/target/shardmap-bench.jar}) through
 * {@link io.shardmap.bench.BenchMain}: the JMH micro-benchmarks of {@link io.shardmap.bench.jmh}, two
 * closed-loop RPC load generators that compare the directory server against a bare grpc-java server in
 * the same run ({@link io.shardmap.bench.LookupLoadCommand}, {@link io.shardmap.bench.BatchLoadCommand}),
 * a retained-heap measurement of a large range map ({@link io.shardmap.bench.HeapCommand}), and the
 * SDK's cross-shard queries against one unsharded PostgreSQL and ShardingSphere-JDBC on the same shards
 * ({@link io.shardmap.bench.CrossShardCommand}).
 *
 * <p>Every figure comes with a baseline measured in the same process and run, because on a shared
 * 2-core machine absolute numbers drift between runs far more than ratios do. docs/benchmarks.md has the
 * commands and the numbers.
 */
package io.shardmap.bench;
