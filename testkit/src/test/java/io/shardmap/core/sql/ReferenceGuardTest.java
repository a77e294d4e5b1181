package io.shardmap.core.sql;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link ReferenceGuard} on real PostgreSQL 15: a copy refuses writes that declare nothing or an old epoch,
 * takes those that declare its epoch or bypass in their own transaction, and raising the epoch waits for a
 * prepared writer of the old epoch, after which no old-epoch write gets through.
 */
@Tag("integration")
@Timeout(120)
class ReferenceGuardTest {
  static PostgresFixture fixture;
  static PgInstance pg;
  static final String T = "public.countries";

  @BeforeAll
  static void start() {
    fixture = PostgresFixture.startNew(1);
    pg = fixture.shard(0);
  }

  @AfterAll
  static void stop() {
    if (fixture != null) {
      fixture.close();
    }
  }

  @BeforeEach
  void table() throws SQLException {
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS countries");
      s.execute("CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL)");
      s.execute("INSERT INTO countries VALUES ('fr', 'France')");
      ReferenceGuard.install(c, T, 3);
    }
  }

  static int rows(Connection c) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM countries")) {
      rs.next();
      return rs.getInt(1);
    }
  }

  static SQLException write(Map<String, Long> declared, String sql) throws SQLException {
    try (Connection c = pg.connect()) {
      c.setAutoCommit(false);
      if (declared != null) {
        ReferenceGuard.declare(c, declared);
      }
      try (Statement s = c.createStatement()) {
        s.execute(sql);
        c.commit();
        return null;
      } catch (SQLException e) {
        c.rollback();
        return e;
      }
    }
  }

  @Test
  void undeclaredWritesAreRefusedNamingTheTableAndTheWay() throws SQLException {
    for (String sql : List.of("INSERT INTO countries VALUES ('de', 'Germany')", "UPDATE countries SET name = 'x'",
        "DELETE FROM countries", "TRUNCATE countries")) {
      SQLException e = write(null, sql);
      assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState(), sql);
      assertTrue(e.getMessage().contains("public.countries is a reference table"), e.getMessage());
      assertTrue(e.getMessage().contains("ShardmapData.writeReference"), e.getMessage());
    }
    // a declaration for another table does not cover this one
    assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE,
        write(Map.of("public.plans", 3L), "DELETE FROM countries").getSQLState());
    try (Connection c = pg.connect()) {
      assertEquals(1, rows(c));
    }
  }

  @Test
  void theCurrentEpochWritesAndAnOldOneIsRefusedWithTheCopysEpoch() throws SQLException {
    assertEquals(null, write(Map.of(T, 3L), "INSERT INTO countries VALUES ('de', 'Germany')"));
    SQLException stale = write(Map.of(T, 2L, "public.plans", 9L), "DELETE FROM countries");
    assertEquals(ReferenceGuard.STALE_SQLSTATE, stale.getSQLState());
    assertEquals(3, ReferenceGuard.refusedEpoch(stale.getMessage()));
    try (Connection c = pg.connect()) {
      assertEquals(2, rows(c));
    }
  }

  @Test
  void bypassHoldsForItsOwnTransactionOnly() throws SQLException {
    try (Connection c = pg.connect()) {
      c.setAutoCommit(false);
      ReferenceGuard.bypass(c);
      try (Statement s = c.createStatement()) {
        s.execute("INSERT INTO countries VALUES ('it', 'Italy')");
      }
      c.commit();
      try (Statement s = c.createStatement()) { // next transaction: the setting is gone
        SQLException e = assertThrows(SQLException.class, () -> s.execute("DELETE FROM countries"));
        assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState());
      }
      c.rollback();
      // a session-wide value copied from an old txid does not pass either
      c.setAutoCommit(true);
      try (Statement s = c.createStatement()) {
        s.execute("SELECT set_config('" + ReferenceGuard.BYPASS_SETTING + "', (txid_current() - 1)::text, false)");
        SQLException e = assertThrows(SQLException.class, () -> s.execute("DELETE FROM countries"));
        assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState());
      }
      assertEquals(2, rows(c));
    }
  }

  @Test
  void raisingTheEpochWaitsForAPreparedOldEpochWriter() throws Exception {
    Connection writer = pg.connect();
    writer.setAutoCommit(false);
    ReferenceGuard.declare(writer, Map.of(T, 3L));
    try (Statement s = writer.createStatement()) {
      s.execute("INSERT INTO countries VALUES ('es', 'Spain')");
      s.execute("PREPARE TRANSACTION 'refguard-test'");
    }
    writer.setAutoCommit(true);
    try (Connection raiser = pg.connect()) {
      CompletableFuture<Long> raised = CompletableFuture.supplyAsync(() -> {
        try {
          return ReferenceGuard.raise(raiser, T, 4);
        } catch (SQLException e) {
          throw new RuntimeException(e);
        }
      });
      assertThrows(TimeoutException.class, () -> raised.get(500, TimeUnit.MILLISECONDS), "waits for the writer");
      try (Statement s = writer.createStatement()) {
        s.execute("COMMIT PREPARED 'refguard-test'");
      }
      assertEquals(4L, raised.get(30, TimeUnit.SECONDS));
    } finally {
      writer.close();
    }
    assertEquals(ReferenceGuard.STALE_SQLSTATE,
        write(Map.of(T, 3L), "INSERT INTO countries VALUES ('pt', 'Portugal')").getSQLState());
    assertEquals(null, write(Map.of(T, 4L), "INSERT INTO countries VALUES ('pt', 'Portugal')"));
    try (Connection c = pg.connect()) {
      assertEquals(3, rows(c)); // fr, es (prepared, then committed) and pt
      assertEquals(4L, ReferenceGuard.raise(c, T, 2), "never lowered");
      ReferenceGuard.install(c, T, 1);
      assertEquals(OptionalLong.of(4), ReferenceGuard.epoch(c, T), "install never lowers either");
    }
  }

  @Test
  void uninstallFreesTheTable() throws SQLException {
    try (Connection c = pg.connect()) {
      ReferenceGuard.uninstall(c, T);
      assertFalse(ReferenceGuard.epoch(c, T).isPresent());
      ShardmapException e = assertThrows(ShardmapException.class, () -> ReferenceGuard.raise(c, T, 5));
      assertEquals(ErrorCode.NOT_FOUND, e.code());
    }
    assertEquals(null, write(null, "DELETE FROM countries"));
  }

  @Test
  void namesAndPrimaryKeys() throws SQLException {
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      assertEquals(T, ReferenceGuard.canonicalName(c, "table", "countries"));
      assertEquals(T, ReferenceGuard.canonicalName(c, "table", "PUBLIC.Countries"));
      assertEquals(List.of("code"), ReferenceGuard.primaryKey(c, T));
      s.execute("DROP TABLE IF EXISTS \"Odd Name\", nokey");
      s.execute("CREATE TABLE \"Odd Name\" (b int, a int, PRIMARY KEY (a, b))");
      s.execute("CREATE TABLE nokey (a int)");
      assertEquals("public.\"Odd Name\"", ReferenceGuard.canonicalName(c, "table", "\"Odd Name\""));
      assertEquals(List.of("a", "b"), ReferenceGuard.primaryKey(c, "public.\"Odd Name\""));
      assertEquals(List.of(), ReferenceGuard.primaryKey(c, "public.nokey"));
      ShardmapException missing = assertThrows(ShardmapException.class,
          () -> ReferenceGuard.canonicalName(c, "table", "nosuch"));
      assertEquals(ErrorCode.NOT_FOUND, missing.code());
      assertTrue(missing.getMessage().startsWith("table: "), missing.getMessage());
      ShardmapException bad = assertThrows(ShardmapException.class,
          () -> ReferenceGuard.canonicalName(c, "table", "a.b.c.d"));
      assertEquals(ErrorCode.INVALID_ARGUMENT, bad.code());
    }
  }
}
