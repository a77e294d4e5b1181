package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import io.shardmap.store.WatchListener;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link MetaStore} must show, run against the in-memory fake and against etcd
 * so that domain code tested on one behaves the same on the other.
 *
 * <p>Each test works under its own key prefix (given to {@link #newStore}) and compares revisions
 * only relative to ones it observed, so implementations may share one etcd cluster across tests.
 * The compaction tests do compact the whole store (that is what compaction is).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
// "try": watches are opened in try-with-resources only to be closed at the end of the block.
@SuppressWarnings("try")
public abstract class MetaStoreContract {

  /** Upper bound for one store call or one expected listener signal. */
  protected static final Duration AWAIT = Duration.ofSeconds(10);
  /** How long "nothing else arrives" is watched for. */
  protected static final Duration QUIET = Duration.ofMillis(300);

  protected MetaStore store;
  /** Unique for each test; every key a test writes starts with it and it ends with '/'. */
  protected String prefix;

  /** A store for one test; closed by the contract after the test. */
  protected abstract MetaStore newStore(String testPrefix);

  /** Compacts the history of {@code store} at {@code revision}, waiting until watches see it. */
  protected abstract void compact(MetaStore store, long revision);

  /** Lets {@code duration} pass for leases of {@code store} (a fake clock advances; real time sleeps). */
  protected abstract void passTime(MetaStore store, Duration duration);

  /** The store's limit on compares and on writes in one transaction (etcd's {@code --max-txn-ops}). */
  protected int maxTxnOps() {
    return 128;
  }

  @BeforeEach
  void openStore(TestInfo info) {
    String test = info.getTestMethod().map(m -> m.getName()).orElse("test");
    prefix = "/contract/" + test + "/" + UUID.randomUUID() + "/";
    store = newStore(prefix);
  }

  @AfterEach
  void closeStore() {
    if (store != null) {
      store.close();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reads and single writes
  // ---------------------------------------------------------------------------------------------

  @Test
  void readsOfAbsentKeysAreEmptyAndCarryARevision() {
    RangeResult one = await(store.get(prefix + "missing"));
    assertTrue(one.kvs().isEmpty());
    assertTrue(one.revision() >= 1, "an empty store is at revision 1, like etcd: " + one.revision());
    RangeResult all = await(store.getPrefix(prefix));
    assertTrue(all.kvs().isEmpty());
    assertTrue(all.revision() >= one.revision());
  }

  @Test
  void putCreatesThenUpdatesKeyCounters() {
    String key = prefix + "k";
    long r1 = put(key, "v1");
    KeyValue first = single(await(store.get(key)));
    assertEquals(key, first.key());
    assertEquals("v1", first.valueUtf8());
    assertEquals(r1, first.createRevision());
    assertEquals(r1, first.modRevision());
    assertEquals(1, first.version());
    assertEquals(0, first.lease());

    long r2 = put(key, "v2");
    assertTrue(r2 > r1);
    RangeResult read = await(store.get(key));
    assertTrue(read.revision() >= r2, "a read after a write is at least at the write's revision");
    KeyValue second = single(read);
    assertEquals("v2", second.valueUtf8());
    assertEquals(r1, second.createRevision(), "updates keep the create revision");
    assertEquals(r2, second.modRevision());
    assertEquals(2, second.version());

    long r3 = commit(Txn.builder().delete(key).build()).revision();
    assertTrue(r3 > r2);
    assertTrue(await(store.get(key)).kvs().isEmpty());
    long r4 = put(key, "v3");
    KeyValue reborn = single(await(store.get(key)));
    assertEquals(r4, reborn.createRevision(), "a key created again starts a new life");
    assertEquals(1, reborn.version());
  }

  @Test
  void getPrefixReturnsKeysSortedByTheirUtf8BytesAtOneRevision() {
    // U+1F600 sorts after U+FF01 in UTF-8 byte order but before it in UTF-16 (String.compareTo) order.
    List<String> names = new ArrayList<>(List.of("b", "a", "a0", "c/1", "Z", "\u00e9", "\uFF01",
        "\uD83D\uDE00", "a/b", "a-"));
    Collections.shuffle(names, new Random(42));
    long last = 0;
    for (String name : names) {
      last = put(prefix + name, name);
    }
    // A sibling whose name shares the text of the prefix without its trailing '/'.
    put(prefix.substring(0, prefix.length() - 1) + "0", "outside");

    RangeResult result = await(store.getPrefix(prefix));
    List<String> expected = new ArrayList<>();
    for (String name : names) {
      expected.add(prefix + name);
    }
    expected.sort(MetaStoreContract::compareUtf8);
    List<String> actual = result.kvs().stream().map(KeyValue::key).toList();
    assertEquals(expected, actual);
    assertTrue(result.revision() >= last);
    for (KeyValue kv : result.kvs()) {
      assertEquals(kv.key().substring(prefix.length()), kv.valueUtf8());
      assertTrue(kv.modRevision() <= result.revision(), "every key is as of the result's revision");
    }
  }

  @Test
  void currentRevisionIsAtLeastTheLastWrite() {
    long written = put(prefix + "k", "v");
    long current = await(store.currentRevision());
    assertTrue(current >= written, current + " < " + written);
  }

  // ---------------------------------------------------------------------------------------------
  // Transactions
  // ---------------------------------------------------------------------------------------------

  @Test
  void compareOfEveryTargetAndOperatorDecidesTheTransaction() {
    String key = prefix + "guarded";
    long created = put(key, "one");
    long modified = put(key, "two");
    long[] actual = new long[3];
    for (Compare.Target target : Compare.Target.values()) {
      actual[target.ordinal()] = switch (target) {
        case VERSION -> 2;
        case CREATE_REVISION -> created;
        case MOD_REVISION -> modified;
      };
    }
    int marker = 0;
    for (Compare.Target target : Compare.Target.values()) {
      long a = actual[target.ordinal()];
      for (Compare.Op op : Compare.Op.values()) {
        long holds = switch (op) {
          case EQUAL -> a;
          case NOT_EQUAL -> a + 1;
          case GREATER -> a - 1;
          case LESS -> a + 1;
        };
        long fails = switch (op) {
          case EQUAL -> a + 1;
          case NOT_EQUAL, GREATER, LESS -> a;
        };
        for (boolean expected : new boolean[] {true, false}) {
          String markerKey = prefix + "marker/" + marker++;
          long before = await(store.currentRevision());
          TxnResult r = commit(Txn.builder()
              .compare(new Compare(key, target, op, expected ? holds : fails))
              .put(markerKey, bytes("x"))
              .build());
          String what = target + " " + op + " " + (expected ? holds : fails) + " against " + a;
          assertEquals(expected, r.succeeded(), what);
          assertEquals(expected, !await(store.get(markerKey)).kvs().isEmpty(), what + ": write applied iff compares hold");
          if (expected) {
            assertTrue(r.revision() > before, what + ": a successful write moves the revision");
          } else {
            long after = await(store.currentRevision());
            assertTrue(r.revision() >= before && r.revision() <= after,
                what + ": a failed txn reports the revision it was evaluated at");
          }
        }
      }
    }
  }

  @Test
  void anAbsentKeyComparesAsAllZero() {
    String key = prefix + "never";
    assertTrue(commit(Txn.builder().compare(new Compare(key, Compare.Target.VERSION, Compare.Op.EQUAL, 0))
        .compare(new Compare(key, Compare.Target.CREATE_REVISION, Compare.Op.EQUAL, 0))
        .compare(new Compare(key, Compare.Target.MOD_REVISION, Compare.Op.EQUAL, 0)).build()).succeeded());
    assertFalse(commit(Txn.builder().compare(new Compare(key, Compare.Target.MOD_REVISION, Compare.Op.GREATER, 0))
        .build()).succeeded());
  }

  @Test
  void absentAndPresentGuardCreateAndUpdate() {
    String key = prefix + "k";
    assertFalse(commit(Txn.builder().compare(Compare.present(key)).put(key, bytes("update")).build()).succeeded());
    assertTrue(await(store.get(key)).kvs().isEmpty());
    assertTrue(commit(Txn.builder().compare(Compare.absent(key)).put(key, bytes("create")).build()).succeeded());
    assertFalse(commit(Txn.builder().compare(Compare.absent(key)).put(key, bytes("again")).build()).succeeded());
    assertTrue(commit(Txn.builder().compare(Compare.present(key)).put(key, bytes("update")).build()).succeeded());
    assertEquals("update", single(await(store.get(key))).valueUtf8());
  }

  @Test
  void allWritesOfOneTransactionLandAtOneRevision() {
    put(prefix + "c", "doomed");
    long before = await(store.currentRevision());
    TxnResult r = commit(Txn.builder()
        .put(prefix + "a", bytes("1"))
        .put(prefix + "b", bytes("2"))
        .delete(prefix + "c")
        .build());
    assertTrue(r.succeeded());
    assertTrue(r.revision() > before);
    List<KeyValue> kvs = await(store.getPrefix(prefix)).kvs();
    assertEquals(List.of(prefix + "a", prefix + "b"), kvs.stream().map(KeyValue::key).toList());
    for (KeyValue kv : kvs) {
      assertEquals(r.revision(), kv.modRevision());
    }
  }

  @Test
  void aFailedTransactionWritesNothing() {
    put(prefix + "existing", "old");
    long before = await(store.currentRevision());
    TxnResult r = commit(Txn.builder()
        .compare(Compare.absent(prefix + "existing"))
        .put(prefix + "existing", bytes("new"))
        .put(prefix + "other", bytes("x"))
        .deletePrefix(prefix + "zzz")
        .build());
    assertFalse(r.succeeded());
    long after = await(store.currentRevision());
    assertTrue(r.revision() >= before && r.revision() <= after);
    List<KeyValue> kvs = await(store.getPrefix(prefix)).kvs();
    assertEquals(1, kvs.size());
    assertEquals("old", kvs.get(0).valueUtf8());
  }

  @Test
  void aTransactionThatChangesNothingDoesNotCreateARevision() {
    long before = await(store.currentRevision());
    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, before, recorder)) {
      TxnResult r = commit(Txn.builder().delete(prefix + "absent").deletePrefix(prefix + "none/").build());
      assertTrue(r.succeeded());
      long after = await(store.currentRevision());
      assertTrue(r.revision() >= before && r.revision() <= after);
      long marker = put(prefix + "marker", "m");
      Batch batch = recorder.nextBatch();
      assertEquals(marker, batch.revision(), "the no-op transaction produced no watch event");
    }
  }

  @Test
  void concurrentCompareAndSetIncrementsLoseNoUpdate() throws Exception {
    String counter = prefix + "counter";
    int threads = 4;
    int perThread = 50;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    AtomicInteger conflicts = new AtomicInteger();
    try {
      List<Future<?>> workers = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        workers.add(pool.submit(() -> {
          for (int i = 0; i < perThread; i++) {
            boolean done = false;
            for (int attempt = 0; attempt < 10_000 && !done; attempt++) {
              RangeResult read = await(store.get(counter));
              long value = read.kvs().isEmpty() ? 0 : Long.parseLong(read.kvs().get(0).valueUtf8());
              Compare guard = read.kvs().isEmpty()
                  ? Compare.absent(counter)
                  : Compare.modRevision(counter, read.kvs().get(0).modRevision());
              done = commit(Txn.builder().compare(guard).put(counter, bytes(Long.toString(value + 1))).build())
                  .succeeded();
              if (!done) {
                conflicts.incrementAndGet();
              }
            }
            assertTrue(done, "an increment did not get through in 10000 attempts");
          }
          return null;
        }));
      }
      for (Future<?> w : workers) {
        w.get(50, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
    KeyValue kv = single(await(store.get(counter)));
    assertEquals(threads * perThread, Long.parseLong(kv.valueUtf8()),
        "every increment applied exactly once (" + conflicts.get() + " lost races were retried)");
    assertEquals(threads * perThread, kv.version());
  }

  @Test
  void deletePrefixRemovesExactlyTheKeysUnderItAtOneRevision() {
    put(prefix + "a/1", "x");
    put(prefix + "a/2", "x");
    put(prefix + "ab", "x");
    put(prefix + "b/1", "x");
    long before = await(store.currentRevision());
    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, before, recorder)) {
      TxnResult r = commit(Txn.builder().deletePrefix(prefix + "a/").build());
      assertTrue(r.succeeded());
      assertEquals(List.of(prefix + "ab", prefix + "b/1"),
          await(store.getPrefix(prefix)).kvs().stream().map(KeyValue::key).toList());
      Batch batch = recorder.nextBatch();
      assertEquals(r.revision(), batch.revision());
      assertEquals(List.of(prefix + "a/1", prefix + "a/2"), batch.keys());
      for (WatchEvent e : batch.events()) {
        assertEquals(WatchEvent.Type.DELETE, e.type());
      }
    }
  }

  @Test
  void aKeyWrittenTwiceInOneTransactionIsRejected() {
    String key = prefix + "k";
    assertFailsWith(StoreException.Kind.INTERNAL,
        store.commit(Txn.builder().put(key, bytes("1")).put(key, bytes("2")).build()));
    assertFailsWith(StoreException.Kind.INTERNAL,
        store.commit(Txn.builder().delete(key).put(key, bytes("1")).build()));
    assertFailsWith(StoreException.Kind.INTERNAL,
        store.commit(Txn.builder().deletePrefix(prefix).put(key, bytes("1")).build()));
    assertTrue(await(store.getPrefix(prefix)).kvs().isEmpty(), "a rejected transaction writes nothing");
    // Deleting the same key twice is allowed (etcd only rejects puts that collide).
    assertTrue(commit(Txn.builder().delete(key).delete(key).build()).succeeded());
  }

  @Test
  void moreOperationsThanTheLimitAreTooLarge() {
    int limit = maxTxnOps();
    Txn.Builder tooManyWrites = Txn.builder();
    for (int i = 0; i <= limit; i++) {
      tooManyWrites.put(prefix + "w/" + i, bytes("x"));
    }
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.commit(tooManyWrites.build()));

    Txn.Builder tooManyCompares = Txn.builder();
    for (int i = 0; i <= limit; i++) {
      tooManyCompares.compare(Compare.absent(prefix + "c/" + i));
    }
    tooManyCompares.put(prefix + "c/result", bytes("x"));
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.commit(tooManyCompares.build()));
    assertTrue(await(store.getPrefix(prefix)).kvs().isEmpty());

    Txn.Builder atTheLimit = Txn.builder();
    for (int i = 0; i < limit; i++) {
      atTheLimit.compare(Compare.absent(prefix + "w/" + i));
      atTheLimit.put(prefix + "w/" + i, bytes("x"));
    }
    TxnResult r = commit(atTheLimit.build());
    assertTrue(r.succeeded());
    List<KeyValue> written = await(store.getPrefix(prefix)).kvs();
    assertEquals(limit, written.size());
    for (KeyValue kv : written) {
      assertEquals(r.revision(), kv.modRevision());
    }
  }

  @Test
  void anOversizedRequestIsTooLarge() {
    // 1.75 MiB: above etcd's default --max-request-bytes (1.5 MiB).
    byte[] big = new byte[1792 * 1024];
    Arrays.fill(big, (byte) 'x');
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.commit(Txn.builder().put(prefix + "big", big).build()));
    assertTrue(await(store.get(prefix + "big")).kvs().isEmpty());
  }

  // ---------------------------------------------------------------------------------------------
  // Watches
  // ---------------------------------------------------------------------------------------------

  @Test
  void watchReplaysHistoryInOrderThenContinuesLive() {
    String w = prefix + "w/";
    long start = await(store.currentRevision());
    long r1 = put(w + "a", "1");
    long r2 = commit(Txn.builder()
        .put(w + "b", bytes("2"))
        .put(w + "c", bytes("3"))
        .delete(w + "a")
        .put(prefix + "outside", bytes("not watched"))
        .build()).revision();
    put(prefix + "outside", "not watched either");
    long r4 = put(w + "d", "4");

    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(w, start, recorder)) {
      Batch b1 = recorder.nextBatch();
      assertEquals(r1, b1.revision());
      assertEquals(List.of(w + "a"), b1.keys());
      assertEquals(WatchEvent.Type.PUT, b1.events().get(0).type());
      KeyValue a = b1.events().get(0).kv();
      assertEquals("1", a.valueUtf8());
      assertEquals(r1, a.createRevision());
      assertEquals(r1, a.modRevision());
      assertEquals(1, a.version());

      Batch b2 = recorder.nextBatch();
      assertEquals(r2, b2.revision(), "all events of one txn arrive as one batch");
      assertEquals(List.of(w + "b", w + "c", w + "a"), b2.keys(), "events of a revision keep the txn's write order");
      assertEquals(List.of(WatchEvent.Type.PUT, WatchEvent.Type.PUT, WatchEvent.Type.DELETE), b2.types());
      KeyValue deleted = b2.events().get(2).kv();
      assertEquals(0, deleted.value().length, "a delete carries an empty value");
      assertEquals(r2, deleted.modRevision(), "a delete carries the deleting revision");

      Batch b4 = recorder.nextBatch();
      assertEquals(r4, b4.revision(), "revisions without events under the prefix produce no batch");

      long r5 = commit(Txn.builder().put(w + "e", bytes("5")).put(w + "f", bytes("6")).build()).revision();
      Batch b5 = recorder.nextBatch();
      assertEquals(r5, b5.revision());
      assertEquals(List.of(w + "e", w + "f"), b5.keys());
      long r6 = put(w + "e", "7");
      Batch b6 = recorder.nextBatch();
      assertEquals(r6, b6.revision());
      assertEquals(2, b6.events().get(0).kv().version());
      recorder.expectNoBatch();
      recorder.assertNoOverlap();
    }
  }

  @Test
  void manyRevisionsArriveOnceEachInStrictOrder() {
    long start = await(store.currentRevision());
    Recorder recorder = new Recorder();
    List<Long> written = new ArrayList<>();
    try (Watch watch = store.watch(prefix, start, recorder)) {
      for (int i = 0; i < 40; i++) {
        written.add(put(prefix + "k" + (i % 7), Integer.toString(i)));
      }
      List<Long> seen = new ArrayList<>();
      for (int i = 0; i < written.size(); i++) {
        seen.add(recorder.nextBatch().revision());
      }
      assertEquals(written, seen);
      recorder.expectNoBatch();
      recorder.assertNoOverlap();
    }
  }

  @Test
  void aWatchFromTheCurrentRevisionSeesOnlyLaterWrites() {
    put(prefix + "old", "x");
    long now = await(store.currentRevision());
    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, now, recorder)) {
      long r = put(prefix + "new", "y");
      Batch b = recorder.nextBatch();
      assertEquals(r, b.revision());
      assertEquals(List.of(prefix + "new"), b.keys());
    }
  }

  @Test
  void aClosedWatchDeliversNothingMore() {
    long now = await(store.currentRevision());
    Recorder recorder = new Recorder();
    Watch watch = store.watch(prefix, now, recorder);
    long r = put(prefix + "a", "1");
    assertEquals(r, recorder.nextBatch().revision());
    watch.close();
    watch.close();
    put(prefix + "b", "2");
    recorder.expectNoBatch();
  }

  @Test
  void listenerCallsDoNotOverlapAndMayCallTheStore() {
    long now = await(store.currentRevision());
    AtomicReference<Throwable> listenerFailure = new AtomicReference<>();
    Thread testThread = Thread.currentThread();
    Recorder recorder = new Recorder() {
      @Override
      public void onBatch(long revision, List<WatchEvent> events) {
        try {
          assertNotEquals(testThread, Thread.currentThread(), "listeners never run on the writer's thread");
          // A listener may use the store synchronously: no store lock is held around listener calls.
          RangeResult read = store.get(events.get(0).kv().key()).get(AWAIT.toMillis(), TimeUnit.MILLISECONDS);
          assertTrue(read.revision() >= revision);
          Thread.sleep(2);
        } catch (Throwable t) {
          listenerFailure.compareAndSet(null, t);
        }
        super.onBatch(revision, events);
      }
    };
    try (Watch watch = store.watch(prefix, now, recorder)) {
      List<CompletableFuture<TxnResult>> writes = new ArrayList<>();
      for (int i = 0; i < 20; i++) {
        writes.add(store.commit(Txn.builder().put(prefix + "k" + i, bytes("v")).build()));
      }
      for (CompletableFuture<TxnResult> f : writes) {
        assertTrue(await(f).succeeded());
      }
      for (int i = 0; i < 20; i++) {
        recorder.nextBatch();
      }
      assertNull(listenerFailure.get(), () -> "listener failed: " + listenerFailure.get());
      recorder.assertNoOverlap();
    }
  }

  @Test
  void aWatchThatNeedsCompactedHistoryIsToldOnceAndEnds() {
    long r1 = put(prefix + "a", "1");
    put(prefix + "b", "2");
    long r3 = put(prefix + "c", "3");
    compact(store, r3);

    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, r1 - 1, recorder)) {
      Signal first = recorder.next(s -> !(s instanceof Progress) && !(s instanceof TransientError));
      Compacted compacted = assertInstanceOf(Compacted.class, first, "expected onCompacted, got " + first);
      assertEquals(r3, compacted.revision(), "the compact revision is the oldest one still available");
      put(prefix + "d", "4");
      recorder.expectNoBatch();
    }
  }

  @Test
  void aCaughtUpWatchIsNotDisturbedByCompaction() {
    long now = await(store.currentRevision());
    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, now, recorder)) {
      long r1 = put(prefix + "a", "1");
      assertEquals(r1, recorder.nextBatch().revision());
      compact(store, r1);
      long r2 = put(prefix + "b", "2");
      assertEquals(r2, recorder.nextBatch().revision());
      recorder.expectNoBatch();
    }
  }

  @Test
  void requestedProgressFollowsEveryEventUpToItsRevision() {
    long r = put(prefix + "a", "1");
    Recorder recorder = new Recorder();
    // Starts behind: the store must finish replaying revision r before it may confirm progress past it.
    try (Watch watch = store.watch(prefix, r - 1, recorder)) {
      watch.requestProgress();
      Signal first = recorder.next(s -> !(s instanceof TransientError));
      Batch batch = assertInstanceOf(Batch.class, first, "progress must not overtake the replayed batch: " + first);
      assertEquals(r, batch.revision());
      long p = recorder.nextProgress();
      assertTrue(p >= r, "progress " + p + " before the last write " + r);

      long r2 = put(prefix + "b", "2");
      assertEquals(r2, recorder.nextBatch().revision());
      watch.requestProgress();
      long p2 = recorder.nextProgress();
      assertTrue(p2 >= r2, "progress " + p2 + " before the last write " + r2);
    }
  }

  /**
   * Progress requests racing concurrent writes must never cost an event. etcd before 3.4.25 / 3.5.8
   * (etcd issue 15220) sends a requested progress answer around the watcher's event queue, so an
   * answer for revision R can arrive before events of revisions at or below R; a watch that took the
   * answer as its resume or duplicate mark dropped those events (a directory server then lost a split).
   */
  @Test
  void progressRequestsRacingWritesLoseNoEvent() throws Exception {
    long start = await(store.currentRevision());
    Recorder recorder = new Recorder();
    int writers = 4;
    int perWriter = 60;
    ExecutorService pool = Executors.newFixedThreadPool(writers);
    try (Watch watch = store.watch(prefix, start, recorder)) {
      List<Future<List<Long>>> futures = new ArrayList<>();
      for (int w = 0; w < writers; w++) {
        int ww = w;
        futures.add(pool.submit(() -> {
          List<Long> revisions = new ArrayList<>();
          for (int i = 0; i < perWriter; i++) {
            revisions.add(put(prefix + "w" + ww + "-" + (i % 5), Integer.toString(i)));
          }
          return revisions;
        }));
      }
      // Bounded by the writers' end and by a hard cap on requests.
      for (int i = 0; i < 5_000 && !futures.stream().allMatch(Future::isDone); i++) {
        watch.requestProgress();
        Thread.sleep(0, 200_000);
      }
      java.util.TreeSet<Long> written = new java.util.TreeSet<>();
      for (Future<List<Long>> f : futures) {
        written.addAll(f.get(AWAIT.toMillis(), TimeUnit.MILLISECONDS));
      }
      java.util.TreeSet<Long> seen = new java.util.TreeSet<>();
      while (!seen.containsAll(written)) {
        Signal s;
        try {
          s = recorder.next(x -> x instanceof Batch);
        } catch (AssertionError nothingWithinAwait) {
          break;
        }
        seen.add(((Batch) s).revision());
      }
      java.util.TreeSet<Long> missing = new java.util.TreeSet<>(written);
      missing.removeAll(seen);
      assertTrue(missing.isEmpty(), () -> "the watch lost the events of revisions " + missing + " of "
          + written.size() + " writes");
      recorder.assertNoOverlap();
    } finally {
      pool.shutdownNow();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Leases
  // ---------------------------------------------------------------------------------------------

  @Test
  void revokingALeaseDeletesItsKeys() {
    long lease = await(store.grantLease(Duration.ofSeconds(30)));
    String key = prefix + "leased";
    long r = commit(Txn.builder().put(key, bytes("v"), lease).put(prefix + "plain", bytes("p")).build()).revision();
    KeyValue kv = single(await(store.get(key)));
    assertEquals(lease, kv.lease());
    assertEquals(r, kv.modRevision());
    await(store.keepAliveOnce(lease));

    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, r, recorder)) {
      await(store.revokeLease(lease));
      assertTrue(await(store.get(key)).kvs().isEmpty(), "revoke deletes the lease's keys");
      assertEquals(1, await(store.getPrefix(prefix)).kvs().size(), "keys without the lease stay");
      Batch deletion = recorder.nextBatch();
      assertEquals(List.of(key), deletion.keys());
      assertEquals(List.of(WatchEvent.Type.DELETE), deletion.types());
    }
    assertFailsWith(StoreException.Kind.NOT_FOUND, store.keepAliveOnce(lease));
    await(store.revokeLease(lease));
    assertFailsWith(StoreException.Kind.NOT_FOUND,
        store.commit(Txn.builder().put(prefix + "late", bytes("v"), lease).build()));
    assertTrue(await(store.get(prefix + "late")).kvs().isEmpty());
  }

  @Test
  void anExpiredLeaseTakesItsKeysAlong() {
    long lease = await(store.grantLease(Duration.ofSeconds(1)));
    String key = prefix + "ephemeral";
    commit(Txn.builder().put(key, bytes("v"), lease).build());
    passTime(store, Duration.ofMillis(2500));
    long deadline = System.nanoTime() + AWAIT.toNanos();
    while (!await(store.get(key)).kvs().isEmpty()) {
      if (System.nanoTime() > deadline) {
        fail("the key of an expired lease is still there after " + AWAIT);
      }
      sleep(Duration.ofMillis(100));
    }
    assertFailsWith(StoreException.Kind.NOT_FOUND, store.keepAliveOnce(lease));
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------------------------

  protected long put(String key, String value) {
    TxnResult r = commit(Txn.builder().put(key, bytes(value)).build());
    assertTrue(r.succeeded());
    return r.revision();
  }

  protected TxnResult commit(Txn txn) {
    TxnResult r = await(store.commit(txn));
    assertNotNull(r);
    return r;
  }

  protected static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  protected static KeyValue single(RangeResult r) {
    assertEquals(1, r.kvs().size(), () -> "expected one key, got " + r.kvs());
    return r.kvs().get(0);
  }

  /** Waits for a future, failing the test on timeout and unwrapping the store's failure. */
  protected static <T> T await(CompletableFuture<T> future) {
    try {
      T value = future.get(AWAIT.toMillis(), TimeUnit.MILLISECONDS);
      return value;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof StoreException se) {
        throw se;
      }
      throw new AssertionError("store call failed with a non-StoreException", e.getCause());
    } catch (TimeoutException e) {
      throw new AssertionError("store call did not complete within " + AWAIT, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  /** Asserts that {@code future} fails with a {@link StoreException} of {@code kind}; returns it. */
  protected static StoreException assertFailsWith(StoreException.Kind kind, CompletableFuture<?> future) {
    try {
      Object value = future.get(AWAIT.toMillis(), TimeUnit.MILLISECONDS);
      throw new AssertionError("expected " + kind + " but the call succeeded with " + value);
    } catch (ExecutionException e) {
      StoreException se = assertInstanceOf(StoreException.class, e.getCause(), "failure type");
      assertEquals(kind, se.kind(), () -> "wrong kind: " + se);
      assertNotNull(se.getMessage());
      return se;
    } catch (TimeoutException e) {
      throw new AssertionError("store call did not complete within " + AWAIT, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  protected static void sleep(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  /** etcd's key order: unsigned UTF-8 bytes (independent of the implementations' comparators). */
  private static int compareUtf8(String a, String b) {
    return Arrays.compareUnsigned(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
  }

  /** What a watch listener was told, in order. */
  public sealed interface Signal permits Batch, Progress, Compacted, TransientError {}

  public record Batch(long revision, List<WatchEvent> events) implements Signal {
    public List<String> keys() {
      return events.stream().map(e -> e.kv().key()).toList();
    }

    public List<WatchEvent.Type> types() {
      return events.stream().map(WatchEvent::type).toList();
    }
  }

  public record Progress(long revision) implements Signal {}

  public record Compacted(long revision) implements Signal {}

  public record TransientError(StoreException error) implements Signal {}

  /**
   * Records every listener call and checks the listener guarantees on the way: calls never overlap,
   * batches have strictly increasing revisions and are never empty.
   */
  public static class Recorder implements WatchListener {
    private final BlockingQueue<Signal> signals = new LinkedBlockingQueue<>();
    private final AtomicInteger inCall = new AtomicInteger();
    private final AtomicInteger overlaps = new AtomicInteger();
    private final List<String> violations = Collections.synchronizedList(new ArrayList<>());
    private long lastBatch = -1;

    private void record(Signal s) {
      if (inCall.incrementAndGet() != 1) {
        overlaps.incrementAndGet();
      }
      try {
        if (s instanceof Batch b) {
          if (b.events().isEmpty()) {
            violations.add("empty batch at " + b.revision());
          }
          if (b.revision() <= lastBatch) {
            violations.add("batch " + b.revision() + " after batch " + lastBatch);
          }
          for (WatchEvent e : b.events()) {
            if (e.kv().modRevision() != b.revision()) {
              violations.add("event " + e.kv() + " in batch " + b.revision());
            }
          }
          lastBatch = b.revision();
        }
        signals.add(s);
      } finally {
        inCall.decrementAndGet();
      }
    }

    @Override
    public void onBatch(long revision, List<WatchEvent> events) {
      record(new Batch(revision, events));
    }

    @Override
    public void onProgress(long revision) {
      record(new Progress(revision));
    }

    @Override
    public void onCompacted(long compactRevision) {
      record(new Compacted(compactRevision));
    }

    @Override
    public void onTransientError(StoreException error) {
      record(new TransientError(error));
    }

    /** The next signal matching {@code filter}; others before it are skipped. */
    public Signal next(java.util.function.Predicate<Signal> filter) {
      long deadline = System.nanoTime() + AWAIT.toNanos();
      while (true) {
        long left = deadline - System.nanoTime();
        Signal s;
        try {
          s = left <= 0 ? null : signals.poll(left, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new AssertionError("interrupted", e);
        }
        if (s == null) {
          throw new AssertionError("no matching listener call within " + AWAIT);
        }
        checkViolations();
        if (filter.test(s)) {
          return s;
        }
      }
    }

    /** The next batch; progress notices and transient errors in between are skipped. */
    public Batch nextBatch() {
      Signal s = next(x -> !(x instanceof Progress) && !(x instanceof TransientError));
      return assertInstanceOf(Batch.class, s, () -> "expected a batch, got " + s);
    }

    /** The revision of the next progress notice; batches before it are not allowed. */
    public long nextProgress() {
      Signal s = next(x -> !(x instanceof TransientError));
      return assertInstanceOf(Progress.class, s, () -> "expected progress, got " + s).revision();
    }

    public TransientError nextTransientError() {
      Signal s = next(x -> !(x instanceof Progress));
      return assertInstanceOf(TransientError.class, s, () -> "expected a transient error, got " + s);
    }

    /** Asserts that no batch and no compaction notice arrives within {@link #QUIET}. */
    public void expectNoBatch() {
      expectOnly(s -> s instanceof Progress || s instanceof TransientError);
    }

    /** Asserts that no listener call at all arrives within {@link #QUIET}. */
    public void expectSilence() {
      expectOnly(s -> false);
    }

    private void expectOnly(java.util.function.Predicate<Signal> allowed) {
      long deadline = System.nanoTime() + QUIET.toNanos();
      while (true) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          checkViolations();
          return;
        }
        Signal s;
        try {
          s = signals.poll(left, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new AssertionError("interrupted", e);
        }
        if (s != null && !allowed.test(s)) {
          throw new AssertionError("unexpected listener call: " + s);
        }
      }
    }

    public void assertNoOverlap() {
      assertEquals(0, overlaps.get(), "listener calls overlapped");
      checkViolations();
    }

    private void checkViolations() {
      synchronized (violations) {
        if (!violations.isEmpty()) {
          throw new AssertionError("watch guarantees violated: " + violations);
        }
      }
    }
  }
}
