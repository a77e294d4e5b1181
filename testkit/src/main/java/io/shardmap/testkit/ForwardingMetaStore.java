package io.shardmap.testkit;

import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * A {@link MetaStore} that passes every call to another one; tests extend it and override only the calls
 * they fault (fail, hang, lose an answer, run a hook first), so a fault wrapper says what it changes and
 * nothing else. Closing it closes the delegate unless a subclass says otherwise.
 */
public abstract class ForwardingMetaStore implements MetaStore {
  protected final MetaStore delegate;

  protected ForwardingMetaStore(MetaStore delegate) {
    this.delegate = delegate;
  }

  @Override
  public CompletableFuture<RangeResult> get(String key) {
    return delegate.get(key);
  }

  @Override
  public CompletableFuture<RangeResult> getPrefix(String prefix) {
    return delegate.getPrefix(prefix);
  }

  @Override
  public CompletableFuture<TxnResult> commit(Txn txn) {
    return delegate.commit(txn);
  }

  @Override
  public CompletableFuture<Long> currentRevision() {
    return delegate.currentRevision();
  }

  @Override
  public Watch watch(String prefix, long afterRevision, WatchListener listener) {
    return delegate.watch(prefix, afterRevision, listener);
  }

  @Override
  public CompletableFuture<Long> grantLease(Duration ttl) {
    return delegate.grantLease(ttl);
  }

  @Override
  public CompletableFuture<Void> keepAliveOnce(long leaseId) {
    return delegate.keepAliveOnce(leaseId);
  }

  @Override
  public CompletableFuture<Void> revokeLease(long leaseId) {
    return delegate.revokeLease(leaseId);
  }

  @Override
  public void close() {
    delegate.close();
  }
}
