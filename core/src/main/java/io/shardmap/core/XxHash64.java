package io.shardmap.core;

/**
 * xxHash64 with seed 0: the one hash function of the hash and consistent-hash strategies. It is part of
 * the data format (it decides which shard owns a key), so it must never change; any language can
 * reproduce it from the public xxHash spec. Keys are hashed in their canonical byte form (see
 * {@link Keys}); {@link #hashInt64} is the allocation-free equivalent for integer keys.
 */
public final class XxHash64 {
  // The spec's five primes, PRIME64_1 to PRIME64_5. Public because the SQL port of this
  // function (core.sql.SqlRouting) must use the very same constants; it takes them from here.
  public static final long PRIME64_1 = 0x9E3779B185EBCA87L;
  public static final long PRIME64_2 = 0xC2B2AE3D27D4EB4FL;
  public static final long PRIME64_3 = 0x165667B19E3779F9L;
  public static final long PRIME64_4 = 0x85EBCA77C2B2AE63L;
  public static final long PRIME64_5 = 0x27D4EB2F165667C5L;

  private XxHash64() {}

  /** xxHash64 of the 8 canonical bytes of an integer key, without allocating. */
  public static long hashInt64(long key) {
    // The canonical bytes are big-endian (key ^ MIN_VALUE); xxHash reads words little-endian.
    long word = Long.reverseBytes(key ^ Long.MIN_VALUE);
    long h = PRIME64_5 + 8;
    h ^= round(0, word);
    h = Long.rotateLeft(h, 27) * PRIME64_1 + PRIME64_4;
    return avalanche(h);
  }

  public static long hash(byte[] data) {
    return hash(data, 0, data.length);
  }

  public static long hash(byte[] b, int off, int len) {
    int end = off + len;
    long h;
    int p = off;
    if (len >= 32) {
      long v1 = PRIME64_1 + PRIME64_2;
      long v2 = PRIME64_2;
      long v3 = 0;
      long v4 = -PRIME64_1;
      int limit = end - 32;
      do {
        v1 = round(v1, readLongLe(b, p));
        v2 = round(v2, readLongLe(b, p + 8));
        v3 = round(v3, readLongLe(b, p + 16));
        v4 = round(v4, readLongLe(b, p + 24));
        p += 32;
      } while (p <= limit);
      h = Long.rotateLeft(v1, 1) + Long.rotateLeft(v2, 7) + Long.rotateLeft(v3, 12)
          + Long.rotateLeft(v4, 18);
      h = mergeRound(h, v1);
      h = mergeRound(h, v2);
      h = mergeRound(h, v3);
      h = mergeRound(h, v4);
    } else {
      h = PRIME64_5;
    }
    h += len;
    while (p + 8 <= end) {
      h ^= round(0, readLongLe(b, p));
      h = Long.rotateLeft(h, 27) * PRIME64_1 + PRIME64_4;
      p += 8;
    }
    if (p + 4 <= end) {
      h ^= (readIntLe(b, p) & 0xFFFFFFFFL) * PRIME64_1;
      h = Long.rotateLeft(h, 23) * PRIME64_2 + PRIME64_3;
      p += 4;
    }
    while (p < end) {
      h ^= (b[p] & 0xFFL) * PRIME64_5;
      h = Long.rotateLeft(h, 11) * PRIME64_1;
      p++;
    }
    return avalanche(h);
  }

  private static long round(long acc, long input) {
    acc += input * PRIME64_2;
    acc = Long.rotateLeft(acc, 31);
    return acc * PRIME64_1;
  }

  private static long mergeRound(long acc, long val) {
    acc ^= round(0, val);
    return acc * PRIME64_1 + PRIME64_4;
  }

  private static long avalanche(long h) {
    h ^= h >>> 33;
    h *= PRIME64_2;
    h ^= h >>> 29;
    h *= PRIME64_3;
    h ^= h >>> 32;
    return h;
  }

  private static long readLongLe(byte[] b, int i) {
    return (b[i] & 0xFFL) | (b[i + 1] & 0xFFL) << 8 | (b[i + 2] & 0xFFL) << 16
        | (b[i + 3] & 0xFFL) << 24 | (b[i + 4] & 0xFFL) << 32 | (b[i + 5] & 0xFFL) << 40
        | (b[i + 6] & 0xFFL) << 48 | (b[i + 7] & 0xFFL) << 56;
  }

  private static int readIntLe(byte[] b, int i) {
    return (b[i] & 0xFF) | (b[i + 1] & 0xFF) << 8 | (b[i + 2] & 0xFF) << 16 | (b[i + 3] & 0xFF) << 24;
  }
}
