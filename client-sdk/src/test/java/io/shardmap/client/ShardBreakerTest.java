package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.shardmap.client.internal.CircuitOpenException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.UpdateShardRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Per-shard circuit breakers against real PostgreSQL servers of this class's own (they are hung with SIGSTOP
 * and stopped): a shard that hangs or is gone fails its callers at once with a {@link CircuitOpenException}
 * once its breaker opened, calls to the other shard never wait on it, a half-open probe closes the breaker
 * once the shard is back, and the work's own SQL errors never open it.
 */
@Tag("fault")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
class ShardBreakerTest {
  /** Shard A (s1) stays healthy; shard B (s2) is hung and stopped. */
  static final String A = "s1";
  static final String B = "s2";
  static final Duration CONNECTION_TIMEOUT = Duration.ofMillis(2000);
  /**
   * A call to A that waited on B at all would wait at least a connection timeout (B's pool) or a socket
   * timeout (3 s); half the connection timeout is a generous bound (a loaded CI machine) that still proves it
   * did not.
   */
  static final long NOT_BLOCKED_NANOS = CONNECTION_TIMEOUT.toNanos() / 2;
  static final String PRIMARY_B = "shard-" + B + "-primary";

  static PostgresFixture pg;
  static ShardmapFleet fleet;
  static ShardmapClient client;
  static ShardmapData data;
  static SimpleMeterRegistry registry = new SimpleMeterRegistry();
  static long keyA;
  static long keyB;

  @BeforeAll
  static void start() throws Exception {
    assumeTrue(PostgresFixture.canStartServers(), "needs PostgreSQL servers of its own");
    pg = PostgresFixture.startNew(3); // the third server: a replica of B in the replica test
    assumeTrue(pg.canControlInstances(), "needs PostgreSQL servers it can hang and stop");
    fleet = ShardmapFleet.builder().postgres(pg).shards(2).table("id bigint NOT NULL, v text").build();
    fleet.execOnShards("CREATE TABLE breaker_uniq (k bigint PRIMARY KEY)");
    fleet.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(fleet.table()).setKeyColumn("id"))
        .addTables(ShardedTable.newBuilder().setName("breaker_uniq").setKeyColumn("k")))
        .addAllRangeShards(List.of(A, B)).build());
    client = ShardmapClient.start(ClientOptions.builder().targets(fleet.targets()).channelFactory(fleet::channelBuilder)
        .keyspaces("users").meterRegistry(registry).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .connectionTimeout(CONNECTION_TIMEOUT).replicaConnectionTimeout(CONNECTION_TIMEOUT)
        .validationTimeout(Duration.ofMillis(250))
        .breakerOpenDuration(Duration.ofMillis(500))
        // A statement sent to the hung shard on a pooled connection ends after 3 s (pgjdbc: seconds).
        .property("socketTimeout", "3").build());
    keyA = Long.MIN_VALUE / 2;
    keyB = Long.MAX_VALUE / 2;
    assertEquals(A, client.route("users", keyA).shard());
    assertEquals(B, client.route("users", keyB).shard());
    assertEquals(1L, select(keyA));
    assertEquals(1L, select(keyB));
  }

  @AfterAll
  static void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (fleet != null) {
      fleet.close();
    }
    if (pg != null) {
      pg.close();
    }
  }

  static long select(long key) throws SQLException {
    return data.inTransaction("users", key, c -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT count(*) + 1 FROM " + fleet.table() + " WHERE id = ?")) {
        ps.setLong(1, key);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          return rs.getLong(1);
        }
      }
    });
  }

  static String state() {
    return data.stats().breakerStates().get(PRIMARY_B);
  }

  static double gauge(String shard) {
    PgInstance p = pg.shard(shard.equals(A) ? 0 : 1);
    Gauge g = registry.find("shardmap.data.breaker.state").tag("shard", shard)
        .tag("endpoint", p.host() + ":" + p.port() + "/" + p.database()).gauge();
    assertNotNull(g, "a breaker state gauge for " + shard + ": " + registry.getMeters());
    return g.value();
  }

  /** Polls {@code done} every 20 ms for at most {@code seconds}; fails with {@code what} when it never holds. */
  static void await(String what, int seconds, BooleanSupplier done) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    while (!done.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "within " + seconds + " s: " + what);
      Thread.sleep(20);
    }
  }

  /** The results of a few callers' bounded loops on one key. */
  static final class Callers {
    final AtomicLong ok = new AtomicLong();
    final AtomicLong maxNanos = new AtomicLong();
    final AtomicLong maxRefusedNanos = new AtomicLong();
    final ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
    final ConcurrentLinkedQueue<CircuitOpenException> refusals = new ConcurrentLinkedQueue<>();
    final List<Future<?>> loops = new ArrayList<>();

    /** {@code n} callers, each at most 5000 calls or 30 s, until {@code stop}. */
    Callers(ExecutorService pool, int n, long key, AtomicBoolean stop) {
      for (int i = 0; i < n; i++) {
        loops.add(pool.submit(() -> {
          long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
          for (int call = 0; call < 5000 && !stop.get() && System.nanoTime() < end; call++) {
            long t0 = System.nanoTime();
            try {
              select(key);
              ok.incrementAndGet();
              maxNanos.accumulateAndGet(System.nanoTime() - t0, Math::max);
            } catch (CircuitOpenException e) {
              refusals.add(e);
              maxRefusedNanos.accumulateAndGet(System.nanoTime() - t0, Math::max);
              sleepQuietly(); // a caller that was refused backs off a little, as an application would
            } catch (Throwable e) {
              failures.add(e);
              maxNanos.accumulateAndGet(System.nanoTime() - t0, Math::max);
            }
          }
          return null;
        }));
      }
    }

    void join() throws Exception {
      for (Future<?> f : loops) {
        f.get(60, TimeUnit.SECONDS);
      }
    }

    private static void sleepQuietly() {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** B's refusal as the contract says: its shard, endpoint, SQLSTATE and a message naming them. */
  static void checkRefusal(CircuitOpenException e) {
    PgInstance b = pg.shard(1);
    String endpoint = b.host() + ":" + b.port() + "/" + b.database();
    assertEquals(B, e.shard());
    assertEquals(endpoint, e.endpoint());
    assertEquals("08001", e.getSQLState());
    assertInstanceOf(SQLTransientConnectionException.class, e);
    assertTrue(e.getMessage().startsWith("shard '" + B + "' primary " + endpoint + ": circuit breaker open ("),
        e.getMessage());
    assertTrue(e.getMessage().contains("of the last ") && e.getMessage().contains("calls fail at once until a probe"),
        e.getMessage());
  }

  /** A failure of B before its breaker opened: a connection-class failure, never anything else. */
  static void checkConnectionFailure(Throwable t) {
    assertInstanceOf(SQLException.class, t);
    SQLException e = (SQLException) t;
    assertTrue(e instanceof SQLTransientConnectionException || (e.getSQLState() != null
        && e.getSQLState().startsWith("08")), "a connection-class failure: " + e + " " + e.getSQLState());
  }

  /** After B came back: calls succeed again once the open duration passed and half-open probes succeeded. */
  static void awaitRecovery() throws InterruptedException {
    long[] tries = {0};
    await("a call to " + B + " succeeds and its breaker closes again", 30, () -> {
      tries[0]++;
      try {
        select(keyB);
      } catch (SQLException e) {
        return false;
      }
      return "CLOSED".equals(state());
    });
    for (int i = 0; i < 20; i++) {
      assertDoesNotFail(() -> select(keyB));
    }
    assertEquals("CLOSED", state());
  }

  interface Call {
    void run() throws Exception;
  }

  static void assertDoesNotFail(Call c) {
    try {
      c.run();
    } catch (Exception e) {
      throw new AssertionError("call failed: " + e, e);
    }
  }

  /** Whatever an earlier test left, B is up and its breaker closed. */
  @BeforeEach
  void shardBIsUp() throws InterruptedException {
    pg.resume(1);
    pg.start(1);
    awaitRecovery();
  }

  @Test
  void aHungShardFailsFastOnceItsBreakerOpensAndNeverSlowsTheOtherShard() throws Exception {
    assertEquals("CLOSED", state());
    assertEquals(0.0, gauge(B));
    ExecutorService pool = Executors.newFixedThreadPool(6);
    AtomicBoolean stopA = new AtomicBoolean();
    AtomicBoolean stopB = new AtomicBoolean();
    Callers onA;
    Callers onB;
    pg.pause(1);
    try {
      onA = new Callers(pool, 3, keyA, stopA);
      onB = new Callers(pool, 3, keyB, stopB);
      await("B's breaker opens", 30, () -> "OPEN".equals(state()));
      assertEquals(1.0, gauge(B), "the gauge says open");
      // Every caller of B is refused at once from now on (until the open duration ends, then a probe).
      Callers b = onB;
      await("B's callers are refused by the open breaker", 30, () -> b.refusals.size() >= 20);
      stopB.set(true);
      onB.join();
      // A's callers went on all along: give them a little more time on their own, then stop them.
      Thread.sleep(200);
      stopA.set(true);
      onA.join();
    } finally {
      stopA.set(true);
      stopB.set(true);
      pool.shutdown();
      pg.resume(1);
    }
    assertTrue(pool.awaitTermination(60, TimeUnit.SECONDS));

    assertTrue(onA.failures.isEmpty(), "calls to A never fail: " + onA.failures);
    assertTrue(onA.ok.get() > 0, "A's callers ran");
    assertTrue(onA.maxNanos.get() < NOT_BLOCKED_NANOS, "no call to A waited on B: the slowest took "
        + TimeUnit.NANOSECONDS.toMillis(onA.maxNanos.get()) + " ms");

    assertTrue(onB.refusals.size() >= 20, "B's callers were refused: " + onB.refusals.size());
    onB.refusals.forEach(ShardBreakerTest::checkRefusal);
    // A refusal borrows nothing: far below the connection timeout every failure before it took.
    assertTrue(onB.maxRefusedNanos.get() < NOT_BLOCKED_NANOS, "refusals are immediate: the slowest took "
        + TimeUnit.NANOSECONDS.toMillis(onB.maxRefusedNanos.get()) + " ms");
    assertTrue(!onB.failures.isEmpty(), "the breaker opened on failures it saw");
    onB.failures.forEach(ShardBreakerTest::checkConnectionFailure);
    assertTrue(registry.get("shardmap.data.breaker.refusals").functionCounter().count() >= onB.refusals.size());
    assertEquals("CLOSED", data.stats().breakerStates().get("shard-" + A + "-primary"));
    assertEquals(0.0, gauge(A));

    awaitRecovery();
    assertEquals(0.0, gauge(B));
  }

  @Test
  void aStoppedShardFailsFastToo() throws Exception {
    assertEquals("CLOSED", state());
    pg.stop(1);
    List<SQLException> before = new ArrayList<>();
    CircuitOpenException refused = null;
    long refusedNanos = 0;
    try {
      for (int i = 0; i < 50 && refused == null; i++) {
        long t0 = System.nanoTime();
        try {
          select(keyB);
        } catch (CircuitOpenException e) {
          refused = e;
          refusedNanos = System.nanoTime() - t0;
        } catch (SQLException e) {
          before.add(e);
        }
        assertDoesNotFail(() -> select(keyA));
      }
      assertNotNull(refused, "refused by the open breaker after " + before);
      assertEquals("OPEN", state());
      checkRefusal(refused);
      // (A failed borrow also takes the slow-call threshold, so the message may name slow calls too.)
      assertTrue(refused.getMessage().matches(".*\\(\\d+% of the last \\d+ calls failed by connection loss or "
          + "timeout[,)].*"), refused.getMessage());
      // The window holds the calls before the stop too (successes): at most a window's worth of slow failures.
      assertTrue(before.size() >= 5 && before.size() <= 20, "the breaker opened within its window: " + before);
      before.forEach(ShardBreakerTest::checkConnectionFailure);
      assertTrue(refusedNanos < NOT_BLOCKED_NANOS, "refused at once: " + TimeUnit.NANOSECONDS.toMillis(refusedNanos)
          + " ms");
      CircuitOpenException again = assertThrows(CircuitOpenException.class, () -> select(keyB));
      checkRefusal(again);
    } finally {
      pg.start(1);
    }
    awaitRecovery();
  }

  @Test
  void applicationErrorsAndTheWorksExceptionsDoNotOpenTheBreaker() throws Exception {
    assertEquals("CLOSED", state());
    long k = keyB + 12345;
    assertEquals(B, client.route("users", k).shard());
    data.inTransaction("users", k, c -> {
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO breaker_uniq VALUES (?)")) {
        ps.setLong(1, k);
        return ps.executeUpdate();
      }
    });
    // 40 calls in a row fail (twice the window): unique violations and the work's own exceptions.
    for (int i = 0; i < 20; i++) {
      SQLException e = assertThrows(SQLException.class, () -> data.inTransaction("users", k, c -> {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO breaker_uniq VALUES (?)")) {
          ps.setLong(1, k);
          return ps.executeUpdate();
        }
      }));
      assertEquals("23505", e.getSQLState(), e.toString());
      assertThrows(IllegalStateException.class, () -> data.read("users", k, c -> {
        throw new IllegalStateException("the application's own failure");
      }));
    }
    assertEquals("CLOSED", state(), "the shard answered every call");
    assertEquals(0.0, gauge(B));
    assertEquals(1L, select(keyB));
  }

  /** Where a read of {@code key} ran: the {@code v} of its row (the replica's copy says "replica"). */
  static String readWhere(long key) throws SQLException {
    return data.read("users", key, c -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT v FROM " + fleet.table() + " WHERE id = ?")) {
        ps.setLong(1, key);
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? rs.getString(1) : "none";
        }
      }
    });
  }

  static void setReplicas(boolean withReplica) throws InterruptedException {
    Shard.Builder b = Shard.newBuilder().setName(B).setPrimary(ShardmapFleet.endpoint(pg.shard(1)));
    if (withReplica) {
      b.addReplicas(ShardmapFleet.endpoint(pg.shard(2)));
    }
    fleet.admin().updateShard(UpdateShardRequest.newBuilder().setShard(b).build());
    await("B's replicas in the client's map: " + withReplica, 30,
        () -> client.shard(B).replicas().size() == (withReplica ? 1 : 0)
            && data.stats().breakerStates().containsKey(REPLICA_B) == withReplica);
  }

  static final String REPLICA_B = "shard-" + B + "-replica0";

  @Test
  void replicasGetBreakersOfTheirOwnAndNewEndpointsStartWithClosedOnes() throws Exception {
    long k = keyB + 777;
    pg.shard(1).exec("INSERT INTO " + fleet.table() + " VALUES (" + k + ", 'primary')");
    // The third server stands in for B's replica. It is not in recovery, so the replica health checks never
    // route reads to it (ReplicaReadsTest covers real standbys); what matters here is its breaker.
    pg.shard(2).exec("CREATE TABLE IF NOT EXISTS " + fleet.table() + " (id bigint NOT NULL, v text)");
    pg.shard(2).exec("INSERT INTO " + fleet.table() + " VALUES (" + k + ", 'replica')");
    setReplicas(true);
    try {
      assertEquals("primary", readWhere(k), "a server not in recovery is never read as a replica");
      assertEquals("CLOSED", data.stats().breakerStates().get(REPLICA_B));
      pg.pause(2);
      try {
        for (int i = 0; i < 5; i++) {
          long t0 = System.nanoTime();
          assertEquals("primary", readWhere(k));
          long took = System.nanoTime() - t0;
          assertTrue(took < NOT_BLOCKED_NANOS, "the hung replica is skipped, not waited for: "
              + TimeUnit.NANOSECONDS.toMillis(took) + " ms");
        }
        // New endpoints, new breakers: the replica taken out of the map and put back starts closed.
        setReplicas(false);
        assertEquals(null, data.stats().breakerStates().get(REPLICA_B), "no replica, no breaker");
        setReplicas(true);
        assertEquals("CLOSED", data.stats().breakerStates().get(REPLICA_B), "a fresh breaker");
      } finally {
        pg.resume(2);
      }
    } finally {
      setReplicas(false);
    }
  }

}
