package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.testkit.ForwardingMetaStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Planning a move while etcd answers badly (issue 10, point 11), against real etcd and PostgreSQL with a
 * store in between that fails reads and loses the answer of the recording transaction: transient failures
 * are retried and the move is recorded exactly once; a failure that lasts gives up after the retry
 * deadline with nothing recorded.
 */
@Tag("fault")
@Timeout(120)
class PlanRetryTest {
  static final String KS = "users";

  DirectoryFixture fixture;
  EtcdMetaStore etcd;
  FlakyStore flaky;
  String table;

  @BeforeEach
  void setUp() throws Exception {
    fixture = new DirectoryFixture("r");
    table = "retry_" + fixture.uid;
    fixture.rangeKeyspace(KS, table, 500);
    etcd = EtcdMetaStore.builder().endpoints(fixture.etcd.clientEndpoints()).requestTimeout(Duration.ofSeconds(2))
        .build();
    flaky = new FlakyStore(etcd);
  }

  @AfterEach
  void tearDown() throws Exception {
    etcd.close();
    fixture.close();
  }

  /** Everything under the directory's migrations and moving markers, read around the flaky store. */
  List<KeyValue> recorded() {
    List<KeyValue> out = new java.util.ArrayList<>();
    try {
      for (KeyValue kv : etcd.getPrefix(fixture.prefix + "/").get(5, TimeUnit.SECONDS).kvs()) {
        if (kv.key().startsWith(fixture.prefix + "/migrations/") || kv.key().contains("moving")) {
          out.add(kv);
        }
      }
    } catch (Exception e) {
      throw new IllegalStateException("reading etcd around the flaky store failed", e);
    }
    return out;
  }

  @Test
  void transientReadFailuresAndALostCommitAnswerRecordTheMoveExactlyOnce() throws Exception {
    // Two reads fail at once (etcd unavailable), the third is never answered (the request timeout of 2 s
    // passes), and the commit that records the move applies but its answer is lost.
    flaky.failReads.set(2);
    flaky.hangReads.set(1);
    flaky.loseCommitAnswers.set(1);
    try (Migrator m = Migrator.open(fixture.migratorOptions().etcdTimeout(Duration.ofSeconds(2))
        .etcdRetryFor(Duration.ofSeconds(20)).build(), flaky)) {
      Migration planned = m.plan(MoveSpec.builder().id("r1").keyspace(KS).range("0..").target("s3").build());

      assertEquals(MigrationState.MIGRATION_STATE_PLANNED, planned.getState());
      assertEquals(0, flaky.failReads.get(), "the failing reads were made");
      assertEquals(0, flaky.hangReads.get(), "the unanswered read was made");
      assertEquals(0, flaky.loseCommitAnswers.get(), "the commit whose answer was lost was made");
      List<Migration> all = m.list();
      assertEquals(List.of("r1"), all.stream().map(Migration::getId).toList(), "recorded once");
      assertEquals(planned.toBuilder().clearOwner().build(), all.get(0).toBuilder().clearOwner().build(),
          "the record is the one returned");
      assertEquals(1, recorded().stream().filter(kv -> kv.key().contains("/moving/")).count(),
          () -> "the range is marked as moving, once: " + recorded());

      // And it is a move like any other: it runs to the end.
      Migration done = m.drive("r1", p -> { }, Duration.ofSeconds(10));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done::toString);
    }
  }

  @Test
  void aFailureThatLastsEndsAfterTheRetryDeadlineWithNothingRecorded() throws Exception {
    flaky.failAllReads.set(true);
    try (Migrator m = Migrator.open(fixture.migratorOptions().etcdTimeout(Duration.ofSeconds(1))
        .etcdRetryFor(Duration.ofMillis(1_500)).build(), flaky)) {
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> m.plan(MoveSpec.builder().id("r2").keyspace(KS).range("0..").target("s3").build()));

      assertEquals(ErrorCode.UNAVAILABLE, e.code(), e::getMessage);
      assertTrue(e.getMessage().startsWith("reading migration r2: "), e.getMessage());
      assertTrue(e.getMessage().matches(".* \\(\\d+ attempts over \\d+ ms\\)"), e.getMessage());
      assertTrue(flaky.readsSeen.get() > 2, "it retried: " + flaky.readsSeen.get() + " reads");
      assertEquals(0, flaky.commitsSeen.get(), "nothing was sent to be written");
    }
    flaky.failAllReads.set(false);
    assertTrue(recorded().isEmpty(), () -> "nothing was recorded: " + recorded());
  }

  /** Resharding plans from reads too (spec, layout): they are retried like a move's, and nothing is written. */
  @Test
  void reshardPlanningRetriesTransientReads() throws Exception {
    CreateKeyspaceRequest.Builder req = CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
        .setName("h").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_HASH));
    for (int b = 0; b < 9; b++) {
      req.addHashBuckets(b < 6 ? "s1" : "s2");
    }
    fixture.admin().createKeyspace(req.build());
    flaky.failReads.set(2);
    flaky.hangReads.set(1);
    try (Migrator m = Migrator.open(fixture.migratorOptions().etcdTimeout(Duration.ofSeconds(1))
        .etcdRetryFor(Duration.ofSeconds(20)).build(), flaky)) {
      assertEquals(List.of("bucket 5: s1 -> s3", "bucket 4: s1 -> s3", "bucket 3: s1 -> s3"),
          m.reshardPlan("h", "s3", true, 0));
      assertEquals(0, flaky.failReads.get(), "the failing reads were made");
      assertEquals(0, flaky.hangReads.get(), "the unanswered read was made");
    }
    flaky.failAllReads.set(true);
    try (Migrator m = Migrator.open(fixture.migratorOptions().etcdTimeout(Duration.ofSeconds(1))
        .etcdRetryFor(Duration.ofMillis(1_500)).build(), flaky)) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> m.reshardPlan("h", "s3", true, 0));
      assertEquals(ErrorCode.UNAVAILABLE, e.code(), e::getMessage);
      assertTrue(e.getMessage().matches(".* \\(\\d+ attempts over \\d+ ms\\)"), e.getMessage());
      assertEquals(0, flaky.commitsSeen.get(), "nothing was sent to be written");
    } finally {
      flaky.failAllReads.set(false);
    }
  }

  @Test
  void aLostCommitAnswerThatCannotBeSettledSaysTheOutcomeIsUnknown() throws Exception {
    // The recording applies, its answer is lost, and no read gets through for longer than the deadline.
    flaky.loseCommitAnswers.set(1);
    flaky.failReadsAfterCommit.set(true);
    try (Migrator m = Migrator.open(fixture.migratorOptions().etcdTimeout(Duration.ofSeconds(1))
        .etcdRetryFor(Duration.ofMillis(1_500)).build(), flaky)) {
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> m.plan(MoveSpec.builder().id("r3").keyspace(KS).range("0..").target("s3").build()));

      assertEquals(ErrorCode.UNAVAILABLE, e.code(), e::getMessage);
      assertTrue(e.getMessage().startsWith("recording migration r3: the outcome is unknown"), e.getMessage());
      assertTrue(e.getMessage().contains("'migrator status r3'"), e.getMessage());
      assertEquals(1, flaky.commitsSeen.get(), "the recording was not sent again while its outcome was unknown");
    }
    flaky.failReadsAfterCommit.set(false);
    assertEquals(1, recorded().stream().filter(kv -> kv.key().endsWith("/migrations/r3")).count(),
        "it did apply, once");
  }

  /** A store that fails, hangs or loses answers of the calls it is told to; otherwise passes them on. */
  static final class FlakyStore extends ForwardingMetaStore {
    final AtomicInteger failReads = new AtomicInteger();
    final AtomicInteger hangReads = new AtomicInteger();
    final AtomicInteger loseCommitAnswers = new AtomicInteger();
    final AtomicBoolean failAllReads = new AtomicBoolean();
    final AtomicBoolean failReadsAfterCommit = new AtomicBoolean();
    final AtomicBoolean committed = new AtomicBoolean();
    final AtomicInteger readsSeen = new AtomicInteger();
    final AtomicInteger commitsSeen = new AtomicInteger();

    FlakyStore(MetaStore delegate) {
      super(delegate);
    }

    private <T> CompletableFuture<T> read(Supplier<CompletableFuture<T>> call) {
      readsSeen.incrementAndGet();
      if (failAllReads.get() || (failReadsAfterCommit.get() && committed.get())
          || failReads.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
        return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.UNAVAILABLE,
            "injected: etcd unavailable", null));
      }
      if (hangReads.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
        return new CompletableFuture<>(); // never answered
      }
      return call.get();
    }

    @Override
    public CompletableFuture<RangeResult> get(String key) {
      return read(() -> delegate.get(key));
    }

    @Override
    public CompletableFuture<RangeResult> getPrefix(String prefix) {
      return read(() -> delegate.getPrefix(prefix));
    }

    @Override
    public CompletableFuture<TxnResult> commit(Txn txn) {
      commitsSeen.incrementAndGet();
      CompletableFuture<TxnResult> f = delegate.commit(txn);
      if (loseCommitAnswers.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
        // Applied (or not) as etcd decided, but the caller never learns which.
        return f.handle((r, t) -> {
          committed.set(true);
          throw new StoreException(StoreException.Kind.UNAVAILABLE, "injected: the answer was lost", null);
        });
      }
      return f;
    }

    @Override
    public void close() {
      // The test closes the real store.
    }
  }

}
