package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.proto.v1.DescribeKeyspaceRequest;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Reference tables on real etcd and PostgreSQL (docs/reference-tables.md): a declaration copies the table to
 * every owner and guards every copy; a direct write to a copy is refused; a map edit making a shard without
 * copies an owner is refused with nothing written; a move to a new shard copies first; sync gives a joining
 * shard its copies and raises the epoch, so a writer that knew the old one is refused; a table without a
 * primary key is refused with nothing changed anywhere.
 */
@Tag("integration")
class ReferenceTablesTest {
  private static final String KS = "users";
  private DirectoryFixture f;
  private String users;
  private String countries;
  private String nokey;
  private String orders;

  @BeforeEach
  void setUp() throws Exception {
    f = new DirectoryFixture("ref");
    users = "users_" + f.uid;
    countries = "countries_" + f.uid;
    nokey = "nokey_" + f.uid;
    orders = "orders_fk_" + f.uid;
    f.rangeKeyspace(KS, users, 2_000); // [..0) on s1, [0..) on s2
    for (int i = 0; i < 3; i++) {
      shard(i).exec("CREATE TABLE " + countries + " (code text PRIMARY KEY, name text NOT NULL, rank int)");
      shard(i).exec("CREATE TABLE " + nokey + " (code text, name text)");
    }
    shard(0).exec("INSERT INTO " + countries + " SELECT 'c' || g, 'country ' || g, g FROM generate_series(1, 500) g");
    // s2 holds stale rows the copy must replace, one referenced by a sharded table's foreign key.
    shard(1).exec("INSERT INTO " + countries + " VALUES ('zz', 'stale', 0), ('c1', 'old name', 9)");
    shard(1).exec("CREATE TABLE " + orders + " (id bigint PRIMARY KEY, country text REFERENCES " + countries + ")");
    shard(1).exec("INSERT INTO " + orders + " VALUES (1, 'c1')");
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      f.close();
    } finally {
      for (int i = 0; i < 3; i++) {
        shard(i).exec("DROP TABLE IF EXISTS " + orders + ", " + countries + ", " + nokey);
        shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.reference_tables') IS NOT NULL THEN "
            + "DELETE FROM shardmap.reference_tables WHERE tbl IN ('public." + countries + "', 'public." + nokey
            + "'); END IF; END $$");
      }
    }
  }

  private PgInstance shard(int i) {
    return f.pg.shard(i);
  }

  private Migrator migrator() {
    return Migrator.open(f.migratorOptions().build());
  }

  private List<String> rows(int shard, String table) throws SQLException {
    List<String> out = new ArrayList<>();
    try (Connection c = shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT code, name, rank FROM " + table + " ORDER BY code")) {
      while (rs.next()) {
        out.add(rs.getString(1) + "|" + rs.getString(2) + "|" + rs.getInt(3));
      }
    }
    return out;
  }

  private boolean guarded(int shard, String table) throws SQLException {
    try (Connection c = shard(shard).connect(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_trigger WHERE tgrelid = '" + table
             + "'::regclass AND tgname = '" + ReferenceGuard.TRIGGER + "'")) {
      rs.next();
      return rs.getInt(1) > 0;
    }
  }

  private static SQLException psqlWrite(PgInstance p, String sql) {
    return assertThrows(SQLException.class, () -> p.exec(sql));
  }

  private String ownerOfFirstRange() {
    return f.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(KS).build()).getSharesList()
        .stream().filter(s -> s.getFraction() > 0).map(s -> s.getShard()).sorted().toList().toString();
  }

  @Test
  void addCopiesToEveryOwnerGuardsThemAndRefusesAnEditToAShardWithoutOne() throws Exception {
    List<String> source = rows(0, countries);
    List<String> log = new ArrayList<>();
    try (Migrator m = migrator()) {
      ReferenceTable t = m.addReference(countries, List.of(KS), false, "s1", log::add);
      assertEquals("public." + countries, t.getTable());
      assertEquals(List.of("s1", "s2"), t.getCopiesList());
      assertEquals(List.of("code"), t.getPrimaryKeyList());
      assertEquals(1, t.getEpoch());
      assertEquals(List.of(t), m.listReferences());
      assertEquals(source, rows(1, countries), "s2's copy equals the source, its stale rows gone");
      assertTrue(log.stream().anyMatch(l -> l.contains("copied 500 rows from s1 to s2 (1 deleted, 500 inserted or changed")),
          log::toString);
      assertTrue(guarded(0, countries) && guarded(1, countries));
      assertFalse(guarded(2, countries), "s3 owns nothing of users: no copy");

      // psql on one copy: refused, naming the table and how to write it.
      SQLException e = psqlWrite(shard(1), "UPDATE " + countries + " SET name = 'x' WHERE code = 'c1'");
      assertEquals(ReferenceGuard.UNDECLARED_SQLSTATE, e.getSQLState());
      assertTrue(e.getMessage().contains("public." + countries) && e.getMessage().contains("writeReference"),
          e.getMessage());

      // Running it again changes nothing.
      assertEquals(t, m.addReference("public." + countries, List.of(KS), false, "s1", log::add));

      // The admin API may not make s3 an owner: refused, nothing written.
      String before = ownerOfFirstRange();
      StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> f.admin().reassignRange(
          ReassignRangeRequest.newBuilder().setKeyspace(KS).setRange(KeyRange.newBuilder()
              .setEnd(Key.newBuilder().setIntKey(0))).setShard("s3").build()));
      assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode());
      assertTrue(refused.getMessage().contains("'s3'") && refused.getMessage().contains("public." + countries)
          && refused.getMessage().contains("reference sync --shard s3"), refused.getMessage());
      assertEquals(before, ownerOfFirstRange());

      // sync --shard s3: s3 gets its copy, every copy moves to epoch 2; now the edit passes.
      List<ReferenceTable> synced = m.syncReferences(List.of("s3"), KS, log::add);
      assertEquals(1, synced.size());
      assertEquals(List.of("s1", "s2", "s3"), synced.get(0).getCopiesList());
      assertEquals(2, synced.get(0).getEpoch());
      assertEquals(source, rows(2, countries));
      for (int i = 0; i < 3; i++) {
        try (Connection c = shard(i).connect()) {
          assertEquals(2, ReferenceGuard.epoch(c, "public." + countries).getAsLong());
        }
      }
      // A writer that still declares epoch 1 is refused at a copy, told the epoch to re-read.
      try (Connection c = shard(0).connect()) {
        c.setAutoCommit(false);
        ReferenceGuard.declare(c, Map.of("public." + countries, 1L));
        SQLException stale = assertThrows(SQLException.class, () -> {
          try (Statement s = c.createStatement()) {
            s.executeUpdate("UPDATE " + countries + " SET rank = 0 WHERE code = 'c1'");
          }
        });
        assertEquals(ReferenceGuard.STALE_SQLSTATE, stale.getSQLState());
        assertEquals(2, ReferenceGuard.refusedEpoch(stale.getMessage()));
        c.rollback();
      }
      f.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace(KS).setRange(KeyRange.newBuilder()
          .setEnd(Key.newBuilder().setIntKey(0))).setShard("s3").build());

      // remove: the guards go, the data stay.
      m.removeReference(countries, log::add);
      assertTrue(m.listReferences().isEmpty());
      assertFalse(guarded(0, countries) || guarded(1, countries) || guarded(2, countries));
      assertEquals(source, rows(2, countries));
    }
  }

  @Test
  void aMoveToANewShardCopiesTheReferenceTablesFirst() throws Exception {
    try (Migrator m = migrator()) {
      m.addReference(countries, List.of(KS), false, "s1", line -> { });
      List<String> source = rows(0, countries);
      Migration planned = m.plan(MoveSpec.builder().id("ref1").keyspace(KS).range("0..1000").target("s3").split(true)
          .cleanupGrace(Duration.ofMillis(200)).pauseBudget(Duration.ofSeconds(2)).createMissingTables(true).build());
      Migration done = m.drive(planned.getId(), p -> { }, Duration.ofSeconds(5));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      ReferenceTable t = m.listReferences().get(0);
      assertEquals(List.of("s1", "s2", "s3"), t.getCopiesList());
      assertEquals(2, t.getEpoch(), "adding the copy raised the epoch on every copy");
      assertEquals(source, rows(2, countries), "s3's copy equals the source");
      assertEquals(source, rows(1, countries));
      assertTrue(guarded(2, countries));
    }
  }

  @Test
  void aTableOfEveryKeyspaceRefusesANewKeyspaceOverAShardWithoutACopy() throws Exception {
    try (Migrator m = migrator()) {
      ReferenceTable t = m.addReference(countries, List.of(), true, "s1", line -> { });
      assertTrue(t.getAllKeyspaces());
      assertEquals(List.of("s1", "s2"), t.getCopiesList());
      String orders = "orders_" + f.uid;
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> f.admin().createKeyspace(
          io.shardmap.proto.v1.CreateKeyspaceRequest.newBuilder().setSpec(io.shardmap.proto.v1.KeyspaceSpec.newBuilder()
              .setName(orders).setKeyType(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64)
              .setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_RANGE)).addRangeShards("s1").addRangeShards("s3")
              .build()));
      assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
      assertTrue(e.getMessage().contains("'s3'") && e.getMessage().contains("public." + countries), e.getMessage());
      assertEquals(Status.Code.NOT_FOUND, assertThrows(StatusRuntimeException.class, () -> f.admin().describeKeyspace(
          DescribeKeyspaceRequest.newBuilder().setName(orders).build())).getStatus().getCode(), "nothing written");
      // Over shards that hold copies it is created.
      f.admin().createKeyspace(io.shardmap.proto.v1.CreateKeyspaceRequest.newBuilder().setSpec(
          io.shardmap.proto.v1.KeyspaceSpec.newBuilder().setName(orders).setKeyType(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64)
              .setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_RANGE)).addRangeShards("s1").addRangeShards("s2").build());
    }
  }

  @Test
  void aBucketMoveWhoseWorkerCrashesWhileCopyingIsResumedAndCopiesFirst() throws Exception {
    String carts = "carts_" + f.uid;
    io.shardmap.proto.v1.CreateKeyspaceRequest.Builder req = io.shardmap.proto.v1.CreateKeyspaceRequest.newBuilder()
        .setSpec(io.shardmap.proto.v1.KeyspaceSpec.newBuilder().setName("carts")
            .setKeyType(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64).setStrategy(io.shardmap.proto.v1.Strategy.STRATEGY_HASH)
            .addTables(io.shardmap.proto.v1.ShardedTable.newBuilder().setName(carts).setKeyColumn("id")));
    for (int b = 0; b < 4; b++) {
      req.addHashBuckets(b % 2 == 0 ? "s1" : "s2");
    }
    f.keyspace(req.build(), carts, "bigint");
    try (Migrator first = Migrator.open(f.migratorOptions().workerName("first").faultPoints(p -> {
           if (p.equals("reference:copied")) {
             throw new IllegalStateException("simulated crash at " + p);
           }
         }).build());
         Migrator second = migrator()) {
      first.addReference(countries, List.of("carts"), false, "s1", line -> { });
      List<String> source = rows(0, countries);
      first.plan(MoveSpec.builder().id("b1").keyspace("carts").bucket(1).target("s3").createMissingTables(true)
          .cleanupGrace(Duration.ofMillis(200)).pauseBudget(Duration.ofSeconds(2)).build());
      assertThrows(IllegalStateException.class, () -> first.drive("b1", p -> { }, Duration.ZERO));
      assertEquals(List.of("s1", "s2"), first.listReferences().get(0).getCopiesList(), "not recorded before the crash");
      Migration done = second.drive("b1", p -> { }, Duration.ofSeconds(15));
      assertEquals(MigrationState.MIGRATION_STATE_DONE, done.getState(), done.toString());
      ReferenceTable t = second.listReferences().get(0);
      assertEquals(List.of("s1", "s2", "s3"), t.getCopiesList());
      assertEquals(2, t.getEpoch());
      for (int i = 0; i < 3; i++) {
        assertEquals(source, rows(i, countries), "copy on s" + (i + 1));
      }
    } finally {
      for (int i = 0; i < 3; i++) {
        shard(i).exec("DROP TABLE IF EXISTS " + carts);
      }
    }
  }

  @Test
  void runsInterruptedAtAnyStepAreFinishedByARerun() throws Exception {
    String name = "public." + countries;
    try (Migrator m = migrator()) {
      // A declaration that crashed after guarding the source (at epoch 5, left by an earlier attempt): the
      // rerun declares every copy at that epoch, never lower.
      try (Connection c = shard(0).connect()) {
        ReferenceGuard.install(c, name, 5);
      }
      ReferenceTable t = m.addReference(countries, List.of(KS), false, "s1", line -> { });
      assertEquals(5, t.getEpoch());
      List<String> source = rows(0, countries);
      // A sync that crashed after raising the epoch on one copy (to 7) and half-filling s3's copy: the rerun
      // raises every copy to 7, replaces s3's rows and records epoch 7.
      try (Connection c = shard(0).connect()) {
        ReferenceGuard.raise(c, name, 7);
      }
      try (Connection c = shard(2).connect()) {
        ReferenceGuard.install(c, name, 7);
        c.setAutoCommit(false);
        ReferenceGuard.bypass(c);
        try (Statement s = c.createStatement()) {
          s.executeUpdate("INSERT INTO " + countries + " VALUES ('c1', 'half', 1), ('junk', 'junk', 0)");
        }
        c.commit();
      }
      ReferenceTable synced = m.syncReferences(List.of("s3"), null, line -> { }).get(0);
      assertEquals(7, synced.getEpoch());
      assertEquals(List.of("s1", "s2", "s3"), synced.getCopiesList());
      for (int i = 0; i < 3; i++) {
        assertEquals(source, rows(i, countries), "copy on s" + (i + 1));
        try (Connection c = shard(i).connect()) {
          assertEquals(7, ReferenceGuard.epoch(c, name).getAsLong());
        }
      }
      // Nothing left to do: a rerun changes nothing.
      assertTrue(m.syncReferences(List.of("s3"), KS, line -> { }).isEmpty());
      assertTrue(m.syncReferences(List.of(), null, line -> { }).isEmpty());
    }
  }

  @Test
  void aTableWithoutAPrimaryKeyIsRefusedWithNothingChanged() throws Exception {
    try (Migrator m = migrator()) {
      ShardmapException e = assertThrows(ShardmapException.class,
          () -> m.addReference(nokey, List.of(KS), false, "s1", line -> { }));
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      assertTrue(e.getMessage().contains("public." + nokey) && e.getMessage().contains("no primary key"),
          e.getMessage());
      assertTrue(m.listReferences().isEmpty(), "no record");
      for (int i = 0; i < 3; i++) {
        assertFalse(guarded(i, nokey), "no trigger on s" + (i + 1));
      }
      // Unknown keyspace and shard: NOT_FOUND, nothing written.
      assertEquals(ErrorCode.NOT_FOUND, assertThrows(ShardmapException.class,
          () -> m.addReference(countries, List.of("nope"), false, "s1", line -> { })).code());
      assertEquals(ErrorCode.NOT_FOUND, assertThrows(ShardmapException.class,
          () -> m.addReference(countries, List.of(KS), false, "s9", line -> { })).code());
      // The table missing on an owner: refused, naming it and the shard, before anything is guarded.
      shard(0).exec("CREATE TABLE " + nokey + "_only (code text PRIMARY KEY)");
      try {
        ShardmapException missing = assertThrows(ShardmapException.class,
            () -> m.addReference(nokey + "_only", List.of(KS), false, "s1", line -> { }));
        assertEquals(ErrorCode.FAILED_PRECONDITION, missing.code());
        assertTrue(missing.getMessage().contains("public." + nokey + "_only does not exist on shard 's2'"),
            missing.getMessage());
        assertFalse(guarded(0, nokey + "_only"));
      } finally {
        shard(0).exec("DROP TABLE " + nokey + "_only");
      }
      // A copy with other columns on an owner: refused before anything is guarded.
      shard(1).exec("ALTER TABLE " + countries + " ADD COLUMN extra int");
      ShardmapException diff = assertThrows(ShardmapException.class,
          () -> m.addReference(countries, List.of(KS), false, "s1", line -> { }));
      assertEquals(ErrorCode.FAILED_PRECONDITION, diff.code());
      assertTrue(diff.getMessage().contains("'s2'"), diff.getMessage());
      assertTrue(m.listReferences().isEmpty());
      assertFalse(guarded(0, countries) || guarded(1, countries));
    }
  }
}
