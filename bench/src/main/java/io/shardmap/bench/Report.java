package io.shardmap.bench;

import java.lang.management.ManagementFactory;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** Percentiles, aggregation of phases, and the plain-text tables the commands print. */
public final class Report {
  private Report() {}

  /** The value at quantile q (0..1) of sorted values, nearest-rank; 0 for no values. */
  public static long quantile(long[] sorted, double q) {
    if (sorted.length == 0) {
      return 0;
    }
    int rank = (int) Math.ceil(q * sorted.length);
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
  }

  /** Several phases of one target summed up: throughput over their total time, latencies pooled. */
  public record Summary(String target, long completed, long errors, String firstError, double seconds,
                        double callsPerSecond, long p50, long p99, long p999, long max, double cpuMicrosPerCall,
                        long gcMillis) {
    public static Summary of(String target, List<ClosedLoop.PhaseResult> phases) {
      long completed = 0;
      long errors = 0;
      long nanos = 0;
      long cpu = 0;
      long gc = 0;
      String firstError = null;
      int total = 0;
      for (ClosedLoop.PhaseResult p : phases) {
        completed += p.completed();
        errors += p.errors();
        nanos += p.elapsedNanos();
        cpu += p.cpuNanos();
        gc += p.gcMillis();
        total += p.latencyNanos().length;
        if (firstError == null) {
          firstError = p.firstError();
        }
      }
      long[] all = new long[total];
      int at = 0;
      for (ClosedLoop.PhaseResult p : phases) {
        System.arraycopy(p.latencyNanos(), 0, all, at, p.latencyNanos().length);
        at += p.latencyNanos().length;
      }
      Arrays.sort(all);
      return new Summary(target, completed, errors, firstError, nanos / 1e9, completed * 1e9 / Math.max(1, nanos),
          quantile(all, 0.50), quantile(all, 0.99), quantile(all, 0.999), all.length == 0 ? 0 : all[all.length - 1],
          completed == 0 ? 0 : cpu / 1e3 / completed, gc);
    }
  }

  /** A distribution of durations (ns, may be negative), for the event-timing benchmarks. */
  public record Dist(long[] sorted) {
    public static Dist of(long[] values) {
      long[] s = values.clone();
      Arrays.sort(s);
      return new Dist(s);
    }

    public int count() {
      return sorted.length;
    }

    public long p(double q) {
      return quantile(sorted, q);
    }

    public long min() {
      return sorted.length == 0 ? 0 : sorted[0];
    }

    public long max() {
      return sorted.length == 0 ? 0 : sorted[sorted.length - 1];
    }

    public double mean() {
      double sum = 0;
      for (long v : sorted) {
        sum += v;
      }
      return sorted.length == 0 ? 0 : sum / sorted.length;
    }
  }

  /** Nanoseconds as milliseconds with {@code decimals} places. */
  public static String millis(double nanos, int decimals) {
    return String.format(Locale.ROOT, "%,." + decimals + "f", nanos / 1e6);
  }

  public static String micros(long nanos) {
    return String.format(Locale.ROOT, "%.1f", nanos / 1e3);
  }

  public static String fmt(double v, int decimals) {
    return String.format(Locale.ROOT, "%,." + decimals + "f", v);
  }

  /** A fixed-width table: a header row, then rows, columns right-aligned except the first. */
  public static String table(List<String> header, List<List<String>> rows) {
    List<List<String>> all = new ArrayList<>();
    all.add(header);
    all.addAll(rows);
    int[] width = new int[header.size()];
    for (List<String> r : all) {
      for (int i = 0; i < r.size(); i++) {
        width[i] = Math.max(width[i], r.get(i).length());
      }
    }
    StringBuilder sb = new StringBuilder();
    for (List<String> r : all) {
      for (int i = 0; i < r.size(); i++) {
        String cell = r.get(i);
        String pad = " ".repeat(width[i] - cell.length());
        sb.append(i == 0 ? cell + pad : pad + cell).append(i == r.size() - 1 ? "" : "  ");
      }
      sb.append('\n');
    }
    return sb.toString();
  }

  /** One line naming the machine and the moment, printed with every result. */
  public static String environment() {
    var os = ManagementFactory.getOperatingSystemMXBean();
    return String.format(Locale.ROOT, "%s | %d cpus | java %s (%s) | %s %s | load average %.2f",
        ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME),
        Runtime.getRuntime().availableProcessors(), System.getProperty("java.version"),
        System.getProperty("java.vm.name"), os.getName(), os.getArch(), os.getSystemLoadAverage());
  }

  public static String loadAverage() {
    return String.format(Locale.ROOT, "%.2f", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
  }
}
