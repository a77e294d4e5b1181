package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import java.util.ArrayList;
import java.util.List;

/**
 * What one migration moves, as a SQL condition on a row's key: the data path (capture, copy, replay,
 * verification, fence, cleanup) filters rows with {@link #contains} and nothing else, so every kind of
 * unit moves the same way (docs/migrator-design.md, "Move units"). The conditions are core's {@link KeySql}
 * (the same text the strategies' ownership predicates are built from); those on hash buckets and ring arcs
 * call the routing functions, which must be installed on the shard first ({@link RoutingFunctions}).
 *
 * <p>Why a condition evaluated by PostgreSQL rather than filtering in the migrator: the fence and the
 * capture trigger run inside the writer's transaction on the shard, where only SQL can decide; the copy
 * streams binary COPY from shard to shard without decoding rows, and verification compares checksums
 * computed next to the data. One condition used everywhere also means the copied, captured, fenced and
 * deleted sets of rows are the same set by construction.
 */
public sealed interface MoveUnit {
  /** SQL condition: the key in {@code ref} (a column of this kind, or NEW.col / OLD.col) is in the unit. */
  String contains(KeyKind kind, String ref);

  /**
   * A condition implied by {@link #contains} that a btree index on the key column can use to narrow the
   * scan (chunks then cover only it), or null when the unit is scattered over the key order.
   */
  String indexBound(KeyKind kind, String ref);

  /** Whether {@link #contains} calls the SQL routing functions. */
  boolean needsRouting();

  /** For messages and logs, e.g. {@code range 100..200}, {@code bucket 3 of 16}. */
  String describe(KeyType type);

  /**
   * How a fence's refusal names the unit ({@code FenceProtocol#message}): "range [5000, 25000)", "hash
   * bucket 3 of 8", "ring arc (a, b]", "directory entry 'k'", "3 directory entries", "region 'eu'".
   */
  String fenceWording(KeyKind kind);

  /**
   * The unit's share of the hash space where its condition hides from PostgreSQL's planner (a bucket, an
   * arc), by which a table's row estimate is scaled; 1 where the planner sees the condition itself.
   */
  default double hashShare() {
    return 1.0;
  }

  /** The structure of the unit that {@code Fences#relation} reasons about, or null (only buckets). */
  default String relationSpec() {
    return null;
  }

  /** A half-open range [start, end) of canonical key bytes (empty: unbounded on that side). */
  record Range(KeyRange range) implements MoveUnit {
    /** The integer bounds of an INT64 range (null: unbounded), for the range-only fence rows. */
    Long lo() {
      return range.unboundedBelow() ? null : Keys.decodeInt64(range.start());
    }

    Long hi() {
      return range.unboundedAbove() ? null : Keys.decodeInt64(range.end());
    }

    @Override
    public String contains(KeyKind kind, String ref) {
      return KeySql.range(kind, ref, range);
    }

    @Override
    public String indexBound(KeyKind kind, String ref) {
      return kind == KeyKind.TEXT ? null : contains(kind, ref);
    }

    @Override
    public boolean needsRouting() {
      return false;
    }

    @Override
    public String describe(KeyType type) {
      return "range " + range.format(type);
    }

    @Override
    public String fenceWording(KeyKind kind) {
      if (kind == KeyKind.INT64) {
        return Fences.rangeWording(lo(), hi());
      }
      return "range [" + (range.unboundedBelow() ? "-inf" : "0x" + Keys.hex(range.start())) + ", "
          + (range.unboundedAbove() ? "+inf" : "0x" + Keys.hex(range.end())) + ")";
    }
  }

  /** Bucket {@code bucket} of a hash keyspace with {@code buckets} buckets: xxHash64(key) mod N (unsigned). */
  record Bucket(int bucket, int buckets) implements MoveUnit {
    public Bucket {
      if (buckets < 1 || bucket < 0 || bucket >= buckets) {
        throw new IllegalArgumentException("bucket " + bucket + " of " + buckets);
      }
    }

    @Override
    public String contains(KeyKind kind, String ref) {
      return KeySql.buckets(kind, ref, List.of(bucket), buckets);
    }

    @Override
    public String indexBound(KeyKind kind, String ref) {
      return null;
    }

    @Override
    public boolean needsRouting() {
      return true;
    }

    @Override
    public String describe(KeyType type) {
      return "bucket " + bucket + " of " + buckets;
    }

    @Override
    public String fenceWording(KeyKind kind) {
      return "hash bucket " + bucket + " of " + buckets;
    }

    @Override
    public double hashShare() {
      return 1.0 / buckets;
    }

    @Override
    public String relationSpec() {
      return "bucket:" + bucket + ":" + buckets;
    }
  }

  /**
   * The arc (after, upTo] of ring positions, compared unsigned: the keys a ring node owns, whose position
   * is {@code upTo}, its predecessor's being {@code after}. {@code after == upTo} is the whole ring (a
   * ring of one node).
   */
  record Arc(long after, long upTo) implements MoveUnit {
    @Override
    public String contains(KeyKind kind, String ref) {
      return KeySql.arc(kind, ref, after, upTo);
    }

    @Override
    public String indexBound(KeyKind kind, String ref) {
      return null;
    }

    @Override
    public boolean needsRouting() {
      return after != upTo;
    }

    @Override
    public String describe(KeyType type) {
      return after == upTo ? "the whole ring" : "ring arc (" + Long.toUnsignedString(after, 16) + ", "
          + Long.toUnsignedString(upTo, 16) + "]";
    }

    @Override
    public String fenceWording(KeyKind kind) {
      return describe(null);
    }

    @Override
    public double hashShare() {
      if (after == upTo) {
        return 1.0;
      }
      double d = upTo - after;
      return (d > 0 ? d : d + 0x1p64) / 0x1p64;
    }
  }

  /** Explicit keys (canonical bytes) of a directory keyspace. */
  record Entries(List<byte[]> keys) implements MoveUnit {
    public Entries {
      if (keys.isEmpty()) {
        throw new IllegalArgumentException("no keys");
      }
      keys = List.copyOf(keys);
    }

    @Override
    public String contains(KeyKind kind, String ref) {
      return KeySql.in(kind, ref, keys);
    }

    @Override
    public String indexBound(KeyKind kind, String ref) {
      return contains(kind, ref);
    }

    @Override
    public boolean needsRouting() {
      return false;
    }

    @Override
    public String describe(KeyType type) {
      List<String> shown = new ArrayList<>();
      for (byte[] k : keys.subList(0, Math.min(3, keys.size()))) {
        shown.add(Keys.describe(type, k));
      }
      return keys.size() + (keys.size() == 1 ? " entry (" : " entries (") + String.join(", ", shown)
          + (keys.size() > 3 ? ", ..." : "") + ")";
    }

    @Override
    public String fenceWording(KeyKind kind) {
      return keys.size() == 1 ? "directory entry " + Keys.describe(kind == KeyKind.INT64 ? KeyType.KEY_TYPE_INT64
          : KeyType.KEY_TYPE_BYTES, keys.get(0)) : keys.size() + " directory entries";
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
   * One region of a geographic keyspace: the key that is its name (UTF-8), or for the default region every
   * key but the other listed regions' names (those listed when the move was planned: the admin API refuses
   * to change a keyspace's regions while one of them moves).
   */
  record Region(String region, boolean isDefault, List<String> otherRegions) implements MoveUnit {
    public Region {
      otherRegions = List.copyOf(otherRegions);
      if (!isDefault && !otherRegions.isEmpty()) {
        throw new IllegalArgumentException("only the default region excludes other regions");
      }
    }

    private static List<byte[]> names(List<String> regions) {
      return regions.stream().map(r -> r.getBytes(java.nio.charset.StandardCharsets.UTF_8)).toList();
    }

    @Override
    public String contains(KeyKind kind, String ref) {
      return isDefault ? KeySql.notIn(kind, ref, names(otherRegions)) : KeySql.in(kind, ref, names(List.of(region)));
    }

    @Override
    public String indexBound(KeyKind kind, String ref) {
      // One name is an index lookup; "all but these" is not a bound an index narrows.
      return isDefault ? null : contains(kind, ref);
    }

    @Override
    public boolean needsRouting() {
      return false;
    }

    @Override
    public String describe(KeyType type) {
      return "region '" + region + "'" + (isDefault ? " (the default: with every unlisted region)" : "");
    }

    @Override
    public String fenceWording(KeyKind kind) {
      return "region '" + region + "'";
    }
  }
}
