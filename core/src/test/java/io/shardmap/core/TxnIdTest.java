package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.UUID;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The gid of a cross-shard transaction: its format, what parses, and which cluster it belongs to. */
@Tag("unit")
class TxnIdTest {
  static final UUID U = UUID.fromString("0f8fad5b-d9cb-469f-a165-70867728950e");

  @Test
  void roundTripsAndFitsPostgresGidLimit() {
    TxnId id = TxnId.of("shardmap-prod", "s-2", "svc-7_a", U);
    assertEquals("smx1:shardmap-prod:s-2:svc-7_a:0f8fad5b-d9cb-469f-a165-70867728950e", id.toString());
    assertEquals(id, TxnId.parse(id.toString()));
    assertEquals("shardmap-prod", id.namespace());
    assertEquals("s-2", id.decider());
    assertEquals("svc-7_a", id.coordinator());
    assertEquals(U, id.uuid());
    String longest = TxnId.of("a".repeat(40), "s" + "1".repeat(62), "B".repeat(40), U).toString();
    assertTrue(longest.length() <= 192 && longest.length() < 200, longest.length() + " characters");
  }

  @Test
  void onlyShardmapGidsOfTheClusterBelongToIt() {
    String gid = TxnId.random("shardmap", "s1", "c1").toString();
    assertTrue(TxnId.belongsTo(gid, "shardmap"));
    assertFalse(TxnId.belongsTo(gid, "shardmap-other"), "another cluster sharing the databases");
    assertFalse(TxnId.belongsTo("smx1:shardmap:s1:c1:not-a-uuid", "shardmap"));
    assertFalse(TxnId.belongsTo("smx1:shardmap:c1:" + U, "shardmap"), "no decider");
    assertFalse(TxnId.belongsTo("_citus_1_2_3", "shardmap"), "another tool's prepared transaction");
    assertFalse(TxnId.belongsTo(gid.toUpperCase(), "shardmap"));
    assertFalse(TxnId.belongsTo(null, "shardmap"));
    assertEquals("smx1:shard\\_map:%", TxnId.likePattern("shard_map"));
  }

  @Test
  void malformedIdsAreRefusedNamingThePart() {
    for (String bad : new String[] {"", "smx1:ns:s1:c", "smx2:ns:s1:c:" + U, "smx1:NS:s1:c:" + U,
        "smx1:ns:s1:c d:" + U, "smx1:ns:S1:c:" + U, "smx1:ns:1s:c:" + U, "smx1:ns:c:" + U,
        "smx1:ns:s1:c:" + U.toString().toUpperCase(), "smx1:ns:s1:c:" + U + ";DROP"}) {
      ShardmapException e = assertThrows(ShardmapException.class, () -> TxnId.parse(bad), bad);
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      assertTrue(e.getMessage().contains("gid"), e.getMessage());
    }
    assertEquals("namespace", field(() -> TxnId.of("Prod", "s1", "c", U)));
    assertEquals("decider", field(() -> TxnId.of("prod", "S1", "c", U)));
    assertEquals("decider", field(() -> TxnId.of("prod", "s:1", "c", U)));
    assertEquals("coordinator", field(() -> TxnId.of("prod", "s1", "c:1", U)));
    assertEquals("coordinator", field(() -> TxnId.of("prod", "s1", "x".repeat(41), U)));
  }

  @Test
  void theNamespaceComesFromTheEtcdPrefix() {
    assertEquals("shardmap", TxnId.namespaceOf("/shardmap"));
    assertEquals("shardmap-prod-eu-1", TxnId.namespaceOf("/shardmap/Prod/eu.1"));
    assertEquals("etcdPrefix", field(() -> TxnId.namespaceOf("/" + "a".repeat(41))));
    assertEquals("etcdPrefix", field(() -> TxnId.namespaceOf("shardmap")));
  }

  /** The field an INVALID_ARGUMENT names ("field: rule"). */
  static String field(Runnable r) {
    ShardmapException e = assertThrows(ShardmapException.class, r::run);
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    for (String f : new String[] {"namespace", "decider", "coordinator", "etcdPrefix", "gid", "uuid"}) {
      if (e.getMessage().contains(f + ": ")) {
        return f;
      }
    }
    return e.getMessage();
  }
}
