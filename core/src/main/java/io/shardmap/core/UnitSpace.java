package io.shardmap.core;

import java.util.Arrays;

/**
 * Positions in a keyspace's unit space: where its load units ({@link RoutingTable#unitCount()}) lie, so that
 * a count made against one version of a map can be laid over another (a client whose map is a split
 * behind, a history whose ranges have since changed). Positions are byte strings compared unsigned:
 *
 * <ul>
 *   <li>range: the canonical keys ({@link Keys}); a range [a, b) is the positions [a, b);
 *   <li>hash: bucket numbers, four bytes big-endian;
 *   <li>consistent hash: xxHash64 values, eight bytes big-endian (an arc (p, q] is [p + 1, q + 1));
 *   <li>directory: {@link #DIRECTORY_GROUPS} groups of keys by hash, four bytes big-endian;
 *   <li>geographic: the region names' UTF-8 bytes (region r is [r, r + 0x00)).
 * </ul>
 *
 * An empty array is the start of the space as a start and its end as an end. Hash bucket numbers only
 * mean the same thing under one bucket count: a reader compares layout revisions before laying hash
 * positions of another layout over its own.
 */
public final class UnitSpace {
  /** A directory keyspace's load and size are counted per this many groups of its keys (by hash). */
  public static final int DIRECTORY_GROUPS = 1024;
  /** The start of the space, as a start. */
  public static final byte[] START = new byte[0];
  /** The end of the space, as an end. Never modified (every caller shares it). */
  public static final byte[] END = new byte[0];

  private UnitSpace() {}

  public static byte[] int32(int v) {
    return new byte[] {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v};
  }

  public static byte[] int64(long v) {
    byte[] b = new byte[8];
    for (int i = 7; i >= 0; i--) {
      b[i] = (byte) v;
      v >>>= 8;
    }
    return b;
  }

  /** Compares two starts (an empty array is the smallest). */
  public static int compareStarts(byte[] a, byte[] b) {
    return Arrays.compareUnsigned(a, b);
  }

  /** Compares two ends (an empty array is the largest). */
  public static int compareEnds(byte[] a, byte[] b) {
    if (a.length == 0 || b.length == 0) {
      return Boolean.compare(a.length == 0, b.length == 0);
    }
    return Arrays.compareUnsigned(a, b);
  }

  /** Whether the position {@code p} (a start) lies before the end {@code end}. */
  public static boolean before(byte[] p, byte[] end) {
    return end.length == 0 || Arrays.compareUnsigned(p, end) < 0;
  }

  /**
   * The unit of {@code table} whose positions hold {@code position}: the last unit starting at or before it.
   * Positions between units (past a region's name) belong to the unit before them.
   */
  public static int unitAt(RoutingTable table, byte[] position) {
    int lo = 0;
    int hi = table.unitCount() - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (Arrays.compareUnsigned(table.unitStart(mid), position) <= 0) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }
}
