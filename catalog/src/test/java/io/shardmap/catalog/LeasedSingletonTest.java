package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.RangeResult;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The resolver role's lease on the in-memory store with a stepped clock: one holder at a time, the role moves
 * when the holder releases it or stops renewing for a TTL, and a holder cut off from etcd stops claiming it
 * within the TTL.
 */
@Tag("unit")
class LeasedSingletonTest {
  static final String KEY = "/p/txn-resolver";
  static final Duration TTL = Duration.ofSeconds(3);

  final AtomicLong clock = new AtomicLong(1_000_000_000L);
  final InMemoryMetaStore store = new InMemoryMetaStore(clock::get);

  LeasedSingleton server(String id) {
    return new LeasedSingleton(new MeteredMetaStore(store, (op, outcome, nanos) -> { }, clock::get), KEY, id, TTL,
        Duration.ofSeconds(1), clock::get, "txn_resolver");
  }

  void advance(Duration d) {
    clock.addAndGet(d.toNanos());
  }

  String holder() throws Exception {
    RangeResult r = store.get(KEY).get();
    return r.kvs().isEmpty() ? null : r.kvs().get(0).valueUtf8();
  }

  @Test
  void oneHolderAtATimeAndItKeepsTheRoleByRenewing() throws Exception {
    LeasedSingleton a = server("a");
    LeasedSingleton b = server("b");
    assertTrue(a.check());
    assertFalse(b.check());
    for (int i = 0; i < 10; i++) { // 10 s, more than three TTLs: renewals keep it
      advance(Duration.ofSeconds(1));
      assertTrue(a.check(), "renewed at " + i);
      assertFalse(b.check());
    }
    assertEquals("a", holder());
  }

  @Test
  void aReleasedRoleIsTakenAtTheNextCheck() throws Exception {
    LeasedSingleton a = server("a");
    LeasedSingleton b = server("b");
    assertTrue(a.check());
    assertFalse(b.check());
    a.release();
    assertFalse(a.held());
    assertTrue(b.check());
    assertEquals("b", holder());
  }

  @Test
  void aHolderThatStopsRenewingLosesTheRoleAfterItsTtl() throws Exception {
    LeasedSingleton a = server("a");
    LeasedSingleton b = server("b");
    assertTrue(a.check());
    advance(TTL.minusMillis(1));
    assertFalse(b.check(), "the lease still lives");
    advance(Duration.ofMillis(2)); // a died without renewing: its lease expires
    assertTrue(b.check());
    assertEquals("b", holder());
    assertFalse(a.check(), "the old holder finds its lease gone");
    assertTrue(b.check());
  }

  @Test
  void aHolderCutOffFromEtcdStopsClaimingTheRoleWithinItsTtl() throws Exception {
    LeasedSingleton a = server("a");
    assertTrue(a.check());
    store.setUnavailable(true);
    advance(Duration.ofSeconds(2));
    assertTrue(a.check(), "renewal failed, but the lease was renewed less than a TTL ago");
    advance(Duration.ofSeconds(1));
    assertFalse(a.check(), "a TTL without renewal: it may have expired on etcd");
    store.setUnavailable(false);
    LeasedSingleton b = server("b");
    assertTrue(b.check(), "the lease it held has expired on the store: another server takes the role");
    assertFalse(a.check());
  }

  @Test
  void aKeyDeletedByHandIsNoLongerHeld() throws Exception {
    LeasedSingleton a = server("a");
    assertTrue(a.check());
    store.commit(io.shardmap.store.Txn.builder().delete(KEY).build()).get();
    advance(Duration.ofSeconds(1)); // the next renewal finds the key gone
    assertFalse(a.check());
    assertTrue(a.check(), "and takes it again");
  }
}
