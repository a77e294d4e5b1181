package io.shardmap.bench;

import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.migrator.internal.RangeTableMove;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The migrator's copy rate against a bare psql pipe between the same two shards, on the same rows, in the
 * same run. Each round runs both, the order alternating: the pipe copies the key range of a seed table on
 * s1 into an empty table on s2; the migrator moves the same range of a table filled from that seed, from
 * s1 to an empty table of the same definition on s2, and its copy phase is timed from its progress reports.
 */
@Command(name = "migrate-copy", mixinStandardHelpOptions = true,
    description = {
        "Copy rate of the migrator (rows/s, MB/s of binary COPY) vs. a bare pipe psql COPY TO STDOUT | psql "
            + "COPY FROM STDIN between the same two local PostgreSQL servers, same rows, alternating order per "
            + "round; also the whole move and its phases.",
        "Prints per-round and median figures and the ratio migrator copy / pipe (goal >= 0.80)."})
public final class MigrateCopyCommand implements Callable<Integer> {
  public static final double GOAL_RATIO = 0.80;
  static final String SEED = "copy_seed";

  @Option(names = "--rows", defaultValue = "1000000", description = "Rows in the moved range (~200 B each).")
  long rows;

  @Option(names = "--rounds", defaultValue = "3", description = "Rounds of pipe + move, order alternating.")
  int rounds;

  @Option(names = "--chunk-rows", defaultValue = "50000", description = "The migrator's chunk size (its default).")
  int chunkRows;

  @Option(names = "--psql", description = "psql binary (default: the local PostgreSQL's).")
  String psql = CopyPipe.defaultPsql();

  @Option(names = "--etcd-endpoints", split = ",",
      description = "Loopback etcd to use instead of starting a 1-member etcd from the local binary.")
  List<String> etcdEndpoints = new ArrayList<>();

  @Option(names = "--decompose", description = "Also time, per round, the migrator's chunk copy without the "
      + "move around it (RangeTableMove.copyChunk in a loop: no etcd writes, no state machine) and the range in "
      + "one streamed COPY (RangeTableMove.copyRange: no chunks), to see where the time goes.")
  boolean decompose;

  @Option(names = "--step-timeout-seconds", defaultValue = "900",
      description = "Longest a single pipe may run before the benchmark gives up.")
  long stepTimeoutSeconds;

  /**
   * Per round: the pipe's and the migrator's copy seconds, the whole move's seconds, its phases (ns); with
   * --decompose the chunk loop's and the single COPY's seconds (else 0).
   */
  public record Round(double pipeSeconds, double copySeconds, double moveSeconds, long rowsCopied, long bytesCopied,
                      long[] phaseNanos, double chunkLoopSeconds, double singleCopySeconds) {}

  public record Result(long rows, long bytes, List<Round> rounds, double medianPipeSeconds, double medianCopySeconds,
                       double medianMoveSeconds, double ratio) {}

  @Override
  public Integer call() throws Exception {
    run(System.out);
    return 0;
  }

  Result run(PrintStream out) throws Exception {
    if (rows < 10 || rows > 100_000_000 || rounds < 1 || rounds > 20 || chunkRows < 1) {
      throw new IllegalArgumentException("rows 10-100000000, rounds 1-20, chunk-rows >= 1");
    }
    out.println("migrate-copy | " + Report.environment());
    CopyPipe pipe = new CopyPipe(psql);
    Duration limit = Duration.ofSeconds(stepTimeoutSeconds);
    try (MoveBed bed = new MoveBed(etcdEndpoints); Migrator migrator = bed.migrator()) {
      PgInstance s1 = bed.shard("s1");
      PgInstance s2 = bed.shard("s2");
      bed.createTable("s1", SEED);
      bed.fill("s1", SEED, 0, rows);
      String select = CopyPipe.select(SEED, 0, rows);
      // Also a warm-up: the seed's pages are in the OS cache before the first timed copy.
      long bytes = pipe.bytes(s1, select, limit);
      out.printf("setup:   2 PostgreSQL 15 servers on loopback (fsync off, synchronous_commit on, the fixture's "
          + "settings for both copies), etcd %s; %,d rows of %d B in binary COPY (%.1f MB), key range [0, %d)%n",
          bed.etcd.description(), rows, bytes / rows, bytes / 1e6, rows);
      out.printf("pipe:    %s%n", pipe.describe(s1, select, s2, "copy_pipe_N"));
      out.printf("move:    Migrator.plan + drive, range 0..%d s1 -> s2 (split out of [0..)), chunks of %,d rows, "
          + "default options; target table pre-created empty with the same DDL as the pipe's%n", rows, chunkRows);
      List<Round> done = new ArrayList<>();
      for (int r = 1; r <= rounds; r++) {
        double pipeSeconds = 0;
        double chunkLoop = 0;
        double single = 0;
        MoveTimeline move = null;
        List<String> order = new ArrayList<>(decompose ? List.of("pipe", "move", "chunks", "single")
            : List.of("pipe", "move"));
        // Each round starts with the next one: drift and caches hit every target alike.
        java.util.Collections.rotate(order, -(r - 1));
        for (String what : order) {
          switch (what) {
            case "pipe" -> pipeSeconds = pipeRound(bed, pipe, select, r, limit);
            case "move" -> move = moveRound(bed, migrator, r);
            case "chunks" -> chunkLoop = pieceRound(bed, r, true);
            default -> single = pieceRound(bed, r, false);
          }
        }
        long[] phases = MoveTimeline.PHASES.stream().mapToLong(move::phaseNanos).toArray();
        Round round = new Round(pipeSeconds, move.copyNanos() / 1e9, move.totalNanos() / 1e9,
            move.result.getRowsCopied(), move.result.getBytesCopied(), phases, chunkLoop, single);
        done.add(round);
        out.printf("  round %d (%s first, load %s): pipe %.2f s = %,.0f rows/s %.1f MB/s | migrator copy %.2f s = "
                + "%,.0f rows/s %.1f MB/s (%,d B) | ratio %.3f | whole move %.2f s%n", r, order.get(0),
            Report.loadAverage(), pipeSeconds, rows / pipeSeconds, bytes / 1e6 / pipeSeconds, round.copySeconds(),
            round.rowsCopied() / round.copySeconds(), round.bytesCopied() / 1e6 / round.copySeconds(),
            round.bytesCopied(), pipeSeconds / round.copySeconds(), round.moveSeconds());
        if (decompose) {
          out.printf("          chunk loop alone %.2f s (ratio %.3f) | one streamed COPY %.2f s (ratio %.3f)%n", chunkLoop,
              pipeSeconds / chunkLoop, single, pipeSeconds / single);
        }
      }
      double pipeMedian = median(done.stream().mapToDouble(Round::pipeSeconds));
      double copyMedian = median(done.stream().mapToDouble(Round::copySeconds));
      Result result = new Result(rows, bytes, done, pipeMedian, copyMedian,
          median(done.stream().mapToDouble(Round::moveSeconds)), pipeMedian / copyMedian);
      print(out, result);
      return result;
    }
  }

  /** The bare pipe into a fresh table on s2; checks the row count and drops it. Returns seconds. */
  private double pipeRound(MoveBed bed, CopyPipe pipe, String select, int r, Duration limit) throws SQLException {
    String table = "copy_pipe_" + r;
    bed.createTable("s2", table);
    bed.checkpoint();
    double seconds = pipe.copy(bed.shard("s1"), select, bed.shard("s2"), table, limit);
    long n = bed.count("s2", table, 0, rows);
    if (n != rows) {
      throw new IllegalStateException("the pipe copied " + n + " rows, expected " + rows);
    }
    bed.exec("s2", "DROP TABLE " + table);
    return seconds;
  }

  /**
   * A keyspace of its own ([..0) on s2, [0..) on s1) over a table filled from the seed on s1 and created
   * empty on s2; moves [0, rows) to s2 and checks where the rows ended. Drops the table afterwards.
   */
  private MoveTimeline moveRound(MoveBed bed, Migrator migrator, int r) throws SQLException {
    String ks = "copy" + r;
    String table = "copy_move_" + r;
    bed.createTable("s1", table);
    bed.exec("s1", "INSERT INTO " + table + " SELECT * FROM " + SEED + " ORDER BY id");
    bed.exec("s1", "VACUUM ANALYZE " + table);
    bed.createTable("s2", table);
    bed.rangeKeyspace(ks, table, 0, "s2", "s1");
    bed.checkpoint();
    MoveTimeline t = MoveTimeline.run(migrator, MoveSpec.builder().id("copy_" + r).keyspace(ks).range("0.." + rows)
        .target("s2").split(true).chunkRows(chunkRows).build(), m -> { });
    long there = bed.count("s2", table, 0, rows);
    long left = bed.count("s1", table, 0, rows);
    if (there != rows || left != 0 || t.result.getRowsCopied() != rows) {
      throw new IllegalStateException("after the move s2 holds " + there + " rows and s1 " + left + " (copied "
          + t.result.getRowsCopied() + "), expected " + rows + " and 0");
    }
    for (String s : MoveBed.SHARDS) {
      bed.exec(s, "DROP TABLE " + table + " CASCADE");
    }
    // The source keeps a fence row for the dropped table; it would only confuse a later reader.
    bed.exec("s1", "DELETE FROM shardmap.fences WHERE tbl = '" + table + "'");
    return t;
  }

  /**
   * The migrator's data path without the move around it, from the seed into a fresh table on s2: its
   * chunk copy in a loop ({@code chunks}), or the range in one streamed COPY. Returns seconds.
   */
  private double pieceRound(MoveBed bed, int r, boolean chunks) throws SQLException {
    String table = "copy_piece_" + r;
    bed.createTable("s2", table);
    // The seed is read under the piece's table name on s2: RangeTableMove names one table on both sides.
    bed.exec("s1", "CREATE VIEW " + table + " AS SELECT * FROM " + SEED);
    bed.checkpoint();
    RangeTableMove m = new RangeTableMove("piece_" + r, "copy", table, "id", 0L, rows);
    long t0 = System.nanoTime();
    try (Connection src = bed.shard("s1").connect(); Connection dst = bed.shard("s2").connect()) {
      if (chunks) {
        byte[] after = null;
        RangeTableMove.CopiedChunk c;
        do {
          c = m.copyChunk(src, dst, after, chunkRows);
          after = c.last();
        } while (!c.done());
      } else {
        m.copyRange(src, dst);
      }
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    if (bed.count("s2", table, 0, rows) != rows) {
      throw new IllegalStateException("the " + (chunks ? "chunk loop" : "single COPY") + " did not copy " + rows + " rows");
    }
    bed.exec("s1", "DROP VIEW " + table);
    bed.exec("s2", "DROP TABLE " + table);
    return seconds;
  }

  private void print(PrintStream out, Result r) {
    double mb = r.bytes() / 1e6;
    List<List<String>> lines = new ArrayList<>();
    lines.add(List.of("pipe (baseline)", Report.fmt(r.medianPipeSeconds(), 2), Report.fmt(r.rows() / r.medianPipeSeconds(), 0),
        Report.fmt(mb / r.medianPipeSeconds(), 1), "1.000"));
    lines.add(List.of("migrator copy phase", Report.fmt(r.medianCopySeconds(), 2),
        Report.fmt(r.rows() / r.medianCopySeconds(), 0), Report.fmt(mb / r.medianCopySeconds(), 1),
        Report.fmt(r.ratio(), 3)));
    if (r.rounds().get(0).chunkLoopSeconds() > 0) {
      double chunks = median(r.rounds().stream().mapToDouble(Round::chunkLoopSeconds));
      double single = median(r.rounds().stream().mapToDouble(Round::singleCopySeconds));
      lines.add(List.of("chunk loop alone", Report.fmt(chunks, 2), Report.fmt(r.rows() / chunks, 0),
          Report.fmt(mb / chunks, 1), Report.fmt(r.medianPipeSeconds() / chunks, 3)));
      lines.add(List.of("one streamed COPY", Report.fmt(single, 2), Report.fmt(r.rows() / single, 0),
          Report.fmt(mb / single, 1), Report.fmt(r.medianPipeSeconds() / single, 3)));
    }
    lines.add(List.of("migrator whole move", Report.fmt(r.medianMoveSeconds(), 2),
        Report.fmt(r.rows() / r.medianMoveSeconds(), 0), Report.fmt(mb / r.medianMoveSeconds(), 1),
        Report.fmt(r.medianPipeSeconds() / r.medianMoveSeconds(), 3)));
    out.println();
    out.printf("median of %d rounds, %,d rows, %.1f MB:%n", r.rounds().size(), r.rows(), mb);
    out.print(Report.table(List.of("copy", "seconds", "rows/s", "MB/s", "rate vs pipe"), lines));
    List<List<String>> phases = new ArrayList<>();
    for (int i = 0; i < MoveTimeline.PHASES.size() - 1; i++) {
      int p = i;
      phases.add(List.of(MoveTimeline.label(MoveTimeline.PHASES.get(i)),
          Report.fmt(median(r.rounds().stream().mapToDouble(x -> x.phaseNanos()[p] / 1e9)), 2)));
    }
    out.println("phases of the move (median seconds):");
    out.print(Report.table(List.of("phase", "seconds"), phases));
    out.printf("migrator copy / pipe rate: %.3f (per round %s; goal >= %.2f)%n", r.ratio(),
        Arrays.toString(r.rounds().stream().mapToDouble(x -> Math.round(x.pipeSeconds() / x.copySeconds() * 1000)
            / 1000.0).toArray()), GOAL_RATIO);
  }

  static double median(java.util.stream.DoubleStream values) {
    double[] v = values.sorted().toArray();
    return v.length == 0 ? 0 : v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }
}
