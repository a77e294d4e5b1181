package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LookupRequest;
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
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example's {@code signup} against real etcd, a directory server and three PostgreSQL shards: each new
 * user gets a fresh global id, is stored on exactly the shard the map names for it (read on every shard
 * directly), and a second run gives new ids, spread over more than one range; bad options change nothing.
 */
@Tag("integration")
class SignupExampleTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");
  static final Pattern LINE = Pattern.compile("  (\\S+): id (-?\\d+) \\(made at \\S+ by worker (\\d+), sequence \\d+\\) on (\\S+)");

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(3)
      .table("id bigint PRIMARY KEY, name text NOT NULL, country text").extension();

  PostgresFixture pg;
  String users;

  @BeforeEach
  void start() {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    users = f.table();
    // Ranges over the positive ids only, where the layout's ids live: 8 spread slices over 3 shards.
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id")))
        .addAllRangeShards(SHARDS).build());
  }

  record Result(int exit, String out, String err) {}

  private Result run(String... command) {
    List<String> args = new ArrayList<>(List.of(command));
    args.addAll(List.of("--directory", fleet.get().targets().get(0), "--pg-user", pg.shard(0).user(),
        "--start-timeout", "10s", "--table", users));
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = UsersExample.commandLine().setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true))
        .execute(args.toArray(String[]::new));
    return new Result(exit, out.toString(), err.toString());
  }

  /** Every user as the shards hold it: id -> "name/country@shard". */
  private Map<Long, String> rows() throws SQLException {
    Map<Long, String> all = new HashMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT id, name, country FROM " + users)) {
        while (rs.next()) {
          String was = all.put(rs.getLong(1), rs.getString(2) + "/" + rs.getString(3) + "@" + SHARDS.get(i));
          assertEquals(null, was, "id " + rs.getLong(1) + " on two shards");
        }
      }
    }
    return all;
  }

  private String owner(long id) {
    return fleet.get().read().lookup(LookupRequest.newBuilder().setKeyspace("users")
        .setKey(Key.newBuilder().setIntKey(id)).build()).getRoute().getShard();
  }

  @Test
  void newUsersGetFreshGlobalIdsOnTheirShards() throws SQLException {
    List<String> names = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      names.add("user" + i);
    }
    List<String> first = new ArrayList<>(List.of("signup", "--country", "fr"));
    first.addAll(names);
    Result r = run(first.toArray(String[]::new));
    assertEquals(0, r.exit(), r.out() + r.err());
    Result again = run("signup", "ada", "grace");
    assertEquals(0, again.exit(), again.out() + again.err());

    Map<Long, String> printed = new HashMap<>();
    Set<String> shardsUsed = new HashSet<>();
    for (Result x : List.of(r, again)) {
      Matcher m = LINE.matcher(x.out());
      while (m.find()) {
        long id = Long.parseLong(m.group(2));
        assertTrue(id > 0, "ids of the layout are positive: " + id);
        assertEquals(null, printed.put(id, m.group(1)), "id printed twice: " + id);
        assertEquals(owner(id), m.group(4), "the shard printed for " + id);
        assertEquals(SignupCommand.LAYOUT.workerOf(id), Long.parseLong(m.group(3)));
        shardsUsed.add(m.group(4));
      }
    }
    assertEquals(42, printed.size(), r.out() + again.out());
    Map<Long, String> stored = rows();
    assertEquals(42, stored.size());
    for (Map.Entry<Long, String> e : printed.entrySet()) {
      String country = e.getValue().startsWith("user") ? "fr" : "null";
      assertEquals(e.getValue() + "/" + country + "@" + owner(e.getKey()), stored.get(e.getKey()));
    }
    // time-ordered ids would all be in the last range; spread ones reach at least two of the shards
    assertTrue(shardsUsed.size() >= 2, "shards used: " + shardsUsed);
  }

  @Test
  void badOptionsChangeNothing() throws SQLException {
    for (String[] bad : List.of(new String[] {"signup"}, new String[] {"signup", "x", "--country", "FRA"},
        new String[] {"signup", " ", "--country", "fr"}, new String[] {"signup", "x", "--generator", "Bad Name"})) {
      Result r = run(bad);
      assertTrue(r.exit() != 0, String.join(" ", bad) + ": " + r.out());
    }
    Result g = run("signup", "x", "--generator", "Bad Name");
    assertTrue(g.err().contains("generator"), g.err());
    assertEquals(0, rows().size());
  }
}
