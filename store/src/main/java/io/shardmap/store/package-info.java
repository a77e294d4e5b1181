/**
 * The storage contract of Shardmap: a tiny interface ({@link io.shardmap.store.MetaStore}) with
 * linearizable reads, versioned compare-and-set transactions, ordered watches and leases. Implementations:
 * {@link io.shardmap.store.InMemoryMetaStore} (a fake with fault injection, for fast tests) and
 * {@link io.shardmap.store.EtcdMetaStore} (jetcd on etcd 3.4+). One contract suite in the test kit runs
 * against both, so domain code tested on the fake behaves the same on etcd.
 */
package io.shardmap.store;
