package io.shardmap.core.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.InDoubt.Action;
import io.shardmap.core.sql.InDoubt.State;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** What the resolver does with an in-doubt transaction, given its decision and age. */
@Tag("unit")
class InDoubtActionTest {
  static final Duration ABORT_AFTER = Duration.ofSeconds(2);

  @Test
  void aDecisionIsActedOnAtAnyAge() {
    for (Duration age : new Duration[] {Duration.ZERO, Duration.ofMillis(1), ABORT_AFTER, Duration.ofHours(5)}) {
      assertEquals(Action.COMMIT_PREPARED, InDoubt.action(State.COMMIT, age, ABORT_AFTER));
      assertEquals(Action.ROLLBACK_PREPARED, InDoubt.action(State.ABORT, age, ABORT_AFTER));
    }
  }

  @Test
  void anUndecidedTransactionIsAbortedOnlyFromTheAbortTimeoutOn() {
    assertEquals(Action.WAIT, InDoubt.action(State.UNDECIDED, Duration.ZERO, ABORT_AFTER));
    assertEquals(Action.WAIT, InDoubt.action(State.UNDECIDED, ABORT_AFTER.minusNanos(1), ABORT_AFTER));
    assertEquals(Action.DECIDE_ABORT, InDoubt.action(State.UNDECIDED, ABORT_AFTER, ABORT_AFTER));
    assertEquals(Action.DECIDE_ABORT, InDoubt.action(State.UNDECIDED, Duration.ofDays(3), ABORT_AFTER));
  }

  @Test
  void aTransactionWhoseDeciderCannotBeReadIsLeftWhateverItsAge() {
    assertEquals(Action.LEAVE, InDoubt.action(State.DECIDER_UNAVAILABLE, Duration.ZERO, ABORT_AFTER));
    assertEquals(Action.LEAVE, InDoubt.action(State.DECIDER_UNAVAILABLE, Duration.ofDays(3), ABORT_AFTER));
  }

  @Test
  void theDecisionThatStandsAfterDecidingAbortIsWhatIsDone() {
    assertEquals(Action.COMMIT_PREPARED, InDoubt.actionOn(Decision.COMMIT));
    assertEquals(Action.ROLLBACK_PREPARED, InDoubt.actionOn(Decision.ABORT));
  }
}
