package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.client.QueryResult;
import io.shardmap.migrator.MoveHarness.Layout;
import io.shardmap.migrator.internal.RoutingFunctions;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A cross-shard {@code COUNT(*)} and {@code SUM} while a range, and a hash bucket, move under SDK writers:
 * rows exist on two shards during a move (copied to the target before the cutover, kept on the source until
 * cleanup), and every answer must still count each row exactly once.
 *
 * <p>The queries run on their own client whose watch stream reaches it 400 ms late (an application instance
 * whose map lags the writers' one, as any may), so queries pin maps from before a cutover that writers
 * already act on: without the per-part fence check (FenceGuard) they miss the rows written on the new owner.
 *
 * <p>The writers only insert new rows with positive values, so the count and the sum only grow: an answer
 * must lie between what the writers had acknowledged when the query started and what they had attempted when
 * it ended. At points of every phase of the move (the migrator's fault points: after capture, a copy chunk, a
 * catch-up round, a verify chunk, when caught up, after the fence commits, after etcd's switch, during
 * cleanup) the writers pause and drain, and a query started then must equal the acknowledged writes exactly.
 * At the fence-committed and switched points the client's map may not know the cutover yet: the part on the
 * source sees the fence in its snapshot and the query runs again at the newer map (the migrator goes on
 * meanwhile; the writers stay paused until the answer is checked).
 */
@Tag("consistency")
class CrossShardDuringMovesTest {
  /** The phases an exact check is made at (occurrences of chunk and round points are picked at random). */
  static final List<String> CHECK_POINTS = List.of("preparing:captured", "copying:chunk", "catching-up:round",
      "verifying:chunk", "cutting-over:caught-up", "cutting-over:fence-committed", "cutting-over:committed",
      "cleaning-up:batch");

  @Test
  void aRangeMoveCountsEveryRowOnce() throws Exception {
    try (MoveHarness h = new MoveHarness()) {
      run(h, MoveSpec.builder().id("r1").keyspace(MoveHarness.KS).range("10000..40000").target("s3").split(true)
          .chunkRows(1_000).cleanupGrace(Duration.ofMillis(500)).pauseBudget(Duration.ofSeconds(2)).build(),
          seq -> seq % 2 == 0 ? 15_000 + seq : -15_001 - seq);
    }
  }

  @Test
  void aHashBucketMoveCountsEveryRowOnce() throws Exception {
    try (MoveHarness h = new MoveHarness(Layout.HASH, false)) {
      // The ownership predicate of a hash keyspace calls the routing functions: the SDK never installs them
      // (docs/client-sdk.md), the migrator does on the shards it moves between; this fleet gets them on all.
      for (int i = 0; i < MoveHarness.SHARDS.size(); i++) {
        try (Connection c = h.pg.shard(i).connect()) {
          RoutingFunctions.install(c);
        }
      }
      run(h, MoveSpec.builder().id("b3").keyspace(MoveHarness.KS).bucket(3).target("s3").chunkRows(1_000)
          .cleanupGrace(Duration.ofMillis(500)).pauseBudget(Duration.ofSeconds(2)).build(), seq -> 15_000 + seq);
    }
  }

  /** Writers' totals: counts and sums of values, acknowledged and attempted. */
  private static final class Totals {
    final AtomicLong ackedRows = new AtomicLong();
    final AtomicLong ackedSum = new AtomicLong();
    final AtomicLong attemptedRows = new AtomicLong();
    final AtomicLong attemptedSum = new AtomicLong();
    final AtomicLong failed = new AtomicLong();
    final List<String> failures = new CopyOnWriteArrayList<>();
    final AtomicBoolean paused = new AtomicBoolean();
    final AtomicInteger inFlight = new AtomicInteger();

    /** Pauses the writers and waits until no write is in flight; false if one is still running after 10 s. */
    boolean pauseAndDrain() throws InterruptedException {
      paused.set(true);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (inFlight.get() > 0) {
        if (System.nanoTime() > deadline) {
          return false;
        }
        Thread.sleep(1);
      }
      return true;
    }
  }

  private record Answer(long rows, BigDecimal sum, long revision) {}

  /** The client the queries run on: its watch stream reaches it {@link WatchLag#LAG} late. */
  private record Lagging(ShardmapClient client, ShardmapData data, ScheduledExecutorService delay)
      implements AutoCloseable {
    @Override
    public void close() {
      data.close();
      client.close();
      delay.shutdownNow();
    }
  }

  private static Lagging lagging(MoveHarness h) throws InterruptedException {
    ScheduledExecutorService delay = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "watch-lag");
      t.setDaemon(true);
      return t;
    });
    ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets("127.0.0.1:" + h.server.port())
        .keyspaces(MoveHarness.KS).channelFactory(t -> ManagedChannelBuilder.forTarget(t).usePlaintext()
            .intercept(new WatchLag(delay))).build());
    return new Lagging(client, ShardmapData.open(client, DataOptions.builder().user(h.pg.shard(0).user())
        .password(h.pg.shard(0).password()).maxPoolSize(2).staleRouteTimeout(Duration.ofSeconds(10)).build()), delay);
  }

  /**
   * Delivers every message of the Watch stream (and its end) {@link #LAG} after it arrived, in order: a
   * client whose map lags the others' by that much.
   */
  private static final class WatchLag implements ClientInterceptor {
    static final long LAG = 400;
    private final ScheduledExecutorService delay;

    WatchLag(ScheduledExecutorService delay) {
      this.delay = delay;
    }

    @Override
    public <Q, A> ClientCall<Q, A> interceptCall(MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
      ClientCall<Q, A> call = next.newCall(method, options);
      if (!method.getBareMethodName().equals("Watch")) {
        return call;
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<A> listener, Metadata headers) {
          super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
            @Override
            public void onMessage(A message) {
              delay.schedule(() -> listener.onMessage(message), LAG, TimeUnit.MILLISECONDS);
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
              delay.schedule(() -> listener.onClose(status, trailers), LAG, TimeUnit.MILLISECONDS);
            }
          }, headers);
        }
      };
    }
  }

  private static Answer countAndSum(ShardmapData data, MoveHarness h) throws Exception {
    CrossShardQuery q = CrossShardQuery.builder(MoveHarness.KS, "SELECT count(*), sum(v) FROM " + h.table)
        .deadline(Duration.ofSeconds(20)).build();
    try (QueryResult r = data.query(q)) {
      assertTrue(r.next(), "an aggregate without GROUP BY answers one row");
      return new Answer(r.getLong(1), r.getBigDecimal(2), r.revision());
    }
  }

  private interface KeyOf {
    long key(long seq);
  }

  private void run(MoveHarness h, MoveSpec spec, KeyOf keyOf) throws Exception {
    try (Lagging queries = lagging(h)) {
      run(h, spec, keyOf, queries.data());
    }
  }

  private void run(MoveHarness h, MoveSpec spec, KeyOf keyOf, ShardmapData queries) throws Exception {
    Answer base = countAndSum(queries, h);
    assertEquals(2 * MoveHarness.PRELOAD, base.rows(), "the preloaded rows, each counted once");
    assertEquals(BigDecimal.valueOf(-MoveHarness.PRELOAD), base.sum(), "the preloaded values' sum");
    Totals t = new Totals();
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong seqs = new AtomicLong();
    List<Thread> threads = new ArrayList<>();
    List<Throwable> errors = new CopyOnWriteArrayList<>();
    for (int w = 0; w < 3; w++) {
      int me = w;
      threads.add(start("writer-" + w, () -> write(h, t, stop, seqs, keyOf, me), errors));
    }
    // Queries all through the move, each judged by the writers' totals around it.
    AtomicInteger looped = new AtomicInteger();
    threads.add(start("query-loop", () -> {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      for (int i = 0; i < 10_000 && !stop.get() && System.nanoTime() < deadline; i++) {
        long lowRows = t.ackedRows.get();
        long lowSum = t.ackedSum.get();
        Answer a = countAndSum(queries, h);
        long highRows = t.attemptedRows.get();
        long highSum = t.attemptedSum.get();
        long rows = a.rows() - base.rows();
        long sum = a.sum().subtract(base.sum()).longValueExact();
        if (rows < lowRows || rows > highRows || sum < lowSum || sum > highSum) {
          throw new AssertionError("query at revision " + a.revision() + " counted " + rows + " new rows summing to "
              + sum + "; the writers had acknowledged " + lowRows + " (sum " + lowSum + ") before it and attempted "
              + highRows + " (sum " + highSum + ") after it");
        }
        looped.incrementAndGet();
      }
    }, errors));

    Map<String, Integer> exact = new ConcurrentHashMap<>();
    Random pick = new Random(spec.id().hashCode());
    AtomicBoolean checking = new AtomicBoolean();
    Consumer<String> points = point -> {
      int done = exact.getOrDefault(point, 0);
      boolean repeated = point.endsWith(":chunk") || point.endsWith(":round") || point.endsWith(":batch");
      // Every phase is checked at its first point; points that repeat (chunks, rounds, batches) once more at
      // a random later occurrence.
      if (!CHECK_POINTS.contains(point) || done >= 2 || (done == 1 && (!repeated || pick.nextInt(3) != 0))) {
        return;
      }
      // One check at a time (they share the writers' pause); the one before may still wait for etcd's switch.
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!checking.compareAndSet(false, true)) {
        if (System.nanoTime() > until) {
          errors.add(new AssertionError("the check before " + point + " did not end in 30 s"));
          return;
        }
        try {
          Thread.sleep(2);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
      // The check runs beside the migrator, which waits for it at most 2 s: after the fence commits, writes of
      // the unit wait for the map to bring etcd's switch (so the writers drain only once the migrator goes on),
      // and a query whose pinned map predates the switch runs again once the map has it.
      Thread check = start("exact-" + point, () -> {
        try {
          if (!t.pauseAndDrain()) {
            throw new AssertionError("writers did not drain at " + point);
          }
          long rowsNow = t.ackedRows.get();
          long sumNow = t.ackedSum.get();
          boolean certain = rowsNow == t.attemptedRows.get();
          Answer a = countAndSum(queries, h);
          long rows = a.rows() - base.rows();
          long sum = a.sum().subtract(base.sum()).longValueExact();
          if (certain && (rows != rowsNow || sum != sumNow)) {
            throw new AssertionError("at " + point + " with the writers paused, the query at revision "
                + a.revision() + " counted " + rows + " new rows summing to " + sum + ", but " + rowsNow
                + " were acknowledged (sum " + sumNow + ")");
          }
          exact.merge(point, 1, Integer::sum);
        } finally {
          t.paused.set(false);
          checking.set(false);
        }
      }, errors);
      try {
        check.join(2_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    try (Migrator m = Migrator.open(h.migratorOptions().faultPoints(points).build())) {
      Thread.sleep(300);
      m.plan(spec);
      Migration done = m.drive(spec.id(), p -> { }, Duration.ofSeconds(5));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
    }
    // Let the last check end, then stop everything.
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (checking.get() && System.nanoTime() < until) {
      Thread.sleep(10);
    }
    Thread.sleep(300);
    stop.set(true);
    for (Thread th : threads) {
      th.join(60_000);
    }
    if (!errors.isEmpty()) {
      AssertionError e = new AssertionError(errors.size() + " failures; first: " + errors.get(0), errors.get(0));
      errors.stream().skip(1).limit(4).forEach(e::addSuppressed);
      throw e;
    }
    assertEquals(0, t.failed.get(), "SDK writes failed: " + t.failures);
    Answer last = countAndSum(queries, h);
    assertEquals(t.ackedRows.get(), last.rows() - base.rows(), "rows after the move");
    assertEquals(BigDecimal.valueOf(t.ackedSum.get()), last.sum().subtract(base.sum()), "sum after the move");
    assertEquals(Set.copyOf(CHECK_POINTS), exact.keySet(), "exact checks made at " + exact);
    assertTrue(looped.get() > 0, "no query ran during the move");
    System.out.println(spec.id() + ": " + t.ackedRows.get() + " rows written, " + looped.get()
        + " queries judged during the move, exact checks " + exact);
  }

  private static void write(MoveHarness h, Totals t, AtomicBoolean stop, AtomicLong seqs, KeyOf keyOf, int me)
      throws Exception {
    SplittableRandom rnd = new SplittableRandom(me);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    for (int writes = 0; writes < 200_000 && !stop.get() && System.nanoTime() < deadline; ) {
      if (t.paused.get()) {
        Thread.sleep(1);
        continue;
      }
      t.inFlight.incrementAndGet();
      try {
        if (t.paused.get()) {
          continue; // paused between the check and registering: the pauser may already count on none in flight
        }
        writes++;
        long k = keyOf.key(seqs.getAndIncrement());
        long v = 1 + rnd.nextInt(1000);
        t.attemptedRows.incrementAndGet();
        t.attemptedSum.addAndGet(v);
        try {
          h.data.inTransaction(MoveHarness.KS, k, c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + h.table + " (id, v, payload) VALUES (?, ?, 'q')")) {
              ps.setLong(1, k);
              ps.setLong(2, v);
              return ps.executeUpdate();
            }
          });
          t.ackedRows.incrementAndGet();
          t.ackedSum.addAndGet(v);
        } catch (java.sql.SQLException | io.shardmap.core.ShardmapException e) {
          if (t.failed.incrementAndGet() <= 5) {
            t.failures.add("key " + k + ": " + e);
          }
        }
      } finally {
        t.inFlight.decrementAndGet();
      }
    }
  }

  private interface Body {
    void run() throws Exception;
  }

  private static Thread start(String name, Body body, List<Throwable> errors) {
    Thread th = new Thread(() -> {
      try {
        body.run();
      } catch (Throwable e) {
        errors.add(e);
      }
    }, name);
    th.setDaemon(true);
    th.start();
    return th;
  }
}
