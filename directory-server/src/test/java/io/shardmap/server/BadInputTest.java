package io.shardmap.server;

import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static io.shardmap.server.TestSupport.strKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.protobuf.ByteString;
import io.grpc.Status.Code;
import io.shardmap.proto.v1.*;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.function.Executable;

/**
 * Every kind of bad input gets the right status and a message naming the field and the rule, and leaves
 * the etcd revision exactly where it was (nothing written, not even partially).
 */
@Tag("integration")
class BadInputTest {
  static DirectoryServer server;
  static TestSupport.Client c;
  static MetaStore etcd;
  static String prefix;

  @BeforeAll
  static void start() throws Exception {
    EtcdCluster cluster = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    server = DirectoryServer.start(TestSupport.options(cluster.clientEndpoints(), prefix).build());
    c = new TestSupport.Client(server.port());
    etcd = TestSupport.etcdClient(cluster.clientEndpoints());
    c.registerShards("s1", "s2");
    c.admin().createKeyspace(create("ints", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2")).build());
    c.admin().createKeyspace(create("strs", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_HASH)
        .addAllHashBuckets(List.of("s1", "s2")).build());
    c.admin().createKeyspace(create("dir", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_DIRECTORY).build());
    c.admin().createKeyspace(create("ring", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_CONSISTENT_HASH)
        .addRingShards("s1").build());
    c.admin().createKeyspace(create("geo", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_GEOGRAPHIC)
        .addRegions(RegionAssignment.newBuilder().setRegion("eu").setShard("s1")).build());
  }

  @AfterAll
  static void stop() {
    c.close();
    server.close();
    etcd.close();
  }

  private record Case(String name, Code code, Executable call, String... fragments) {}

  private static RangeAssignment range(Long start, Long end, String shard) {
    KeyRange.Builder r = KeyRange.newBuilder();
    if (start != null) {
      r.setStart(intKey(start));
    }
    if (end != null) {
      r.setEnd(intKey(end));
    }
    return RangeAssignment.newBuilder().setRange(r).setShard(shard).build();
  }

  private static LookupRequest lookup(String ks, Key k) {
    return LookupRequest.newBuilder().setKeyspace(ks).setKey(k).build();
  }

  private static List<Case> cases() {
    List<Case> l = new ArrayList<>();
    // Keys.
    l.add(new Case("missing key", Code.INVALID_ARGUMENT,
        () -> c.read().lookup(lookup("ints", Key.getDefaultInstance())), "key", "required"));
    l.add(new Case("empty key", Code.INVALID_ARGUMENT,
        () -> c.read().lookup(lookup("strs", strKey(""))), "key", "must not be empty"));
    l.add(new Case("oversized key", Code.INVALID_ARGUMENT, () -> c.read().lookup(lookup("strs",
        Key.newBuilder().setBytesKey(ByteString.copyFrom(new byte[1025])).build())), "key", "at most 1024"));
    l.add(new Case("int key on bytes keyspace", Code.INVALID_ARGUMENT,
        () -> c.read().lookup(lookup("strs", intKey(1))), "key", "int_key"));
    l.add(new Case("string key on int keyspace", Code.INVALID_ARGUMENT,
        () -> c.read().lookup(lookup("ints", strKey("x"))), "key", "use int_key"));
    l.add(new Case("bad keyspace name", Code.INVALID_ARGUMENT,
        () -> c.read().lookup(lookup("Bad-Name!", intKey(1))), "keyspace", "a keyspace name is"));
    l.add(new Case("unknown keyspace", Code.NOT_FOUND,
        () -> c.read().lookup(lookup("nope", intKey(1))), "keyspace 'nope' does not exist"));
    l.add(new Case("batch with two key lists", Code.INVALID_ARGUMENT, () -> c.read().batchLookup(
        BatchLookupRequest.newBuilder().setKeyspace("ints").addIntKeys(1).addKeys(intKey(2)).build()),
        "keys", "exactly one"));
    l.add(new Case("batch too large", Code.INVALID_ARGUMENT, () -> c.read().batchLookup(
        BatchLookupRequest.newBuilder().setKeyspace("ints").addAllIntKeys(
            java.util.stream.LongStream.range(0, 100_001).boxed().toList()).build()), "keys", "at most 100000"));
    l.add(new Case("bad page size", Code.INVALID_ARGUMENT, () -> c.read().getMap(
        GetMapRequest.newBuilder().setKeyspace("ints").setPageSize(-1).build()), "page_size"));
    l.add(new Case("forged page token", Code.INVALID_ARGUMENT, () -> c.read().getMap(
        GetMapRequest.newBuilder().setKeyspace("ints").setPageToken("garbage").build()), "page_token"));
    // Client presence reports.
    l.add(new Case("report without client id", Code.INVALID_ARGUMENT, () -> c.read().reportApplied(
        ReportAppliedRequest.newBuilder().setAppliedRevision(1).build()), "client_id", "is required"));
    l.add(new Case("report with a bad client id", Code.INVALID_ARGUMENT, () -> c.read().reportApplied(
        ReportAppliedRequest.newBuilder().setClientId("app/1").setAppliedRevision(1).build()),
        "client_id", "1-128 characters of [A-Za-z0-9._:-]"));
    l.add(new Case("report with a negative revision", Code.INVALID_ARGUMENT, () -> c.read().reportApplied(
        ReportAppliedRequest.newBuilder().setClientId("app-1").setAppliedRevision(-1).build()),
        "applied_revision", "must be >= 0"));
    l.add(new Case("report with a negative staleness", Code.INVALID_ARGUMENT, () -> c.read().reportApplied(
        ReportAppliedRequest.newBuilder().setClientId("app-1").setMaxStalenessMs(-1).build()),
        "max_staleness_ms", "must be >= 0"));
    // Shards.
    l.add(new Case("bad shard name", Code.INVALID_ARGUMENT, () -> c.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(TestSupport.shard("1abc", 5432)).build()),
        "shard.name", "starting with a letter"));
    l.add(new Case("shard without primary", Code.INVALID_ARGUMENT, () -> c.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("nop")).build()), "shard.primary"));
    l.add(new Case("shard port out of range", Code.INVALID_ARGUMENT, () -> c.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(TestSupport.shard("sx", 70000)).build()),
        "shard.primary.port", "1-65535"));
    l.add(new Case("shard registered twice", Code.ALREADY_EXISTS, () -> c.admin().registerShard(
        RegisterShardRequest.newBuilder().setShard(TestSupport.shard("s1", 5432)).build()), "already registered"));
    l.add(new Case("deregister unknown shard", Code.NOT_FOUND, () -> c.admin().deregisterShard(
        DeregisterShardRequest.newBuilder().setName("ghost").build()), "'ghost' is not registered"));
    l.add(new Case("deregister owner", Code.FAILED_PRECONDITION, () -> c.admin().deregisterShard(
        DeregisterShardRequest.newBuilder().setName("s2").build()), "owns data"));
    // Keyspace creation.
    l.add(new Case("overlapping ranges", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRanges(range(null, 10L, "s1"))
            .addRanges(range(5L, null, "s2")).build()), "ranges", "overlap"));
    l.add(new Case("gap between ranges", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRanges(range(null, 10L, "s1"))
            .addRanges(range(20L, null, "s2")).build()), "ranges", "gap", "10..20"));
    l.add(new Case("space not covered", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRanges(range(0L, null, "s1"))
            .build()), "ranges", "cover the whole key space"));
    l.add(new Case("empty range", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRanges(range(null, 5L, "s1"))
            .addRanges(range(5L, 5L, "s1")).addRanges(range(5L, null, "s2")).build()),
        "ranges[1].range", "start must be below"));
    l.add(new Case("unregistered owner", Code.NOT_FOUND, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRangeShards("ghost").build()),
        "range_shards[0]", "'ghost' is not registered"));
    l.add(new Case("no strategy", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_UNSPECIFIED).build()), "spec.strategy"));
    l.add(new Case("no key type", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_UNSPECIFIED, Strategy.STRATEGY_RANGE).addRangeShards("s1").build()),
        "spec.key_type"));
    l.add(new Case("bad table name", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRangeShards("s1")
            .setSpec(TestSupport.spec("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).toBuilder()
                .setTables(0, ShardedTable.newBuilder().setName("Drop Table").setKeyColumn("id"))).build()),
        "spec.tables[0].name", "identifier"));
    l.add(new Case("hash without buckets", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_HASH).build()), "hash_buckets", "1 to 4096"));
    l.add(new Case("field of another strategy", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRangeShards("s1")
            .addHashBuckets("s1").build()), "hash_buckets", "does not apply"));
    l.add(new Case("too many vnodes", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_CONSISTENT_HASH).addRingShards("s1")
            .setSpec(TestSupport.spec("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_CONSISTENT_HASH)
                .toBuilder().setDefaultVnodes(100_000)).build()), "spec.default_vnodes"));
    l.add(new Case("integer geographic keyspace", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_GEOGRAPHIC).addRegions(
            RegionAssignment.newBuilder().setRegion("eu").setShard("s1")).build()), "spec.key_type"));
    l.add(new Case("default region not a region", Code.INVALID_ARGUMENT, () -> c.admin().createKeyspace(
        create("k1", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_GEOGRAPHIC).addRegions(
            RegionAssignment.newBuilder().setRegion("eu").setShard("s1")).setDefaultRegion("us").build()),
        "default_region", "must be one of the regions"));
    l.add(new Case("keyspace exists", Code.ALREADY_EXISTS, () -> c.admin().createKeyspace(
        create("ints", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE).addRangeShards("s1").build()),
        "'ints' already exists"));
    // Layout changes.
    l.add(new Case("split at a boundary", Code.FAILED_PRECONDITION, () -> c.admin().splitRange(
        SplitRangeRequest.newBuilder().setKeyspace("ints").setSplitKey(intKey(0)).build()),
        "split_key", "already a range boundary"));
    l.add(new Case("range call on hash keyspace", Code.FAILED_PRECONDITION, () -> c.admin().splitRange(
        SplitRangeRequest.newBuilder().setKeyspace("strs").setSplitKey(strKey("m")).build()),
        "only applies to STRATEGY_RANGE"));
    l.add(new Case("merge where no range starts", Code.NOT_FOUND, () -> c.admin().mergeRanges(
        MergeRangesRequest.newBuilder().setKeyspace("ints").setBoundary(intKey(7)).build()),
        "boundary", "no range starts at 7"));
    l.add(new Case("reassign a range that is not one", Code.NOT_FOUND, () -> c.admin().reassignRange(
        ReassignRangeRequest.newBuilder().setKeyspace("ints").setRange(range(0L, 100L, "").getRange())
            .setShard("s1").build()), "range", "0..100 is not a range", "split first"));
    l.add(new Case("reassign to the owner", Code.FAILED_PRECONDITION, () -> c.admin().reassignRange(
        ReassignRangeRequest.newBuilder().setKeyspace("ints").setRange(range(0L, null, "").getRange())
            .setShard("s2").build()), "already owned by 's2'"));
    l.add(new Case("reassign with a stale epoch", Code.FAILED_PRECONDITION, () -> c.admin().reassignRange(
        ReassignRangeRequest.newBuilder().setKeyspace("ints").setRange(range(0L, null, "").getRange())
            .setShard("s1").setExpectedEpoch(9).build()), "expected_epoch", "at epoch 1, not 9"));
    l.add(new Case("reassign to unknown shard", Code.NOT_FOUND, () -> c.admin().reassignRange(
        ReassignRangeRequest.newBuilder().setKeyspace("ints").setRange(range(0L, null, "").getRange())
            .setShard("ghost").build()), "shard", "not registered"));
    l.add(new Case("bucket out of range", Code.INVALID_ARGUMENT, () -> c.admin().reassignBucket(
        ReassignBucketRequest.newBuilder().setKeyspace("strs").setBucket(99).setShard("s1").build()),
        "bucket", "0-1"));
    l.add(new Case("too many vnodes added", Code.INVALID_ARGUMENT, () -> c.admin().addRingNodes(
        AddRingNodesRequest.newBuilder().setKeyspace("ring").setShard("s2").setVnodes(100_000).build()),
        "vnodes"));
    l.add(new Case("ring left empty", Code.FAILED_PRECONDITION, () -> c.admin().removeRingNodes(
        RemoveRingNodesRequest.newBuilder().setKeyspace("ring").setShard("s1").build()), "empty"));
    PutDirectoryEntriesRequest.Builder big = PutDirectoryEntriesRequest.newBuilder().setKeyspace("dir");
    for (int i = 0; i < 101; i++) {
      big.addEntries(DirectoryEntry.newBuilder().setKey(strKey("k" + i)).setShard("s1"));
    }
    l.add(new Case("directory batch too large", Code.INVALID_ARGUMENT,
        () -> c.admin().putDirectoryEntries(big.build()), "entries", "1 to 100"));
    l.add(new Case("duplicate directory key", Code.INVALID_ARGUMENT, () -> c.admin().putDirectoryEntries(
        PutDirectoryEntriesRequest.newBuilder().setKeyspace("dir")
            .addEntries(DirectoryEntry.newBuilder().setKey(strKey("a")).setShard("s1"))
            .addEntries(DirectoryEntry.newBuilder().setKey(strKey("a")).setShard("s2")).build()),
        "entries[1].key", "entries[0]"));
    l.add(new Case("bad region name", Code.INVALID_ARGUMENT, () -> c.admin().setRegion(
        SetRegionRequest.newBuilder().setKeyspace("geo").setRegion("EU West").setShard("s1").build()), "region"));
    l.add(new Case("remove unknown region", Code.NOT_FOUND, () -> c.admin().removeRegion(
        RemoveRegionRequest.newBuilder().setKeyspace("geo").setRegion("mars").build()), "'mars'"));
    l.add(new Case("drop unknown keyspace", Code.NOT_FOUND, () -> c.admin().dropKeyspace(
        DropKeyspaceRequest.newBuilder().setName("nope").build()), "'nope' does not exist"));
    return l;
  }

  /** Every key of this server's prefix with its mod revision. */
  private static List<String> keys() throws Exception {
    return etcd.getPrefix(prefix + "/").get(5, TimeUnit.SECONDS).kvs().stream()
        .map(kv -> kv.key() + "@" + kv.modRevision()).sorted().toList();
  }

  @TestFactory
  Stream<DynamicTest> everyBadInputIsRejectedAndWritesNothing() {
    return cases().stream().map(k -> dynamicTest(k.name(), () -> {
      // This server's keys, not the shared etcd's revision: another test class's leases may expire meanwhile.
      List<String> before = keys();
      TestSupport.assertStatus(k.code(), k.call(), k.fragments());
      assertEquals(before, keys(), "a rejected request must write nothing");
    }));
  }
}
