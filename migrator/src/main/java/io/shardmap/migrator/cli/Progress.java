package io.shardmap.migrator.cli;

import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationOptions;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.support.cli.Durations;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * Shows a migration's progress on stderr while it is driven or followed. Modes:
 *
 * <ul>
 *   <li>json: every new version of the record as one compact protobuf JSON object per line;
 *   <li>live: one line per state, rewritten in place ({@code \r}) as the state advances;
 *   <li>lines: a line whenever the state changes, and within a state at most one every 5 s (for logs);
 *   <li>none: nothing.
 * </ul>
 *
 * <p>The copy shows rows copied, rows/s and MB/s (averages since the copy began); with an estimate of the
 * rows to copy ({@link io.shardmap.migrator.Migrator#estimateRows}) also a bar, the share and an ETA. When
 * the driving worker recorded the whole move's ETA ({@code eta_unix_ms}: copy, catch-up, verification,
 * cutover and cleanup), every line shows that one ({@code move ETA ...}) instead of the copy's own.
 */
final class Progress {
  enum Mode { JSON, LIVE, LINES, NONE }

  static final long LINES_INTERVAL_MS = 5_000;
  private static final int BAR = 20;

  private final PrintWriter err;
  private final Mode mode;
  private final LongSupplier clockMs;
  private final Function<Migration, OptionalLong> estimator;
  private CompletableFuture<OptionalLong> estimate;
  private Migration last;
  private String lastLine = "";
  private String lastNote = "";
  private long lastLineAt;
  private int liveWidth;
  private boolean liveOpen;

  Progress(PrintWriter err, Mode mode, LongSupplier clockMs, Function<Migration, OptionalLong> estimator) {
    this.err = err;
    this.mode = mode;
    this.clockMs = clockMs;
    this.estimator = estimator;
  }

  static Progress of(MigratorCli cli, Function<Migration, OptionalLong> estimator) {
    Mode mode;
    if (cli.json()) {
      mode = Mode.JSON;
    } else {
      mode = switch (cli.progressMode()) {
        case live -> Mode.LIVE;
        case none -> Mode.NONE;
        default -> Mode.LINES;
      };
    }
    return new Progress(cli.err, mode, System::currentTimeMillis, estimator);
  }

  /** A new version of the record (from the driving worker, or read while following another one). */
  synchronized void show(Migration m) {
    show(m, "");
  }

  /** As {@link #show(Migration)}, adding a note (e.g. who drives it) to the line. */
  synchronized void show(Migration m, String note) {
    if (mode == Mode.NONE) {
      last = m;
      return;
    }
    if (mode == Mode.JSON) {
      if (!m.equals(last)) {
        err.println(Cmd.json(m, true));
        err.flush();
      }
      last = m;
      return;
    }
    // A new state, or a new note (another worker drives it now): a line of its own.
    boolean newState = last == null || last.getState() != m.getState() || !note.equals(lastNote);
    last = m;
    lastNote = note;
    String line = line(m) + (note.isEmpty() ? "" : " (" + note + ")");
    if (!newState && line.equals(lastLine)) {
      return;
    }
    long now = clockMs.getAsLong();
    if (mode == Mode.LIVE) {
      if (newState && liveOpen) {
        err.println();
        liveWidth = 0;
      }
      err.print("\r" + line + " ".repeat(Math.max(0, liveWidth - line.length())));
      liveWidth = line.length();
      liveOpen = true;
      err.flush();
    } else if (newState || (!line.equals(lastLine) && now - lastLineAt >= LINES_INTERVAL_MS)) {
      err.println(line);
      err.flush();
      lastLineAt = now;
    }
    lastLine = line;
  }

  /** Ends the live line, so that what follows starts on a line of its own. */
  synchronized void finish() {
    if (liveOpen) {
      err.println();
      err.flush();
      liveOpen = false;
      liveWidth = 0;
    }
  }

  /** {@code mv1 copying      [#####---------------] 25%  12,345 of ~49,000 rows, 3,210 rows/s, ...}. */
  String line(Migration m) {
    String line = String.format(Locale.ROOT, "%s %-12s %s", m.getId(), Show.state(m), detail(m));
    // The whole move's ETA, as the driving worker estimated it (eta_unix_ms); the copy's line has it in place
    // of the copy's own.
    if (m.getEtaUnixMs() > 0 && m.getState() != MigrationState.MIGRATION_STATE_COPYING) {
      line += "; " + moveEta(m);
    }
    return line;
  }

  /** {@code move ETA 12 s}: time left of the whole move, cleanup included, as of the record's update. */
  static String moveEta(Migration m) {
    return "move ETA " + Durations.human(Math.max(0, m.getEtaUnixMs() - m.getUpdatedUnixMs()));
  }

  private String detail(Migration m) {
    MigrationOptions o = m.getOptions();
    return switch (m.getState()) {
      case MIGRATION_STATE_PLANNED -> m.getKeyspace() + " " + Show.named(m) + " from " + m.getSource() + " to "
          + m.getTarget() + ", recorded";
      case MIGRATION_STATE_PREPARING -> "creating missing tables on " + m.getTarget()
          + ", installing change capture on " + m.getSource();
      case MIGRATION_STATE_COPYING -> copying(m);
      case MIGRATION_STATE_CATCHING_UP -> Show.count(m.getRowsCopied()) + " rows copied; "
          + Show.count(m.getKeysReplayed()) + " keys replayed, lag " + Show.count(m.getLagKeys()) + " keys";
      case MIGRATION_STATE_VERIFYING -> m.getChunksVerified() == 0 ? "starting, in chunks of "
          + Show.count(o.getChunkRows()) + " rows, lag " + Show.count(m.getLagKeys()) + " keys"
          : Show.plural(m.getChunksVerified(), "chunk") + " verified, " + Show.count(m.getChunksRepaired())
          + " repaired (" + Show.plural(m.getKeysRepaired(), "key") + "), table "
          + Math.min(m.getVerifyTable() + 1, m.getTablesCount()) + "/" + m.getTablesCount() + ", lag "
          + Show.count(m.getLagKeys()) + " keys";
      case MIGRATION_STATE_CUTTING_OVER -> "attempt " + (m.getCutoverAttempts() + 1) + "/" + o.getMaxCutoverAttempts()
          + ", lag " + Show.count(m.getLagKeys()) + " keys, pause budget " + o.getPauseBudgetMs() + " ms"
          + (m.getLastError().isEmpty() ? "" : "; last attempt: " + m.getLastError());
      case MIGRATION_STATE_CLEANING_UP -> "cut over at revision " + m.getCutoverRevision() + ", write pause "
          + m.getPauseMs() + " ms of " + o.getPauseBudgetMs() + " ms budget; " + Show.count(m.getRowsDeleted())
          + " source rows deleted" + (m.getCleanupReason().isEmpty() ? ", " + Show.cleanupWait(m)
              : " (" + m.getCleanupReason() + ")");
      case MIGRATION_STATE_DONE -> "moved " + Show.count(m.getRowsCopied()) + " rows (" + Show.bytes(m.getBytesCopied())
          + ") to " + m.getTarget() + " in " + Durations.human(m.getFinishedUnixMs() - m.getCreatedUnixMs())
          + "; write pause " + m.getPauseMs() + " ms of " + o.getPauseBudgetMs() + " ms budget; "
          + Show.count(m.getRowsDeleted()) + " source rows deleted";
      case MIGRATION_STATE_CANCELLING -> "undoing the move"
          + (m.getLastError().isEmpty() ? " (cancel requested)" : ": " + m.getLastError());
      case MIGRATION_STATE_CANCELLED -> m.getSource() + " keeps " + Show.named(m)
          + (m.getLastError().isEmpty() ? " (cancel requested)" : ": " + m.getLastError());
      default -> "";
    };
  }

  private String copying(Migration m) {
    OptionalLong total = total(m);
    if (m.getRowsCopied() == 0 && m.getCopyTable() == 0) {
      return "starting, in chunks of " + Show.count(m.getOptions().getChunkRows()) + " rows"
          + (m.getTablesCount() > 1 ? ", " + m.getTablesCount() + " tables" : "");
    }
    String rates = Show.rates(m);
    if (m.getEtaUnixMs() > 0 && total.isEmpty() && m.getRowsEstimate() > 0) {
      total = OptionalLong.of(m.getRowsEstimate());
    }
    if (total.isEmpty() || total.getAsLong() <= 0) {
      if (m.getEtaUnixMs() > 0) {
        return Show.count(m.getRowsCopied()) + " rows, " + rates + ", " + moveEta(m);
      }
      return Show.count(m.getRowsCopied()) + " rows, " + rates;
    }
    long t = total.getAsLong();
    if (m.getRowsCopied() > t) {
      // The planner's estimate was low (stale or missing statistics): no bar rather than a wrong one.
      return Show.count(m.getRowsCopied()) + " rows, " + rates;
    }
    double share = Math.min(0.99, (double) m.getRowsCopied() / t);
    int filled = (int) Math.round(share * BAR);
    String eta = "ETA -";
    long elapsed = m.getUpdatedUnixMs() - m.getCopyStartedUnixMs();
    if (m.getEtaUnixMs() > 0) {
      eta = moveEta(m); // the whole move's, from the driving worker
    } else if (m.getRowsCopied() > 0 && elapsed > 0 && t > m.getRowsCopied()) {
      eta = "ETA " + Durations.human(Math.round((t - m.getRowsCopied()) * (double) elapsed / m.getRowsCopied()));
    }
    return "[" + "#".repeat(filled) + "-".repeat(BAR - filled) + "] " + (int) Math.floor(share * 100) + "%  "
        + Show.count(m.getRowsCopied()) + " of ~" + Show.count(t) + " rows, " + rates + ", " + eta;
  }

  /** The estimate of rows to copy, asked for once (in the background) when the copy is first seen. */
  private OptionalLong total(Migration m) {
    if (estimator == null) {
      return OptionalLong.empty();
    }
    if (estimate == null) {
      estimate = CompletableFuture.supplyAsync(() -> estimator.apply(m), r -> {
        Thread t = new Thread(r, "migrator-estimate");
        t.setDaemon(true);
        t.start();
      }).exceptionally(e -> OptionalLong.empty());
    }
    return estimate.getNow(OptionalLong.empty());
  }

  Migration last() {
    return last;
  }
}
