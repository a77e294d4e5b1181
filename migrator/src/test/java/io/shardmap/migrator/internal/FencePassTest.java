package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.StaleRoute;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.ShardmapException;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Who passes a fence, on real PostgreSQL (issue 10, items 1 and 4): a write declaring its route passes
 * for the declared key only, at an epoch above the fence's; the migrator's bypass works only for
 * superusers and members of {@link Fences#PASS_ROLE}, not for an application role that sets the same
 * setting; the migrator's role check refuses clearly, or grants the role when it can.
 */
@Tag("integration")
class FencePassTest {
  PgInstance pg;
  String table;
  String uid;

  @BeforeEach
  void setUp() throws SQLException {
    pg = PostgresFixture.shared(1).shard(0);
    uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    table = "fp_" + uid;
    pg.exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, v bigint NOT NULL)");
    pg.exec("CREATE TABLE " + table + "_t (id text PRIMARY KEY, v bigint NOT NULL)");
    pg.exec("INSERT INTO " + table + " VALUES (10, 0), (20, 0)");
  }

  @AfterEach
  void tearDown() throws SQLException {
    pg.exec("DROP TABLE IF EXISTS " + table + ", " + table + "_t");
    pg.exec("DELETE FROM shardmap.fences WHERE tbl IN ('" + table + "', '" + table + "_t')");
    for (String role : new String[] {"app_" + uid, "mig_" + uid, "cr_" + uid}) {
      pg.exec("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '" + role + "') THEN "
          + "EXECUTE 'DROP OWNED BY " + role + "'; EXECUTE 'DROP ROLE " + role + "'; END IF; END $$");
    }
  }

  private static void declare(Connection c, String keyspace, String epoch, String key) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(StaleRoute.declarationSql(true))) {
      ps.setString(1, keyspace);
      ps.setString(2, epoch);
      ps.setString(3, key);
      ps.execute();
    }
  }

  private static SQLException refused(Statement s, String sql) {
    SQLException e = assertThrows(SQLException.class, () -> s.executeUpdate(sql), sql);
    assertTrue(StaleRoute.isStaleRoute(e), () -> sql + ": " + e);
    return e;
  }

  /** Calls in this transaction of the fence trigger's function and of the pass function (track_functions on). */
  private static long fenceCalls(Statement s, String triggerFunction) throws SQLException {
    try (java.sql.ResultSet rs = s.executeQuery("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
        + "WHERE schemaname = 'shardmap' AND funcname IN ('fence_pass_v1', '" + triggerFunction + "')")) {
      rs.next();
      return rs.getLong(1);
    }
  }

  /**
   * Issue 16: the migrator's own rows (bypass set for its transaction, a superuser here) do not run the
   * fence trigger at all: its WHEN condition skips them, so a delete through the fence calls neither the
   * trigger's function nor the pass function, counted by PostgreSQL (the same delete through a trigger of
   * before issue 16, without WHEN, calls both for every row). Such an old trigger is replaced by the next
   * fence written on the table. Who may pass is unchanged (the other tests here). The role exists, as
   * after any move's preparation.
   */
  @Test
  void theMigratorsRowsSkipTheFenceTriggerAndAnOldTriggerIsReplaced() throws Exception {
    RangeTableMove away = new RangeTableMove("m" + uid, "ks", table, "id", 0L, 1_000L);
    pg.exec("INSERT INTO " + table + " SELECT g, 0 FROM generate_series(30, 129) g");
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      Fences.ensureSchema(c);
      // As a move's preparation does: the role exists (a superuser creates it; without it the trigger runs
      // for everybody and the pass function decides).
      Fences.requirePass(c, "s1");
      assertTrue(away.fence(c, 5, Duration.ofSeconds(5)));
      String fn;
      try (java.sql.ResultSet rs = s.executeQuery("SELECT p.proname, t.tgqual IS NOT NULL FROM pg_trigger t JOIN pg_proc p "
          + "ON p.oid = t.tgfoid WHERE t.tgrelid = '" + table + "'::regclass AND t.tgname = '" + Fences.TRIGGER + "'")) {
        assertTrue(rs.next());
        fn = rs.getString(1);
        assertTrue(rs.getBoolean(2), "the fence trigger has its WHEN condition");
      }
      s.execute("SET track_functions = 'pl'");
      c.setAutoCommit(false);
      Fences.passFence(s);
      assertEquals(50, s.executeUpdate("DELETE FROM " + table + " WHERE id >= 30 AND id < 80"));
      assertEquals(0, fenceCalls(s, fn), "the migrator's rows skip the trigger");
      c.rollback();
      // A trigger as created before issue 16: the same function, no WHEN.
      c.setAutoCommit(true);
      s.execute("DROP TRIGGER " + Fences.TRIGGER + " ON " + table);
      s.execute("CREATE TRIGGER " + Fences.TRIGGER + " BEFORE INSERT OR UPDATE OR DELETE ON " + table
          + " FOR EACH ROW EXECUTE FUNCTION shardmap.\"" + fn + "\"()");
      c.setAutoCommit(false);
      Fences.passFence(s);
      assertEquals(50, s.executeUpdate("DELETE FROM " + table + " WHERE id >= 30 AND id < 80"));
      assertEquals(100, fenceCalls(s, fn), "without WHEN: the trigger and the pass function for each of 50 rows");
      c.rollback();
      c.setAutoCommit(true);
      // The next fence on the table (another migration's) rewrites its trigger with the condition.
      RangeTableMove other = new RangeTableMove("n" + uid, "ks", table, "id", 5_000L, 6_000L);
      assertTrue(other.fence(c, 7, Duration.ofSeconds(5)));
      try (java.sql.ResultSet rs = s.executeQuery("SELECT count(*) FILTER (WHERE tgqual IS NOT NULL), count(*) FROM "
          + "pg_trigger WHERE tgrelid = '" + table + "'::regclass AND tgname = '" + Fences.TRIGGER + "'")) {
        assertTrue(rs.next());
        assertEquals(1, rs.getLong(1), "replaced, with its WHEN condition");
        assertEquals(1, rs.getLong(2));
      }
      // Still fenced for everybody else.
      refused(s, "UPDATE " + table + " SET v = 1 WHERE id = 10");
    }
  }

  @Test
  void aDeclaredRoutePassesForItsKeyAboveTheFencedEpochOnly() throws Exception {
    RangeTableMove away = new RangeTableMove("m" + uid, "ks", table, "id", 0L, 1_000L);
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      Fences.ensureSchema(c);
      assertTrue(away.fence(c, 5, Duration.ofSeconds(5)));
      SQLException plain = refused(s, "INSERT INTO " + table + " VALUES (11, 1)");
      assertEquals(5, StaleRoute.fencedEpoch(plain));
      assertTrue(plain.getMessage().contains("no longer owns range [0, 1000) of keyspace 'ks'"), plain.getMessage());
      refused(s, "INSERT INTO " + table + " VALUES (2000, 1), (11, 1)");

      // Nobody is bringing the range back: no declaration passes, whatever epoch it makes up.
      c.setAutoCommit(false);
      declare(c, "ks", "6", "11");
      refused(s, "INSERT INTO " + table + " VALUES (11, 1)");
      c.rollback();
      c.setAutoCommit(true);
      // A move back to this shard arms the fence up to the epoch the range will have here (6).
      Fences.arm(c, List.of(new RangeTableMove("b" + uid, "ks", table, "id", 0L, 1_000L)), 6);
      c.setAutoCommit(false);
      declare(c, "ks", "7", "11");
      refused(s, "INSERT INTO " + table + " VALUES (11, 1)"); // above the armed epoch: made up
      c.rollback();
      declare(c, "ks", "6", "11");
      assertEquals(1, s.executeUpdate("INSERT INTO " + table + " VALUES (11, 1)"), "the declared key passes");
      assertEquals(1, s.executeUpdate("UPDATE " + table + " SET v = 2 WHERE id = 11"));
      assertEquals(1, s.executeUpdate("UPDATE " + table + " SET id = 5000 WHERE id = 11"),
          "moving the declared key out of the fence: only OLD is fenced, and it is declared");
      refused(s, "UPDATE " + table + " SET v = 1 WHERE id = 10"); // another key of the same transaction
      c.rollback();

      declare(c, "ks", "6", "10");
      refused(s, "UPDATE " + table + " SET id = 12 WHERE id = 10"); // NEW = 12 is fenced and not declared
      c.rollback();
      declare(c, "ks", "6", "10");
      assertEquals(1, s.executeUpdate("DELETE FROM " + table + " WHERE id = 10"));
      c.rollback();

      for (String[] d : new String[][] {{"ks", "5", "10"}, {"other", "6", "10"}, {"ks", "abc", "10"},
          {"ks", "99999999999999999999", "10"}, {"ks", "6", "010"}, {"ks", "", "10"}}) {
        declare(c, d[0], d[1], d[2]);
        refused(s, "DELETE FROM " + table + " WHERE id = 10");
        c.rollback();
      }
      c.setAutoCommit(true);
      // A transaction-local declaration ended with its transaction.
      refused(s, "DELETE FROM " + table + " WHERE id = 10");
    }
  }

  @Test
  void aDeclarationMatchesTextKeysByTheirUtf8() throws Exception {
    MoveUnit unit = new MoveUnit.Range(KeyRange.of("a".getBytes(StandardCharsets.UTF_8),
        "m".getBytes(StandardCharsets.UTF_8), "range"));
    RangeTableMove away = new RangeTableMove("m" + uid, "ks", table + "_t", "id", KeyKind.TEXT, unit);
    try (Connection c = pg.connect(); Statement s = c.createStatement()) {
      Fences.ensureSchema(c);
      assertTrue(away.fence(c, 7, Duration.ofSeconds(5)));
      Fences.arm(c, List.of(new RangeTableMove("b" + uid, "ks", table + "_t", "id", KeyKind.TEXT, unit)), 8);
      SQLException e = refused(s, "INSERT INTO " + table + "_t VALUES ('bé', 1)");
      assertTrue(e.getMessage().contains("no longer owns range [0x61, 0x6d) of keyspace 'ks'"), e.getMessage());
      c.setAutoCommit(false);
      declare(c, "ks", "8", StaleRoute.declaredKey("bé"));
      assertEquals(1, s.executeUpdate("INSERT INTO " + table + "_t VALUES ('bé', 1)"));
      refused(s, "INSERT INTO " + table + "_t VALUES ('be', 1)");
      c.rollback();
    }
  }

  @Test
  void onlyTheMigratorsRoleMayBypassAFence() throws Exception {
    String app = "app_" + uid;
    String mig = "mig_" + uid;
    String creator = "cr_" + uid;
    try (Connection admin = pg.connect(); Statement s = admin.createStatement()) {
      Fences.requirePass(admin, "s1"); // a superuser: creates the role, needs no membership
      Fences.ensureSchema(admin);
      s.execute("CREATE ROLE " + app + " LOGIN");
      s.execute("CREATE ROLE " + mig + " LOGIN IN ROLE " + Fences.PASS_ROLE);
      s.execute("CREATE ROLE " + creator + " LOGIN CREATEROLE");
      s.execute("GRANT ALL ON " + table + " TO " + app + ", " + mig + ", " + creator);
      assertTrue(new RangeTableMove("m" + uid, "ks", table, "id", 0L, 1_000L).fence(admin, 5, Duration.ofSeconds(5)));
    }
    String write = "UPDATE " + table + " SET v = v + 1 WHERE id = 10";
    try (Connection c = as(app); Statement s = c.createStatement()) {
      assertEquals(1, s.executeUpdate("INSERT INTO " + table + " VALUES (2000, 0)"), "unfenced rows take its writes");
      c.setAutoCommit(false);
      Fences.passFence(s);
      SQLException e = refused(s, write);
      assertEquals(5, StaleRoute.fencedEpoch(e), "an application role that sets the bypass is refused");
      c.rollback();
      c.setAutoCommit(true);
      ShardmapException no = assertThrows(ShardmapException.class, () -> Fences.requirePass(c, "s1"));
      assertEquals(ErrorCode.FAILED_PRECONDITION, no.code());
      assertTrue(no.getMessage().contains("GRANT " + Fences.PASS_ROLE + " TO \"" + app + "\""), no.getMessage());
    }
    try (Connection c = as(mig); Statement s = c.createStatement()) {
      Fences.requirePass(c, "s1");
      c.setAutoCommit(false);
      Fences.passFence(s);
      assertEquals(1, s.executeUpdate(write), "a member of " + Fences.PASS_ROLE + " passes");
      c.commit();
      refused(s, write); // the pass ended with its transaction
    }
    try (Connection c = as(creator); Statement s = c.createStatement()) {
      assertTrue(!Fences.mayPass(c));
      Fences.requirePass(c, "s1"); // CREATEROLE: grants itself the role
      assertTrue(Fences.mayPass(c));
      c.setAutoCommit(false);
      Fences.passFence(s);
      assertEquals(1, s.executeUpdate(write));
      c.rollback();
    }
  }

  private Connection as(String role) throws SQLException {
    return new PgInstance(pg.host(), pg.port(), pg.database(), role, "").connect();
  }
}
