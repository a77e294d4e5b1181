package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.client.internal.Counters.QueryFailure;
import io.shardmap.client.internal.Counters.QueryOutcome;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.sql.SQLException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The cross-shard query counters: a failed query is counted once as FAILED (with its time) and once under
 * its cause, so the causes add up to the failed queries; how a failure's cause follows from where it was
 * thrown and its code; the connection gauge going up and down.
 */
@Tag("unit")
class QueryCountersTest {
  @Test
  void aFailedQueryIsOneFailedOutcomeAndOneCauseWithItsTime() {
    Counters c = new Counters();
    c.queryEnded(QueryOutcome.OK, 100);
    c.queryEnded(QueryOutcome.OK, 50);
    c.queryEnded(QueryOutcome.PARTIAL, 7);
    c.queryEnded(QueryOutcome.CLOSED, 3);
    c.queryFailed(QueryFailure.SHARD, 20);
    c.queryFailed(QueryFailure.REFUSED, 1);
    assertEquals(2, c.queries(QueryOutcome.OK));
    assertEquals(150, c.queryNanos(QueryOutcome.OK));
    assertEquals(1, c.queries(QueryOutcome.PARTIAL));
    assertEquals(7, c.queryNanos(QueryOutcome.PARTIAL));
    assertEquals(1, c.queries(QueryOutcome.CLOSED));
    assertEquals(2, c.queries(QueryOutcome.FAILED));
    assertEquals(21, c.queryNanos(QueryOutcome.FAILED));
    assertEquals(1, c.queryFailures(QueryFailure.SHARD));
    assertEquals(1, c.queryFailures(QueryFailure.REFUSED));
    assertEquals(0, c.queryFailures(QueryFailure.DEADLINE));
    long causes = 0;
    for (QueryFailure f : QueryFailure.values()) {
      causes += c.queryFailures(f);
    }
    assertEquals(c.queries(QueryOutcome.FAILED), causes, "the causes add up to the failed queries");
    // A failure without its cause would break that sum: refused.
    assertThrows(IllegalArgumentException.class, () -> c.queryEnded(QueryOutcome.FAILED, 1));
    assertEquals(2, c.queries(QueryOutcome.FAILED));
  }

  @Test
  void aFailuresCauseIsWhereItWasThrownExceptForTheDeadlineAndAStaleMap() {
    ShardmapException deadline = new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "late");
    ShardmapException stale = new ShardmapException(ErrorCode.STALE_EPOCH, "gave up");
    ShardmapException invalid = ShardmapException.invalid("sql", "not a SELECT");
    ShardmapException notFound = new ShardmapException(ErrorCode.NOT_FOUND, "no keyspace 'nope'");
    ShardmapException precondition = ShardmapException.precondition("the map does not cover the keyspace");
    ShardmapException unavailable = new ShardmapException(ErrorCode.UNAVAILABLE, "s2: connection refused");
    // Before anything is sent: only bad input is a refusal.
    assertEquals(QueryFailure.REFUSED, QueryFailure.of(invalid, QueryFailure.REFUSED));
    assertEquals(QueryFailure.REFUSED, QueryFailure.of(notFound, QueryFailure.REFUSED));
    assertEquals(QueryFailure.OTHER, QueryFailure.of(precondition, QueryFailure.REFUSED));
    assertEquals(QueryFailure.OTHER, QueryFailure.of(new IllegalStateException("bug"), QueryFailure.REFUSED));
    // The parts' failure: a shard's, whatever its code (division by zero there is INVALID_ARGUMENT) ...
    assertEquals(QueryFailure.SHARD, QueryFailure.of(invalid, QueryFailure.SHARD));
    assertEquals(QueryFailure.SHARD, QueryFailure.of(unavailable, QueryFailure.SHARD));
    assertEquals(QueryFailure.SHARD, QueryFailure.of(new SQLException("x", "22012"), QueryFailure.SHARD));
    // ... except the deadline (a statement_timeout, a pool wait cut at the deadline) and a stale map.
    assertEquals(QueryFailure.DEADLINE, QueryFailure.of(deadline, QueryFailure.SHARD));
    assertEquals(QueryFailure.DEADLINE, QueryFailure.of(deadline, QueryFailure.OTHER));
    assertEquals(QueryFailure.DEADLINE, QueryFailure.of(deadline, QueryFailure.REFUSED));
    assertEquals(QueryFailure.STALE_MAP, QueryFailure.of(stale, QueryFailure.OTHER));
    // Elsewhere (the merge's cap is INVALID_ARGUMENT, an uncovered map FAILED_PRECONDITION): other.
    assertEquals(QueryFailure.OTHER, QueryFailure.of(invalid, QueryFailure.OTHER));
    assertEquals(QueryFailure.OTHER, QueryFailure.of(precondition, QueryFailure.OTHER));
  }

  @Test
  void theConnectionGaugeCountsTakenLessReleased() {
    Counters c = new Counters();
    c.partConnectionTaken();
    c.partConnectionTaken();
    c.partConnectionTaken();
    assertEquals(3, c.partConnections());
    c.partConnectionReleased();
    c.partConnectionReleased();
    assertEquals(1, c.partConnections());
    c.partConnectionReleased();
    assertEquals(0, c.partConnections());
  }
}
