package io.shardmap.migrator.cli;

import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.migrator.ReferenceCheck.Copy;
import io.shardmap.migrator.ReferenceCheck.KeyDiff;
import io.shardmap.migrator.ReferenceCheck.Unresolved;
import io.shardmap.migrator.ReferenceRepair;
import io.shardmap.migrator.ReferenceRepair.Change;
import io.shardmap.support.cli.Durations;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.stream.Collectors;
import picocli.CommandLine.Option;

/**
 * What {@code reference verify} and {@code reference repair} share: their tuning options, the progress
 * lines on stderr (the modes of {@link Progress}: live, lines, JSON lines, none) and the report on stdout,
 * as text or (with {@code --json}) one JSON object.
 */
final class ReferenceOutput {
  private ReferenceOutput() {}

  /** Options of both commands. */
  static final class Tuning {
    @Option(names = "--table", required = true, paramLabel = "TABLE",
        description = "The reference table, schema-qualified as its record names it (public.countries); a name "
            + "without schema means schema public.")
    String table;

    @Option(names = "--buckets", paramLabel = "N", description = "Primary-key hash buckets a difference is narrowed "
        + "down by: a power of two, 1-65536 (default ${DEFAULT-VALUE}).", defaultValue = "256")
    int buckets;

    @Option(names = "--list", paramLabel = "N", description = "Differing keys listed per copy (default "
        + "${DEFAULT-VALUE}); the counts are always exact.", defaultValue = "20")
    int list;

    @Option(names = "--lock-timeout", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "How long to wait for each copy's epoch row, which in-flight coordinated writes hold "
            + "(default 5s); tried up to 5 times before giving up with ABORTED.")
    Duration lockTimeout;

    ReferenceCheck.Settings settings(Cmd cmd) {
      Duration timeout = lockTimeout != null ? lockTimeout : ReferenceCheck.Settings.DEFAULTS.lockTimeout();
      try {
        return new ReferenceCheck.Settings(buckets, list, timeout, ReferenceCheck.Settings.DEFAULTS.lockAttempts());
      } catch (IllegalArgumentException e) {
        String m = e.getMessage();
        String option = m.startsWith("buckets") ? "--buckets" : m.startsWith("list") ? "--list" : "--lock-timeout";
        throw cmd.usage("invalid value for option '" + option + "': " + m);
      }
    }
  }

  /** Progress on stderr in the CLI's mode: a line per step, then at most one every 5 s (or live, JSON, none). */
  static Consumer<ReferenceCheck.Progress> progress(MigratorCli cli) {
    return progress(cli.err, cli.json() ? Progress.Mode.JSON : switch (cli.progressMode()) {
      case live -> Progress.Mode.LIVE;
      case none -> Progress.Mode.NONE;
      default -> Progress.Mode.LINES;
    }, System::currentTimeMillis);
  }

  static Consumer<ReferenceCheck.Progress> progress(PrintWriter err, Progress.Mode mode, LongSupplier clockMs) {
    String[] lastStep = {""};
    long[] lastAt = {0};
    int[] width = {0};
    return p -> {
      String line = line(p);
      boolean newStep = !p.step().equals(lastStep[0]);
      boolean stepDone = p.total() > 0 && p.done() >= p.total();
      long now = clockMs.getAsLong();
      switch (mode) {
        case NONE -> { }
        case JSON -> err.println("{\"step\":" + str(p.step()) + ",\"done\":" + p.done() + ",\"total\":" + p.total()
            + ",\"rows\":" + p.rows() + "}");
        case LIVE -> {
          if (newStep && width[0] > 0) {
            err.println();
            width[0] = 0;
          }
          err.print("\r" + line + " ".repeat(Math.max(0, width[0] - line.length())));
          width[0] = line.length();
        }
        default -> {
          if (newStep || stepDone || now - lastAt[0] >= Progress.LINES_INTERVAL_MS) {
            err.println(line);
            lastAt[0] = now;
          }
        }
      }
      lastStep[0] = p.step();
      err.flush();
    };
  }

  /** Ends a live progress line (so the report starts on its own line). */
  static void finish(MigratorCli cli) {
    if (!cli.json() && cli.progressMode() == MigratorCli.ProgressMode.live) {
      cli.err.println();
      cli.err.flush();
    }
  }

  static String line(ReferenceCheck.Progress p) {
    String of = p.total() > 0 ? " of " + Show.count(p.total()) : "";
    return switch (p.step()) {
      case "locking" -> "locking   epoch rows: " + p.done() + of + " copies";
      case "checksums" -> "checksums " + p.done() + of + " copies summed, " + Show.plural(p.rows(), "row");
      case "buckets" -> "buckets   " + Show.count(p.done()) + of + " bucket summaries compared";
      case "rows" -> "rows      " + p.done() + of + " copies, " + Show.plural(p.rows(), "row") + " compared by key";
      default -> String.format(Locale.ROOT, "%-9s %s%s rows written", p.step(), Show.count(p.done()), of);
    };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reports

  static void printCheck(PrintWriter out, ReferenceCheck r, String against) {
    if (r.equal()) {
      Copy c = r.copies().get(0);
      out.println(r.table() + ": all " + r.copies().size() + " copies equal (" + Show.count(c.rows()) + " rows, "
          + "checksum " + c.checksum() + ")");
    } else {
      out.println(r.table() + ": the " + r.copies().size() + " copies differ" + (r.unresolvedKeys() > 0
          ? " (" + Show.plural(r.unresolvedKeys(), "key") + " without a majority)" : "") + "; " + against
          + ": " + (r.agreeing().isEmpty() ? "none" : String.join(", ", r.agreeing())));
    }
    out.println(String.format(Locale.ROOT, "  %-12s %6s %10s %22s %8s %8s %8s", "COPY", "EPOCH", "ROWS", "CHECKSUM",
        "MISSING", "EXTRA", "CHANGED"));
    for (Copy c : r.copies()) {
      out.println(String.format(Locale.ROOT, "  %-12s %6d %10d %22s %8d %8d %8d", c.shard(), c.epoch(), c.rows(),
          c.checksum(), c.missing(), c.extra(), c.changed()));
    }
    if (r.equal()) {
      return;
    }
    out.println("differing keys (" + Show.plural(r.bucketsDiffering(), "bucket") + " of " + r.buckets()
        + " differed; " + Show.count(r.rowsCompared()) + " rows compared by key):");
    Map<String, Long> listed = r.differences().stream().collect(Collectors.groupingBy(KeyDiff::shard,
        TreeMap::new, Collectors.counting()));
    for (KeyDiff d : r.differences()) {
      out.println("  " + d.shard() + "  " + d.key() + "  " + d.kind().name().toLowerCase(Locale.ROOT));
    }
    for (Copy c : r.copies()) {
      long more = c.differing() - listed.getOrDefault(c.shard(), 0L);
      if (more > 0) {
        out.println("  " + c.shard() + "  ... and " + Show.plural(more, "more key"));
      }
    }
    if (r.unresolvedKeys() > 0) {
      out.println("keys without a majority (equal labels: equal rows):");
      for (Unresolved u : r.unresolved()) {
        out.println("  " + u.key() + "  " + new TreeMap<>(u.versions()).entrySet().stream()
            .map(e -> e.getKey() + "=" + e.getValue()).collect(Collectors.joining(" ")));
      }
      if (r.unresolvedKeys() > r.unresolved().size()) {
        out.println("  ... and " + Show.plural(r.unresolvedKeys() - r.unresolved().size(), "more key"));
      }
    }
  }

  static void printRepair(PrintWriter out, ReferenceRepair r) {
    String from = r.source() == null ? "the majority of each key" : "shard " + r.source();
    if (r.changes().isEmpty()) {
      printCheck(out, r.before(), "agreeing");
      out.println("nothing to repair");
      return;
    }
    printCheck(out, r.before(), r.source() == null ? "agreeing with the majority" : "agreeing with " + r.source());
    out.println((r.dryRun() ? "would repair from " : "repaired from ") + from + ":");
    for (Change c : r.changes()) {
      out.println(String.format(Locale.ROOT, "  %-12s %d inserted, %d updated, %d deleted", c.shard(), c.inserted(),
          c.updated(), c.deleted()));
    }
    if (r.dryRun()) {
      out.println("dry run: nothing was changed");
      return;
    }
    out.println("verified again:");
    printCheck(out, r.after(), "agreeing with the majority");
  }

  // ---------------------------------------------------------------------------------------------------------
  // JSON (the records are plain Java, not protobuf: written here, field names as in the records)

  static String json(ReferenceCheck r) {
    StringBuilder b = new StringBuilder("{\"table\":").append(str(r.table())).append(",\"equal\":").append(r.equal())
        .append(",\"agreeing\":").append(strs(r.agreeing())).append(",\"copies\":[");
    for (int i = 0; i < r.copies().size(); i++) {
      Copy c = r.copies().get(i);
      b.append(i == 0 ? "" : ",").append("{\"shard\":").append(str(c.shard())).append(",\"epoch\":").append(c.epoch())
          .append(",\"rows\":").append(c.rows()).append(",\"checksum\":").append(str(c.checksum()))
          .append(",\"missing\":").append(c.missing()).append(",\"extra\":").append(c.extra())
          .append(",\"changed\":").append(c.changed()).append('}');
    }
    b.append("],\"differences\":[");
    for (int i = 0; i < r.differences().size(); i++) {
      KeyDiff d = r.differences().get(i);
      b.append(i == 0 ? "" : ",").append("{\"shard\":").append(str(d.shard())).append(",\"key\":").append(str(d.key()))
          .append(",\"kind\":").append(str(d.kind().name())).append('}');
    }
    b.append("],\"unresolvedKeys\":").append(r.unresolvedKeys()).append(",\"unresolved\":[");
    for (int i = 0; i < r.unresolved().size(); i++) {
      Unresolved u = r.unresolved().get(i);
      b.append(i == 0 ? "" : ",").append("{\"key\":").append(str(u.key())).append(",\"versions\":{")
          .append(new TreeMap<>(u.versions()).entrySet().stream().map(e -> str(e.getKey()) + ":" + str(e.getValue()))
              .collect(Collectors.joining(","))).append("}}");
    }
    return b.append("],\"buckets\":").append(r.buckets()).append(",\"bucketsDiffering\":").append(r.bucketsDiffering())
        .append(",\"rowsCompared\":").append(r.rowsCompared()).append('}').toString();
  }

  static String json(ReferenceRepair r) {
    StringBuilder b = new StringBuilder("{\"table\":").append(str(r.table())).append(",\"source\":")
        .append(r.source() == null ? "null" : str(r.source())).append(",\"dryRun\":").append(r.dryRun())
        .append(",\"equal\":").append(r.equal()).append(",\"changes\":[");
    List<Change> cs = r.changes();
    for (int i = 0; i < cs.size(); i++) {
      Change c = cs.get(i);
      b.append(i == 0 ? "" : ",").append("{\"shard\":").append(str(c.shard())).append(",\"inserted\":")
          .append(c.inserted()).append(",\"updated\":").append(c.updated()).append(",\"deleted\":").append(c.deleted())
          .append('}');
    }
    return b.append("],\"before\":").append(json(r.before())).append(",\"after\":")
        .append(r.after() == null ? "null" : json(r.after())).append('}').toString();
  }

  private static String strs(List<String> l) {
    return "[" + l.stream().map(ReferenceOutput::str).collect(Collectors.joining(",")) + "]";
  }

  static String str(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char ch : s.toCharArray()) {
      switch (ch) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (ch < 0x20) {
            b.append(String.format(Locale.ROOT, "\\u%04x", (int) ch));
          } else {
            b.append(ch);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
