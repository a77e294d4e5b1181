package io.shardmap.bench;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.ShardmapData.Idempotence;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Moves of key ranges while a fixed-rate writer upserts through the SDK, part of its keys inside the
 * range being moved: the writes' latency during each cutover and during the whole move against the same
 * writer's before any move (same run), the migrator's own pause figure, the phases of each move, the
 * change-log backlog catch-up had to drain, and a bare psql pipe of the same rows as the copy baseline.
 */
@Command(name = "migrate-load", mixinStandardHelpOptions = true,
    description = {
        "Moves key ranges of --rows rows from s1 to s2, two local PostgreSQL shards (move m: [(m-1)*rows, m*rows)), "
            + "while an open-loop writer upserts through ShardmapData at a fixed rate, a fraction of its keys "
            + "inside the range; baseline: the same writer before any move, and a bare psql pipe of the rows.",
        "Prints write latency (from each write's scheduled start) in the cutover window and the whole move vs. "
            + "the baseline (goal: cutover p99 < 100 ms), the migrator's pause, phases, catch-up backlog."})
public final class MigrateLoadCommand implements Callable<Integer> {
  public static final long GOAL_CUTOVER_P99_NANOS = 100_000_000L;
  static final String KS = "load";
  static final String TABLE = "load_rows";
  /** Writes due this long after the cutover was recorded still count to its window: clients learn of it then. */
  static final long CUTOVER_TAIL_NANOS = 1_000_000_000L;
  static final String UPSERT = "INSERT INTO " + TABLE + " (id, v, created_at, name, payload) VALUES (?, ?, now(), ?, ?) "
      + "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, created_at = EXCLUDED.created_at, payload = EXCLUDED.payload";
  private static final String PAYLOAD = "x".repeat(140);
  /**
   * The migrator's cutover lines (INFO: each cutover's pause by part, lock to target commit; WARNING: each
   * abandoned or deferred attempt) go to stderr. Held here: java.util.logging keeps loggers weakly.
   */
  private static final java.util.logging.Logger CUTOVER_LOG =
      java.util.logging.Logger.getLogger("io.shardmap.migrator.internal.MoveDriver");

  @Option(names = "--rows", defaultValue = "1000000", description = "Rows in each moved range (~200 B each).")
  long rows;

  @Option(names = "--outside-rows", defaultValue = "100000",
      description = "Rows just below the range, [-outside-rows, 0), on the same source shard; they never move.")
  long outsideRows;

  @Option(names = "--rate", defaultValue = "1000", description = "Writes per second, open loop.")
  double rate;

  @Option(names = "--inside-fraction", defaultValue = "0.5",
      description = "Fraction of writes to keys in the range being moved (or moved last, or to be moved next).")
  double insideFraction;

  /*
   * Each move takes a range of its own from s1 to s2 rather than moving one range there and back: a range
   * cannot move back to a shard that still fences it (docs/benchmarks.md, Migrator, what limits the numbers).
   */
  @Option(names = "--moves", defaultValue = "1", description = "Moves, one after the other, each of its own range.")
  int moves;

  @Option(names = "--move-back", defaultValue = "false",
      description = "After each move s1 -> s2, move the same range back s2 -> s1: to a shard that still fences it "
          + "from the first move. Each cutover window is reported as 'fresh' (to a shard that never had the range) "
          + "or 'back'.")
  boolean moveBack;

  @Option(names = "--warmup-seconds", defaultValue = "5", description = "Writing before the baseline window.")
  double warmupSeconds;

  @Option(names = "--baseline-seconds", defaultValue = "20", description = "The baseline window: writing, no move.")
  double baselineSeconds;

  @Option(names = "--settle-seconds", defaultValue = "5", description = "Writing after each move.")
  double settleSeconds;

  @Option(names = "--chunk-rows", defaultValue = "50000", description = "The migrator's chunk size (its default).")
  int chunkRows;

  @Option(names = "--pause-budget-ms", defaultValue = "100", description = "The moves' pause budget (the default).")
  long pauseBudgetMs;

  @Option(names = "--max-cutover-attempts", defaultValue = "5",
      description = "Cutover attempts that may miss the pause budget before a move cancels itself (the default).")
  int maxCutoverAttempts;

  @Option(names = "--threads", defaultValue = "64", description = "Writer threads the scheduled writes run on.")
  int threads;

  @Option(names = "--pool-size", defaultValue = "16", description = "SDK connections per shard (all kept open).")
  int poolSize;

  @Option(names = "--max-seconds", defaultValue = "900", description = "The writer stops after this long whatever happens.")
  double maxSeconds;

  @Option(names = "--seed", defaultValue = "11", description = "Seed of the writer's keys.")
  long seed;

  // Not defaultValue = "true": picocli then takes --no-pipe as "the opposite of false" and keeps the pipe.
  @Option(names = "--pipe", negatable = true, fallbackValue = "true",
      description = "Time a bare psql pipe of the same rows first (same run); --no-pipe skips it.")
  boolean pipe = true;

  @Option(names = "--psql", description = "psql binary (default: the local PostgreSQL's).")
  String psql = CopyPipe.defaultPsql();

  @Option(names = "--etcd-endpoints", split = ",",
      description = "Loopback etcd to use instead of starting a 1-member etcd from the local binary.")
  List<String> etcdEndpoints = new ArrayList<>();

  /** One move: where, its timeline, the change-log backlog, and the writes during it and its cutover. */
  public record MoveResult(String from, String to, boolean back, MoveTimeline timeline, Backlog.Peak backlog,
                           FixedRateWriter.Window moveInside, FixedRateWriter.Window moveOutside,
                           FixedRateWriter.Window cutoverInside, FixedRateWriter.Window cutoverOutside,
                           List<long[]> etas) {
    Migration migration() {
      return timeline.result;
    }
  }

  /**
   * @param cutoverInside writes inside the moved ranges in every cutover window
   * @param freshInside the same, of moves to a shard that never had the range
   * @param backInside the same, of moves back to a shard that still fenced the range (empty without --move-back)
   */
  public record Result(double pipeSeconds, long bytes, FixedRateWriter.Window baselineInside,
                       FixedRateWriter.Window baselineOutside, List<MoveResult> moves,
                       FixedRateWriter.Window cutoverInside, FixedRateWriter.Window freshInside,
                       FixedRateWriter.Window backInside, long writes, long errors) {}

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.errors() == 0 ? 0 : 1;
  }

  Result run(PrintStream out) throws Exception {
    if (rows < 10 || rows > 100_000_000 || outsideRows < 10 || moves < 1 || moves > 20 || chunkRows < 1
        || threads < 1 || poolSize < 1 || baselineSeconds <= 0 || maxSeconds <= 0) {
      throw new IllegalArgumentException("rows 10-100000000, outside-rows >= 10, moves 1-20, chunk-rows, threads, "
          + "pool-size >= 1, baseline-seconds and max-seconds > 0");
    }
    CUTOVER_LOG.setLevel(java.util.logging.Level.INFO);
    out.println("migrate-load | " + Report.environment());
    CopyPipe copyPipe = pipe ? new CopyPipe(psql) : null;
    try (MoveBed bed = new MoveBed(etcdEndpoints); Migrator migrator = bed.migrator()) {
      for (String s : MoveBed.SHARDS) {
        bed.createTable(s, TABLE);
      }
      // s2 owns keys below the outside rows from the start, so the SDK's pool for it is open and warm.
      bed.rangeKeyspace(KS, TABLE, -outsideRows, "s2", "s1");
      bed.fill("s1", TABLE, -outsideRows, rows * moves);
      double pipeSeconds = 0;
      long bytes = 0;
      String select = CopyPipe.select(TABLE, 0, rows);
      if (copyPipe != null) {
        Duration limit = Duration.ofMinutes(15);
        bytes = copyPipe.bytes(bed.shard("s1"), select, limit);
        bed.createTable("s2", "load_pipe");
        bed.checkpoint();
        pipeSeconds = copyPipe.copy(bed.shard("s1"), select, bed.shard("s2"), "load_pipe", limit);
        if (bed.count("s2", "load_pipe", 0, rows) != rows) {
          throw new IllegalStateException("the pipe did not copy " + rows + " rows");
        }
        bed.exec("s2", "DROP TABLE load_pipe");
        out.printf("pipe:    %,d rows (%.1f MB binary) in %.2f s = %,.0f rows/s: %s%n", rows, bytes / 1e6, pipeSeconds,
            rows / pipeSeconds, copyPipe.describe(bed.shard("s1"), select, bed.shard("s2"), "load_pipe"));
      }
      out.printf("setup:   2 PostgreSQL 15 servers, etcd %s, directory server in this JVM; %s keys [%d, %d) on s1, "
              + "moving %d range(s) of %,d rows to s2; writer %,.0f/s open loop, %.0f%% inside the range, upsert by id through "
              + "ShardmapData.withConnection (IDEMPOTENT), %d threads, %d connections per shard%n",
          bed.etcd.description(), KS, -outsideRows, rows * moves, moves, rows, rate, insideFraction * 100, threads, poolSize);
      try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder()
               .targets("127.0.0.1:" + bed.server.port()).keyspaces(KS).build());
           ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(bed.shard("s1").user())
               .password(bed.shard("s1").password()).maxPoolSize(poolSize).minIdle(poolSize).build())) {
        Result r = measure(out, bed, migrator, data, pipeSeconds, bytes);
        check(out, bed);
        return r;
      }
    }
  }

  private Result measure(PrintStream out, MoveBed bed, Migrator migrator, ShardmapData data, double pipeSeconds,
                         long bytes) throws Exception {
    FixedRateWriter.Write upsert = (key, seq) -> data.withConnection(KS, key, Idempotence.IDEMPOTENT, c -> {
      try (PreparedStatement ps = c.prepareStatement(UPSERT)) {
        ps.setLong(1, key);
        ps.setLong(2, seq);
        ps.setString(3, "user-" + key);
        ps.setString(4, PAYLOAD);
        if (ps.executeUpdate() != 1) {
          throw new IllegalStateException("upsert of key " + key + " changed no row");
        }
        return null;
      }
    });
    List<MoveTimeline> timelines = new ArrayList<>();
    List<Backlog.Peak> peaks = new ArrayList<>();
    List<List<long[]>> etas = new ArrayList<>();
    long baselineFrom;
    long baselineTo;
    FixedRateWriter.Samples samples;
    try (FixedRateWriter writer = new FixedRateWriter(rate, threads, Duration.ofMillis((long) (maxSeconds * 1000)),
        insideFraction, rows, -outsideRows, 0, seed, upsert)) {
      long t0 = writer.start();
      sleepUntil(t0 + seconds(warmupSeconds));
      baselineFrom = System.nanoTime();
      sleepUntil(baselineFrom + seconds(baselineSeconds));
      baselineTo = System.nanoTime();
      out.printf("baseline window done (%.1f s of writing, no move; load %s)%n", baselineSeconds, Report.loadAverage());
      int steps = moveBack ? 2 * moves : moves;
      for (int m = 1; m <= steps; m++) {
        // With --move-back, step 2i-1 moves range i away and step 2i brings it back.
        int range = moveBack ? (m + 1) / 2 : m;
        boolean back = moveBack && m % 2 == 0;
        String source = back ? "s2" : "s1";
        String target = back ? "s1" : "s2";
        long lo = (range - 1) * rows;
        writer.insideBase(lo);
        String id = "load_" + m;
        MoveTimeline t;
        // Every ETA the migrator recorded during the move: {when it was estimated, the expected end} (wall ms).
        List<long[]> moveEtas = new java.util.concurrent.CopyOnWriteArrayList<>();
        etas.add(moveEtas);
        try (Backlog backlog = Backlog.start(bed.shard(source), "shardmap.\"changes_" + id + "\"")) {
          t = MoveTimeline.run(migrator, MoveSpec.builder().id(id).keyspace(KS).range(lo + ".." + (lo + rows)).target(target)
              .split(true).chunkRows(chunkRows).pauseBudget(Duration.ofMillis(pauseBudgetMs))
              .maxCutoverAttempts(maxCutoverAttempts).build(),
              p -> {
                backlog.phase(p.getState());
                if (p.getEtaUnixMs() > 0) {
                  moveEtas.add(new long[] {p.getUpdatedUnixMs(), p.getEtaUnixMs()});
                }
              });
          peaks.add(backlog.peak());
        }
        timelines.add(t);
        out.printf("move %d [%d, %d) %s -> %s%s %s in %.1f s, migrator pause %d ms, clients routed after %s ms, "
                + "%d cutover attempt(s) (load %s)%n", m, lo, lo + rows, source, target, back ? " (back)" : "",
            MoveTimeline.label(t.result.getState()), t.totalNanos() / 1e9, t.result.getPauseMs(),
            t.result.getClientsRoutedMs() > 0 ? Long.toString(t.result.getClientsRoutedMs()) : "-",
            t.result.getCutoverAttempts(), Report.loadAverage());
        if (!t.result.getLastError().isEmpty()) {
          out.println("  last error: " + t.result.getLastError());
        }
        sleepUntil(System.nanoTime() + seconds(settleSeconds));
      }
      samples = writer.stop(Duration.ofSeconds(60));
    }
    FixedRateWriter.Window baseIn = samples.window(baselineFrom, baselineTo, true);
    FixedRateWriter.Window baseOut = samples.window(baselineFrom, baselineTo, false);
    List<MoveResult> results = new ArrayList<>();
    long[] cutoverFrom = new long[timelines.size()];
    long[] cutoverTo = new long[timelines.size()];
    List<long[]> fresh = new ArrayList<>();
    List<long[]> back = new ArrayList<>();
    for (int i = 0; i < timelines.size(); i++) {
      MoveTimeline t = timelines.get(i);
      boolean isBack = moveBack && i % 2 == 1;
      cutoverFrom[i] = t.at(MigrationState.MIGRATION_STATE_CUTTING_OVER);
      cutoverTo[i] = t.at(MigrationState.MIGRATION_STATE_CLEANING_UP) + CUTOVER_TAIL_NANOS;
      (isBack ? back : fresh).add(new long[] {cutoverFrom[i], cutoverTo[i]});
      results.add(new MoveResult(isBack ? "s2" : "s1", isBack ? "s1" : "s2", isBack, t, peaks.get(i),
          samples.window(t.start, t.end, true), samples.window(t.start, t.end, false),
          samples.window(cutoverFrom[i], cutoverTo[i], true), samples.window(cutoverFrom[i], cutoverTo[i], false),
          etas.get(i)));
    }
    FixedRateWriter.Window allCutovers = samples.windows(cutoverFrom, cutoverTo, true);
    Result r = new Result(pipeSeconds, bytes, baseIn, baseOut, results, allCutovers, windows(samples, fresh),
        windows(samples, back), samples.due().length, samples.errors());
    print(out, r);
    if (samples.firstError() != null) {
      out.println("first write error: " + samples.firstError());
    }
    return r;
  }

  /** The inside writes of several cutover windows together. */
  private static FixedRateWriter.Window windows(FixedRateWriter.Samples samples, List<long[]> spans) {
    long[] from = new long[spans.size()];
    long[] to = new long[spans.size()];
    for (int i = 0; i < spans.size(); i++) {
      from[i] = spans.get(i)[0];
      to[i] = spans.get(i)[1];
    }
    return samples.windows(from, to, true);
  }

  private void print(PrintStream out, Result r) {
    out.println();
    List<String> header = List.of("window", "keys", "writes", "failed", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
        "longest gap ms");
    List<List<String>> lines = new ArrayList<>();
    boolean outside = insideFraction < 1;
    lines.add(row("baseline (no move)", "inside", r.baselineInside()));
    if (outside) {
      lines.add(row("", "outside", r.baselineOutside()));
    }
    for (int i = 0; i < r.moves().size(); i++) {
      MoveResult m = r.moves().get(i);
      lines.add(row("move " + (i + 1) + ", whole move", "inside", m.moveInside()));
      if (outside) {
        lines.add(row("", "outside", m.moveOutside()));
      }
      lines.add(row("move " + (i + 1) + ", cutover window", "inside", m.cutoverInside()));
      if (outside) {
        lines.add(row("", "outside", m.cutoverOutside()));
      }
    }
    if (r.moves().size() > 1) {
      lines.add(row("all cutover windows", "inside", r.cutoverInside()));
    }
    if (moveBack) {
      lines.add(row("cutovers to a fresh shard", "inside", r.freshInside()));
      lines.add(row("cutovers back (target fenced it)", "inside", r.backInside()));
    }
    out.println("write latency from each write's scheduled start (cutover window: from entering cutting-over to 1 s "
        + "after the cutover was recorded):");
    out.print(Report.table(header, lines));
    List<List<String>> phases = new ArrayList<>();
    for (int i = 0; i < r.moves().size(); i++) {
      MoveResult m = r.moves().get(i);
      MoveTimeline t = m.timeline();
      Migration g = m.migration();
      List<String> cells = new ArrayList<>(List.of((i + 1) + " " + m.from() + "->" + m.to(),
          Report.fmt(t.totalNanos() / 1e9, 1)));
      for (MigrationState s : MoveTimeline.PHASES.subList(0, MoveTimeline.PHASES.size() - 1)) {
        cells.add(Report.fmt(t.phaseNanos(s) / 1e9, 2));
      }
      cells.add(Report.fmt(g.getRowsCopied() / (t.copyNanos() / 1e9), 0));
      cells.add(String.format("%,d", m.backlog().keys()));
      cells.add(m.backlog().keys() == 0 ? "-" : MoveTimeline.label(m.backlog().phase()) + " +"
          + Report.fmt((m.backlog().at() - t.start) / 1e9, 1) + " s");
      cells.add(String.format("%,d", g.getKeysReplayed()));
      cells.add(String.format("%,d", g.getKeysRepaired()));
      cells.add(g.getPauseMs() + " / " + g.getOptions().getPauseBudgetMs());
      cells.add(g.getClientsRoutedMs() > 0 ? Long.toString(g.getClientsRoutedMs()) : "-");
      cells.add(Report.millis(m.cutoverInside().latency().max(), 1));
      cells.add(Integer.toString(g.getCutoverAttempts()));
      phases.add(cells);
    }
    out.println("moves (seconds; backlog = most keys in the source's change log, sampled every 100 ms; pause = the "
        + "migrator's, lock request to new owner accepting; clients routed = lock request to every client's "
        + "acknowledgement, an upper bound; client max = slowest inside write of the cutover window):");
    out.print(Report.table(List.of("move", "total", "prepare", "copy", "catch-up", "verify", "cutover", "cleanup",
        "copy rows/s", "max backlog", "at", "replayed", "repaired", "pause ms / budget", "clients routed ms",
        "client max ms", "attempts"), phases));
    if (r.pipeSeconds() > 0) {
      double copy = MigrateCopyCommand.median(r.moves().stream().mapToDouble(m -> m.timeline().copyNanos() / 1e9));
      double total = MigrateCopyCommand.median(r.moves().stream().mapToDouble(m -> m.timeline().totalNanos() / 1e9));
      out.printf("baseline bare pipe of the same %,d rows (no writes): %.2f s; move under load: copy phase %.2f s "
          + "(%.2fx the pipe's time), whole move %.2f s (%.2fx) (medians over moves)%n", rows, r.pipeSeconds(), copy,
          copy / r.pipeSeconds(), total, total / r.pipeSeconds());
      // Issue 16's figure: each phase and the whole move as multiples of the bare pipe (goal: whole move <= 3x).
      List<MigrationState> shown = MoveTimeline.PHASES.subList(0, MoveTimeline.PHASES.size() - 1);
      for (int i = 0; i < r.moves().size(); i++) {
        MoveTimeline t = r.moves().get(i).timeline();
        StringBuilder b = new StringBuilder();
        for (MigrationState s : shown) {
          b.append(b.length() == 0 ? "" : ", ").append(MoveTimeline.label(s)).append(' ')
              .append(String.format("%.2fx", t.phaseNanos(s) / 1e9 / r.pipeSeconds()));
        }
        out.printf("move %d against the bare pipe: whole move %.2fx (%s)%n", i + 1,
            t.totalNanos() / 1e9 / r.pipeSeconds(), b);
      }
    }
    printEtas(out, r);
    long p99 = r.cutoverInside().latency().p(0.99);
    out.printf("cutover p99 of writes inside the range: %s ms (baseline p99 %s ms, %.1fx); goal < %d ms: %s; "
            + "migrator's pause per move: %s ms; writes %,d, failed %,d%n", Report.millis(p99, 1),
        Report.millis(r.baselineInside().latency().p(0.99), 1),
        (double) p99 / Math.max(1, r.baselineInside().latency().p(0.99)), GOAL_CUTOVER_P99_NANOS / 1_000_000,
        p99 < GOAL_CUTOVER_P99_NANOS ? "met" : "NOT met",
        r.moves().stream().map(m -> Long.toString(m.migration().getPauseMs())).toList(), r.writes(), r.errors());
    out.printf("client-visible cutover pause (inside writes of the cutover windows, from each write's scheduled "
            + "start): fresh shard p99 %s ms, max %s ms%s; baseline (no move) p99 %s ms, max %s ms%n",
        Report.millis(r.freshInside().latency().p(0.99), 1), Report.millis(r.freshInside().latency().max(), 1),
        moveBack ? String.format("; back to a fencing shard p99 %s ms, max %s ms, %,d failed",
            Report.millis(r.backInside().latency().p(0.99), 1), Report.millis(r.backInside().latency().max(), 1),
            r.backInside().failed()) : "",
        Report.millis(r.baselineInside().latency().p(0.99), 1), Report.millis(r.baselineInside().latency().max(), 1));
  }

  /** When during each move the ETA accuracy is looked at, as shares of the move's duration. */
  static final double[] ETA_MOMENTS = {0.1, 0.25, 0.5, 0.75, 0.9};

  /**
   * The whole move's ETA (Migration.eta_unix_ms, as last recorded before each moment) against the move's
   * actual end (finished_unix_ms): the error as a share of the move's duration, and of the time that was
   * actually left at that moment. Moves of 10 s or less are listed but not pooled (issue 16's goal: within
   * ±20% for moves longer than 10 s).
   */
  private static void printEtas(PrintStream out, Result r) {
    List<List<String>> lines = new ArrayList<>();
    double worst = 0;
    int pooled = 0;
    for (int i = 0; i < r.moves().size(); i++) {
      MoveResult m = r.moves().get(i);
      Migration g = m.migration();
      long start = g.getCreatedUnixMs();
      long end = g.getFinishedUnixMs();
      if (g.getState() != MigrationState.MIGRATION_STATE_DONE || end <= start) {
        continue;
      }
      long duration = end - start;
      List<String> cells = new ArrayList<>(List.of(Integer.toString(i + 1), String.format("%,d", g.getRowsCopied()),
          Report.fmt(duration / 1e3, 1)));
      for (double f : ETA_MOMENTS) {
        long at = start + Math.round(f * duration);
        long[] seen = null;
        for (long[] e : m.etas()) {
          if (e[0] <= at) {
            seen = e;
          }
        }
        if (seen == null) {
          cells.add("-");
          continue;
        }
        double ofMove = 100.0 * (seen[1] - end) / duration;
        double ofLeft = 100.0 * (seen[1] - end) / Math.max(1, end - at);
        cells.add(String.format("%+.0f%% (%+.0f%%)", ofMove, ofLeft));
        if (duration > 10_000) {
          worst = Math.max(worst, Math.abs(ofMove));
        }
      }
      cells.add(Integer.toString(m.etas().size()));
      if (duration > 10_000) {
        pooled++;
      }
      lines.add(cells);
    }
    List<String> header = new ArrayList<>(List.of("move", "rows", "seconds"));
    for (double f : ETA_MOMENTS) {
      header.add("at " + Math.round(f * 100) + "%");
    }
    header.add("estimates");
    out.println("whole-move ETA (eta_unix_ms as last recorded before each moment of the move) minus the actual end, "
        + "as % of the move's duration (and, in brackets, of the time actually left then):");
    out.print(Report.table(header, lines));
    out.printf("ETA error over moves longer than 10 s (%d): worst %.0f%% of the move's duration; goal within 20%%: %s%n",
        pooled, worst, pooled == 0 ? "no such move" : worst <= 20 ? "met" : "NOT met");
  }

  private static List<String> row(String window, String keys, FixedRateWriter.Window w) {
    Report.Dist d = w.latency();
    return List.of(window, keys, String.format("%,d", d.count()), String.format("%,d", w.failed()),
        Report.millis(d.p(0.50), 2), Report.millis(d.p(0.99), 2), Report.millis(d.p(0.999), 2),
        Report.millis(d.max(), 2), Report.millis(w.longestGapNanos(), 2));
  }

  /** Every moved key on s2 once, none left on s1, the outside rows where they were. */
  private void check(PrintStream out, MoveBed bed) throws SQLException {
    // With --move-back every range ends where it started.
    String owner = moveBack ? "s1" : "s2";
    long there = bed.count(owner, TABLE, 0, rows * moves);
    long left = bed.count(moveBack ? "s2" : "s1", TABLE, 0, rows * moves);
    long outside = bed.count("s1", TABLE, -outsideRows, 0);
    boolean ok = there == rows * moves && left == 0 && outside == outsideRows;
    out.printf("check:   moved keys on %s (their owner): %,d rows, elsewhere: %,d; outside rows on s1: %,d: %s%n",
        owner, there, left, outside, ok ? "as expected" : "WRONG");
    if (!ok) {
      throw new IllegalStateException("rows are not where the map says after the moves");
    }
  }

  private static long seconds(double s) {
    return (long) (s * 1e9);
  }

  private static void sleepUntil(long nanoTime) throws InterruptedException {
    long wait;
    while ((wait = nanoTime - System.nanoTime()) > 0) {
      Thread.sleep(Math.max(1, wait / 1_000_000));
    }
  }

  /**
   * Samples the size of a move's change log on the source every 100 ms on its own connection (the table
   * exists from preparation to cleanup) and keeps the peak, with when and in which phase it was seen.
   */
  static final class Backlog implements AutoCloseable {
    record Peak(long keys, long at, MigrationState phase) {}

    private final Connection c;
    private final String table;
    private final Thread thread;
    private volatile boolean stop;
    private volatile MigrationState phase = MigrationState.MIGRATION_STATE_PLANNED;
    private volatile Peak peak = new Peak(0, 0, MigrationState.MIGRATION_STATE_PLANNED);
    private volatile Exception failure;

    private Backlog(Connection c, String table) {
      this.c = c;
      this.table = table;
      this.thread = new Thread(this::sample, "backlog-sampler");
      thread.setDaemon(true);
    }

    static Backlog start(PgInstance source, String table) throws SQLException {
      Backlog b = new Backlog(source.connect(), table);
      b.thread.start();
      return b;
    }

    void phase(MigrationState s) {
      phase = s;
    }

    private void sample() {
      try (Statement s = c.createStatement()) {
        while (!stop) {
          try (ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table)) {
            rs.next();
            long n = rs.getLong(1);
            if (n > peak.keys()) {
              peak = new Peak(n, System.nanoTime(), phase);
            }
          } catch (SQLException e) {
            if (!"42P01".equals(e.getSQLState())) {
              throw e; // only "no such table" (before preparation, after cleanup) is expected
            }
          }
          Thread.sleep(100);
        }
      } catch (SQLException | InterruptedException e) {
        failure = e;
      }
    }

    Peak peak() {
      if (failure != null) {
        throw new IllegalStateException("sampling the change log failed: " + failure.getMessage(), failure);
      }
      return peak;
    }

    @Override
    public void close() throws SQLException {
      stop = true;
      try {
        thread.join(5_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      c.close();
    }
  }
}
