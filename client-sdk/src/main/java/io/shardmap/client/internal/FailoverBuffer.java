package io.shardmap.client.internal;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.client.internal.ShardPools.ShardPool;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * Holds calls to a Patroni shard whose primary failed until the map names a new one, like vtgate's
 * buffering during a reparent: a call whose attempt provably did not run (the connection could not be had,
 * broke before COMMIT, the breaker refused it, or the node turned out read-only) waits here instead of
 * failing, then runs again on the new primary's pool. Bounded two ways: at most {@code capacity} calls wait
 * at once in this {@code ShardmapData} (more fail at once), and each call waits at most {@code window} in
 * all (then fails with UNAVAILABLE naming the shard and the wait). While waiting, a call tries the same pool
 * again every {@code probeInterval}, so a primary that comes back in place (no failover: PostgreSQL restarted
 * on the same node) is used again without a map change.
 *
 * <p>Also measures failovers as the SDK sees them, per shard: how many new primaries the map brought
 * (primary term rises) and the time from the map bringing one to the first call that succeeded on it.
 */
public final class FailoverBuffer {
  private static final Logger log = Logger.getLogger(FailoverBuffer.class.getName());

  private final int capacity;
  private final long windowNanos;
  private final long probeNanos;
  private final LongSupplier nanoTime;
  private final Object changed = new Object();
  private final AtomicInteger waiting = new AtomicInteger();
  private final LongAdder buffered = new LongAdder();
  private final LongAdder overflows = new LongAdder();
  private final LongAdder timeouts = new LongAdder();
  private final Map<String, ShardFailovers> shards = new ConcurrentHashMap<>();
  private volatile java.util.function.Consumer<String> onNewShard = s -> {};

  /** A per-shard account of failovers seen. */
  private static final class ShardFailovers {
    final AtomicLong term = new AtomicLong();
    final AtomicLong seen = new AtomicLong();
    /** When the map brought the current term and no call has succeeded on it yet; 0 otherwise. */
    final AtomicLong pendingSince = new AtomicLong();
    final AtomicLong lastFirstWriteNanos = new AtomicLong(-1);
  }

  /** What one buffered call is waiting for; one per call, made at its first wait. */
  public final class Wait {
    private final long deadline;
    private final String shard;

    private Wait(String shard, long start) {
      this.shard = shard;
      this.deadline = start + windowNanos;
    }
  }

  public FailoverBuffer(int capacity, Duration window, Duration probeInterval, LongSupplier nanoTime) {
    this.capacity = capacity;
    this.windowNanos = window.toNanos();
    this.probeNanos = probeInterval.toNanos();
    this.nanoTime = nanoTime;
  }

  /**
   * Whether a failed attempt on {@code pool} is one to buffer: the shard follows Patroni, and the failure
   * says its primary is unreachable or not a primary, in a way that proves nothing ran. Connection losses in
   * autocommit mode have an unknown outcome; they reach here already excluded (they are not NotRun).
   */
  public static boolean isFailover(ShardPool pool, SQLException e, boolean writes) {
    if (pool == null || !pool.followsPatroni()) {
      return false;
    }
    if (e instanceof NotRunException) {
      return true;
    }
    // 25006 read_only_sql_transaction: the node is (again) a standby. A session's read-only state does not
    // change while it lasts (a demotion restarts PostgreSQL), so no write of this attempt ran on it.
    return writes && "25006".equals(e.getSQLState());
  }

  /**
   * Waits until {@code current} gives another pool for the shard than {@code failed}, or the probe interval
   * passed (try {@code failed} again), whichever is first. Throws UNAVAILABLE, with {@code cause}, when the
   * call's window is used up or the buffer is full.
   */
  public Wait await(Wait wait, ShardPool failed, Supplier<ShardPool> current, SQLException cause) {
    long now = nanoTime.getAsLong();
    Wait w = wait;
    if (w == null) {
      w = new Wait(failed.shard(), now);
      buffered.increment();
      failed.softEvictPrimary(); // its idle connections are to a dead or demoted node: nobody gets them again
    }
    if (now - w.deadline >= 0) {
      timeouts.increment();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "shard '" + w.shard + "' had no reachable primary for "
          + TimeUnit.NANOSECONDS.toMillis(windowNanos) + " ms (the failover buffer's window; last tried "
          + failed.describePrimary() + ", primary term " + failed.primaryTerm() + "); the call did not run: "
          + cause.getMessage(), cause);
    }
    if (waiting.incrementAndGet() > capacity) {
      waiting.decrementAndGet();
      overflows.increment();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "shard '" + w.shard + "' has no reachable primary and the "
          + "failover buffer is full (" + capacity + " calls wait already); the call did not run: "
          + cause.getMessage(), cause);
    }
    try {
      long until = Math.min(w.deadline, now + probeNanos);
      synchronized (changed) {
        // Every map change wakes us; a pool other than the failed one means new endpoints or a new term.
        long left;
        while (current.get() == failed && (left = until - nanoTime.getAsLong()) > 0) {
          changed.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while waiting for shard '" + w.shard
          + "' to have a primary again; the call did not run", cause);
    } finally {
      waiting.decrementAndGet();
    }
    return w;
  }

  /** The map changed: wakes the waiting calls, and notes new primary terms of Patroni shards. */
  public void mapChanged(Map<String, Long> primaryTerms) {
    long now = nanoTime.getAsLong();
    primaryTerms.forEach((shard, term) -> {
      ShardFailovers f = shards.get(shard);
      if (f == null) {
        f = shards.computeIfAbsent(shard, s -> new ShardFailovers());
        onNewShard.accept(shard);
      }
      long old = f.term.getAndAccumulate(term, Math::max);
      if (old != 0 && term > old) {
        f.seen.incrementAndGet();
        f.pendingSince.set(now == 0 ? 1 : now);
        log.warning("shardmap data: shard '" + shard + "' has a new primary (primary term " + old + " -> " + term
            + "); its old primary's connections are closed and calls waiting for it run on the new one");
      }
    });
    synchronized (changed) {
      changed.notifyAll();
    }
  }

  /** A call on the primary of {@code shard} succeeded: closes the shard's failover measurement if one is open. */
  public void succeeded(String shard) {
    ShardFailovers f = shards.get(shard);
    if (f == null) {
      return;
    }
    long since = f.pendingSince.get();
    if (since != 0 && f.pendingSince.compareAndSet(since, 0)) {
      long took = nanoTime.getAsLong() - since;
      f.lastFirstWriteNanos.set(took);
      log.info("shardmap data: first call on shard '" + shard + "''s new primary succeeded "
          + TimeUnit.NANOSECONDS.toMillis(took) + " ms after the map named it");
    }
  }

  /** Called once with each Patroni shard's name when a map first shows it (for per-shard meters). */
  public void onNewShard(java.util.function.Consumer<String> listener) {
    this.onNewShard = listener;
  }

  /** Calls waiting now. */
  public int waiting() {
    return waiting.get();
  }

  /** Calls that waited at least once. */
  public long buffered() {
    return buffered.sum();
  }

  /** Calls refused because the buffer was full. */
  public long overflows() {
    return overflows.sum();
  }

  /** Calls that waited their whole window without a primary. */
  public long timeouts() {
    return timeouts.sum();
  }

  /** New primaries the map brought, per Patroni shard. */
  public Map<String, Long> failoversSeen() {
    Map<String, Long> out = new java.util.TreeMap<>();
    shards.forEach((s, f) -> out.put(s, f.seen.get()));
    return out;
  }

  /**
   * Per shard, the time from the map naming its latest new primary to the first call that succeeded there;
   * absent while none has succeeded yet, or before the first failover.
   */
  public Map<String, Duration> firstCallAfterFailover() {
    Map<String, Duration> out = new java.util.TreeMap<>();
    shards.forEach((s, f) -> {
      long n = f.lastFirstWriteNanos.get();
      if (n >= 0) {
        out.put(s, Duration.ofNanos(n));
      }
    });
    return out;
  }
}
