/**
 * Global ids and dense sequences of the SDK. Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.ids.LeasedIds} holds one generator's worker id claim (acquired,
 *       renewed every TTL/3, re-acquired when lost, released on close) through the directory servers' id
 *       service, with failover by {@link io.shardmap.client.internal.DirectoryRpc#callAny}, and issues ids
 *       with a core {@code IdGenerator} per claim;
 *   <li>{@link io.shardmap.client.internal.ids.RemoteWorkerLease} is one claim as the core generator sees it
 *       (fixed worker id and start-after; validity and issue-until moved by the renewer, dropped on loss);
 *   <li>{@link io.shardmap.client.internal.ids.SequenceBlocks} hands out a dense sequence's numbers from
 *       reserved blocks (lock-free common path, background prefetch at half a block, bounded wait when used
 *       up); {@link io.shardmap.client.internal.ids.RemoteSequence} feeds it with ReserveSequenceBlock through
 *       any directory server.
 * </ul>
 */
package io.shardmap.client.internal.ids;
