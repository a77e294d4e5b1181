package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The contract on the in-memory fake, plus what only the fake can do: inject faults and stop time. */
// "try": watches are opened in try-with-resources only to be closed at the end of the block.
@Tag("unit")
@SuppressWarnings("try")
class InMemoryMetaStoreContractTest extends MetaStoreContract {

  /** The fake's clock, in nanoseconds; only {@link #passTime} moves it. */
  private final AtomicLong clock = new AtomicLong(1_000_000_000L);

  @Override
  protected MetaStore newStore(String testPrefix) {
    return new InMemoryMetaStore(clock::get);
  }

  @Override
  protected void compact(MetaStore store, long revision) {
    ((InMemoryMetaStore) store).compact(revision);
  }

  @Override
  protected void passTime(MetaStore store, Duration duration) {
    clock.addAndGet(duration.toNanos());
  }

  private InMemoryMetaStore fake() {
    return (InMemoryMetaStore) store;
  }

  @Test
  void anEmptyStoreIsAtRevisionOneAndEachChangingTxnAddsOne() {
    assertEquals(1L, await(store.currentRevision()));
    assertEquals(2L, put(prefix + "a", "1"));
    assertEquals(3L, commit(Txn.builder().put(prefix + "b", bytes("2")).put(prefix + "c", bytes("3")).build()).revision());
    assertEquals(3L, commit(Txn.builder().delete(prefix + "absent").build()).revision());
    assertEquals(3L, await(store.currentRevision()));
  }

  @Test
  void unavailabilityFailsCallsReportsOnceAndRecoveryDeliversMissedRevisionsInOrder() {
    InMemoryMetaStore reader = fake();
    long start = await(reader.currentRevision());
    Recorder recorder = new Recorder();
    try (InMemoryMetaStore writer = reader.newClient();
        Watch watch = reader.watch(prefix, start, recorder)) {
      long r1 = put(prefix + "before", "x");
      assertEquals(r1, recorder.nextBatch().revision());

      reader.setUnavailable(true);
      assertFailsWith(StoreException.Kind.UNAVAILABLE, reader.get(prefix + "before"));
      assertFailsWith(StoreException.Kind.UNAVAILABLE, reader.commit(Txn.builder().put(prefix + "no", bytes("x")).build()));
      assertFailsWith(StoreException.Kind.UNAVAILABLE, reader.currentRevision());
      assertFailsWith(StoreException.Kind.UNAVAILABLE, reader.grantLease(Duration.ofSeconds(5)));
      List<Long> missed = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        missed.add(await(writer.commit(Txn.builder().put(prefix + "during/" + i, bytes("x")).build())).revision());
      }
      TransientError error = recorder.nextTransientError();
      assertEquals(StoreException.Kind.UNAVAILABLE, error.error().kind());
      watch.requestProgress();
      recorder.expectSilence();

      reader.setUnavailable(false);
      for (long r : missed) {
        Batch b = recorder.nextBatch();
        assertEquals(r, b.revision(), "missed revisions arrive in order after recovery");
      }
      assertTrue(recorder.nextProgress() >= missed.get(missed.size() - 1),
          "a progress request made during the outage is answered after it");
      assertTrue(await(reader.get(prefix + "no")).kvs().isEmpty(), "the refused commit wrote nothing");

      reader.setUnavailable(true);
      recorder.nextTransientError();
      reader.setUnavailable(false);
      long after = put(prefix + "after", "x");
      assertEquals(after, recorder.nextBatch().revision());
      recorder.expectNoBatch();
      recorder.assertNoOverlap();
    }
  }

  @Test
  void failNextFailsExactlyTheNextCallsAndWritesNothing() {
    fake().failNext(2, StoreException.Kind.UNAVAILABLE);
    assertFailsWith(StoreException.Kind.UNAVAILABLE, store.commit(Txn.builder().put(prefix + "k", bytes("x")).build()));
    assertFailsWith(StoreException.Kind.UNAVAILABLE, store.get(prefix + "k"));
    assertTrue(await(store.get(prefix + "k")).kvs().isEmpty(), "the failed commit was not applied");

    fake().failNext(1, StoreException.Kind.TOO_LARGE);
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.currentRevision());
    put(prefix + "k", "y");

    fake().failNext(3, StoreException.Kind.INTERNAL);
    fake().failNext(0, StoreException.Kind.INTERNAL);
    put(prefix + "k", "z");
  }

  @Test
  void aSlowWatchFallsBehindCompactionAndIsToldSo() throws Exception {
    long start = await(store.currentRevision());
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch blocked = new CountDownLatch(1);
    Recorder recorder = new Recorder() {
      @Override
      public void onBatch(long revision, List<WatchEvent> events) {
        blocked.countDown();
        try {
          release.await(AWAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        super.onBatch(revision, events);
      }
    };
    try (Watch watch = store.watch(prefix, start, recorder)) {
      long r1 = put(prefix + "a", "1");
      assertTrue(blocked.await(AWAIT.toMillis(), TimeUnit.MILLISECONDS));
      put(prefix + "b", "2");
      long r3 = put(prefix + "c", "3");
      compact(store, r3);
      release.countDown();
      assertEquals(r1, recorder.nextBatch().revision());
      Signal next = recorder.next(s -> true);
      assertEquals(new Compacted(r3), next, "the watch still needed revision r1 + 1, now compacted");
      put(prefix + "d", "4");
      recorder.expectSilence();
    }
  }

  @Test
  void compactionRefusesFutureAndAlreadyCompactedRevisions() {
    long r = put(prefix + "a", "1");
    assertThrows(IllegalArgumentException.class, () -> fake().compact(r + 1));
    fake().compact(r);
    StoreException again = assertThrows(StoreException.class, () -> fake().compact(r));
    assertEquals(StoreException.Kind.COMPACTED, again.kind());
    assertEquals(r, again.compactRevision());
  }

  @Test
  void leasesExpireByTheInjectedClockOnAccessOrWhenAsked() {
    long lease = await(store.grantLease(Duration.ofSeconds(5)));
    put(prefix + "plain", "p");
    commit(Txn.builder().put(prefix + "leased", bytes("v"), lease).build());
    passTime(store, Duration.ofSeconds(4));
    assertEquals(2, await(store.getPrefix(prefix)).kvs().size());
    await(store.keepAliveOnce(lease));
    passTime(store, Duration.ofSeconds(4));
    assertEquals(2, await(store.getPrefix(prefix)).kvs().size(), "keep-alive restarted the TTL");
    passTime(store, Duration.ofSeconds(2));
    assertEquals(1, await(store.getPrefix(prefix)).kvs().size(), "expired on access");

    long second = await(store.grantLease(Duration.ofMillis(1500)));
    long r = commit(Txn.builder().put(prefix + "short", bytes("v"), second).build()).revision();
    Recorder recorder = new Recorder();
    try (Watch watch = store.watch(prefix, r, recorder)) {
      passTime(store, Duration.ofMillis(1999));
      assertEquals(0, fake().expireLeases(), "TTLs round up to whole seconds, like etcd's");
      passTime(store, Duration.ofMillis(1));
      assertEquals(1, fake().expireLeases());
      Batch deletion = recorder.nextBatch();
      assertEquals(List.of(prefix + "short"), deletion.keys());
      assertEquals(List.of(WatchEvent.Type.DELETE), deletion.types());
    }
  }

  @Test
  void theTransactionLimitsAreConfigurable() {
    fake().setMaxTxnOps(2);
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.commit(Txn.builder()
        .put(prefix + "a", bytes("1")).put(prefix + "b", bytes("2")).put(prefix + "c", bytes("3")).build()));
    assertTrue(commit(Txn.builder().put(prefix + "a", bytes("1")).put(prefix + "b", bytes("2")).build()).succeeded());
    fake().setMaxRequestBytes(100);
    assertFailsWith(StoreException.Kind.TOO_LARGE, store.commit(Txn.builder().put(prefix + "big", new byte[200]).build()));
  }

  @Test
  void listenersRunOnTheGivenExecutor() throws Exception {
    ExecutorService executor = Executors.newFixedThreadPool(4, r -> new Thread(r, "given-listener-thread"));
    AtomicReference<String> threadName = new AtomicReference<>();
    try (InMemoryMetaStore other = fake().newClient(executor)) {
      Recorder recorder = new Recorder() {
        @Override
        public void onBatch(long revision, List<WatchEvent> events) {
          threadName.set(Thread.currentThread().getName());
          super.onBatch(revision, events);
        }
      };
      try (Watch watch = other.watch(prefix, await(other.currentRevision()), recorder)) {
        long r = put(prefix + "k", "v");
        assertEquals(r, recorder.nextBatch().revision(), "another client of the same cluster sees the write");
        assertEquals("given-listener-thread", threadName.get());
      }
    } finally {
      executor.shutdownNow();
    }
  }

  @Test
  void aClosedClientRefusesCallsWhileTheClusterLivesOn() {
    InMemoryMetaStore other = fake().newClient();
    other.close();
    assertFailsWith(StoreException.Kind.CLOSED, other.get(prefix + "k"));
    StoreException e = assertThrows(StoreException.class, () -> other.watch(prefix, 0, new Recorder()));
    assertEquals(StoreException.Kind.CLOSED, e.kind());
    put(prefix + "k", "still works");
  }
}
