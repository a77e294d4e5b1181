package io.shardmap.core.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link DecisionRows} on real PostgreSQL 15: a coordinator's COMMIT row and a resolver's ABORT row for the
 * same gid can never both stand, whichever comes first and however they interleave; the resolver waits for a
 * coordinator still deciding, within its lock timeout; an ABORT row outlives the transactions that began
 * before it.
 */
@Tag("integration")
@Timeout(120)
class DecisionRowsTest {
  static PostgresFixture fixture;
  static PgInstance pg;

  @BeforeAll
  static void start() throws SQLException {
    fixture = PostgresFixture.startNew(1);
    pg = fixture.shard(0);
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      for (int i = 0; i < 2; i++) { // the DDL runs again without error
        for (String ddl : DecisionRows.ddl()) {
          s.execute(ddl);
        }
      }
      s.execute("CREATE TABLE IF NOT EXISTS work (gid text PRIMARY KEY)");
    }
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  static TxnId gid() {
    return TxnId.random("test", "s1", "coord");
  }

  /** The coordinator's transaction on the decider: its work (a row of {@code work}) and its COMMIT row. */
  static Connection coordinator(TxnId id) throws SQLException {
    Connection c = pg.connect();
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      s.execute("INSERT INTO work VALUES ('" + id + "')");
    }
    DecisionRows.recordCommit(c, id, List.of("s2", "s3"));
    return c;
  }

  static boolean workCommitted(TxnId id) throws SQLException {
    try (Connection c = pg.connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM work WHERE gid = '" + id + "'")) {
      rs.next();
      return rs.getLong(1) == 1;
    }
  }

  static Optional<Decision> abort(TxnId id, Duration wait) throws SQLException {
    try (Connection c = pg.connect()) {
      return DecisionRows.decideAbort(c, id, wait);
    }
  }

  @Test
  void aResolverWaitsForACoordinatorStillDecidingAndItsCommitWins() throws Exception {
    TxnId id = gid();
    ExecutorService ex = Executors.newSingleThreadExecutor();
    try (Connection c = coordinator(id)) {
      Future<Optional<Decision>> resolver = ex.submit(() -> abort(id, Duration.ofSeconds(30)));
      awaitWaiting();
      assertFalse(resolver.isDone(), "the resolver waits on the coordinator's uncommitted row");
      c.commit();
      assertEquals(Optional.of(Decision.COMMIT), resolver.get(10, TimeUnit.SECONDS));
    } finally {
      ex.shutdownNow();
    }
    assertTrue(workCommitted(id));
    try (Connection c = pg.connect()) {
      assertEquals(Optional.of(Decision.COMMIT), DecisionRows.read(c, id));
    }
  }

  @Test
  void aCoordinatorThatDiesBeforeItsCommitLosesToTheResolversAbort() throws Exception {
    TxnId id = gid();
    ExecutorService ex = Executors.newSingleThreadExecutor();
    try (Connection c = coordinator(id)) {
      Future<Optional<Decision>> resolver = ex.submit(() -> abort(id, Duration.ofSeconds(30)));
      awaitWaiting();
      c.close(); // the session ends: PostgreSQL rolls its transaction back
      assertEquals(Optional.of(Decision.ABORT), resolver.get(10, TimeUnit.SECONDS));
    } finally {
      ex.shutdownNow();
    }
    assertFalse(workCommitted(id));
  }

  @Test
  void aCoordinatorLaterThanTheResolversAbortCannotCommit() throws SQLException {
    TxnId id = gid();
    try (Connection late = pg.connect()) {
      late.setAutoCommit(false);
      try (Statement s = late.createStatement()) {
        s.execute("INSERT INTO work VALUES ('" + id + "')"); // the work began before the abort
      }
      assertEquals(Optional.of(Decision.ABORT), abort(id, Duration.ofSeconds(5)));
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> DecisionRows.recordCommit(late, id, List.of("s2")));
      assertEquals(ErrorCode.ABORTED, e.code(), e.getMessage());
      late.commit(); // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK: nothing commits
    }
    assertFalse(workCommitted(id), "the late coordinator's work did not commit");
    assertEquals(Optional.of(Decision.ABORT), abort(id, Duration.ofSeconds(5)), "the decision stands");
  }

  @Test
  void aResolverOutOfPatienceDecidesNothing() throws Exception {
    TxnId id = gid();
    try (Connection c = coordinator(id)) {
      assertEquals(Optional.empty(), abort(id, Duration.ofMillis(200)));
      c.commit();
    }
    try (Connection c = pg.connect()) {
      assertEquals(Optional.of(Decision.COMMIT), DecisionRows.read(c, id));
    }
  }

  @Test
  void anAbortRowOutlivesTransactionsThatBeganBeforeItAndACommitRowGoesAtOnce() throws SQLException {
    TxnId aborted = gid();
    TxnId committed = gid();
    try (Connection c = coordinator(committed)) {
      c.commit();
    }
    try (Connection old = pg.connect(); Connection c = pg.connect()) {
      old.setAutoCommit(false);
      try (Statement s = old.createStatement()) {
        s.execute("SELECT 1 FROM work LIMIT 1"); // a transaction open since before the abort
      }
      assertEquals(Optional.of(Decision.ABORT), abort(aborted, Duration.ofSeconds(5)));
      assertFalse(DecisionRows.forget(c, aborted), "an older transaction could still be its coordinator");
      assertTrue(DecisionRows.forget(c, committed));
      assertFalse(DecisionRows.forget(c, committed), "forgotten already");
      old.rollback();
      assertTrue(DecisionRows.forget(c, aborted));
      assertEquals(Optional.empty(), DecisionRows.read(c, aborted));
    }
  }

  /**
   * Coordinators' first commits on a shard without the table install it at once: PostgreSQL's CREATE ... IF
   * NOT EXISTS and GRANT fail when run concurrently, so install() serializes them. Eight sessions, released
   * together, several rounds on fresh databases: every install succeeds.
   */
  @Test
  void concurrentInstallsAllSucceed() throws Exception {
    for (int round = 0; round < 4; round++) {
      String db = "install_race_" + round;
      pg.exec("DROP DATABASE IF EXISTS " + db);
      pg.exec("CREATE DATABASE " + db);
      PgInstance other = new PgInstance(pg.host(), pg.port(), db, pg.user(), pg.password());
      java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(8);
      java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(8);
      List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        fs.add(pool.submit(() -> {
          try (Connection c = other.connect()) {
            start.await(30, TimeUnit.SECONDS);
            DecisionRows.install(c);
            assertTrue(DecisionRows.installed(c));
          }
          return null;
        }));
      }
      try {
        for (java.util.concurrent.Future<?> f : fs) {
          f.get(60, TimeUnit.SECONDS);
        }
      } finally {
        pool.shutdownNow();
      }
      pg.exec("DROP DATABASE " + db);
    }
  }

  @Test
  void misuseIsRefusedBeforeAnythingIsWritten() throws SQLException {
    TxnId id = gid();
    try (Connection c = pg.connect()) {
      assertThrows(IllegalStateException.class, () -> DecisionRows.recordCommit(c, id, List.of("s2")));
      c.setAutoCommit(false);
      assertThrows(IllegalStateException.class, () -> DecisionRows.decideAbort(c, id, Duration.ofSeconds(1)));
      ShardmapException e = assertThrows(ShardmapException.class, () -> DecisionRows.recordCommit(c, id, List.of()));
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      c.rollback();
      assertEquals(Optional.empty(), DecisionRows.read(c, id));
    }
  }

  /**
   * Coordinators and resolvers racing on many gids, each resolver starting at a random moment of the
   * coordinator's transaction: for every gid, the coordinator's work committed exactly when the decision
   * that stands is COMMIT, and every resolver that decided saw that same decision.
   */
  @Test
  void racingCoordinatorsAndResolversNeverBothWin() throws Exception {
    ExecutorService ex = Executors.newFixedThreadPool(6);
    try {
      List<TxnId> ids = new ArrayList<>();
      List<CompletableFuture<Boolean>> commits = new ArrayList<>();
      List<List<Future<Optional<Decision>>>> resolutions = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        TxnId id = gid();
        ids.add(id);
        CountDownLatch begun = new CountDownLatch(1);
        // Odd gids: the resolvers come long after the coordinator's COMMIT row; even ones: long before it
        // (a coordinator too slow); the jitter makes the rest of the interleaving random.
        int slowCoordinator = i % 2 == 0 ? 60 : 0;
        int slowResolver = i % 2 == 0 ? 0 : 60;
        commits.add(CompletableFuture.supplyAsync(() -> {
          try (Connection c = pg.connect()) {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
              s.execute("INSERT INTO work VALUES ('" + id + "')");
            }
            begun.countDown();
            Thread.sleep(slowCoordinator + ThreadLocalRandom.current().nextInt(5));
            DecisionRows.recordCommit(c, id, List.of("s2"));
            Thread.sleep(ThreadLocalRandom.current().nextInt(5));
            c.commit();
            return true;
          } catch (ShardmapException e) {
            return false; // a resolver aborted first: the session's end rolls the work back
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        }, ex));
        List<Future<Optional<Decision>>> rs = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
          rs.add(ex.submit(() -> {
            begun.await(10, TimeUnit.SECONDS);
            Thread.sleep(slowResolver + ThreadLocalRandom.current().nextInt(8));
            return abort(id, Duration.ofSeconds(20));
          }));
        }
        resolutions.add(rs);
      }
      int commitsWon = 0;
      for (int i = 0; i < ids.size(); i++) {
        boolean committed = commits.get(i).get(60, TimeUnit.SECONDS);
        commitsWon += committed ? 1 : 0;
        Decision expected = committed ? Decision.COMMIT : Decision.ABORT;
        for (Future<Optional<Decision>> r : resolutions.get(i)) {
          assertEquals(Optional.of(expected), r.get(60, TimeUnit.SECONDS), ids.get(i).toString());
        }
        assertEquals(committed, workCommitted(ids.get(i)), ids.get(i) + ": work committed iff COMMIT stands");
      }
      assertTrue(commitsWon > 0 && commitsWon < ids.size(), "both orders were raced: " + commitsWon + " of "
          + ids.size() + " committed");
    } finally {
      ex.shutdownNow();
    }
  }

  /** Waits until some session waits on a transaction lock (the resolver behind the coordinator's row). */
  static void awaitWaiting() throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      while (System.nanoTime() < deadline) {
        try (ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")) {
          rs.next();
          if (rs.getLong(1) > 0) {
            return;
          }
        }
        Thread.sleep(20);
      }
    }
    throw new AssertionError("no session waited on a lock within 10 s");
  }
}
