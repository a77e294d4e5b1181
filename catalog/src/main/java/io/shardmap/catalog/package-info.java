/**
 * The catalog: the typed layer over {@link io.shardmap.store.MetaStore} that every writer of the shard
 * maps goes through (the role Vitess's {@code go/vt/topo} plays over its {@code conn.go}). It owns the
 * etcd key scheme ({@link io.shardmap.catalog.CatalogPaths}, documented in docs/data-model.md), the
 * decoding of records ({@link io.shardmap.catalog.Records}) and of watched events into map changes
 * ({@link io.shardmap.catalog.ChangeDecoder}), the client acknowledgements the directory servers publish
 * ({@link io.shardmap.catalog.ClientAcks}), and the translation of store failures
 * ({@link io.shardmap.catalog.StoreErrors}).
 *
 * <p>The directory server (admin API, watch) and the migrator both depend on this module and on nothing
 * of each other. It depends on proto, core and store only.
 */
package io.shardmap.catalog;
