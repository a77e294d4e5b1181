package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.query.PartGuard;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.SqlRouting;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.query.ColumnType;
import io.shardmap.query.Merge;
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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The executor of cross-shard queries on real etcd, a directory server and three PostgreSQL shards, with a
 * range keyspace (INT64) and a hash keyspace (text keys): every target returns exactly the rows the map
 * gives each shard (copies a move leaves behind are not counted), pools are separate from single-key
 * calls', the deadline and a guard's re-run work, and bad input reaches no shard. The merge is a
 * hand-written ordered pass-through plan ({@link OrderedTestPlan}): planning is tested in module query.
 */
@Tag("integration")
class CrossShardQueryTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  /** 300 ids spread over the whole INT64 space, so each of the three equal ranges holds about 100. */
  static final long STEP = Long.MAX_VALUE / 160;

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3).table("id bigint NOT NULL, v text")
      .extension();

  PostgresFixture pg;
  String users;
  String tags;
  ShardmapClient client;
  ShardmapData data;
  /** Every id inserted on its owner; copies planted on other shards are not in it. */
  final TreeSet<Long> ids = new TreeSet<>();
  final TreeMap<String, Integer> tagRows = new TreeMap<>();

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    users = f.table();
    tags = "tags_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    f.execOnShards("CREATE TABLE " + tags + " (skey text NOT NULL, n int)");
    for (int i = 0; i < 3; i++) {
      installRoutingFunctions(pg.shard(i));
    }
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id"))).addAllRangeShards(SHARDS).build());
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("tags")
        .setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_HASH)
        .addTables(ShardedTable.newBuilder().setName(tags).setKeyColumn("skey")))
        .addAllHashBuckets(List.of("s1", "s2", "s3", "s1", "s2", "s3", "s1", "s2")).build());
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users", "tags").build());
    data = open(PartGuard.NONE, 4, "");
    // Each row on the shard the map names, plus a copy of every tenth on the next shard (what a move leaves
    // on its source until cleanup, or copies to its target before the cutover): a query must not count those.
    Map<String, List<String>> inserts = new TreeMap<>();
    for (int i = 0; i < 300; i++) {
      long id = (i - 150) * STEP + i;
      ids.add(id);
      String owner = client.route("users", id).shard();
      inserts.computeIfAbsent(owner, s -> new ArrayList<>()).add("(" + id + ", 'v" + id + "')");
      if (i % 10 == 0) {
        inserts.computeIfAbsent(next(owner), s -> new ArrayList<>()).add("(" + id + ", 'copy')");
      }
    }
    for (Map.Entry<String, List<String>> e : inserts.entrySet()) {
      pg.shard(SHARDS.indexOf(e.getKey())).exec("INSERT INTO " + users + " VALUES " + String.join(", ", e.getValue()));
    }
    Map<String, List<String>> tagInserts = new TreeMap<>();
    for (int i = 0; i < 60; i++) {
      String key = "k" + (char) ('a' + i % 26) + i;
      tagRows.put(key, i);
      String owner = client.route("tags", ShardKey.of(key)).shard();
      tagInserts.computeIfAbsent(owner, s -> new ArrayList<>()).add("('" + key + "', " + i + ")");
      if (i % 7 == 0) {
        tagInserts.computeIfAbsent(next(owner), s -> new ArrayList<>()).add("('" + key + "', -1)");
      }
    }
    for (Map.Entry<String, List<String>> e : tagInserts.entrySet()) {
      pg.shard(SHARDS.indexOf(e.getKey())).exec("INSERT INTO " + tags + " VALUES " + String.join(", ", e.getValue()));
    }
  }

  @AfterEach
  void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (fleet.get() != null && tags != null) {
      fleet.get().execOnShards("DROP TABLE IF EXISTS " + tags);
    }
  }

  static String next(String shard) {
    return SHARDS.get((SHARDS.indexOf(shard) + 1) % SHARDS.size());
  }

  /** What the migrator's RoutingFunctions does once per shard (core holds the DDL). */
  static void installRoutingFunctions(PostgresFixture.PgInstance shard) throws SQLException {
    try (Connection c = shard.connect(); Statement s = c.createStatement()) {
      s.execute("SELECT pg_advisory_lock(4242)");
      try {
        s.execute("CREATE SCHEMA IF NOT EXISTS shardmap");
        for (String ddl : SqlRouting.ddl()) {
          s.execute(ddl);
        }
      } finally {
        s.execute("SELECT pg_advisory_unlock(4242)");
      }
    }
  }

  ShardmapData open(PartGuard guard, int queryPoolSize, String applicationName) {
    return open(guard, queryPoolSize, applicationName, Duration.ofMillis(500));
  }

  ShardmapData open(PartGuard guard, int queryPoolSize, String applicationName, Duration connectionTimeout) {
    DataOptions.Builder b = DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(4).queryPoolSize(queryPoolSize).connectionTimeout(connectionTimeout);
    if (!applicationName.isEmpty()) {
      b.property("ApplicationName", applicationName);
    }
    return ShardmapData.open(client, b.build(), guard);
  }

  OrderedTestPlan usersPlan(String extraWhere) {
    return new OrderedTestPlan("SELECT id, v FROM " + users + " WHERE {owned}" + extraWhere + " ORDER BY id", users,
        "id", 0, List.of("id", "v"));
  }

  static List<Long> idsOf(ShardmapData d, CrossShardQuery q, OrderedTestPlan plan) throws SQLException {
    return d.queryList(q, plan, r -> r.getLong(1));
  }

  @Test
  void allShardsReturnEveryRowOnceInOrderAtThePinnedRevision() throws Exception {
    long revision = client.revision();
    OrderedTestPlan plan = usersPlan("");
    try (QueryResult r = data.query(CrossShardQuery.builder("users", plan.sql()).fetchSize(7).build(), plan)) {
      assertEquals(List.of("id", "v"), r.columnLabels());
      List<Long> got = new ArrayList<>();
      while (r.next()) {
        got.add(r.getLong("id"));
        assertEquals("v" + r.getLong(1), r.getString("v"), "never a planted copy");
      }
      assertEquals(new ArrayList<>(ids), got);
      assertEquals(revision, r.revision());
      assertFalse(r.partial());
      List<ShardStatus> shards = r.shards();
      assertEquals(SHARDS, shards.stream().map(ShardStatus::shard).toList());
      assertEquals(ids.size(), shards.stream().mapToLong(ShardStatus::rows).sum());
      for (ShardStatus s : shards) {
        assertTrue(s.ok(), s.toString());
        assertTrue(s.rows() > 50, "ids are spread over every shard: " + s);
      }
    }
    // The merge got the statement's column types from the shard (bigint, text with its collation).
    List<ColumnType> columns = plan.lastOptions.columns();
    assertEquals("int8", columns.get(0).pgType());
    assertNull(columns.get(0).collation());
    assertEquals("text", columns.get(1).pgType());
    assertNotNull(columns.get(1).collation());
    assertEquals(CrossShardQuery.DEFAULT_MAX_IN_MEMORY_ROWS, plan.lastOptions.maxInMemoryRows());
  }

  @Test
  void aKeyRangeAsksOnlyItsOwnersForItsRows() throws Exception {
    long lo = -10 * STEP;
    long hi = 40 * STEP;
    OrderedTestPlan plan = usersPlan("");
    CrossShardQuery q = CrossShardQuery.builder("users", plan.sql()).keyRange(ShardKey.of(lo), ShardKey.of(hi)).build();
    try (QueryResult r = data.query(q, plan)) {
      List<Long> got = new ArrayList<>();
      while (r.next()) {
        got.add(r.getLong(1));
      }
      assertEquals(new ArrayList<>(ids.subSet(lo, hi)), got);
      TreeSet<String> owners = new TreeSet<>(List.of(client.route("users", lo).shard(), client.route("users", hi - 1).shard()));
      assertEquals(new ArrayList<>(owners), r.shards().stream().map(ShardStatus::shard).toList(),
          "only the shards owning [lo, hi) are asked");
    }
    // Unbounded above.
    CrossShardQuery tail = CrossShardQuery.builder("users", plan.sql()).keyRange(ShardKey.of(hi), null).build();
    assertEquals(new ArrayList<>(ids.tailSet(hi)), idsOf(data, tail, plan));
  }

  @Test
  void aKeySetAsksEachOwnerOnceForItsKeys() throws Exception {
    List<Long> all = new ArrayList<>(ids);
    List<ShardKey> keys = new ArrayList<>();
    TreeSet<Long> wanted = new TreeSet<>();
    for (int i = 0; i < all.size(); i += 23) {
      keys.add(ShardKey.of(all.get(i)));
      wanted.add(all.get(i));
    }
    keys.add(ShardKey.of(12345)); // no such row
    OrderedTestPlan plan = usersPlan("");
    CrossShardQuery q = CrossShardQuery.builder("users", plan.sql()).keys(keys).build();
    try (QueryResult r = data.query(q, plan)) {
      List<Long> got = new ArrayList<>();
      while (r.next()) {
        got.add(r.getLong(1));
      }
      assertEquals(new ArrayList<>(wanted), got);
      TreeSet<String> owners = new TreeSet<>();
      keys.forEach(k -> owners.add(client.route("users", k).shard()));
      assertEquals(new ArrayList<>(owners), r.shards().stream().map(ShardStatus::shard).toList());
    }
    // Besides the statements the executor only checks or probes (WHERE true / false), one per owner.
    List<String> sent = plan.shardSql.stream().filter(s -> s.contains("id = ANY(")).toList();
    assertEquals(3, sent.size(), "each owner asked once: " + plan.shardSql);
  }

  @Test
  void aHashKeyspaceOfTextKeysCountsEachRowOnceAndTheMergeGetsCollations() throws Exception {
    OrderedTestPlan plan = new OrderedTestPlan("SELECT skey, n, skey COLLATE \"C\" AS kc FROM " + tags
        + " WHERE {owned} ORDER BY skey COLLATE \"C\"", tags, "skey", 0, List.of("skey", "n", "kc"));
    Map<String, Integer> got = new TreeMap<>();
    try (QueryResult r = data.query(CrossShardQuery.builder("tags", plan.sql()).build(), plan)) {
      String last = "";
      while (r.next()) {
        String k = r.getString(1);
        assertTrue(k.compareTo(last) > 0, "in order, each once: " + last + " then " + k);
        last = k;
        got.put(k, r.getLong("n").intValue());
      }
    }
    assertEquals(tagRows, got);
    List<ColumnType> columns = plan.lastOptions.columns();
    assertEquals(new ColumnType.Collation("C", 'c', "C", true), columns.get(2).collation());
    assertNull(columns.get(1).collation());
    String datcollate;
    try (Connection c = pg.shard(0).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT datcollate FROM pg_database WHERE datname = current_database()")) {
      rs.next();
      datcollate = rs.getString(1);
    }
    ColumnType.Collation def = columns.get(0).collation();
    assertEquals('c', def.provider(), "the fixture's databases use libc");
    assertEquals(datcollate, def.locale(), "\"default\" resolved to the database's collation");

    // A key set: quotes and backslashes travel safely in the array literal; keys on no row find nothing.
    List<ShardKey> keys = List.of(ShardKey.of("ka0"), ShardKey.of("kc2"), ShardKey.of("it's \\ \"odd\""));
    CrossShardQuery q = CrossShardQuery.builder("tags", plan.sql()).keys(keys).build();
    List<String> found = data.queryList(q, plan, r -> r.getString("skey"));
    assertEquals(List.of("ka0", "kc2"), found);
  }

  /**
   * A part whose SQL bounds its rows to one fetch ends its transaction in its one round trip: while its result
   * is still open and unread, no shard holds a transaction or a pool connection for it; a streamed part holds
   * both until its result is closed. A bounded part that fails on the shard leaves no aborted transaction behind, and its
   * connection (the pool's only one) serves the next query.
   */
  @Test
  void aBoundedPartEndsItsTransactionInItsRoundTripAndAFailedOneLeavesNoneOpen() throws Exception {
    String app = "qexec-whole-" + UUID.randomUUID().toString().substring(0, 8);
    ShardmapData d = open(PartGuard.NONE, 1, app);
    try {
      String top = "SELECT id, v FROM " + users + " ORDER BY id DESC LIMIT 5";
      try (QueryResult r = d.query(CrossShardQuery.builder("users", top).build())) {
        assertEquals(0, inTransaction(app), "bounded parts: every transaction ended with the round trip");
        // ... and their connections are back in the pools (one per shard here) while the result is unread.
        assertEquals(new ArrayList<>(ids).subList(0, 2), d.queryList(CrossShardQuery.builder("users", "SELECT id FROM "
            + users + " ORDER BY id LIMIT 2").build(), row -> row.getLong(1)));
        List<Long> got = new ArrayList<>();
        while (r.next()) {
          got.add(r.getLong(1));
        }
        assertEquals(new ArrayList<>(ids.descendingSet()).subList(0, 5), got);
      }
      try (QueryResult r = d.query(CrossShardQuery.builder("users", "SELECT id FROM " + users + " ORDER BY id")
          .fetchSize(7).build())) {
        assertEquals(3, inTransaction(app), "streamed parts keep their transaction (and cursor) open");
        assertTrue(r.next());
      }
      assertEquals(0, inTransaction(app), "closing the result ended them");

      long poison = client.route("users", ids.first()).shard().equals("s2") ? ids.first() : ids.stream()
          .filter(id -> client.route("users", id).shard().equals("s2")).findFirst().orElseThrow();
      CrossShardQuery failing = CrossShardQuery.builder("users", "SELECT id FROM " + users
          + " WHERE 1 / (id - ?) <> 7 ORDER BY id LIMIT 3").params(poison).build();
      ShardmapException e = assertThrows(ShardmapException.class, () -> d.queryList(failing, row -> row.getLong(1)));
      assertTrue(e.getMessage().contains("s2: ") && e.getMessage().contains("division by zero"), e.getMessage());
      assertEquals(0, inTransaction(app), "the failed part's aborted transaction was rolled back");
      assertEquals(new ArrayList<>(ids).subList(0, 5), d.queryList(CrossShardQuery.builder("users", "SELECT id FROM "
          + users + " ORDER BY id LIMIT 5").build(), row -> row.getLong(1)), "the same connections serve again");
    } finally {
      d.close();
    }
  }

  /**
   * The explicit API for what the planner cannot derive: statements the planner refuses (string_agg, a window
   * function) run on every shard as written, still limited to the rows each shard owns (the planted copies
   * never show), and the caller's merge combines them: concatenated, merged in order with a limit, grouped.
   */
  @Test
  void anExplicitMergeRunsTheStatementAsWrittenAndCountsEachRowOnce() throws Exception {
    String perKey = "SELECT skey, string_agg(n::text, ',') AS ns, count(*) AS c FROM " + tags + " GROUP BY skey";
    ShardmapException refused = assertThrows(ShardmapException.class,
        () -> data.query(CrossShardQuery.builder("tags", perKey).build()));
    assertTrue(refused.getMessage().contains("string_agg"), refused.getMessage());
    Map<String, String> got = new TreeMap<>();
    for (Object[] r : data.queryList(CrossShardQuery.builder("tags", perKey).merge(Merge.concat()).build(),
        r -> new Object[] {r.getString(1), r.getString(2), r.getLong(3)})) {
      assertEquals(1L, r[2], "one row per key: " + r[0]);
      assertTrue(got.put((String) r[0], (String) r[1]) == null, "each key once: " + r[0]);
    }
    Map<String, String> expected = new TreeMap<>();
    tagRows.forEach((k, n) -> expected.put(k, String.valueOf(n)));
    assertEquals(expected, got);

    List<Long> first = data.queryList(CrossShardQuery.builder("users", "SELECT id, row_number() OVER (PARTITION BY id "
        + "ORDER BY v) AS rn FROM " + users + " ORDER BY id").merge(Merge.orderedBy(Merge.asc("id")).offset(3).limit(40))
        .build(), r -> {
          assertEquals(1L, r.getLong("rn"));
          return r.getLong("id");
        });
    assertEquals(new ArrayList<>(ids).subList(3, 43), first);

    List<String> groups = data.queryList(CrossShardQuery.builder("users", "SELECT length(v) AS len, count(*) AS c, "
        + "min(id) AS lo, max(id) AS hi FROM " + users + " GROUP BY 1").merge(Merge.groupedBy("len").count("c")
        .min("lo").max("hi").orderBy(Merge.desc("len"))).build(),
        r -> r.getLong(1) + ":" + r.getLong(2) + ":" + r.getLong(3) + ":" + r.getLong(4));
    TreeMap<Integer, List<Long>> byLength = new TreeMap<>(java.util.Comparator.reverseOrder());
    for (long id : ids) {
      byLength.computeIfAbsent(("v" + id).length(), k -> new ArrayList<>()).add(id);
    }
    List<String> want = new ArrayList<>();
    byLength.forEach((len, l) -> want.add(len + ":" + l.size() + ":" + java.util.Collections.min(l) + ":"
        + java.util.Collections.max(l)));
    assertEquals(want, groups);

    ShardmapException badMerge = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder(
        "users", "SELECT id FROM " + users).merge(Merge.orderedBy(Merge.asc("created"))).build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, badMerge.code());
    assertTrue(badMerge.getMessage().contains("merge"), badMerge.getMessage());
  }

  /** Backends of {@code app} on all shards inside a transaction (open, or aborted and not yet rolled back). */
  long inTransaction(String app) throws SQLException {
    long n = 0;
    for (int i = 0; i < 3; i++) {
      try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM "
          + "pg_stat_activity WHERE application_name = ? AND state LIKE 'idle in transaction%'")) {
        ps.setString(1, app);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          n += rs.getLong(1);
        }
      }
    }
    return n;
  }

  @Test
  void badInputIsRefusedBeforeAnythingIsSent() throws Exception {
    String app = "qexec-bad-" + UUID.randomUUID().toString().substring(0, 8);
    ShardmapData fresh = open(PartGuard.NONE, 2, app);
    try {
      OrderedTestPlan plan = usersPlan("");
      assertField(ErrorCode.NOT_FOUND, "nope", () -> fresh.query(CrossShardQuery.builder("nope", plan.sql()).build(), plan));
      assertField(ErrorCode.INVALID_ARGUMENT, "keys", () -> fresh.query(CrossShardQuery.builder("users", plan.sql())
          .keys(ShardKey.of("text-key")).build(), plan));
      assertField(ErrorCode.INVALID_ARGUMENT, "keyRange", () -> fresh.query(CrossShardQuery.builder("tags", plan.sql())
          .keyRange(ShardKey.of("a"), ShardKey.of("b")).build(), plan));
      assertField(ErrorCode.INVALID_ARGUMENT, "params", () -> fresh.query(CrossShardQuery.builder("users", plan.sql())
          .params(1).build(), plan));
      OrderedTestPlan otherTable = new OrderedTestPlan("SELECT 1 FROM other WHERE {owned}", "other", "k", 0, List.of("x"));
      assertField(ErrorCode.INVALID_ARGUMENT, "sql", () -> fresh.query(CrossShardQuery.builder("users", "x").build(), otherTable));
      assertField(ErrorCode.INVALID_ARGUMENT, "sql", () -> CrossShardQuery.builder("users", " "));
      assertField(ErrorCode.INVALID_ARGUMENT, "sql", () -> CrossShardQuery.builder("users", null));
      assertField(ErrorCode.INVALID_ARGUMENT, "keyspace", () -> CrossShardQuery.builder("", "SELECT 1"));
      assertField(ErrorCode.INVALID_ARGUMENT, "fetchSize", () -> CrossShardQuery.builder("users", "SELECT 1").fetchSize(-1));
      assertField(ErrorCode.INVALID_ARGUMENT, "deadline", () -> CrossShardQuery.builder("users", "SELECT 1")
          .deadline(Duration.ZERO));
      assertField(ErrorCode.INVALID_ARGUMENT, "keyRange", () -> CrossShardQuery.builder("users", "SELECT 1")
          .keyRange(ShardKey.of(5), ShardKey.of(5)));
      assertField(ErrorCode.INVALID_ARGUMENT, "keys", () -> CrossShardQuery.builder("users", "SELECT 1").keys(List.of()));
      assertEquals(0, backends(app), "no shard saw a connection of these refused queries");
      // The check itself: a good query does show up.
      assertEquals(ids.size(), idsOf(fresh, CrossShardQuery.builder("users", plan.sql()).build(), plan).size());
      assertTrue(backends(app) > 0);
    } finally {
      fresh.close();
    }
  }

  @Test
  void throughThePlannerAndMergeTheAnswerIsOneDatabases() throws Exception {
    List<Long> all = new ArrayList<>(ids);
    // ORDER BY ... DESC with OFFSET and LIMIT: a per-shard limit, the offset skipped while merging.
    CrossShardQuery top = CrossShardQuery.builder("users", "SELECT id, v FROM " + users
        + " ORDER BY id DESC LIMIT ? OFFSET ?").params(5, 3).fetchSize(2).build();
    List<Long> expected = new ArrayList<>();
    for (int i = all.size() - 1 - 3; i >= all.size() - 3 - 5; i--) {
      expected.add(all.get(i));
    }
    assertEquals(expected, data.queryList(top, r -> r.getLong("id")));
    // Aggregates over every shard, counted once despite the planted copies.
    java.math.BigDecimal sum = java.math.BigDecimal.ZERO;
    for (long id : all) {
      sum = sum.add(java.math.BigDecimal.valueOf(id));
    }
    try (QueryResult r = data.query(CrossShardQuery.builder("users", "SELECT count(*) AS n, sum(id) AS total FROM "
        + users).build())) {
      assertTrue(r.next());
      assertEquals((long) all.size(), r.getLong("n"));
      assertEquals(sum, r.getBigDecimal("total"));
      assertFalse(r.next());
      assertEquals(3, r.shards().size());
    }
    // A key range through the planner, grouped.
    long lo = -10 * STEP;
    long hi = 40 * STEP;
    List<Long> grouped = data.queryList(CrossShardQuery.builder("users", "SELECT count(*) FROM " + users
        + " WHERE v LIKE 'v%'").keyRange(ShardKey.of(lo), ShardKey.of(hi)).build(), r -> r.getLong(1));
    assertEquals(List.of((long) ids.subSet(lo, hi).size()), grouped);
    // Refused by the planner before anything is sent: the clause is named.
    ShardmapException w = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
        "SELECT id, row_number() OVER (ORDER BY id) FROM " + users).build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, w.code(), w.getMessage());
    ShardmapException d = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
        "DELETE FROM " + users).build()));
    assertEquals(ErrorCode.INVALID_ARGUMENT, d.code(), d.getMessage());
  }

  static void assertField(ErrorCode code, String field, Runnable r) {
    ShardmapException e = assertThrows(ShardmapException.class, r::run);
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains(field), e.getMessage());
  }

  /** Backends of {@code app} on all shards. */
  long backends(String app) throws SQLException {
    long n = 0;
    for (int i = 0; i < 3; i++) {
      try (Connection c = pg.shard(i).connect();
           PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM pg_stat_activity WHERE application_name = ?")) {
        ps.setString(1, app);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          n += rs.getLong(1);
        }
      }
    }
    return n;
  }

  /** Statements still running on any shard whose text contains {@code marker}. */
  long running(String marker) throws SQLException {
    long n = 0;
    for (int i = 0; i < 3; i++) {
      try (Connection c = pg.shard(i).connect(); PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM "
          + "pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, ?) > 0")) {
        ps.setString(1, marker);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          n += rs.getLong(1);
        }
      }
    }
    return n;
  }

  @Test
  void thePartsRunReadOnlyRepeatableReadOnTheirOwnPools() throws Exception {
    Map<String, String> seen = new ConcurrentHashMap<>();
    PartGuard recorder = (c, keyspace, shard, map) -> {
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT current_setting('transaction_isolation'), "
          + "current_setting('transaction_read_only'), current_setting('statement_timeout'), "
          + "current_setting('application_name')")) {
        rs.next();
        seen.put(shard, rs.getString(1) + "/" + rs.getString(2) + "/" + rs.getString(3));
      }
      return null;
    };
    data.close();
    data = open(recorder, 4, "");
    OrderedTestPlan plan = usersPlan("");
    idsOf(data, CrossShardQuery.builder("users", plan.sql()).deadline(Duration.ofSeconds(20)).build(), plan);
    assertEquals(3, seen.size());
    for (String s : seen.values()) {
      assertTrue(s.startsWith("repeatable read/on/"), s);
      String timeout = s.substring("repeatable read/on/".length());
      assertTrue(timeout.endsWith("s") && !timeout.equals("0"), "statement_timeout from the deadline: " + timeout);
    }
  }

  @Test
  void queriesHoldingEveryQueryConnectionDoNotBlockSingleKeyCalls() throws Exception {
    data.close();
    data = open(PartGuard.NONE, 1, "");
    OrderedTestPlan plan = usersPlan("");
    CrossShardQuery q = CrossShardQuery.builder("users", plan.sql()).fetchSize(1).build();
    try (QueryResult held = data.query(q, plan)) {
      assertTrue(held.next()); // every shard's only query connection is now held, its cursor open
      ShardmapException full = assertThrows(ShardmapException.class, () -> data.query(q, plan));
      assertEquals(ErrorCode.UNAVAILABLE, full.code(), full.getMessage());
      for (String s : SHARDS) {
        assertTrue(full.getMessage().contains(s + ":"), "names every shard: " + full.getMessage());
      }
      // Single-key calls have pools of their own.
      long id = ids.first();
      String v = data.inTransaction("users", id, c -> {
        try (PreparedStatement ps = c.prepareStatement("SELECT v FROM " + users + " WHERE id = ?")) {
          ps.setLong(1, id);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return rs.getString(1);
          }
        }
      });
      assertEquals("v" + id, v);
    }
    assertEquals(ids.size(), idsOf(data, q, plan).size(), "closing gave the connections back");
  }

  @Test
  void aQueryWaitingForAQueryConnectionEndsAtItsDeadlineNotThePoolTimeout() throws Exception {
    data.close();
    data = open(PartGuard.NONE, 1, "", Duration.ofSeconds(8));
    OrderedTestPlan plan = usersPlan("");
    try (QueryResult held = data.query(CrossShardQuery.builder("users", plan.sql()).fetchSize(1).build(), plan)) {
      assertTrue(held.next());
      long start = System.nanoTime();
      ShardmapException e = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
          plan.sql()).deadline(Duration.ofMillis(300)).build(), plan));
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
      assertEquals(ErrorCode.DEADLINE_EXCEEDED, e.code(), e.getMessage());
      // The bound the executor enforces: it does not wait out the pool's 8 s for parts that hold nothing.
      assertTrue(tookMs < 6000, "returned after " + tookMs + " ms");
    }
    assertEquals(ids.size(), idsOf(data, CrossShardQuery.builder("users", plan.sql()).build(), plan).size(),
        "the waiting workers gave their late connections back");
  }

  @Test
  void theDeadlineCancelsEveryStatementAndLeavesNoneRunning() throws Exception {
    String marker = "qexec_deadline_" + UUID.randomUUID().toString().substring(0, 6);
    OrderedTestPlan plan = usersPlan(" AND pg_sleep(0.2) IS NOT NULL AND '" + marker + "' <> ''");
    CrossShardQuery q = CrossShardQuery.builder("users", plan.sql()).deadline(Duration.ofMillis(700)).build();
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.query(q, plan));
    assertEquals(ErrorCode.DEADLINE_EXCEEDED, e.code(), e.getMessage());
    assertEquals(0, running(marker), "no statement of the query is left on any shard");
    // The pools still serve (the cancelled connections were evicted, not reused).
    assertEquals(ids.size(), idsOf(data, CrossShardQuery.builder("users", usersPlan("").sql()).build(), usersPlan("")).size());
  }

  @Test
  void closingEarlyEndsEveryPartAndLeavesNothingRunning() throws Exception {
    String marker = "qexec_close_" + UUID.randomUUID().toString().substring(0, 6);
    OrderedTestPlan plan = usersPlan(" AND '" + marker + "' <> ''");
    try (QueryResult r = data.query(CrossShardQuery.builder("users", plan.sql()).fetchSize(2).build(), plan)) {
      assertTrue(r.next());
      assertTrue(r.next());
    }
    assertEquals(0, running(marker));
    try (Connection c = pg.shard(0).connect(); PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM "
        + "pg_stat_activity WHERE state LIKE 'idle in transaction%' AND strpos(query, ?) > 0")) {
      ps.setString(1, marker);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        assertEquals(0, rs.getLong(1), "every part's transaction ended");
      }
    }
  }

  @Test
  void onReplicasEachShardIsReadOnItsReplica() throws Exception {
    PostgresFixture.PgInstance p1 = pg.shard(1);
    String replicaDb = "r_" + users;
    p1.exec("CREATE DATABASE " + replicaDb);
    try {
      PostgresFixture.PgInstance replica = new PostgresFixture.PgInstance(p1.host(), p1.port(), replicaDb, p1.user(),
          p1.password());
      replica.exec("CREATE TABLE " + users + " (id bigint NOT NULL, v text)");
      List<String> rows = new ArrayList<>();
      for (long id : ids) {
        if (client.route("users", id).shard().equals("s2")) {
          rows.add("(" + id + ", 'replica')");
        }
      }
      replica.exec("INSERT INTO " + users + " VALUES " + String.join(", ", rows));
      fleet.get().admin().updateShard(io.shardmap.proto.v1.UpdateShardRequest.newBuilder().setShard(
          io.shardmap.proto.v1.Shard.newBuilder().setName("s2").setPrimary(ShardmapFleet.endpoint(p1))
              .addReplicas(ShardmapFleet.endpoint(replica))).build());
      io.shardmap.testkit.Await.until(Duration.ofSeconds(20), "the replica is in the map",
          () -> client.shard("s2").replicas().size() == 1);
      OrderedTestPlan plan = usersPlan("");
      List<String> fromReplicas = data.queryList(CrossShardQuery.builder("users", plan.sql()).onReplicas(true).build(),
          plan, r -> r.getString("v"));
      assertEquals(ids.size(), fromReplicas.size());
      assertEquals(rows.size(), fromReplicas.stream().filter("replica"::equals).count(), "s2's part ran on its replica");
      List<String> fromPrimaries = data.queryList(CrossShardQuery.builder("users", plan.sql()).build(), plan,
          r -> r.getString("v"));
      assertEquals(0, fromPrimaries.stream().filter("replica"::equals).count());
    } finally {
      fleet.get().admin().updateShard(io.shardmap.proto.v1.UpdateShardRequest.newBuilder().setShard(
          io.shardmap.proto.v1.Shard.newBuilder().setName("s2").setPrimary(ShardmapFleet.endpoint(p1))).build());
      io.shardmap.testkit.Await.until(Duration.ofSeconds(20), "the replica is gone",
          () -> client.shard("s2").replicas().isEmpty());
      data.close();
      data = null;
      p1.exec("DROP DATABASE IF EXISTS " + replicaDb + " WITH (FORCE)");
    }
  }

  @Test
  void aGuardAskingForANewerMapRerunsTheQueryThere() throws Exception {
    // A move of the range holding `moved` from its owner to the next shard: rows copied, then the cutover.
    long moved = ids.first();
    String source = client.route("users", moved).shard();
    String target = next(source);
    CountDownLatch asked = new CountDownLatch(1);
    AtomicInteger checks = new AtomicInteger();
    PartGuard fence = (c, keyspace, shard, map) -> {
      checks.incrementAndGet();
      if (shard.equals(source) && map.route(moved).shard().equals(source)) {
        asked.countDown();
        return new PartGuard.Rerun("test fence on " + source, m -> !m.route(moved).shard().equals(source));
      }
      return null;
    };
    data.close();
    data = open(fence, 4, "");
    OrderedTestPlan plan = usersPlan("");
    long[] ranAt = new long[1];
    CompletableFuture<List<Long>> result = CompletableFuture.supplyAsync(() -> {
      try (QueryResult q = data.query(CrossShardQuery.builder("users", plan.sql()).deadline(Duration.ofSeconds(20))
          .build(), plan)) {
        List<Long> got = new ArrayList<>();
        while (q.next()) {
          got.add(q.getLong(1));
        }
        ranAt[0] = q.revision();
        return got;
      } catch (SQLException e) {
        throw new RuntimeException(e);
      }
    });
    assertTrue(asked.await(10, TimeUnit.SECONDS));
    io.shardmap.core.Route r = client.coreRoute("users", moved);
    String range = "id >= " + (r.range().unboundedBelow() ? Long.MIN_VALUE : io.shardmap.core.Keys.decodeInt64(r.range().start()))
        + (r.range().unboundedAbove() ? "" : " AND id < " + io.shardmap.core.Keys.decodeInt64(r.range().end()));
    List<String> copy = new ArrayList<>();
    try (Connection c = pg.shard(SHARDS.indexOf(source)).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT id, v FROM " + users + " WHERE " + range + " AND v <> 'copy'")) {
      while (rs.next()) {
        copy.add("(" + rs.getLong(1) + ", '" + rs.getString(2) + "')");
      }
    }
    pg.shard(SHARDS.indexOf(target)).exec("DELETE FROM " + users + " WHERE " + range);
    pg.shard(SHARDS.indexOf(target)).exec("INSERT INTO " + users + " VALUES " + String.join(", ", copy));
    long cutover = fleet.get().admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users")
        .setRange(r.range().toProto(KeyType.KEY_TYPE_INT64)).setShard(target).build()).getRevision();
    assertEquals(new ArrayList<>(ids), result.get(20, TimeUnit.SECONDS), "every row once, from the new owner");
    assertTrue(ranAt[0] >= cutover, "ran again at a map with the cutover: " + ranAt[0] + " < " + cutover);
    assertTrue(checks.get() >= 3, "the second run's parts were checked too: " + checks.get());
  }

  @Test
  void aRerunThatNeverComesEndsAtTheDeadline() throws Exception {
    data.close();
    data = open((c, keyspace, shard, map) -> new PartGuard.Rerun("always stale", m -> false), 4, "");
    OrderedTestPlan plan = usersPlan("");
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.query(CrossShardQuery.builder("users",
        plan.sql()).deadline(Duration.ofMillis(400)).build(), plan));
    assertEquals(ErrorCode.DEADLINE_EXCEEDED, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains("always stale"), e.getMessage());
  }
}
