package io.shardmap.testkit;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** Small helpers both fixtures use: waiting, finding binaries, reading logs, removing data. */
final class FixtureSupport {

  /** How many lines of a log a failure message quotes. */
  static final int LOG_TAIL_LINES = 40;

  private FixtureSupport() {}

  /**
   * Sleeps between two polls of a bounded wait.
   *
   * @param server what is waited for, for the message on interrupt, e.g. "etcd"
   * @throws IllegalStateException if interrupted (the interrupt flag is set again)
   */
  static void sleep(Duration duration, String server) {
    try {
      Thread.sleep(duration.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for " + server, e);
    }
  }

  /** The first directory on the PATH that {@code matches}, in PATH order; null if none does. */
  static Path firstOnPath(Predicate<Path> matches) {
    String pathVariable = System.getenv("PATH");
    if (pathVariable != null) {
      for (String dir : pathVariable.split(File.pathSeparator)) {
        if (!dir.isEmpty() && matches.test(Path.of(dir))) {
          return Path.of(dir);
        }
      }
    }
    return null;
  }

  /** The last {@code lines} lines of a log file, or why there are none; never throws. */
  static String tail(Path file, int lines) {
    if (!Files.isReadable(file)) {
      return "(no log at " + file + ")";
    }
    try {
      List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException | UncheckedIOException e) {
      return "(log at " + file + " unreadable: " + e + ")";
    }
  }

  /**
   * Deletes {@code root} and everything in it, except that {@code *.log} files (and the
   * directories holding them) stay when {@code keepLogs}. A failure is reported on stderr, not
   * thrown: leftover files in a temporary directory must not fail a test run.
   */
  static void deleteRecursively(Path root, boolean keepLogs, String logTag) {
    if (!Files.exists(root)) {
      return;
    }
    Predicate<Path> keep = path -> keepLogs && path.getFileName().toString().endsWith(".log");
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path path : walk.sorted(Comparator.reverseOrder()).collect(Collectors.toList())) {
        if (keep.test(path)) {
          continue;
        }
        try {
          Files.deleteIfExists(path);
        } catch (DirectoryNotEmptyException keptInside) {
          // Holds a kept log file.
        }
      }
    } catch (IOException | UncheckedIOException e) {
      System.err.println("[" + logTag + "] could not delete " + root + ": " + e);
    }
  }
}
