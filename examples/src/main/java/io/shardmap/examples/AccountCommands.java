package io.shardmap.examples;

import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.ShardmapException;
import io.shardmap.support.cli.Durations;
import java.io.PrintWriter;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * The example's {@code transfer} and {@code accounts} commands: money moved between two users as one
 * transaction across their shards ({@link AccountStore#transfer}), and the balances and ledger rows to look
 * at afterwards. Users are named by their number {@code n}, as in the users run: user {@code n}'s account
 * has the key {@link UsersExample#userId(long) userId(n)}.
 */
final class AccountCommands {
  private AccountCommands() {}

  /** Where the accounts live; shared by both commands. */
  static final class Tables {
    @Option(names = "--keyspace", defaultValue = "accounts", paramLabel = "NAME",
        description = "INT64 keyspace of the accounts and ledger tables (default: ${DEFAULT-VALUE}, which "
            + "deploy/local/up.sh creates).")
    String keyspace;

    @Option(names = "--accounts-table", defaultValue = "accounts", paramLabel = "NAME",
        description = "Table (user_id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0)) on every "
            + "shard (default: ${DEFAULT-VALUE}).")
    String accounts;

    @Option(names = "--ledger-table", defaultValue = "ledger", paramLabel = "NAME",
        description = "Table (user_id bigint, transfer_id uuid, amount bigint, other_user bigint, at timestamptz, "
            + "PRIMARY KEY (user_id, transfer_id)) on every shard (default: ${DEFAULT-VALUE}).")
    String ledger;
  }

  /** The error handling every command shares: exit 0, 1 with the reason on stderr, or 2 for bad options. */
  abstract static class Base implements Callable<Integer> {
    @Mixin
    ConnectionOptions conn;

    @Mixin
    Tables tables;

    @Spec
    CommandSpec spec;

    abstract void run(PrintWriter out, ShardmapClient client, AccountStore store)
        throws UsersExample.Failure, SQLException, InterruptedException;

    /** Checks the command's own options; throws {@link #bad} naming the option and the rule. */
    abstract void checkOptions();

    CommandLine.ParameterException bad(String message) {
      return new CommandLine.ParameterException(spec.commandLine(), message);
    }

    @Override
    public Integer call() {
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      try {
        checkOptions();
        for (String t : List.of(tables.accounts, tables.ledger)) {
          if (!t.matches("[a-z_][a-z0-9_]{0,62}")) {
            throw bad("--accounts-table/--ledger-table: '" + t + "' is not a plain lower-case SQL name");
          }
        }
        try {
          conn.check(tables.keyspace);
        } catch (IllegalArgumentException e) {
          throw bad("--directory/--keyspace: " + e.getMessage());
        }
        conn.configureLogging();
        try (ShardmapClient client = conn.start(tables.keyspace);
             ShardmapData data = ShardmapData.open(client, conn.dataOptions(8))) {
          var k = client.snapshot().keyspace(tables.keyspace).orElse(null);
          if (k == null || !k.integerKeys()) {
            throw new UsersExample.Failure("keyspace '" + tables.keyspace + "' " + (k == null ? "does not exist"
                : "has byte-string keys") + "; the accounts need an INT64 keyspace (deploy/local/up.sh creates "
                + "'accounts': shardmapctl keyspace create accounts --key-type int64 --strategy range "
                + "--table accounts:user_id --table ledger:user_id --range-shards ...)", null);
          }
          run(out, client, new AccountStore(data, tables.keyspace, tables.accounts, tables.ledger));
        }
        out.flush();
        return 0;
      } catch (CommandLine.ParameterException e) {
        throw e;
      } catch (UsersExample.Failure | InterruptedException | RuntimeException | SQLException e) {
        return UsersExample.failed(e, out, err);
      }
    }

    /** "user 1 (id -2152535657050944081, shard2)". */
    static String who(ShardmapClient client, String keyspace, long n) {
      long id = UsersExample.userId(n);
      return "user " + n + " (id " + id + ", " + client.route(keyspace, id).shard() + ")";
    }
  }

  @Command(name = "transfer", mixinStandardHelpOptions = true, version = "shardmap-example 0.1.0", sortOptions = false,
      description = {"Moves AMOUNT from user FROM to user TO (user numbers, as in the users run) as one "
          + "transaction across their shards (ShardmapData.acrossShards): both balances and a ledger row on each "
          + "side, carrying the transfer's id, commit on both shards or on neither. Opens a missing account with "
          + "--opening-balance first. Prints the balances before and after, the ledger rows and the totals "
          + "over all accounts.",
          "Exit status: 0 when the transfer committed; 1 when it did not (refused: no account or not enough "
              + "money; or a failure), with the reason on stderr; 2 for bad options."})
  static final class Transfer extends Base {
    @Parameters(index = "0", paramLabel = "FROM", description = "The paying user's number (1, 2, ...).")
    long from;

    @Parameters(index = "1", paramLabel = "TO", description = "The paid user's number.")
    long to;

    @Parameters(index = "2", paramLabel = "AMOUNT", description = "How much, > 0.")
    long amount;

    @Option(names = "--opening-balance", defaultValue = "1000", paramLabel = "N",
        description = "Balance of an account opened for a user who has none (default: ${DEFAULT-VALUE}).")
    long openingBalance;

    @Option(names = "--either-way",
        description = "Pay from whichever of the two has more (FROM on a tie), so that repeated runs (as "
            + "deploy/local/up.sh makes) move the money back and forth instead of draining FROM.")
    boolean eitherWay;

    @Option(names = "--pause-in-work", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "A demo of a coordinator dying: once both shards are written, sleep this long inside the "
            + "work, holding both shards' transactions open, before the SDK prepares or commits anything. "
            + "Kill the process meanwhile (its pid is printed) and neither shard keeps anything.")
    Duration pauseInWork;

    @Option(names = "--transfer-id", paramLabel = "UUID",
        description = "The transfer's id (default: a random one). A transfer whose id a user's ledger already "
            + "holds fails instead of paying twice.")
    UUID transferId;

    @Override
    void checkOptions() {
      if (from < 1 || to < 1) {
        throw bad("FROM/TO: user numbers start at 1, got " + (from < 1 ? from : to));
      }
      if (from == to) {
        throw bad("TO: the same user as FROM (" + from + ")");
      }
      if (amount <= 0) {
        throw bad("AMOUNT: must be > 0, got " + amount);
      }
      if (openingBalance < 0) {
        throw bad("--opening-balance: must be >= 0, got " + openingBalance);
      }
    }

    @Override
    void run(PrintWriter out, ShardmapClient client, AccountStore store)
        throws UsersExample.Failure, SQLException, InterruptedException {
      String ks = tables.keyspace;
      long payer = from;
      long payee = to;
      List<String> opened = new ArrayList<>();
      for (long n : new long[] {payer, payee}) {
        if (store.open(UsersExample.userId(n), openingBalance)) {
          opened.add("user " + n);
        }
      }
      if (!opened.isEmpty()) {
        out.printf("Opened an account with %,d for %s.%n", openingBalance, String.join(" and ", opened));
      }
      long before1 = balance(store, payer);
      long before2 = balance(store, payee);
      if (eitherWay && before2 > before1) {
        payer = to;
        payee = from;
        long b = before1;
        before1 = before2;
        before2 = b;
      }
      UUID id = transferId != null ? transferId : UUID.randomUUID(); // made once: the work may run again
      out.printf("Transfer %s: %,d from %s to %s%n", id, amount, who(client, ks, payer), who(client, ks, payee));
      out.printf("  before: user %d has %,d, user %d has %,d%n", payer, before1, payee, before2);
      out.flush();

      long pid = ProcessHandle.current().pid();
      AccountStore.AfterWrites pause = pauseInWork == null ? null : (run, shards) -> {
        if (run > 1) {
          return; // only the first run pauses
        }
        out.printf("  both users' rows written on %s; nothing prepared or committed yet. Pausing %s inside the "
                + "work with the transaction open on %s.%n  The coordinator is this process: kill -9 %d now, and "
                + "%s.%n", String.join(" and ", shards), Durations.format(pauseInWork),
            shards.size() == 1 ? "that shard" : "both shards", pid,
            shards.size() == 1 ? "the shard rolls it back" : "both shards roll it back (there is nothing to resolve)");
        out.flush();
        try {
          Thread.sleep(pauseInWork.toMillis());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new SQLException("interrupted while pausing inside the work", e);
        }
        out.println("  pause over; the SDK commits now");
        out.flush();
      };

      long t0 = System.nanoTime();
      AccountStore.Transfer t;
      try {
        t = store.transfer(id, UsersExample.userId(payer), UsersExample.userId(payee), amount, pause);
      } catch (AccountStore.TransferRefused e) {
        throw new UsersExample.Failure("transfer refused, nothing written on any shard: " + e.getMessage(), e);
      } catch (ShardmapException e) {
        throw new UsersExample.Failure("transfer " + id + " failed (" + e.code() + "): " + e.getMessage()
            + (e.code() == io.shardmap.core.ErrorCode.UNAVAILABLE
                ? " -- its outcome is unknown until the resolver finishes it; look for the transfer id in the "
                    + "ledger: shardmap-example accounts " + payer + " " + payee : ""), e);
      }
      long millis = (System.nanoTime() - t0) / 1_000_000;
      out.printf("  committed on %s in %,d ms (%s)%s%n", String.join(" and ", t.shards()), millis,
          t.shards().size() > 1 ? "two shards wrote: two-phase commit" : "one shard wrote: a plain commit",
          t.runs() > 1 ? "; the work ran " + t.runs() + " times" : "");
      out.printf("  after:  user %d has %,d, user %d has %,d%n", payer, balance(store, payer), payee,
          balance(store, payee));
      List<String> rows = new ArrayList<>();
      for (long n : new long[] {payer, payee}) {
        for (AccountStore.LedgerRow r : store.ledger(UsersExample.userId(n), 100)) {
          if (r.transferId().equals(id)) {
            rows.add(String.format("user %d %+,d", n, r.amount()));
          }
        }
      }
      out.printf("  ledger rows of transfer %s: %s%n", id, rows.isEmpty() ? "none" : String.join(", ", rows));
      totals(out, store);
      out.println("OK");
    }
  }

  @Command(name = "accounts", mixinStandardHelpOptions = true, version = "shardmap-example 0.1.0", sortOptions = false,
      description = {"Shows users' balances and their last ledger rows, each read on the user's shard, and "
          + "the totals over all accounts (cross-shard queries).",
          "Exit status: 0; 1 on a failure, with the reason on stderr; 2 for bad options."})
  static final class Accounts extends Base {
    @Parameters(paramLabel = "USER", arity = "0..*", description = "User numbers (default: 1 2).")
    List<Long> users = new ArrayList<>();

    @Option(names = "--ledger", defaultValue = "3", paramLabel = "N",
        description = "Ledger rows shown per user, newest first (default: ${DEFAULT-VALUE}).")
    int ledgerRows;

    @Override
    void checkOptions() {
      for (long n : users) {
        if (n < 1) {
          throw bad("USER: user numbers start at 1, got " + n);
        }
      }
      if (ledgerRows < 0 || ledgerRows > 1000) {
        throw bad("--ledger: must be 0..1000, got " + ledgerRows);
      }
    }

    @Override
    void run(PrintWriter out, ShardmapClient client, AccountStore store) throws SQLException {
      for (long n : users.isEmpty() ? List.of(1L, 2L) : users) {
        long id = UsersExample.userId(n);
        Long b = store.balance(id);
        out.printf("%s: %s%n", who(client, tables.keyspace, n), b == null ? "no account" : String.format("%,d", b));
        for (AccountStore.LedgerRow r : b == null ? List.<AccountStore.LedgerRow>of() : store.ledger(id, ledgerRows)) {
          out.printf("  %s  %+,d %s id %d  transfer %s%n", r.at(), r.amount(), r.amount() < 0 ? "to" : "from",
              r.otherUser(), r.transferId());
        }
      }
      totals(out, store);
    }
  }

  private static long balance(AccountStore store, long n) throws SQLException {
    Long b = store.balance(UsersExample.userId(n));
    if (b == null) {
      throw new SQLException("user " + n + " has no account");
    }
    return b;
  }

  private static void totals(PrintWriter out, AccountStore store) throws SQLException {
    long[] t = store.totals();
    out.printf("  all accounts: %,d holding %,d in all; ledger: %,d rows summing to %,d%n", t[0], t[1], t[2], t[3]);
  }
}
