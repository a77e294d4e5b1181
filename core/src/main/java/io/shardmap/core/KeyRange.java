package io.shardmap.core;

import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A half-open range [start, end) of canonical keys (see {@link Keys}). An empty {@code start} is the
 * smallest key, an empty {@code end} lies past the largest; {@link #FULL} covers everything. The one
 * range type of Shardmap, with the one parser of range specs ({@link #parse}).
 */
public final class KeyRange {
  private static final byte[] EMPTY = new byte[0];
  public static final KeyRange FULL = new KeyRange(EMPTY, EMPTY);

  private final byte[] start;
  private final byte[] end;

  private KeyRange(byte[] start, byte[] end) {
    this.start = start;
    this.end = end;
  }

  /** A range; fails with INVALID_ARGUMENT (naming {@code field}) unless start &lt; end. */
  public static KeyRange of(byte[] start, byte[] end, String field) {
    if (start.length > 0 && end.length > 0 && Keys.compare(start, end) >= 0) {
      throw ShardmapException.invalid(field, "range start must be below its end (ranges are [start, end))");
    }
    return new KeyRange(start.clone(), end.clone());
  }

  /** Internal constructor for arrays nobody else holds. */
  static KeyRange wrap(byte[] start, byte[] end) {
    return new KeyRange(start, end);
  }

  public byte[] start() {
    return start.clone();
  }

  public byte[] end() {
    return end.clone();
  }

  byte[] startRef() {
    return start;
  }

  byte[] endRef() {
    return end;
  }

  public boolean unboundedBelow() {
    return start.length == 0;
  }

  public boolean unboundedAbove() {
    return end.length == 0;
  }

  public boolean contains(byte[] key) {
    return (start.length == 0 || Keys.compare(key, start) >= 0)
        && (end.length == 0 || Keys.compare(key, end) < 0);
  }

  /**
   * Parses a range spec {@code start..end}; either side may be empty for unbounded ({@code ".."} is the
   * whole space). INT64 bounds are decimal numbers ({@code "-100..250"}); BYTES bounds are {@code 0x}-hex
   * or text, optionally in single quotes ({@code "0x40..'m'"}).
   */
  public static KeyRange parse(KeyType type, String spec, String field) {
    int sep = spec.indexOf("..");
    if (sep < 0 || spec.indexOf("..", sep + 2) >= 0) {
      throw ShardmapException.invalid(field, "a range spec is start..end (either side may be empty), got '"
          + spec + "'");
    }
    byte[] s = parseBound(type, spec.substring(0, sep).trim(), field);
    byte[] e = parseBound(type, spec.substring(sep + 2).trim(), field);
    return of(s, e, field);
  }

  /** Parses one key in spec syntax (a range bound, without the {@code ..}). */
  public static byte[] parseKey(KeyType type, String text, String field) {
    byte[] b = parseBound(type, text.trim(), field);
    if (b.length == 0) {
      throw ShardmapException.invalid(field, "a key must not be empty");
    }
    return b;
  }

  private static byte[] parseBound(KeyType type, String s, String field) {
    if (s.isEmpty()) {
      return EMPTY;
    }
    if (type == KeyType.KEY_TYPE_INT64) {
      try {
        return Keys.encodeInt64(Long.parseLong(s));
      } catch (NumberFormatException e) {
        throw ShardmapException.invalid(field, "'" + s + "' is not a 64-bit integer");
      }
    }
    if (s.startsWith("0x") || s.startsWith("0X")) {
      try {
        return Keys.checkBytesKey(Keys.fromHex(s.substring(2)), field);
      } catch (IllegalArgumentException e) {
        throw ShardmapException.invalid(field, "'" + s + "' is not valid hex");
      }
    }
    if (s.length() >= 2 && s.startsWith("'") && s.endsWith("'")) {
      s = s.substring(1, s.length() - 1);
    }
    return Keys.checkBytesKey(s.getBytes(StandardCharsets.UTF_8), field);
  }

  /** Formats in the syntax {@link #parse} reads. */
  public String format(KeyType type) {
    return formatBound(type, start) + ".." + formatBound(type, end);
  }

  private static String formatBound(KeyType type, byte[] b) {
    if (b.length == 0) {
      return "";
    }
    if (type == KeyType.KEY_TYPE_INT64) {
      return Long.toString(Keys.decodeInt64(b));
    }
    return "0x" + Keys.hex(b);
  }

  public io.shardmap.proto.v1.KeyRange toProto(KeyType type) {
    io.shardmap.proto.v1.KeyRange.Builder b = io.shardmap.proto.v1.KeyRange.newBuilder();
    if (start.length > 0) {
      b.setStart(Keys.toProto(type, start));
    }
    if (end.length > 0) {
      b.setEnd(Keys.toProto(type, end));
    }
    return b.build();
  }

  public static KeyRange fromProto(KeyType type, io.shardmap.proto.v1.KeyRange r, String field) {
    byte[] s = r.hasStart() && r.getStart().getValueCase() != Key.ValueCase.VALUE_NOT_SET
        ? Keys.canonical(type, r.getStart(), field + ".start") : EMPTY;
    byte[] e = r.hasEnd() && r.getEnd().getValueCase() != Key.ValueCase.VALUE_NOT_SET
        ? Keys.canonical(type, r.getEnd(), field + ".end") : EMPTY;
    return of(s, e, field);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof KeyRange r && Arrays.equals(start, r.start) && Arrays.equals(end, r.end);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(start) * 31 + Arrays.hashCode(end);
  }

  @Override
  public String toString() {
    return "[" + (start.length == 0 ? "-inf" : "0x" + Keys.hex(start)) + ", "
        + (end.length == 0 ? "+inf" : "0x" + Keys.hex(end)) + ")";
  }
}
