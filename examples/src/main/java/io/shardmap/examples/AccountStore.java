package io.shardmap.examples;

import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.ShardmapData;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Users' balances and the transfers between them: the data access of the example's {@code transfer} and
 * {@code accounts} commands. A user's account and ledger rows are keyed by the user's id in an INT64
 * keyspace (deploy/local/up.sh's {@code accounts}, split over the shards like {@code users}), so two users
 * are often on different shards, and a transfer between them is one {@link ShardmapData#acrossShards}
 * call: both balances and both ledger rows commit together or not at all.
 *
 * <p>Tables, on every shard: {@code accounts(user_id bigint PRIMARY KEY, balance bigint NOT NULL CHECK
 * (balance >= 0))} and {@code ledger(user_id bigint, transfer_id uuid, amount bigint, other_user bigint,
 * at timestamptz, PRIMARY KEY (user_id, transfer_id))}: one ledger row per transfer on each side, the
 * amount negative on the payer's side, both carrying the transfer's id.
 */
public final class AccountStore {
  /** Moves a balance by {@code delta}, refusing to take it below zero: no row updated then. */
  static final String MOVE_SQL = "UPDATE accounts SET balance = balance + ? WHERE user_id = ? AND balance + ? >= 0";
  static final String LEDGER_SQL = "INSERT INTO ledger (user_id, transfer_id, amount, other_user) VALUES (?, ?, ?, ?)";

  private final ShardmapData data;
  private final String keyspace;
  private final String accounts;
  private final String ledger;
  private final String moveSql;
  private final String ledgerSql;

  public AccountStore(ShardmapData data, String keyspace, String accountsTable, String ledgerTable) {
    for (String t : List.of(accountsTable, ledgerTable)) {
      if (!t.matches("[a-z_][a-z0-9_]{0,62}")) {
        throw new IllegalArgumentException("table: '" + t + "' is not a plain lower-case SQL name");
      }
    }
    this.data = data;
    this.keyspace = keyspace;
    this.accounts = accountsTable;
    this.ledger = ledgerTable;
    this.moveSql = MOVE_SQL.replace("UPDATE accounts", "UPDATE " + accountsTable);
    this.ledgerSql = LEDGER_SQL.replace("INTO ledger", "INTO " + ledgerTable);
  }

  /** The statements that create the tables on a shard; each may run again. */
  public static List<String> ddl(String accountsTable, String ledgerTable) {
    return List.of(
        "CREATE TABLE IF NOT EXISTS " + accountsTable + " (user_id bigint PRIMARY KEY, "
            + "balance bigint NOT NULL CHECK (balance >= 0))",
        "CREATE TABLE IF NOT EXISTS " + ledgerTable + " (user_id bigint NOT NULL, transfer_id uuid NOT NULL, "
            + "amount bigint NOT NULL, other_user bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(), "
            + "PRIMARY KEY (user_id, transfer_id))");
  }

  /** Refused by the work itself (no account, not enough money): nothing was written on any shard. */
  public static final class TransferRefused extends SQLException {
    TransferRefused(String message) {
      super(message);
    }
  }

  /** Called inside a transfer's work once both shards are written, before the SDK prepares or commits anything. */
  @FunctionalInterface
  public interface AfterWrites {
    void written(int run, Set<String> shards) throws SQLException;
  }

  /**
   * A committed transfer.
   *
   * @param shards the shards the last run of the work wrote, in the order it opened them (two: committed by
   *     two-phase commit; one: both users on one shard, a plain commit)
   * @param runs how many times the SDK ran the work (above 1 after a fence or a lost connection)
   */
  public record Transfer(UUID id, long from, long to, long amount, List<String> shards, int runs) {}

  /** A ledger row: {@code amount} is negative on the payer's side. */
  public record LedgerRow(long userId, UUID transferId, long amount, long otherUser, Instant at) {}

  /**
   * Opens an account with {@code openingBalance} unless the user has one.
   *
   * @return true when it was opened now
   */
  public boolean open(long userId, long openingBalance) throws SQLException {
    if (openingBalance < 0) {
      throw new IllegalArgumentException("openingBalance: must be >= 0, got " + openingBalance);
    }
    return data.inTransaction(keyspace, userId, c -> {
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + accounts + " (user_id, balance) VALUES (?, ?) "
          + "ON CONFLICT (user_id) DO NOTHING")) {
        ps.setLong(1, userId);
        ps.setLong(2, openingBalance);
        return ps.executeUpdate() == 1;
      }
    });
  }

  /**
   * Moves {@code amount} from user {@code from} to user {@code to} as one transaction across their shards:
   * both balances and a ledger row on each side carrying {@code transferId}, committed on both shards or on
   * neither. The rows are taken in id order, so two opposite transfers never wait on each other across two
   * shards (a deadlock no single PostgreSQL would see; the SDK's cross-shard lock timeout would break it,
   * failing one of them). The ledger's primary key makes the id usable once per user: a transfer repeated
   * with the same id (say after an UNAVAILABLE, whose outcome is unknown) fails instead of paying twice.
   *
   * @param afterWrites called inside the work after both shards are written (null: none)
   * @throws TransferRefused when a user has no account or {@code from} has less than {@code amount}
   */
  public Transfer transfer(UUID transferId, long from, long to, long amount, AfterWrites afterWrites)
      throws SQLException {
    if (from == to) {
      throw new IllegalArgumentException("to: the same user as from (" + from + ")");
    }
    if (amount <= 0) {
      throw new IllegalArgumentException("amount: must be > 0, got " + amount);
    }
    AtomicInteger runs = new AtomicInteger();
    List<String> shards = data.acrossShards(tx -> {
      int run = runs.incrementAndGet();
      for (long id : new long[] {Math.min(from, to), Math.max(from, to)}) {
        long delta = id == from ? -amount : amount;
        Connection c = tx.connection(keyspace, id); // the shard that owns id; opened on first use
        try (PreparedStatement ps = c.prepareStatement(moveSql)) {
          ps.setLong(1, delta);
          ps.setLong(2, id);
          ps.setLong(3, delta);
          if (ps.executeUpdate() == 0) {
            throw refused(c, id, amount); // rolls back every shard the work touched
          }
        }
        try (PreparedStatement ps = c.prepareStatement(ledgerSql)) {
          ps.setLong(1, id);
          ps.setObject(2, transferId);
          ps.setLong(3, delta);
          ps.setLong(4, id == from ? to : from);
          ps.executeUpdate();
        }
      }
      if (afterWrites != null) {
        afterWrites.written(run, tx.shards());
      }
      return List.copyOf(tx.shards());
    });
    return new Transfer(transferId, from, to, amount, shards, runs.get());
  }

  private TransferRefused refused(Connection c, long id, long amount) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT balance FROM " + accounts + " WHERE user_id = ?")) {
      ps.setLong(1, id);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          return new TransferRefused("user id " + id + " has no account");
        }
        return new TransferRefused("user id " + id + " has " + rs.getLong(1) + ", less than " + amount);
      }
    }
  }

  /** The user's balance, or null without an account; read on the owning shard. */
  public Long balance(long userId) throws SQLException {
    return data.read(keyspace, userId, c -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT balance FROM " + accounts + " WHERE user_id = ?")) {
        ps.setLong(1, userId);
        try (ResultSet rs = ps.executeQuery()) {
          return rs.next() ? rs.getLong(1) : null;
        }
      }
    });
  }

  /** The user's last {@code limit} ledger rows, newest first; read on the owning shard. */
  public List<LedgerRow> ledger(long userId, int limit) throws SQLException {
    return data.read(keyspace, userId, c -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT transfer_id, amount, other_user, at FROM " + ledger
          + " WHERE user_id = ? ORDER BY at DESC, transfer_id LIMIT ?")) {
        ps.setLong(1, userId);
        ps.setInt(2, limit);
        List<LedgerRow> rows = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            Timestamp at = rs.getTimestamp(4);
            rows.add(new LedgerRow(userId, rs.getObject(1, UUID.class), rs.getLong(2), rs.getLong(3), at.toInstant()));
          }
        }
        return rows;
      }
    });
  }

  /**
   * Accounts and the sum of their balances over every shard, and the sum of all ledger amounts (0 when
   * every transfer has both of its rows): two cross-shard queries, each at one map revision.
   */
  public long[] totals() throws SQLException {
    long[] a = data.queryList(CrossShardQuery.builder(keyspace, "SELECT count(*), sum(balance) FROM " + accounts)
        .build(), r -> new long[] {r.getLong(1), r.getLong(2) == null ? 0 : r.getLong(2)}).get(0);
    long[] l = data.queryList(CrossShardQuery.builder(keyspace, "SELECT count(*), sum(amount) FROM " + ledger)
        .build(), r -> new long[] {r.getLong(1), r.getLong(2) == null ? 0 : r.getLong(2)}).get(0);
    return new long[] {a[0], a[1], l[0], l[1]};
  }
}
