package io.shardmap.core;

import static io.shardmap.core.TestData.assertError;
import static io.shardmap.core.TestData.ring;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class RingTest {
  private static final int KEYS = 100_000;
  private static final String[] FOUR = {"s1", "s2", "s3", "s4"};

  // ------------------------------------------------------------------ basics

  @Test
  void positionIsXxHashOfShardHashIndex() {
    assertEquals(XxHash64.hash("s1#0".getBytes(StandardCharsets.UTF_8)), Ring.position("s1", 0));
    assertEquals(XxHash64.hash("shard-a#511".getBytes(StandardCharsets.UTF_8)), Ring.position("shard-a", 511));
  }

  @Test
  void routeIsFirstNodeAtOrAfterTheKeyHashWrappingAround() {
    RingLayout layout = ring(16, "a", "b", "c");
    Ring r = Ring.of(layout, 9);
    assertEquals(48, r.size());
    // Naive model: every node's unsigned position and owner.
    List<long[]> nodes = new ArrayList<>();
    List<String> owners = new ArrayList<>();
    for (RingShard s : layout.getShardsList()) {
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        nodes.add(new long[] {Ring.position(s.getShard(), v)});
        owners.add(s.getShard());
      }
    }
    Random rnd = new Random(12);
    List<Long> hashes = new ArrayList<>();
    for (long[] n : nodes) {
      hashes.add(n[0]);       // exactly on a node: that node owns it
      hashes.add(n[0] + 1);   // just after a node: the next node owns it
    }
    hashes.add(0L);
    hashes.add(-1L);          // the largest unsigned position: wraps to the first node unless a node is there
    for (int i = 0; i < 5_000; i++) {
      hashes.add(rnd.nextLong());
    }
    for (long h : hashes) {
      String expected = naiveOwner(nodes, owners, h);
      assertEquals(expected, ownerOfNode(r, h),
          "owner of hash position " + Long.toUnsignedString(h));
    }
    for (int i = 0; i < 10_000; i++) {
      long k = rnd.nextLong();
      Route viaLong = r.route(k);
      assertSame(viaLong, r.route(Keys.encodeInt64(k)), "route(long) vs route(bytes) for " + k);
      assertEquals(naiveOwner(nodes, owners, XxHash64.hashInt64(k)), viaLong.shard(), "route(" + k + ")");
      assertEquals(9, viaLong.modRevision());
    }
  }

  private static String ownerOfNode(Ring r, long hash) {
    int node = r.nodeAt(hash);
    // Map the node index back to its owner through the routes of a probe at exactly that position.
    return nodeOwner(r, node);
  }

  /** The owner of node i in ring order: the shard whose vnode position is the i-th smallest unsigned. */
  private static String nodeOwner(Ring r, int i) {
    TreeMap<Long, String> sorted = new TreeMap<>(Long::compareUnsigned);
    for (RingShard s : r.layout().getShardsList()) {
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        sorted.put(Ring.position(s.getShard(), v), s.getShard());
      }
    }
    return new ArrayList<>(sorted.values()).get(i);
  }

  private static String naiveOwner(List<long[]> nodes, List<String> owners, long h) {
    int best = -1;
    int smallest = -1;
    for (int i = 0; i < nodes.size(); i++) {
      long p = nodes.get(i)[0];
      if (Long.compareUnsigned(p, h) >= 0 && (best < 0 || Long.compareUnsigned(p, nodes.get(best)[0]) < 0)) {
        best = i;
      }
      if (smallest < 0 || Long.compareUnsigned(p, nodes.get(smallest)[0]) < 0) {
        smallest = i;
      }
    }
    return owners.get(best >= 0 ? best : smallest);
  }

  @Test
  void ofValidatesNodeCounts() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> Ring.of(RingLayout.getDefaultInstance(), 1), "ring:",
        "at least one virtual node");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> Ring.of(ring(0, "a", "b"), 1), "ring:");
    RingLayout tooMany = ring(Ring.MAX_NODES / 8 + 1, "a", "b", "c", "d", "e", "f", "g", "h");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> Ring.of(tooMany, 1), "ring:", "at most " + Ring.MAX_NODES);
  }

  @Test
  void routesCarryTheEpochOfTheirVnode() {
    RingLayout layout = RingLayout.newBuilder()
        .addShards(RingShard.newBuilder().setShard("a").addVnodeEpochs(3).addVnodeEpochs(4))
        .addShards(RingShard.newBuilder().setShard("b").addVnodeEpochs(7)).build();
    Ring r = Ring.of(layout, 1);
    for (String shard : new String[] {"a", "b"}) {
      RingShard s = shard.equals("a") ? layout.getShards(0) : layout.getShards(1);
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        long pos = Ring.position(shard, v);
        Route route = routeAtHash(r, pos);
        assertEquals(shard, route.shard(), "the node at its own position owns it");
        assertEquals(s.getVnodeEpochs(v), route.epoch(), shard + "#" + v + " epoch");
      }
    }
  }

  /** The route of hash position h, found via a key-free path: nodeAt + an int key would need a preimage. */
  private static Route routeAtHash(Ring r, long h) {
    // Build a one-off table of shard/epoch per node index from the layout, in ring order.
    TreeMap<Long, long[]> sorted = new TreeMap<>(Long::compareUnsigned);
    Map<Long, String> owner = new HashMap<>();
    for (RingShard s : r.layout().getShardsList()) {
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        long p = Ring.position(s.getShard(), v);
        sorted.put(p, new long[] {s.getVnodeEpochs(v)});
        owner.put(p, s.getShard());
      }
    }
    List<Long> positions = new ArrayList<>(sorted.keySet());
    long p = positions.get(r.nodeAt(h));
    return new Route(owner.get(p), sorted.get(p)[0], null, 0);
  }

  @Test
  void sharesSumToOneAndMatchMeasuredKeys() {
    Ring r = Ring.of(ring(64, "a", "b", "c"), 1);
    Map<String, Double> shares = r.shares();
    assertEquals(1.0, shares.values().stream().mapToDouble(Double::doubleValue).sum(), 1e-9, "shares sum to 1");
    Map<String, Integer> counts = countOwners(r, KEYS, 31);
    for (String s : shares.keySet()) {
      assertEquals(shares.get(s), counts.get(s) / (double) KEYS, 0.01, "share of " + s + " vs measured");
    }
    assertEquals(Map.of("only", 1.0), Ring.of(ring(1, "only"), 1).shares(), "a one-node ring owns everything");
    assertEquals(1.0, Ring.of(ring(5, "only"), 1).shares().get("only"), 1e-12);
  }

  @Test
  void movedFractionOfIdenticalRingsIsZeroAndIsSymmetric() {
    Ring a = Ring.of(ring(32, "a", "b"), 1);
    Ring b = Ring.of(ring(32, "a", "b", "c"), 1);
    assertEquals(0.0, Ring.movedFraction(a, a), "identical rings");
    assertEquals(0.0, Ring.movedFraction(a, Ring.of(a.layout(), 2)), "same layout");
    assertEquals(Ring.movedFraction(a, b), Ring.movedFraction(b, a), 1e-12, "symmetric");
    assertEquals(b.shares().get("c"), Ring.movedFraction(a, b), 1e-9,
        "adding shard c moves exactly c's share");
    Ring one = Ring.of(ring(1, "x"), 1);
    Ring other = Ring.of(ring(1, "y"), 1);
    assertEquals(1.0, Ring.movedFraction(one, other), 1e-12, "two disjoint one-node rings");
  }

  @Test
  void withAddedNodesGivesNewSegmentsTheSuccessorEpochPlusOne() {
    RingLayout start = RingLayout.newBuilder()
        .addShards(withEpochs("a", 16, 5))
        .addShards(withEpochs("b", 16, 9)).build();
    Ring before = Ring.of(start, 1);
    RingLayout added = before.withAddedNodes("c", 8);
    assertEquals(3, added.getShardsCount());
    assertEquals("c", added.getShards(2).getShard());
    assertEquals(start.getShards(0), added.getShards(0), "other shards' epochs are untouched");
    assertEquals(start.getShards(1), added.getShards(1));
    for (int v = 0; v < 8; v++) {
      String succOwner = ownerOfNode(before, Ring.position("c", v));
      long expected = (succOwner.equals("a") ? 5 : 9) + 1;
      assertEquals(expected, added.getShards(2).getVnodeEpochs(v), "c#" + v + " takes its successor's epoch + 1");
    }
    // More nodes for an existing shard: a node whose successor is the same shard keeps its epoch.
    RingLayout more = Ring.of(added, 2).withAddedNodes("a", 16);
    assertEquals(32, more.getShards(0).getVnodeEpochsCount());
    assertEquals(added.getShards(0).getVnodeEpochsList(), more.getShards(0).getVnodeEpochsList().subList(0, 16));
  }

  private static RingShard withEpochs(String shard, int vnodes, long epoch) {
    RingShard.Builder b = RingShard.newBuilder().setShard(shard);
    for (int i = 0; i < vnodes; i++) {
      b.addVnodeEpochs(epoch);
    }
    return b.build();
  }

  @Test
  void withAddedNodesRespectsThePerShardLimit() {
    Ring r = Ring.of(ring(8, "a"), 1);
    assertError(ErrorCode.INVALID_ARGUMENT, () -> r.withAddedNodes("a", Ring.MAX_VNODES_PER_SHARD - 7), "vnodes:",
        "at most " + Ring.MAX_VNODES_PER_SHARD);
    assertEquals(Ring.MAX_VNODES_PER_SHARD, r.withAddedNodes("a", Ring.MAX_VNODES_PER_SHARD - 8)
        .getShards(0).getVnodeEpochsCount());
  }

  @Test
  void withRemovedNodesDropsHighestNumberedNodes() {
    Ring r = Ring.of(ring(10, "a", "b"), 1);
    RingLayout partial = r.withRemovedNodes("a", 3);
    assertEquals(7, partial.getShards(0).getVnodeEpochsCount(), "a keeps vnodes 0..6");
    assertEquals("a", partial.getShards(0).getShard());
    RingLayout all = r.withRemovedNodes("a", 0);
    assertEquals(1, all.getShardsCount(), "count <= 0 removes every node of the shard");
    assertEquals("b", all.getShards(0).getShard());
    assertEquals(10, all.getShards(0).getVnodeEpochsCount());
    assertEquals(1, r.withRemovedNodes("a", 99).getShardsCount(), "removing more than it has removes all");
    assertError(ErrorCode.NOT_FOUND, () -> r.withRemovedNodes("zz", 1), "zz");
    Ring single = Ring.of(ring(4, "only"), 1);
    assertError(ErrorCode.FAILED_PRECONDITION, () -> single.withRemovedNodes("only", 0), "empty");
    // Every surviving segment that absorbed a removed one has a higher epoch; the others are unchanged.
    for (long e : all.getShards(0).getVnodeEpochsList()) {
      assertTrue(e >= 1, "epochs never decrease");
    }
    assertTrue(all.getShards(0).getVnodeEpochsList().stream().anyMatch(e -> e > 1),
        "some of b's nodes absorbed a's segments and must have a higher epoch");
  }

  // ------------------------------------------------------------------ acceptance: consistent-hash distribution

  static Map<String, Integer> countOwners(Ring r, int n, long seed) {
    Random rnd = new Random(seed);
    Map<String, Integer> counts = new TreeMap<>();
    for (int i = 0; i < n; i++) {
      counts.merge(r.route(rnd.nextLong()).shard(), 1, Integer::sum);
    }
    return counts;
  }

  static double maxRelativeDeviation(Map<String, Integer> counts, int shards, int n) {
    double expected = (double) n / shards;
    double max = 0;
    for (int c : counts.values()) {
      max = Math.max(max, Math.abs(c - expected) / expected);
    }
    return counts.size() < shards ? 1.0 : max;
  }

  @Test
  void theDefault1024VnodesKeepEveryShardWithin5PercentAndTheVnodeTableIsReported() {
    StringBuilder table = new StringBuilder(String.format(
        "%n[vnode deviation] 4 shards, %d random INT64 keys (seed 20), and 16-byte keys (seed 21)%n"
            + "  vnodes | max dev INT64 keys | max dev BYTES keys | max dev exact shares%n", KEYS));
    StringBuilder sweepTable = new StringBuilder(String.format(
        "[vnode deviation] exact max share deviation (Ring.shares) over 100 other sets of 4 shard names%n"));
    for (int vnodes : new int[] {128, 256, 512, 1024, 2048}) {
      Ring r = Ring.of(ring(vnodes, FOUR), 1);
      Map<String, Integer> intCounts = countOwners(r, KEYS, 20);
      Map<String, Integer> byteCounts = new TreeMap<>();
      Random rnd = new Random(21);
      for (int i = 0; i < KEYS; i++) {
        byteCounts.merge(r.route(TestData.randomBytes(rnd, 16)).shard(), 1, Integer::sum);
      }
      double exact = 0;
      for (double s : r.shares().values()) {
        exact = Math.max(exact, Math.abs(s - 0.25) / 0.25);
      }
      double devInt = maxRelativeDeviation(intCounts, 4, KEYS);
      double devBytes = maxRelativeDeviation(byteCounts, 4, KEYS);
      table.append(String.format("  %6d | %17.2f%% | %17.2f%% | %19.2f%%   int=%s%n", vnodes, devInt * 100,
          devBytes * 100, exact * 100, intCounts));
      // The deviation depends on the shard names (they fix the vnode positions): sweep 100 other 4-name sets.
      double[] sweep = new double[100];
      int over10 = 0;
      for (int set = 0; set < sweep.length; set++) {
        String[] names = new String[4];
        for (int i = 0; i < 4; i++) {
          names[i] = "pg-" + set + "-" + i;
        }
        for (double s : Ring.of(ring(vnodes, names), 1).shares().values()) {
          sweep[set] = Math.max(sweep[set], Math.abs(s - 0.25) / 0.25);
        }
        over10 += sweep[set] > 0.10 ? 1 : 0;
      }
      java.util.Arrays.sort(sweep);
      sweepTable.append(String.format("  %6d | median %5.2f%% | p95 %5.2f%% | worst %5.2f%% | sets over 10%%: %d/100%n",
          vnodes, sweep[49] * 100, sweep[94] * 100, sweep[99] * 100, over10));
      if (vnodes == 1024) {
        // The server's default: every shard within a few percent, whatever the shard names.
        assertTrue(devInt <= 0.05, "1024 vnodes, INT64 keys: a shard is more than 5% off 25,000: " + intCounts);
        assertTrue(devBytes <= 0.05, "1024 vnodes, 16-byte keys: a shard is more than 5% off 25,000: " + byteCounts);
        assertTrue(sweep[99] <= 0.10, "1024 vnodes: some set of shard names is more than 10% off: " + sweep[99]);
      }
    }
    System.out.println(table);
    System.out.println(sweepTable);
  }

  // ------------------------------------------------------------------ acceptance: adding a fifth shard

  @Test
  void addingAFifthShardMovesAboutAFifthOfKeysAllToTheNewShard() {
    Ring before = Ring.of(ring(512, FOUR), 1);
    Ring after = Ring.of(before.withAddedNodes("s5", 512), 2);
    Random rnd = new Random(55);
    int moved = 0;
    for (int i = 0; i < KEYS; i++) {
      long k = rnd.nextLong();
      Route a = before.route(k);
      Route b = after.route(k);
      if (!a.shard().equals(b.shard())) {
        moved++;
        assertEquals("s5", b.shard(), "key " + k + " moved from " + a.shard() + " to " + b.shard()
            + ", not to the new shard s5");
        assertTrue(b.epoch() > a.epoch(), "key " + k + " changed owner but its epoch did not grow");
      } else {
        assertEquals(a.epoch(), b.epoch(), "key " + k + " kept its owner; its epoch must not change");
      }
    }
    double measured = (double) moved / KEYS;
    double predicted = Ring.movedFraction(before, after);
    System.out.printf("[add s5] moved %.4f of keys, Ring.movedFraction = %.4f, s5 share = %.4f%n", measured,
        predicted, after.shares().get("s5"));
    assertTrue(measured >= 0.15 && measured <= 0.25, "adding a 5th shard moved " + measured + " of keys, not 15-25%");
    assertEquals(measured, predicted, 0.01, "Ring.movedFraction vs measured fraction");
  }

  // ------------------------------------------------------------------ acceptance: removal moves only that shard's keys

  @Test
  void removingAShardMovesOnlyTheKeysItOwned() {
    String[] five = {"s1", "s2", "s3", "s4", "s5"};
    Ring before = Ring.of(ring(256, five), 1);
    for (String victim : new String[] {"s2", "s5"}) {
      Ring after = Ring.of(before.withRemovedNodes(victim, 0), 2);
      Random rnd = new Random(77);
      int owned = 0;
      int moved = 0;
      for (int i = 0; i < KEYS; i++) {
        byte[] k = TestData.randomBytes(rnd, 1 + rnd.nextInt(24));
        Route a = before.route(k);
        Route b = after.route(k);
        if (a.shard().equals(victim)) {
          owned++;
          assertTrue(!b.shard().equals(victim), "a key of removed " + victim + " still routes to it");
          assertTrue(b.epoch() > a.epoch(), "a moved key's epoch must grow");
        } else {
          assertEquals(a.shard(), b.shard(), "key 0x" + Keys.hex(k) + " was not on " + victim + " but moved");
          assertTrue(b.epoch() >= a.epoch(), "epochs never decrease");
        }
        if (!a.shard().equals(b.shard())) {
          moved++;
        }
      }
      assertEquals(owned, moved, "exactly the keys " + victim + " owned moved");
      assertEquals(before.shares().get(victim), Ring.movedFraction(before, after), 1e-9,
          "movedFraction of removing " + victim + " is its share");
    }
    // Partial removal: keys move only off the shard losing nodes.
    Ring after = Ring.of(before.withRemovedNodes("s3", 100), 2);
    Random rnd = new Random(78);
    for (int i = 0; i < KEYS; i++) {
      long k = rnd.nextLong();
      String a = before.route(k).shard();
      String b = after.route(k).shard();
      if (!a.equals(b)) {
        assertEquals("s3", a, "only keys of s3 may move when s3 loses vnodes; key " + k + " moved " + a + "->" + b);
      }
    }
  }
}
