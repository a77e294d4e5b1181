package io.shardmap.support.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Tag("unit")
class DurationsTest {
  @Test
  void unitsAndIsoAreAccepted() {
    assertEquals(Duration.ofMillis(250), Durations.parse("250ms", false));
    assertEquals(Duration.ofSeconds(5), Durations.parse("5s", false));
    assertEquals(Duration.ofMinutes(2), Durations.parse("2m", false));
    assertEquals(Duration.ofHours(1), Durations.parse("1h", false));
    assertEquals(Duration.ofSeconds(5), Durations.parse(" 5S ", false));
    assertEquals(Duration.ofSeconds(5), Durations.parse("PT5S", false));
    assertEquals(Duration.ofMillis(500), Durations.parse("pt0.5s", false));
    assertEquals(Duration.ofMinutes(90), Durations.parse("PT1H30M", false));
  }

  @Test
  void aBareNumberNeedsAUnitExceptZero() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Durations.parse("100", true));
    assertTrue(e.getMessage().contains("'100' is not a duration: a number needs a unit (100ms? 100s?)"),
        e.getMessage());
    assertEquals(Duration.ZERO, Durations.parse("0", true));
  }

  @Test
  void zeroOnlyWhereTheOptionAllowsIt() {
    for (String zero : new String[] {"0", "0ms", "0s", "PT0S"}) {
      assertEquals(Duration.ZERO, Durations.parse(zero, true), zero);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Durations.parse(zero, false));
      assertTrue(e.getMessage().contains("this option takes a positive duration"), e.getMessage());
    }
  }

  @Test
  void negativeMalformedAndOverlongValuesAreRefused() {
    for (String bad : new String[] {"-5s", "PT-5S", "-PT5S", "soon", "5 s", "5sec", "1d", "", "1.5s",
        "1234567890s", "P"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Durations.parse(bad, true),
          bad);
      assertTrue(e.getMessage().startsWith("'" + bad + "' is"), e.getMessage());
    }
  }

  @Test
  void formatWritesTheGrammarBack() {
    for (Duration d : new Duration[] {Duration.ZERO, Duration.ofMillis(100), Duration.ofSeconds(90),
        Duration.ofMinutes(2), Duration.ofHours(3), Duration.ofMillis(1500)}) {
      assertEquals(d, Durations.parse(Durations.format(d), true), Durations.format(d));
    }
    assertEquals("90s", Durations.format(Duration.ofSeconds(90)));
    assertEquals("1h", Durations.format(Duration.ofMinutes(60)));
    assertEquals("0", Durations.format(Duration.ZERO));
  }

  @Command(name = "t")
  static final class Opts {
    @Option(names = "--wait", converter = Durations.Positive.class)
    Duration wait;

    @Option(names = "--grace", converter = Durations.ZeroAllowed.class)
    Duration grace;
  }

  @Test
  void asAPicocliConverterTheErrorNamesTheOptionAndTheRule() {
    Opts o = new Opts();
    new CommandLine(o).parseArgs("--wait", "3s", "--grace", "0");
    assertEquals(Duration.ofSeconds(3), o.wait);
    assertEquals(Duration.ZERO, o.grace);

    CommandLine.ParameterException zero = assertThrows(CommandLine.ParameterException.class,
        () -> new CommandLine(new Opts()).parseArgs("--wait", "0"));
    assertTrue(zero.getMessage().contains("'--wait'") && zero.getMessage().contains("positive"), zero.getMessage());
    CommandLine.ParameterException bare = assertThrows(CommandLine.ParameterException.class,
        () -> new CommandLine(new Opts()).parseArgs("--grace", "7"));
    assertTrue(bare.getMessage().contains("'--grace'") && bare.getMessage().contains(Durations.RULE),
        bare.getMessage());
  }

  @Test
  void humanReadings() {
    assertEquals("850 ms", Durations.human(850));
    assertEquals("12.3 s", Durations.human(12_300));
    assertEquals("4m05s", Durations.human(245_000));
    assertEquals("2h10m", Durations.human(7_800_000));
    assertEquals("-", Durations.human(-1));
  }
}
