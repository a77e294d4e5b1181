package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The join the issue asks for: a sharded table (users by user_id over three shards) joined with a reference
 * table (countries) of its keyspace, each shard's part run through the SDK on that shard alone (the copy is
 * local), and the union of the parts compared with the same query on one unsharded database holding every
 * row (the oracle), on random data, before and after reference writes through the SDK.
 */
@Tag("consistency")
class ReferenceJoinTest {
  /** One key per shard of the evenly split range keyspace: s1, s2, s3. */
  static final long[] SHARD_KEYS = {Long.MIN_VALUE + 10, 0, Long.MAX_VALUE - 10};

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3)
      .table("user_id bigint PRIMARY KEY, country text, score int NOT NULL").extension();

  ReferenceTables countries;
  String users;
  String oracleUsers;
  String oracleCountries;
  PgInstance oracle;
  ShardmapClient client;
  ShardmapData data;

  /** The queries, with {users} and {countries} standing for the tables. Every row is per user. */
  static final List<String> QUERIES = List.of(
      "SELECT u.user_id, c.code, c.name, c.region, u.score FROM {users} u JOIN {countries} c ON c.code = u.country",
      "SELECT u.user_id, coalesce(c.name, '?'), c.region IS NULL FROM {users} u LEFT JOIN {countries} c "
          + "ON c.code = u.country",
      "SELECT u.user_id, c.name FROM {users} u JOIN {countries} c ON c.code = u.country "
          + "WHERE c.region = 'eu' AND u.score > 50",
      "SELECT u.user_id FROM {users} u WHERE EXISTS (SELECT 1 FROM {countries} c WHERE c.code = u.country "
          + "AND c.region IS NULL)",
      "SELECT u.user_id, c.population * u.score FROM {users} u JOIN {countries} c ON c.code = u.country "
          + "AND c.population > u.score");

  static final List<String> REGIONS = List.of("eu", "am", "as", "af");

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    users = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("user_id")))
        .addAllRangeShards(f.shardNames()).build());
    countries = new ReferenceTables(f, "code text PRIMARY KEY, name text NOT NULL, region text, population int NOT NULL");
    for (int i = 0; i < 3; i++) {
      countries.create(i);
      countries.guard(i, 1);
    }
    countries.record(List.of("users"), false, f.shardNames(), 1, "code");
    // The oracle: one database holding every row, unsharded and unguarded (tables of their own names).
    oracle = f.shard(0);
    oracleUsers = "oracle_" + users;
    oracleCountries = "oracle_" + countries.name;
    oracle.exec("CREATE TABLE " + oracleUsers + " (user_id bigint PRIMARY KEY, country text, score int NOT NULL)");
    oracle.exec("CREATE TABLE " + oracleCountries + " (code text PRIMARY KEY, name text NOT NULL, region text, "
        + "population int NOT NULL)");
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users").build());
    PgInstance pg = f.shard(0);
    data = ShardmapData.open(client, DataOptions.builder().user(pg.user()).password(pg.password()).maxPoolSize(4)
        .build());
  }

  @AfterEach
  void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (oracle != null) {
      oracle.exec("DROP TABLE IF EXISTS " + oracleUsers);
      oracle.exec("DROP TABLE IF EXISTS " + oracleCountries);
    }
    if (countries != null) {
      countries.close();
    }
  }

  private static int exec(Connection c, String sql, Object... params) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.length; i++) {
        ps.setObject(i + 1, params[i]);
      }
      return ps.executeUpdate();
    }
  }

  private static List<String> rows(Connection c, String sql) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      int n = rs.getMetaData().getColumnCount();
      while (rs.next()) {
        StringBuilder b = new StringBuilder();
        for (int k = 1; k <= n; k++) {
          b.append(k > 1 ? "|" : "").append(rs.getString(k));
        }
        out.add(b.toString());
      }
    }
    return out;
  }

  /** A reference write through the SDK, made on the oracle too. */
  private void reference(String sql, Object... params) throws SQLException {
    int n = data.writeReference("users", countries.name, c -> exec(c, sql.replace("{countries}", countries.name),
        params));
    try (Connection c = oracle.connect()) {
      assertEquals(n, exec(c, sql.replace("{countries}", oracleCountries), params), sql);
    }
  }

  /** Each query run on every shard through the SDK (its part local to that shard), the union against the oracle. */
  private void compare(long seed, String when) throws SQLException {
    for (String q : QUERIES) {
      List<String> union = new ArrayList<>();
      Set<String> shards = new HashSet<>();
      for (long key : SHARD_KEYS) {
        shards.add(client.route("users", key).shard());
        union.addAll(data.read("users", key, c -> rows(c, q.replace("{users}", users)
            .replace("{countries}", countries.name))));
      }
      assertEquals(3, shards.size(), "one part per shard");
      List<String> expected;
      try (Connection c = oracle.connect()) {
        expected = rows(c, q.replace("{users}", oracleUsers).replace("{countries}", oracleCountries));
      }
      Collections.sort(union);
      Collections.sort(expected);
      assertEquals(expected, union, "seed " + seed + ", " + when + ": " + q);
      if (!q.contains("EXISTS")) { // a subquery is not planned across shards
        // The same join as one cross-shard query: the SDK plans it with the reference table joined on each shard.
        List<String> merged = new ArrayList<>();
        try (QueryResult r = data.query(CrossShardQuery.builder("users", q.replace("{users}", users)
            .replace("{countries}", countries.name)).build())) {
          int n = r.columnLabels().size();
          while (r.next()) {
            StringBuilder b = new StringBuilder();
            for (int k = 1; k <= n; k++) {
              Object v = r.getObject(k); // PostgreSQL's text of a boolean is t/f, as the shards' rows above show it
              b.append(k > 1 ? "|" : "").append(v instanceof Boolean x ? (x ? "t" : "f") : r.getString(k));
            }
            merged.add(b.toString());
          }
        }
        Collections.sort(merged);
        assertEquals(expected, merged, "seed " + seed + ", " + when + ", one cross-shard query: " + q);
      }
    }
  }

  @Test
  void aJoinRunOnEachShardGivesTheRowsOneDatabaseWould() throws Exception {
    long seed = System.nanoTime();
    Random rnd = new Random(seed);
    // Countries: 30 codes, of which users use 36 (some users' countries are not in the table, some null).
    List<String> codes = new ArrayList<>();
    for (int i = 0; i < 36; i++) {
      codes.add("c" + i);
    }
    for (int i = 0; i < 30; i++) {
      String region = rnd.nextInt(6) == 0 ? null : REGIONS.get(rnd.nextInt(REGIONS.size()));
      reference("INSERT INTO {countries} VALUES (?, ?, ?, ?)", codes.get(i), "name " + rnd.nextInt(1000), region,
          rnd.nextInt(200));
    }
    Set<Long> ids = new TreeSet<>();
    while (ids.size() < 400) {
      ids.add(rnd.nextLong());
    }
    List<Object[]> userRows = new ArrayList<>();
    for (long id : ids) {
      userRows.add(new Object[] {id, rnd.nextInt(12) == 0 ? null : codes.get(rnd.nextInt(codes.size())),
          rnd.nextInt(100)});
    }
    data.acrossShards(tx -> {
      for (Object[] u : userRows) {
        exec(tx.connection("users", (long) u[0]), "INSERT INTO " + users + " VALUES (?, ?, ?)", u);
      }
      return null;
    });
    try (Connection c = oracle.connect()) {
      for (Object[] u : userRows) {
        exec(c, "INSERT INTO " + oracleUsers + " VALUES (?, ?, ?)", u);
      }
    }
    for (int i = 0; i < 3; i++) {
      try (Connection c = fleet.get().shard(i).connect()) {
        assertTrue(rows(c, "SELECT count(*) FROM " + users).get(0).compareTo("0") > 0, "users on every shard");
      }
    }
    compare(seed, "after loading");

    // Reference writes through the SDK change every copy: the joins follow on every shard.
    for (int round = 0; round < 3; round++) {
      reference("UPDATE {countries} SET region = ? WHERE code = ?", REGIONS.get(rnd.nextInt(REGIONS.size())),
          codes.get(rnd.nextInt(30)));
      reference("UPDATE {countries} SET population = population + ? WHERE region = ?", rnd.nextInt(50),
          REGIONS.get(rnd.nextInt(REGIONS.size())));
      reference("DELETE FROM {countries} WHERE code = ?", codes.get(rnd.nextInt(36)));
      reference("INSERT INTO {countries} VALUES (?, ?, NULL, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name",
          codes.get(30 + rnd.nextInt(6)), "late " + round, rnd.nextInt(200));
      compare(seed, "after reference writes, round " + round);
    }
  }
}
