package io.shardmap.support.cli;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/**
 * The one duration grammar of Shardmap's command lines and config files:
 *
 * <ul>
 *   <li>a whole number with a unit: {@code 250ms}, {@code 5s}, {@code 2m}, {@code 1h} (1 to 9 digits, unit
 *       in any case);
 *   <li>an ISO-8601 duration: {@code PT5S}, {@code PT0.5S}, {@code PT1H30M};
 *   <li>{@code 0}, the only number that needs no unit.
 * </ul>
 *
 * <p>A bare number other than {@code 0} is refused (is {@code 100} a pause of 100 ms or of 100 s?), and so
 * is a negative duration. Zero is accepted only by options that say what it means: they use {@link
 * ZeroAllowed}; every other duration option uses {@link Positive}. Whether a value is within an option's
 * range stays the rule of the API the option feeds, checked where it is used, so the CLI cannot drift
 * from it.
 */
public final class Durations {
  /** The grammar in one phrase, for messages and help. */
  public static final String RULE = "write a whole number with a unit (250ms, 5s, 2m, 1h) or ISO-8601 (PT5S)";

  private static final Pattern WITH_UNIT = Pattern.compile("(\\d{1,9})(ms|s|m|h)");

  private Durations() {}

  /**
   * Parses {@code value} by the grammar above.
   *
   * @param zeroAllowed whether {@code 0} (in any spelling: {@code 0s}, {@code PT0S}) is a valid value
   * @throws IllegalArgumentException naming the value and the rule it breaks
   */
  public static Duration parse(String value, boolean zeroAllowed) {
    String v = value == null ? "" : value.trim();
    String lower = v.toLowerCase(Locale.ROOT);
    Duration d;
    Matcher m = WITH_UNIT.matcher(lower);
    if (lower.equals("0")) {
      d = Duration.ZERO;
    } else if (m.matches()) {
      long n = Long.parseLong(m.group(1));
      d = switch (m.group(2)) {
        case "ms" -> Duration.ofMillis(n);
        case "s" -> Duration.ofSeconds(n);
        case "m" -> Duration.ofMinutes(n);
        default -> Duration.ofHours(n);
      };
    } else if (lower.startsWith("p") || lower.startsWith("-p")) {
      try {
        d = Duration.parse(v.toUpperCase(Locale.ROOT));
      } catch (DateTimeParseException e) {
        throw new IllegalArgumentException("'" + value + "' is not a duration: " + RULE);
      }
    } else if (lower.matches("\\d+")) {
      throw new IllegalArgumentException("'" + value + "' is not a duration: a number needs a unit (" + lower
          + "ms? " + lower + "s?); " + RULE);
    } else {
      throw new IllegalArgumentException("'" + value + "' is not a duration: " + RULE);
    }
    if (d.isNegative()) {
      throw new IllegalArgumentException("'" + value + "' is negative; a duration must be " + (zeroAllowed
          ? "0 or more" : "positive"));
    }
    if (d.isZero() && !zeroAllowed) {
      throw new IllegalArgumentException("'" + value + "' is zero; this option takes a positive duration");
    }
    return d;
  }

  /** The converter of a duration option that must be positive (picocli names the option in its error). */
  public static final class Positive extends Converter {
    public Positive() {
      super(false);
    }
  }

  /** The converter of a duration option whose description says what {@code 0} means. */
  public static final class ZeroAllowed extends Converter {
    public ZeroAllowed() {
      super(true);
    }
  }

  private abstract static class Converter implements CommandLine.ITypeConverter<Duration> {
    private final boolean zeroAllowed;

    Converter(boolean zeroAllowed) {
      this.zeroAllowed = zeroAllowed;
    }

    @Override
    public Duration convert(String value) {
      try {
        return parse(value, zeroAllowed);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  /**
   * A duration in the grammar's own syntax, in the largest unit that is exact ({@code 1h}, {@code 90s},
   * {@code 100ms}, {@code 0}), as help and messages show option values; {@code parse(format(d), true)}
   * equals {@code d} for whole milliseconds.
   */
  public static String format(Duration d) {
    long ms = d.toMillis();
    if (ms == 0) {
      return "0";
    }
    if (ms % 3_600_000 == 0) {
      return ms / 3_600_000 + "h";
    }
    if (ms % 60_000 == 0) {
      return ms / 60_000 + "m";
    }
    if (ms % 1000 == 0) {
      return ms / 1000 + "s";
    }
    return ms + "ms";
  }

  /** For people reading output: {@code 850 ms}, {@code 12.3 s}, {@code 4m05s}, {@code 2h10m}; {@code -} if negative. */
  public static String human(long millis) {
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
}
