package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static io.shardmap.server.TestSupport.create;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.ListReferenceTablesRequest;
import io.shardmap.proto.v1.ListReferenceTablesResponse;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.EtcdCluster;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * ListReferenceTables on real etcd through two directory servers: the records of a keyspace (its own and
 * those of every keyspace), read with a quorum read (a record written to etcd a moment before is in the
 * answer of either server, at a revision at least the write's), and bad input: an unknown keyspace, a
 * malformed name, a record that does not parse.
 */
@Tag("integration")
class ListReferenceTablesTest {
  EtcdCluster etcd;
  CatalogPaths paths;
  MetaStore store;
  DirectoryServer a;
  DirectoryServer b;
  TestSupport.Client ca;
  TestSupport.Client cb;

  @BeforeEach
  void setUp() throws Exception {
    etcd = EtcdCluster.shared();
    String prefix = TestSupport.uniquePrefix();
    paths = new CatalogPaths(prefix);
    store = TestSupport.etcdClient(etcd.clientEndpoints());
    a = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("ref-a").build());
    b = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).serverId("ref-b").build());
    ca = new TestSupport.Client(a.port());
    cb = new TestSupport.Client(b.port());
    ca.registerShards("s1", "s2", "s3");
    ca.admin().createKeyspace(create("users", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2")).build());
    ca.admin().createKeyspace(create("accounts", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s3")).build());
  }

  @AfterEach
  void tearDown() {
    ca.close();
    cb.close();
    a.close();
    b.close();
    store.close();
  }

  private long put(ReferenceTable t) throws Exception {
    return store.commit(Txn.builder().put(paths.referenceTable(t.getTable()), t.toByteArray()).build())
        .get(10, TimeUnit.SECONDS).revision();
  }

  private static ReferenceTable record(String table, boolean all, List<String> keyspaces, List<String> copies,
      long epoch) {
    return ReferenceTable.newBuilder().setTable(table).setAllKeyspaces(all).addAllKeyspaces(keyspaces)
        .addPrimaryKey("id").addAllCopies(copies).setEpoch(epoch).build();
  }

  private static ListReferenceTablesResponse list(TestSupport.Client c, String keyspace) {
    return c.read().listReferenceTables(ListReferenceTablesRequest.newBuilder().setKeyspace(keyspace).build());
  }

  private static List<String> tables(ListReferenceTablesResponse r) {
    return r.getTablesList().stream().map(ReferenceTable::getTable).toList();
  }

  @Test
  void theRecordsOfAKeyspaceAndOfEveryKeyspaceAreListedFromAQuorumRead() throws Exception {
    assertEquals(List.of(), tables(list(ca, "users")), "none declared yet");
    ReferenceTable countries = record("public.countries", false, List.of("users"), List.of("s1", "s2"), 1);
    ReferenceTable plans = record("public.plans", false, List.of("accounts"), List.of("s3"), 4);
    ReferenceTable flags = record("ops.\"Flags\"", true, List.of(), List.of("s1", "s2", "s3"), 2);
    put(countries);
    put(plans);
    long written = put(flags);
    // Asked of the other server right after the write: no watch lag can hide a record.
    ListReferenceTablesResponse users = list(cb, "users");
    assertEquals(List.of(flags, countries), users.getTablesList(), "sorted by table, whole records");
    assertTrue(users.getRevision() >= written, "read at or after the last write: " + users.getRevision());
    assertEquals(List.of("ops.\"Flags\"", "public.plans"), tables(list(ca, "accounts")));

    // An epoch raised in etcd is seen at once by either server.
    long raised = put(countries.toBuilder().setEpoch(2).addCopies("s3").build());
    for (TestSupport.Client c : List.of(ca, cb)) {
      ListReferenceTablesResponse r = list(c, "users");
      assertEquals(2, r.getTables(1).getEpoch());
      assertEquals(List.of("s1", "s2", "s3"), r.getTables(1).getCopiesList());
      assertTrue(r.getRevision() >= raised);
    }
  }

  @Test
  void badInputIsRefusedNamingTheField() throws Exception {
    assertStatus(Status.Code.NOT_FOUND, () -> list(ca, "orders"), "keyspace 'orders' does not exist");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> list(ca, "Users!"), "keyspace");
    assertStatus(Status.Code.INVALID_ARGUMENT, () -> list(ca, ""), "keyspace");
    // A record that does not parse: said as the stored data's problem, naming its key.
    store.commit(Txn.builder().put(paths.referenceTable("public.broken"), "not a record".getBytes(
        StandardCharsets.UTF_8)).build()).get(10, TimeUnit.SECONDS);
    assertStatus(Status.Code.INTERNAL, () -> list(cb, "users"), paths.referenceTable("public.broken"));
  }
}
