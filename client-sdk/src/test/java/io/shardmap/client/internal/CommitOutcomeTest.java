package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.shardmap.client.DataOptions;
import io.shardmap.client.internal.CommitOutcome.Status;
import io.shardmap.client.internal.ShardPools.ShardPool;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.Shard;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * How the outcome of a commit cut off by a failover is looked up, against a real PostgreSQL: each answer of
 * {@code pg_xact_status} maps to the right verdict, "in progress" is asked again until final, and an id the
 * primary has never seen counts as not committed only on a primary of a later term.
 */
@Tag("integration")
@Timeout(60)
class CommitOutcomeTest {
  private static final PostgresFixture PG = PostgresFixture.shared(1);
  private static final SQLException CUT = new SQLTransientConnectionException("connection lost in COMMIT", "08006");

  private ShardPools pools;
  private PgInstance pg;

  @BeforeEach
  void start() throws SQLException {
    pg = PG.shard(0);
    DataOptions.Builder b = DataOptions.builder().user(pg.user()).connectionTimeout(Duration.ofSeconds(2));
    if (pg.password() != null) {
      b.password(pg.password());
    }
    pools = new ShardPools(b.build());
  }

  @AfterEach
  void close() {
    pools.close();
  }

  private ShardPool pool(long revision, long term) {
    Shard s = Shard.newBuilder().setName("p").setPrimaryTerm(term)
        .setPrimary(Endpoint.newBuilder().setHost(pg.host()).setPort(pg.port()).setDatabase(pg.database()))
        .setPatroni(PatroniSource.newBuilder().setScope("p")).build();
    pools.sync(new DirectorySnapshot(revision, Map.of(), Map.of("p", s)));
    return pools.pools().get("p");
  }

  private static FailoverBuffer buffer(Duration window) {
    return new FailoverBuffer(10, window, Duration.ofMillis(20), System::nanoTime);
  }

  /** A transaction that wrote (so it has an id), left open; the caller commits or rolls back. */
  private static String openWritingTxn(Connection c) throws SQLException {
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      s.execute("create temp table if not exists t (x int)");
      s.execute("insert into t values (1)");
    }
    return CommitOutcome.assignedId(c);
  }

  @Test
  void aTransactionThatWroteNothingHasNoId() throws SQLException {
    try (Connection c = pg.connect()) {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.execute("select 1");
      }
      assertNull(CommitOutcome.assignedId(c));
      c.rollback();
    }
  }

  @Test
  void committedAndAbortedAreFinal() throws SQLException {
    ShardPool p = pool(1, 1);
    String committed;
    String aborted;
    try (Connection c = pg.connect()) {
      committed = openWritingTxn(c);
      c.commit();
      aborted = openWritingTxn(c);
      c.rollback();
    }
    assertNotNull(committed);
    assertEquals(Status.COMMITTED, CommitOutcome.resolve(committed, p, () -> p, buffer(Duration.ofSeconds(5)), CUT));
    assertEquals(Status.ABORTED, CommitOutcome.resolve(aborted, p, () -> p, buffer(Duration.ofSeconds(5)), CUT));
  }

  @Test
  void inProgressIsAskedAgainUntilItEnds() throws Exception {
    ShardPool p = pool(1, 1);
    try (Connection c = pg.connect()) {
      String xid = openWritingTxn(c);
      CompletableFuture<Status> verdict = CompletableFuture.supplyAsync(
          () -> CommitOutcome.resolve(xid, p, () -> p, buffer(Duration.ofSeconds(20)), CUT));
      Thread.sleep(300);
      assertEquals(false, verdict.isDone(), "still in progress: no verdict yet");
      c.commit();
      assertEquals(Status.COMMITTED, verdict.get(10, TimeUnit.SECONDS));
    }
  }

  @Test
  void aNewerPrimaryOrARestartedServerIsNeverAsked() throws SQLException {
    ShardPool old = pool(1, 1);
    String id;
    try (Connection c = pg.connect()) {
      id = openWritingTxn(c);
      c.commit();
    }
    // Committed on this server, but after a failover the same id may be another transaction's there.
    ShardPool next = pool(2, 2);
    assertEquals(Status.UNKNOWN, CommitOutcome.resolve(id, old, () -> next, buffer(Duration.ofSeconds(5)), CUT));
    // Same pool, but not the server instance that ran it (its start time differs): restarted, not asked.
    String xid = id.substring(0, id.indexOf('@'));
    assertEquals(Status.UNKNOWN, CommitOutcome.resolve(xid + "@2000-01-01 00:00:00+00", next, () -> next,
        buffer(Duration.ofSeconds(5)), CUT));
    assertEquals(Status.COMMITTED, CommitOutcome.resolve(xid + id.substring(id.indexOf('@')), next, () -> next,
        buffer(Duration.ofSeconds(5)), CUT));
  }
}
