package io.shardmap.client.internal.ids;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdClock;
import io.shardmap.core.ids.IdGenerator;
import io.shardmap.core.ids.IdLayout;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The renewer's updates of one claim: they only move forward, and a lapse stops the generator at once and sticks. */
@Tag("unit")
class RemoteWorkerLeaseTest {
  static final long MS = 1_000_000;

  @Test
  void renewalsOnlyMoveForward() {
    RemoteWorkerLease l = new RemoteWorkerLease(3, 7, 9, 100, 1_000 * MS, 5_000);
    l.renewed(500 * MS, 2_000, 6_000);
    assertEquals(2_500 * MS, l.validUntilNanos());
    assertEquals(6_000, l.issueUntilMillis());
    // A late reply of an earlier renewal lowers neither value.
    l.renewed(100 * MS, 2_000, 5_500);
    assertEquals(2_500 * MS, l.validUntilNanos());
    assertEquals(6_000, l.issueUntilMillis());
    assertEquals(3, l.workerId());
    assertEquals(100, l.startAfterMillis());
  }

  @Test
  void aLapseStopsTheGeneratorAtOnceAndARenewalReplyDoesNotReviveIt() {
    long[] now = {10_000 * MS};
    IdClock clock = new IdClock() {
      @Override
      public long wallMillis() {
        return IdLayout.DEFAULT_EPOCH.toEpochMilli() + now[0] / MS;
      }

      @Override
      public long nanoTime() {
        return now[0];
      }

      @Override
      public void pause(long nanos) {
        now[0] += nanos;
      }
    };
    long wall = clock.wallMillis();
    RemoteWorkerLease l = new RemoteWorkerLease(1, 7, 9, wall - 1, now[0] + 2_000 * MS, wall + 3_000);
    IdGenerator g = IdGenerator.create(IdLayout.defaults(), l, clock, Duration.ofSeconds(1));
    g.next();
    l.lapse(now[0]);
    ShardmapException e = assertThrows(ShardmapException.class, g::next);
    assertEquals(ErrorCode.UNAVAILABLE, e.code());
    assertTrue(l.lapsed());
    l.renewed(now[0], 2_000, wall + 9_000);
    assertThrows(ShardmapException.class, g::next);
  }
}
