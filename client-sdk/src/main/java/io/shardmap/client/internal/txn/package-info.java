/**
 * Cross-shard transactions, the coordinator's side (docs/transactions.md). Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.txn.Participant} is one shard's pooled connection in the
 *       transaction, and the guarded view of it the work gets ({@code GuardedConnection}: ending the
 *       transaction is the coordinator's alone);
 *   <li>{@link io.shardmap.client.internal.txn.TxnCoordinator} ends a transaction on all its participants:
 *       plain commits for at most one writer, otherwise prepares, the decider's commit of the decision, and
 *       COMMIT PREPARED, each step sent to the shards in parallel.
 * </ul>
 * The protocol's database side (gids, prepared transactions, decision rows) is in core:
 * {@code io.shardmap.core.TxnId} and {@code io.shardmap.core.sql}.
 */
package io.shardmap.client.internal.txn;
