package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The one bounded poll: returns once the condition holds, fails naming what was awaited when it never does. */
@Tag("unit")
class AwaitTest {

  @Test
  void returnsOnceTheConditionHolds() throws Exception {
    AtomicInteger polls = new AtomicInteger();
    Await.until(Duration.ofSeconds(10), "the third poll", () -> polls.incrementAndGet() >= 3);
    assertEquals(3, polls.get());
  }

  @Test
  void failsNamingWhatWasAwaitedWhenTheConditionNeverHolds() {
    AssertionError e = assertThrows(AssertionError.class,
        () -> Await.until(Duration.ofMillis(30), "a change that never comes", () -> false));
    assertTrue(e.getMessage().contains("a change that never comes"), e.getMessage());
    assertTrue(e.getMessage().contains("PT0.03S"), e.getMessage());
  }
}
