package io.shardmap.migrator.cli;

import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/** Durations as people type and read them. */
final class Durations {
  private static final Pattern P = Pattern.compile("(\\d{1,9})(ms|s|m|h)");

  private Durations() {}

  /**
   * {@code 100ms}, {@code 60s}, {@code 2m}, {@code 1h}, or {@code 0}. The unit is required (is {@code 100}
   * a pause budget of 100 ms or 100 s?). Whether the value is in range is the API's rule, checked where
   * it is used, so the CLI cannot drift from it.
   */
  static final class Converter implements CommandLine.ITypeConverter<Duration> {
    @Override
    public Duration convert(String value) {
      String v = value.trim().toLowerCase(Locale.ROOT);
      if (v.equals("0")) {
        return Duration.ZERO;
      }
      Matcher m = P.matcher(v);
      if (!m.matches()) {
        throw new CommandLine.TypeConversionException("'" + value + "' is not a duration like 100ms, 60s, 2m or 1h");
      }
      long n = Long.parseLong(m.group(1));
      return switch (m.group(2)) {
        case "ms" -> Duration.ofMillis(n);
        case "s" -> Duration.ofSeconds(n);
        case "m" -> Duration.ofMinutes(n);
        default -> Duration.ofHours(n);
      };
    }
  }

  /** {@code 850 ms}, {@code 12.3 s}, {@code 4m05s}, {@code 2h10m}. */
  static String human(long millis) {
    if (millis < 0) {
      return "-";
    }
    if (millis < 1_000) {
      return millis + " ms";
    }
    if (millis < 60_000) {
      return String.format(Locale.ROOT, "%.1f s", millis / 1000.0);
    }
    long s = millis / 1000;
    if (s < 3600) {
      return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }
    return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
  }

  /** The option syntax of a duration, as {@code --help} and messages show it: {@code 100ms}, {@code 60s}. */
  static String option(Duration d) {
    long ms = d.toMillis();
    if (ms % 3_600_000 == 0 && ms > 0) {
      return ms / 3_600_000 + "h";
    }
    if (ms % 60_000 == 0 && ms > 0) {
      return ms / 60_000 + "m";
    }
    if (ms % 1000 == 0) {
      return ms / 1000 + "s";
    }
    return ms + "ms";
  }
}
