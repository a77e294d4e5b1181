/**
 * The storage contract of Shardmap: a tiny interface ({@link io.shardmap.store.MetaStore}) with
 * linearizable reads, versioned compare-and-set transactions, ordered watches and leases. Implementations:
 * {@link io.shardmap.store.InMemoryMetaStore} (a fake with fault injection, for fast tests) and
 * {@link io.shardmap.store.EtcdMetaStore} (jetcd on etcd 3.4+). One contract suite runs against both, so
 * domain code tested on the fake behaves the same on etcd: {@code io.shardmap.testkit.MetaStoreContract} in
 * the {@code testkit} module (it depends on this one, so the suite cannot live here), run by testkit's
 * {@code InMemoryMetaStoreContractTest} and {@code EtcdMetaStoreContractTest}; a new implementation gets
 * its own subclass there.
 */
package io.shardmap.store;
