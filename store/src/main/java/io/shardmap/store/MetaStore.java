package io.shardmap.store;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * The whole storage contract Shardmap needs from its consensus store: linearizable reads, one atomic
 * compare-and-set transaction, an ordered watch, and leases. Everything above it (invariants, epochs,
 * snapshots) is domain logic that runs unchanged on the in-memory fake and on etcd.
 *
 * <p>Keys are UTF-8 strings (Shardmap encodes binary parts in hex), values are opaque bytes. Every
 * future fails with {@link StoreException}; none ever completes with {@code null}.
 */
public interface MetaStore extends AutoCloseable {

  /** Linearizable read of one key; {@link RangeResult#kvs()} is empty when the key is absent. */
  CompletableFuture<RangeResult> get(String key);

  /** Linearizable read of every key that starts with {@code prefix}, all at one revision, sorted by key. */
  CompletableFuture<RangeResult> getPrefix(String prefix);

  /**
   * Runs one transaction atomically: if every compare holds, applies every op; otherwise applies none.
   * A transaction that fails its compares completes normally with {@code succeeded == false}.
   */
  CompletableFuture<TxnResult> commit(Txn txn);

  /**
   * Proves the store has quorum right now and returns its current revision (a linearizable read).
   * Used by servers to bound how stale their watched copy can be.
   */
  CompletableFuture<Long> currentRevision();

  /**
   * Watches every change to keys under {@code prefix} with a revision greater than {@code afterRevision}.
   *
   * <p>Guarantees: batches arrive in strictly increasing revision order, one batch per revision, each
   * holding every event of that revision under the prefix; no revision is skipped or repeated, across
   * reconnects too (the implementation resumes transparently after transient errors). If the next
   * needed revision has been compacted away, {@link WatchListener#onCompacted} is called once and the
   * watch ends: the caller must re-read and watch again.
   */
  Watch watch(String prefix, long afterRevision, WatchListener listener);

  /** Grants a lease; keys put with it vanish when it expires or is revoked. Returns the lease id. */
  CompletableFuture<Long> grantLease(Duration ttl);

  /** Renews a lease once; fails with {@link StoreException.Kind#NOT_FOUND} if it has already expired. */
  CompletableFuture<Void> keepAliveOnce(long leaseId);

  /** Revokes a lease, deleting every key attached to it. Revoking an unknown lease is not an error. */
  CompletableFuture<Void> revokeLease(long leaseId);

  @Override
  void close();
}
