package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** --size-interval: its default, a value, and values out of 1 s to 7 days refused naming it. */
@Tag("unit")
class SizeIntervalOptionTest {

  @Test
  void defaultAndValue() {
    assertEquals(Duration.ofMinutes(5), Main.parse().sizeInterval());
    assertEquals(Duration.ofSeconds(90), Main.parse("--size-interval", "90s").sizeInterval());
  }

  @Test
  void outOfRangeIsRefusedNamingTheOption() {
    refused("'--size-interval'", "--size-interval", "0s");
    refused("size-interval: must be 1s to 168h", "--size-interval", "500ms");
    refused("size-interval: must be 1s to 168h", "--size-interval", "200h");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ServerOptions.builder().sizeInterval(null));
    assertTrue(e.getMessage().startsWith("size-interval:"), e.getMessage());
  }

  private static void refused(String expected, String... args) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Main.parse(args));
    assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
  }
}
