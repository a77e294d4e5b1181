package io.shardmap.core;

import io.shardmap.proto.v1.KeyType;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The unit a fence row covers (column {@code shardmap.fences.unit_id}), in a versioned text form that the
 * migrator writes and the client SDK reads, so that a reader can tell which keys a fence covers without
 * evaluating the fence's SQL condition.
 *
 * <p><b>Format, version 1</b> (colon-separated; hex is lower case, of canonical key bytes or UTF-8):
 * <ul>
 *   <li>{@code v1:int64:<lo>:<hi>} an INT64 range [lo, hi) in decimal, either side empty when unbounded;
 *   <li>{@code v1:range:<start hex>:<end hex>} a range [start, end) of canonical key bytes (BYTES keys),
 *       either side empty when unbounded;
 *   <li>{@code v1:bucket:<b>:<n>} hash bucket b of n;
 *   <li>{@code v1:arc:<after>:<upTo>} the ring arc (after, upTo] of hash positions, unsigned, 16 hex digits
 *       each; after = upTo is the whole ring;
 *   <li>{@code v1:entries:<hex>,<hex>,...} directory entries (their canonical keys);
 *   <li>{@code v1:region:<hex name>} one listed region of a geographic keyspace;
 *       {@code v1:default-region:<hex name>:<hex other>,...} the default region: every name but the other
 *       regions listed when the move was planned;
 *   <li>{@code v1:keyspace} the whole keyspace.
 * </ul>
 * A meaning, once written, never changes; a new kind of unit gets a new tag, a new meaning a new version.
 * A reader that meets a code it cannot read must assume the whole keyspace ({@link #decode} fails, with
 * the reason, so that it can say so).
 *
 * <p><b>What a reader asks</b> ({@link #routedAtOrBelow}): does a map route any key of this unit to shard S
 * at an epoch &lt;= E? With E a fence's epoch on S, a yes means the map predates the move that put the
 * fence (the map still sends some of the unit's keys to S under the route the fence retired), so a read of
 * S at that map may miss rows written elsewhere since; a no means every key of the unit is routed elsewhere,
 * or back to S above E (by the epoch rule of docs/data-model.md: a key's epoch never decreases and rises
 * whenever its owner changes, and a fence is put at the highest epoch the key had on S), so the fence is
 * irrelevant to a read at that map. The answer is exact for the unit's own structure and conservative
 * (yes) where it cannot be exact: a bucket or arc is taken to hold keys of every hash position in it.
 */
public sealed interface FenceUnit {
  /** The version prefix of every code this class writes. */
  String VERSION = "v1";

  /** The unit's code (see the class comment); {@link #decode} gives back an equal unit. */
  String encode();

  /** For messages: "range [0, 100)", "hash bucket 3 of 8", "ring arc (…, …]", "2 directory entries", … */
  String describe();

  /**
   * A route of {@code map} that sends some key of this unit to {@code shard} at an epoch &lt;= {@code epoch},
   * if there is one. A unit of another strategy than the map's (a keyspace deleted and created again under
   * the same name) is taken as the whole keyspace. Throws ShardmapException FAILED_PRECONDITION for a
   * directory map held without its entries, as routing through it does.
   */
  default Optional<Route> routedAtOrBelow(KeyspaceMap map, String shard, long epoch) {
    RoutingTable t = map.table();
    List<Route> candidates = new ArrayList<>();
    if (!candidatesIn(t, candidates)) {
      wholeKeyspace(t, candidates);
    }
    for (Route r : candidates) {
      if (r != null && r.shard().equals(shard) && r.epoch() <= epoch) {
        return Optional.of(r);
      }
    }
    return Optional.empty();
  }

  /**
   * Adds to {@code out} every route of {@code table} that may route a key of this unit (more is allowed,
   * never fewer); false when the table is of a strategy this unit does not belong to.
   */
  boolean candidatesIn(RoutingTable table, List<Route> out);

  /** Parses a code; IllegalArgumentException naming what is wrong (an unknown version or kind included). */
  static FenceUnit decode(String code) {
    if (code == null) {
      throw new IllegalArgumentException("no unit code");
    }
    String[] f = code.split(":", -1);
    if (f.length < 2 || !f[0].equals(VERSION)) {
      throw new IllegalArgumentException("unit code '" + code + "' is not of version " + VERSION
          + " (written by a newer migrator?)");
    }
    try {
      switch (f[1]) {
        case "int64" -> {
          need(code, f, 4);
          return Range.int64(f[2].isEmpty() ? null : Long.parseLong(f[2]), f[3].isEmpty() ? null : Long.parseLong(f[3]));
        }
        case "range" -> {
          need(code, f, 4);
          return Range.bytes(KeyRange.of(Keys.fromHex(f[2]), Keys.fromHex(f[3]), "unit_id"));
        }
        case "bucket" -> {
          need(code, f, 4);
          return new Bucket(Integer.parseInt(f[2]), Integer.parseInt(f[3]));
        }
        case "arc" -> {
          need(code, f, 4);
          return new Arc(Long.parseUnsignedLong(f[2], 16), Long.parseUnsignedLong(f[3], 16));
        }
        case "entries" -> {
          need(code, f, 3);
          List<byte[]> keys = new ArrayList<>();
          for (String k : f[2].split(",", -1)) {
            keys.add(Keys.fromHex(k));
          }
          return new Entries(keys);
        }
        case "region" -> {
          need(code, f, 3);
          return new Region(utf8(f[2]), false, List.of());
        }
        case "default-region" -> {
          need(code, f, 4);
          List<String> others = new ArrayList<>();
          if (!f[3].isEmpty()) {
            for (String o : f[3].split(",", -1)) {
              others.add(utf8(o));
            }
          }
          return new Region(utf8(f[2]), true, others);
        }
        case "keyspace" -> {
          need(code, f, 2);
          return new Keyspace();
        }
        default -> throw new IllegalArgumentException("unit code '" + code + "' has unknown kind '" + f[1] + "'");
      }
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("unit code '" + code + "': bad number (" + e.getMessage() + ")", e);
    } catch (ShardmapException e) {
      throw new IllegalArgumentException("unit code '" + code + "': " + e.getMessage(), e);
    }
  }

  private static void need(String code, String[] f, int parts) {
    if (f.length != parts) {
      throw new IllegalArgumentException("unit code '" + code + "' has " + f.length + " fields, kind '" + f[1]
          + "' has " + parts);
    }
  }

  private static String utf8(String hex) {
    return new String(Keys.fromHex(hex), StandardCharsets.UTF_8);
  }

  private static String hexUtf8(String s) {
    return Keys.hex(s.getBytes(StandardCharsets.UTF_8));
  }

  /** Every route of the table (the unit is taken as the whole keyspace). */
  private static void wholeKeyspace(RoutingTable t, List<Route> out) {
    new Keyspace().candidatesIn(t, out);
  }

  /**
   * A range [start, end) of canonical keys; {@code int64} only says how to print and encode it (INT64 keys'
   * canonical bytes order like the numbers).
   */
  record Range(KeyRange range, boolean int64) implements FenceUnit {
    /** [lo, hi) of INT64 keys, null for unbounded. */
    public static Range int64(Long lo, Long hi) {
      if (lo != null && hi != null && lo >= hi) {
        throw new IllegalArgumentException("range [" + lo + ", " + hi + ") is empty");
      }
      return new Range(KeyRange.of(lo == null ? new byte[0] : Keys.encodeInt64(lo),
          hi == null ? new byte[0] : Keys.encodeInt64(hi), "range"), true);
    }

    public static Range bytes(KeyRange range) {
      return new Range(range, false);
    }

    private Long lo() {
      return range.unboundedBelow() ? null : Keys.decodeInt64(range.start());
    }

    private Long hi() {
      return range.unboundedAbove() ? null : Keys.decodeInt64(range.end());
    }

    @Override
    public String encode() {
      if (int64) {
        return VERSION + ":int64:" + (lo() == null ? "" : lo()) + ":" + (hi() == null ? "" : hi());
      }
      return VERSION + ":range:" + Keys.hex(range.start()) + ":" + Keys.hex(range.end());
    }

    @Override
    public String describe() {
      if (int64) {
        return "range [" + (lo() == null ? "-inf" : lo()) + ", " + (hi() == null ? "+inf" : hi()) + ")";
      }
      return "range [" + (range.unboundedBelow() ? "-inf" : Keys.describe(KeyType.KEY_TYPE_BYTES, range.start()))
          + ", " + (range.unboundedAbove() ? "+inf" : Keys.describe(KeyType.KEY_TYPE_BYTES, range.end())) + ")";
    }

    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (!(table instanceof RangeTable t)) {
        return false;
      }
      // Ranges split or merged since the fence: whichever ranges of today's map overlap it.
      for (Route r : t.routes()) {
        if (overlaps(range, r.range())) {
          out.add(r);
        }
      }
      return true;
    }

    static boolean overlaps(KeyRange a, KeyRange b) {
      boolean aBeforeB = !a.unboundedAbove() && !b.unboundedBelow() && Keys.compare(a.endRef(), b.startRef()) <= 0;
      boolean bBeforeA = !b.unboundedAbove() && !a.unboundedBelow() && Keys.compare(b.endRef(), a.startRef()) <= 0;
      return !aBeforeB && !bBeforeA;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Range r && r.int64 == int64 && r.range.equals(range);
    }

    @Override
    public int hashCode() {
      return range.hashCode() * 31 + Boolean.hashCode(int64);
    }
  }

  /** Bucket {@code bucket} of {@code buckets}: the keys whose xxHash64 mod buckets (unsigned) is bucket. */
  record Bucket(int bucket, int buckets) implements FenceUnit {
    public Bucket {
      if (buckets < 1 || bucket < 0 || bucket >= buckets) {
        throw new IllegalArgumentException("bucket " + bucket + " of " + buckets);
      }
    }

    @Override
    public String encode() {
      return VERSION + ":bucket:" + bucket + ":" + buckets;
    }

    @Override
    public String describe() {
      return "hash bucket " + bucket + " of " + buckets;
    }

    /**
     * After a reshard to m buckets: bucket c of m shares hash values with bucket b of n iff b ≡ c (mod
     * gcd(n, m)) (Chinese remainder theorem; lcm(n, m) is far below 2^64, so such hashes exist).
     */
    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (!(table instanceof HashTable t)) {
        return false;
      }
      int m = t.size();
      int g = gcd(buckets, m);
      for (int c = bucket % g; c < m; c += g) {
        out.add(t.bucket(c));
      }
      return true;
    }

    private static int gcd(int a, int b) {
      return b == 0 ? a : gcd(b, a % b);
    }
  }

  /** The ring arc (after, upTo] of hash positions, compared unsigned; after == upTo is the whole ring. */
  record Arc(long after, long upTo) implements FenceUnit {
    @Override
    public String encode() {
      return VERSION + ":arc:" + hex16(after) + ":" + hex16(upTo);
    }

    private static String hex16(long v) {
      String s = Long.toUnsignedString(v, 16);
      return "0".repeat(16 - s.length()) + s;
    }

    @Override
    public String describe() {
      return after == upTo ? "the whole ring" : "ring arc (" + hex16(after) + ", " + hex16(upTo) + "]";
    }

    /** Every node of today's ring whose arc (its predecessor's position, its position] meets this one. */
    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (!(table instanceof Ring ring)) {
        return false;
      }
      int n = ring.size();
      for (int i = 0; i < n; i++) {
        long prev = ring.positionOf(i == 0 ? n - 1 : i - 1);
        long pos = ring.positionOf(i);
        if (n == 1 || intersect(after, upTo, prev, pos)) {
          out.add(ring.routeOf(i));
        }
      }
      return true;
    }

    /** Whether the circular arcs (a1, b1] and (a2, b2] share a position (a == b: the whole ring). */
    static boolean intersect(long a1, long b1, long a2, long b2) {
      for (long[] x : closed(a1, b1)) {
        for (long[] y : closed(a2, b2)) {
          if (Long.compareUnsigned(Math.max(x[0] ^ Long.MIN_VALUE, y[0] ^ Long.MIN_VALUE) ^ Long.MIN_VALUE,
              Math.min(x[1] ^ Long.MIN_VALUE, y[1] ^ Long.MIN_VALUE) ^ Long.MIN_VALUE) <= 0) {
            return true;
          }
        }
      }
      return false;
    }

    /** The arc (a, b] as at most two closed unsigned intervals [lo, hi]. */
    private static List<long[]> closed(long a, long b) {
      if (a == b) {
        return List.of(new long[] {0, -1L});
      }
      if (Long.compareUnsigned(a, b) < 0) {
        return List.of(new long[] {a + 1, b});
      }
      List<long[]> out = new ArrayList<>(2);
      if (a != -1L) {
        out.add(new long[] {a + 1, -1L});
      }
      out.add(new long[] {0, b});
      return out;
    }
  }

  /** Directory entries, by canonical key: each routed by its entry in today's map, or by the fallback. */
  record Entries(List<byte[]> keys) implements FenceUnit {
    public Entries {
      if (keys.isEmpty()) {
        throw new IllegalArgumentException("no keys");
      }
      keys = List.copyOf(keys);
    }

    @Override
    public String encode() {
      List<String> hex = new ArrayList<>();
      keys.forEach(k -> hex.add(Keys.hex(k)));
      return VERSION + ":entries:" + String.join(",", hex);
    }

    @Override
    public String describe() {
      return keys.size() == 1 ? "directory entry " + Keys.describe(KeyType.KEY_TYPE_BYTES, keys.get(0))
          : keys.size() + " directory entries";
    }

    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (!(table instanceof DirectoryTable t)) {
        return false;
      }
      for (byte[] k : keys) {
        out.add(t.route(k));
      }
      return true;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Entries e && Keys.equal(keys, e.keys);
    }

    @Override
    public int hashCode() {
      return Keys.hash(keys);
    }
  }

  /**
   * A region of a geographic keyspace: the key that is its name, or for the default region every name but
   * {@code otherRegions} (the other regions listed when the move was planned).
   */
  record Region(String region, boolean isDefault, List<String> otherRegions) implements FenceUnit {
    public Region {
      otherRegions = List.copyOf(otherRegions);
      if (!isDefault && !otherRegions.isEmpty()) {
        throw new IllegalArgumentException("only the default region excludes other regions");
      }
    }

    @Override
    public String encode() {
      if (!isDefault) {
        return VERSION + ":region:" + hexUtf8(region);
      }
      List<String> hex = new ArrayList<>();
      otherRegions.forEach(o -> hex.add(hexUtf8(o)));
      return VERSION + ":default-region:" + hexUtf8(region) + ":" + String.join(",", hex);
    }

    @Override
    public String describe() {
      return "region '" + region + "'" + (isDefault ? " (the default, with every unlisted name)" : "");
    }

    /**
     * A listed region: its route today (the default's, if it is no longer listed). The default region: the
     * default route today (unlisted names are infinitely many, so some are not among the other regions),
     * and every region listed today that was not one of the other regions then.
     */
    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (!(table instanceof GeoTable t)) {
        return false;
      }
      if (!isDefault) {
        out.add(t.route(region));
        return true;
      }
      out.add(t.route(t.layout().getDefaultRegion()));
      Set<String> others = new HashSet<>(otherRegions);
      for (Map.Entry<String, Route> e : t.regions().entrySet()) {
        if (!others.contains(e.getKey())) {
          out.add(e.getValue());
        }
      }
      return true;
    }
  }

  /** The whole keyspace: every route of the map. */
  record Keyspace() implements FenceUnit {
    @Override
    public String encode() {
      return VERSION + ":keyspace";
    }

    @Override
    public String describe() {
      return "the whole keyspace";
    }

    @Override
    public boolean candidatesIn(RoutingTable table, List<Route> out) {
      if (table instanceof RangeTable t) {
        out.addAll(t.routes());
      } else if (table instanceof HashTable t) {
        for (int i = 0; i < t.size(); i++) {
          out.add(t.bucket(i));
        }
      } else if (table instanceof Ring t) {
        for (int i = 0; i < t.size(); i++) {
          out.add(t.routeOf(i));
        }
      } else if (table instanceof DirectoryTable t) {
        if (!t.entriesHeld()) {
          throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this copy of the directory holds only its "
              + "layout, not its entries: which shards its entries route to is unknown");
        }
        t.forEach((k, r) -> out.add(r));
        out.add(t.fallback());
      } else if (table instanceof GeoTable t) {
        out.addAll(t.regions().values());
      } else {
        throw new IllegalArgumentException("unknown routing table " + table.getClass().getName());
      }
      return true;
    }
  }
}
