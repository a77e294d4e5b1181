package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A move of a range under cross-shard transfer load (issue 13, "What must show it"): SDK threads transfer
 * between random accounts on different shards with {@code acrossShards}, half of them touching the moving
 * range, while the migrator moves that range (both sharded tables) from s2 to s3. Afterwards the move is
 * DONE, the bank's total is unchanged, every acknowledged transfer is applied on both sides, none on one side
 * only, every balance equals its ledger, no prepared transaction of the cluster remains, and nothing of the
 * range is left on s2.
 *
 * <p>The oracle is the acknowledged transfers, each with its own id in the ledger. A transfer that failed
 * with what the SDK reports as "nothing committed" (a deadlock, 40P01; the cross-shard lock timeout, 55P03;
 * ABORTED) runs again with the same id, so a failure that had in fact committed would show as a duplicate
 * ledger key. Any other failure leaves its transfer uncertain (and is reported): the ledger still tells
 * whether it applied, and it must have applied on both sides or neither.
 */
@Tag("consistency")
class MoveUnderCrossShardTransactionsTest {
  static final long LO = 2_000;
  static final long HI = 6_000;
  static final int THREADS = 4;

  record Transfer(long from, long to, long amount) {}

  @Test
  void aRangeMovesUnderTransfersAndTheBankBalances() throws Exception {
    try (BankFixture bank = new BankFixture()) {
      // One transfer first: the deciders' decision tables exist before the migrator's schema work starts.
      bank.transfer(BankFixture.account(0), BankFixture.account(BankFixture.ACCOUNTS - 1), 1, "warmup", () -> { });
      Map<String, Transfer> acknowledged = new ConcurrentHashMap<>();
      Map<String, Transfer> uncertain = new ConcurrentHashMap<>();
      List<String> unexpected = new CopyOnWriteArrayList<>();
      List<Throwable> errors = new CopyOnWriteArrayList<>();
      Map<String, AtomicLong> retried = new ConcurrentHashMap<>();
      AtomicLong reruns = new AtomicLong();
      AtomicLong rangeAcked = new AtomicLong();
      AtomicBoolean stop = new AtomicBoolean();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < THREADS; t++) {
        int me = t;
        Thread th = new Thread(() -> {
          SplittableRandom rnd = new SplittableRandom(31L * me + 7);
          for (int i = 0; i < 20_000 && !stop.get() && System.nanoTime() < deadline; i++) {
            // One account on s1's side and one on the other (s2, or s3 once the range moved); half the
            // time the latter is in the moving range. Either may be the debited one.
            long neg = BankFixture.account(rnd.nextInt(BankFixture.ACCOUNTS / 2));
            long pos = rnd.nextBoolean() ? LO + BankFixture.STEP * rnd.nextInt((int) ((HI - LO) / BankFixture.STEP))
                : BankFixture.account(BankFixture.ACCOUNTS / 2 + rnd.nextInt(BankFixture.ACCOUNTS / 2));
            boolean negFirst = rnd.nextBoolean();
            Transfer tr = new Transfer(negFirst ? neg : pos, negFirst ? pos : neg, 1 + rnd.nextInt(20));
            String tid = "t" + me + "-" + i;
            AtomicInteger runs = new AtomicInteger();
            while (!stop.get() && System.nanoTime() < deadline) {
              try {
                bank.transfer(tr.from(), tr.to(), tr.amount(), tid, runs::incrementAndGet);
                acknowledged.put(tid, tr);
                if (pos >= LO && pos < HI) {
                  rangeAcked.incrementAndGet();
                }
                break;
              } catch (SQLException e) {
                if (!"40P01".equals(e.getSQLState()) && !"55P03".equals(e.getSQLState())) {
                  uncertain.put(tid, tr);
                  unexpected.add(tid + ": SQLSTATE " + e.getSQLState() + " " + e.getMessage());
                  break;
                }
                retried.computeIfAbsent(e.getSQLState(), s -> new AtomicLong()).incrementAndGet();
              } catch (ShardmapException e) {
                if (e.code() != ErrorCode.ABORTED) {
                  uncertain.put(tid, tr);
                  unexpected.add(tid + ": " + e.code() + " " + e.getMessage());
                  break;
                }
                retried.computeIfAbsent("ABORTED", s -> new AtomicLong()).incrementAndGet();
              } catch (RuntimeException | Error e) {
                uncertain.put(tid, tr);
                errors.add(e);
                break;
              }
            }
            reruns.addAndGet(Math.max(0, runs.get() - 1));
          }
        }, "transfers-" + t);
        th.start();
        threads.add(th);
      }

      List<String> lastErrors = new CopyOnWriteArrayList<>();
      Migration done;
      long rangeAckedAtPlan;
      long rangeAckedAtDone;
      try (Migrator m = Migrator.open(bank.migratorOptions().build())) {
        Thread.sleep(300); // transfers under way before the move starts
        rangeAckedAtPlan = rangeAcked.get();
        m.plan(MoveSpec.builder().id("bank_move").keyspace(BankFixture.KS).range(LO + ".." + HI).target("s3")
            .split(true).chunkRows(10).pauseBudget(Duration.ofSeconds(1)).maxCutoverAttempts(20)
            .cleanupGrace(Duration.ofSeconds(2)).build());
        done = m.drive("bank_move", p -> {
          if (!p.getLastError().isEmpty() && !lastErrors.contains(p.getLastError())) {
            lastErrors.add(p.getLastError());
          }
        }, Duration.ofSeconds(5));
        rangeAckedAtDone = rangeAcked.get();
      }
      // Transfers of the moved range keep going on its new owner: wait for some (bounded), then stop.
      long moreBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (rangeAcked.get() < rangeAckedAtDone + 20 && System.nanoTime() < moreBy) {
        Thread.sleep(20);
      }
      stop.set(true);
      for (Thread th : threads) {
        th.join(60_000);
      }

      System.out.println("move of [" + LO + ", " + HI + ") under " + THREADS + " transfer threads: " + acknowledged.size()
          + " transfers acknowledged (" + rangeAcked.get() + " touching the range, " + (rangeAckedAtDone - rangeAckedAtPlan)
          + " during the move), " + reruns.get() + " reruns of a work (fenced range or lost connection), retried "
          + "after 'nothing committed': " + retried + "; cutover attempts " + done.getCutoverAttempts() + ", pause "
          + done.getPauseMs() + " ms (budget 1000 ms); deferrals: " + lastErrors);
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      assertEquals("s3", bank.client.route(BankFixture.KS, LO).shard());
      assertEquals("s3", bank.client.route(BankFixture.KS, HI - 1).shard());
      assertEquals("s2", bank.client.route(BankFixture.KS, HI).shard());
      assertTrue(errors.isEmpty(), () -> "transfer threads failed: " + errors);
      assertTrue(rangeAckedAtDone > rangeAckedAtPlan, "transfers of the range were acknowledged during the move");
      assertTrue(rangeAcked.get() >= rangeAckedAtDone + 20, "transfers of the range go on on its new owner: "
          + rangeAcked.get() + " vs " + rangeAckedAtDone + " when the move was done");

      Map<String, List<BankFixture.Entry>> ledger = bank.assertInvariants();
      for (Map.Entry<String, Transfer> e : acknowledged.entrySet()) {
        List<BankFixture.Entry> rows = ledger.get(e.getKey());
        Transfer tr = e.getValue();
        assertTrue(rows != null, "acknowledged transfer " + e.getKey() + " " + tr + " is applied nowhere");
        assertTrue(rows.stream().anyMatch(r -> r.id() == tr.from() && r.delta() == -tr.amount())
            && rows.stream().anyMatch(r -> r.id() == tr.to() && r.delta() == tr.amount()),
            "acknowledged transfer " + e.getKey() + " " + tr + " is in the ledger as " + rows);
      }
      for (String tid : ledger.keySet()) {
        assertTrue(tid.equals("warmup") || acknowledged.containsKey(tid) || uncertain.containsKey(tid),
            "transfer " + tid + " is applied but was never attempted");
      }
      assertEquals(List.of(), bank.preparedAnywhere(), "no prepared transaction of the cluster remains");
      assertEquals(List.of(), unexpected, "failures other than 'nothing committed' ones");

    }
  }
}
