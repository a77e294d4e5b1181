package io.shardmap.core;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashLayout;
import java.util.List;

/**
 * STRATEGY_HASH: bucket {@code xxHash64(key) mod N} (unsigned) routes the key. Immutable.
 */
public final class HashTable implements RoutingTable {
  /** More buckets than this would not fit the layout's etcd value comfortably. */
  public static final int MAX_BUCKETS = 4096;

  private final Route[] buckets;
  private final HashLayout layout;

  private HashTable(Route[] buckets, HashLayout layout) {
    this.buckets = buckets;
    this.layout = layout;
  }

  public static HashTable of(HashLayout layout, long modRevision) {
    int n = layout.getBucketsCount();
    if (n == 0 || n > MAX_BUCKETS) {
      throw ShardmapException.invalid("buckets", "a hash keyspace needs 1 to " + MAX_BUCKETS
          + " buckets, got " + n);
    }
    Route[] routes = new Route[n];
    for (int i = 0; i < n; i++) {
      BucketAssignment b = layout.getBuckets(i);
      routes[i] = new Route(b.getShard(), b.getEpoch(), null, modRevision);
    }
    return new HashTable(routes, layout);
  }

  public HashLayout layout() {
    return layout;
  }

  public int size() {
    return buckets.length;
  }

  public Route bucket(int i) {
    return buckets[i];
  }

  public static int bucketOf(long hash, int buckets) {
    return (int) Long.remainderUnsigned(hash, buckets);
  }

  public Route route(long intKey) {
    return buckets[bucketOf(XxHash64.hashInt64(intKey), buckets.length)];
  }

  /** Units are the buckets; bucket i is at position i, four bytes big-endian. */
  @Override
  public int unitCount() {
    return buckets.length;
  }

  @Override
  public int unitOf(long intKey) {
    return bucketOf(XxHash64.hashInt64(intKey), buckets.length);
  }

  @Override
  public int unitOf(byte[] canonicalKey) {
    return bucketOf(XxHash64.hash(canonicalKey), buckets.length);
  }

  @Override
  public Route unitRoute(int unit) {
    return buckets[unit];
  }

  @Override
  public byte[] unitStart(int unit) {
    return unit == 0 ? UnitSpace.START : UnitSpace.int32(unit);
  }

  @Override
  public byte[] unitEnd(int unit) {
    return unit + 1 < buckets.length ? UnitSpace.int32(unit + 1) : UnitSpace.END;
  }

  @Override
  public String describeUnit(int unit) {
    return "bucket " + unit + " of " + buckets.length;
  }

  public Route route(byte[] canonicalKey) {
    return buckets[bucketOf(XxHash64.hash(canonicalKey), buckets.length)];
  }

  /**
   * The exact fraction of the hash space whose owner differs between two bucket lists: the hash is
   * uniform, so it is the share of residues r in [0, lcm(N, M)) with owner(r mod N) != owner'(r mod M).
   */
  public static double movedFraction(List<String> before, List<String> after) {
    int n = before.size();
    int m = after.size();
    long lcm = (long) n / gcd(n, m) * m;
    long moved = 0;
    for (long r = 0; r < lcm; r++) {
      if (!before.get((int) (r % n)).equals(after.get((int) (r % m)))) {
        moved++;
      }
    }
    return (double) moved / lcm;
  }

  private static int gcd(int a, int b) {
    return b == 0 ? a : gcd(b, a % b);
  }

  @Override
  public void addOwners(java.util.Set<String> out) {
    layout.getBucketsList().forEach(b -> out.add(b.getShard()));
  }
}
