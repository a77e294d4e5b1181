package io.shardmap.client.internal.query;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.query.FenceGuard.Verdict;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * FenceGuard's SQL on real PostgreSQL, in a database of its own: no fences table (fresh), a fences table in
 * the first release's shape (no unit columns), rows of every age, a role that may not read the table, a
 * transaction that is not REPEATABLE READ, and the snapshot the check takes for the statements after it.
 */
@Tag("integration")
class FenceGuardSqlTest {
  PgInstance admin;
  PgInstance db;

  @BeforeEach
  void setUp() throws SQLException {
    admin = PostgresFixture.shared(1).shard(0);
    String name = "fg_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    admin.exec("CREATE DATABASE " + name);
    db = new PgInstance(admin.host(), admin.port(), name, admin.user(), admin.password());
  }

  @AfterEach
  void tearDown() throws SQLException {
    admin.exec("DROP DATABASE IF EXISTS " + db.database() + " WITH (FORCE)");
  }

  private static Connection begin(PgInstance p) throws SQLException {
    Connection c = p.connect();
    c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
    c.setAutoCommit(false);
    return c;
  }

  private Verdict check(FenceGuard g, String shard, io.shardmap.core.KeyspaceMap map) throws SQLException {
    return check(g, "ks", shard, map);
  }

  private Verdict check(FenceGuard g, String keyspace, String shard, io.shardmap.core.KeyspaceMap map)
      throws SQLException {
    try (Connection c = begin(db)) {
      Verdict v = g.check(c, keyspace, shard, map);
      c.rollback();
      return v;
    }
  }

  @Test
  void aShardWithoutFencesIsFreshAndTheCheckRefusesConnectionsOutsideASnapshotTransaction() throws SQLException {
    FenceGuard g = new FenceGuard();
    assertFalse(check(g, "s1", FenceGuardTest.ranges("s1", 5)).stale());
    try (Connection c = db.connect()) {
      assertTrue(assertThrows(IllegalStateException.class, () -> g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5)))
          .getMessage().contains("autocommit is on"));
      c.setAutoCommit(false);
      assertTrue(assertThrows(IllegalStateException.class, () -> g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5)))
          .getMessage().contains("got 'read committed'"));
      c.rollback();
    }
  }

  @Test
  void rowsOfEveryAgeAreReadWhateverColumnsTheTableHas() throws SQLException {
    // The first release's table: bounds only.
    db.exec("CREATE SCHEMA shardmap");
    db.exec("CREATE TABLE shardmap.fences (tbl text NOT NULL, migration text NOT NULL, key_column text NOT NULL, "
        + "lo bigint, hi bigint, keyspace text NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (tbl, migration))");
    db.exec("INSERT INTO shardmap.fences VALUES ('t', 'm1', 'id', 0, 100, 'ks', 5), ('t', 'x', 'id', 0, 100, 'other', 9)");
    FenceGuard g = new FenceGuard();
    Verdict v = check(g, "s1", FenceGuardTest.ranges("s1", 5));
    assertTrue(v.stale(), v.message());
    assertEquals("m1", v.migration());
    assertFalse(check(g, "s1", FenceGuardTest.ranges("s3", 6)).stale(), "after the cutover");
    assertFalse(check(g, "s1", FenceGuardTest.ranges("s1", 7)).stale(), "moved back: the fence is an old one");
    // Later columns, and rows with and without a unit_id.
    db.exec("ALTER TABLE shardmap.fences ADD COLUMN cond_new text, ADD COLUMN cond_old text, ADD COLUMN unit_text text, "
        + "ADD COLUMN unit_spec text, ADD COLUMN pass_epoch bigint, ADD COLUMN armed_by text, ADD COLUMN unit_id text");
    db.exec("INSERT INTO shardmap.fences (tbl, migration, key_column, keyspace, epoch, cond_new, cond_old, unit_spec) "
        + "VALUES ('t', 'b3', 'id', 'hk', 5, 'true', 'true', 'bucket:3:8')");
    db.exec("INSERT INTO shardmap.fences (tbl, migration, key_column, keyspace, epoch, cond_new, cond_old, unit_id) "
        + "VALUES ('t', 'r2', 'id', 'ks', 3, 'true', 'true', 'v1:int64:100:')");
    db.exec("INSERT INTO shardmap.fences (tbl, migration, key_column, keyspace, epoch, cond_new, cond_old) "
        + "VALUES ('t', 'arc', 'id', 'rk', 3, 'true', 'true')");
    // g read the table before it had the new columns (it keeps reading rows as JSON); a new guard reads the
    // columns themselves: both must agree.
    for (FenceGuard guard : java.util.List.of(g, new FenceGuard())) {
      assertFalse(check(guard, "hk", "s2", FenceGuardTest.hash("s3", 6)).stale(), "bucket 3 moved on");
      Verdict b = check(guard, "hk", "s2", FenceGuardTest.hash("s2", 5));
      assertTrue(b.stale(), b.message());
      assertEquals("b3", b.migration());
      Verdict r = check(guard, "s2", FenceGuardTest.ranges("s3", 6));
      assertTrue(r.stale(), "[100..) is s2's at epoch 1, below r2's fence at 3");
      assertEquals("r2", r.migration());
      Verdict whole = check(guard, "rk", "s3", FenceGuardTest.ranges("s3", 6));
      assertFalse(whole.stale(), "s3 holds [0, 100) at 6, above the fence at 3");
      assertEquals(1, whole.notes().size(), "a row without unit_id or bucket spec is reported");
    }
  }

  @Test
  void aRoleThatMayNotReadTheFencesIsToldWhatToGrant() throws SQLException {
    db.exec("CREATE SCHEMA shardmap");
    db.exec("CREATE TABLE shardmap.fences (tbl text NOT NULL, migration text NOT NULL, key_column text NOT NULL, "
        + "lo bigint, hi bigint, keyspace text NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (tbl, migration))");
    String role = "fg_reader_" + db.database().substring(3);
    admin.exec("CREATE ROLE " + role + " NOLOGIN");
    try {
      db.exec("GRANT USAGE ON SCHEMA shardmap TO " + role);
      FenceGuard g = new FenceGuard();
      try (Connection c = db.connect(); Statement s = c.createStatement()) {
        s.execute("SET ROLE " + role);
        c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
        c.setAutoCommit(false);
        ShardmapException e = assertThrows(ShardmapException.class,
            () -> g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5)));
        assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
        assertTrue(e.getMessage().contains("GRANT SELECT ON shardmap.fences TO PUBLIC"), e.getMessage());
        c.rollback();
        db.exec("GRANT SELECT ON shardmap.fences TO PUBLIC");
        assertFalse(g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5)).stale());
        c.rollback();
        // Seen readable: the next check reads at once, and a revoked grant fails it once, then probes again.
        db.exec("REVOKE SELECT ON shardmap.fences FROM PUBLIC");
        SQLException denied = assertThrows(SQLException.class, () -> g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5)));
        assertEquals("42501", denied.getSQLState());
        c.rollback();
        assertEquals(ErrorCode.FAILED_PRECONDITION, assertThrows(ShardmapException.class,
            () -> g.check(c, "ks", "s1", FenceGuardTest.ranges("s1", 5))).code());
        c.rollback();
      }
    } finally {
      admin.exec("DROP DATABASE IF EXISTS " + db.database() + " WITH (FORCE)");
      admin.exec("DROP ROLE IF EXISTS " + role);
    }
  }

  /**
   * The check takes the part's snapshot: a fence committed after it is not seen, and neither are the rows
   * deleted after it (cleanup comes after the fence), so what the part reads next is what the shard held
   * when the fences were read.
   */
  @Test
  void theCheckTakesTheSnapshotTheQueryReadsIn() throws SQLException {
    db.exec("CREATE SCHEMA shardmap");
    db.exec("CREATE TABLE shardmap.fences (tbl text NOT NULL, migration text NOT NULL, key_column text NOT NULL, "
        + "lo bigint, hi bigint, keyspace text NOT NULL, epoch bigint NOT NULL, unit_id text, PRIMARY KEY (tbl, migration))");
    db.exec("CREATE TABLE t (id bigint PRIMARY KEY)");
    db.exec("INSERT INTO t SELECT generate_series(0, 99)");
    FenceGuard g = new FenceGuard();
    try (Connection part = begin(db); Statement s = part.createStatement()) {
      assertFalse(g.check(part, "ks", "s1", FenceGuardTest.ranges("s1", 5)).stale());
      db.exec("INSERT INTO shardmap.fences VALUES ('t', 'm1', 'id', 0, 100, 'ks', 5, 'v1:int64:0:100')");
      db.exec("DELETE FROM t");
      try (ResultSet rs = s.executeQuery("SELECT count(*) FROM t")) {
        rs.next();
        assertEquals(100, rs.getInt(1), "the rows as of the check");
      }
      part.rollback();
    }
    assertTrue(check(g, "s1", FenceGuardTest.ranges("s1", 5)).stale(), "a new part sees the fence");
  }
}
