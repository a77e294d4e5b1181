package io.shardmap.bench;

import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.PreparedTransactions;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.sql.DataSource;

/**
 * A bench-only replay of what {@code acrossShards} sends for a two-shard transfer (client-sdk's
 * TxnCoordinator and ShardmapData), on the SDK's own pools, with the statements it sends in the same order,
 * to price the round trips that are not the protocol's own: the two {@code SET LOCAL lock_timeout} the SDK
 * sends one after the other when the work opens its second shard, and the write check before the prepares.
 * Not a second implementation: no retries, no failure handling, only the fault-free path.
 *
 * <ul>
 *   <li>{@link Variant#AS_SDK}: as the SDK does it today;
 *   <li>{@link Variant#PARALLEL_LOCK_TIMEOUT}: the first shard's {@code SET LOCAL} sent on another thread while
 *       the second shard's goes on the caller's (both connections are idle then: the work is waiting in
 *       {@code tx.connection}), so one round trip instead of two;
 *   <li>{@link Variant#NO_WRITE_CHECK}: that, and no write check: every participant but the first is
 *       prepared, the first decides. A participant that only read then pays a PREPARE and a COMMIT PREPARED
 *       where the SDK commits it plainly, and one writer among readers is no longer a one-phase commit.
 * </ul>
 */
final class TxnSteps {
  enum Variant { AS_SDK, PARALLEL_LOCK_TIMEOUT, NO_WRITE_CHECK }

  private final DataSource first;
  private final DataSource second;
  private final String firstShard;
  private final String secondShard;
  private final ExecutorService helpers;
  private final String setLockTimeout;

  TxnSteps(DataSource first, String firstShard, DataSource second, String secondShard, ExecutorService helpers,
      Duration lockTimeout) {
    this.first = first;
    this.second = second;
    this.firstShard = firstShard;
    this.secondShard = secondShard;
    this.helpers = helpers;
    this.setLockTimeout = "SET LOCAL lock_timeout = '" + lockTimeout.toMillis() + "ms'";
  }

  /** The transfer's UPDATE on the first shard's row {@code a} and the second's row {@code b}, committed atomically. */
  void transfer(Variant v, long a, long b) throws Exception {
    try (Connection c0 = first.getConnection(); Connection c1 = second.getConnection()) {
      c0.setAutoCommit(false);
      TxnCommand.update(c0, a, 1);
      c1.setAutoCommit(false);
      if (v == Variant.AS_SDK) {
        exec(c0, setLockTimeout);
        exec(c1, setLockTimeout);
      } else {
        Future<?> other = helpers.submit(() -> exec(c0, setLockTimeout));
        exec(c1, setLockTimeout);
        other.get(30, TimeUnit.SECONDS);
      }
      TxnCommand.update(c1, b, -1);
      if (v != Variant.NO_WRITE_CHECK) {
        Future<Boolean> other = helpers.submit(() -> wrote(c1));
        if (!wrote(c0) || !other.get(30, TimeUnit.SECONDS)) {
          throw new IllegalStateException("both shards wrote");
        }
      }
      TxnId id = TxnId.random("bench", firstShard, "txn-steps");
      PreparedTransactions.prepare(c1, id, secondShard);
      DecisionRows.commitWithDecision(c0, id, List.of(secondShard));
      c1.setAutoCommit(true);
      PreparedTransactions.commitPrepared(c1, id);
    }
  }

  private static Void exec(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute(sql);
    }
    return null;
  }

  private static boolean wrote(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT txid_current_if_assigned() IS NOT NULL")) {
      rs.next();
      return rs.getBoolean(1);
    }
  }
}
