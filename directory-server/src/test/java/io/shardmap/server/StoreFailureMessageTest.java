package io.shardmap.server;

import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.testkit.ForwardingMetaStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * What an admin write says when etcd fails under it, told apart by where it failed: a read while planning
 * (nothing was sent, so nothing was written) or the transaction itself (sent; whether it was applied is
 * unknown). The store is the in-memory one behind a switch that makes every later call fail as etcd does
 * without quorum, so the failure lands exactly where each test wants it.
 */
@Tag("fault")
class StoreFailureMessageTest {
  private final InMemoryMetaStore backing = new InMemoryMetaStore();
  private final CuttableStore store = new CuttableStore(backing);
  private DirectoryServer server;
  private TestSupport.Client client;

  @BeforeEach
  void start() throws Exception {
    server = DirectoryServer.start(TestSupport.options(List.of("http://127.0.0.1:1"), TestSupport.uniquePrefix())
        .etcdTimeout(Duration.ofMillis(300)).probeInterval(Duration.ofSeconds(30)).build(), store);
    client = new TestSupport.Client(server.port());
    client.registerShards("s1", "s2");
    client.admin().createKeyspace(create("users", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2")).build());
  }

  @AfterEach
  void stop() {
    client.close();
    server.close();
    backing.close();
  }

  private void split(long at) {
    client.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("users").setSplitKey(intKey(at)).build());
  }

  @Test
  void aSplitRefusedWhileReadingSaysNothingWasWritten() throws Exception {
    long revision = backing.currentRevision().get();
    store.commits.set(0);
    store.cutReads = true;
    StatusRuntimeException e = TestSupport.assertStatus(Status.Code.UNAVAILABLE, () -> split(100),
        "SplitRange: could not read the moving markers of keyspace 'users' from etcd", "nothing was written");
    assertFalse(e.getStatus().getDescription().contains("may or may not"), e.getStatus().getDescription());
    assertEquals(0, store.commits.get(), "no transaction was sent");
    assertEquals(revision, backing.currentRevision().get(), "etcd unchanged");
  }

  @Test
  void aSplitWhoseTransactionWentUnansweredSaysItMayHaveBeenApplied() throws Exception {
    store.commits.set(0);
    store.cutAfterNextCommit = true;
    StatusRuntimeException e = TestSupport.assertStatus(Status.Code.UNAVAILABLE, () -> split(100),
        "SplitRange: etcd did not confirm the write", "it may or may not have been applied",
        "could not read back whether it was applied");
    assertFalse(e.getStatus().getDescription().contains("nothing was written"), e.getStatus().getDescription());
    assertEquals(1, store.commits.get());
    // It was in fact applied: the answer was what got lost.
    long now = backing.currentRevision().get();
    assertTrue(backing.getPrefix("").get().kvs().stream().anyMatch(kv -> kv.key().contains("/ranges/")
        && kv.modRevision() == now), "the split reached the store");
  }

  /** Delegates to a store; once cut, every call fails as etcd without quorum does. */
  private static final class CuttableStore extends ForwardingMetaStore {
    final AtomicInteger commits = new AtomicInteger();
    volatile boolean cutReads;
    volatile boolean cutAfterNextCommit;

    CuttableStore(MetaStore delegate) {
      super(delegate);
    }

    private <T> CompletableFuture<T> unlessCut(String what, Supplier<CompletableFuture<T>> call) {
      if (cutReads) {
        return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.UNAVAILABLE,
            "etcd " + what + " timed out after PT0.3S (test: quorum lost)", null));
      }
      return call.get();
    }

    @Override
    public CompletableFuture<RangeResult> get(String key) {
      return unlessCut("get", () -> delegate.get(key));
    }

    @Override
    public CompletableFuture<RangeResult> getPrefix(String prefix) {
      return unlessCut("get prefix", () -> delegate.getPrefix(prefix));
    }

    @Override
    public CompletableFuture<TxnResult> commit(Txn txn) {
      return unlessCut("commit", () -> {
        commits.incrementAndGet();
        CompletableFuture<TxnResult> applied = delegate.commit(txn);
        if (!cutAfterNextCommit) {
          return applied;
        }
        applied.join(); // applied in the store, but the answer never arrives
        cutReads = true;
        return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.UNAVAILABLE,
            "etcd commit timed out after PT0.3S (test: quorum lost with the txn in flight)", null));
      });
    }

    @Override
    public CompletableFuture<Long> currentRevision() {
      return unlessCut("currentRevision", delegate::currentRevision);
    }

    @Override
    public CompletableFuture<Long> grantLease(Duration ttl) {
      return unlessCut("lease grant", () -> delegate.grantLease(ttl));
    }

    @Override
    public CompletableFuture<Void> keepAliveOnce(long leaseId) {
      return unlessCut("keep-alive", () -> delegate.keepAliveOnce(leaseId));
    }

    @Override
    public CompletableFuture<Void> revokeLease(long leaseId) {
      return unlessCut("revoke", () -> delegate.revokeLease(leaseId));
    }
  }

}
