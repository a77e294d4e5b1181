package io.shardmap.migrator.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import com.google.protobuf.util.JsonFormat;
import io.shardmap.migrator.cli.CliHarness.Result;
import io.shardmap.proto.v1.ReferenceTable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@code migrator reference add|sync|list|remove} in-process against real etcd and PostgreSQL. */
@Tag("integration")
class ReferenceCommandTest {
  private CliHarness h;
  private String plans;
  private String loose;

  @BeforeEach
  void setUp() throws Exception {
    h = new CliHarness();
    plans = "plans_" + h.fixture.uid;
    loose = "loose_" + h.fixture.uid;
    for (int i = 0; i < 3; i++) {
      h.pg.shard(i).exec("CREATE TABLE " + plans + " (id int PRIMARY KEY, name text)");
      h.pg.shard(i).exec("CREATE TABLE " + loose + " (id int, name text)");
    }
    h.pg.shard(0).exec("INSERT INTO " + plans + " VALUES (1, 'free'), (2, 'pro')");
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      h.close();
    } finally {
      for (int i = 0; i < 3; i++) {
        h.pg.shard(i).exec("DROP TABLE IF EXISTS " + plans + ", " + loose);
        h.pg.shard(i).exec("DO $$ BEGIN IF to_regclass('shardmap.reference_tables') IS NOT NULL THEN "
            + "DELETE FROM shardmap.reference_tables WHERE tbl = 'public." + plans + "'; END IF; END $$");
      }
    }
  }

  private static ReferenceTable parse(String json) throws Exception {
    ReferenceTable.Builder b = ReferenceTable.newBuilder();
    JsonFormat.parser().merge(json, b);
    return b.build();
  }

  @Test
  void addListSyncRemoveAndRefusals() throws Exception {
    Result none = h.run("reference");
    assertEquals(2, none.code(), none::toString);

    Result bad = h.run("reference", "add", loose, "--keyspace", "users", "--source", "s1");
    assertEquals(2, bad.code(), bad::toString);
    assertTrue(bad.err().contains("INVALID_ARGUMENT: table: table public." + loose + " on shard 's1' has no primary key"),
        bad::toString);
    Result unknown = h.run("reference", "add", plans, "--keyspace", "nope", "--source", "s1");
    assertEquals(3, unknown.code(), unknown::toString);

    Result add = h.run("reference", "add", plans, "--keyspace", "users", "--source", "s1");
    assertEquals(0, add.code(), add::toString);
    assertTrue(add.out().contains("public." + plans + "  keyspaces users  key (id)  epoch 1  copies s1,s2"), add::toString);
    assertTrue(add.err().contains("copied 2 rows from s1 to s2"), add::toString);

    Result sync = h.run("--json", "reference", "sync", "--shard", "s3", "--keyspace", "users");
    assertEquals(0, sync.code(), sync::toString);

    Result list = h.run("--json", "reference", "list");
    assertEquals(0, list.code(), list::toString);
    JsonArray a = JsonParser.parseString(list.out()).getAsJsonArray();
    assertEquals(1, a.size());
    ReferenceTable t = parse(a.get(0).toString());
    assertEquals(java.util.List.of("s1", "s2", "s3"), t.getCopiesList());
    assertEquals(2, t.getEpoch());

    Result remove = h.run("reference", "remove", plans);
    assertEquals(0, remove.code(), remove::toString);
    Result empty = h.run("reference", "list");
    assertEquals("(no reference tables)\n", empty.out(), empty::toString);
    Result again = h.run("reference", "remove", plans);
    assertEquals(3, again.code(), again::toString);
  }
}
