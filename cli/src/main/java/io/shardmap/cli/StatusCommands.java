package io.shardmap.cli;

import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.MigrationPhase;
import io.shardmap.proto.v1.MoveStatus;
import io.shardmap.proto.v1.ShardStatus;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.proto.v1.UnitStatus;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.Table;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code status} and {@code hot}: the fleet as GetFleetStatus assembles it (docs/balancing.md). The text
 * form is {@link #print} and {@link #printHot}, pure functions of the response (the tests format fixed
 * responses with them).
 */
final class StatusCommands {
  private StatusCommands() {}

  /** Options both commands share. */
  abstract static class FleetCmd extends Cmd {
    @Option(names = "--keyspace", paramLabel = "KEYSPACE", description = "Only this keyspace (default: every one).")
    String keyspace;

    @Option(names = "--top", paramLabel = "N", defaultValue = "10",
        description = "How many of the hottest units to list per keyspace, 1-1000 (default 10).")
    int top;

    @Option(names = "--json", description = "Print the GetFleetStatusResponse as JSON (the same as -o json).")
    boolean json;

    /** Prints the response as JSON when asked (--json or -o json) and returns true. */
    boolean printedAsJson(GetFleetStatusResponse r) {
      if (json && !ctl().json()) {
        ctl().out.println(json(r, false));
        return true;
      }
      return printedJson(r);
    }

    GetFleetStatusResponse fetch(ShardmapCtl ctl, Duration window) {
      if (top < 1 || top > 1000) {
        throw usage("--top: must be 1-1000, got " + top);
      }
      GetFleetStatusRequest.Builder req = GetFleetStatusRequest.newBuilder().setTop(top);
      if (keyspace != null) {
        req.setKeyspace(keyspace);
      }
      if (window != null) {
        req.setWindowSeconds(window.toSeconds());
      }
      return ctl.fleet().getFleetStatus(req.build());
    }
  }

  @Command(name = "status",
      description = {"The fleet per keyspace: shards with their units, rows, bytes, calls per second, busy "
          + "time and share, the load and size skew; the hottest units with a suggested split or move and "
          + "the commands that do it; every running move's phase, progress, rate and ETA.",
        "Load is what the SDK clients reported over the window; rows and bytes are the latest sizes "
            + "(shardmapctl prints when they were taken)."})
  static final class Status extends FleetCmd {
    @Option(names = "--window", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "The load window: the last DURATION, 1m to 28d (default 5m).")
    Duration window;

    @Override
    void execute(ShardmapCtl ctl) {
      if (window != null && (window.toSeconds() < 60 || window.toSeconds() > Duration.ofDays(28).toSeconds())) {
        throw usage("--window: must be 1m-28d, got " + Durations.format(window));
      }
      GetFleetStatusResponse r = fetch(ctl, window);
      if (printedAsJson(r)) {
        return;
      }
      print(ctl.out, r);
    }
  }

  @Command(name = "hot", description = "The hottest units per keyspace over the last 5 minutes, with the "
      + "suggested split or move (status shows everything else).")
  static final class Hot extends FleetCmd {
    @Override
    void execute(ShardmapCtl ctl) {
      GetFleetStatusResponse r = fetch(ctl, null);
      if (printedAsJson(r)) {
        return;
      }
      printHot(ctl.out, r);
    }
  }

  /** The whole status: per keyspace its shards, skews, hottest units and suggestions; then the moves. */
  static void print(PrintWriter out, GetFleetStatusResponse r) {
    boolean first = true;
    for (KeyspaceStatus k : r.getKeyspacesList()) {
      if (!first) {
        out.println();
      }
      first = false;
      out.println(heading(k, r.getGeneratedUnixMs()));
      if (k.getShardsCount() > 0) {
        List<List<String>> rows = new ArrayList<>();
        double calls = k.getReadsPerSecond() + k.getWritesPerSecond();
        for (ShardStatus s : k.getShardsList()) {
          double c = s.getReadsPerSecond() + s.getWritesPerSecond();
          rows.add(List.of(s.getShard(), Long.toString(s.getUnits()), count(s.getRows()), bytes(s.getBytes()),
              rate(s.getReadsPerSecond()), rate(s.getWritesPerSecond()), fixed(s.getBusy(), 2),
              calls > 0 ? percent(c / calls) : "-"));
        }
        Table.print(out, List.of("SHARD", "UNITS", "ROWS", "BYTES", "READS/S", "WRITES/S", "BUSY", "SHARE"), rows);
      }
      out.println("load skew " + fixed(k.getLoadSkew(), 2) + ", size skew " + fixed(k.getSizeSkew(), 2)
          + " (largest shard over the mean, minus 1; 0 is even)");
      if (k.getHottestCount() > 0) {
        out.println("hottest units:");
        hottest(out, k);
      }
      if (k.getSuggestionsCount() > 0) {
        out.println("suggestions (each with the skew expected once it and those above it are done):");
        int i = 1;
        for (Suggestion s : k.getSuggestionsList()) {
          out.println("  " + i++ + ". " + s.getText());
          out.println("     load skew " + fixed(s.getLoadSkewAfter(), 2) + ", size skew "
              + fixed(s.getSizeSkewAfter(), 2) + " after");
        }
      }
    }
    if (!first) {
      out.println();
    }
    if (r.getMovesCount() == 0) {
      out.println("no running moves");
      return;
    }
    out.println("running moves:");
    List<List<String>> rows = new ArrayList<>();
    for (MoveStatus m : r.getMovesList()) {
      rows.add(List.of(m.getId(), m.getKeyspace(), m.getUnit(), m.getSource() + "->" + m.getTarget(),
          phase(m.getPhase()), progress(m), m.getRowsPerSecond() > 0 ? rate(m.getRowsPerSecond()) + " rows/s" : "-",
          Durations.human(m.getEtaMs())));
    }
    Table.print(out, List.of("ID", "KEYSPACE", "UNIT", "MOVE", "PHASE", "PROGRESS", "RATE", "ETA"), rows);
  }

  /** Only the hottest units of each keyspace. */
  static void printHot(PrintWriter out, GetFleetStatusResponse r) {
    boolean any = false;
    for (KeyspaceStatus k : r.getKeyspacesList()) {
      if (k.getHottestCount() == 0) {
        continue;
      }
      if (any) {
        out.println();
      }
      any = true;
      out.println(k.getKeyspace() + ":");
      hottest(out, k);
    }
    if (!any) {
      out.println("no unit had calls in the window");
    }
  }

  private static void hottest(PrintWriter out, KeyspaceStatus k) {
    List<List<String>> rows = new ArrayList<>();
    for (UnitStatus u : k.getHottestList()) {
      rows.add(List.of(u.getLabel(), u.getShard().isEmpty() ? "(several)" : u.getShard(),
          rate(u.getReadsPerSecond()), rate(u.getWritesPerSecond()), percent(u.getLoadShare()), count(u.getRows()),
          action(k, u)));
    }
    Table.print(out, List.of("UNIT", "SHARD", "READS/S", "WRITES/S", "SHARE", "ROWS", "SUGGESTED"), rows);
  }

  /** The suggestion for this unit in short (the full line with its commands is under suggestions). */
  static String action(KeyspaceStatus k, UnitStatus u) {
    for (Suggestion s : k.getSuggestionsList()) {
      if (s.getStart().equals(u.getStart()) && s.getEnd().equals(u.getEnd())) {
        return s.getKind() == Suggestion.Kind.KIND_SPLIT_AND_MOVE
            ? "split at " + Text.key(s.getSplitAt()) + ", move the upper part to " + s.getTarget()
            : "move to " + s.getTarget();
      }
    }
    return "-";
  }

  static String heading(KeyspaceStatus k, long now) {
    String sizes = k.getSizesUnixMs() == 0 ? "sizes never taken"
        : "sizes " + (k.getSizesExact() ? "counted " : "estimated ") + Durations.human(now - k.getSizesUnixMs())
            + " ago";
    return "keyspace " + k.getKeyspace() + " (" + Text.strategy(k.getStrategy()) + ", " + k.getUnits() + " units, "
        + rate(k.getReadsPerSecond()) + " reads/s, " + rate(k.getWritesPerSecond()) + " writes/s; " + sizes + ")";
  }

  static String phase(MigrationPhase p) {
    return switch (p) {
      case MIGRATION_PHASE_PREPARING -> "preparing";
      case MIGRATION_PHASE_COPYING -> "copying";
      case MIGRATION_PHASE_CATCHING_UP -> "catching up";
      case MIGRATION_PHASE_VERIFYING -> "verifying";
      case MIGRATION_PHASE_CUTTING_OVER -> "cutting over";
      case MIGRATION_PHASE_CLEANING_UP -> "cleaning up";
      default -> "other";
    };
  }

  /** Rows copied against the estimate, while copying only means something; {@code -} without an estimate. */
  static String progress(MoveStatus m) {
    if (m.getRowsEstimate() <= 0) {
      return count(m.getRowsCopied()) + " rows";
    }
    double p = Math.min(1.0, (double) m.getRowsCopied() / m.getRowsEstimate());
    return String.format(Locale.ROOT, "%.0f%% (%s/%s rows)", Math.floor(p * 100), count(m.getRowsCopied()),
        count(m.getRowsEstimate()));
  }

  static String rate(double perSecond) {
    return perSecond >= 100 ? String.format(Locale.ROOT, "%,.0f", perSecond) : fixed(perSecond, 1);
  }

  static String fixed(double v, int digits) {
    return String.format(Locale.ROOT, "%." + digits + "f", v);
  }

  static String percent(double fraction) {
    return String.format(Locale.ROOT, "%.1f%%", fraction * 100);
  }

  static String count(long n) {
    return n < 0 ? "?" : String.format(Locale.ROOT, "%,d", n);
  }

  static String bytes(long n) {
    if (n < 0) {
      return "?";
    }
    String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = n;
    int u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return u == 0 ? n + " B" : String.format(Locale.ROOT, "%.1f %s", v, units[u]);
  }
}
