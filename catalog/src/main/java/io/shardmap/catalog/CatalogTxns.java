package io.shardmap.catalog;

import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.LongFunction;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import java.util.random.RandomGenerator;

/**
 * The one read-plan-compare-and-set-retry loop of every catalog writer (Vitess's {@code UpdateShardFields}
 * shape): a plan reads what it needs, decides, and returns one transaction whose compares pin every record
 * it derived its writes from; the transaction applies as a whole or not at all, and a lost race is
 * re-planned against the newer state.
 *
 * <p>What it guarantees:
 * <ul>
 *   <li>a change is applied at most once. A commit whose outcome etcd left unknown (no answer in time) is
 *       never simply sent again: every key it compared or wrote is read back. If all its compares still
 *       hold, it did not apply (each plan writes a key it compares), so re-planning is safe; if every put
 *       holds exactly the planned value, written at one revision, and every delete is gone, it applied
 *       there. Anything else means another writer touched the same records, and the caller gets
 *       UNAVAILABLE saying the outcome is unknown;
 *   <li>writers contending for one record back off with jitter ({@link Backoff}) instead of retrying in
 *       lockstep; after {@code maxAttempts} lost races the change fails with ABORTED and nothing written;
 *   <li>a transaction larger than etcd's {@code --max-txn-ops} is refused (INVALID_ARGUMENT) before it is
 *       sent.
 * </ul>
 *
 * <p>Time, randomness and sleeping are injected, so tests drive the loop on {@code InMemoryMetaStore}'s
 * fault injection without waiting.
 */
public final class CatalogTxns {
  /** What a plan writes ({@code txn}), and what the caller gets once it committed at a revision. */
  public record Plan<T>(Txn txn, LongFunction<T> result) {
    public Plan {
      Objects.requireNonNull(txn, "txn");
      Objects.requireNonNull(result, "result");
    }
  }

  /**
   * The caller's view of the catalog around each attempt: the directory server plans on its watched
   * snapshot, so it must refuse while cut off, and wait for its snapshot to pass a revision before it
   * answers or plans again. A writer that plans on fresh etcd reads (the migrator) needs none of it.
   */
  public interface View {
    /** Before each plan: throws (e.g. UNAVAILABLE) when this writer must not plan now. */
    default void beforeAttempt() {}

    /** After a commit at {@code revision}, before the result is returned (read-your-writes). */
    default void committed(long revision) throws InterruptedException {}

    /** After a lost race whose failed compare was evaluated at {@code revision}, before re-planning. */
    default void conflicted(long revision) throws InterruptedException {}
  }

  /** For writers that plan on fresh reads. */
  public static final View FRESH_READS = new View() {};

  /** Sleeps {@code nanos}; tests replace it. */
  public interface Sleeper {
    void sleepNanos(long nanos) throws InterruptedException;
  }

  /** The lost-race pauses of the directory server's admin API: up to 2 ms, doubling to 100 ms, full jitter. */
  public static final Backoff CONFLICT_BACKOFF =
      Backoff.exponential(Duration.ofMillis(2), Duration.ofMillis(100)).withJitter(1.0);
  /** Between read-backs of an unknown outcome: 100 ms. */
  public static final Backoff READ_BACK_BACKOFF =
      Backoff.exponential(Duration.ofMillis(100), Duration.ofMillis(100)).withJitter(0);

  private final MetaStore store;
  private final Duration timeout;
  private final int maxTxnOps;
  private final int maxAttempts;
  private final Duration readBackFor;
  private final Backoff conflictBackoff;
  private final Backoff readBackBackoff;
  private final LongSupplier nanoTime;
  private final Supplier<RandomGenerator> random;
  private final Sleeper sleeper;
  private final UnaryOperator<ShardmapException> onUnknownOutcome;

  private CatalogTxns(Builder b) {
    this.store = b.store;
    this.timeout = b.timeout;
    this.maxTxnOps = b.maxTxnOps;
    this.maxAttempts = b.maxAttempts;
    this.readBackFor = b.readBackFor == null ? b.timeout.multipliedBy(3) : b.readBackFor;
    this.conflictBackoff = b.conflictBackoff;
    this.readBackBackoff = b.readBackBackoff;
    this.nanoTime = b.nanoTime;
    this.random = b.random;
    this.sleeper = b.sleeper;
    this.onUnknownOutcome = b.onUnknownOutcome;
  }

  public static Builder builder(MetaStore store) {
    return new Builder(store);
  }

  /**
   * Plans and commits one change, re-planning after lost races.
   *
   * @param op names the change in every message, e.g. "SplitRange"
   * @param planner reads and decides; called once per attempt. Its ShardmapExceptions (refusals) end the
   *     update unchanged, except UNAVAILABLE, which is prefixed with {@code op} (a planning read failed and
   *     nothing was written). It returns null when there is nothing to write (the update then returns null)
   * @return the plan's result at the revision its transaction committed, or null (see {@code planner})
   * @throws ShardmapException UNAVAILABLE when the outcome of a commit stays unknown (phrased by the
   *     builder's {@link Builder#onUnknownOutcome}), ABORTED after {@code maxAttempts} lost races
   */
  public <T> T update(String op, Supplier<Plan<T>> planner, View view) {
    Backoff.Attempts pauses = conflictBackoff.start(random.get());
    for (int attempt = 1; ; attempt++) {
      view.beforeAttempt();
      Plan<T> plan;
      try {
        plan = planner.get();
        if (plan == null) {
          return null;
        }
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE || e.getMessage().startsWith(op + ": ")) {
          throw e;
        }
        throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": " + e.getMessage(), e);
      }
      Txn txn = plan.txn();
      int ops = Math.max(txn.compares().size(), txn.writes().size());
      if (ops > maxTxnOps) {
        throw ShardmapException.invalid("request", "the change needs " + ops + " operations in one etcd "
            + "transaction, more than the limit of " + maxTxnOps + " (etcd --max-txn-ops); make it in smaller steps");
      }
      TxnResult r;
      try {
        r = commit(op, txn);
      } catch (ShardmapException unknown) {
        if (unknown.code() != ErrorCode.UNAVAILABLE) {
          throw unknown;
        }
        // The outcome is unknown (e.g. the etcd leader died with the request in flight). Retrying
        // blindly could apply it twice; find out instead.
        long applied;
        try {
          applied = readBack(txn, unknown);
        } catch (ShardmapException stillUnknown) {
          throw onUnknownOutcome.apply(stillUnknown);
        }
        if (applied > 0) {
          r = new TxnResult(true, applied);
        } else if (attempt < maxAttempts) {
          continue;
        } else {
          throw onUnknownOutcome.apply(unknown);
        }
      }
      try {
        if (r.succeeded()) {
          view.committed(r.revision());
          return plan.result().apply(r.revision());
        }
        if (attempt >= maxAttempts) {
          throw new ShardmapException(ErrorCode.ABORTED, op + ": gave up after " + attempt
              + " attempts; concurrent changes kept invalidating it. Nothing was written; retry.");
        }
        view.conflicted(r.revision());
        sleeper.sleepNanos(pauses.nextPauseNanos());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ShardmapException(ErrorCode.UNAVAILABLE, op + ": interrupted");
      }
    }
  }

  /**
   * Reads back a transaction whose outcome is unknown until it can tell: the revision it applied at, or 0
   * when it provably did not apply. Retries reads that fail for {@code readBackFor}.
   *
   * @throws ShardmapException UNAVAILABLE (with {@code unknown}'s message) when it cannot tell
   */
  public long readBack(Txn txn, ShardmapException unknown) {
    long deadline = nanoTime.getAsLong() + readBackFor.toNanos();
    Backoff.Attempts pauses = readBackBackoff.start(random.get());
    while (true) {
      try {
        return readBackOnce(txn);
      } catch (ShardmapException e) {
        if (e.code() != ErrorCode.UNAVAILABLE) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, unknown.getMessage() + "; reading it back could "
              + "not tell: " + e.getMessage() + " since", e);
        }
        if (nanoTime.getAsLong() - deadline > 0) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, unknown.getMessage()
              + "; could not read back whether it was applied (" + e.getMessage() + ")", e);
        }
      }
      try {
        sleeper.sleepNanos(pauses.nextPauseNanos());
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
        throw unknown;
      }
    }
  }

  private long readBackOnce(Txn txn) {
    Map<String, KeyValue> current = new HashMap<>();
    Set<String> keys = new LinkedHashSet<>();
    txn.compares().forEach(c -> keys.add(c.key()));
    for (Txn.Write w : txn.writes()) {
      if (w instanceof Txn.Put p) {
        keys.add(p.key());
      } else if (w instanceof Txn.Delete d) {
        keys.add(d.key());
      }
    }
    long readRevision = 0;
    for (String k : keys) {
      RangeResult rr = read(k, false);
      readRevision = Math.max(readRevision, rr.revision());
      rr.kvs().forEach(kv -> current.put(kv.key(), kv));
    }
    boolean comparesHold = true;
    for (Compare c : txn.compares()) {
      KeyValue kv = current.get(c.key());
      if (kv == null ? !c.test(0, 0, 0) : !c.test(kv.version(), kv.createRevision(), kv.modRevision())) {
        comparesHold = false;
      }
    }
    if (comparesHold) {
      return 0;
    }
    long putRevision = 0;
    for (Txn.Write w : txn.writes()) {
      if (w instanceof Txn.Put p) {
        KeyValue kv = current.get(p.key());
        if (kv == null || !Arrays.equals(kv.value(), p.value())
            || (putRevision != 0 && kv.modRevision() != putRevision)) {
          throw unknownOutcome();
        }
        putRevision = kv.modRevision();
      } else if (w instanceof Txn.Delete d) {
        if (current.containsKey(d.key())) {
          throw unknownOutcome();
        }
      } else if (w instanceof Txn.DeletePrefix dp && !read(dp.prefix(), true).kvs().isEmpty()) {
        throw unknownOutcome();
      }
    }
    return putRevision != 0 ? putRevision : readRevision;
  }

  private static ShardmapException unknownOutcome() {
    return new ShardmapException(ErrorCode.INTERNAL, "another writer changed the same records");
  }

  private RangeResult read(String key, boolean prefix) {
    try {
      return (prefix ? store.getPrefix(key) : store.get(key)).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStore("reading back an unconfirmed change", e);
    }
  }

  private TxnResult commit(String op, Txn txn) {
    try {
      return store.commit(txn).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStoreWrite(op, e);
    }
  }

  /** Settings of a {@link CatalogTxns}; every one has the directory server's default. */
  public static final class Builder {
    private final MetaStore store;
    private Duration timeout = Duration.ofSeconds(5);
    private int maxTxnOps = 128;
    private int maxAttempts = 32;
    private Duration readBackFor;
    private Backoff conflictBackoff = CONFLICT_BACKOFF;
    private Backoff readBackBackoff = READ_BACK_BACKOFF;
    private LongSupplier nanoTime = System::nanoTime;
    private Supplier<RandomGenerator> random = ThreadLocalRandom::current;
    private Sleeper sleeper = nanos -> TimeUnit.NANOSECONDS.sleep(nanos);
    private UnaryOperator<ShardmapException> onUnknownOutcome = UnaryOperator.identity();

    private Builder(MetaStore store) {
      this.store = Objects.requireNonNull(store, "store");
    }

    /** The deadline of each etcd request. */
    public Builder timeout(Duration d) {
      this.timeout = Objects.requireNonNull(d, "timeout");
      return this;
    }

    /** etcd's {@code --max-txn-ops}: larger transactions are refused before they are sent. */
    public Builder maxTxnOps(int n) {
      this.maxTxnOps = n;
      return this;
    }

    /** Lost races (and unknown outcomes that did not apply) before ABORTED. */
    public Builder maxAttempts(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("maxAttempts: must be >= 1, got " + n);
      }
      this.maxAttempts = n;
      return this;
    }

    /** How long reading back an unknown outcome is retried (default: three request timeouts). */
    public Builder readBackFor(Duration d) {
      this.readBackFor = Objects.requireNonNull(d, "readBackFor");
      return this;
    }

    public Builder conflictBackoff(Backoff b) {
      this.conflictBackoff = Objects.requireNonNull(b, "conflictBackoff");
      return this;
    }

    public Builder readBackBackoff(Backoff b) {
      this.readBackBackoff = Objects.requireNonNull(b, "readBackBackoff");
      return this;
    }

    /** The monotonic clock of the read-back deadline. */
    public Builder nanoTime(LongSupplier t) {
      this.nanoTime = Objects.requireNonNull(t, "nanoTime");
      return this;
    }

    /** Where jitter comes from (tests pass a seeded generator). */
    public Builder random(Supplier<RandomGenerator> r) {
      this.random = Objects.requireNonNull(r, "random");
      return this;
    }

    public Builder sleeper(Sleeper s) {
      this.sleeper = Objects.requireNonNull(s, "sleeper");
      return this;
    }

    /**
     * Phrases the UNAVAILABLE failure of a change whose outcome stayed unknown (e.g. to tell the operator
     * how to find it out); it must keep the code UNAVAILABLE.
     */
    public Builder onUnknownOutcome(UnaryOperator<ShardmapException> f) {
      this.onUnknownOutcome = Objects.requireNonNull(f, "onUnknownOutcome");
      return this;
    }

    public CatalogTxns build() {
      return new CatalogTxns(this);
    }
  }
}
