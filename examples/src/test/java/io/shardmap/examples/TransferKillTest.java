package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.TxnId;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The README's "kill the coordinator mid-transfer": the example's {@code transfer --pause-in-work} runs in a
 * child JVM, which is killed with SIGKILL while it holds both shards' transactions open inside the work.
 * Neither shard keeps anything, nothing is left prepared, and the rows are free for the next transfer.
 */
@Tag("fault")
class TransferKillTest {
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(3)
      .table("user_id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0)").extension();

  PostgresFixture pg;
  String accounts;
  String ledger;
  Process child;

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    accounts = f.table();
    ledger = accounts + "_ledger";
    f.execOnShards(AccountStore.ddl(accounts, ledger).get(1));
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("accounts")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(accounts).setKeyColumn("user_id"))
            .addTables(ShardedTable.newBuilder().setName(ledger).setKeyColumn("user_id")))
        .addAllRangeShards(f.shardNames()).build());
  }

  @AfterEach
  void stop() throws Exception {
    if (child != null) {
      child.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
    fleet.get().execOnShards("DROP TABLE IF EXISTS " + ledger);
  }

  private List<String> args(String... command) {
    List<String> args = new ArrayList<>(List.of(command));
    args.addAll(List.of("--directory", fleet.get().targets().get(0), "--pg-user", pg.shard(0).user(),
        "--start-timeout", "10s", "--accounts-table", accounts, "--ledger-table", ledger));
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    return args;
  }

  /** "balance,balance|ledger rows|prepared" over every shard, read directly. */
  private String state() throws SQLException {
    List<String> balances = new ArrayList<>();
    long rows = 0;
    long prepared = 0;
    String like = TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix()));
    for (int i = 0; i < 3; i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement()) {
        try (ResultSet rs = s.executeQuery("SELECT user_id, balance FROM " + accounts + " ORDER BY user_id")) {
          while (rs.next()) {
            balances.add(rs.getLong(1) + "=" + rs.getLong(2));
          }
        }
        try (ResultSet rs = s.executeQuery("SELECT count(*) FROM " + ledger)) {
          rs.next();
          rows += rs.getLong(1);
        }
        try (ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '" + like + "'")) {
          rs.next();
          prepared += rs.getLong(1);
        }
      }
    }
    balances.sort(null);
    return String.join(",", balances) + " | ledger rows " + rows + " | prepared " + prepared;
  }

  /** Sessions left in a transaction on the shards of users 1 and 2 (s2 and s3). */
  private long openTransactions() {
    long n = 0;
    for (int i = 1; i <= 2; i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
               + " AND datname = current_database()")) {
        rs.next();
        n += rs.getLong(1);
      } catch (SQLException e) {
        throw new IllegalStateException(e);
      }
    }
    return n;
  }

  private int runInProcess(String... command) {
    return UsersExample.commandLine().execute(args(command).toArray(String[]::new));
  }

  @Test
  void aCoordinatorKilledInsideTheWorkLeavesNothingOnEitherShard() throws Exception {
    assertEquals(0, runInProcess("transfer", "1", "2", "100"));
    String before = state();
    assertTrue(before.endsWith(" | ledger rows 2 | prepared 0"), before);

    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("java.class.path"), UsersExample.class.getName()));
    cmd.addAll(args("transfer", "1", "2", "300", "--pause-in-work", "120s"));
    child = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.PIPE).start();
    StringBuilder out = new StringBuilder();
    long pid = -1;
    try (BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      Pattern kill = Pattern.compile("kill -9 (\\d+) now");
      for (String line; (line = r.readLine()) != null; ) {
        out.append(line).append('\n');
        Matcher m = kill.matcher(line);
        if (m.find()) {
          pid = Long.parseLong(m.group(1));
          break;
        }
      }
    }
    assertEquals(child.pid(), pid, "the child said it is pausing inside the work, naming its pid: " + out);
    assertTrue(out.toString().contains("nothing prepared or committed yet"), out.toString());
    // Both shards' transactions are open now, both rows written (invisible to others until a commit).
    assertEquals(2, openTransactions());
    assertEquals(before, state());
    child.destroyForcibly(); // SIGKILL
    assertTrue(child.waitFor(30, TimeUnit.SECONDS));
    assertTrue(child.exitValue() != 0, "killed");
    child = null;

    // Each shard rolls its transaction back when the connection closes: nothing changed, nothing prepared.
    Await.until(Duration.ofSeconds(30), "the killed coordinator's sessions to end", () -> openTransactions() == 0);
    assertEquals(before, state());

    // The rows are free: the same transfer now commits on both shards.
    assertEquals(0, runInProcess("transfer", "1", "2", "300"));
    String after = state();
    assertTrue(after.endsWith(" | ledger rows 4 | prepared 0"), after);
    assertTrue(after.contains(UsersExample.userId(1) + "=600") && after.contains(UsersExample.userId(2) + "=1400"),
        after);
  }
}
