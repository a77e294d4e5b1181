package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.Counters;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Writes to a reference table through the SDK ({@link ShardmapData#writeReference},
 * {@link CrossShardTransaction#referenceCopies}) on real etcd, a directory server and three PostgreSQL
 * shards, each holding a guarded copy: every copy changes in one commit or none does, a direct write to one
 * copy is refused, a reference write combines with a sharded one, writers rerun when the copies change under
 * them (a shard added) with every acknowledged write on every copy, diverged copies refuse the write, and bad
 * input is refused naming what is wrong.
 */
@Tag("integration")
class ReferenceWriteTest {
  static final long A = Long.MIN_VALUE + 10; // s1
  static final long B = 0; // s2
  static final long C = Long.MAX_VALUE - 10; // s3

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(3)
      .table("id bigint PRIMARY KEY, country text").extension();

  PostgresFixture pg;
  String users;
  ReferenceTables ref;
  ShardmapClient client;
  ShardmapData data;

  @BeforeEach
  void start() throws Exception {
    ShardmapFleet f = fleet.get();
    pg = f.postgres();
    users = f.table();
    f.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
            .addTables(ShardedTable.newBuilder().setName(users).setKeyColumn("id")))
        .addAllRangeShards(f.shardNames()).build());
    ref = new ReferenceTables(f, "code text PRIMARY KEY, name text NOT NULL, population bigint NOT NULL");
    for (int i = 0; i < 3; i++) {
      ref.create(i);
      ref.guard(i, 1);
    }
    ref.record(List.of("users"), false, f.shardNames(), 1, "code");
    client = ShardmapClient.start(ClientOptions.builder().targets(f.targets()).channelFactory(f::channelBuilder)
        .keyspaces("users").backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    data = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user()).password(pg.shard(0).password())
        .maxPoolSize(8).staleRouteTimeout(Duration.ofSeconds(10)).crossShardLockTimeout(Duration.ofSeconds(2))
        .maxAttempts(50).build());
  }

  @AfterEach
  void stop() throws Exception {
    if (data != null) {
      data.close();
    }
    if (client != null) {
      client.close();
    }
    if (ref != null) {
      ref.close();
    }
  }

  private static int exec(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) {
      return s.executeUpdate(sql);
    }
  }

  private int insert(String code, String name, long population) throws SQLException {
    return data.writeReference("users", ref.canonical, c -> {
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + ref.name + " VALUES (?, ?, ?)")) {
        ps.setString(1, code);
        ps.setString(2, name);
        ps.setLong(3, population);
        return ps.executeUpdate();
      }
    });
  }

  private void assertCopies(List<String> expected) throws SQLException {
    for (int i = 0; i < 3; i++) {
      assertEquals(expected, ref.rows(i), "copy on s" + (i + 1));
    }
  }

  @Test
  void aWriteChangesEveryCopyInOneCommitOrNone() throws Exception {
    Counters k = client.counters();
    long threeWriters = k.txnsByWriters(2);
    assertEquals(1, insert("fr", "France", 68));
    assertEquals(1, insert("de", "Germany", 84));
    assertCopies(List.of("(de,Germany,84)", "(fr,France,68)"));
    assertEquals(threeWriters + 2, k.txnsByWriters(2), "each a three-writer cross-shard commit");
    // Any form of the name that PostgreSQL reads as the record's: unqualified, upper case, quoted.
    for (String form : List.of(ref.name, ref.name.toUpperCase(), "\"public\".\"" + ref.name + "\"", "PUBLIC." + ref.name)) {
      assertEquals(1, (int) data.writeReference("users", form, c -> exec(c, "UPDATE " + ref.name
          + " SET population = population + 1 WHERE code = 'fr'")), form);
    }
    assertCopies(List.of("(de,Germany,84)", "(fr,France,72)"));

    // A failure on one copy only (a constraint s3's copy alone has): nothing changes on any copy.
    pg.shard(2).exec("ALTER TABLE " + ref.name + " ADD CONSTRAINT small CHECK (population < 1000)");
    SQLException e = assertThrows(SQLException.class, () -> data.writeReference("users", ref.canonical,
        c -> exec(c, "UPDATE " + ref.name + " SET population = 5000 WHERE code = 'de'")));
    assertEquals("23514", e.getSQLState(), e.getMessage());
    assertCopies(List.of("(de,Germany,84)", "(fr,France,72)"));
    // A work that throws after writing two copies: neither keeps it.
    AtomicInteger runs = new AtomicInteger();
    assertThrows(IllegalStateException.class, () -> data.writeReference("users", ref.canonical, c -> {
      int n = exec(c, "UPDATE " + ref.name + " SET name = 'X' WHERE code = 'de'");
      if (runs.incrementAndGet() == 3) {
        throw new IllegalStateException("the third copy fails");
      }
      return n;
    }));
    assertCopies(List.of("(de,Germany,84)", "(fr,France,72)"));
    assertEquals(List.of(), ReferenceTables.rows(pg.shard(1), "SELECT gid FROM pg_prepared_xacts"
        + " WHERE database = current_database()"));
  }

  @Test
  void aDirectWriteToOneCopyIsRefusedNamingTheTable() throws Exception {
    insert("fr", "France", 68);
    for (String sql : List.of("UPDATE " + ref.name + " SET population = 1", "INSERT INTO " + ref.name
        + " VALUES ('it', 'Italy', 59)", "DELETE FROM " + ref.name, "TRUNCATE " + ref.name)) {
      SQLException e = assertThrows(SQLException.class, () -> pg.shard(1).exec(sql), sql);
      assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState(), sql);
      assertTrue(e.getMessage().contains(ref.canonical) && e.getMessage().contains("writeReference"), e.getMessage());
    }
    // Through a key's connection of a cross-shard transaction, without taking the copies: refused too.
    SQLException e = assertThrows(SQLException.class, () -> data.acrossShards(tx ->
        exec(tx.connection("users", B), "UPDATE " + ref.name + " SET population = 1")));
    assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState());
    assertCopies(List.of("(fr,France,68)"));
  }

  @Test
  void aReferenceWriteAndAShardedWriteCommitTogether() throws Exception {
    insert("fr", "France", 68);
    String shards = data.acrossShards(tx -> {
      Map<String, Connection> copies = tx.referenceCopies("users", ref.canonical);
      assertEquals(List.of("s1", "s2", "s3"), new ArrayList<>(copies.keySet()));
      for (Connection c : copies.values()) {
        exec(c, "UPDATE " + ref.name + " SET population = population + 1 WHERE code = 'fr'");
      }
      Connection u = tx.connection("users", B);
      assertSame(copies.get("s2"), u, "one connection (one transaction) per shard");
      exec(u, "INSERT INTO " + users + " VALUES (" + B + ", 'fr')");
      return String.join(",", tx.shards());
    });
    assertEquals("s1,s2,s3", shards);
    assertCopies(List.of("(fr,France,69)"));
    assertEquals(List.of(B + "|fr"), ReferenceTables.rows(pg.shard(1), "SELECT id, country FROM " + users));

    // The sharded write fails: the reference write is rolled back with it.
    assertThrows(SQLException.class, () -> data.acrossShards(tx -> {
      for (Connection c : tx.referenceCopies("users", ref.name).values()) {
        exec(c, "UPDATE " + ref.name + " SET population = 0");
      }
      return exec(tx.connection("users", B), "INSERT INTO " + users + " VALUES (" + B + ", 'de')"); // duplicate
    }));
    assertCopies(List.of("(fr,France,69)"));
  }

  /**
   * A write declared under the epoch its record had: the copies are raised and the record rewritten while the
   * work runs (before it writes), so its first run is refused on the copies (SMR01), and the SDK runs it again
   * once the record shows the new epoch.
   */
  @Test
  void aWriteUnderAnOldEpochRunsAgainOnceTheRecordShowsTheNewOne() throws Exception {
    insert("fr", "France", 68); // the SDK has read the record at epoch 1
    long reruns = client.counters().referenceReruns();
    AtomicInteger runs = new AtomicInteger();
    // Copy by copy in one acrossShards (writeReference runs the copies at once, where a raise from inside the
    // work would wait for the work's own share locks on the other copies).
    int n = data.acrossShards(tx -> {
      int changed = 0;
      for (Connection c : tx.referenceCopies("users", ref.canonical).values()) {
        if (runs.incrementAndGet() == 1) {
          try {
            for (int i = 0; i < 3; i++) {
              ref.raise(i, 2);
            }
            ref.record(List.of("users"), false, fleet.get().shardNames(), 2, "code");
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        }
        changed = exec(c, "UPDATE " + ref.name + " SET population = 70 WHERE code = 'fr'");
      }
      return changed;
    });
    assertEquals(1, n);
    assertEquals(4, runs.get(), "3 copies of the second run after a first refused on its first copy");
    assertEquals(reruns + 1, client.counters().referenceReruns());
    assertCopies(List.of("(fr,France,70)"));
  }

  /**
   * Concurrent writers while a shard joins the copies as a declaration will do it: the table starts copied
   * on s1 and s2; the epoch is raised on both (waiting for writers in flight), s1's rows are copied into s3,
   * s3 is guarded at the new epoch, and the record is rewritten. Writers refused meanwhile run again on the
   * three copies. Afterwards every copy is equal and holds every acknowledged insert, and nothing else.
   */
  @Test
  void writersRunAgainWhileAShardJoinsTheCopiesAndNoAcknowledgedWriteIsLost() throws Exception {
    // Start over with two copies: s3's table is not a copy yet.
    ref.bypassed(2, "DELETE FROM " + ref.name);
    try (Connection c = pg.shard(2).connect()) {
      ReferenceGuard.uninstall(c, ref.canonical);
    }
    ref.record(List.of("users"), false, List.of("s1", "s2"), 1, "code");
    long reruns = client.counters().referenceReruns();
    Set<String> acknowledged = ConcurrentHashMap.newKeySet();
    Set<String> attempted = ConcurrentHashMap.newKeySet();
    AtomicBoolean stop = new AtomicBoolean();
    AtomicInteger afterJoin = new AtomicInteger();
    AtomicBoolean joined = new AtomicBoolean();
    ExecutorService pool = Executors.newFixedThreadPool(4);
    List<Future<?>> writers = new ArrayList<>();
    for (int w = 0; w < 4; w++) {
      int writer = w;
      writers.add(pool.submit(() -> {
        for (int i = 0; i < 400 && !stop.get(); i++) {
          String code = "w" + writer + "-" + i;
          attempted.add(code);
          assertEquals(1, insert(code, "n" + i, i));
          acknowledged.add(code);
          if (joined.get() && afterJoin.incrementAndGet() >= 40) {
            break;
          }
        }
        return null;
      }));
    }
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (acknowledged.size() < 20) {
        for (Future<?> f : writers) {
          if (f.isDone()) {
            f.get(); // a writer that failed before the join: its failure is the test's
          }
        }
        assertTrue(System.nanoTime() < deadline, "20 inserts before the join within 60 s: " + acknowledged.size());
        Thread.sleep(5);
      }
      assertEquals(2, ref.raise(0, 2));
      assertEquals(2, ref.raise(1, 2));
      // No writer under epoch 1 can commit anywhere now: s1's rows are final until the record changes.
      List<String> s1 = ref.rows(0);
      try (Connection from = pg.shard(0).connect(); Connection to = pg.shard(2).connect()) {
        to.setAutoCommit(false);
        try (Statement s = to.createStatement()) {
          s.executeUpdate("TRUNCATE " + ref.name);
        }
        try (Statement r = from.createStatement();
             java.sql.ResultSet rs = r.executeQuery("SELECT code, name, population FROM " + ref.name);
             PreparedStatement ins = to.prepareStatement("INSERT INTO " + ref.name + " VALUES (?, ?, ?)")) {
          while (rs.next()) {
            ins.setString(1, rs.getString(1));
            ins.setString(2, rs.getString(2));
            ins.setLong(3, rs.getLong(3));
            ins.addBatch();
          }
          ins.executeBatch();
        }
        to.commit();
        to.setAutoCommit(true);
        ReferenceGuard.install(to, ref.canonical, 2);
      }
      assertEquals(s1, ref.rows(2));
      ref.record(List.of("users"), false, List.of("s1", "s2", "s3"), 2, "code");
      joined.set(true);
      for (Future<?> f : writers) {
        f.get(120, TimeUnit.SECONDS);
      }
    } finally {
      stop.set(true);
      pool.shutdownNow();
      assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
    }
    assertTrue(afterJoin.get() >= 40, "writers went on after the join: " + afterJoin);
    assertTrue(client.counters().referenceReruns() > reruns, "writers in flight at the raise ran again");
    List<String> s1 = ref.rows(0);
    assertEquals(s1, ref.rows(1), "s2 equals s1");
    assertEquals(s1, ref.rows(2), "s3 (the new copy) equals s1");
    Set<String> codes = new TreeSet<>();
    for (String row : s1) {
      codes.add(row.substring(1, row.indexOf(',')));
    }
    assertTrue(codes.containsAll(acknowledged), "every acknowledged insert is on every copy");
    assertTrue(attempted.containsAll(codes), "nothing that was not written");
  }

  /**
   * Writers of one row never deadlock across copies: the first copy's row lock orders them (with the work run
   * on every copy at once, two writers locked the row on different copies and waited for each other until the
   * cross-shard lock timeout, here 300 ms, failed them with 55P03).
   */
  @Test
  void writersOfOneRowAreOrderedByTheFirstCopyAndNeverDeadlock() throws Exception {
    insert("fr", "France", 0);
    try (ShardmapData tight = ShardmapData.open(client, DataOptions.builder().user(pg.shard(0).user())
        .password(pg.shard(0).password()).maxPoolSize(8).crossShardLockTimeout(Duration.ofMillis(300)).build())) {
      ExecutorService pool = Executors.newFixedThreadPool(6);
      try {
        List<Future<?>> writers = new ArrayList<>();
        for (int w = 0; w < 6; w++) {
          writers.add(pool.submit(() -> {
            for (int i = 0; i < 25; i++) {
              assertEquals(1, (int) tight.writeReference("users", ref.canonical, c -> exec(c, "UPDATE " + ref.name
                  + " SET population = population + 1 WHERE code = 'fr'")));
            }
            return null;
          }));
        }
        for (Future<?> f : writers) {
          f.get(120, TimeUnit.SECONDS);
        }
      } finally {
        pool.shutdownNow();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
      }
    }
    assertCopies(List.of("(fr,France,150)"));
  }

  @Test
  void copiesThatDivergedRefuseTheWriteWithNothingChanged() throws Exception {
    insert("fr", "France", 68);
    ref.bypassed(1, "UPDATE " + ref.name + " SET name = 'Francia' WHERE code = 'fr'"); // s2's copy diverges
    long differed = client.counters().referenceDiffered();
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.writeReference("users", ref.name,
        c -> exec(c, "UPDATE " + ref.name + " SET population = 1 WHERE code = 'fr' AND name = 'France'")));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
    for (String part : List.of(ref.canonical, "s1=1", "s2=0", "s3=1", "shardmap-migrator reference verify",
        "Nothing was committed")) {
      assertTrue(e.getMessage().contains(part), () -> part + " in: " + e.getMessage());
    }
    assertEquals(differed + 1, client.counters().referenceDiffered());
    assertEquals(List.of("(fr,France,68)"), ref.rows(0));
    assertEquals(List.of("(fr,Francia,68)"), ref.rows(1));
    assertEquals(List.of("(fr,France,68)"), ref.rows(2));
  }

  @Test
  void badInputIsRefusedNamingWhatIsWrong() throws Exception {
    ShardmapException e = assertThrows(ShardmapException.class, () -> data.writeReference("users", "public.nope",
        c -> exec(c, "SELECT 1")));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("'public.nope' is not a reference table of keyspace 'users'")
        && e.getMessage().contains(ref.canonical), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> data.writeReference("orders", ref.canonical, c -> 1));
    assertEquals(ErrorCode.NOT_FOUND, e.code());
    assertTrue(e.getMessage().contains("keyspace 'orders' does not exist"), e.getMessage());
    for (String bad : List.of("", "a.b.c", "\"unterminated", "two words")) {
      e = assertThrows(ShardmapException.class, () -> data.writeReference("users", bad, c -> 1), bad);
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), bad);
      assertTrue(e.getMessage().startsWith("table"), e.getMessage());
    }
    e = assertThrows(ShardmapException.class, () -> data.writeReference("users", ref.canonical, null));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertNotNull(e.getMessage());
    e = assertThrows(ShardmapException.class, () -> data.acrossShards(tx -> tx.referenceCopies("", ref.name)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertCopies(List.of());
  }
}
