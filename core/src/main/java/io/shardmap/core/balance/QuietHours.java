package io.shardmap.core.balance;

import io.shardmap.core.ShardmapException;
import java.time.Instant;
import java.time.LocalTime;
import java.time.ZoneOffset;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * UTC windows in which the balancer starts no move, written {@code HH:MM-HH:MM}: from the first time
 * (inclusive) to the second (exclusive); a window whose end is not after its start wraps midnight
 * ({@code 22:00-06:00}). Equal times would be the whole day and are refused: say "disabled" instead.
 */
public final class QuietHours {
  private static final Pattern WINDOW = Pattern.compile("([01]\\d|2[0-3]):([0-5]\\d)-([01]\\d|2[0-3]):([0-5]\\d)");

  private QuietHours() {}

  /** Minutes of the day [start, end) of a window; refuses a malformed one naming {@code field}. */
  public static int[] parseWindow(String field, String window) {
    Matcher m = WINDOW.matcher(window);
    if (!m.matches()) {
      throw ShardmapException.invalid(field, "a quiet window is HH:MM-HH:MM in UTC (e.g. 22:00-06:00), got '"
          + window + "'");
    }
    int start = Integer.parseInt(m.group(1)) * 60 + Integer.parseInt(m.group(2));
    int end = Integer.parseInt(m.group(3)) * 60 + Integer.parseInt(m.group(4));
    if (start == end) {
      throw ShardmapException.invalid(field, "a quiet window from a time to the same time would be the whole day; "
          + "disable the balancer instead, got '" + window + "'");
    }
    return new int[] {start, end};
  }

  /** The window of {@code windows} that holds {@code now}, or null. */
  public static String quietAt(List<String> windows, Instant now) {
    LocalTime t = LocalTime.ofInstant(now, ZoneOffset.UTC);
    int minute = t.getHour() * 60 + t.getMinute();
    for (int i = 0; i < windows.size(); i++) {
      int[] w = parseWindow("quiet_hours[" + i + "]", windows.get(i));
      boolean inside = w[0] < w[1] ? minute >= w[0] && minute < w[1] : minute >= w[0] || minute < w[1];
      if (inside) {
        return windows.get(i);
      }
    }
    return null;
  }
}
