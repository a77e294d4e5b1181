package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.cli.CtlRun.Result;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code shardmapctl query} and {@code count} end to end: real etcd, a directory server on a loopback socket
 * (the CLI's production channel) and three PostgreSQL shards. A range keyspace of integer ids holds 300 rows
 * on the shards the map names, plus a copy of every tenth row planted on the next shard (what a move leaves
 * behind): the commands must count and return each row once. Refusals are run as a PostgreSQL role with
 * CONNECTION LIMIT 0, so a command that reached any shard would fail with that error instead of the refusal.
 */
@Tag("integration")
@Timeout(120)
class QueryCommandsTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  static final long STEP = Long.MAX_VALUE / 160;

  @RegisterExtension
  static final ShardmapFleetExtension FLEET = ShardmapFleet.builder().sockets().shards(3)
      .table("id bigint NOT NULL, v text").extension();

  static PostgresFixture pg;
  static String users;
  static String server;
  static String noConnections;
  static final TreeSet<Long> ids = new TreeSet<>();
  static final Map<String, Long> perShard = new TreeMap<>();

  @BeforeAll
  static void start() throws Exception {
    ShardmapFleet f = FLEET.get();
    pg = f.postgres();
    users = f.table();
    server = f.targets().get(0);
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id"))).addAllRangeShards(SHARDS).build());
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("tags")
        .setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_HASH)
        .addTables(ShardedTable.newBuilder().setName("tagged").setKeyColumn("tag")))
        .addAllHashBuckets(List.of("s1", "s2", "s3", "s1")).build());
    Map<String, List<String>> inserts = new TreeMap<>();
    try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(server).keyspaces("users")
        .build())) {
      for (int i = 0; i < 300; i++) {
        long id = (i - 150) * STEP + i;
        ids.add(id);
        String owner = client.route("users", id).shard();
        perShard.merge(owner, 1L, Long::sum);
        inserts.computeIfAbsent(owner, s -> new ArrayList<>()).add("(" + id + ", 'v" + id + "')");
        if (i % 10 == 0) {
          inserts.computeIfAbsent(next(owner), s -> new ArrayList<>()).add("(" + id + ", 'copy')");
        }
      }
    }
    for (Map.Entry<String, List<String>> e : inserts.entrySet()) {
      pg.shard(SHARDS.indexOf(e.getKey())).exec("INSERT INTO " + users + " VALUES " + String.join(", ",
          e.getValue()));
    }
    noConnections = "nocon_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    for (int i = 0; i < 3; i++) {
      try {
        pg.shard(i).exec("CREATE ROLE " + noConnections + " LOGIN CONNECTION LIMIT 0");
      } catch (SQLException e) {
        if (!"42710".equals(e.getSQLState())) { // several shards may share one server, and roles are per server
          throw e;
        }
      }
    }
  }

  @AfterAll
  static void dropRole() throws SQLException {
    for (int i = 0; i < 3; i++) {
      if (notOnS2 != null) {
        pg.shard(i).exec("REVOKE ALL ON " + users + " FROM " + notOnS2);
      }
    }
    for (int i = 0; i < 3; i++) {
      pg.shard(i).exec("DROP ROLE IF EXISTS " + noConnections);
      if (notOnS2 != null) {
        pg.shard(i).exec("DROP ROLE IF EXISTS " + notOnS2);
      }
    }
  }

  /** A role that may read the table on s1 and s3 but not on s2: s2's part fails there, the others answer. */
  static String notOnS2;

  static void createRoleNotOnS2() throws SQLException {
    String role = "nos2_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    String password = pg.shard(0).password();
    for (int i = 0; i < 3; i++) {
      try {
        pg.shard(i).exec("CREATE ROLE " + role + " LOGIN" + (password == null || password.isEmpty() ? ""
            : " PASSWORD '" + password.replace("'", "''") + "'"));
      } catch (SQLException e) {
        if (!"42710".equals(e.getSQLState())) {
          throw e;
        }
      }
    }
    notOnS2 = role;
    pg.shard(0).exec("GRANT SELECT ON " + users + " TO " + role);
    pg.shard(2).exec("GRANT SELECT ON " + users + " TO " + role);
  }

  @Test
  void aFailedShardFailsTheCommandUnlessPartial() throws SQLException {
    createRoleNotOnS2();

    Result failed = ctlAs(notOnS2, "count", "users", users);
    assertEquals(2, failed.code(), "a SQL error on a shard (class 42) is INVALID_ARGUMENT: " + failed);
    assertTrue(failed.err().contains("s2: ") && failed.err().contains("permission denied"), failed::toString);
    assertEquals("", failed.out(), failed::toString);

    Result partial = ctlAs(notOnS2, "count", "users", users, "--partial");
    assertEquals(0, partial.code(), partial::toString);
    long healthy = perShard.get("s1") + perShard.get("s3");
    assertTrue(partial.out().startsWith("count     " + healthy + "\nrevision  "), partial::toString);
    assertTrue(partial.out().contains("\npartial   yes: the failed shards' rows are not counted\n"), partial::toString);
    assertTrue(Pattern.compile("(?m)^SHARD +COUNT +ROWS +TIME +ERROR$").matcher(partial.out()).find(),
        partial::toString);
    assertTrue(Pattern.compile("(?m)^s2 +- +0 +.*permission denied").matcher(partial.out()).find(), partial::toString);
    assertTrue(Pattern.compile("(?m)^s1 +" + perShard.get("s1") + " +1 +.* +-$").matcher(partial.out()).find(),
        partial::toString);
    assertTrue(partial.err().startsWith("warning: partial result: the rows of s2 are missing (s2: "),
        partial::toString);

    Result json = ctlAs(notOnS2, "-o", "json", "count", "users", users, "--partial");
    assertEquals(0, json.code(), json::toString);
    assertTrue(json.out().startsWith("{\"summary\":{\"total\":" + healthy + ",\"revision\":"), json::toString);
    assertTrue(json.out().contains(",\"partial\":true,"), json::toString);
    assertTrue(json.out().contains("{\"shard\":\"s2\",\"count\":null,\"rows\":0,"), json::toString);
  }

  static String next(String shard) {
    return SHARDS.get((SHARDS.indexOf(shard) + 1) % SHARDS.size());
  }

  /** Runs shardmapctl against the fleet's server as the fixture's PostgreSQL role. */
  static Result ctl(String... args) {
    return ctlAs(pg.shard(0).user(), args);
  }

  static Result ctlAs(String pgUser, String... args) {
    return CtlRun.as(server, pgUser, pg.shard(0).password(), args);
  }

  @Test
  void countIsEveryRowOnceWithEachShardsCount() {
    Result r = ctl("count", "users", users);

    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().startsWith("count     " + ids.size() + "\nrevision  "), r::toString);
    for (String s : SHARDS) {
      Matcher m = Pattern.compile("(?m)^" + s + " +(\\d+) +1 +").matcher(r.out());
      assertTrue(m.find(), s + " in " + r);
      assertEquals(perShard.get(s), Long.parseLong(m.group(1)), r::toString);
    }
    assertEquals("", r.err());
    // What psql on each shard would add up: the planted copies count twice there.
    assertEquals(ids.size() + 30, naiveSum(), "the planted copies are on the shards");
  }

  /** count(*) on each shard, summed: what an operator with psql would get. */
  static long naiveSum() {
    long n = 0;
    for (int i = 0; i < 3; i++) {
      try (java.sql.Connection c = pg.shard(i).connect(); java.sql.Statement st = c.createStatement();
           java.sql.ResultSet rs = st.executeQuery("SELECT count(*) FROM " + users)) {
        rs.next();
        n += rs.getLong(1);
      } catch (SQLException e) {
        throw new AssertionError(e);
      }
    }
    return n;
  }

  @Test
  void countInJsonIsOneSummaryLine() {
    Result r = ctl("-o", "json", "count", "users", users);

    assertEquals(0, r.code(), r::toString);
    assertTrue(r.out().startsWith("{\"summary\":{\"total\":300,\"revision\":"), r::toString);
    assertTrue(r.out().contains("{\"shard\":\"s1\",\"count\":" + perShard.get("s1") + ",\"rows\":1,"), r::toString);
    assertEquals(1, r.out().lines().count(), r::toString);
  }

  @Test
  void queryWithOrderByAndLimitPrintsTheRowsThenTheFooter() {
    Result r = ctl("query", "users", "SELECT id, v FROM " + users + " WHERE id > ? ORDER BY id DESC LIMIT 3",
        "--param", "0");

    assertEquals(0, r.code(), r::toString);
    List<Long> top = new ArrayList<>(ids.descendingSet()).subList(0, 3);
    List<String> lines = r.out().lines().toList();
    assertTrue(lines.get(0).matches("id +v"), r::toString);
    for (int i = 0; i < 3; i++) {
      assertEquals(top.get(i) + "  v" + top.get(i), lines.get(i + 1), r::toString);
    }
    assertEquals("(3 rows)", lines.get(4));
    assertEquals("", lines.get(5));
    assertTrue(lines.get(6).matches("revision  \\d+"), r::toString);
    assertTrue(lines.get(7).matches("SHARD +ROWS +TIME"), r::toString);
    // Every shard is asked (all targets); each returns at most the LIMIT pushed down to it.
    for (int i = 0; i < 3; i++) {
      assertTrue(lines.get(8 + i).matches(SHARDS.get(i) + " +[0-3] +\\d.*"), r::toString);
    }
    assertEquals(11, lines.size(), r::toString);
  }

  @Test
  void keysAskOnlyTheirOwners() {
    List<Long> some = List.of(ids.first(), ids.last());
    Result r = ctl("query", "users", "SELECT id FROM " + users + " ORDER BY id", "--keys",
        some.get(0) + "," + some.get(1) + ",123");

    assertEquals(0, r.code(), r::toString);
    List<String> lines = r.out().lines().toList();
    assertEquals(List.of("id", Long.toString(some.get(0)), Long.toString(some.get(1)), "(2 rows)"),
        lines.subList(0, 4), r::toString);
    // ids.first() is on s1 and ids.last() on s3; 123 is in s2's range: each owner is asked, once.
    assertEquals(4 + 3 + 3, lines.size(), r::toString);
  }

  @Test
  void aRangeAsksOnlyTheShardsOwningIt() {
    long lo = ids.first();
    long hi = ids.higher(ids.higher(lo)) + 1; // the three smallest ids, all on s1
    Result r = ctl("query", "users", "SELECT count(*) AS n FROM " + users, "--range", lo + ".." + hi);

    assertEquals(0, r.code(), r::toString);
    List<String> lines = r.out().lines().toList();
    assertEquals(List.of("n", "3", "(1 row)"), lines.subList(0, 3), r::toString);
    assertTrue(lines.get(5).matches("SHARD +ROWS +TIME"), r::toString);
    assertTrue(lines.get(6).startsWith("s1 "), r::toString);
    assertEquals(7, lines.size(), "only s1 owns the range: " + r);
  }

  @Test
  void jsonIsOneLinePerRowThenTheSummary() {
    Result r = ctl("query", "users", "SELECT id, v, NULL::int AS nothing, 'a\"b' AS q FROM " + users
        + " ORDER BY id LIMIT 2", "-o", "json");

    assertEquals(0, r.code(), r::toString);
    List<String> lines = r.out().lines().toList();
    Long first = ids.first();
    Long second = ids.higher(first);
    assertEquals("{\"row\":{\"id\":" + first + ",\"v\":\"v" + first + "\",\"nothing\":null,\"q\":\"a\\\"b\"}}",
        lines.get(0));
    assertEquals("{\"row\":{\"id\":" + second + ",\"v\":\"v" + second + "\",\"nothing\":null,\"q\":\"a\\\"b\"}}",
        lines.get(1));
    assertTrue(lines.get(2).matches("\\{\"summary\":\\{\"revision\":\\d+,\"partial\":false,\"shards\":\\[.*"),
        r::toString);
    assertEquals(3, lines.size(), r::toString);
  }

  @Test
  void theRefusalRoleReallyCannotConnect() {
    // The control of the refusal tests below: a valid query as that role does reach for a shard, and fails.
    Result r = ctlAs(noConnections, "count", "users", users);

    // HikariCP reports the refused login as no connection available within connectionTimeout (5 s).
    assertEquals(4, r.code(), r::toString);
    assertTrue(r.err().contains("s1: shardmap-query-s1-primary - Connection is not available"), r::toString);
    assertEquals("", r.out(), r::toString);
  }

  @Test
  void refusalsExitWithTheirCodeAndMessageAndReachNoShard() {
    assertRefused(2, "error: INVALID_ARGUMENT: sql: ", "query", "users", "SELEC id FROM " + users);
    assertRefused(2, "error: INVALID_ARGUMENT: sql: ", "query", "users", "DELETE FROM " + users);
    assertRefused(2, "error: INVALID_ARGUMENT: sql: window functions cannot be merged across shards (in select list): "
        + "row_number() OVER (ORDER BY id)", "query", "users", "SELECT id, row_number() OVER (ORDER BY id) FROM " + users);
    assertRefused(2, "error: INVALID_ARGUMENT: sql: table nosuch", "query", "users", "SELECT * FROM nosuch");
    assertRefused(2, "error: INVALID_ARGUMENT: --keys[1]: ", "query", "users", "SELECT id FROM " + users, "--keys",
        "1,abc");
    assertRefused(3, "error: NOT_FOUND: keyspace 'nosuch' does not exist", "query", "nosuch", "SELECT 1");
    assertRefused(2, "error: INVALID_ARGUMENT: keyRange: keyspace 'tags' uses ", "query", "tags",
        "SELECT count(*) FROM tagged", "--range", "a..b");
    assertRefused(2, "error: INVALID_ARGUMENT: params: ", "query", "users", "SELECT id FROM " + users
        + " WHERE id > ?");
    assertRefused(2, "error: INVALID_ARGUMENT: table: 'orders' is not a sharded table of keyspace 'users' (its "
        + "tables: " + users + ")", "count", "users", "orders");
    assertRefused(2, "error: usage: give either --range or --keys, not both", "count", "users", users, "--range",
        "..", "--keys", "1");
  }

  static void assertRefused(int code, String message, String... args) {
    Result r = ctlAs(noConnections, args);
    assertEquals(code, r.code(), r::toString);
    assertTrue(r.err().contains(message), "expected '" + message + "' in " + r);
    assertEquals("", r.out(), r::toString);
  }
}
