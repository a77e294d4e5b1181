package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.Compare;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.testkit.ForwardingMetaStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The optimistic loop on the in-memory store with its fault injection; time and sleep are injected. */
@Tag("unit")
class CatalogTxnsTest {
  private final InMemoryMetaStore store = new InMemoryMetaStore();
  private final List<Long> pauses = new ArrayList<>();
  private final long[] now = {0};

  private CatalogTxns txns(MetaStore s, int maxAttempts) {
    return CatalogTxns.builder(s).timeout(Duration.ofSeconds(2)).maxTxnOps(8).maxAttempts(maxAttempts)
        .nanoTime(() -> now[0]).random(() -> new SplittableRandom(7)).sleeper(pauses::add).build();
  }

  private long read(MetaStore s, String key) throws Exception {
    RangeResult r = s.get(key).get();
    return r.kvs().isEmpty() ? 0 : Long.parseLong(r.kvs().get(0).valueUtf8());
  }

  private void put(String key, long v) throws Exception {
    store.commit(Txn.builder().put(key, Long.toString(v).getBytes(StandardCharsets.UTF_8)).build()).get();
  }

  /** Increments "n" by one, comparing the record read; {@code meddle} runs between read and commit. */
  private CatalogTxns.Plan<Long> increment(MetaStore s, Runnable meddle) {
    try {
      RangeResult r = s.get("n").get();
      KeyValue kv = r.kvs().isEmpty() ? null : r.kvs().get(0);
      long v = kv == null ? 0 : Long.parseLong(kv.valueUtf8());
      meddle.run();
      Txn txn = Txn.builder().compare(kv == null ? Compare.absent("n") : Compare.modRevision("n", kv.modRevision()))
          .put("n", Long.toString(v + 1).getBytes(StandardCharsets.UTF_8)).build();
      return new CatalogTxns.Plan<>(txn, rev -> v + 1);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void aLostRaceIsReplannedOnTheWinnersRecordAfterAJitteredPause() throws Exception {
    put("n", 10);
    AtomicInteger attempts = new AtomicInteger();
    long result = txns(store, 32).update("Inc", () -> increment(store, () -> {
      if (attempts.incrementAndGet() == 1) {
        try {
          put("n", 20); // a concurrent writer wins the first attempt
        } catch (Exception e) {
          throw new AssertionError(e);
        }
      }
    }), CatalogTxns.FRESH_READS);
    assertEquals(21, result);
    assertEquals(21, read(store, "n"));
    assertEquals(2, attempts.get());
    assertEquals(1, pauses.size());
    assertTrue(pauses.get(0) >= 0 && pauses.get(0) <= Duration.ofMillis(2).toNanos(), pauses::toString);
  }

  @Test
  void givesUpWithAbortedAfterMaxAttemptsAndWritesNothingOfItsOwn() throws Exception {
    put("n", 1);
    AtomicInteger meddled = new AtomicInteger(1);
    ShardmapException e = assertThrows(ShardmapException.class, () -> txns(store, 3).update("Inc",
        () -> increment(store, () -> {
          try {
            put("n", 100 + meddled.incrementAndGet());
          } catch (Exception x) {
            throw new AssertionError(x);
          }
        }), CatalogTxns.FRESH_READS));
    assertEquals(ErrorCode.ABORTED, e.code());
    assertTrue(e.getMessage().startsWith("Inc: gave up after 3 attempts"), e.getMessage());
    assertEquals(100 + meddled.get(), read(store, "n"));
    assertEquals(2, pauses.size());
  }

  @Test
  void anUnknownOutcomeThatAppliedIsReadBackNotSentTwice() throws Exception {
    put("n", 5);
    // etcd applies the commit but the answer is lost.
    AtomicInteger lost = new AtomicInteger(1);
    MetaStore lossy = new ForwardingMetaStore(store) {
      @Override
      public CompletableFuture<TxnResult> commit(Txn txn) {
        CompletableFuture<TxnResult> f = delegate.commit(txn);
        if (lost.getAndDecrement() > 0) {
          return f.thenCompose(r -> CompletableFuture.failedFuture(
              new StoreException(StoreException.Kind.UNAVAILABLE, "leader lost", null)));
        }
        return f;
      }
    };
    AtomicInteger plans = new AtomicInteger();
    long result = txns(lossy, 32).update("Inc", () -> {
      plans.incrementAndGet();
      return increment(lossy, () -> { });
    }, CatalogTxns.FRESH_READS);
    assertEquals(6, result);
    assertEquals(6, read(store, "n"), "applied exactly once");
    assertEquals(1, plans.get());
  }

  @Test
  void anUnknownOutcomeThatDidNotApplyIsReplanned() throws Exception {
    put("n", 5);
    store.failNext(1, StoreException.Kind.UNAVAILABLE); // the next call (the plan's read) fails
    ShardmapException e = assertThrows(ShardmapException.class, () -> txns(store, 32).update("Inc",
        () -> {
          try {
            store.get("n").get();
          } catch (Exception x) {
            throw StoreErrors.fromStoreRead("the counter", x);
          }
          return increment(store, () -> { });
        }, CatalogTxns.FRESH_READS));
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().startsWith("Inc: could not read the counter from etcd"), e.getMessage());
    assertTrue(e.getMessage().contains("nothing was written"), e.getMessage());

    AtomicInteger plans = new AtomicInteger();
    long result = txns(store, 32).update("Inc", () -> {
      if (plans.incrementAndGet() == 1) {
        CatalogTxns.Plan<Long> p = increment(store, () -> { });
        store.failNext(1, StoreException.Kind.UNAVAILABLE); // the commit fails without applying
        return p;
      }
      return increment(store, () -> { });
    }, CatalogTxns.FRESH_READS);
    assertEquals(6, result);
    assertEquals(6, read(store, "n"));
    assertEquals(2, plans.get());
  }

  @Test
  void aTransactionOverTheOpsLimitIsRefusedBeforeItIsSent() throws Exception {
    Txn.Builder big = Txn.builder();
    for (int i = 0; i < 9; i++) {
      big.put("k" + i, new byte[0]);
    }
    Txn txn = big.build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> txns(store, 32).update("Big",
        () -> new CatalogTxns.Plan<>(txn, rev -> rev), CatalogTxns.FRESH_READS));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(store.getPrefix("k").get().kvs().isEmpty());
  }
}
