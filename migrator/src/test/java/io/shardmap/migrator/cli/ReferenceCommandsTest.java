package io.shardmap.migrator.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.migrator.DirectoryFixture;
import io.shardmap.migrator.Migrator;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code migrator reference verify} and {@code reference repair} against real etcd (the table's record and
 * the shards' registrations) and three real PostgreSQL shards s1..s3 holding guarded copies: exit codes,
 * the report, progress on stderr, and refusals that change nothing.
 */
@Tag("integration")
@Timeout(180)
class ReferenceCommandsTest {
  static DirectoryFixture fixture;
  static String three;
  static String two;

  record Result(int code, String out, String err) {
    @Override
    public String toString() {
      return "exit " + code + "\n--- stdout:\n" + out + "--- stderr:\n" + err;
    }
  }

  @BeforeAll
  static void start() throws Exception {
    fixture = new DirectoryFixture("ref");
    three = "refcli3_" + fixture.uid;
    two = "refcli2_" + fixture.uid;
    copies(three, List.of("s1", "s2", "s3"));
    copies(two, List.of("s1", "s2"));
  }

  @AfterAll
  static void stop() throws SQLException {
    if (fixture == null) {
      return;
    }
    for (int i = 0; i < 3; i++) {
      for (String t : List.of(three, two)) {
        try (Connection c = fixture.pg.shard(i).connect()) {
          ReferenceGuard.uninstall(c, "public." + t);
        }
        fixture.pg.shard(i).exec("DROP TABLE IF EXISTS " + t);
      }
    }
    fixture.close();
  }

  /** A guarded copy of table {@code name} (100 rows) on each of {@code shards}, and its record in etcd. */
  static void copies(String name, List<String> shards) throws Exception {
    for (String s : shards) {
      PgInstance p = shard(s);
      p.exec("CREATE TABLE " + name + " (id int PRIMARY KEY, label text NOT NULL)");
      p.exec("INSERT INTO " + name + " SELECT g, 'label ' || g FROM generate_series(1, 100) g");
      try (Connection c = p.connect()) {
        ReferenceGuard.install(c, "public." + name, 1);
      }
    }
    ReferenceTable record = ReferenceTable.newBuilder().setTable("public." + name).setAllKeyspaces(true)
        .addPrimaryKey("id").addAllCopies(shards).setEpoch(1).build();
    try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(fixture.etcd.clientEndpoints())
        .requestTimeout(Duration.ofSeconds(5)).build()) {
      store.commit(Txn.builder().put(new CatalogPaths(fixture.prefix).referenceTable("public." + name),
          record.toByteArray()).build()).get();
    }
  }

  static PgInstance shard(String s) {
    return fixture.pg.shard(DirectoryFixture.SHARDS.indexOf(s));
  }

  static void plant(String s, String sql) throws SQLException {
    try (Connection c = shard(s).connect()) {
      c.setAutoCommit(false);
      ReferenceGuard.bypass(c);
      try (Statement st = c.createStatement()) {
        st.execute(sql);
      }
      c.commit();
    }
  }

  static Map<Integer, String> rows(String s, String table) throws SQLException {
    Map<Integer, String> out = new TreeMap<>();
    try (Connection c = shard(s).connect(); Statement st = c.createStatement();
         ResultSet rs = st.executeQuery("SELECT id, label FROM " + table)) {
      while (rs.next()) {
        out.put(rs.getInt(1), rs.getString(2));
      }
    }
    return out;
  }

  static Result run(String... args) {
    Map<String, String> env = new HashMap<>();
    env.put("SHARDMAP_ETCD", String.join(",", fixture.etcd.clientEndpoints()));
    env.put("PGUSER", fixture.pg.shard(0).user());
    if (fixture.pg.shard(0).password() != null) {
      env.put("PGPASSWORD", fixture.pg.shard(0).password());
    }
    List<String> all = new ArrayList<>(List.of("--etcd-prefix", fixture.prefix));
    all.addAll(List.of(args));
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    MigratorCli cli = new MigratorCli(env, new PrintWriter(out, true), new PrintWriter(err, true), false,
        onStop -> () -> { }, Migrator::open);
    int code = cli.execute(all.toArray(String[]::new));
    return new Result(code, out.toString(), err.toString());
  }

  @Test
  void verifyRepairAndVerifyAgain() throws SQLException {
    Result equal = run("reference", "verify", "--table", three);
    assertEquals(0, equal.code(), equal::toString);
    assertTrue(equal.out().contains("public." + three + ": all 3 copies equal (100 rows"), equal::toString);
    assertTrue(equal.err().contains("checksums 3 of 3 copies summed, 300 rows"), equal::toString);

    Map<Integer, String> original = rows("s1", three);
    plant("s1", "UPDATE " + three + " SET label = 'changed' WHERE id = 10");
    plant("s2", "DELETE FROM " + three + " WHERE id = 20");
    plant("s3", "INSERT INTO " + three + " VALUES (999, 'extra')");

    Result differ = run("reference", "verify", "--table", "public." + three);
    assertEquals(8, differ.code(), differ::toString);
    assertTrue(differ.out().contains("the 3 copies differ; agreeing with the majority: none"), differ::toString);
    assertTrue(differ.out().contains("  s1  (10)  changed\n  s2  (20)  missing\n  s3  (999)  extra\n"), differ::toString);
    assertTrue(differ.err().contains("rows      3 of 3 copies"), differ::toString);

    Result json = run("--json", "reference", "verify", "--table", three);
    assertEquals(8, json.code(), json::toString);
    assertTrue(json.out().startsWith("{\"table\":\"public." + three + "\",\"equal\":false,\"agreeing\":[],"),
        json::toString);
    assertTrue(json.out().contains("{\"shard\":\"s2\",\"key\":\"(20)\",\"kind\":\"MISSING\"}"), json::toString);
    assertTrue(json.err().contains("{\"step\":\"locking\",\"done\":3,\"total\":3,\"rows\":0}"), json::toString);

    Result dry = run("reference", "repair", "--table", three, "--dry-run");
    assertEquals(0, dry.code(), dry::toString);
    assertTrue(dry.out().contains("would repair from the majority of each key:\n"
        + "  s1           0 inserted, 1 updated, 0 deleted\n"
        + "  s2           1 inserted, 0 updated, 0 deleted\n"
        + "  s3           0 inserted, 0 updated, 1 deleted\n"
        + "dry run: nothing was changed"), dry::toString);
    assertEquals(8, run("reference", "verify", "--table", three).code());

    Result repair = run("reference", "repair", "--table", three);
    assertEquals(0, repair.code(), repair::toString);
    assertTrue(repair.out().contains("repaired from the majority of each key:"), repair::toString);
    assertTrue(repair.out().contains("verified again:\npublic." + three + ": all 3 copies equal (100 rows"),
        repair::toString);
    assertTrue(repair.err().contains("repair s3 1 of 1 rows written"), repair::toString);
    for (String s : List.of("s1", "s2", "s3")) {
      assertEquals(original, rows(s, three), s);
    }
    assertEquals(0, run("reference", "verify", "--table", three).code());
  }

  @Test
  void aTieIsRefusedUntilASourceIsNamed() throws SQLException {
    plant("s2", "UPDATE " + two + " SET label = 'mine' WHERE id = 7");
    Map<Integer, String> s1 = rows("s1", two);
    Map<Integer, String> s2 = rows("s2", two);
    Result tie = run("reference", "repair", "--table", two);
    assertEquals(4, tie.code(), tie::toString);
    assertTrue(tie.err().contains("no strict majority of the 2 copies") && tie.err().contains("--source SHARD"),
        tie::toString);
    Result notACopy = run("reference", "repair", "--table", two, "--source", "s3");
    assertEquals(4, notACopy.code(), notACopy::toString);
    assertTrue(notACopy.err().contains("shard 's3' holds no copy"), notACopy::toString);
    Result unknown = run("reference", "repair", "--table", two, "--source", "s9");
    assertEquals(3, unknown.code(), unknown::toString);
    assertTrue(unknown.err().contains("no shard 's9' is registered"), unknown::toString);
    assertEquals(s1, rows("s1", two));
    assertEquals(s2, rows("s2", two));

    Result fixed = run("reference", "repair", "--table", two, "--source", "s2");
    assertEquals(0, fixed.code(), fixed::toString);
    assertTrue(fixed.out().contains("repaired from shard s2:\n  s1           0 inserted, 1 updated, 0 deleted"),
        fixed::toString);
    assertEquals(s2, rows("s1", two));
  }

  @Test
  void badInputIsAClearError() {
    Result table = run("reference", "verify", "--table", "nosuch_" + fixture.uid);
    assertEquals(3, table.code(), table::toString);
    assertTrue(table.err().contains("--table: no reference table 'nosuch_" + fixture.uid + "' is declared"),
        table::toString);
    Result buckets = run("reference", "verify", "--table", three, "--buckets", "3");
    assertEquals(2, buckets.code(), buckets::toString);
    assertTrue(buckets.err().contains("--buckets") && buckets.err().contains("power of two"), buckets::toString);
    Result missing = run("reference", "repair");
    assertEquals(2, missing.code(), missing::toString);
    assertTrue(missing.err().contains("--table"), missing::toString);
  }
}
