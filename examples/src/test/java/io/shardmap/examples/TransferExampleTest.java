package io.shardmap.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.TxnId;
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
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example's transfers ({@code transfer}, {@code accounts}, {@link AccountStore#transfer}) against real
 * etcd, a directory server and three PostgreSQL shards, checked by reading every shard directly: a transfer
 * between users on different shards moves the money and writes a ledger row on both; a refused one changes
 * nothing anywhere; concurrent transfers apply exactly the acknowledged ones and keep the total.
 */
@Tag("integration")
class TransferExampleTest {
  static final List<String> SHARDS = List.of("s1", "s2", "s3");

  // Sockets: the commands take --directory host:port.
  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().sockets().shards(3)
      .table("user_id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0)").extension();

  PostgresFixture pg;
  String accounts;
  String ledger;

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
        .addAllRangeShards(SHARDS).build());
  }

  @AfterEach
  void stop() throws Exception {
    fleet.get().execOnShards("DROP TABLE IF EXISTS " + ledger);
  }

  record Result(int exit, String out, String err) {}

  private Result run(String... command) {
    List<String> args = new ArrayList<>(List.of(command));
    args.addAll(List.of("--directory", fleet.get().targets().get(0), "--pg-user", pg.shard(0).user(),
        "--start-timeout", "10s", "--accounts-table", accounts, "--ledger-table", ledger));
    if (pg.shard(0).password() != null) {
      args.addAll(List.of("--pg-password", pg.shard(0).password()));
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = UsersExample.commandLine().setOut(new PrintWriter(out, true)).setErr(new PrintWriter(err, true))
        .execute(args.toArray(String[]::new));
    return new Result(exit, out.toString(), err.toString());
  }

  private int shardOf(long id) {
    return SHARDS.indexOf(fleet.get().read().lookup(LookupRequest.newBuilder().setKeyspace("accounts")
        .setKey(Key.newBuilder().setIntKey(id)).build()).getRoute().getShard());
  }

  /** Every account as the shards hold it, read on each shard directly: id -> balance. */
  private Map<Long, Long> balances() throws SQLException {
    Map<Long, Long> all = new HashMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT user_id, balance FROM " + accounts)) {
        while (rs.next()) {
          assertEquals(null, all.put(rs.getLong(1), rs.getLong(2)), "an account on two shards");
          assertEquals(i, shardOf(rs.getLong(1)), "account " + rs.getLong(1) + " is on its shard");
        }
      }
    }
    return all;
  }

  /** Every ledger row, read on each shard directly: "user_id amount other_user" by transfer id. */
  private Map<UUID, List<String>> ledgerRows() throws SQLException {
    Map<UUID, List<String>> all = new HashMap<>();
    for (int i = 0; i < SHARDS.size(); i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT transfer_id, user_id, amount, other_user FROM " + ledger
               + " ORDER BY amount")) {
        while (rs.next()) {
          assertEquals(i, shardOf(rs.getLong(2)), "ledger row of " + rs.getLong(2) + " is on its shard");
          all.computeIfAbsent(rs.getObject(1, UUID.class), k -> new ArrayList<>())
              .add(rs.getLong(2) + " " + rs.getLong(3) + " " + rs.getLong(4));
        }
      }
    }
    // The payer's row first, whichever shard holds it.
    all.values().forEach(l -> l.sort(java.util.Comparator.comparingLong(x -> Long.parseLong(x.split(" ")[1]))));
    return all;
  }

  private void assertNothingPrepared() throws SQLException {
    String like = TxnId.likePattern(TxnId.namespaceOf(fleet.get().prefix()));
    for (int i = 0; i < SHARDS.size(); i++) {
      try (Connection c = pg.shard(i).connect(); Statement s = c.createStatement();
           ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '" + like + "'")) {
        rs.next();
        assertEquals(0, rs.getLong(1), "prepared transactions left on " + SHARDS.get(i));
      }
    }
  }

  @Test
  void aTransferBetweenUsersOnDifferentShardsMovesTheMoneyOnBoth() throws Exception {
    long u1 = UsersExample.userId(1);
    long u2 = UsersExample.userId(2);
    assertNotEquals(shardOf(u1), shardOf(u2), "users 1 and 2 are on different shards, as in deploy/local/up.sh");

    Result r = run("transfer", "1", "2", "100");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("Opened an account with 1,000 for user 1 and user 2."), r.out());
    assertTrue(r.out().contains("  before: user 1 has 1,000, user 2 has 1,000"), r.out());
    assertTrue(r.out().contains("  committed on " + SHARDS.get(shardOf(u1)) + " and " + SHARDS.get(shardOf(u2))
        + " in "), r.out());
    assertTrue(r.out().contains("  after:  user 1 has 900, user 2 has 1,100"), r.out());
    assertTrue(r.out().contains("ledger rows of transfer ") && r.out().contains(": user 1 -100, user 2 +100"), r.out());
    assertTrue(r.out().contains("all accounts: 2 holding 2,000 in all; ledger: 2 rows summing to 0"), r.out());
    assertTrue(r.out().endsWith("OK" + System.lineSeparator()), r.out());

    assertEquals(Map.of(u1, 900L, u2, 1100L), balances());
    Map<UUID, List<String>> rows = ledgerRows();
    assertEquals(1, rows.size(), rows.toString());
    UUID id = rows.keySet().iterator().next();
    assertTrue(r.out().contains("Transfer " + id + ": 100 from user 1"), r.out());
    assertEquals(List.of(u1 + " -100 " + u2, u2 + " 100 " + u1), rows.get(id));
    assertNothingPrepared();

    // --either-way pays from the richer (user 2 now), so up.sh's reruns go back and forth.
    r = run("transfer", "1", "2", "100", "--either-way");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains(": 100 from user 2 "), r.out());
    assertEquals(Map.of(u1, 1000L, u2, 1000L), balances());

    // The same transfer id again: the ledger's key refuses it, nothing is paid twice.
    r = run("transfer", "1", "2", "100", "--transfer-id", id.toString());
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.err().contains("SQLSTATE 23505"), r.err());
    assertEquals(Map.of(u1, 1000L, u2, 1000L), balances());
    assertEquals(2, ledgerRows().size());

    r = run("accounts", "1", "2", "--ledger", "5");
    assertEquals(0, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("user 1 (id " + u1 + ", " + SHARDS.get(shardOf(u1)) + "): 1,000"), r.out());
    assertTrue(r.out().contains("-100 to id " + u2 + "  transfer " + id), r.out());
    assertTrue(r.out().contains("+100 from id " + u1 + "  transfer " + id), r.out());
  }

  @Test
  void aRefusedTransferChangesNothingOnAnyShard() throws Exception {
    assertEquals(0, run("transfer", "1", "2", "100").exit());
    Map<Long, Long> before = balances();
    Map<UUID, List<String>> ledgerBefore = ledgerRows();

    // More than user 2 has. The rows are taken in id order and user 1's id is the lower, so the work has
    // already credited user 1 on its shard when user 2's shard refuses the debit: both roll back.
    assertTrue(UsersExample.userId(1) < UsersExample.userId(2));
    Result r = run("transfer", "2", "1", "5000");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.err().startsWith("error: transfer refused, nothing written on any shard: user id "
        + UsersExample.userId(2) + " has 1100, less than 5000"), r.err());
    assertFalse(r.out().contains("OK"), r.out());
    assertEquals(before, balances());
    assertEquals(ledgerBefore, ledgerRows());
    assertNothingPrepared();

    // Bad input: refused before anything is sent.
    r = run("transfer", "1", "1", "5");
    assertEquals(2, r.exit(), r.err());
    assertTrue(r.err().startsWith("error: TO: the same user as FROM (1)"), r.err());
    assertTrue(r.err().contains("Options: shardmap-example transfer --help"), r.err());
    r = run("transfer", "1", "2", "0");
    assertEquals(2, r.exit(), r.err());
    assertTrue(r.err().startsWith("error: AMOUNT: must be > 0, got 0"), r.err());
    assertEquals(before, balances());

    // An account that does not exist: the work throws on its side, nothing is written on the other.
    try (Session s = session()) {
      long nobody = UsersExample.userId(3);
      AccountStore.TransferRefused e = assertThrows(AccountStore.TransferRefused.class,
          () -> s.store.transfer(UUID.randomUUID(), UsersExample.userId(2), nobody, 10, null));
      assertEquals("user id " + nobody + " has no account", e.getMessage());
    }
    assertEquals(before, balances());
    assertEquals(ledgerBefore, ledgerRows());
    assertNothingPrepared();
  }

  /** A client and a store on the fleet, for calls the command line does not make. */
  private final class Session implements AutoCloseable {
    final ShardmapClient client;
    final ShardmapData data;
    final AccountStore store;

    Session() throws Exception {
      ShardmapFleet f = fleet.get();
      client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
          .keyspaces("accounts").build());
      data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
          .maxPoolSize(8).build());
      store = new AccountStore(data, "accounts", accounts, ledger);
    }

    @Override
    public void close() {
      data.close();
      client.close();
    }
  }

  private Session session() throws Exception {
    return new Session();
  }

  @Test
  void concurrentTransfersApplyExactlyTheAcknowledgedOnesAndKeepTheTotal() throws Exception {
    int users = 9; // three or so per shard
    long opening = 500;
    int threads = 4;
    int perThread = 30;
    Map<UUID, long[]> acknowledged = new ConcurrentHashMap<>();
    Map<UUID, String> refused = new ConcurrentHashMap<>();
    try (Session s = session()) {
      for (long n = 1; n <= users; n++) {
        assertTrue(s.store.open(UsersExample.userId(n), opening));
      }
      // One transfer first, alone: the SDK installs its decisions table on a shard at the first cross-shard
      // commit there, and concurrent CREATE ... IF NOT EXISTS can fail in PostgreSQL (a catalog unique
      // violation). That first use is the SDK's concern; this test is about the transfers.
      UUID first = UUID.randomUUID();
      s.store.transfer(first, UsersExample.userId(1), UsersExample.userId(2), 1, null);
      acknowledged.put(first, new long[] {UsersExample.userId(1), UsersExample.userId(2), 1});
      ExecutorService pool = Executors.newFixedThreadPool(threads);
      try {
        List<Future<?>> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          Random random = new Random(t);
          workers.add(pool.submit(() -> {
            for (int i = 0; i < perThread; i++) {
              long from = UsersExample.userId(1 + random.nextInt(users));
              long to = UsersExample.userId(1 + random.nextInt(users));
              if (from == to) {
                continue;
              }
              long amount = 1 + random.nextInt(300); // big enough that some are refused
              UUID id = UUID.randomUUID();
              try {
                s.store.transfer(id, from, to, amount, null);
                acknowledged.put(id, new long[] {from, to, amount});
              } catch (AccountStore.TransferRefused e) {
                refused.put(id, e.getMessage());
              }
            }
            return null;
          }));
        }
        for (Future<?> w : workers) {
          w.get(120, TimeUnit.SECONDS); // any other failure fails the test
        }
      } finally {
        pool.shutdownNow();
      }
    }
    assertFalse(acknowledged.isEmpty());

    // The oracle: each balance is its opening plus the acknowledged transfers, each of which has exactly its
    // two ledger rows; a refused transfer left no row.
    Map<Long, Long> expected = new HashMap<>();
    for (long n = 1; n <= users; n++) {
      expected.put(UsersExample.userId(n), opening);
    }
    Map<UUID, List<String>> expectedRows = new HashMap<>();
    for (Map.Entry<UUID, long[]> e : acknowledged.entrySet()) {
      long[] t = e.getValue();
      expected.merge(t[0], -t[2], Long::sum);
      expected.merge(t[1], t[2], Long::sum);
      expectedRows.put(e.getKey(), List.of(t[0] + " " + -t[2] + " " + t[1], t[1] + " " + t[2] + " " + t[0]));
    }
    Map<Long, Long> actual = balances();
    assertEquals(expected, actual);
    assertEquals(users * opening, actual.values().stream().mapToLong(Long::longValue).sum());
    assertEquals(expectedRows, ledgerRows());
    assertNothingPrepared();

    // The command's totals say the same through cross-shard queries.
    Result r = run("accounts", "1");
    assertEquals(0, r.exit(), r.out() + r.err());
    Matcher m = Pattern.compile("all accounts: (\\d+) holding ([\\d,]+) in all; ledger: ([\\d,]+) rows summing to 0")
        .matcher(r.out());
    assertTrue(m.find(), r.out());
    assertEquals(Integer.toString(users), m.group(1));
    assertEquals(String.format("%,d", users * opening), m.group(2));
    assertEquals(String.format("%,d", 2 * acknowledged.size()), m.group(3));
  }
}
