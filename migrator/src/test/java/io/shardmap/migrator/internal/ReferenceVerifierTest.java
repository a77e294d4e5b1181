package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.migrator.ReferenceCheck.KeyDiff;
import io.shardmap.migrator.ReferenceCheck.Kind;
import io.shardmap.migrator.ReferenceCheck.Settings;
import io.shardmap.migrator.ReferenceRepair;
import io.shardmap.migrator.ReferenceRepair.Change;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link ReferenceVerifier} on three real PostgreSQL servers, each holding a guarded copy (shards a, b, c) of
 * a 200-row table: divergences planted under the guard's bypass are reported key by key and repaired from
 * the majority or a named source; refusals change nothing; a repair under concurrent coordinated (two-phase)
 * writers leaves every copy equal and every acknowledged write in place.
 */
@Tag("integration")
@Timeout(180)
class ReferenceVerifierTest {
  static PostgresFixture pg;
  static final List<String> SHARDS = List.of("a", "b", "c");
  static final long EPOCH = 3;

  String name;
  String table;
  final Map<String, Connection> conns = new TreeMap<>();
  final List<ReferenceCheck.Progress> seen = new CopyOnWriteArrayList<>();

  @BeforeAll
  static void fixture() {
    pg = PostgresFixture.shared(3);
  }

  @BeforeEach
  void createCopies() throws SQLException {
    name = "ref_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    table = "public." + name;
    for (int i = 0; i < SHARDS.size(); i++) {
      PgInstance p = pg.shard(i);
      // Columns in another order on c: copies compare by column name, and repairs write c's order.
      p.exec(i == 2 ? "CREATE TABLE " + name + " (name text, pop bigint, code int PRIMARY KEY)"
          : "CREATE TABLE " + name + " (code int PRIMARY KEY, name text, pop bigint)");
      p.exec("INSERT INTO " + name + " (code, name, pop) SELECT g, 'country ' || g, g * 1000 FROM generate_series(1, 200) g");
      try (Connection c = p.connect()) {
        ReferenceGuard.install(c, table, EPOCH);
      }
      conns.put(SHARDS.get(i), p.connect());
    }
  }

  @AfterEach
  void drop() throws SQLException {
    for (Connection c : conns.values()) {
      c.close();
    }
    for (int i = 0; i < SHARDS.size(); i++) {
      try (Connection c = pg.shard(i).connect()) {
        ReferenceGuard.uninstall(c, table);
      }
      pg.shard(i).exec("DROP TABLE IF EXISTS " + name);
    }
  }

  ReferenceVerifier copies(Settings s) {
    return new ReferenceVerifier(table, List.of("code"), conns, s, seen::add);
  }

  ReferenceVerifier copies() {
    return copies(new Settings(16, 20, Duration.ofSeconds(5), 5));
  }

  /** Runs {@code sql} on one copy in its own transaction under the guard's bypass (a planted divergence). */
  void plant(String shard, String sql) throws SQLException {
    try (Connection c = pg.shard(SHARDS.indexOf(shard)).connect()) {
      c.setAutoCommit(false);
      ReferenceGuard.bypass(c);
      try (Statement s = c.createStatement()) {
        s.execute(sql);
      }
      c.commit();
    }
  }

  /** The copy's rows as text, by key (a full comparison independent of the checksums under test). */
  Map<Integer, String> rows(String shard) throws SQLException {
    Map<Integer, String> out = new TreeMap<>();
    try (Connection c = pg.shard(SHARDS.indexOf(shard)).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT code, name || '|' || coalesce(pop::text, 'null') FROM " + name)) {
      while (rs.next()) {
        out.put(rs.getInt(1), rs.getString(2));
      }
    }
    return out;
  }

  void plantThree() throws SQLException {
    plant("a", "UPDATE " + name + " SET name = 'changed' WHERE code = 10");
    plant("b", "DELETE FROM " + name + " WHERE code = 20");
    plant("c", "INSERT INTO " + name + " (code, name, pop) VALUES (999, 'extra', 1)");
  }

  @Test
  void equalCopiesVerifyEqual() throws SQLException {
    ReferenceCheck r = copies().verify();
    assertTrue(r.equal(), r.toString());
    assertEquals(SHARDS, r.agreeing());
    assertEquals(1, r.copies().stream().map(ReferenceCheck.Copy::checksum).distinct().count());
    r.copies().forEach(c -> assertEquals(200, c.rows()));
    r.copies().forEach(c -> assertEquals(EPOCH, c.epoch()));
    assertTrue(seen.stream().anyMatch(p -> p.step().equals("checksums") && p.done() == 3 && p.rows() == 600), seen.toString());
  }

  @Test
  void verifyReportsExactlyThePlantedDifferences() throws SQLException {
    plantThree();
    ReferenceCheck r = copies().verify();
    assertFalse(r.equal());
    assertEquals(List.of(new KeyDiff("a", "(10)", Kind.CHANGED), new KeyDiff("b", "(20)", Kind.MISSING),
        new KeyDiff("c", "(999)", Kind.EXTRA)), r.differences());
    assertEquals(0, r.unresolvedKeys());
    assertEquals(List.of(), r.agreeing());
    assertEquals(List.of(200L, 199L, 201L), r.copies().stream().map(ReferenceCheck.Copy::rows).toList());
    assertEquals(List.of(1L, 1L, 1L), r.copies().stream().map(ReferenceCheck.Copy::differing).toList());
    assertTrue(r.bucketsDiffering() >= 1 && r.bucketsDiffering() <= 3, r.toString());
    assertTrue(seen.stream().anyMatch(p -> p.step().equals("buckets") && p.done() == 3L * 16), seen.toString());
    assertTrue(seen.stream().anyMatch(p -> p.step().equals("rows") && p.done() == 3), seen.toString());
  }

  @Test
  void oneDifferingCopyLeavesTheOthersAgreeing() throws SQLException {
    plant("b", "UPDATE " + name + " SET pop = NULL WHERE code BETWEEN 1 AND 30");
    ReferenceCheck r = new ReferenceVerifier(table, List.of("code"), conns, new Settings(16, 5, Duration.ofSeconds(5), 5),
        null).verify();
    assertEquals(List.of("a", "c"), r.agreeing());
    assertEquals(30, r.copies().get(1).changed());
    assertEquals(5, r.differences().size(), "the listing is bounded; the count is exact");
  }

  @Test
  void repairFromTheMajorityMakesEveryCopyEqual() throws SQLException {
    Map<Integer, String> original = rows("a");
    plantThree();
    ReferenceRepair r = copies().repair(null, false);
    assertEquals(List.of(new Change("a", 0, 1, 0), new Change("b", 1, 0, 0), new Change("c", 0, 0, 1)), r.changes());
    assertTrue(r.after().equal(), r.after().toString());
    assertEquals(1, r.after().copies().stream().map(ReferenceCheck.Copy::checksum).distinct().count());
    for (String s : SHARDS) {
      assertEquals(original, rows(s), s);
    }
    assertTrue(seen.stream().anyMatch(p -> p.step().equals("repair a") && p.done() == 1), seen.toString());
  }

  @Test
  void repairFromANamedSourceCopiesIt() throws SQLException {
    plantThree();
    Map<Integer, String> wanted = rows("c");
    ReferenceRepair r = copies().repair("c", false);
    assertEquals(List.of(new Change("a", 1, 1, 0), new Change("b", 2, 0, 0)), r.changes());
    assertTrue(r.after().equal());
    for (String s : SHARDS) {
      assertEquals(wanted, rows(s), s);
    }
    assertEquals("extra|1", rows("a").get(999));
  }

  @Test
  void dryRunAndAKeyWithoutMajorityChangeNothing() throws SQLException {
    plant("a", "UPDATE " + name + " SET name = 'x' WHERE code = 5");
    plant("b", "UPDATE " + name + " SET name = 'y' WHERE code = 5");
    plant("c", "DELETE FROM " + name + " WHERE code = 7");
    Map<String, Map<Integer, String>> before = new TreeMap<>();
    for (String s : SHARDS) {
      before.put(s, rows(s));
    }
    ShardmapException e = assertThrows(ShardmapException.class, () -> copies().repair(null, false));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
    assertTrue(e.getMessage().contains("--source") && e.getMessage().contains("(5)"), e.getMessage());
    ReferenceRepair dry = copies().repair("b", true);
    assertTrue(dry.dryRun());
    assertNull(dry.after());
    assertEquals(List.of(new Change("a", 0, 1, 0), new Change("c", 1, 1, 0)), dry.changes());
    ReferenceCheck v = copies().verify();
    assertEquals(1, v.unresolvedKeys());
    assertEquals(Map.of("a", "v1", "b", "v2", "c", "v3"), v.unresolved().get(0).versions());
    for (String s : SHARDS) {
      assertEquals(before.get(s), rows(s), s);
    }
  }

  @Test
  void twoCopiesThatDifferAreATie() throws SQLException {
    plant("a", "UPDATE " + name + " SET pop = 0 WHERE code = 1");
    Map<Integer, String> a = rows("a");
    Map<Integer, String> b = rows("b");
    Map<String, Connection> two = new TreeMap<>(Map.of("a", conns.get("a"), "b", conns.get("b")));
    ReferenceVerifier pair = new ReferenceVerifier(table, List.of("code"), two, Settings.DEFAULTS, null);
    ShardmapException e = assertThrows(ShardmapException.class, () -> pair.repair(null, false));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
    assertEquals(a, rows("a"));
    assertEquals(b, rows("b"));
    assertTrue(pair.repair("b", false).after().equal());
    assertEquals(b, rows("a"));
  }

  @Test
  void badInputIsRefused() throws SQLException {
    plantThree();
    Map<Integer, String> a = rows("a");
    ShardmapException e = assertThrows(ShardmapException.class, () -> copies().repair("zz", false));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
    assertTrue(e.getMessage().contains("'zz'"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new Settings(3, 20, Duration.ofSeconds(1), 1));
    assertThrows(IllegalArgumentException.class, () -> new Settings(16, 0, Duration.ofSeconds(1), 1));
    assertThrows(IllegalArgumentException.class, () -> new Settings(16, 20, Duration.ZERO, 1));
    ShardmapException pk = assertThrows(ShardmapException.class,
        () -> new ReferenceVerifier(table, List.of("name"), conns, Settings.DEFAULTS, null).verify());
    assertEquals(ErrorCode.FAILED_PRECONDITION, pk.code());
    try (Connection c = pg.shard(1).connect()) {
      ReferenceGuard.uninstall(c, table);
    }
    ShardmapException unguarded = assertThrows(ShardmapException.class, () -> copies().repair(null, false));
    assertEquals(ErrorCode.FAILED_PRECONDITION, unguarded.code());
    assertTrue(unguarded.getMessage().contains("shard 'b'") && unguarded.getMessage().contains("not guarded"),
        unguarded.getMessage());
    assertEquals(a, rows("a"));
  }

  @Test
  void aForeignKeyRefusingADeleteRollsBackTheWholeRepair() throws SQLException {
    String orders = name + "_orders";
    pg.shard(2).exec("CREATE TABLE " + orders + " (id int PRIMARY KEY, code int REFERENCES " + name + " (code))");
    try {
      plant("a", "UPDATE " + name + " SET name = 'changed' WHERE code = 10");
      plant("c", "INSERT INTO " + name + " (code, name, pop) VALUES (999, 'extra', 1)");
      pg.shard(2).exec("INSERT INTO " + orders + " VALUES (1, 999), (2, 30)");
      Map<Integer, String> a = rows("a");
      Map<Integer, String> c = rows("c");
      SQLException e = assertThrows(SQLException.class, () -> copies().repair(null, false));
      assertEquals("23503", e.getSQLState(), e.getMessage());
      assertEquals(a, rows("a"), "a's repair was rolled back with c's");
      assertEquals(c, rows("c"));
      // An update in place keeps the rows that reference it: row 30 changes on c while order 2 points at it.
      pg.shard(2).exec("DELETE FROM " + orders + " WHERE id = 1");
      plant("c", "UPDATE " + name + " SET pop = -1 WHERE code = 30");
      ReferenceRepair r = copies().repair(null, false);
      assertTrue(r.after().equal(), r.after().toString());
      assertEquals(new Change("c", 0, 1, 1), r.changes().get(1));
    } finally {
      pg.shard(2).exec("DROP TABLE IF EXISTS " + orders);
    }
  }

  @Test
  void aPreparedWriterHoldingTheEpochRowTimesOutClearly() throws SQLException {
    String gid = "refwriter_" + name;
    try (Connection w = pg.shard(1).connect()) {
      w.setAutoCommit(false);
      ReferenceGuard.declare(w, Map.of(table, EPOCH));
      try (Statement s = w.createStatement()) {
        s.execute("UPDATE " + name + " SET pop = 1 WHERE code = 1");
        s.execute("PREPARE TRANSACTION '" + gid + "'");
      }
      w.setAutoCommit(true);
      try {
        ShardmapException e = assertThrows(ShardmapException.class,
            () -> copies(new Settings(16, 20, Duration.ofMillis(200), 2)).verify());
        assertEquals(ErrorCode.ABORTED, e.code());
        assertTrue(e.getMessage().contains("shard 'b'") && e.getMessage().contains("pg_prepared_xacts"), e.getMessage());
      } finally {
        try (Statement s = w.createStatement()) {
          s.execute("COMMIT PREPARED '" + gid + "'");
        }
      }
    }
    ReferenceCheck r = copies().verify();
    assertEquals(List.of(new KeyDiff("b", "(1)", Kind.CHANGED)), r.differences());
    for (Connection c : conns.values()) {
      assertTrue(c.getAutoCommit(), "every connection is handed back in autocommit");
    }
  }

  /**
   * Writers commit with two-phase commit on every copy (declaring the epoch; one in shard order, one in
   * reverse order) while divergences are planted and repaired from the majority: every repair
   * ends with equal copies, and at the end every copy holds every acknowledged write.
   */
  @Test
  void repairUnderConcurrentCoordinatedWriters() throws Exception {
    int writers = 2;
    int txns = 3_000; // a bound: writers stop when the repairs are done
    java.util.concurrent.atomic.AtomicLong commits = new java.util.concurrent.atomic.AtomicLong();
    Map<Integer, String> acked = new ConcurrentHashMap<>();
    AtomicBoolean stop = new AtomicBoolean();
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    List<Thread> threads = new ArrayList<>();
    for (int w = 0; w < writers; w++) {
      int writer = w;
      Thread t = new Thread(() -> {
        try {
          write(writer, txns, acked, commits, stop);
        } catch (Throwable e) {
          failures.add(e);
        }
      });
      t.start();
      threads.add(t);
    }
    while (commits.get() < 20 && failures.isEmpty()) {
      Thread.onSpinWait(); // the writers are under way before the first repair
    }
    long before = commits.get();
    List<ReferenceRepair> repairs = new ArrayList<>();
    for (int round = 0; round < 4; round++) {
      String shard = SHARDS.get(round % 3);
      plant(shard, "UPDATE " + name + " SET name = 'drift " + round + "' WHERE code = " + (50 + round));
      plant(shard, "DELETE FROM " + name + " WHERE code = " + (100 + round));
      repairs.add(copies(new Settings(16, 20, Duration.ofMillis(300), 50)).repair(null, false));
    }
    long during = commits.get() - before;
    stop.set(true);
    for (Thread t : threads) {
      t.join(120_000);
    }
    assertEquals(List.of(), failures);
    assertTrue(during > 0, "writers committed while the repairs ran");
    for (ReferenceRepair r : repairs) {
      assertEquals(2, r.changes().get(0).total(), r.toString());
      assertTrue(r.after().equal(), r.after().toString());
    }
    ReferenceCheck end = copies().verify();
    assertTrue(end.equal(), end.toString());
    assertEquals(writers * 10, acked.size(), "every writer's keys were acknowledged");
    for (String s : SHARDS) {
      Map<Integer, String> rows = rows(s);
      acked.forEach((k, v) -> assertEquals(v, rows.get(k), s + " key " + k));
    }
  }

  /** One writer: each transaction sets one of its ten keys on every copy, 2PC in shard order. */
  private void write(int writer, int txns, Map<Integer, String> acked, java.util.concurrent.atomic.AtomicLong commits,
      AtomicBoolean stop) throws SQLException {
    List<Connection> cs = new ArrayList<>();
    try {
      for (int i = 0; i < SHARDS.size(); i++) {
        cs.add(pg.shard(i).connect());
      }
      for (int n = 0; n < txns && !stop.get(); n++) {
        int key = 10_000 + writer * 100 + n % 10;
        String value = "w" + writer + " n" + n;
        List<String> gids = new ArrayList<>();
        // Writer 1 writes the copies in reverse shard order: it can hold c's epoch row while the repair,
        // holding a's, waits for it; the repair's lock timeout releases everything and tries again.
        List<Connection> order = new ArrayList<>(cs);
        if (writer % 2 == 1) {
          java.util.Collections.reverse(order);
        }
        for (Connection c : order) {
          c.setAutoCommit(false);
          ReferenceGuard.declare(c, Map.of(table, EPOCH));
          try (Statement s = c.createStatement()) {
            s.execute("INSERT INTO " + name + " (code, name, pop) VALUES (" + key + ", '" + value + "', " + n + ") "
                + "ON CONFLICT (code) DO UPDATE SET name = excluded.name, pop = excluded.pop");
          }
        }
        for (Connection c : cs) {
          String gid = "ref_" + name + "_" + writer + "_" + n + "_" + gids.size();
          try (Statement s = c.createStatement()) {
            s.execute("PREPARE TRANSACTION '" + gid + "'");
          }
          c.setAutoCommit(true);
          gids.add(gid);
        }
        try {
          for (int i = 0; i < cs.size(); i++) {
            try (Statement s = cs.get(i).createStatement()) {
              s.execute("COMMIT PREPARED '" + gids.get(i) + "'");
            }
          }
        } catch (SQLException e) {
          // Leave no prepared transaction behind on the shared servers: it would hold the epoch rows.
          for (int i = 0; i < gids.size(); i++) {
            try (Statement s = cs.get(i).createStatement()) {
              s.execute("ROLLBACK PREPARED '" + gids.get(i) + "'");
            } catch (SQLException ignored) {
              // already committed there
            }
          }
          throw e;
        }
        acked.put(key, value + "|" + n);
        commits.incrementAndGet();
      }
    } finally {
      for (Connection c : cs) {
        c.close();
      }
    }
  }
}
