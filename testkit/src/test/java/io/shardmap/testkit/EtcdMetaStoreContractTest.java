package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.store.Compare;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.Watch;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The contract on real etcd: the JVM-wide {@link EtcdCluster#shared()} cluster, plus what only a real
 * cluster shows (connection failures, a member going away under a watch). The compaction tests
 * compact the shared cluster at a revision that no earlier test still needs.
 */
// "try": watches are opened in try-with-resources only to be closed at the end of the block.
@Tag("integration")
@SuppressWarnings("try")
class EtcdMetaStoreContractTest extends MetaStoreContract {

  private static EtcdCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = EtcdCluster.shared();
  }

  @Override
  protected MetaStore newStore(String testPrefix) {
    return storeFor(cluster.clientEndpoints(), Duration.ofSeconds(5));
  }

  private static EtcdMetaStore storeFor(List<String> endpoints, Duration requestTimeout) {
    return EtcdMetaStore.builder()
        .endpoints(endpoints)
        .requestTimeout(requestTimeout)
        .connectTimeout(Duration.ofSeconds(1))
        .build();
  }

  @Override
  protected void compact(MetaStore store, long revision) {
    await(((EtcdMetaStore) store).compact(revision));
  }

  @Override
  protected void passTime(MetaStore store, Duration duration) {
    sleep(duration);
  }

  @Override
  protected int maxTxnOps() {
    // Clusters started by EtcdCluster run with --max-txn-ops=1024; an external one is assumed to
    // keep etcd's default.
    return cluster.canControlMembers() ? 1024 : 128;
  }

  @Test
  void theBuilderRejectsBadOptionsNamingThem() {
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().build());
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(List.of()));
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(Arrays.asList("http://127.0.0.1:2379", null)));
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(List.of("127.0.0.1:2379")));
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(List.of("http://127.0.0.1")));
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(List.of("https://127.0.0.1:2379")));
    assertOptionRejected("endpoints", () -> EtcdMetaStore.builder().endpoints(List.of("http://127.0.0.1:2379/v3")));
    assertOptionRejected("requestTimeout", () -> EtcdMetaStore.builder().requestTimeout(Duration.ZERO));
    assertOptionRejected("requestTimeout", () -> EtcdMetaStore.builder().requestTimeout(null));
    assertOptionRejected("connectTimeout", () -> EtcdMetaStore.builder().connectTimeout(Duration.ofSeconds(-1)));
    assertOptionRejected("connectTimeout", () -> EtcdMetaStore.builder().connectTimeout(Duration.ofDays(30)));
    assertOptionRejected("memberTimeout", () -> EtcdMetaStore.builder().memberTimeout(Duration.ofMillis(50)));
    assertOptionRejected("memberTimeout", () -> EtcdMetaStore.builder().memberTimeout(null));
  }

  private static void assertOptionRejected(String option, org.junit.jupiter.api.function.Executable build) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build);
    assertTrue(e.getMessage().startsWith(option), () -> "message should name " + option + ": " + e.getMessage());
  }

  @Test
  void anUnreachableClusterFailsEveryCallAsUnavailableWithinTheTimeout() {
    int port = FreePorts.allocate();
    Duration timeout = Duration.ofMillis(700);
    try (EtcdMetaStore dead = storeFor(List.of("http://127.0.0.1:" + port), timeout)) {
      long began = System.nanoTime();
      Recorder recorder = new Recorder();
      CompletableFuture<RangeResult> get = dead.get("/k");
      CompletableFuture<TxnResult> commit = dead.commit(Txn.builder().put("/k", bytes("v")).build());
      CompletableFuture<Long> revision = dead.currentRevision();
      CompletableFuture<Long> grant = dead.grantLease(Duration.ofSeconds(5));
      CompletableFuture<Void> keepAlive = dead.keepAliveOnce(1);
      try (Watch watch = dead.watch("/k", 0, recorder)) {
        StoreException getFailure = assertFailsWith(StoreException.Kind.UNAVAILABLE, get);
        long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - began);
        assertTrue(tookMillis < timeout.toMillis() + 1_000, "took " + tookMillis + " ms");
        assertTrue(getFailure.getMessage().contains("get '/k'"), getFailure.getMessage());
        assertTrue(getFailure.getMessage().contains(Integer.toString(port)), getFailure.getMessage());
        StoreException commitFailure = assertFailsWith(StoreException.Kind.UNAVAILABLE, commit);
        assertTrue(commitFailure.getMessage().contains("commit"), commitFailure.getMessage());
        assertFailsWith(StoreException.Kind.UNAVAILABLE, revision);
        assertFailsWith(StoreException.Kind.UNAVAILABLE, grant);
        assertFailsWith(StoreException.Kind.UNAVAILABLE, keepAlive);
        assertEquals(StoreException.Kind.UNAVAILABLE, recorder.nextTransientError().error().kind(),
            "a watch that cannot connect reports it instead of waiting silently");
      }
    }
  }

  @Test
  void aClosedStoreRefusesCalls() {
    MetaStore other = newStore(prefix);
    other.close();
    other.close();
    assertFailsWith(StoreException.Kind.CLOSED, other.get(prefix + "k"));
    assertFailsWith(StoreException.Kind.CLOSED, other.commit(Txn.builder().put(prefix + "k", bytes("v")).build()));
  }

  /**
   * A watch connected to one member only: the member is killed, others keep committing, the member
   * comes back. The watch must report the fault and then deliver every revision exactly once, in order.
   */
  @Test
  void aWatchResumesAfterItsMemberRestartsWithoutLosingOrRepeatingRevisions() {
    assumeTrue(cluster.canControlMembers(), "members of an external cluster cannot be stopped");
    try (EtcdCluster own = EtcdCluster.start(3);
        EtcdMetaStore reader = storeFor(List.of(own.clientEndpoint(0)), Duration.ofSeconds(3));
        EtcdMetaStore writer = storeFor(own.clientEndpoints().subList(1, 3), Duration.ofSeconds(2))) {
      long start = await(writer.currentRevision());
      Recorder recorder = new Recorder();
      try (Watch watch = reader.watch(prefix, start, recorder)) {
        long r0 = writeOnce(writer, prefix + "before");
        assertEquals(r0, recorder.nextBatch().revision());

        own.stopMember(0);
        for (int i = 0; i < 5; i++) {
          writeOnce(writer, prefix + "during/" + i);
        }
        assertEquals(StoreException.Kind.UNAVAILABLE, recorder.nextTransientError().error().kind());
        own.startMember(0);

        List<Long> written = await(writer.getPrefix(prefix + "during/")).kvs().stream()
            .map(KeyValue::modRevision).sorted().toList();
        assertEquals(5, written.size());
        for (long r : written) {
          assertEquals(r, recorder.nextBatch().revision());
        }
        long after = writeOnce(writer, prefix + "after");
        assertEquals(after, recorder.nextBatch().revision());
        recorder.expectNoBatch();
        recorder.assertNoOverlap();
      }
    }
  }

  /**
   * The member a store uses freezes (SIGSTOP: connections stay open, nothing answers). Within the
   * request timeout (10 s, longer than gRPC keep-alive could notice it in) a read in flight is sent
   * again to a member that answers, a txn in flight fails saying its member stopped answering and its
   * outcome is unknown (not a bare timeout), and the watch resumes on another member without losing
   * a revision.
   */
  @Test
  void aFrozenMemberLosesItsCallsAndItsWatchToAMemberThatAnswers() {
    assumeTrue(cluster.canControlMembers(), "members of an external cluster cannot be paused");
    try (EtcdCluster own = EtcdCluster.start(3);
        EtcdMetaStore store = storeFor(own.clientEndpoints(), Duration.ofSeconds(10))) {
      long start = await(store.currentRevision());
      Recorder recorder = new Recorder();
      try (Watch watch = store.watch(prefix, start, recorder)) {
        // The member the store uses: its first endpoint, unless a check on a loaded machine was late.
        int frozen = own.clientEndpoints().indexOf(store.currentEndpoint());
        List<String> others = new java.util.ArrayList<>(own.clientEndpoints());
        others.remove(frozen);
        try (EtcdMetaStore writer = storeFor(others, Duration.ofSeconds(10))) {
          long r0 = writeOnce(writer, prefix + "before");
          assertEquals(r0, recorder.nextBatch().revision());
          own.pauseMember(frozen);
          try {
            CompletableFuture<TxnResult> inFlight = store.commit(Txn.builder().put(prefix + "in-flight", bytes("v")).build());
            CompletableFuture<RangeResult> read = store.get(prefix + "before");
            StoreException lost = assertFailsWith(StoreException.Kind.UNAVAILABLE, inFlight);
            assertTrue(lost.getMessage().contains("stopped answering") && lost.getMessage().contains("unknown"),
                lost.getMessage());
            assertEquals(r0, single(await(read)).modRevision(), "the read went to a member that answers");
            assertEquals(StoreException.Kind.UNAVAILABLE, recorder.nextTransientError().error().kind());
            long r1 = writeOnce(writer, prefix + "during");
            assertEquals(r1, recorder.nextBatch().revision(), "the watch resumed on another member");
            recorder.assertNoOverlap();
          } finally {
            own.resumeMember(frozen);
          }
        }
      }
    }
  }

  /**
   * Creates {@code key} exactly once and returns its mod revision. Killing a member may kill the
   * leader; a write in flight then times out with its outcome unknown, so it is retried under an
   * absence guard and the key's revision is read back rather than taken from the lost answer.
   */
  private static long writeOnce(EtcdMetaStore writer, String key) {
    for (int attempt = 1; attempt <= 10; attempt++) {
      try {
        await(writer.commit(Txn.builder().compare(Compare.absent(key)).put(key, bytes("x")).build()));
        return single(await(writer.get(key))).modRevision();
      } catch (StoreException e) {
        if (e.kind() != StoreException.Kind.UNAVAILABLE) {
          throw e;
        }
      }
    }
    throw new AssertionError("could not write " + key + " in 10 attempts");
  }
}
