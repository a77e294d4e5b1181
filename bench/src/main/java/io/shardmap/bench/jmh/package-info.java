/**
 * JMH micro-benchmarks of the in-memory routing structures, each with a baseline method in the same
 * class so one run yields the ratio: applying a split to a 100,000-range map (copy-on-write snapshot
 * vs. plain array clones), the server's watch path for one etcd revision, and a cached INT64 lookup
 * (vs. {@code TreeMap.floorEntry} and {@code Arrays.binarySearch}). Run them with
 * {@code java -jar bench/target/shardmap-bench.jar jmh [JMH options]}.
 */
package io.shardmap.bench.jmh;
