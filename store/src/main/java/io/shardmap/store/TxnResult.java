package io.shardmap.store;

/**
 * Outcome of {@link MetaStore#commit}. {@code revision} is the store revision after the transaction: the
 * revision of its writes when it succeeded and wrote, otherwise the revision it was evaluated at (a caller
 * that lost a compare waits until its watched copy reaches it before re-evaluating).
 */
public record TxnResult(boolean succeeded, long revision) {}
