/**
 * Global ids of the SDK. Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.ids.LeasedIds} holds one generator's worker id claim (acquired,
 *       renewed every TTL/3, re-acquired when lost, released on close) through the directory servers' id
 *       service, with failover by {@link io.shardmap.client.internal.DirectoryRpc#callAny}, and issues ids
 *       with a core {@code IdGenerator} per claim;
 *   <li>{@link io.shardmap.client.internal.ids.RemoteWorkerLease} is one claim as the core generator sees it
 *       (fixed worker id and start-after; validity and issue-until moved by the renewer, dropped on loss).
 * </ul>
 */
package io.shardmap.client.internal.ids;
