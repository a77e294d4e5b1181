package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockResponse;
import io.shardmap.proto.v1.Sequence;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Tag;

/**
 * Reservations of dense sequences when etcd leaves a commit's outcome unknown (the answer is lost): the
 * reservation is read back, never sent blindly again, and never returns a block another reservation got.
 * Driven on the in-memory store through a wrapper that loses answers; the etcd-backed behaviour is
 * {@code SequenceServiceTest}.
 */
@Tag("unit")
class SequencesTest {
  final InMemoryMetaStore mem = new InMemoryMetaStore();
  final CatalogPaths paths = new CatalogPaths("/t");
  /** What the next commit does instead of committing normally (null: commit normally). */
  Consumer<Txn> nextCommit;
  final LossyStore lossy = new LossyStore();
  final Sequences seq = new Sequences(lossy, paths, Duration.ofSeconds(2), System::nanoTime,
      System::currentTimeMillis, new ServerMetrics());
  /** A second server on the same store that loses nothing. */
  final Sequences other = new Sequences(mem, paths, Duration.ofSeconds(2), System::nanoTime,
      System::currentTimeMillis, new ServerMetrics());

  /** Commits through to the in-memory store unless a test set {@link #nextCommit}; then runs it and loses the answer. */
  final class LossyStore implements MetaStore {
    @Override public CompletableFuture<RangeResult> get(String key) { return mem.get(key); }
    @Override public CompletableFuture<RangeResult> getPrefix(String prefix) { return mem.getPrefix(prefix); }
    @Override public CompletableFuture<Long> currentRevision() { return mem.currentRevision(); }
    @Override public Watch watch(String p, long after, WatchListener l) { return mem.watch(p, after, l); }
    @Override public CompletableFuture<Long> grantLease(Duration ttl) { return mem.grantLease(ttl); }
    @Override public CompletableFuture<Void> keepAliveOnce(long id) { return mem.keepAliveOnce(id); }
    @Override public CompletableFuture<Void> revokeLease(long id) { return mem.revokeLease(id); }
    @Override public void close() { }

    @Override
    public CompletableFuture<TxnResult> commit(Txn txn) {
      Consumer<Txn> c = nextCommit;
      if (c == null) {
        return mem.commit(txn);
      }
      nextCommit = null;
      c.accept(txn);
      return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.UNAVAILABLE,
          "etcd did not answer in time (test)", null));
    }
  }

  void create(String name) {
    other.create(CreateSequenceRequest.newBuilder().setName(name).setStart(1).setDefaultBlockSize(10).build());
  }

  ReserveSequenceBlockResponse reserve(Sequences s, String name, String requestId) {
    return s.reserve(ReserveSequenceBlockRequest.newBuilder().setName(name).setRequestId(requestId).build());
  }

  Sequence stored(String name) {
    return other.get(GetSequenceRequest.newBuilder().setName(name).build()).getSequence();
  }

  @Test
  void anAppliedCommitWhoseAnswerWasLostReturnsItsBlockOnce() {
    create("orders");
    nextCommit = txn -> mem.commit(txn).join();   // applied, answer lost
    ReserveSequenceBlockResponse r = reserve(seq, "orders", "");
    assertEquals(1, r.getFirst());
    assertEquals(10, r.getLast());
    ReserveSequenceBlockResponse next = reserve(seq, "orders", "");
    assertEquals(11, next.getFirst());
    assertEquals(21, stored("orders").getNextValue());
  }

  @Test
  void aCommitThatDidNotApplyIsPlannedAgain() {
    create("orders");
    nextCommit = txn -> { };                      // never reached etcd
    ReserveSequenceBlockResponse r = reserve(seq, "orders", "a:1");
    assertEquals(1, r.getFirst());
    assertEquals(11, stored("orders").getNextValue());
    assertEquals(1, stored("orders").getReservations());
  }

  /**
   * Another server's identical reservation (same count, no request id, same base) wins while ours is lost in
   * flight. Without the per-reservation token both would have written the same bytes, and the read-back would
   * have taken the other's write for ours: two callers with block [1, 10].
   */
  @Test
  void anotherReservationThatWonIsNeverTakenForOurs() {
    create("orders");
    ReserveSequenceBlockResponse[] theirs = new ReserveSequenceBlockResponse[1];
    nextCommit = txn -> theirs[0] = reserve(other, "orders", "");
    ShardmapException e = assertThrows(ShardmapException.class, () -> reserve(seq, "orders", ""));
    assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains("no block was handed out"), e.getMessage());
    assertEquals(1, theirs[0].getFirst());
    ReserveSequenceBlockResponse mine = reserve(seq, "orders", "");
    assertEquals(11, mine.getFirst());
  }

  /** A retry with the same request id gets the block back when nothing came between; a new one otherwise. */
  @Test
  void aRetryOfTheLastRequestIdGetsItsBlockBack() {
    create("orders");
    ReserveSequenceBlockResponse first = reserve(seq, "orders", "c:1:1");
    ReserveSequenceBlockResponse again = reserve(seq, "orders", "c:1:1");
    assertTrue(again.getReplayed());
    assertFalse(first.getReplayed());
    assertEquals(first.getFirst(), again.getFirst());
    assertEquals(first.getLast(), again.getLast());
    assertEquals(11, stored("orders").getNextValue());
    reserve(other, "orders", "d:1:1");
    ReserveSequenceBlockResponse late = reserve(seq, "orders", "c:1:1");
    assertFalse(late.getReplayed());
    assertEquals(21, late.getFirst());
  }
}
