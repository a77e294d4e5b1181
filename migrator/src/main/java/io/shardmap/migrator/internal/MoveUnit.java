package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.SqlRouting;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What one migration moves, as a SQL condition on a row's key: the data path (capture, copy, replay,
 * verification, fence, cleanup) filters rows with {@link #contains} and nothing else, so every kind of
 * unit moves the same way (docs/migrator-design.md, "Move units"). Conditions on hash buckets and ring
 * arcs call the functions of {@link SqlRouting}, which must be installed on the shard first.
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
      return switch (kind) {
        case INT64 -> RangeTableMove.inRange(ref, lo(), hi());
        // bytea orders like canonical bytes (unsigned, shorter first), so the column's index serves it.
        case BYTEA -> bounds(ref);
        // A text column orders by its collation, not by UTF-8 bytes: compare the bytes themselves.
        case TEXT -> bounds(kind.canonicalSql(ref));
      };
    }

    private String bounds(String bytes) {
      List<String> c = new ArrayList<>();
      if (!range.unboundedBelow()) {
        c.add(bytes + " >= " + KeyKind.bytea(range.start()));
      }
      if (!range.unboundedAbove()) {
        c.add(bytes + " < " + KeyKind.bytea(range.end()));
      }
      return c.isEmpty() ? "true" : "(" + String.join(" AND ", c) + ")";
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
      return SqlRouting.bucket(kind.hashSql(ref), buckets) + " = " + bucket;
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
  }

  /**
   * The arc (after, upTo] of ring positions, compared unsigned: the keys a ring node owns, whose position
   * is {@code upTo}, its predecessor's being {@code after}. {@code after == upTo} is the whole ring (a
   * ring of one node).
   */
  record Arc(long after, long upTo) implements MoveUnit {
    @Override
    public String contains(KeyKind kind, String ref) {
      if (after == upTo) {
        return "true";
      }
      // Flipping the sign bit makes signed order the unsigned ring order. The hash is referenced once
      // (a range containment), so it is computed once per row.
      long a = after ^ Long.MIN_VALUE;
      long u = upTo ^ Long.MIN_VALUE;
      String pos = "(" + kind.hashSql(ref) + " # (" + Long.MIN_VALUE + ")::bigint)";
      if (a < u) {
        return "(" + range(a, u) + " @> " + pos + ")";
      }
      // Wraps past the top: everything except (upTo, after].
      return "(NOT " + range(u, a) + " @> " + pos + ")";
    }

    /** SQL: the int8range (x, y] (x &lt; y). */
    private static String range(long x, long y) {
      return "int8range(" + (x + 1) + ", " + (y == Long.MAX_VALUE ? "NULL" : Long.toString(y + 1)) + ")";
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
      StringBuilder b = new StringBuilder(ref).append(" IN (");
      for (int i = 0; i < keys.size(); i++) {
        b.append(i == 0 ? "" : ", ").append(kind.literal(keys.get(i)));
      }
      return b.append(')').toString();
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
    public boolean equals(Object o) {
      if (!(o instanceof Entries e) || e.keys.size() != keys.size()) {
        return false;
      }
      for (int i = 0; i < keys.size(); i++) {
        if (!Arrays.equals(keys.get(i), e.keys.get(i))) {
          return false;
        }
      }
      return true;
    }

    @Override
    public int hashCode() {
      int h = 1;
      for (byte[] k : keys) {
        h = 31 * h + Arrays.hashCode(k);
      }
      return h;
    }
  }
}
