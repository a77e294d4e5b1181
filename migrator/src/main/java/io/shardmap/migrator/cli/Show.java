package io.shardmap.migrator.cli;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.migrator.internal.MoveUnits;
import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.Table;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Migrations as people read them: the table of {@code status} and {@code list}, details, numbers. */
final class Show {
  static final List<String> HEADER = List.of("ID", "KEYSPACE", "UNIT", "MOVE", "STATE", "PROGRESS", "ROWS", "LAG",
      "PAUSE", "OWNER", "ERROR");
  /** Longest last error shown in a {@code list} row; {@code status} shows it whole. */
  static final int ERROR_WIDTH = 60;

  private Show() {}

  static String state(Migration m) {
    return m.getState() == MigrationState.MIGRATION_STATE_UNSPECIFIED ? "-" : States.label(m.getState());
  }

  /**
   * What moves, in a table cell: a range in the syntax {@code move} reads ({@code 5000..25000}, {@code ..0}),
   * {@code bucket 3 of 8}, {@code ring node s4#2 joins}, {@code 2 entries ('a', 'b')}.
   */
  static String unit(Migration m) {
    try {
      return MoveUnits.describe(m);
    } catch (RuntimeException e) {
      return "?";
    }
  }

  /** What moves, in a sentence: {@code range 5000..25000}, {@code bucket 3 of 8}, ... */
  static String named(Migration m) {
    try {
      return MoveUnits.name(m);
    } catch (RuntimeException e) {
      return "?";
    }
  }

  static List<String> row(Migration m, boolean wholeError) {
    String error = m.getLastError().replace('\n', ' ');
    if (!wholeError && error.length() > ERROR_WIDTH) {
      error = error.substring(0, ERROR_WIDTH - 3) + "...";
    }
    return List.of(m.getId(), m.getKeyspace(), unit(m), m.getSource() + "->" + m.getTarget(), state(m),
        progress(m), count(m.getRowsCopied()), count(m.getLagKeys()), pause(m), dash(m.getOwner()), dash(error));
  }

  /** {@code 12/100ms}: the cutover's write pause against the budget; {@code -/100ms} before cutover. */
  static String pause(Migration m) {
    long budget = m.getOptions().getPauseBudgetMs();
    return (m.getCutoverRevision() > 0 ? Long.toString(m.getPauseMs()) : "-") + "/" + budget + "ms";
  }

  /**
   * How far the whole move is, as a share of its steps: copying is 0-60% (by tables done and, when the
   * range is bounded on both sides, the copy cursor's position in it), catching up 60%, verifying 60-90%
   * (likewise), cutting over 90%, cleaning up 95-100% (by source rows deleted against rows copied), done
   * 100%; {@code -} while cancelling or cancelled.
   */
  static String progress(Migration m) {
    double p = switch (m.getState()) {
      case MIGRATION_STATE_PLANNED, MIGRATION_STATE_PREPARING -> 0;
      case MIGRATION_STATE_COPYING -> 60 * cursor(m, m.getCopyTable(), m.getCopyAfter().toByteArray());
      case MIGRATION_STATE_CATCHING_UP -> 60;
      case MIGRATION_STATE_VERIFYING -> 60 + 30 * cursor(m, m.getVerifyTable(), m.getVerifyAfter().toByteArray());
      case MIGRATION_STATE_CUTTING_OVER -> 90;
      case MIGRATION_STATE_CLEANING_UP -> 95 + 5 * (m.getRowsCopied() == 0 ? 0
          : Math.min(1.0, (double) m.getRowsDeleted() / m.getRowsCopied()));
      case MIGRATION_STATE_DONE -> 100;
      default -> -1;
    };
    if (p < 0) {
      return "-";
    }
    // Never show 100% before DONE.
    int whole = m.getState() == MigrationState.MIGRATION_STATE_DONE ? 100 : Math.min(99, (int) Math.floor(p));
    return whole + "%";
  }

  /** The share of a cursor through the tables: finished tables plus the position in the current one. */
  static double cursor(Migration m, int table, byte[] after) {
    int tables = Math.max(1, m.getTablesCount());
    double within = 0;
    if (after.length > 0 && m.getKeyType() == KeyType.KEY_TYPE_INT64) {
      KeyRange r = KeyRange.fromProto(m.getKeyType(), m.getRange(), "range");
      if (!r.unboundedBelow() && !r.unboundedAbove()) {
        double lo = Keys.decodeInt64(r.start());
        double hi = Keys.decodeInt64(r.end());
        double at = Keys.decodeInt64(after);
        within = hi > lo ? Math.max(0, Math.min(1, (at + 1 - lo) / (hi - lo))) : 0;
      }
    }
    return Math.min(1.0, (Math.min(table, tables) + within) / tables);
  }

  /** Everything {@code status} shows below the table, in order, only what applies. */
  static Map<String, String> details(Migration m) {
    Map<String, String> d = new LinkedHashMap<>();
    d.put("tables", m.getTablesList().stream().map(t -> t.getName() + "(" + t.getKeyColumn() + ")")
        .reduce((a, b) -> a + ", " + b).orElse("-")
        + (m.getCreatedTablesCount() > 0 ? "; created on the target: " + String.join(", ", m.getCreatedTablesList())
            : ""));
    // The epoch that routed the unit when planned; the target gets it + 1 at cutover.
    d.put(MoveUnits.kind(m) + " epoch", Long.toString(m.getRangeEpoch()));
    var o = m.getOptions();
    d.put("options", "pause budget " + o.getPauseBudgetMs() + " ms, chunks of " + count(o.getChunkRows())
        + " rows, cleanup grace " + Durations.human(o.getCleanupGraceMs()) + ", cleanup batches of "
        + count(o.getCleanupBatchRows()) + " rows, " + o.getMaxCutoverAttempts() + " cutover attempts"
        + (o.getCreateMissingTables() ? "" : ", no table creation"));
    d.put("created", time(m.getCreatedUnixMs()));
    d.put("updated", time(m.getUpdatedUnixMs()));
    if (m.getCopyStartedUnixMs() > 0) {
      String copy = count(m.getRowsCopied()) + " rows, " + bytes(m.getBytesCopied());
      if (m.getState() == MigrationState.MIGRATION_STATE_COPYING) {
        copy += ", " + rates(m) + ", table " + Math.min(m.getCopyTable() + 1, m.getTablesCount()) + "/"
            + m.getTablesCount();
      }
      d.put("copied", copy);
    }
    if (m.getKeysReplayed() > 0 || m.getLagKeys() > 0) {
      d.put("catch-up", count(m.getKeysReplayed()) + " keys replayed, lag " + count(m.getLagKeys()) + " keys");
    }
    if (m.getChunksVerified() > 0) {
      d.put("verified", plural(m.getChunksVerified(), "chunk") + ", " + count(m.getChunksRepaired()) + " repaired ("
          + plural(m.getKeysRepaired(), "key") + ")");
    }
    if (m.getCutoverAttempts() > 0 || m.getCutoverRevision() > 0) {
      // cutover_attempts counts every attempt, the one that cut over included.
      String c = m.getCutoverAttempts() + " of " + o.getMaxCutoverAttempts() + " attempts deferred (pause budget "
          + o.getPauseBudgetMs() + " ms)";
      if (m.getCutoverRevision() > 0) {
        c = "at revision " + m.getCutoverRevision() + " (" + time(m.getCutoverUnixMs()) + "), write pause "
            + m.getPauseMs() + " ms of the " + o.getPauseBudgetMs() + " ms budget (lock request to the new owner "
            + "accepting writes), attempt " + Math.max(1, m.getCutoverAttempts()) + " of " + o.getMaxCutoverAttempts()
            + (m.getClientsRoutedMs() > 0 ? "; every client routed to it within " + m.getClientsRoutedMs() + " ms ("
                + plural(m.getClientsRoutedCount(), "client") + " acknowledged it; an upper bound)" : "");
      }
      d.put("cutover", c);
    }
    if (m.getRowsDeleted() > 0 || !m.getCleanupReason().isEmpty() || !m.getCleanupWaitingFor().isEmpty()) {
      d.put("cleanup", count(m.getRowsDeleted()) + " source rows deleted"
          + (m.getCleanupReason().isEmpty() ? (m.getCleanupWaitingFor().isEmpty() ? "" : "; " + cleanupWait(m))
              : " (" + m.getCleanupReason() + ")"));
    }
    if (m.getFinishedUnixMs() > 0) {
      d.put("finished", time(m.getFinishedUnixMs()) + " (" + Durations.human(m.getFinishedUnixMs()
          - m.getCreatedUnixMs()) + " after it was planned)");
    }
    if (m.getCancelRequested()) {
      d.put("cancel", "requested");
    }
    d.put("owner", dash(m.getOwner()));
    d.put("last error", dash(m.getLastError()));
    return d;
  }

  /**
   * Cleanup's wait for clients before it deletes: {@code waiting for clients to see the new owner (12 s of
   * at most 1m00s; still behind: ...)}, as of the record's last update.
   */
  static String cleanupWait(Migration m) {
    String grace = "at most " + Durations.human(m.getOptions().getCleanupGraceMs());
    if (m.getCleanupWaitingFor().isEmpty() || m.getCutoverUnixMs() <= 0) {
      return "waiting for clients to see the new owner (" + grace + ")";
    }
    long waited = Math.max(0, m.getUpdatedUnixMs() - m.getCutoverUnixMs());
    return "waiting for clients to see the new owner (" + Durations.human(waited) + " of " + grace
        + "; still behind: " + m.getCleanupWaitingFor() + ")";
  }

  /** {@code 3,210 rows/s, 1.2 MB/s}: the copy's average since it began, up to its last persisted chunk. */
  static String rates(Migration m) {
    long elapsed = m.getUpdatedUnixMs() - m.getCopyStartedUnixMs();
    if (m.getCopyStartedUnixMs() <= 0 || elapsed <= 0) {
      return "- rows/s";
    }
    return count(Math.round(m.getRowsCopied() * 1000.0 / elapsed)) + " rows/s, "
        + megabytes(m.getBytesCopied() * 1000.0 / elapsed) + " MB/s";
  }

  static void table(PrintWriter out, List<Migration> ms, boolean wholeError) {
    List<List<String>> rows = new ArrayList<>();
    for (Migration m : ms) {
      rows.add(row(m, wholeError));
    }
    Table.print(out, HEADER, rows);
  }

  static String count(long n) {
    return String.format(Locale.ROOT, "%,d", n);
  }

  /** {@code 1 chunk}, {@code 12 chunks}. */
  static String plural(long n, String noun) {
    return count(n) + " " + noun + (n == 1 ? "" : "s");
  }

  static String megabytes(double bytes) {
    return String.format(Locale.ROOT, "%.1f", bytes / 1e6);
  }

  /** Decimal units: {@code 850 B}, {@code 12.3 kB}, {@code 1.2 MB}, {@code 3.4 GB}. */
  static String bytes(long b) {
    if (b < 1000) {
      return b + " B";
    }
    String[] units = {"kB", "MB", "GB", "TB"};
    double v = b;
    int u = -1;
    while (v >= 1000 && u < units.length - 1) {
      v /= 1000;
      u++;
    }
    return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
  }

  static String time(long unixMs) {
    return unixMs <= 0 ? "-" : Instant.ofEpochMilli(unixMs).toString();
  }

  static String dash(String s) {
    return s == null || s.isEmpty() ? "-" : s;
  }
}
