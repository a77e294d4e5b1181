package io.shardmap.migrator.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.protobuf.util.JsonFormat;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.cli.CliHarness.Result;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.testkit.Await;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The {@code migrator} command line, run in-process against real etcd, a real directory server and three
 * real PostgreSQL shards: whole moves, refusals with their exit codes and messages, detach, cancel,
 * resume, a worker, and a foreground drive stopped by a signal.
 */
@Tag("integration")
@Timeout(180)
class MigratorCliTest {
  CliHarness h;

  @BeforeEach
  void setUp() throws Exception {
    h = new CliHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    h.close();
  }

  static Migration parse(String json) throws Exception {
    Migration.Builder b = Migration.newBuilder();
    JsonFormat.parser().merge(json, b);
    return b.build();
  }

  List<Migration> listJson() throws Exception {
    Result r = h.run("list", "--json");
    assertEquals(0, r.code(), r::toString);
    JsonArray a = JsonParser.parseString(r.out()).getAsJsonArray();
    List<Migration> out = new ArrayList<>();
    for (JsonElement e : a) {
      out.add(parse(e.toString()));
    }
    return out;
  }

  Migration statusJson(String id) throws Exception {
    Result r = h.run("status", id, "--json");
    assertEquals(0, r.code(), r::toString);
    return parse(r.out());
  }

  @Test
  void aMoveWithSplitRunsToDoneAndStatusJsonShowsIt() throws Exception {
    Result r = h.run("move", "users", "1000..2500", "--to", "s3", "--split", "--id", "mv1", "--chunk-rows", "400",
        "--cleanup-grace", "1s");

    assertEquals(0, r.code(), r::toString);
    // Progress on stderr, one line per state (stderr is not a terminal here), in order.
    int at = -1;
    for (String s : List.of("planned", "preparing", "copying", "catching-up", "verifying", "cutting-over",
        "cleaning-up", "done")) {
      int i = r.err().indexOf("mv1 " + s);
      assertTrue(i > at, "progress line for " + s + " after the previous one:\n" + r.err());
      at = i;
    }
    assertTrue(r.err().contains("mv1 copying      starting, in chunks of 400 rows\n"), r::toString);
    assertTrue(r.err().contains("mv1 catching-up  1,500 rows copied;"), r::toString);
    assertTrue(r.err().contains("moved 1,500 rows"), r::toString);
    // The final record for people on stdout.
    assertTrue(r.out().startsWith("ID "), r::toString);
    assertTrue(r.out().contains("mv1  users     1000..2500  s2->s3  done   100%"), r::toString);

    Migration m = statusJson("mv1");
    assertEquals(MigrationState.MIGRATION_STATE_DONE, m.getState());
    assertEquals("s2", m.getSource());
    assertEquals("s3", m.getTarget());
    assertEquals(1_500, m.getRowsCopied());
    assertEquals(1_500, m.getRowsDeleted());
    assertEquals(1_500, h.count(2, 1000, 2500), "the target holds the range");
    assertEquals(0, h.count(1, 1000, 2500), "the source keeps none of it");
    assertEquals(1_000, h.count(1, 0, 1000), "the rest stays");

    List<Migration> all = listJson();
    assertEquals(List.of("mv1"), all.stream().map(Migration::getId).toList());
    assertEquals(MigrationState.MIGRATION_STATE_DONE, all.get(0).getState());
    Result text = h.run("list");
    assertEquals(0, text.code(), text::toString);
    assertEquals(2, text.out().lines().count(), text::toString);
    assertTrue(text.out().lines().toList().get(1).startsWith("mv1  users"), text::toString);
    Result active = h.run("list", "--active", "--json");
    assertEquals("[]", active.out().trim(), active::toString);

    // The next range, with JSON output: progress as JSON lines on stderr, the record on stdout.
    Result next = h.run("--json", "move", "users", "2500..2800", "--to", "s3", "--split", "--id", "mv2",
        "--cleanup-grace", "0");
    assertEquals(0, next.code(), next::toString);
    assertEquals(MigrationState.MIGRATION_STATE_DONE, parse(next.out()).getState());
    List<String> lines = next.err().lines().toList();
    assertTrue(lines.size() >= 8, next::toString);
    for (String line : lines) {
      assertEquals("mv2", parse(line).getId(), line);
    }
    assertEquals(MigrationState.MIGRATION_STATE_PLANNED, parse(lines.get(0)).getState());
    assertEquals(MigrationState.MIGRATION_STATE_DONE, parse(lines.get(lines.size() - 1)).getState());
    assertEquals(300, h.count(2, 2500, 2800));
  }

  @Test
  void aBucketMoveNamesTheBucketInEveryOutputAndNeverSaysRange() throws Exception {
    h.hashKeyspace("carts");
    List<Result> outputs = new ArrayList<>();
    Result move = h.run("--progress", "lines", "move", "carts", "--bucket", "3", "--to", "s3", "--id", "b3",
        "--cleanup-grace", "0");
    assertEquals(0, move.code(), move::toString);
    outputs.add(move);
    assertTrue(move.err().contains("b3 planned      carts bucket 3 of 8 from s2 to s3, recorded\n"), move::toString);
    assertTrue(move.out().startsWith("ID  KEYSPACE  UNIT "), move::toString);
    assertTrue(move.out().contains("b3  carts     bucket 3 of 8  s2->s3  done"), move::toString);
    assertTrue(move.out().contains("\nbucket epoch  "), move::toString);

    Result status = h.run("status", "b3");
    outputs.add(status);
    assertTrue(status.out().contains("\nbucket epoch  "), status::toString);
    Result json = h.run("--json", "status", "b3");
    outputs.add(json);
    assertTrue(json.out().contains("\"unitEpoch\": \""), json::toString);
    outputs.add(h.run("list"));
    outputs.add(h.run("--json", "list"));

    Result jsonMove = h.run("--json", "move", "carts", "--bucket", "5", "--to", "s3", "--id", "b5", "--cleanup-grace",
        "0");
    assertEquals(0, jsonMove.code(), jsonMove::toString);
    outputs.add(jsonMove);
    Result detached = h.run("move", "carts", "--bucket", "7", "--to", "s3", "--id", "b7", "--detach");
    assertEquals(0, detached.code(), detached::toString);
    outputs.add(detached);
    assertTrue(detached.err().contains("recorded migration b7: carts bucket 7 of 8 from s2 to s3"), detached::toString);
    Result cancelled = h.run("cancel", "b7");
    assertEquals(0, cancelled.code(), cancelled::toString);
    outputs.add(cancelled);
    assertTrue(cancelled.err().contains("b7 cancelled    s2 keeps bucket 7 of 8"), cancelled::toString);

    // Refusals name the bucket too.
    Result owned = h.run("move", "carts", "--bucket", "1", "--to", "s2");
    assertEquals(4, owned.code(), owned::toString);
    assertTrue(owned.err().contains("error: FAILED_PRECONDITION: target: shard 's2' already owns bucket 1 of keyspace "
        + "'carts'"), owned::toString);
    outputs.add(owned);
    Result late = h.run("cancel", "b3");
    assertEquals(4, late.code(), late::toString);
    assertTrue(late.err().contains("s3 owns bucket 3 of 8 of keyspace 'carts'"), late::toString);
    outputs.add(late);
    Result noBucket = h.run("move", "carts", "--bucket", "8", "--to", "s3");
    assertEquals(2, noBucket.code(), noBucket::toString);
    outputs.add(noBucket);

    for (Result r : outputs) {
      assertFalse((r.out() + r.err()).toLowerCase(java.util.Locale.ROOT).contains("range"), r::toString);
    }
  }

  /** The CLEANING_UP records among JSON progress lines, in order. */
  static List<Migration> cleaningUp(String jsonLines) throws Exception {
    List<Migration> out = new ArrayList<>();
    for (String line : jsonLines.lines().toList()) {
      Migration m = parse(line);
      if (m.getState() == MigrationState.MIGRATION_STATE_CLEANING_UP) {
        out.add(m);
      }
    }
    return out;
  }

  /**
   * Source rows deleted, as reported while cleanup deletes: at least two reports strictly between none and
   * all, rising. Each run deletes 1,500 rows in batches with pauses the cleanup enforces (30 x 100 ms, or
   * 50 x 200 ms), so its deletes last longer than the 1 s in which the driver persists and reports progress.
   */
  static void assertRisingDeletes(List<Long> deleted, long total, Object context) {
    List<Long> between = deleted.stream().filter(n -> n > 0 && n < total).toList();
    assertTrue(between.size() >= 2, () -> "progress while deleting, rising: " + deleted + "\n" + context);
    for (int i = 1; i < between.size(); i++) {
      assertTrue(between.get(i) > between.get(i - 1), () -> "rising: " + deleted + "\n" + context);
    }
  }

  @Test
  void cleanupShowsProgressInJsonLinesAndResume() throws Exception {
    // --json move: CLEANING_UP records with rising counts before the final record.
    Result json = h.run("--json", "move", "users", "0..1500", "--to", "s3", "--split", "--id", "cj",
        "--cleanup-grace", "0", "--cleanup-batch-rows", "50", "--cleanup-pause", "100ms");
    assertEquals(0, json.code(), json::toString);
    List<Migration> cj = cleaningUp(json.err());
    assertRisingDeletes(cj.stream().map(Migration::getRowsDeleted).toList(), 1_500, json);
    List<String> lines = json.err().lines().toList();
    assertEquals(MigrationState.MIGRATION_STATE_DONE, parse(lines.get(lines.size() - 1)).getState());
    assertEquals(1_500, parse(json.out()).getRowsDeleted());

    // resume --json of a detached move: the same.
    Result detached = h.run("move", "users", "-1500..0", "--to", "s3", "--split", "--id", "cr", "--detach",
        "--cleanup-grace", "0", "--cleanup-batch-rows", "50", "--cleanup-pause", "100ms");
    assertEquals(0, detached.code(), detached::toString);
    Result resumed = h.run("--json", "resume", "cr");
    assertEquals(0, resumed.code(), resumed::toString);
    assertRisingDeletes(cleaningUp(resumed.err()).stream().map(Migration::getRowsDeleted).toList(), 1_500, resumed);
    assertEquals(MigrationState.MIGRATION_STATE_DONE, parse(resumed.out()).getState());

    // --progress lines: within cleaning-up a line at most every 5 s, so a cleanup of 50 x 200 ms shows at
    // least its first line and one 5 s later, with a higher count.
    Result text = h.run("--progress", "lines", "move", "users", "1500..", "--to", "s3", "--split", "--id", "cl",
        "--cleanup-grace", "0", "--cleanup-batch-rows", "30", "--cleanup-pause", "200ms");
    assertEquals(0, text.code(), text::toString);
    List<Long> deleted = new ArrayList<>();
    java.util.regex.Pattern p = java.util.regex.Pattern.compile("^cl cleaning-up .*; ([0-9,]+) source rows deleted");
    for (String line : text.err().lines().toList()) {
      java.util.regex.Matcher m = p.matcher(line);
      if (m.find()) {
        deleted.add(Long.parseLong(m.group(1).replace(",", "")));
      }
    }
    assertEquals(0L, deleted.get(0), text::toString);
    assertTrue(deleted.size() >= 2 && deleted.get(deleted.size() - 1) > 0 && deleted.get(deleted.size() - 1) < 1_500,
        () -> "a cleaning-up line while deleting: " + deleted + "\n" + text);
  }

  @Test
  void refusalsExitWithTheirCodeNameTheFieldAndWriteNothing() throws Exception {
    record Case(int exit, String message, String... args) {}
    List<Case> cases = List.of(
        new Case(3, "NOT_FOUND: keyspace: no keyspace 'nope'", "move", "nope", "0..10", "--to", "s3"),
        new Case(3, "NOT_FOUND: target: no shard 's9'", "move", "users", "0..", "--to", "s9"),
        new Case(4, "FAILED_PRECONDITION: target: shard 's2' already owns range 0..", "move", "users", "0..", "--to",
            "s2"),
        new Case(4, "FAILED_PRECONDITION: target: shard 's1' already owns range ..0", "move", "users", "..0", "--to",
            "s1"),
        new Case(3, "NOT_FOUND: range: 10..20 is not a range", "move", "users", "10..20", "--to", "s3"),
        new Case(3, "NOT_FOUND: range: -100..-50 is not a range", "move", "users", "-100..-50", "--to", "s3"),
        new Case(4, "FAILED_PRECONDITION: tables: table ghost_", "move", "ghosts", "0..", "--to", "s3"),
        new Case(2, "INVALID_ARGUMENT: range: 'abc' is not a 64-bit integer", "move", "users", "abc..", "--to", "s3"),
        new Case(2, "usage: Invalid value for option '--pause-budget': 'fast' is not a duration", "move", "users",
            "0..", "--to", "s3", "--pause-budget", "fast"),
        // Zero is refused by the shared duration grammar (the option does not say what 0 means), before the API
        // would refuse it as out of range.
        new Case(2, "usage: Invalid value for option '--pause-budget': '0ms' is zero; this option takes a positive",
            "move", "users", "0..", "--to", "s3", "--pause-budget", "0ms"),
        new Case(2, "usage: invalid value for option '--pause-budget': pauseBudget: must be between", "move", "users",
            "0..", "--to", "s3", "--pause-budget", "2m"),
        new Case(2, "usage: invalid value for option '--chunk-rows': chunkRows: must be 1 to", "move", "users", "0..",
            "--to", "s3", "--chunk-rows", "0"),
        new Case(2, "usage: invalid value for option '--id': id: 1 to 40 of lower-case", "move", "users", "0..", "--to",
            "s3", "--id", "Bad-Id"),
        new Case(2, "usage: --to SHARD is required (but with --ring-leave)", "move", "users", "0.."),
        new Case(2, "usage: give exactly one of RANGE, --bucket, --ring-join", "move", "users", "--to", "s3"),
        new Case(2, "usage: give exactly one of RANGE, --bucket, --ring-join", "move", "users", "0..", "--bucket", "1",
            "--to", "s3"),
        new Case(2, "usage: invalid value for option '--bucket': bucket: must not be negative", "move", "users",
            "--bucket", "-1", "--to", "s3"),
        new Case(4, "FAILED_PRECONDITION: bucket: keyspace 'users' uses STRATEGY_RANGE", "move", "users",
            "--bucket", "1", "--to", "s3"),
        new Case(2, "usage: Unknown option: '--bogus'", "move", "users", "0..", "--to", "s3", "--bogus"),
        // reshard takes move's tuning options and checks them before its first move.
        new Case(2, "usage: invalid value for option '--chunk-rows': chunkRows: must be 1 to", "reshard", "users",
            "--add", "s3", "--chunk-rows", "0"),
        new Case(2, "usage: invalid value for option '--cleanup-pause': (--cleanup-pause) cleanupPause: must be",
            "reshard", "users", "--add", "s3", "--cleanup-pause", "11s"),
        new Case(2, "usage: invalid value for option '--parallel': must be 1 to 64", "worker", "--parallel", "0"),
        new Case(3, "NOT_FOUND: id: no migration 'nope'", "status", "nope"),
        new Case(3, "NOT_FOUND: id: no migration 'nope'", "resume", "nope"),
        new Case(3, "NOT_FOUND: id: no migration 'nope'", "cancel", "nope"));
    for (Case c : cases) {
      Result r = h.run(c.args());
      assertEquals(c.exit(), r.code(), () -> String.join(" ", c.args()) + "\n" + r);
      assertTrue(r.err().startsWith("error: " + c.message()), () -> String.join(" ", c.args()) + "\n" + r);
      assertEquals("", r.out(), () -> String.join(" ", c.args()) + "\n" + r);
    }
    assertEquals(List.of(), listJson(), "no refused move was recorded");
    assertEquals(0, h.count(2, -1_000_000, 1_000_000), "nothing was copied");
  }

  @Test
  void detachRecordsTheMoveAndCancelUndoesIt() throws Exception {
    Result r = h.run("move", "users", "100..200", "--to", "s3", "--split", "--id", "c1", "--detach");
    assertEquals(0, r.code(), r::toString);
    assertEquals("c1\n", r.out());
    assertTrue(r.err().contains("migrator resume c1"), r::toString);
    assertEquals(MigrationState.MIGRATION_STATE_PLANNED, statusJson("c1").getState());
    Result again = h.run("move", "users", "100..200", "--to", "s3", "--id", "c2", "--detach");
    assertEquals(4, again.code(), again::toString);
    assertTrue(again.err().contains("is already being moved by migration 'c1'"), again::toString);

    Result cancel = h.run("cancel", "c1");
    assertEquals(0, cancel.code(), cancel::toString);
    assertTrue(cancel.out().contains("c1  users     100..200  s2->s3  cancelled"), cancel::toString);
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, statusJson("c1").getState());
    assertEquals(0, cancel.code());
    Result twice = h.run("cancel", "c1");
    assertEquals(0, twice.code(), twice::toString);

    // resume (and move) of a migration that ended cancelled: exit 6.
    Result resume = h.run("resume", "c1");
    assertEquals(6, resume.code(), resume::toString);
    assertTrue(resume.err().contains("error: CANCELLED: migration 'c1' ended cancelled"), resume::toString);
    assertTrue(resume.err().contains("s2 still owns range 100..200 of users"), resume::toString);

    // A cancel request without waiting; the next drive undoes the move.
    assertEquals(0, h.run("move", "users", "100..200", "--to", "s3", "--id", "c3", "--detach").code());
    Result noWait = h.run("cancel", "c3", "--no-wait");
    assertEquals(0, noWait.code(), noWait::toString);
    assertEquals("c3 planned, cancel requested\n", noWait.out());
    assertTrue(statusJson("c3").getCancelRequested());
    Result drive = h.run("resume", "c3");
    assertEquals(6, drive.code(), drive::toString);
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, statusJson("c3").getState());
    assertEquals(0, h.count(2, 100, 200), "the target holds nothing of a cancelled move");
    assertEquals(100, h.count(1, 100, 200));
  }

  @Test
  void resumeReportsALiveOwnerCancelFollowsItAndAWorkerDrivesDetachedMoves() throws Exception {
    assertEquals(0, h.run("move", "users", "0..500", "--to", "s3", "--split", "--id", "held", "--detach",
        "--cleanup-grace", "0").code());
    CountDownLatch holding = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    AtomicReference<Object> outcome = new AtomicReference<>();
    Thread holder = new Thread(() -> {
      try (Migrator m = Migrator.open(h.migratorOptions().workerName("holder").build())) {
        outcome.set(m.drive("held", p -> {
          holding.countDown();
          try {
            release.await();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }, Duration.ofSeconds(5)));
      } catch (Throwable t) {
        outcome.set(t);
      }
    });
    holder.start();
    assertTrue(holding.await(60, TimeUnit.SECONDS), "the holder drives it");

    Result status = h.run("status", "held");
    assertEquals(0, status.code(), status::toString);
    assertTrue(status.out().lines().anyMatch(l -> l.startsWith("owner") && l.endsWith("holder")), status::toString);
    long start = System.nanoTime();
    Result resume = h.run("resume", "held", "--wait-for-owner", "3s");
    long ms = (System.nanoTime() - start) / 1_000_000;
    assertEquals(7, resume.code(), resume::toString);
    assertTrue(resume.err().contains("error: ABORTED: id: migration 'held' is held by worker 'holder', which is alive"),
        resume::toString);
    assertTrue(ms >= 3_000, "waited for the owner's lease first: " + ms + " ms");

    // cancel follows the worker that holds the migration until that worker has undone it.
    AtomicReference<Result> cancel = new AtomicReference<>();
    Thread canceller = new Thread(() -> cancel.set(h.run("cancel", "held")));
    canceller.start();
    try (Migrator m = Migrator.open(h.migratorOptions().build())) {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!m.status("held").getCancelRequested() && System.nanoTime() < until) {
        Thread.sleep(20);
      }
      assertTrue(m.status("held").getCancelRequested());
    }
    release.countDown();
    holder.join(120_000);
    canceller.join(120_000);
    assertTrue(outcome.get() instanceof Migration, () -> String.valueOf(outcome.get()));
    assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, ((Migration) outcome.get()).getState());
    assertEquals(0, cancel.get().code(), cancel.get()::toString);
    assertTrue(cancel.get().err().contains("(driven by worker holder)"), cancel.get()::toString);
    assertTrue(cancel.get().err().contains("held cancelled "), cancel.get()::toString);
    assertEquals(0, h.count(2, 0, 500), "the cancelled move left nothing on the target");

    // Two detached moves, run by a worker until it is signalled.
    assertEquals(0, h.run("move", "users", "-1000..-500", "--to", "s3", "--split", "--id", "w1", "--detach",
        "--cleanup-grace", "0").code());
    assertEquals(0, h.run("move", "users", "2000..2500", "--to", "s1", "--split", "--id", "w2", "--detach",
        "--cleanup-grace", "0").code());
    AtomicReference<Result> worker = new AtomicReference<>();
    Thread t = new Thread(() -> worker.set(h.run("worker", "--parallel", "2", "--worker-name", "wk",
        "--retry-delay", "1s")));
    t.start();
    try (Migrator m = Migrator.open(h.migratorOptions().build())) {
      Await.until(Duration.ofSeconds(120), "w1 and w2 done",
          () -> m.status("w1").getState() == MigrationState.MIGRATION_STATE_DONE
              && m.status("w2").getState() == MigrationState.MIGRATION_STATE_DONE);
    }
    assertEquals(MigrationState.MIGRATION_STATE_DONE, statusJson("w1").getState());
    assertEquals(MigrationState.MIGRATION_STATE_DONE, statusJson("w2").getState());
    assertTrue(h.signal(15), "the worker listens for signals");
    t.join(60_000);
    assertFalse(t.isAlive(), "the worker stopped");
    assertEquals(0, worker.get().code(), worker.get()::toString);
    assertTrue(worker.get().err().contains("worker wk: SIGTERM: stopping"), worker.get()::toString);
    assertTrue(worker.get().err().endsWith("worker wk: stopped\n"), worker.get()::toString);
    assertEquals(500, h.count(2, -1000, -500));
    assertEquals(500, h.count(0, 2000, 2500));
  }

  @Test
  void aSignalStopsAForegroundMoveAtAStepAndResumeFinishesIt() throws Exception {
    AtomicReference<Result> move = new AtomicReference<>();
    Thread t = new Thread(() -> move.set(h.run("move", "users", "0..3000", "--to", "s3", "--split", "--id", "fg",
        "--chunk-rows", "10", "--cleanup-grace", "0")));
    t.start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    Migration seen = null;
    try (Migrator m = Migrator.open(h.migratorOptions().build())) {
      while (System.nanoTime() < deadline) {
        seen = m.list().stream().filter(x -> x.getId().equals("fg")).findFirst().orElse(null);
        if (seen != null && seen.getState() == MigrationState.MIGRATION_STATE_COPYING && seen.getRowsCopied() > 0) {
          break;
        }
        Thread.sleep(5);
      }
    }
    assertTrue(seen != null && seen.getState() == MigrationState.MIGRATION_STATE_COPYING, String.valueOf(seen));
    assertTrue(h.signal(2));
    t.join(60_000);
    Result r = move.get();
    assertEquals(130, r.code(), r::toString);
    assertTrue(r.err().contains("stopping after the current step"), r::toString);
    assertTrue(r.err().contains("error: stopped: stopped by SIGINT: migration 'fg' is copying and was handed back"),
        r::toString);
    Migration stopped = statusJson("fg");
    assertEquals(MigrationState.MIGRATION_STATE_COPYING, stopped.getState());
    assertEquals("", stopped.getOwner(), "handed back at once, not left to its lease");
    assertTrue(stopped.getRowsCopied() < 3000, stopped::toString);

    Result resume = h.run("resume", "fg");
    assertEquals(0, resume.code(), resume::toString);
    assertEquals(MigrationState.MIGRATION_STATE_DONE, statusJson("fg").getState());
    assertEquals(3000, h.count(2, 0, 3000));
    assertEquals(0, h.count(1, 0, 3000));
  }

  @Test
  void aSignalledWorkerLetsItsDriveEndItsStepAndHandsTheMigrationBack() throws Exception {
    assertEquals(0, h.run("move", "users", "0..3000", "--to", "s3", "--split", "--id", "wk1", "--chunk-rows", "10",
        "--cleanup-grace", "0", "--detach").code());
    AtomicReference<Result> worker = new AtomicReference<>();
    Thread t = new Thread(() -> worker.set(h.run("worker", "--worker-name", "wk", "--drain-timeout", "60s")));
    t.start();
    Migration seen = null;
    try (Migrator m = Migrator.open(h.migratorOptions().build())) {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (System.nanoTime() < deadline) {
        seen = m.status("wk1");
        if (seen.getState() == MigrationState.MIGRATION_STATE_COPYING && seen.getRowsCopied() > 0) {
          break;
        }
        Thread.sleep(5);
      }
    } finally {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!h.signal(15) && System.nanoTime() < deadline) {
        Thread.sleep(10); // the worker installs its handler once it reached etcd
      }
      t.join(90_000);
    }
    assertTrue(seen != null && seen.getState() == MigrationState.MIGRATION_STATE_COPYING, String.valueOf(seen));
    assertFalse(t.isAlive(), "the worker stopped");
    Result r = worker.get();
    assertEquals(0, r.code(), r::toString);
    assertTrue(r.err().endsWith("worker wk: stopped\n"), r::toString);
    assertFalse(r.err().contains("still driving"), r::toString);
    Migration stopped = statusJson("wk1");
    assertEquals(MigrationState.MIGRATION_STATE_COPYING, stopped.getState(), stopped::toString);
    assertEquals("", stopped.getOwner(), "handed back at once, not left to its lease");
    assertTrue(stopped.getRowsCopied() < 3000, stopped::toString);

    Result resume = h.run("resume", "wk1", "--wait-for-owner", "0");
    assertEquals(0, resume.code(), resume::toString);
    assertEquals(3000, h.count(2, 0, 3000));
    assertEquals(0, h.count(1, 0, 3000));
  }

  @Test
  void etcdAndOptionProblems() throws Exception {
    Map<String, String> env = h.env();
    env.put("SHARDMAP_ETCD", "http://127.0.0.1:1");
    long start = System.nanoTime();
    Result down = h.runRaw(env, "--etcd-timeout", "1s", "--etcd-retry-for", "2s", "list");
    assertEquals(5, down.code(), down::toString);
    assertTrue(down.err().startsWith("error: UNAVAILABLE: listing migrations: "), down::toString);
    assertTrue(down.err().matches("(?s).* \\(\\d+ attempts over \\d+ ms\\)\n"), down::toString);
    assertTrue((System.nanoTime() - start) / 1_000_000 < 20_000);
    Result retryTooLong = h.run("--etcd-retry-for", "2h", "list");
    assertEquals(2, retryTooLong.code(), retryTooLong::toString);
    assertTrue(retryTooLong.err().startsWith("error: usage: invalid value for option '--etcd-retry-for': "
        + "etcdRetryFor: must be 0 to 1h"), retryTooLong::toString);

    Result badUrl = h.run("--etcd", "127.0.0.1:2379", "list");
    assertEquals(2, badUrl.code(), badUrl::toString);
    assertTrue(badUrl.err().startsWith("error: usage: invalid value for option '--etcd': endpoints:"),
        badUrl::toString);

    Result noFile = h.run("--pg-password-file", "/nonexistent/pw", "list");
    assertEquals(2, noFile.code(), noFile::toString);
    assertTrue(noFile.err().startsWith("error: usage: invalid value for option '--pg-password-file'"),
        noFile::toString);

    Result help = h.run("move", "--help");
    assertEquals(0, help.code(), help::toString);
    assertTrue(help.out().contains("--pause-budget") && help.out().contains("Exit codes"), help::toString);
  }
}
