package io.shardmap.catalog;

import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

/**
 * A {@link MetaStore} that records how long each etcd request took and how it ended (Vitess's
 * {@code StatsConn}): {@code op} is {@code get}, {@code get_prefix}, {@code txn}, {@code revision},
 * {@code lease_grant}, {@code lease_keepalive} or {@code lease_revoke}, or the name a caller gave a view with
 * {@link #as}; {@code outcome} is {@code ok}, {@code error}, or for a transaction whose compares failed
 * {@code conflict}. Watches are not timed (a watch is a stream, not a round trip).
 *
 * <p>A request is recorded when its future completes, so a caller that stops waiting early (its own
 * timeout) is recorded when etcd answers or the store's own deadline fails it. The decorator does not own
 * the store: {@link #close()} closes the delegate only for the root, not for a view.
 */
public final class MeteredMetaStore implements MetaStore {
  /** Where a timing goes: the directory server records it as {@code shardmap.etcd.requests{op,outcome}}. */
  @FunctionalInterface
  public interface Recorder {
    void record(String op, String outcome, long nanos);
  }

  private final MetaStore delegate;
  private final Recorder recorder;
  private final LongSupplier nanoTime;
  private final String op;
  private final boolean root;

  public MeteredMetaStore(MetaStore delegate, Recorder recorder, LongSupplier nanoTime) {
    this(delegate, recorder, nanoTime, null, true);
  }

  private MeteredMetaStore(MetaStore delegate, Recorder recorder, LongSupplier nanoTime, String op, boolean root) {
    this.delegate = Objects.requireNonNull(delegate, "delegate");
    this.recorder = Objects.requireNonNull(recorder, "recorder");
    this.nanoTime = Objects.requireNonNull(nanoTime, "nanoTime");
    this.op = op;
    this.root = root;
  }

  /** A view that records every request under {@code op} (e.g. {@code probe}): what it is for, not its kind. */
  public MeteredMetaStore as(String op) {
    return new MeteredMetaStore(delegate, recorder, nanoTime, Objects.requireNonNull(op, "op"), false);
  }

  private <T> CompletableFuture<T> timed(String kind, CompletableFuture<T> f, long t0) {
    String name = op != null ? op : kind;
    return f.whenComplete((v, e) -> recorder.record(name,
        e != null ? "error" : v instanceof TxnResult r && !r.succeeded() ? "conflict" : "ok", nanoTime.getAsLong() - t0));
  }

  private <T> CompletableFuture<T> call(String kind, java.util.function.Supplier<CompletableFuture<T>> request) {
    long t0 = nanoTime.getAsLong();
    CompletableFuture<T> f;
    try {
      f = request.get();
    } catch (RuntimeException e) {
      recorder.record(op != null ? op : kind, "error", nanoTime.getAsLong() - t0);
      throw e;
    }
    return timed(kind, f, t0);
  }

  @Override
  public CompletableFuture<RangeResult> get(String key) {
    return call("get", () -> delegate.get(key));
  }

  @Override
  public CompletableFuture<RangeResult> getPrefix(String prefix) {
    return call("get_prefix", () -> delegate.getPrefix(prefix));
  }

  @Override
  public CompletableFuture<TxnResult> commit(Txn txn) {
    return call("txn", () -> delegate.commit(txn));
  }

  @Override
  public CompletableFuture<Long> currentRevision() {
    return call("revision", delegate::currentRevision);
  }

  @Override
  public Watch watch(String prefix, long afterRevision, WatchListener listener) {
    return delegate.watch(prefix, afterRevision, listener);
  }

  @Override
  public CompletableFuture<Long> grantLease(Duration ttl) {
    return call("lease_grant", () -> delegate.grantLease(ttl));
  }

  @Override
  public CompletableFuture<Void> keepAliveOnce(long leaseId) {
    return call("lease_keepalive", () -> delegate.keepAliveOnce(leaseId));
  }

  @Override
  public CompletableFuture<Void> revokeLease(long leaseId) {
    return call("lease_revoke", () -> delegate.revokeLease(leaseId));
  }

  @Override
  public void close() {
    if (root) {
      delegate.close();
    }
  }
}
