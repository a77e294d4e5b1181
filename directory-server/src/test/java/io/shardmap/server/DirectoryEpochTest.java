package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.proto.v1.*;
import io.shardmap.testkit.EtcdCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A directory key's epoch never drops, including while the keyspace has no fallback shard: a fence at
 * epoch E on a key's old owner must keep refusing every route of that key at or below E. (Found by
 * ClientConsistencyTest: fallback removed at epoch 5, new entry for the same owner came back at epoch 1.)
 */
@Tag("integration")
class DirectoryEpochTest {
  static DirectoryServer server;
  static TestSupport.Client client;

  @BeforeAll
  static void start() throws Exception {
    server = DirectoryServer.start(TestSupport.options(EtcdCluster.shared().clientEndpoints(),
        TestSupport.uniquePrefix()).build());
    client = new TestSupport.Client(server.port());
    client.registerShards("s1", "s2");
  }

  @AfterAll
  static void stop() {
    client.close();
    server.close();
  }

  private static Key key(String s) {
    return Key.newBuilder().setStringKey(s).build();
  }

  private void fallback(String ks, String shard) {
    client.admin().setDirectoryFallback(SetDirectoryFallbackRequest.newBuilder().setKeyspace(ks).setShard(shard).build());
  }

  private long put(String ks, String k, String shard) {
    return client.admin().putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace(ks)
        .addEntries(DirectoryEntry.newBuilder().setKey(key(k)).setShard(shard)).build()).getEntries(0).getEpoch();
  }

  @Test
  void aNewEntryAfterTheFallbackWasRemovedStartsAboveTheFallbacksLastEpoch() {
    client.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
        .setName("tenants").setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_DIRECTORY))
        .setFallbackShard("s1").build());
    fallback("tenants", "s2");
    fallback("tenants", "s1");
    fallback("tenants", "s2");
    fallback("tenants", "s1");
    assertEquals(5, client.lookup("tenants", "acme").getRoute().getEpoch());
    fallback("tenants", "");
    TestSupport.assertStatus(Status.Code.NOT_FOUND, () -> client.lookup("tenants", "acme"), "no fallback");
    assertEquals(6, put("tenants", "acme", "s1"), "above the removed fallback's epoch 5");
  }

  @Test
  void entriesDeletedWithoutAFallbackRaiseTheEpochALaterFallbackOrEntryStartsFrom() {
    client.admin().createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
        .setName("accounts").setKeyType(KeyType.KEY_TYPE_BYTES).setStrategy(Strategy.STRATEGY_DIRECTORY)).build());
    long e = put("accounts", "a", "s1");
    for (int i = 0; i < 4; i++) {
      e = put("accounts", "a", i % 2 == 0 ? "s2" : "s1");
    }
    assertEquals(5, e);
    client.admin().deleteDirectoryEntries(DeleteDirectoryEntriesRequest.newBuilder().setKeyspace("accounts")
        .addKeys(key("a")).build());
    assertTrue(put("accounts", "b", "s2") > 5, "a new entry starts above every deleted entry's epoch");
    fallback("accounts", "s1");
    LookupResponse a = client.lookup("accounts", "a");
    assertEquals("s1", a.getRoute().getShard());
    assertTrue(a.getRoute().getEpoch() > 5, "'a' falls back above its deleted entry's epoch 5, got "
        + a.getRoute().getEpoch());
  }
}
