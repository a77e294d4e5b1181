/**
 * The catalog: the typed layer over {@link io.shardmap.store.MetaStore} that every writer of the shard
 * maps goes through (the role Vitess's {@code go/vt/topo} plays over its {@code conn.go}). It owns the
 * etcd key scheme ({@link io.shardmap.catalog.CatalogPaths}, documented in docs/data-model.md), the
 * decoding of records ({@link io.shardmap.catalog.Records}) and of watched events into map changes
 * ({@link io.shardmap.catalog.ChangeDecoder}), the client acknowledgements the directory servers publish
 * ({@link io.shardmap.catalog.ClientAcks}), the translation of store failures
 * ({@link io.shardmap.catalog.StoreErrors}), the moving markers and their refuse rules
 * ({@link io.shardmap.catalog.MovingMarkers}), the reference-table records and the coverage rule every
 * ownership edit applies to them ({@link io.shardmap.catalog.ReferenceTables}, written by {@link
 * io.shardmap.catalog.ReferenceEdits}; docs/reference-tables.md), the one implementation of the map edits that the admin API
 * and the migrator both make ({@link io.shardmap.catalog.MapEdits}, one class per strategy behind
 * {@link io.shardmap.catalog.StrategyEdits}, planned on the watched snapshot or on a
 * fresh {@link io.shardmap.catalog.KeyspaceRead}), the one optimistic
 * read-plan-compare-and-set loop that commits them ({@link io.shardmap.catalog.CatalogTxns}), and a
 * {@link io.shardmap.catalog.MeteredMetaStore} that times every etcd round trip.
 *
 * <p>The directory server (admin API, watch) and the migrator both depend on this module and on nothing
 * of each other. It depends on proto, core and store only.
 */
package io.shardmap.catalog;
