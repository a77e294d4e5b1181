package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.DataOptions;
import io.shardmap.client.internal.ShardPools.ShardPool;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.Shard;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The failover buffer's rules, on pools whose endpoints nothing listens on (no connection is ever made):
 * which failures it holds, that a new pool for the shard releases the waiting calls at once, and both of
 * its bounds.
 */
@Tag("unit")
@Timeout(30)
class FailoverBufferTest {
  private final ShardPools pools = new ShardPools(DataOptions.builder().user("nobody").build());

  @AfterEach
  void close() {
    pools.close();
  }

  private static Shard shard(String name, int port, long term, boolean patroni) {
    Shard.Builder b = Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase("db"))
        .setPrimaryTerm(term);
    if (patroni) {
      b.setPatroni(PatroniSource.newBuilder().setScope(name));
    }
    return b.build();
  }

  private ShardPool pool(long revision, Shard s) {
    DirectorySnapshot map = new DirectorySnapshot(revision, Map.of(), Map.of(s.getName(), s));
    pools.sync(map);
    return pools.pools().get(s.getName());
  }

  private static final SQLException REFUSED = new SQLTransientConnectionException("connection refused", "08001");

  @Test
  void holdsOnlyWhatProvablyDidNotRunOnPatroniShards() {
    ShardPool patroni = pool(1, shard("p", 1, 1, true));
    assertTrue(FailoverBuffer.isFailover(patroni, new NotRunException(REFUSED), true));
    assertTrue(FailoverBuffer.isFailover(patroni, new SQLException("read-only", "25006"), true));
    assertFalse(FailoverBuffer.isFailover(patroni, new SQLException("read-only", "25006"), false),
        "a read is not refused as read-only; 25006 there is the work's own doing");
    assertFalse(FailoverBuffer.isFailover(patroni, new SQLException("broken", "08006"), true),
        "a connection lost with an unknown outcome (autocommit, COMMIT) is not NotRun and is not held");
    assertFalse(FailoverBuffer.isFailover(patroni, new SQLException("dup", "23505"), true));
    ShardPool fixed = pool(2, shard("f", 2, 0, false));
    assertFalse(FailoverBuffer.isFailover(fixed, new NotRunException(REFUSED), true),
        "a fixed shard has no failover to wait for");
    assertFalse(FailoverBuffer.isFailover(null, new NotRunException(REFUSED), true));
  }

  @Test
  void aNewPrimaryTermReleasesWaitingCallsAtOnce() throws Exception {
    ShardPool old = pool(1, shard("p", 1, 1, true));
    FailoverBuffer buffer = new FailoverBuffer(10, Duration.ofSeconds(20), Duration.ofSeconds(20), System::nanoTime);
    buffer.mapChanged(Map.of("p", 1L));
    AtomicReference<ShardPool> seen = new AtomicReference<>();
    CountDownLatch waiting = new CountDownLatch(1);
    Thread t = new Thread(() -> {
      waiting.countDown();
      buffer.await(null, old, () -> pools.pools().get("p"), REFUSED);
      seen.set(pools.pools().get("p"));
    });
    t.start();
    waiting.await();
    while (buffer.waiting() == 0) {
      Thread.sleep(5);
    }
    // Same endpoint, new term (the node failed and came back as the primary): a new pool all the same.
    ShardPool next = pool(2, shard("p", 1, 2, true));
    assertNotSame(old, next);
    buffer.mapChanged(Map.of("p", 2L));
    t.join(5_000);
    assertFalse(t.isAlive(), "released by the map change, long before the 20 s probe interval");
    assertSame(next, seen.get());
    assertEquals(Map.of("p", 1L), buffer.failoversSeen());
    assertEquals(1, buffer.buffered());
    assertEquals(0, buffer.waiting());
    buffer.succeeded("p");
    assertTrue(buffer.firstCallAfterFailover().containsKey("p"));
    assertTrue(old.isClosed(), "the old term's pool is closed");
  }

  @Test
  void aCallWaitsNoLongerThanItsWindow() {
    ShardPool p = pool(1, shard("p", 1, 1, true));
    AtomicLong now = new AtomicLong(1_000);
    FailoverBuffer buffer = new FailoverBuffer(10, Duration.ofMillis(300), Duration.ofMillis(100), () -> {
      return now.addAndGet(TimeUnit.MILLISECONDS.toNanos(50)); // time passes as the buffer looks at it
    });
    FailoverBuffer.Wait w = null;
    int probes = 0;
    ShardmapException e = null;
    while (e == null) {
      try {
        w = buffer.await(w, p, () -> p, REFUSED);
        probes++;
      } catch (ShardmapException x) {
        e = x;
      }
    }
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("shard 'p' had no reachable primary for 300 ms"), e.getMessage());
    assertTrue(e.getMessage().contains("did not run"), e.getMessage());
    assertSame(REFUSED, e.getCause());
    assertTrue(probes >= 1 && probes <= 6, "probed every 100 ms within 300 ms: " + probes);
    assertEquals(1, buffer.timeouts());
  }

  @Test
  void aFullBufferRefusesAtOnce() throws Exception {
    ShardPool p = pool(1, shard("p", 1, 1, true));
    FailoverBuffer buffer = new FailoverBuffer(2, Duration.ofSeconds(20), Duration.ofSeconds(20), System::nanoTime);
    Thread[] holders = new Thread[2];
    for (int i = 0; i < 2; i++) {
      holders[i] = new Thread(() -> {
        try {
          buffer.await(null, p, () -> pools.pools().get("p"), REFUSED);
        } catch (ShardmapException ignored) {
          // released below by closing the wait with a new pool
        }
      });
      holders[i].start();
    }
    while (buffer.waiting() < 2) {
      Thread.sleep(5);
    }
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> buffer.await(null, p, () -> pools.pools().get("p"), REFUSED));
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(e.getMessage().contains("failover buffer is full (2 calls wait already)"), e.getMessage());
    assertEquals(1, buffer.overflows());
    pool(2, shard("p", 2, 2, true));
    buffer.mapChanged(Map.of("p", 2L));
    for (Thread t : holders) {
      t.join(5_000);
      assertFalse(t.isAlive());
    }
  }
}
