package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.function.Supplier;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The circuit breaker settings of {@link DataOptions}: defaults, kept values, bad values refused by name. */
@Tag("unit")
class DataOptionsBreakerTest {

  /** Refused with a message that starts with the setting's name and says the rule ({@code rule} in it). */
  private static void refused(String option, String rule, Supplier<?> build) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
    assertTrue(e.getMessage().startsWith(option + ":"), e.getMessage());
    assertTrue(e.getMessage().contains(rule), e.getMessage());
  }

  private static DataOptions.Builder app() {
    return DataOptions.builder().user("app");
  }

  @Test
  void defaultsAreSizedForDatabaseCalls() {
    DataOptions o = app().build();
    assertTrue(o.breakerEnabled());
    assertEquals(50, o.breakerFailureRateThreshold());
    assertEquals(20, o.breakerWindowSize());
    assertEquals(5, o.breakerMinimumCalls());
    assertEquals(Duration.ofSeconds(1), o.breakerOpenDuration());
    assertEquals(2, o.breakerHalfOpenCalls());
    assertEquals(Duration.ofSeconds(2), o.breakerSlowCallThreshold());
  }

  @Test
  void settingsAreKept() {
    DataOptions o = app().breakerEnabled(false).breakerFailureRateThreshold(100).breakerWindowSize(7)
        .breakerMinimumCalls(7).breakerOpenDuration(Duration.ofMillis(10)).breakerHalfOpenCalls(1)
        .breakerSlowCallThreshold(Duration.ofMillis(1)).build();
    assertFalse(o.breakerEnabled());
    assertEquals(100, o.breakerFailureRateThreshold());
    assertEquals(7, o.breakerWindowSize());
    assertEquals(7, o.breakerMinimumCalls());
    assertEquals(Duration.ofMillis(10), o.breakerOpenDuration());
    assertEquals(1, o.breakerHalfOpenCalls());
    assertEquals(Duration.ofMillis(1), o.breakerSlowCallThreshold());
    assertEquals(1, app().breakerFailureRateThreshold(1).build().breakerFailureRateThreshold());
  }

  @Test
  void badValuesNameTheSettingAndTheRule() {
    refused("breakerFailureRateThreshold", "1..100", () -> app().breakerFailureRateThreshold(0));
    refused("breakerFailureRateThreshold", "1..100", () -> app().breakerFailureRateThreshold(101));
    refused("breakerWindowSize", "1..10000", () -> app().breakerWindowSize(0));
    refused("breakerWindowSize", "1..10000", () -> app().breakerWindowSize(10_001));
    refused("breakerMinimumCalls", "1..10000", () -> app().breakerMinimumCalls(0));
    refused("breakerMinimumCalls", "at most breakerWindowSize (20)", () -> app().breakerMinimumCalls(21).build());
    refused("breakerMinimumCalls", "at most breakerWindowSize (4)",
        () -> app().breakerWindowSize(4).breakerMinimumCalls(5).build());
    refused("breakerOpenDuration", "at least 10 ms", () -> app().breakerOpenDuration(Duration.ofMillis(9)));
    refused("breakerOpenDuration", "at least 10 ms", () -> app().breakerOpenDuration(null));
    refused("breakerOpenDuration", "at least 10 ms", () -> app().breakerOpenDuration(Duration.ofSeconds(-1)));
    refused("breakerHalfOpenCalls", "1..1000", () -> app().breakerHalfOpenCalls(0));
    refused("breakerHalfOpenCalls", "1..1000", () -> app().breakerHalfOpenCalls(1001));
    refused("breakerSlowCallThreshold", "at least 1 ms", () -> app().breakerSlowCallThreshold(Duration.ZERO));
    refused("breakerSlowCallThreshold", "at least 1 ms", () -> app().breakerSlowCallThreshold(null));
  }
}
