package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The write-pause budget holds end to end under load: a cutover attempt that would overrun it is abandoned
 * before etcd's owner switch, with the source's fence rolled back (writers go on, the owner is unchanged),
 * and a later attempt cuts over within the budget. SDK writers of the moved range time every call, which
 * is the pause as a client sees it.
 */
@Tag("integration")
class MigrationPauseBudgetTest {
  static final long LO = 50_000;
  static final long HI = 51_000;
  static final Duration BUDGET = Duration.ofMillis(1_000);
  /** Longer than the budget: the first attempt's drain "takes" this long. */
  static final Duration STALL = Duration.ofMillis(1_300);

  MoveHarness h;

  @BeforeEach
  void setUp() throws Exception {
    h = new MoveHarness();
  }

  @AfterEach
  void tearDown() throws Exception {
    h.close();
  }

  /** One SDK call of the moved range: when it started and ended (System.nanoTime), and whether it failed. */
  record Call(long start, long end, boolean failed) {}

  @Test
  void anAttemptThatWouldOverrunTheBudgetIsAbandonedBeforeTheSwitchAndRetried() throws Exception {
    h.startWriters(3, Duration.ofSeconds(60));
    // Two writers of the moved range, on keys nobody else writes (the harness writes [-40000, 40000)).
    List<Call> calls = new CopyOnWriteArrayList<>();
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> rangeWriters = new ArrayList<>();
    for (int w = 0; w < 2; w++) {
      int me = w;
      Thread t = new Thread(() -> writeRange(me, stop, calls), "range-writer-" + w);
      t.start();
      rangeWriters.add(t);
    }
    AtomicInteger drainsSeen = new AtomicInteger();
    AtomicLong[] attemptStart = {new AtomicLong(), new AtomicLong()};
    List<String> atAbandon = new CopyOnWriteArrayList<>();
    List<String> errors = new CopyOnWriteArrayList<>();
    Consumer<String> faults = p -> {
      if (p.equals("cutting-over:caught-up")) {
        attemptStart[Math.min(1, drainsSeen.get())].set(System.nanoTime());
      }
      if (p.equals("cutting-over:drained") && drainsSeen.getAndIncrement() == 0) {
        sleep(STALL); // the final drain of the first attempt runs long: the commits no longer fit the budget
      }
      if (p.equals("cutting-over:abandoned")) {
        atAbandon.add(checkAbandoned());
      }
    };
    try (Migrator m = Migrator.open(h.migratorOptions().faultPoints(faults).build())) {
      Thread.sleep(300);
      m.plan(MoveSpec.builder().id("budget").keyspace(MoveHarness.KS).range(LO + ".." + HI).target("s3").split(true)
          .pauseBudget(BUDGET).maxCutoverAttempts(3).cleanupGrace(Duration.ofSeconds(3)).build());
      Migration done = m.drive("budget", p -> {
        if (!p.getLastError().isEmpty() && !errors.contains(p.getLastError())) {
          errors.add(p.getLastError());
        }
      }, Duration.ofSeconds(5));
      Thread.sleep(300);
      stop.set(true);
      for (Thread t : rangeWriters) {
        t.join(30_000);
      }
      h.stopWriters();

      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      assertEquals(List.of("abandoned: owner s2, no fence on the source, a write of the range went through"), atAbandon,
          "the first attempt was abandoned before the switch, with the source's fence lifted");
      assertTrue(errors.stream().anyMatch(e -> e.contains("abandoned before the owner switch")
          && e.contains("none was refused")), errors.toString());
      assertEquals(2, done.getCutoverAttempts(), "one abandoned attempt, then the one that cut over");
      assertTrue(done.getPauseMs() > 0 && done.getPauseMs() <= BUDGET.toMillis(),
          "the attempt that cut over stayed within the budget: " + done.getPauseMs() + " ms");
      assertEquals("s3", h.client.route(MoveHarness.KS, LO).shard());
      assertTrue(h.writerErrors.isEmpty(), () -> "writer errors: " + h.writerErrors);
      long failed = calls.stream().filter(Call::failed).count();
      assertEquals(0, failed, "no call of the moved range failed");
      assertTrue(calls.size() > 100, "the range's writers made progress: " + calls.size());
      h.assertEveryAcknowledgedWriteOnItsOwner();

      System.out.println("pause budget " + BUDGET.toMillis() + " ms: abandoned attempt's longest call "
          + longest(calls, attemptStart[0].get(), attemptStart[1].get()) + " ms (drain stalled " + STALL.toMillis()
          + " ms); attempt that cut over: migrator pause_ms=" + done.getPauseMs() + ", clients_routed_ms="
          + done.getClientsRoutedMs() + " (" + done.getClientsRoutedCount() + " clients), longest call of the range "
          + "from its start " + longest(calls, attemptStart[1].get(), Long.MAX_VALUE) + " ms; " + calls.size()
          + " calls of the range, " + failed + " failed; last error of the abandoned attempt: " + errors);
    }
  }

  /** Longest call (ms) that started in [from, to). */
  private static double longest(List<Call> calls, long from, long to) {
    return calls.stream().filter(c -> c.start() - from >= 0 && c.start() - to < 0)
        .mapToLong(c -> c.end() - c.start()).max().orElse(0) / 1e6;
  }

  /** Runs at the abandon point, on the migrator's thread: the owner, the source's fences, and a real write. */
  private String checkAbandoned() {
    try {
      String owner = h.client.route(MoveHarness.KS, LO).shard();
      boolean fenced;
      try (Connection c = h.pg.shard(1).connect()) {
        fenced = !Fences.fencesOn(c, h.table).isEmpty();
      }
      // On another thread, bounded: were the locks still held, the write would wait for this very thread.
      long k = HI - 1;
      long value = 7;
      Integer n = CompletableFuture.supplyAsync(() -> {
        try {
          return h.data.inTransaction(MoveHarness.KS, k, c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + h.table + " (id, v, payload) VALUES (?, ?, "
                + "'abandon') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v")) {
              ps.setLong(1, k);
              ps.setLong(2, value);
              return ps.executeUpdate();
            }
          });
        } catch (java.sql.SQLException e) {
          throw new IllegalStateException(e);
        }
      }).get(10, TimeUnit.SECONDS);
      h.model.put(k, value);
      return "abandoned: owner " + owner + ", " + (fenced ? "a fence left" : "no fence") + " on the source, "
          + (n == 1 ? "a write of the range went through" : "the write changed " + n + " rows");
    } catch (Exception e) {
      return "abandoned, but: " + e;
    }
  }

  /** Writer {@code me} of 2 writes keys LO + 2i + me (i < 100), upserts and deletes, timing every call. */
  private void writeRange(int me, AtomicBoolean stop, List<Call> calls) {
    java.util.SplittableRandom rnd = new java.util.SplittableRandom(me);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    long seq = 0;
    while (!stop.get() && System.nanoTime() < deadline && calls.size() < 200_000) {
      long k = LO + 2L * rnd.nextInt(100) + me;
      long value = ++seq;
      boolean delete = rnd.nextInt(5) == 0;
      long start = System.nanoTime();
      try {
        h.data.inTransaction(MoveHarness.KS, k, c -> {
          try (PreparedStatement ps = c.prepareStatement(delete ? "DELETE FROM " + h.table + " WHERE id = ?"
              : "INSERT INTO " + h.table + " (id, v, payload) VALUES (?, ?, 'r') ON CONFLICT (id) DO UPDATE SET v = "
                  + "EXCLUDED.v")) {
            ps.setLong(1, k);
            if (!delete) {
              ps.setLong(2, value);
            }
            return ps.executeUpdate();
          }
        });
        if (delete) {
          h.model.remove(k);
        } else {
          h.model.put(k, value);
        }
        h.uncertain.remove(k);
        calls.add(new Call(start, System.nanoTime(), false));
      } catch (Exception e) {
        h.uncertain.put(k, true);
        calls.add(new Call(start, System.nanoTime(), true));
      }
      sleep(Duration.ofMillis(2));
    }
  }

  private static void sleep(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
