package io.shardmap.migrator;

import io.shardmap.client.ShardRoute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The {@code migrator} command line in a process of its own (its main class on this test's class path),
 * killed with SIGKILL while it drives a move — mid-copy, in the cutover, in the cleanup after the owner
 * switch — under SDK writers; a worker in this process resumes each move once the dead one's lease has
 * expired, and every move ends as an uninterrupted one would.
 */
@Tag("fault")
@Timeout(150)
class MigrationProcessKillTest {
  MoveHarness h;
  final List<Process> children = new ArrayList<>();
  final java.util.Map<Process, Path> logs = new java.util.HashMap<>();

  @BeforeEach
  void setUp() throws Exception {
    h = new MoveHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      for (Process p : children) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        Files.deleteIfExists(logs.get(p));
      }
    } finally {
      h.close();
    }
  }

  /** Starts {@code migrator move KS RANGE --to s3 --split ...} as a child JVM named worker "child". */
  private Process startMove(String id, String range, String... options) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
        "io.shardmap.migrator.cli.MigratorCli",
        // A fresh JVM's first etcd call (class loading, channel setup) took over the default 5 s on a
        // loaded CI machine; the kill points do not depend on this timeout.
        "--etcd", String.join(",", h.etcd.clientEndpoints()), "--etcd-prefix", h.prefix, "--lease-ttl", "2s",
        "--etcd-timeout", "30s",
        "--worker-name", "child", "--progress", "none",
        "move", MoveHarness.KS, range, "--to", "s3", "--split", "--id", id,
        // What is checked here is the resume after a kill, not the pause budget (MigrationPauseBudgetTest):
        // on a loaded CI machine the default 100 ms cancelled a move after 5 attempts that took 42 ms.
        "--pause-budget", "2s"));
    cmd.addAll(List.of(options));
    Path log = Files.createTempFile("migrator-" + id + "-", ".log");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("PGUSER", h.pg.shard(0).user());
    String password = h.pg.shard(0).password();
    if (password != null && !password.isEmpty()) {
      pb.environment().put("PGPASSWORD", password);
    } else {
      pb.environment().remove("PGPASSWORD");
    }
    Process p = pb.start();
    children.add(p);
    logs.put(p, log);
    return p;
  }

  /** What a child printed (its stdout and stderr), for failure messages. */
  private String output(Process p) {
    try {
      return Files.readString(logs.get(p));
    } catch (java.io.IOException | RuntimeException e) {
      return "(no output: " + e + ")";
    }
  }

  /** Polls the migration's record (bounded) until {@code until} holds; fails if the child exits first. */
  private Migration await(Migrator m, Process child, String id, Predicate<Migration> until, String what)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
    while (System.nanoTime() < deadline) {
      Migration s = m.list().stream().filter(x -> x.getId().equals(id)).findFirst().orElse(null);
      if (s != null && until.test(s)) {
        return s;
      }
      assertTrue(child.isAlive(), () -> id + ": the child exited (" + child.exitValue() + ") before " + what + ":\n"
          + output(child));
      Thread.sleep(5);
    }
    throw new AssertionError(id + ": not " + what + " within 40 s:\n" + output(child));
  }

  /** SIGKILL, as a crash or `kill -9` would end it: no step boundary, no release, no revoked lease. */
  private static void kill(Process child) throws Exception {
    child.destroyForcibly();
    assertTrue(child.waitFor(10, TimeUnit.SECONDS));
    assertEquals(128 + 9, child.exitValue(), "the child died of SIGKILL");
  }

  /** Resumes {@code id} here once the child's lease expired and checks the move ended as MigrationTest's. */
  private void resumeAndCheck(Migrator second, String id, long lo, long hi, long epochBefore) throws Exception {
    assertEquals("child", second.status(id).getOwner(), id + ": the dead child's lease still holds it");
    Migration done = second.drive(id, p -> { }, Duration.ofSeconds(15));
    assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
    ShardRoute r = h.client.route(MoveHarness.KS, lo);
    assertEquals("s3", r.shard(), id);
    assertEquals(epochBefore + 1, r.epoch(), id + ": the range's epoch grew by one");
    assertEquals("s2", h.client.route(MoveHarness.KS, hi).shard(), id);
    assertEquals(0, h.rows(1, lo, hi).size(), id + ": the source keeps none of the range");
  }

  @Test
  void aMigratorProcessKilledMidMoveIsResumedByAnotherWorkerAndTheMovesEndTheSame() throws Exception {
    h.startWriters(3, Duration.ofSeconds(120));
    try (Migrator second = Migrator.open(h.migratorOptions().workerName("second").build())) {
      long epoch = h.client.route(MoveHarness.KS, 1_000).epoch();

      // 1. Killed mid-copy: small chunks keep it copying for a while.
      Process copying = startMove("k_copy", "1000..3000", "--chunk-rows", "50", "--cleanup-grace", "1s");
      await(second, copying, "k_copy", s -> s.getState() == MigrationState.MIGRATION_STATE_COPYING
          && s.getRowsCopied() > 0, "copying");
      kill(copying);
      Migration atKill = second.status("k_copy");
      assertTrue(atKill.getState() == MigrationState.MIGRATION_STATE_COPYING, atKill.toString());
      resumeAndCheck(second, "k_copy", 1_000, 3_000, epoch);

      // 2. Killed in the cutover: a transaction holding a lock the fence needs keeps every attempt from
      // fencing (the writers' own locks do not conflict with it), so the move waits in CUTTING_OVER.
      try (Connection blocker = h.pg.shard(1).connect()) {
        Process cutting = startMove("k_cut", "4000..6000", "--chunk-rows", "50", "--cleanup-grace", "1s",
            "--max-cutover-attempts", "50");
        // Capture is installed (its DDL would wait for the blocker too), and the cutover has not begun.
        Migration copying2 = await(second, cutting, "k_cut", s -> s.getState().getNumber()
            >= MigrationState.MIGRATION_STATE_COPYING_VALUE, "copying");
        assertTrue(copying2.getState().getNumber() < MigrationState.MIGRATION_STATE_CUTTING_OVER_VALUE,
            copying2::toString);
        blocker.setAutoCommit(false);
        blocker.createStatement().execute("LOCK TABLE " + h.table + " IN ROW EXCLUSIVE MODE");
        await(second, cutting, "k_cut", s -> s.getState() == MigrationState.MIGRATION_STATE_CUTTING_OVER,
            "cutting over");
        kill(cutting);
        blocker.rollback();
      }
      assertEquals(MigrationState.MIGRATION_STATE_CUTTING_OVER, second.status("k_cut").getState());
      assertEquals("s2", h.client.route(MoveHarness.KS, 4_000).shard(), "no cutover happened");
      resumeAndCheck(second, "k_cut", 4_000, 6_000, epoch);

      // 3. Killed after the owner switch, while deleting the source's rows (small batches, paused).
      Process cleaning = startMove("k_clean", "7000..8000", "--chunk-rows", "500", "--cleanup-grace", "0",
          "--cleanup-batch-rows", "50", "--cleanup-pause", "100ms");
      await(second, cleaning, "k_clean", s -> s.getState() == MigrationState.MIGRATION_STATE_CLEANING_UP,
          "cleaning up");
      kill(cleaning);
      assertEquals("s3", h.client.route(MoveHarness.KS, 7_000).shard(), "the owner switched before the kill");
      resumeAndCheck(second, "k_clean", 7_000, 8_000, epoch);

      Thread.sleep(200);
      h.stopWriters();
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      h.assertEveryAcknowledgedWriteOnItsOwner();
    }
  }
}
