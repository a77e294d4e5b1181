package io.shardmap.catalog;

import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * One role among the processes of a prefix (the directory servers' resolver and size sampler, the balancer),
 * held by whoever holds {@code key} under an etcd lease:
 * the key is created only if absent (one transaction), so at most one process holds it at a time, and it
 * vanishes with its holder's lease (the holder died, or could not renew for the TTL) or at once when the
 * holder {@link #release}s it. Another process then creates it at its next {@link #check}.
 *
 * <p>What {@link #check} answers is the holder's own view: it says "held" only while the lease was renewed
 * less than one TTL ago, measured from before the renewal was sent (etcd counts the TTL from when it
 * received it, later), and while the key still carries this lease. A holder cut off from etcd therefore
 * stops before another can start, as long as the clocks' rates agree; the role it guards must still be safe
 * with two holders for the moments where they do not (the resolver is: its steps are idempotent and its
 * decisions are create-if-absent).
 *
 * <p>Not thread-safe: one thread calls {@link #check} and {@link #release}.
 */
public final class LeasedSingleton {
  private static final Logger log = Logger.getLogger(LeasedSingleton.class.getName());

  private final MeteredMetaStore store;
  private final String key;
  private final String holder;
  private final Duration ttl;
  private final long ttlNanos;
  private final long requestTimeoutMs;
  private final LongSupplier nanoTime;
  /** Prefix of the operation names its etcd requests are timed under (e.g. {@code txn_resolver}). */
  private final String op;

  private long leaseId;
  /** When the last successful grant or renewal of {@link #leaseId} was sent. */
  private long renewedNanos;
  private String otherHolder;
  private String failing;

  /**
   * @param op the prefix of the operation names its etcd requests are timed under in {@code store}
   *     ({@code op_lease_grant}, {@code op_keepalive}, ...)
   */
  public LeasedSingleton(MeteredMetaStore store, String key, String holder, Duration ttl, Duration requestTimeout,
                         LongSupplier nanoTime, String op) {
    this.store = store;
    this.op = op;
    this.key = key;
    this.holder = holder;
    this.ttl = ttl;
    this.ttlNanos = ttl.toNanos();
    this.requestTimeoutMs = requestTimeout.toMillis();
    this.nanoTime = nanoTime;
  }

  /**
   * Takes the role if nobody holds it, renews it when a third of the TTL has passed, and says whether this
   * process holds it now. Blocks for at most a few etcd round trips, each bounded by the request timeout.
   */
  public boolean check() throws InterruptedException {
    long now = nanoTime.getAsLong();
    if (leaseId != 0) {
      if (now - renewedNanos >= ttlNanos / 3) {
        renew(now);
      }
      if (leaseId != 0 && nanoTime.getAsLong() - renewedNanos >= ttlNanos) {
        lost("the lease of " + key + " was not renewed for " + ttl.toMillis() + " ms (etcd: " + failing + ")");
      }
      return leaseId != 0;
    }
    acquire(now);
    return leaseId != 0;
  }

  /** Whether the last {@link #check} found this process holding the role. */
  public boolean held() {
    return leaseId != 0;
  }

  /** Gives the role up at once (revokes the lease, which deletes the key) if this process holds it. */
  public void release() {
    long lease = leaseId;
    leaseId = 0;
    if (lease == 0) {
      return;
    }
    try {
      store.as(op + "_lease_revoke").revokeLease(lease).get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      log.info("released " + key + " (lease " + Long.toHexString(lease) + " revoked)");
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      log.warning("revoking the lease of " + key + " failed (" + describe(e) + "); another process takes the role "
          + "when it expires, within " + ttl.toMillis() + " ms");
    }
  }

  private void renew(long now) throws InterruptedException {
    try {
      store.as(op + "_keepalive").keepAliveOnce(leaseId).get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      // The key may have been deleted by hand while the lease lived: then this process no longer holds it.
      RangeResult r = store.as(op + "_get").get(key).get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      if (r.kvs().isEmpty() || r.kvs().get(0).lease() != leaseId) {
        lost("the key " + key + " no longer carries this process's lease");
        return;
      }
      renewedNanos = now;
      recovered();
    } catch (ExecutionException | TimeoutException e) {
      if (StoreErrors.kind(e) == StoreException.Kind.NOT_FOUND) {
        lost("the lease of " + key + " expired");
        return;
      }
      fault("renewing the lease of " + key + " failed", e);
    }
  }

  private void acquire(long now) throws InterruptedException {
    long granted = 0;
    try {
      RangeResult current = store.as(op + "_get").get(key).get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      if (!current.kvs().isEmpty()) {
        noteHolder(current.kvs().get(0));
        recovered();
        return;
      }
      granted = store.as(op + "_lease_grant").grantLease(ttl).get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      TxnResult r = store.as(op + "_acquire").commit(Txn.builder().compare(Compare.absent(key))
          .put(key, holder.getBytes(StandardCharsets.UTF_8), granted).build())
          .get(requestTimeoutMs, TimeUnit.MILLISECONDS);
      recovered();
      if (r.succeeded()) {
        leaseId = granted;
        renewedNanos = now;
        otherHolder = null;
        log.info("this process (" + holder + ") holds " + key + " (lease " + Long.toHexString(granted) + ", TTL "
            + ttl.toMillis() + " ms)");
        return;
      }
    } catch (ExecutionException | TimeoutException e) {
      fault("taking " + key + " failed", e);
    }
    if (granted != 0) {
      // Another process was quicker (or the put failed): this lease holds nothing; let it go now.
      store.revokeLease(granted);
    }
  }

  private void noteHolder(KeyValue kv) {
    String who = kv.valueUtf8();
    if (!who.equals(otherHolder)) {
      otherHolder = who;
      log.info(key + " is held by " + who + "; this process (" + holder + ") takes it over if that lease ends");
    }
  }

  private void lost(String why) {
    long lease = leaseId;
    leaseId = 0;
    log.warning("this process (" + holder + ") no longer holds " + key + ": " + why);
    if (lease != 0) {
      store.revokeLease(lease); // fire and forget: it is gone or about to be
    }
  }

  private void recovered() {
    if (failing != null) {
      log.info("etcd answers " + key + "'s holder again after: " + failing);
      failing = null;
    }
  }

  private void fault(String what, Exception e) {
    String message = what + " (" + describe(e) + ")";
    if (failing == null) {
      log.warning(message + "; retried at every check, logged once");
    }
    failing = message;
  }

  private String describe(Exception e) {
    Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
    return cause instanceof TimeoutException ? "no answer from etcd within " + requestTimeoutMs + " ms"
        : String.valueOf(cause.getMessage());
  }

}
