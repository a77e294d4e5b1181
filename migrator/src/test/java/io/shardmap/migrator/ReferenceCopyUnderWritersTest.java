package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.ReferenceTable;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Copies added while coordinated writers write every copy (declare the epoch, update each copy, PREPARE
 * each, COMMIT PREPARED each: the shape of the SDK's cross-shard write). The oracle counts each writer's
 * acknowledged increments per key; at the end every copy, the added ones included, holds exactly them. A
 * writer refused for a stale epoch (SMR01) rolls back everywhere, re-reads the record and writes again.
 */
@Tag("consistency")
class ReferenceCopyUnderWritersTest {
  private static final int WRITERS = 3;
  private static final int KEYS_PER_WRITER = 5;
  private static final int MAX_WRITES = 400;

  private DirectoryFixture f;
  private String table;

  @BeforeEach
  void setUp() throws Exception {
    f = new DirectoryFixture("refw");
    f.rangeKeyspace("users", "users_" + f.uid, 10);
    table = "counters_" + f.uid;
    for (int i = 0; i < 3; i++) {
      f.pg.shard(i).exec("CREATE TABLE " + table + " (k int PRIMARY KEY, n bigint NOT NULL)");
    }
    f.pg.shard(0).exec("INSERT INTO " + table + " SELECT g, 0 FROM generate_series(0, "
        + (WRITERS * KEYS_PER_WRITER - 1) + ") g");
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      f.close();
    } finally {
      for (int i = 0; i < 3; i++) {
        f.pg.shard(i).exec("DROP TABLE IF EXISTS " + table);
        f.pg.shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.reference_tables') IS NOT NULL THEN "
            + "DELETE FROM shardmap.reference_tables WHERE tbl = 'public." + table + "'; END IF; END $$");
      }
    }
  }

  private int index(String shard) {
    return DirectoryFixture.SHARDS.indexOf(shard);
  }

  /** One coordinated increment of key {@code k} on every copy; false when refused for a stale epoch. */
  private boolean increment(ReferenceTable t, int k) throws SQLException {
    List<Connection> conns = new ArrayList<>();
    List<String> prepared = new ArrayList<>();
    try {
      for (String s : t.getCopiesList()) {
        Connection c = f.pg.shard(index(s)).connect();
        conns.add(c);
        c.setAutoCommit(false);
        ReferenceGuard.declare(c, Map.of(t.getTable(), t.getEpoch()));
        try (Statement st = c.createStatement()) {
          st.executeUpdate("UPDATE " + table + " SET n = n + 1 WHERE k = " + k);
        }
      }
      for (Connection c : conns) {
        String gid = "reftest-" + UUID.randomUUID();
        try (Statement st = c.createStatement()) {
          st.execute("PREPARE TRANSACTION '" + gid + "'");
        }
        c.setAutoCommit(true);
        prepared.add(gid);
      }
      // The decision: from here the write is acknowledged; every prepared part commits.
      for (int i = 0; i < conns.size(); i++) {
        try (Statement st = conns.get(i).createStatement()) {
          st.execute("COMMIT PREPARED '" + prepared.get(i) + "'");
        }
      }
      return true;
    } catch (SQLException e) {
      if (!ReferenceGuard.STALE_SQLSTATE.equals(e.getSQLState())) {
        throw e;
      }
      for (int i = 0; i < conns.size(); i++) {
        Connection c = conns.get(i);
        if (i < prepared.size()) {
          throw new AssertionError("refused after a part was prepared", e);
        }
        c.rollback();
      }
      return false;
    } finally {
      for (Connection c : conns) {
        c.close();
      }
    }
  }

  private Map<Integer, Long> counts(int shard) throws SQLException {
    Map<Integer, Long> out = new TreeMap<>();
    try (Connection c = f.pg.shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT k, n FROM " + table)) {
      while (rs.next()) {
        out.put(rs.getInt(1), rs.getLong(2));
      }
    }
    return out;
  }

  @Test
  void everyAcknowledgedWriteIsOnEveryCopyAfterACopyIsAddedUnderWriters() throws Exception {
    Map<Integer, Long> model = new ConcurrentHashMap<>();
    AtomicLong acknowledged = new AtomicLong();
    AtomicLong refused = new AtomicLong();
    List<Throwable> errors = new CopyOnWriteArrayList<>();
    AtomicBoolean stop = new AtomicBoolean();
    try (Migrator m = Migrator.open(f.migratorOptions().build())) {
      m.addReference(table, List.of("users"), false, "s1", line -> { });
      List<Thread> writers = new ArrayList<>();
      for (int w = 0; w < WRITERS; w++) {
        int me = w;
        Thread t = new Thread(() -> {
          try (Migrator reader = Migrator.open(f.migratorOptions().build())) {
            for (int i = 0; i < MAX_WRITES && !stop.get(); i++) {
              int k = me * KEYS_PER_WRITER + i % KEYS_PER_WRITER;
              // Re-read the record after every refusal: the copies and the epoch moved on.
              boolean done = false;
              while (!done && !stop.get()) {
                done = increment(reader.listReferences().get(0), k);
                if (!done) {
                  refused.incrementAndGet();
                }
              }
              if (!done) {
                return; // stopped while refused: not acknowledged, not counted
              }
              model.merge(k, 1L, Long::sum);
              acknowledged.incrementAndGet();
            }
          } catch (Throwable e) {
            errors.add(e);
          }
        }, "ref-writer-" + w);
        t.start();
        writers.add(t);
      }
      while (acknowledged.get() < 30 && errors.isEmpty()) {
        Thread.sleep(10);
      }
      long before = acknowledged.get();
      ReferenceTable synced = m.syncReferences(List.of("s3"), "users", line -> { }).get(0);
      long during = acknowledged.get() - before;
      long afterSync = acknowledged.get();
      long until = System.nanoTime() + 20_000_000_000L;
      while (acknowledged.get() < afterSync + 20 && errors.isEmpty() && System.nanoTime() - until < 0) {
        Thread.sleep(10);
      }
      stop.set(true);
      for (Thread t : writers) {
        t.join(60_000);
      }
      assertTrue(errors.isEmpty(), () -> "writer errors: " + errors);
      assertEquals(List.of("s1", "s2", "s3"), synced.getCopiesList());
      System.out.println("reference copy under writers: acknowledged=" + acknowledged.get() + " during sync="
          + during + " refused (stale epoch, rerun)=" + refused.get());
      Map<Integer, Long> expected = new TreeMap<>();
      for (int k = 0; k < WRITERS * KEYS_PER_WRITER; k++) {
        expected.put(k, model.getOrDefault(k, 0L));
      }
      for (int i = 0; i < 3; i++) {
        assertEquals(expected, counts(i), "copy on s" + (i + 1) + " holds exactly the acknowledged writes");
      }
      assertTrue(acknowledged.get() > before, "writers went on after the copy was added");
    }
  }
}
