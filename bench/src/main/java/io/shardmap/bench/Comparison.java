package io.shardmap.bench;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs several targets one after the other with the same closed-loop settings, in rounds whose order
 * alternates (A B, then B A, ...), so slow drift of the machine (other work, thermal, JIT of shared client
 * code) lands on every target alike instead of on whichever runs last.
 */
final class Comparison {
  record Target(String name, ClosedLoop<?, ?> loop) {}

  /**
   * @param initialWarmup run once per target before the first round: the first phases of a fresh JVM
   *     otherwise still run partly interpreted code of the shared client and transport
   * @param warmup run before each measured phase, so each starts from that target's steady state
   */
  record Settings(int concurrency, Duration initialWarmup, Duration warmup, Duration measure, long maxCalls,
                  int rounds) {
    Settings {
      if (concurrency < 1 || concurrency > 4096) {
        throw new IllegalArgumentException("concurrency must be 1-4096, got " + concurrency);
      }
      if (rounds < 1 || rounds > 20) {
        throw new IllegalArgumentException("rounds must be 1-20, got " + rounds);
      }
      if (measure.isZero() || measure.isNegative() || measure.toSeconds() > 600
          || warmup.isNegative() || warmup.toSeconds() > 600
          || initialWarmup.isNegative() || initialWarmup.toSeconds() > 600) {
        throw new IllegalArgumentException("measure must be 0-600 s (positive), warm-ups 0-600 s");
      }
      if (maxCalls < 1) {
        throw new IllegalArgumentException("max calls must be positive");
      }
    }
  }

  private Comparison() {}

  /** Measured phases per target name, in the order the targets were given. */
  static Map<String, List<ClosedLoop.PhaseResult>> run(List<Target> targets, Settings s, PrintStream out)
      throws InterruptedException {
    Map<String, List<ClosedLoop.PhaseResult>> results = new LinkedHashMap<>();
    for (Target t : targets) {
      results.put(t.name(), new ArrayList<>());
    }
    if (!s.initialWarmup().isZero()) {
      for (Target t : targets) {
        t.loop().run(s.concurrency(), s.initialWarmup(), s.maxCalls(), false);
      }
    }
    for (int round = 0; round < s.rounds(); round++) {
      List<Target> order = new ArrayList<>(targets);
      if (round % 2 == 1) {
        java.util.Collections.reverse(order);
      }
      for (Target t : order) {
        if (!s.warmup().isZero()) {
          t.loop().run(s.concurrency(), s.warmup(), s.maxCalls(), false);
        }
        ClosedLoop.PhaseResult r = t.loop().run(s.concurrency(), s.measure(), s.maxCalls(), true);
        results.get(t.name()).add(r);
        long[] sorted = r.latencyNanos().clone();
        java.util.Arrays.sort(sorted);
        out.printf("  round %d  %-9s %12s calls/s  p50 %8s us  p99 %8s us  p99.9 %8s us  calls %,d  errors %d  load %s%n",
            round + 1, t.name(), Report.fmt(r.callsPerSecond(), 0), Report.micros(Report.quantile(sorted, 0.5)),
            Report.micros(Report.quantile(sorted, 0.99)), Report.micros(Report.quantile(sorted, 0.999)),
            r.completed(), r.errors(), Report.loadAverage());
        if (r.completed() > r.latencyNanos().length) {
          out.printf("    (percentiles from the first %,d calls only)%n", r.latencyNanos().length);
        }
        out.flush();
      }
    }
    return results;
  }
}
