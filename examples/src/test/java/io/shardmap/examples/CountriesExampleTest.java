package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example's reference table against real etcd, a directory server, the migrator and three PostgreSQL
 * shards, as deploy/local/up.sh sets it up: {@code countries} declared for the users keyspace from shard 1;
 * {@code countries --set} changes every copy (read on each shard directly); users signed up with a country
 * are counted per country by the cross-shard join, as one database holding every row counts them; a psql
 * write to one copy is refused naming the table.
 */
@Tag("integration")
class CountriesExampleTest {
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(3)
      .table("id bigint PRIMARY KEY, name text NOT NULL, country text").extension();

  PostgresFixture pg;
  String users;
  String countries;

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    users = f.table();
    countries = users + "_countries";
    f.execOnShards("CREATE TABLE " + countries + " (code text PRIMARY KEY, name text NOT NULL)");
    f.shard(0).exec("INSERT INTO " + countries + " VALUES ('fr', 'France'), ('de', 'Germany')");
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id")))
        .addAllRangeShards(f.shardNames()).build());
    try (Migrator m = Migrator.open(MigratorOptions.builder().etcdEndpoints(f.etcd().clientEndpoints())
        .etcdPrefix(f.prefix()).pgUser(pg.shard(0).user()).pgPassword(pg.shard(0).password()).build())) {
      m.addReference(countries, List.of("users"), false, f.shardNames().get(0), line -> { });
    }
  }

  @AfterEach
  void stop() throws Exception {
    fleet.get().execOnShards("DROP TABLE IF EXISTS " + countries);
  }

  record Result(int exit, String out, String err) {}

  private Result run(String... command) {
    List<String> args = new ArrayList<>(List.of(command));
    args.addAll(List.of("--directory", fleet.get().targets().get(0), "--pg-user", pg.shard(0).user(),
        "--start-timeout", "10s", "--table", users));
    if (!command[0].equals("signup")) {
      args.addAll(List.of("--countries-table", countries));
    }
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = UsersExample.commandLine().setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true))
        .execute(args.toArray(String[]::new));
    return new Result(exit, out.toString(), err.toString());
  }

  private List<String> copy(int shard) throws SQLException {
    List<String> rows = new ArrayList<>();
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT code, name FROM " + countries + " ORDER BY code")) {
      while (rs.next()) {
        rows.add(rs.getString(1) + "=" + rs.getString(2));
      }
    }
    return rows;
  }

  @Test
  void referenceWritesReachEveryCopyAndTheJoinCountsAsOneDatabase() throws Exception {
    Result set = run("countries", "--set", "it", "Italy");
    assertEquals(0, set.exit(), set.out() + set.err());
    assertTrue(set.out().contains("Set country it = 'Italy' on every copy"), set.out());
    Result rename = run("countries", "--set", "fr", "République française");
    assertEquals(0, rename.exit(), rename.out() + rename.err());
    List<String> expected = List.of("de=Germany", "fr=République française", "it=Italy");
    for (int i = 0; i < 3; i++) {
      assertEquals(expected, copy(i), "copy on shard " + i);
    }

    List<String> names = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      names.add("u" + i);
    }
    List<String> fr = new ArrayList<>(List.of("signup", "--country", "fr"));
    fr.addAll(names);
    assertEquals(0, run(fr.toArray(String[]::new)).exit());
    assertEquals(0, run("signup", "a", "b", "c", "--country", "it").exit());
    assertEquals(0, run("signup", "nobody").exit());

    // The oracle: the same count over every shard's rows, joined with one copy, in one database's terms.
    Result r = run("countries");
    assertEquals(0, r.exit(), r.out() + r.err());
    String perCountry = r.out().substring(0, r.out().indexOf("The countries, as read"));
    assertTrue(perCountry.matches("(?s).*\\n  République française\\s+12\\n  Italy\\s+3\\n  \\(none\\)\\s+1\\n"),
        perCountry);

    // A direct write to one copy is refused by its guard, naming the table.
    try (Connection c = pg.shard(1).connect(); Statement s = c.createStatement()) {
      SQLException e = org.junit.jupiter.api.Assertions.assertThrows(SQLException.class,
          () -> s.execute("UPDATE " + countries + " SET name = 'x'"));
      assertEquals("SMR02", e.getSQLState());
      assertTrue(e.getMessage().contains(countries + " is a reference table"), e.getMessage());
    }
    assertEquals(expected, copy(1));
  }

  @Test
  void badOptionsAreRefused() {
    assertEquals(2, run("countries", "--set", "ITA", "Italy").exit());
    assertEquals(2, run("countries", "--set", "it", " ").exit());
  }
}
