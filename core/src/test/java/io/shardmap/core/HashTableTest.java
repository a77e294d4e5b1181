package io.shardmap.core;

import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class HashTableTest {

  @Test
  void bucketOfIsUnsignedRemainder() {
    assertEquals(0, HashTable.bucketOf(0, 4));
    assertEquals(3, HashTable.bucketOf(7, 4));
    // -1 is 2^64 - 1 unsigned: 18446744073709551615 mod 10 = 5 (a signed % would give -1).
    assertEquals(5, HashTable.bucketOf(-1L, 10));
    assertEquals(8, HashTable.bucketOf(Long.MIN_VALUE, 10), "2^63 mod 10 = 8");
    Random rnd = new Random(2);
    for (int i = 0; i < 10_000; i++) {
      long h = rnd.nextLong();
      int n = 1 + rnd.nextInt(HashTable.MAX_BUCKETS);
      int b = HashTable.bucketOf(h, n);
      assertTrue(b >= 0 && b < n, "bucketOf(" + h + ", " + n + ") = " + b);
      assertEquals(new java.math.BigInteger(Long.toUnsignedString(h)).mod(java.math.BigInteger.valueOf(n)).intValue(),
          b, "bucketOf(" + h + ", " + n + ")");
    }
  }

  @Test
  void routesByHashModN() {
    HashTable t = HashTable.of(TestData.hash("a", "b", "c"), 42);
    assertEquals(3, t.size());
    Random rnd = new Random(4);
    for (int i = 0; i < 10_000; i++) {
      long k = rnd.nextLong();
      Route r = t.route(k);
      assertSame(t.bucket(HashTable.bucketOf(XxHash64.hashInt64(k), 3)), r, "route(" + k + ")");
      assertSame(r, t.route(Keys.encodeInt64(k)), "route(long) vs route(bytes) for " + k);
      assertEquals(42, r.modRevision());
    }
    byte[] key = "user-17".getBytes(java.nio.charset.StandardCharsets.UTF_8);
    assertSame(t.bucket(HashTable.bucketOf(XxHash64.hash(key), 3)), t.route(key));
  }

  @Test
  void bucketCountLimits() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> HashTable.of(HashLayout.getDefaultInstance(), 1), "buckets:", "got 0");
    HashLayout.Builder big = HashLayout.newBuilder();
    for (int i = 0; i <= HashTable.MAX_BUCKETS; i++) {
      big.addBuckets(BucketAssignment.newBuilder().setShard("s").setEpoch(1));
    }
    assertError(ErrorCode.INVALID_ARGUMENT, () -> HashTable.of(big.build(), 1), "buckets:", "4097");
    big.removeBuckets(0);
    assertEquals(HashTable.MAX_BUCKETS, HashTable.of(big.build(), 1).size());
  }

  @Test
  void movedFractionExactSmallCases() {
    assertEquals(0.0, HashTable.movedFraction(List.of("a", "b"), List.of("a", "b")), "identical lists");
    assertEquals(0.0, HashTable.movedFraction(List.of("a", "b", "c", "d"), List.of("a", "b", "c", "d")));
    // [a,b] -> [a,b,c]: residues mod 6: 0 a/a, 1 b/b, 2 a/c, 3 b/a, 4 a/b, 5 b/c -> 4 of 6 move.
    assertEquals(4.0 / 6, HashTable.movedFraction(List.of("a", "b"), List.of("a", "b", "c")), 1e-12);
    assertEquals(1.0, HashTable.movedFraction(List.of("a", "b"), List.of("b", "a")), "swapped owners");
    assertEquals(0.25, HashTable.movedFraction(List.of("a", "b", "c", "d"), List.of("a", "b", "c", "e")),
        "reassigning one of four buckets moves 1/4");
    assertEquals(0.0, HashTable.movedFraction(List.of("a", "b"), List.of("a", "b", "a", "b")),
        "doubling the list keeps every owner");
    assertEquals(0.0, HashTable.movedFraction(List.of("a"), List.of("a", "a", "a")));
    // [a,b,c,d] -> [a,b,c,d,e]: lcm 20; owners agree only where r mod 4 == r mod 5, i.e. r in 0..3.
    assertEquals(16.0 / 20, HashTable.movedFraction(List.of("a", "b", "c", "d"), List.of("a", "b", "c", "d", "e")),
        1e-12);
  }

  @Test
  void movedFractionMatchesMeasuredKeys() {
    List<String> before = List.of("a", "b", "c", "d");
    List<String> after = List.of("a", "b", "c", "d", "e", "a");
    HashTable t1 = HashTable.of(TestData.hash(before.toArray(new String[0])), 1);
    HashTable t2 = HashTable.of(TestData.hash(after.toArray(new String[0])), 2);
    Random rnd = new Random(8);
    int moved = 0;
    int n = 100_000;
    for (int i = 0; i < n; i++) {
      long k = rnd.nextLong();
      if (!t1.route(k).shard().equals(t2.route(k).shard())) {
        moved++;
      }
    }
    double exact = HashTable.movedFraction(before, after);
    assertEquals(exact, (double) moved / n, 0.01, "measured moved fraction vs movedFraction()");
  }

  // ------------------------------------------------------------------ acceptance: distribution of hash mod N

  @Test
  void hashModNDistributesInt64AndBytesKeysWithin3Percent() {
    for (int buckets : new int[] {4, 8}) {
      String[] shards = new String[buckets];
      for (int i = 0; i < buckets; i++) {
        shards[i] = "s" + (i + 1);
      }
      HashTable t = HashTable.of(TestData.hash(shards), 1);
      int n = 100_000;
      double expected = (double) n / buckets;
      Random rnd = new Random(1000 + buckets);
      int[] intCounts = new int[buckets];
      int[] byteCounts = new int[buckets];
      for (int i = 0; i < n; i++) {
        intCounts[index(t.route(rnd.nextLong()).shard())]++;
        byteCounts[index(t.route(TestData.randomBytes(rnd, 16)).shard())]++;
      }
      List<String> report = new ArrayList<>();
      for (int b = 0; b < buckets; b++) {
        double devInt = Math.abs(intCounts[b] - expected) / expected;
        double devBytes = Math.abs(byteCounts[b] - expected) / expected;
        report.add(String.format("s%d int=%d (%.2f%%) bytes=%d (%.2f%%)", b + 1, intCounts[b], devInt * 100,
            byteCounts[b], devBytes * 100));
        assertTrue(devInt <= 0.03, buckets + " buckets, INT64 keys: shard s" + (b + 1) + " got " + intCounts[b]
            + ", more than 3% from " + expected);
        assertTrue(devBytes <= 0.03, buckets + " buckets, 16-byte keys: shard s" + (b + 1) + " got " + byteCounts[b]
            + ", more than 3% from " + expected);
      }
      System.out.println("[hash mod " + buckets + "] " + String.join("; ", report));
    }
  }

  private static int index(String shard) {
    return Integer.parseInt(shard.substring(1)) - 1;
  }
}
