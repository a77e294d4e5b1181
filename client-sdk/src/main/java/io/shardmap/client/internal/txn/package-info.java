/**
 * Cross-shard transactions, the coordinator's side (docs/transactions.md). Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.txn.Participant} is one shard's pooled connection in the
 *       transaction, and the guarded view of it the work gets ({@code GuardedConnection}: ending the
 *       transaction is the coordinator's alone);
 *   <li>{@link io.shardmap.client.internal.txn.TxnCoordinator} ends a transaction on all its participants:
 *       plain commits for at most one writer, otherwise prepares, the decider's commit of the decision, and
 *       COMMIT PREPARED, each step sent to the shards in parallel;
 *   <li>{@link io.shardmap.client.internal.txn.ReferenceRecords} is the SDK's copy of the reference table
 *       records per keyspace (immutable snapshots read from a directory server, replaced whole), and
 *       {@link io.shardmap.client.internal.txn.ReferenceNames} the rule by which a table name the application
 *       gives matches a record's canonical name (docs/reference-sdk.md). The epochs a participant declares
 *       travel with its next statement, in the same round trip as its lock timeout.
 * </ul>
 * The protocol's database side (gids, prepared transactions, decision rows) is in core:
 * {@code io.shardmap.core.TxnId} and {@code io.shardmap.core.sql}.
 */
package io.shardmap.client.internal.txn;
