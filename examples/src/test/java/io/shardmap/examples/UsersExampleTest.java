package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.Route;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import io.shardmap.testkit.FreePorts;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PostgresFixture;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example service against real etcd, a real directory server and three real PostgreSQL shards: rows
 * land where the directory says, reruns update them, it keeps working through splits and a range moved
 * the way the migrator moves one (fence, copy, reassign, delete), and it fails with a clear message and
 * a non-zero status when something is wrong.
 */
@Tag("integration")
class UsersExampleTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");

  // Sockets: the example is a command-line program that takes --directory host:port.
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(3)
      .table("id bigint PRIMARY KEY, name text NOT NULL").extension();

  PostgresFixture pg;
  String table;
  String directory;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  ShardMapServiceGrpc.ShardMapServiceBlockingStub read;

  @BeforeEach
  void start() throws Exception {
    pg = fleet.get().postgres();
    table = fleet.get().table();
    directory = fleet.get().targets().get(0);
    admin = fleet.get().admin();
    read = fleet.get().read();
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(table).setKeyColumn("id")))
        .addAllRangeShards(SHARDS).build());
  }

  @AfterEach
  void stop() throws Exception {
    for (int i = 0; i < SHARDS.size(); i++) {
      exec(i, "DROP TABLE IF EXISTS fence_" + table);
      // CASCADE: the trigger on the table (which the fleet drops after this) uses the function.
      exec(i, "DROP FUNCTION IF EXISTS fence_" + table + "() CASCADE");
    }
  }

  record Result(int exit, String out, String err) {}

  private Result run(String... extra) {
    List<String> args = new ArrayList<>(List.of("--directory", directory,
        "--pg-user", pg.shard(0).user(), "--start-timeout", "10s"));
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    if (!List.of(extra).contains("--table")) {
      args.addAll(List.of("--table", table));
    }
    args.addAll(List.of(extra));
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = UsersExample.commandLine().setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true))
        .execute(args.toArray(String[]::new));
    return new Result(exit, out.toString(), err.toString());
  }

  private void exec(int shard, String sql) throws SQLException {
    pg.shard(shard).exec(sql);
  }

  private Set<Long> ids(int shard) throws SQLException {
    Set<Long> ids = new HashSet<>();
    try (Connection c = pg.shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT id FROM " + table)) {
      while (rs.next()) {
        ids.add(rs.getLong(1));
      }
    }
    return ids;
  }

  private Route route(long id) {
    return read.lookup(LookupRequest.newBuilder().setKeyspace("users").setKey(Key.newBuilder().setIntKey(id)).build())
        .getRoute();
  }

  /** Every user 1..n is on exactly the shard the directory server names. */
  private void assertRowsWhereTheDirectorySays(int users) throws SQLException {
    List<Set<Long>> onShard = new ArrayList<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      onShard.add(ids(i));
      assertFalse(onShard.get(i).isEmpty(), "the ids spread over every shard, also " + SHARDS.get(i));
    }
    assertEquals(users, onShard.stream().mapToInt(Set::size).sum());
    for (long n = 1; n <= users; n++) {
      long id = UsersExample.userId(n);
      int owner = SHARDS.indexOf(route(id).getShard());
      for (int i = 0; i < SHARDS.size(); i++) {
        assertEquals(i == owner, onShard.get(i).contains(id), "user " + n + " (id " + id + ") on " + SHARDS.get(i));
      }
    }
  }

  private static long reruns(String out) {
    Matcher m = Pattern.compile("; ([\\d,]+) re-run by the SDK").matcher(out);
    assertTrue(m.find(), out);
    return Long.parseLong(m.group(1).replace(",", ""));
  }

  @Test
  void writesReadsAndReportsAndARerunUpdatesTheSameRows() throws Exception {
    Result r = run("--users", "300", "--verify", "--samples", "3");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("300 inserted, 0 updated"), r.out());
    for (String s : SHARDS) {
      assertTrue(Pattern.compile("(?m)^  " + s + " ").matcher(r.out()).find(), "a row for " + s + ": " + r.out());
    }
    assertTrue(r.out().contains("SDK calls: 600 (300 inTransaction, 300 read); 0 re-run"), r.out());
    assertTrue(r.out().contains("  all shards: 300 users in table "), r.out());
    assertTrue(r.out().contains("users per name length, all shards: "), r.out());
    assertTrue(Pattern.compile("key range \\[0, 9223372036854775807\\), lowest 3 ids: \\[\\d+, \\d+, \\d+\\] \\(shards ")
        .matcher(r.out()).find(), r.out());
    assertTrue(r.out().contains("each of the 300 users is on the shard the map"), r.out());
    assertTrue(r.out().endsWith("OK" + System.lineSeparator()), r.out());
    assertTrue(r.out().contains(Long.toString(UsersExample.userId(3))), "sample ids are shown: " + r.out());
    assertRowsWhereTheDirectorySays(300);

    Result again = run("--users", "300", "--verify");
    assertEquals(0, again.exit(), again.out() + again.err());
    assertTrue(again.out().contains("0 inserted, 300 updated"), again.out());
    assertRowsWhereTheDirectorySays(300);
  }

  @Test
  void keepsWorkingWhileARangeIsSplitAndMovedTheWayTheMigratorMovesIt() throws Exception {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    List<String> args = new ArrayList<>(List.of("--directory", directory, "--table", table,
        "--pg-user", pg.shard(0).user(), "--users", "400", "--duration", "8s", "--verify"));
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    CompletableFuture<Integer> exit = CompletableFuture.supplyAsync(() -> UsersExample.commandLine()
        .setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true)).execute(args.toArray(String[]::new)));
    Await.until(Duration.ofSeconds(30), "a first round (or the end of the run)",
        () -> out.toString().contains("round 1:") || exit.isDone());
    assertFalse(exit.isDone(), "ended early: " + out + err);

    // An operator splits s2's range (metadata only: both halves stay on s2)...
    admin.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
        .setSplitKey(Key.newBuilder().setIntKey(0)).build());
    // ...and moves [0, end) of it to s3 the way the migrator does: fence it on s2 (writes there now fail
    // with SMF01), copy its rows, reassign it (epoch + 1), delete the rows left on s2. Writes refused in
    // between are re-run by the SDK on s3.
    Route moving = route(0);
    assertEquals("s2", moving.getShard());
    long hi = moving.getRange().getEnd().getIntKey();
    fence(1, 0, hi, moving.getEpoch());
    Thread.sleep(500);
    List<String> rows = new ArrayList<>();
    try (Connection c = pg.shard(1).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT id, name FROM " + table + " WHERE id >= 0 AND id < " + hi)) {
      while (rs.next()) {
        rows.add("(" + rs.getLong(1) + ", '" + rs.getString(2).replace("'", "''") + "')");
      }
    }
    assertFalse(rows.isEmpty());
    exec(2, "INSERT INTO " + table + " (id, name) VALUES " + String.join(", ", rows));
    admin.reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("users").setRange(moving.getRange())
        .setShard("s3").setExpectedEpoch(moving.getEpoch()).build());
    exec(1, "DELETE FROM " + table + " WHERE id >= 0 AND id < " + hi);

    assertFalse(exit.isDone(), "the moves should happen while it runs: " + out + err);
    assertEquals(0, (int) exit.get(60, TimeUnit.SECONDS), out + "\n" + err);
    String o = out.toString();
    assertTrue(o.contains("map changed: revision"), o);
    assertTrue(reruns(o) > 0, "writes refused by the fence were re-run on the new owner: " + o);
    assertTrue(o.contains("each of the 400 users is on the shard the map"), o);
    assertRowsWhereTheDirectorySays(400);
    assertEquals(rows.size(), ids(2).stream().filter(id -> id >= 0 && id < hi).count());
  }

  /** What the migrator does first: writes to [lo, hi) on the shard fail with SMF01 naming the epoch. */
  private void fence(int shard, long lo, long hi, long epoch) throws SQLException {
    String msg = StaleRoute.message("users", epoch).replace("'", "''");
    exec(shard, "CREATE TABLE fence_" + table + " (lo bigint, hi bigint, msg text)");
    exec(shard, "INSERT INTO fence_" + table + " VALUES (" + lo + ", " + hi + ", '" + msg + "')");
    exec(shard, "CREATE FUNCTION fence_" + table + "() RETURNS trigger LANGUAGE plpgsql AS $$"
        + " DECLARE m text; BEGIN"
        + " SELECT msg INTO m FROM fence_" + table + " WHERE NEW.id >= lo AND NEW.id < hi;"
        + " IF FOUND THEN RAISE EXCEPTION USING ERRCODE = '" + StaleRoute.SQLSTATE + "', MESSAGE = m; END IF;"
        + " RETURN NEW; END $$");
    exec(shard, "CREATE TRIGGER fence BEFORE INSERT OR UPDATE ON " + table
        + " FOR EACH ROW EXECUTE FUNCTION fence_" + table + "()");
  }

  @Test
  void verifyFailsWhenARowIsNotWhereTheMapSays() throws Exception {
    assertEquals(0, run("--users", "50").exit());
    long id = UsersExample.userId(7);
    int owner = SHARDS.indexOf(route(id).getShard());
    int other = (owner + 1) % SHARDS.size();
    exec(other, "INSERT INTO " + table + " (id, name) VALUES (" + id + ", 'left behind')");

    Result r = run("--users", "50", "--verify");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertFalse(r.out().contains("OK"), r.out());
    assertTrue(r.err().startsWith("error: verify: 1 of 50 users are not on exactly the shard"), r.err());
    assertTrue(r.err().contains("user 7 (id " + id + "): the map names " + SHARDS.get(owner) + ", the row is on "),
        r.err());

    exec(owner, "DELETE FROM " + table + " WHERE id = " + id);
    r = run("--users", "50", "--verify");
    assertEquals(1, r.exit(), r.out() + r.err());
    // The upsert wrote it to the owner again; now it is on two shards.
    assertTrue(r.err().contains("the row is on " + String.join(" and ",
        owner < other ? List.of(SHARDS.get(owner), SHARDS.get(other)) : List.of(SHARDS.get(other), SHARDS.get(owner)))),
        r.err());
  }

  @Test
  void failsWithAClearMessage() throws Exception {
    Result r = run("--keyspace", "nosuch");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.err().contains("keyspace 'nosuch' does not exist"), r.err());

    r = run("--table", "no_such_table", "--users", "5");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.err().startsWith("error: upserting user "), r.err());
    assertTrue(r.err().contains("SQLSTATE 42P01") && r.err().contains("CREATE TABLE"), r.err());

    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = UsersExample.commandLine().setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true))
        .execute("--directory", "127.0.0.1:" + FreePorts.allocate(), "--start-timeout", "1s");
    assertEquals(1, exit, out + "" + err);
    assertTrue(err.toString().contains("no directory server") && err.toString().contains("deploy/local/up.sh"),
        err.toString());

    r = run("--threads", "0");
    assertEquals(2, r.exit(), r.out() + r.err());
    assertTrue(r.err().startsWith("error: --threads: must be 1..64, got 0"), r.err());
    assertTrue(r.err().contains("shardmap-example --help"), r.err());
    r = run("--duration", "soon");
    assertEquals(2, r.exit(), r.out() + r.err());
    assertTrue(r.err().contains("'soon' is not a duration"), r.err());
  }
}
