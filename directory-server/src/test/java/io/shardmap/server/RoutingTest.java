package io.shardmap.server;

import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static io.shardmap.server.TestSupport.strKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.shardmap.core.HashTable;
import io.shardmap.core.Keys;
import io.shardmap.core.Ring;
import io.shardmap.core.XxHash64;
import io.shardmap.proto.v1.*;
import io.shardmap.testkit.EtcdCluster;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every strategy routes keys as specified, through a real directory server on a real 3-member etcd
 * cluster, and every admin change is reflected by lookups on the replica that made it.
 */
@Tag("integration")
class RoutingTest {
  static DirectoryServer server;
  static TestSupport.Client client;

  @BeforeAll
  static void start() throws Exception {
    EtcdCluster etcd = EtcdCluster.shared();
    server = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), TestSupport.uniquePrefix()).build());
    client = new TestSupport.Client(server.port());
    client.registerShards("s1", "s2", "s3", "s4", "s5");
  }

  @AfterAll
  static void stop() {
    client.close();
    server.close();
  }

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

  @Test
  void rangeStrategyRoutesByHalfOpenRanges() {
    client.admin().createKeyspace(create("orders", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRanges(range(null, -100L, "s1")).addRanges(range(-100L, 1000L, "s2"))
        .addRanges(range(1000L, null, "s3")).build());
    assertEquals("s1", client.lookup("orders", Long.MIN_VALUE).getRoute().getShard());
    assertEquals("s1", client.lookup("orders", -101).getRoute().getShard());
    assertEquals("s2", client.lookup("orders", -100).getRoute().getShard());
    assertEquals("s2", client.lookup("orders", 999).getRoute().getShard());
    assertEquals("s3", client.lookup("orders", 1000).getRoute().getShard());
    LookupResponse top = client.lookup("orders", Long.MAX_VALUE);
    assertEquals("s3", top.getRoute().getShard());
    assertEquals(1, top.getRoute().getEpoch());
    assertEquals(1000, top.getRoute().getRange().getStart().getIntKey());
    assertFalse(top.getRoute().getRange().hasEnd(), "last range is unbounded above");
    assertEquals("s3", top.getShard().getName());
    assertEquals(5435, top.getShard().getPrimary().getPort());

    // Split, reassign (epoch + 1), merge back.
    SplitRangeResponse split = client.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace("orders")
        .setSplitKey(intKey(500)).build());
    assertEquals(500, split.getRight().getRange().getStart().getIntKey());
    assertEquals("s2", split.getRight().getShard());
    ReassignRangeResponse moved = client.admin().reassignRange(ReassignRangeRequest.newBuilder()
        .setKeyspace("orders").setRange(split.getRight().getRange()).setShard("s4").setExpectedEpoch(1).build());
    assertEquals(2, moved.getRange().getEpoch());
    assertEquals("s2", client.lookup("orders", 499).getRoute().getShard());
    LookupResponse r = client.lookup("orders", 500);
    assertEquals("s4", r.getRoute().getShard());
    assertEquals(2, r.getRoute().getEpoch());
    TestSupport.assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().mergeRanges(
        MergeRangesRequest.newBuilder().setKeyspace("orders").setBoundary(intKey(500)).build()),
        "different owners");
    client.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace("orders")
        .setRange(moved.getRange().getRange()).setShard("s2").build());
    MergeRangesResponse merged = client.admin().mergeRanges(MergeRangesRequest.newBuilder()
        .setKeyspace("orders").setBoundary(intKey(500)).build());
    assertEquals(3, merged.getMerged().getEpoch(), "merged range takes the larger epoch");
    assertEquals(-100, merged.getMerged().getRange().getStart().getIntKey());
    assertEquals(1000, merged.getMerged().getRange().getEnd().getIntKey());
    GetMapResponse map = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("orders").build());
    assertEquals(3, map.getRangesCount());
    assertTrue(map.getRevision() > 0);
  }

  @Test
  void evenSplitAndBatchLookupAgreeWithSingleLookups() {
    client.admin().createKeyspace(create("events", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2", "s3", "s4")).build());
    GetMapResponse map = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("events").build());
    assertEquals(4, map.getRangesCount());
    assertEquals(-(1L << 62) * 2 + (1L << 62), map.getRanges(1).getRange().getStart().getIntKey());
    assertEquals(0, map.getRanges(2).getRange().getStart().getIntKey());
    Random rnd = new Random(7);
    BatchLookupRequest.Builder batch = BatchLookupRequest.newBuilder().setKeyspace("events");
    for (int i = 0; i < 500; i++) {
      batch.addIntKeys(rnd.nextLong());
    }
    BatchLookupResponse resp = client.read().batchLookup(batch.build());
    assertEquals(500, resp.getShardIndexesCount());
    for (int i = 0; i < 500; i += 25) {
      long k = batch.getIntKeys(i);
      assertEquals(client.lookup("events", k).getRoute().getShard(),
          resp.getShards(resp.getShardIndexes(i)), "key " + k);
    }
  }

  @Test
  void hashStrategyIsXxHash64ModN() {
    client.admin().createKeyspace(create("sessions", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_HASH)
        .addAllHashBuckets(List.of("s1", "s2", "s3")).build());
    List<String> buckets = List.of("s1", "s2", "s3");
    for (String k : List.of("alice", "bob", "carol", "dave", "eve", "mallory")) {
      long h = XxHash64.hash(k.getBytes(StandardCharsets.UTF_8));
      assertEquals(buckets.get(HashTable.bucketOf(h, 3)), client.lookup("sessions", k).getRoute().getShard(), k);
    }
    ReshardHashResponse reshard = client.admin().reshardHash(ReshardHashRequest.newBuilder()
        .setKeyspace("sessions").addAllBuckets(List.of("s1", "s2", "s3", "s4")).build());
    // mod 3 -> mod 4 keeps a key only when both residues pick the same shard: 3 of 12 residues.
    assertEquals(0.75, reshard.getMovedFraction(), 1e-9);
    assertEquals(2, reshard.getHash().getBuckets(0).getEpoch());
    ReassignBucketResponse rb = client.admin().reassignBucket(ReassignBucketRequest.newBuilder()
        .setKeyspace("sessions").setBucket(3).setShard("s5").build());
    assertEquals(3, rb.getBucket().getEpoch());
    for (String k : List.of("alice", "bob", "carol", "dave")) {
      long h = XxHash64.hash(k.getBytes(StandardCharsets.UTF_8));
      int b = HashTable.bucketOf(h, 4);
      String expected = b == 3 ? "s5" : List.of("s1", "s2", "s3").get(b);
      assertEquals(expected, client.lookup("sessions", k).getRoute().getShard(), k);
    }
  }

  @Test
  void consistentHashMovesAboutOneFifthWhenAFifthShardJoins() {
    client.admin().createKeyspace(create("carts", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_CONSISTENT_HASH)
        .addAllRingShards(List.of("s1", "s2", "s3", "s4")).build());
    Random rnd = new Random(11);
    long[] keys = rnd.longs(2000).toArray();
    BatchLookupResponse before = client.read().batchLookup(BatchLookupRequest.newBuilder()
        .setKeyspace("carts").addAllIntKeys(java.util.Arrays.stream(keys).boxed().toList()).build());
    AddRingNodesResponse add = client.admin().addRingNodes(AddRingNodesRequest.newBuilder()
        .setKeyspace("carts").setShard("s5").build());
    assertTrue(add.getMovedFraction() > 0.15 && add.getMovedFraction() < 0.25,
        "moved fraction " + add.getMovedFraction());
    BatchLookupResponse after = client.read().batchLookup(BatchLookupRequest.newBuilder()
        .setKeyspace("carts").addAllIntKeys(java.util.Arrays.stream(keys).boxed().toList()).build());
    int moved = 0;
    Ring ring = Ring.of(add.getRing(), 0);
    for (int i = 0; i < keys.length; i++) {
      String b = before.getShards(before.getShardIndexes(i));
      String a = after.getShards(after.getShardIndexes(i));
      assertEquals(ring.route(keys[i]).shard(), a, "server and core agree");
      if (!a.equals(b)) {
        moved++;
        assertEquals("s5", a, "keys only move to the new shard");
        assertTrue(after.getEpochs(i) > before.getEpochs(i), "a moved key's epoch grows");
      }
    }
    assertTrue(moved > 2000 * 0.13 && moved < 2000 * 0.27, "moved " + moved + " of 2000");
    RemoveRingNodesResponse rm = client.admin().removeRingNodes(RemoveRingNodesRequest.newBuilder()
        .setKeyspace("carts").setShard("s5").build());
    assertEquals(add.getMovedFraction(), rm.getMovedFraction(), 1e-9);
    BatchLookupResponse again = client.read().batchLookup(BatchLookupRequest.newBuilder()
        .setKeyspace("carts").addAllIntKeys(java.util.Arrays.stream(keys).boxed().toList()).build());
    for (int i = 0; i < keys.length; i++) {
      assertEquals(before.getShards(before.getShardIndexes(i)), again.getShards(again.getShardIndexes(i)));
      assertTrue(again.getEpochs(i) >= after.getEpochs(i), "epochs never go back");
    }
  }

  @Test
  void directoryStrategyUsesEntriesThenFallback() {
    client.admin().createKeyspace(create("tenants", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_DIRECTORY)
        .build());
    TestSupport.assertStatus(Status.Code.NOT_FOUND, () -> client.lookup("tenants", "acme"),
        "no entry", "no fallback");
    client.admin().putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("tenants")
        .addEntries(DirectoryEntry.newBuilder().setKey(strKey("acme")).setShard("s2"))
        .addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder()
            .setBytesKey(ByteString.copyFrom(new byte[] {0, 1, 2}))).setShard("s3")).build());
    assertEquals("s2", client.lookup("tenants", "acme").getRoute().getShard());
    assertEquals("s3", client.read().lookup(LookupRequest.newBuilder().setKeyspace("tenants")
        .setKey(Key.newBuilder().setBytesKey(ByteString.copyFrom(new byte[] {0, 1, 2}))).build())
        .getRoute().getShard());
    SetDirectoryFallbackResponse fb = client.admin().setDirectoryFallback(SetDirectoryFallbackRequest
        .newBuilder().setKeyspace("tenants").setShard("s1").build());
    assertEquals(1, fb.getDirectory().getFallbackEpoch());
    assertEquals("s1", client.lookup("tenants", "globex").getRoute().getShard());
    PutDirectoryEntriesResponse moved = client.admin().putDirectoryEntries(PutDirectoryEntriesRequest
        .newBuilder().setKeyspace("tenants")
        .addEntries(DirectoryEntry.newBuilder().setKey(strKey("acme")).setShard("s4")).build());
    assertEquals(2, moved.getEntries(0).getEpoch());
    DeleteDirectoryEntriesResponse del = client.admin().deleteDirectoryEntries(DeleteDirectoryEntriesRequest
        .newBuilder().setKeyspace("tenants").addKeys(strKey("acme")).addKeys(strKey("nobody")).build());
    assertEquals(1, del.getDeleted());
    LookupResponse back = client.lookup("tenants", "acme");
    assertEquals("s1", back.getRoute().getShard());
    assertTrue(back.getRoute().getEpoch() > 2, "a deleted entry's key falls back with a higher epoch");
    GetMapResponse map = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("tenants").build());
    assertEquals(1, map.getEntriesCount());
    assertEquals("s1", map.getDirectory().getFallbackShard());
  }

  @Test
  void directoryLayoutWithoutEntriesAndBatchAnswersSayingWhichKeysFellBack() {
    client.admin().createKeyspace(create("accounts", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_DIRECTORY)
        .setFallbackShard("s1").build());
    PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("accounts");
    for (long k = 0; k < 25; k++) {
      // Key 3 sits on the fallback's own shard: same shard and epoch as the fallback, yet an entry.
      put.addEntries(DirectoryEntry.newBuilder().setKey(intKey(k)).setShard(k == 3 ? "s1" : "s2"));
    }
    client.admin().putDirectoryEntries(put.build());

    // skip_entries: spec, fallback and the count; no entries and no next page even with a tiny page size.
    GetMapResponse head = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("accounts")
        .setSkipEntries(true).setPageSize(2).build());
    assertEquals(0, head.getEntriesCount());
    assertEquals("", head.getNextPageToken());
    assertEquals(25, head.getEntryCount());
    assertEquals("s1", head.getDirectory().getFallbackShard());
    assertEquals(Strategy.STRATEGY_DIRECTORY, head.getSpec().getStrategy());
    assertEquals(head.getRevision(), head.getFreshness().getRevision(), "freshness names the revision read");
    GetMapResponse full = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("accounts")
        .setPageSize(10).build());
    assertEquals(10, full.getEntriesCount());
    assertEquals(25, full.getEntryCount());
    assertFalse(full.getNextPageToken().isEmpty());
    // Other strategies ignore the flag: their layout is the map.
    client.admin().createKeyspace(create("ledgers", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2", "s3")).build());
    assertEquals(3, client.read().getMap(GetMapRequest.newBuilder().setKeyspace("ledgers").setSkipEntries(true)
        .build()).getRangesCount());

    BatchLookupResponse b = client.read().batchLookup(BatchLookupRequest.newBuilder().setKeyspace("accounts")
        .addIntKeys(2).addIntKeys(3).addIntKeys(1000).build());
    assertEquals(List.of(false, false, true), b.getFromFallbackList());
    assertEquals("s2", b.getShards(b.getShardIndexes(0)));
    assertEquals("s1", b.getShards(b.getShardIndexes(1)));
    assertEquals("s1", b.getShards(b.getShardIndexes(2)));
    assertEquals(b.getEpochs(1), b.getEpochs(2), "entry on the fallback's shard carries the fallback's epoch");
    assertTrue(b.getFreshness().getRevision() >= head.getRevision());
    // Not a directory: no from_fallback column.
    assertEquals(0, client.read().batchLookup(BatchLookupRequest.newBuilder().setKeyspace("ledgers")
        .addIntKeys(1).build()).getFromFallbackCount());
  }

  @Test
  void directoryPagingReturnsEveryEntryOnceAtOneRevision() {
    client.admin().createKeyspace(create("devices", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_DIRECTORY)
        .setFallbackShard("s1").build());
    Map<Long, String> expected = new HashMap<>();
    for (int batch = 0; batch < 3; batch++) {
      PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices");
      for (int i = 0; i < 100; i++) {
        long k = batch * 1000L + i;
        String s = "s" + (2 + (i % 3));
        expected.put(k, s);
        put.addEntries(DirectoryEntry.newBuilder().setKey(intKey(k)).setShard(s));
      }
      client.admin().putDirectoryEntries(put.build());
    }
    Map<Long, String> seen = new HashMap<>();
    String token = "";
    long revision = -1;
    int pages = 0;
    do {
      GetMapResponse page = client.read().getMap(GetMapRequest.newBuilder().setKeyspace("devices")
          .setPageSize(70).setPageToken(token).build());
      if (revision < 0) {
        revision = page.getRevision();
        // A change between pages must not leak into this read.
        client.admin().putDirectoryEntries(PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices")
            .addEntries(DirectoryEntry.newBuilder().setKey(intKey(999_999)).setShard("s2")).build());
      }
      assertEquals(revision, page.getRevision());
      for (DirectoryEntry e : page.getEntriesList()) {
        assertEquals(null, seen.put(e.getKey().getIntKey(), e.getShard()), "entry seen twice");
      }
      token = page.getNextPageToken();
      pages++;
    } while (!token.isEmpty());
    assertEquals(5, pages);
    assertEquals(expected, seen);
  }

  @Test
  void geographicStrategyRoutesRegionsAndDefaultsUnknownOnes() {
    client.admin().createKeyspace(create("profiles", KeyType.KEY_TYPE_UNSPECIFIED, Strategy.STRATEGY_GEOGRAPHIC)
        .addRegions(RegionAssignment.newBuilder().setRegion("eu-west").setShard("s1"))
        .addRegions(RegionAssignment.newBuilder().setRegion("us-east").setShard("s2"))
        .setDefaultRegion("us-east").build());
    assertEquals("s1", client.lookup("profiles", "eu-west").getRoute().getShard());
    assertEquals("s2", client.lookup("profiles", "ap-south").getRoute().getShard());
    SetRegionResponse set = client.admin().setRegion(SetRegionRequest.newBuilder().setKeyspace("profiles")
        .setRegion("ap-south").setShard("s3").build());
    assertEquals(3, set.getGeo().getRegionsCount());
    LookupResponse ap = client.lookup("profiles", "ap-south");
    assertEquals("s3", ap.getRoute().getShard());
    assertEquals(2, ap.getRoute().getEpoch(), "new region passes the default's epoch");
    TestSupport.assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().removeRegion(
        RemoveRegionRequest.newBuilder().setKeyspace("profiles").setRegion("us-east").build()), "default");
    client.admin().removeRegion(RemoveRegionRequest.newBuilder().setKeyspace("profiles")
        .setRegion("ap-south").build());
    LookupResponse gone = client.lookup("profiles", "ap-south");
    assertEquals("s2", gone.getRoute().getShard());
    assertTrue(gone.getRoute().getEpoch() > 2);
  }

  @Test
  void keyspacesAndShardsAreListedAndShardsWithDataStay() {
    client.registerShards("s6");
    client.admin().createKeyspace(create("audit", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s6")).build());
    assertTrue(client.read().listKeyspaces(ListKeyspacesRequest.getDefaultInstance()).getKeyspacesList()
        .stream().anyMatch(k -> k.getName().equals("audit")));
    TestSupport.assertStatus(Status.Code.FAILED_PRECONDITION, () -> client.admin().deregisterShard(
        DeregisterShardRequest.newBuilder().setName("s6").build()), "owns data", "audit");
    client.admin().dropKeyspace(DropKeyspaceRequest.newBuilder().setName("audit").build());
    client.admin().deregisterShard(DeregisterShardRequest.newBuilder().setName("s6").build());
    client.admin().registerShard(RegisterShardRequest.newBuilder().setShard(TestSupport.shard("tmp", 6000)).build());
    client.admin().deregisterShard(DeregisterShardRequest.newBuilder().setName("tmp").build());
    assertFalse(client.read().listShards(ListShardsRequest.getDefaultInstance()).getShardsList().stream()
        .anyMatch(s -> s.getName().equals("tmp")));
    client.admin().createKeyspace(create("ledger", KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2", "s3")).build());
    DescribeKeyspaceResponse d = client.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder()
        .setName("ledger").build());
    assertEquals(3, d.getLayoutEntries());
    assertEquals(1.0 / 3, d.getShares(0).getFraction(), 1e-9);
    double total = d.getSharesList().stream().mapToDouble(ShardShare::getFraction).sum();
    assertEquals(1.0, total, 1e-9, "shares of a range keyspace cover the key space");
  }

  @Test
  void stringKeysUseCanonicalBytes() {
    client.admin().createKeyspace(create("names", KeyType.KEY_TYPE_BYTES, Strategy.STRATEGY_RANGE)
        .addAllRangeShards(List.of("s1", "s2")).build());
    // Two shards split the byte space at 0x80: ASCII names go left, 0xFF-prefixed keys go right.
    assertEquals("s1", client.lookup("names", "zebra").getRoute().getShard());
    assertEquals("s2", client.read().lookup(LookupRequest.newBuilder().setKeyspace("names")
        .setKey(Key.newBuilder().setBytesKey(ByteString.copyFrom(new byte[] {(byte) 0xff}))).build())
        .getRoute().getShard());
    assertEquals("0x80", "0x" + Keys.hex(Keys.canonical(KeyType.KEY_TYPE_BYTES,
        client.read().getMap(GetMapRequest.newBuilder().setKeyspace("names").build()).getRanges(1)
            .getRange().getStart(), "start")));
  }
}
