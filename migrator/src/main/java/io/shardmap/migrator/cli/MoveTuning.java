package io.shardmap.migrator.cli;

import io.shardmap.migrator.MoveSpec;
import io.shardmap.support.cli.Durations;
import java.time.Duration;
import java.util.function.BiConsumer;
import picocli.CommandLine.Option;

/**
 * The options that tune how a move runs, shared by {@code move} and by {@code reshard} (which applies them
 * to each of its moves). An option not given keeps {@link MoveSpec}'s default.
 */
final class MoveTuning {
  @Option(names = "--pause-budget", paramLabel = "DURATION", converter = Durations.Positive.class,
      description = "Longest write pause a cutover may cause, 1ms to 60s (default 100ms).")
  Duration pauseBudget;

  @Option(names = "--chunk-rows", paramLabel = "N",
      description = "Rows per copy and verification chunk (default 50000).")
  Integer chunkRows;

  @Option(names = "--cleanup-grace", paramLabel = "DURATION", converter = Durations.ZeroAllowed.class,
      description = "Longest wait after cutover for clients to see the new owner before the source's rows "
          + "are deleted (default 60s; 0 deletes them without waiting).")
  Duration cleanupGrace;

  @Option(names = "--cleanup-batch-rows", paramLabel = "N", description = "Rows per cleanup DELETE (default 50000).")
  Integer cleanupBatchRows;

  @Option(names = "--cleanup-pause", paramLabel = "DURATION", converter = Durations.ZeroAllowed.class,
      description = "Pause between two cleanup DELETEs (default 10ms; 0 for none).")
  Duration cleanupPause;

  @Option(names = "--max-cutover-attempts", paramLabel = "N",
      description = "Cutover attempts that may miss the pause budget before the move cancels itself (default 5).")
  Integer maxCutoverAttempts;

  @Option(names = "--no-create-tables",
      description = "Refuse the move if the target lacks a table, instead of creating it from the source's definition.")
  boolean noCreateTables;

  /** Applies the options given; {@code set} names the option in the usage error its setter may raise. */
  void applyTo(MoveSpec.Builder b, BiConsumer<String, Runnable> set) {
    if (pauseBudget != null) {
      set.accept("--pause-budget", () -> b.pauseBudget(pauseBudget));
    }
    if (chunkRows != null) {
      set.accept("--chunk-rows", () -> b.chunkRows(chunkRows));
    }
    if (cleanupGrace != null) {
      set.accept("--cleanup-grace", () -> b.cleanupGrace(cleanupGrace));
    }
    if (cleanupBatchRows != null || cleanupPause != null) {
      // The builder sets both at once; an option not given keeps its default.
      var defaults = MoveSpec.builder().keyspace("k").range("..").target("t").build().options();
      int rows = cleanupBatchRows != null ? cleanupBatchRows : defaults.getCleanupBatchRows();
      Duration pause = cleanupPause != null ? cleanupPause : Duration.ofMillis(defaults.getCleanupPauseMs());
      set.accept(cleanupBatchRows != null ? "--cleanup-batch-rows" : "--cleanup-pause", () -> {
        try {
          b.cleanupBatch(rows, pause);
        } catch (IllegalArgumentException e) {
          boolean aboutPause = e.getMessage() != null && e.getMessage().startsWith("cleanupPause");
          throw new IllegalArgumentException((aboutPause && cleanupPause != null ? "(--cleanup-pause) "
              : !aboutPause && cleanupBatchRows != null ? "(--cleanup-batch-rows) " : "") + e.getMessage(), e);
        }
      });
    }
    if (maxCutoverAttempts != null) {
      set.accept("--max-cutover-attempts", () -> b.maxCutoverAttempts(maxCutoverAttempts));
    }
    b.createMissingTables(!noCreateTables);
  }
}
