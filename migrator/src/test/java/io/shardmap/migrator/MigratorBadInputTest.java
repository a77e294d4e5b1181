package io.shardmap.migrator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.Txn;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Every refusal of a move happens before anything is written, with the right code and the field named. */
@Tag("integration")
class MigratorBadInputTest {
  static MoveHarness h;
  static Migrator m;

  @BeforeAll
  static void setUp() throws Exception {
    h = new MoveHarness();
    m = Migrator.open(h.migratorOptions().build());
  }

  @AfterAll
  static void tearDown() throws Exception {
    m.close();
    h.close();
  }

  private void refused(ErrorCode code, String fieldAndText, Consumer<MoveSpec.Builder> c) {
    MoveSpec.Builder b = MoveSpec.builder().keyspace(MoveHarness.KS).range("0..").target("s3");
    c.accept(b);
    int before = m.list().size();
    ShardmapException e = assertThrows(ShardmapException.class, () -> m.plan(b.build()));
    assertEquals(code, e.code(), e.getMessage());
    assertTrue(e.getMessage().startsWith(fieldAndText.split(" ")[0]), e.getMessage());
    assertTrue(e.getMessage().contains(fieldAndText.substring(fieldAndText.indexOf(' ') + 1)), e.getMessage());
    assertEquals(before, m.list().size(), "nothing was recorded");
  }

  @Test
  void refusals() throws Exception {
    refused(ErrorCode.NOT_FOUND, "keyspace: no keyspace 'nope'", b -> b.keyspace("nope"));
    refused(ErrorCode.NOT_FOUND, "target: no shard 's9'", b -> b.target("s9"));
    refused(ErrorCode.FAILED_PRECONDITION, "target: already owns", b -> b.target("s2"));
    refused(ErrorCode.NOT_FOUND, "range: is not a range", b -> b.range("10..20"));
    refused(ErrorCode.INVALID_ARGUMENT, "range: ", b -> b.range("20..10"));
    refused(ErrorCode.ALREADY_EXISTS, "id: already exists", b -> {
      m.plan(MoveSpec.builder().id("taken").keyspace(MoveHarness.KS).range("..0").target("s3").build());
      b.id("taken");
    });
    refused(ErrorCode.FAILED_PRECONDITION, "range: already being moved by migration 'taken'",
        b -> b.range("..0").target("s2"));
    m.requestCancel("taken");
    m.drive("taken", p -> { }, Duration.ofSeconds(5));

    h.pg.shard(2).exec("CREATE TABLE " + h.table + " (id bigint PRIMARY KEY, v text NOT NULL, payload text)");
    refused(ErrorCode.FAILED_PRECONDITION, "target: different schema", b -> { });
    h.pg.shard(2).exec("DROP TABLE " + h.table);
    refused(ErrorCode.FAILED_PRECONDITION, "target: does not exist on shard 's3'", b -> b.createMissingTables(false));
    h.pg.shard(1).exec("ALTER TABLE " + h.table + " RENAME TO " + h.table + "_x");
    try {
      refused(ErrorCode.FAILED_PRECONDITION, "tables: does not exist on source shard 's2'", b -> { });
    } finally {
      h.pg.shard(1).exec("ALTER TABLE " + h.table + "_x RENAME TO " + h.table);
    }
    assertThrows(IllegalArgumentException.class, () -> MoveSpec.builder().id("Bad-Id"));
  }

  /**
   * --split is the admin API's SplitRange (catalog MapEdits): a stray moving marker where the new range
   * would start is refused, as shardmapctl's split refuses it, and nothing is split or recorded. (The
   * migrator's own split copy used to miss this check and split, leaving the new range looking marked.)
   */
  @Test
  void splitRefusesAStrayMarkerAtTheSplitKey() throws Exception {
    CatalogPaths paths = new CatalogPaths(h.prefix);
    try (EtcdMetaStore etcd = EtcdMetaStore.builder().endpoints(h.etcd.clientEndpoints()).build()) {
      String stray = paths.moving(MoveHarness.KS, Keys.encodeInt64(5000));
      etcd.commit(Txn.builder().put(stray, "stray".getBytes(StandardCharsets.UTF_8)).build()).get(5, TimeUnit.SECONDS);
      try {
        refused(ErrorCode.FAILED_PRECONDITION, "range: has a moving marker of migration 'stray' at 5000, where no "
            + "range starts", b -> b.range("0..5000").split(true));
        assertTrue(etcd.get(paths.range(MoveHarness.KS, Keys.encodeInt64(5000))).get(5, TimeUnit.SECONDS).kvs()
            .isEmpty(), "nothing was split");
      } finally {
        etcd.commit(Txn.builder().delete(stray).build()).get(5, TimeUnit.SECONDS);
      }
    }
    assertThrows(IllegalArgumentException.class, () -> MoveSpec.builder().pauseBudget(Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> MoveSpec.builder().chunkRows(0));
  }
}
