package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.TxnId;
import io.shardmap.core.sql.PreparedTransactions;
import io.shardmap.migrator.internal.Fences;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Prepared transactions (two-phase commit's participants, issue 13) and a move of the range they write, on
 * real etcd and PostgreSQL. A prepared transaction keeps its locks, its table lock included, until COMMIT or
 * ROLLBACK PREPARED, and its writes are invisible until then:
 * <ul>
 *   <li>one prepared before the move holds the capture trigger's installation back (its DDL waits for the
 *       table lock, a bounded attempt at a time), so its write is either in the copy's snapshot or logged;
 *   <li>one prepared after capture is invisible to the copy, the catch-up and the verification; it holds
 *       the cutover's fence back for at most the lock wait the pause budget leaves (the attempt is then
 *       abandoned, the fence rolled back, and writers go on at the source), and once it is finished its write
 *       is logged and replayed by the next attempt's drain: nothing lost, on either table of the unit;
 *   <li>a cross-shard transaction whose work reaches the fenced unit is refused before anything is
 *       prepared, rolled back on every shard, and runs again on the new owner.
 * </ul>
 * The in-doubt transactions are made by the test (PREPARE on two shards, as a coordinator that died would
 * leave them), and the test finishes them itself, as the resolver would.
 */
@Tag("integration")
class PreparedTransactionsAndFencesTest {
  static final long LO = 2_000;
  static final long HI = 6_000;
  static final Duration BUDGET = Duration.ofMillis(1_000);
  static final Pattern LOCK_WAIT = Pattern.compile("the fence's table locks did not come within (\\d+) ms");

  /** Prepares, on shard {@code i}, the transfer's side of {@code id} as {@code gid}: a participant left in doubt. */
  private static void prepareSide(BankFixture bank, int i, long id, long delta, String tid, TxnId gid)
      throws SQLException {
    try (Connection c = bank.fixture.pg.shard(i).connect()) {
      c.setAutoCommit(false);
      bank.apply(c, id, delta, tid);
      PreparedTransactions.prepare(c, gid, BankFixture.SHARDS.get(i));
    }
  }

  /**
   * Finishes {@code gid} on shards s1 and s2 as the resolver would, by the decision {@code commit} (a shard
   * where it is not prepared answers NOT_FOUND, which changes nothing).
   */
  private static void finish(BankFixture bank, TxnId gid, boolean commit) throws SQLException {
    for (int i = 0; i < 2; i++) {
      try (Connection c = bank.fixture.pg.shard(i).connect()) {
        c.setAutoCommit(true);
        if (commit) {
          PreparedTransactions.commitPrepared(c, gid);
        } else {
          PreparedTransactions.rollbackPrepared(c, gid);
        }
      }
    }
  }

  private static MoveSpec spec(String id) {
    return MoveSpec.builder().id(id).keyspace(BankFixture.KS).range(LO + ".." + HI).target("s3").split(true)
        .chunkRows(10).pauseBudget(BUDGET).maxCutoverAttempts(6).cleanupGrace(Duration.ofSeconds(1)).build();
  }

  /**
   * Two transfers are left in doubt right after capture is installed, each prepared on s1 and on s2 (in the
   * range): the copy, the catch-up and the verification do not see them. Two cutover attempts find the
   * source's table locks held by them and are abandoned within the lock wait (at most the pause budget):
   * no fence stays, the owner is unchanged, and a transfer of another account of the range goes through.
   * Then one is committed and the other rolled back; the third attempt cuts over, and the committed one's
   * account update and ledger row are on the new owner, the rolled back one's nowhere.
   */
  @Test
  void aPreparedTransactionDefersTheCutoverWithinItsLockWaitAndItsWriteMovesOnceFinished() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      TxnId held = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      TxnId dropped = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      AtomicInteger attempts = new AtomicInteger();
      AtomicLong attemptStart = new AtomicLong();
      List<String> deferrals = new CopyOnWriteArrayList<>();
      List<String> checks = new CopyOnWriteArrayList<>();
      List<Throwable> errors = new CopyOnWriteArrayList<>();
      Consumer<String> faults = p -> {
        try {
          if (p.equals("preparing:captured")) {
            prepareSide(bank, 1, 3_000, 5, "held", held);
            prepareSide(bank, 0, -3_000, -5, "held", held);
            prepareSide(bank, 1, 3_100, 9, "dropped", dropped);
            prepareSide(bank, 0, -3_100, -9, "dropped", dropped);
          }
          if (p.equals("cutting-over:caught-up")) {
            attemptStart.set(System.nanoTime());
            if (attempts.incrementAndGet() == 3) {
              finish(bank, held, true);
              finish(bank, dropped, false);
            }
          }
        } catch (SQLException e) {
          errors.add(e);
        }
      };
      AtomicInteger transfers = new AtomicInteger();
      AtomicInteger attemptsSeen = new AtomicInteger();
      Consumer<Migration> progress = p -> {
        String e = p.getLastError();
        // One deferral per attempt counted (two may read alike, to the millisecond).
        if (e.isEmpty() || p.getCutoverAttempts() <= attemptsSeen.get()) {
          return;
        }
        attemptsSeen.set(p.getCutoverAttempts());
        deferrals.add(e);
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - attemptStart.get());
        // On the migrator's thread, before its backoff: the source as writers see it now.
        try (Connection c = bank.fixture.pg.shard(1).connect()) {
          String tid = "during-" + transfers.incrementAndGet();
          String shards = CompletableFuture.supplyAsync(() -> {
            try {
              return bank.transfer(3_200, -3_200, 1, tid, () -> { });
            } catch (SQLException x) {
              throw new IllegalStateException(x);
            }
          }).get(10, TimeUnit.SECONDS);
          checks.add("attempt " + attempts.get() + " (" + ms + " ms from caught-up to deferred): fences on s2 "
              + Fences.fencesOn(c, bank.accounts) + ", owner " + bank.client.route(BankFixture.KS, 3_000).shard()
              + ", prepared on s2 " + bank.prepared(1).size() + ", a transfer of the range went through on " + shards);
        } catch (Exception x) {
          errors.add(x);
        }
      };
      Migration done;
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(faults).build())) {
        m.plan(spec("held"));
        done = m.drive("held", progress, Duration.ofSeconds(5));
      }
      System.out.println("prepared transactions on the unit: " + checks + "; deferrals " + deferrals);

      assertEquals(List.of(), errors);
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      assertEquals(3, done.getCutoverAttempts(), "two attempts deferred by the prepared transactions, then the cutover");
      assertEquals(2, deferrals.size(), deferrals.toString());
      for (String d : deferrals) {
        Matcher w = LOCK_WAIT.matcher(d);
        assertTrue(w.find(), "deferred waiting for the table locks: " + d);
        assertTrue(Long.parseLong(w.group(1)) <= BUDGET.toMillis(), "the lock wait is bounded by the budget: " + d);
      }
      assertEquals(2, checks.size(), checks.toString());
      for (String c : checks) {
        assertTrue(c.contains("fences on s2 [], owner s2, prepared on s2 2, a transfer of the range went through on "
            + "s2,s1"), c);
      }
      assertEquals("s3", bank.client.route(BankFixture.KS, 3_000).shard());
      assertEquals(1_005L, bank.balanceOn(2, 3_000), "the committed transaction's write moved");
      assertEquals(995L, bank.balanceOn(0, -3_000));
      assertEquals(1_000L, bank.balanceOn(2, 3_100), "the rolled back one's did not appear");
      assertEquals(998L, bank.balanceOn(2, 3_200), "the transfers made while the cutover was deferred moved");
      Map<String, List<BankFixture.Entry>> ledger = bank.assertInvariants();
      assertEquals(2, ledger.get("held").size(), ledger.get("held").toString());
      assertFalse(ledger.containsKey("dropped"));
      assertEquals(List.of(), bank.preparedAnywhere());
    }
  }

  /**
   * A transfer prepared on s1 and s2 (in the range) before the move starts: the capture trigger cannot be
   * installed while it holds the table's lock (the migrator's DDL waits a bounded time per attempt and tries
   * again), so the move copies nothing before it is finished. Once committed, its write is in the copy.
   */
  @Test
  void aTransactionPreparedBeforeTheMoveHoldsTheCaptureBackAndItsWriteIsCopied() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      TxnId gid = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      prepareSide(bank, 1, 4_000, 11, "early", gid);
      prepareSide(bank, 0, -4_000, -11, "early", gid);
      AtomicBoolean captured = new AtomicBoolean();
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(p -> {
        if (p.equals("preparing:captured")) {
          captured.set(true);
        }
      }).build())) {
        m.plan(spec("early"));
        CompletableFuture<Migration> move = CompletableFuture.supplyAsync(() -> m.drive("early", p -> { },
            Duration.ofSeconds(5)));
        // The capture's DDL asks for the accounts table's lock and waits behind the prepared transaction.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        boolean waited = false;
        while (!waited && System.nanoTime() < deadline) {
          waited = waitingForLock(bank, bank.accounts);
          Thread.sleep(10);
        }
        assertTrue(waited, "the migrator waited for the accounts table's lock");
        assertFalse(captured.get(), "no capture while the transaction is prepared");
        assertFalse(move.isDone());
        assertEquals(List.of(gid.toString()), bank.prepared(1));
        finish(bank, gid, true);
        Migration done = move.get(60, TimeUnit.SECONDS);
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      }
      assertTrue(captured.get());
      assertEquals(1_011L, bank.balanceOn(2, 4_000), "the transaction's write was copied");
      assertEquals(989L, bank.balanceOn(0, -4_000));
      Map<String, List<BankFixture.Entry>> ledger = bank.assertInvariants();
      assertEquals(2, ledger.get("early").size(), ledger.get("early").toString());
      assertEquals(List.of(), bank.preparedAnywhere());
    }
  }

  /**
   * A transaction prepared on s2 that only locked a row of the range ({@code SELECT ... FOR UPDATE}, which
   * makes it a writer to the coordinator) holds no lock the fence waits for: the cutover goes through while
   * it is prepared. It wrote nothing, so nothing is lost; the cleanup on s2 waits for it (seen waiting for
   * the accounts table), and finishes once it is rolled back.
   */
  @Test
  void aPreparedTransactionThatOnlyLockedRowsDoesNotHoldTheFenceBackAndTheCleanupWaitsForIt() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      TxnId gid = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      List<String> atSwitch = new CopyOnWriteArrayList<>();
      List<Throwable> errors = new CopyOnWriteArrayList<>();
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(p -> {
        try {
          if (p.equals("preparing:captured")) {
            try (Connection c = bank.fixture.pg.shard(1).connect()) {
              c.setAutoCommit(false);
              try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT balance FROM "
                  + bank.accounts + " WHERE id = 3300 FOR UPDATE")) {
                assertTrue(rs.next());
              }
              PreparedTransactions.prepare(c, gid, "s2");
            }
          }
          if (p.equals("cutting-over:committed")) {
            atSwitch.addAll(bank.prepared(1));
          }
        } catch (SQLException e) {
          errors.add(e);
        }
      }).build())) {
        m.plan(spec("locked"));
        CompletableFuture<Migration> move = CompletableFuture.supplyAsync(() -> m.drive("locked", p -> { },
            Duration.ofSeconds(5)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        boolean waited = false;
        while (!waited && System.nanoTime() < deadline && !move.isDone()) {
          waited = !atSwitch.isEmpty() && waitingForLock(bank, bank.accounts);
          Thread.sleep(10);
        }
        assertEquals(List.of(), errors);
        assertEquals(List.of(gid.toString()), atSwitch, "the owner switched while the transaction was prepared");
        assertTrue(waited, "the cleanup waited for the prepared transaction's locks");
        assertFalse(move.isDone());
        finish(bank, gid, false);
        Migration done = move.get(60, TimeUnit.SECONDS);
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
        assertEquals(1, done.getCutoverAttempts(), "the fence did not wait for it");
      }
      assertEquals("s3", bank.client.route(BankFixture.KS, 3_300).shard());
      assertEquals(1_000L, bank.balanceOn(2, 3_300));
      bank.assertInvariants();
      assertEquals(List.of(), bank.preparedAnywhere());
    }
  }

  /**
   * A transaction prepared on s2 during the cleanup locks a row of the range that is still to be deleted
   * there (its coordinator gone). The cleanup's delete waits for it a bounded time per attempt, says why in
   * the record, and a stop asked meanwhile hands the migration back while the transaction is still prepared
   * (a delete waiting without a bound could not be stopped). Once it is rolled back, the move is driven
   * to DONE, and nothing of the range is left on s2.
   */
  @Test
  void aCleanupBehindAPreparedRowLockWaitsStoppablyAndFinishesOnceItEnds() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      TxnId gid = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      AtomicBoolean locked = new AtomicBoolean();
      AtomicBoolean stop = new AtomicBoolean();
      List<Throwable> errors = new CopyOnWriteArrayList<>();
      CountDownLatch waitShown = new CountDownLatch(1);
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(p -> {
        if (p.equals("cleaning-up:batch") && locked.compareAndSet(false, true)) {
          try (Connection c = bank.fixture.pg.shard(1).connect()) {
            c.setAutoCommit(false);
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT id FROM " + bank.accounts
                + " WHERE id >= " + LO + " AND id < " + HI + " ORDER BY id DESC LIMIT 1 FOR UPDATE")) {
              assertTrue(rs.next(), "a row of the range is left to delete");
            }
            PreparedTransactions.prepare(c, gid, "s2");
          } catch (SQLException e) {
            errors.add(e);
          }
        }
      }).build())) {
        m.plan(MoveSpec.builder().id("blocked").keyspace(BankFixture.KS).range(LO + ".." + HI).target("s3")
            .split(true).pauseBudget(BUDGET).cleanupGrace(Duration.ofSeconds(1)).cleanupBatch(10, Duration.ZERO)
            .build());
        CompletableFuture<Migration> first = CompletableFuture.supplyAsync(() -> m.drive("blocked", p -> {
          if (p.getLastError().startsWith("cleanup waits")) {
            waitShown.countDown();
          }
        }, Duration.ofSeconds(5), stop::get));
        assertTrue(waitShown.await(60, TimeUnit.SECONDS), "the cleanup said it waits");
        stop.set(true);
        Migration handedBack = first.get(30, TimeUnit.SECONDS);
        assertEquals(List.of(), errors);
        assertEquals(MigrationState.MIGRATION_STATE_CLEANING_UP, handedBack.getState(), handedBack.toString());
        assertTrue(handedBack.getLastError().startsWith("cleanup waits: a transaction holds a row lock of the moved "
            + "unit on source s2"), handedBack.getLastError());
        assertEquals(List.of(gid.toString()), bank.prepared(1), "handed back while the transaction is prepared");
        finish(bank, gid, false);
        Migration done = m.drive("blocked", p -> { }, Duration.ofSeconds(5));
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
        assertEquals("", done.getLastError());
      }
      bank.assertInvariants();
      assertEquals(List.of(), bank.preparedAnywhere());
    }
  }

  /**
   * A transfer left prepared after capture and never finished by the time the move runs out of cutover
   * attempts: the move is cancelled without ever fencing. The cancel's removal of the capture waits for the
   * prepared transaction (bounded DDL attempts); once it is committed the move ends CANCELLED, the range is
   * still s2's with the transfer applied there, and the target keeps nothing of it.
   */
  @Test
  void aPreparedTransactionHeldThroughEveryAttemptCancelsTheMoveCleanly() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      TxnId held = TxnId.random(bank.namespace, "s1", "dead-coordinator");
      List<Throwable> errors = new CopyOnWriteArrayList<>();
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(p -> {
        if (p.equals("preparing:captured")) {
          try {
            prepareSide(bank, 1, 3_000, 5, "held", held);
            prepareSide(bank, 0, -3_000, -5, "held", held);
          } catch (SQLException e) {
            errors.add(e);
          }
        }
      }).build())) {
        m.plan(MoveSpec.builder().id("given_up").keyspace(BankFixture.KS).range(LO + ".." + HI).target("s3")
            .split(true).chunkRows(10).pauseBudget(BUDGET).maxCutoverAttempts(2).build());
        CompletableFuture<Migration> move = CompletableFuture.supplyAsync(() -> m.drive("given_up", p -> { },
            Duration.ofSeconds(5)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        boolean waited = false;
        while (!waited && System.nanoTime() < deadline && !move.isDone()) {
          waited = m.status("given_up").getState() == MigrationState.MIGRATION_STATE_CANCELLING
              && waitingForLock(bank, bank.accounts);
          Thread.sleep(10);
        }
        assertEquals(List.of(), errors);
        assertTrue(waited, "the cancel waited for the prepared transaction");
        assertTrue(m.status("given_up").getLastError().contains("pause budget could not be met in 2 attempts"),
            m.status("given_up").getLastError());
        finish(bank, held, true);
        Migration end = move.get(60, TimeUnit.SECONDS);
        assertEquals(MigrationState.MIGRATION_STATE_CANCELLED, end.getState(), end.toString());
      }
      assertEquals("s2", bank.client.route(BankFixture.KS, 3_000).shard());
      assertEquals(1_005L, bank.balanceOn(1, 3_000), "the committed transfer is on the source, which kept the range");
      assertEquals(null, bank.balanceOn(2, 3_000), "the target keeps nothing of the range");
      Map<String, List<BankFixture.Entry>> ledger = bank.assertInvariants();
      assertEquals(List.of("s1", "s2"), ledger.get("held").stream().map(BankFixture.Entry::shard).sorted().toList());
      assertEquals(List.of(), bank.preparedAnywhere());
      try (Connection c = bank.fixture.pg.shard(1).connect()) {
        assertEquals(java.util.Set.of(), Fences.fencesOn(c, bank.accounts), "no fence is left on the source");
      }
    }
  }

  /** Whether a session on s2 waits for a lock on {@code table} right now. */
  private static boolean waitingForLock(BankFixture bank, String table) throws SQLException {
    try (Connection c = bank.fixture.pg.shard(1).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass('"
             + table + "')")) {
      rs.next();
      return rs.getLong(1) > 0;
    }
  }

  /**
   * A cross-shard transfer's first run writes on s1, takes its connection to s2 for an account of the range,
   * and writes there only once the move's fence has committed: s2 refuses, nothing was prepared, s1's write
   * is rolled back, and the work runs again once the map names s3. The transfer is applied once, on s1 and
   * s3; nothing stays prepared.
   */
  @Test
  void aCrossShardTransactionReachingTheFencedUnitAbortsEverywhereAndRunsAgainOnTheNewOwner() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      CountDownLatch fenced = new CountDownLatch(1);
      List<String> preparedAtRefusal = new CopyOnWriteArrayList<>();
      try (Migrator m = Migrator.open(bank.migratorOptions().faultPoints(p -> {
        if (p.equals("cutting-over:fence-committed")) {
          fenced.countDown();
        }
      }).build())) {
        m.plan(spec("fenced"));
        CompletableFuture<Migration> move = CompletableFuture.supplyAsync(() -> m.drive("fenced", p -> { },
            Duration.ofSeconds(5)));
        AtomicInteger runs = new AtomicInteger();
        List<String> runShards = new CopyOnWriteArrayList<>();
        String shards = bank.data.acrossShards(tx -> {
          int run = runs.incrementAndGet();
          bank.apply(tx, -5_000, 3, "fenced");
          Connection x = tx.connection(BankFixture.KS, 5_000);
          runShards.add(String.join(",", tx.shards()));
          if (run == 1) {
            try {
              assertTrue(fenced.await(60, TimeUnit.SECONDS), "the move fenced the range");
            } catch (InterruptedException e) {
              throw new IllegalStateException(e);
            }
          }
          try {
            bank.apply(x, 5_000, -3, "fenced");
          } catch (SQLException e) {
            preparedAtRefusal.addAll(bank.preparedAnywhere());
            throw e;
          }
          return String.join(",", tx.shards());
        });
        Migration done = move.get(60, TimeUnit.SECONDS);
        assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
        assertEquals(2, runs.get(), "run once against the fence, once on the new owner");
        assertEquals(List.of("s1,s2", "s1,s3"), runShards);
        assertEquals("s1,s3", shards);
      }
      assertEquals(List.of(), preparedAtRefusal, "the refusal came before anything was prepared");
      assertEquals(1_003L, bank.balanceOn(0, -5_000), "s1's write of the refused run was rolled back");
      assertEquals(997L, bank.balanceOn(2, 5_000));
      Map<String, List<BankFixture.Entry>> ledger = bank.assertInvariants();
      assertEquals(List.of("s1", "s3"), ledger.get("fenced").stream().map(BankFixture.Entry::shard).sorted().toList());
      assertEquals(List.of(), bank.preparedAnywhere());
    }
  }
}
