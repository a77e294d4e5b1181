/**
 * The directory server's implementation; not API (no other module may import it). {@link
 * io.shardmap.server.internal.DirectoryState} keeps the watched snapshot and proves its freshness; {@link
 * io.shardmap.server.internal.ReadService} answers lookups from it without locks or etcd round trips, and
 * {@link io.shardmap.server.internal.WatchStreams} streams its changes to clients with bounded queues;
 * {@link io.shardmap.server.internal.AdminService} runs each map change of {@link
 * io.shardmap.server.internal.AdminOps} (a plan over the snapshot, one etcd transaction pinning every
 * record it read, optimistic retries) off the transport threads; {@link
 * io.shardmap.server.internal.StoreLayout} says where each record lives in etcd (docs/data-model.md);
 * {@link io.shardmap.server.internal.ClientRegistry} publishes the SDK clients' applied revisions; {@link
 * io.shardmap.server.internal.Errors} is the one mapping of failures to gRPC statuses; {@link
 * io.shardmap.server.internal.TxnResolver} finishes the cross-shard transactions dead coordinators left in
 * doubt, on the one server holding the role's lease ({@link io.shardmap.catalog.LeasedSingleton});
 * {@link io.shardmap.server.internal.IdService} leases worker ids of id generators from etcd on behalf of
 * clients ({@link io.shardmap.server.internal.WorkerLeases}, stateless: the lease id travels in the token,
 * docs/worker-leases.md) and reserves blocks of dense sequences ({@link io.shardmap.server.internal.Sequences},
 * one compare-and-set per block, docs/ids.md); {@link io.shardmap.server.internal.WorkerCensus} counts the held
 * ones from the watch. {@link io.shardmap.server.internal.LoadHistory} keeps the fleet's load over unit space and
 * time (retention ladder, bounded bands per column; docs/load.md), fed by {@link
 * io.shardmap.server.internal.LoadReports} (the checked load part of ReportApplied) and by {@link
 * io.shardmap.server.internal.LoadExchange} (every server's recent columns through etcd); {@link
 * io.shardmap.server.internal.FleetService} answers GetHeatmap from it ({@link
 * io.shardmap.server.internal.Heatmap}).
 */
package io.shardmap.server.internal;
