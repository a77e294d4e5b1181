/**
 * The directory server's public surface: {@link io.shardmap.server.DirectoryServer} starts one stateless
 * replica (gRPC read and admin services over a watched in-memory copy of the maps in etcd, plus
 * {@code /metrics} and {@code /healthz}) from {@link io.shardmap.server.ServerOptions}; {@link
 * io.shardmap.server.Main} is the {@code shardmap-server} command line over it; {@link
 * io.shardmap.server.ClientAcks} reads which map revision every live SDK client has applied (the migrator
 * waits on it before deleting moved rows).
 *
 * <p>Any number of replicas may serve one etcd prefix: reads come from each replica's snapshot, and every
 * admin change is one guarded etcd transaction, so replicas never coordinate with each other.
 */
package io.shardmap.server;
