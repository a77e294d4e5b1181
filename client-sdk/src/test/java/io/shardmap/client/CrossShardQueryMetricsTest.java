package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.shardmap.client.internal.query.PartGuard;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The cross-shard query meters ({@code shardmap.client.query.*}) on real etcd, a directory server and three
 * PostgreSQL shards, read from a {@link SimpleMeterRegistry} given to the client: each outcome and failure
 * cause counted once with exact values, parts started, failed and cancelled, re-runs, and the gauge of
 * query-pool connections held while a streamed result is open. Each test starts a client of its own, so its
 * counters start at zero.
 */
@Tag("integration")
class CrossShardQueryMetricsTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  /** 300 ids spread over the whole INT64 space, so each of the three equal ranges holds about 100. */
  static final long STEP = Long.MAX_VALUE / 160;

  @RegisterExtension
  static final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3).table("id bigint NOT NULL, v text")
      .extension();

  static String users;
  static PostgresFixture pg;
  /** Every id, and each shard's ids in the order they were inserted (ascending). */
  static final TreeSet<Long> ids = new TreeSet<>();
  static final Map<String, List<Long>> idsByShard = new TreeMap<>();

  SimpleMeterRegistry registry;
  ShardmapClient client;
  ShardmapData data;

  @BeforeAll
  static void createKeyspaceAndRows() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    users = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id"))).addAllRangeShards(SHARDS).build());
    try (ShardmapClient c = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
        .channelFactory(f::channelBuilder).keyspaces("users").build())) {
      for (int i = 0; i < 300; i++) {
        long id = (i - 150) * STEP + i;
        ids.add(id);
        idsByShard.computeIfAbsent(c.route("users", id).shard(), s -> new ArrayList<>()).add(id);
      }
    }
    assertEquals(SHARDS, new ArrayList<>(idsByShard.keySet()), "every shard holds rows");
    for (Map.Entry<String, List<Long>> e : idsByShard.entrySet()) {
      List<String> rows = new ArrayList<>();
      for (long id : e.getValue()) {
        rows.add("(" + id + ", 'v" + id + "')");
      }
      // One INSERT in ascending order into a fresh table: a sequential scan meets the shard's smallest id first.
      pg.shard(SHARDS.indexOf(e.getKey())).exec("INSERT INTO " + users + " VALUES " + String.join(", ", rows));
    }
  }

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    registry = new SimpleMeterRegistry();
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users").meterRegistry(registry).build());
    data = open(PartGuard.NONE, 5);
  }

  @AfterEach
  void stop() {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
  }

  ShardmapData open(PartGuard guard, int maxAttempts) {
    return ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).queryPoolSize(4).connectionTimeout(Duration.ofSeconds(5)).maxAttempts(maxAttempts).build(),
        guard);
  }

  FunctionTimer finished(String outcome) {
    return registry.get("shardmap.client.query.finished").tag("outcome", outcome).functionTimer();
  }

  long failures(String cause) {
    return (long) registry.get("shardmap.client.query.failures").tag("cause", cause).functionCounter().count();
  }

  long counter(String name) {
    return (long) registry.get(name).functionCounter().count();
  }

  long connections() {
    return (long) registry.get("shardmap.client.query.connections").gauge().value();
  }

  /** Every counter's value: finished by outcome, failures by cause, reruns, parts, part failures and cancels. */
  Map<String, Long> counters() {
    Map<String, Long> m = new TreeMap<>();
    for (String o : List.of("ok", "partial", "failed", "closed")) {
      m.put("finished." + o, (long) finished(o).count());
    }
    for (String c : List.of("refused", "deadline", "shard", "stale_map", "other")) {
      m.put("failures." + c, failures(c));
    }
    m.put("reruns", counter("shardmap.client.query.reruns"));
    m.put("parts", counter("shardmap.client.query.parts"));
    m.put("part.failures", counter("shardmap.client.query.part.failures"));
    m.put("part.cancels", counter("shardmap.client.query.part.cancels"));
    return m;
  }

  static Map<String, Long> expected(long ok, long partial, long failed, long closed, long refused, long deadline,
                                    long shard, long staleMap, long reruns, long parts, long partFailures,
                                    long partCancels) {
    Map<String, Long> m = new TreeMap<>();
    m.put("finished.ok", ok);
    m.put("finished.partial", partial);
    m.put("finished.failed", failed);
    m.put("finished.closed", closed);
    m.put("failures.refused", refused);
    m.put("failures.deadline", deadline);
    m.put("failures.shard", shard);
    m.put("failures.stale_map", staleMap);
    m.put("failures.other", 0L);
    m.put("reruns", reruns);
    m.put("parts", parts);
    m.put("part.failures", partFailures);
    m.put("part.cancels", partCancels);
    return m;
  }

  /** The smallest id on {@code shard}: the first row a sequential scan of its table meets. */
  static long firstIdOn(String shard) {
    return idsByShard.get(shard).get(0);
  }

  @Test
  void eachOutcomeAndFailureCauseIsCountedOnceWithItsTime() throws Exception {
    assertEquals(expected(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), counters());

    List<Long> all = data.queryList(CrossShardQuery.builder("users", "SELECT id FROM " + users + " ORDER BY id")
        .build(), r -> r.getLong(1));
    assertEquals(new ArrayList<>(ids), all);
    assertEquals(expected(1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0), counters());
    assertTrue(finished("ok").totalTime(TimeUnit.NANOSECONDS) > 0);
    assertEquals(0, connections());

    // Division by zero on s2 only. One part at a time, in shard order: s1 starts, s2 fails, s3 is never
    // started (the run cannot succeed any more); s1's statement had returned its first rows, so nothing ran
    // on it to cancel.
    long poison = firstIdOn("s2");
    String failing = "SELECT id FROM " + users + " WHERE 1 / (id::numeric - ?) <> 7 ORDER BY id";
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.queryList(CrossShardQuery.builder("users",
        failing).params(poison).parallelism(1).build(), r -> r.getLong(1)));
    assertTrue(e.getMessage().contains("s2: ") && e.getMessage().contains("division by zero"), e.getMessage());
    assertEquals(expected(1, 0, 1, 0, 0, 0, 1, 0, 0, 5, 1, 0), counters());
    assertTrue(finished("failed").totalTime(TimeUnit.NANOSECONDS) > 0);
    assertEquals(0, connections());

    // The same in partial mode: every shard starts, s2 fails and is reported, the others' rows come back.
    List<Long> healthy = data.queryList(CrossShardQuery.builder("users", failing).params(poison).parallelism(1)
        .partialResults(true).build(), r -> r.getLong(1));
    TreeSet<Long> expectedRows = new TreeSet<>(idsByShard.get("s1"));
    expectedRows.addAll(idsByShard.get("s3"));
    assertEquals(new ArrayList<>(expectedRows), healthy);
    assertEquals(expected(1, 1, 1, 0, 0, 0, 1, 0, 0, 8, 2, 0), counters());
    assertTrue(finished("partial").totalTime(TimeUnit.NANOSECONDS) > 0);
    assertEquals(0, connections());

    // Refused before anything is sent: an unknown keyspace, a statement that is no SELECT, a missing parameter.
    ShardmapException unknown = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("nope",
        "SELECT id FROM " + users).build()));
    assertEquals(ErrorCode.NOT_FOUND, unknown.code(), unknown.getMessage());
    ShardmapException delete = assertThrows(ShardmapException.class, () -> data.queryList(CrossShardQuery.builder(
        "users", "DELETE FROM " + users).build(), r -> r.getLong(1)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, delete.code(), delete.getMessage());
    ShardmapException params = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
        "SELECT id FROM " + users + " WHERE id > ?").build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, params.code(), params.getMessage());
    assertEquals(expected(1, 1, 4, 0, 3, 0, 1, 0, 0, 8, 2, 0), counters(), "no part started for them");
    assertEquals(0, connections());
  }

  @Test
  void aStreamedResultHoldsAConnectionPerShardUntilReadToItsEndOrClosed() throws Exception {
    CrossShardQuery q = CrossShardQuery.builder("users", "SELECT id FROM " + users + " ORDER BY id").fetchSize(2)
        .build();
    try (QueryResult r = data.query(q)) {
      assertTrue(r.next());
      assertEquals(3, connections(), "each shard's part holds its query-pool connection while the rows are unread");
    }
    assertEquals(0, connections(), "closing gave every connection back");
    assertEquals(expected(0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0), counters(), "closed before its last row");

    try (QueryResult r = data.query(q)) {
      long n = 0;
      while (r.next()) {
        n++;
      }
      assertEquals(ids.size(), n);
      assertEquals(0, connections(), "read to its end: given back before the close");
    }
    assertEquals(expected(1, 0, 0, 1, 0, 0, 0, 0, 0, 6, 0, 0), counters());
    assertTrue(finished("closed").totalTime(TimeUnit.NANOSECONDS) > 0);
  }

  /**
   * One shard's part waits for a table lock the test holds until the other two shards' statements are running
   * (sleeping on their first row); then it fails, and the query cancels the two running statements at once.
   * Each shard in turn is the failing one, so that the caller's thread (which opens one of the parts itself)
   * runs a sleeping part in some of the rounds: a failure on a worker's part must stop it too.
   */
  @Test
  void aShardsFailureCancelsTheStatementsRunningOnTheOthers() throws Exception {
    for (int round = 0; round < SHARDS.size(); round++) {
      String failing = SHARDS.get(round);
      String marker = "qmetrics_" + UUID.randomUUID().toString().substring(0, 6);
      // The executor's hand-written plan (not the planner), so that the marker reaches the shards verbatim.
      OrderedTestPlan plan = new OrderedTestPlan("SELECT id FROM " + users + " WHERE {owned} AND CASE WHEN id = ? "
          + "THEN 1 / (id - id) = 1 ELSE pg_sleep(20) IS NOT NULL AND '" + marker + "' <> '' END ORDER BY id", users,
          "id", 1, List.of("id"));
      CrossShardQuery q = CrossShardQuery.builder("users", plan.sql()).params(firstIdOn(failing))
          .deadline(Duration.ofSeconds(25)).build();
      CompletableFuture<Throwable> result;
      try (Connection lock = pg.shard(round).connect(); Statement s = lock.createStatement()) {
        lock.setAutoCommit(false);
        s.execute("LOCK TABLE " + users + " IN ACCESS EXCLUSIVE MODE");
        result = CompletableFuture.supplyAsync(() -> {
          try {
            data.queryList(q, plan, r -> r.getLong(1));
            return null;
          } catch (Throwable t) {
            return t;
          }
        });
        int locked = round;
        Await.until(Duration.ofSeconds(15), "two shards run their statements, " + failing + " waits for the lock",
            () -> {
              for (int i = 0; i < SHARDS.size(); i++) {
                if (running(i, marker, i == locked) != 1) {
                  return false;
                }
              }
              return true;
            });
        lock.rollback();
      }
      Throwable t = result.get(30, TimeUnit.SECONDS);
      assertTrue(t instanceof ShardmapException, String.valueOf(t));
      assertEquals(ErrorCode.INVALID_ARGUMENT, ((ShardmapException) t).code(), t.getMessage());
      assertTrue(t.getMessage().contains("failed on 1 of 3 shards: " + failing + ": ")
          && t.getMessage().contains("division by zero"), t.getMessage());
      long n = round + 1;
      assertEquals(expected(0, 0, n, 0, 0, 0, n, 0, 0, 3 * n, n, 2 * n), counters(),
          "round " + n + ": the two other shards' statements cancelled");
      assertEquals(0, connections());
      for (int i = 0; i < SHARDS.size(); i++) {
        assertEquals(0, running(i, marker, false), "nothing of the query left running");
      }
    }
  }

  /** Statements of {@code marker} active on shard {@code i}: running, or waiting for a lock ({@code onLock}). */
  static long running(int i, String marker, boolean onLock) {
    try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM "
        + "pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, ?) > 0 AND "
        + "(wait_event_type IS NOT DISTINCT FROM 'Lock') = ?")) {
      ps.setString(1, marker);
      ps.setBoolean(2, onLock);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        return rs.getLong(1);
      }
    } catch (SQLException e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void aGuardsRerunsAStaleMapAndTheDeadlineAreCounted() throws Exception {
    // A guard that always asks for a newer map, which the current one already satisfies: the query runs again
    // at once, until its 3 runs are used up (one part per run at parallelism 1).
    ShardmapData stale = open((c, keyspace, shard, map) -> new PartGuard.Rerun("always stale", m -> true), 3);
    try {
      ShardmapException e = assertThrows(ShardmapException.class, () -> stale.query(CrossShardQuery.builder("users",
          "SELECT id FROM " + users).parallelism(1).build()));
      assertEquals(ErrorCode.STALE_EPOCH, e.code(), e.getMessage());
    } finally {
      stale.close();
    }
    assertEquals(expected(0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 0, 0), counters());
    assertEquals(0, connections());

    ShardmapException late = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
        "SELECT id FROM " + users + " WHERE pg_sleep(0.2) IS NOT NULL").deadline(Duration.ofMillis(500)).build()));
    assertEquals(ErrorCode.DEADLINE_EXCEEDED, late.code(), late.getMessage());
    assertEquals(2, (long) finished("failed").count());
    assertEquals(1, failures("deadline"));
    assertEquals(1, failures("stale_map"));
    assertEquals(0, failures("shard"), "the query's failure is counted once, as the deadline's");
    assertEquals(0, connections());
  }
}
