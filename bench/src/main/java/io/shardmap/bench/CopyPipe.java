package io.shardmap.bench;

import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The migrator benchmarks' baseline: the bare pipe {@code psql -c "COPY (SELECT ...) TO STDOUT (FORMAT
 * binary)" | psql -c "COPY t FROM STDIN (FORMAT binary)"} between two shards, run by bash as one
 * pipeline, with nothing of this JVM in the data path.
 */
final class CopyPipe {
  private final String psql;

  CopyPipe(String psql) {
    this.psql = psql;
    // Fail now, naming the binary, rather than with a broken pipe in the middle of a run.
    run("'" + psql + "' --version > /dev/null", Duration.ofSeconds(30));
  }

  /**
   * psql of the PostgreSQL the fixture runs: {@code $SHARDMAP_PG_BIN/psql}, else the highest
   * {@code /usr/lib/postgresql/N/bin/psql}, else {@code psql} from the PATH.
   */
  static String defaultPsql() {
    String bin = System.getenv("SHARDMAP_PG_BIN");
    if (bin != null && !bin.isBlank()) {
      return Path.of(bin.strip(), "psql").toString();
    }
    Path debian = Path.of("/usr/lib/postgresql");
    if (Files.isDirectory(debian)) {
      try (Stream<Path> versions = Files.list(debian)) {
        return versions.filter(v -> v.getFileName().toString().matches("\\d+"))
            .max(Comparator.comparingInt(v -> Integer.parseInt(v.getFileName().toString())))
            .map(v -> v.resolve("bin/psql")).filter(Files::isExecutable).map(Path::toString).orElse("psql");
      } catch (IOException e) {
        return "psql";
      }
    }
    return "psql";
  }

  /** The SELECT both the pipe and the migrator copy: every column of the keys [from, to). */
  static String select(String table, long from, long to) {
    return "SELECT * FROM " + table + " WHERE id >= " + from + " AND id < " + to;
  }

  /** Pipes the rows of {@code select} on {@code src} into {@code table} on {@code dst}; returns seconds. */
  double copy(PgInstance src, String select, PgInstance dst, String table, Duration limit) {
    String cmd = psql(src, "COPY (" + select + ") TO STDOUT (FORMAT binary)") + " | "
        + psql(dst, "COPY " + table + " FROM STDIN (FORMAT binary)");
    long t0 = System.nanoTime();
    run(cmd, limit);
    return (System.nanoTime() - t0) / 1e9;
  }

  /** Bytes of {@code select} in binary COPY format (the stream both copies carry). */
  long bytes(PgInstance src, String select, Duration limit) {
    String out = run(psql(src, "COPY (" + select + ") TO STDOUT (FORMAT binary)") + " | wc -c", limit);
    return Long.parseLong(out.strip());
  }

  /** The command line of the pipe, as printed next to the results. */
  String describe(PgInstance src, String select, PgInstance dst, String table) {
    return psql(src, "COPY (" + select + ") TO STDOUT (FORMAT binary)") + " | "
        + psql(dst, "COPY " + table + " FROM STDIN (FORMAT binary)");
  }

  private String psql(PgInstance p, String sql) {
    // -X: no ~/.psqlrc; -v ON_ERROR_STOP: a failed COPY is a non-zero exit, which pipefail reports.
    return quote(psql) + " -X -q -v ON_ERROR_STOP=1 -h " + p.host() + " -p " + p.port() + " -U " + quote(p.user())
        + " -d " + quote(p.database()) + " -c " + quote(sql);
  }

  static String quote(String s) {
    return "'" + s.replace("'", "'\\''") + "'";
  }

  /** Runs {@code cmd} under bash with pipefail; returns its stdout, or fails with its stderr. */
  private String run(String cmd, Duration limit) {
    ProcessBuilder b = new ProcessBuilder(List.of("bash", "-o", "pipefail", "-c", cmd));
    // PGHOST, PGOPTIONS and friends from the caller's shell must not change what the pipe does.
    b.environment().keySet().removeIf(k -> k.startsWith("PG"));
    try {
      // Output to files, not pipes to this JVM: waitFor then bounds the run even if the pipe hangs.
      Path out = Files.createTempFile("shardmap-bench-pipe-", ".out");
      Path err = Files.createTempFile("shardmap-bench-pipe-", ".err");
      try {
        b.redirectOutput(out.toFile());
        b.redirectError(err.toFile());
        Process p = b.start();
        p.getOutputStream().close();
        if (!p.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
          p.descendants().forEach(ProcessHandle::destroyForcibly);
          p.destroyForcibly();
          throw new IllegalStateException("pipe still running after " + limit + ": " + cmd);
        }
        if (p.exitValue() != 0) {
          throw new IllegalStateException("pipe failed with exit code " + p.exitValue() + ": " + cmd + "\n"
              + Files.readString(err, StandardCharsets.UTF_8));
        }
        return Files.readString(out, StandardCharsets.UTF_8);
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot run " + cmd + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while running the pipe", e);
    }
  }
}
