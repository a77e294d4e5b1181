package io.shardmap.core;

import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The canonical byte form of keys, the form every range bound, hash and stored entry uses.
 *
 * <p>An INT64 key is 8 bytes, big-endian, with the sign bit flipped, so unsigned byte order equals
 * numeric order. A BYTES key is its bytes (a string key is its UTF-8), 1 to {@value #MAX_KEY_BYTES}
 * long. The empty byte string is never a key; as a range bound it means "unbounded".
 */
public final class Keys {
  public static final int MAX_KEY_BYTES = 1024;
  private static final HexFormat HEX = HexFormat.of();

  private Keys() {}

  public static byte[] encodeInt64(long v) {
    long x = v ^ Long.MIN_VALUE;
    return new byte[] {
      (byte) (x >>> 56), (byte) (x >>> 48), (byte) (x >>> 40), (byte) (x >>> 32),
      (byte) (x >>> 24), (byte) (x >>> 16), (byte) (x >>> 8), (byte) x
    };
  }

  public static long decodeInt64(byte[] b) {
    if (b.length != 8) {
      throw new IllegalArgumentException("an INT64 key has 8 canonical bytes, got " + b.length);
    }
    long x = 0;
    for (int i = 0; i < 8; i++) {
      x = (x << 8) | (b[i] & 0xFF);
    }
    return x ^ Long.MIN_VALUE;
  }

  /**
   * Validates a key of an API request against the keyspace's key type and returns its canonical bytes.
   *
   * @param field the request field, named in the error (e.g. {@code "key"} or {@code "keys[3]"})
   */
  public static byte[] canonical(KeyType type, Key key, String field) {
    switch (key.getValueCase()) {
      case VALUE_NOT_SET:
        throw ShardmapException.invalid(field, "a key is required (set int_key, string_key or bytes_key)");
      case INT_KEY:
        if (type != KeyType.KEY_TYPE_INT64) {
          throw ShardmapException.invalid(field, "the keyspace has " + type.name()
              + " keys; int_key is only for KEY_TYPE_INT64 (use string_key or bytes_key)");
        }
        return encodeInt64(key.getIntKey());
      case STRING_KEY:
      case BYTES_KEY:
        if (type != KeyType.KEY_TYPE_BYTES) {
          throw ShardmapException.invalid(field,
              "the keyspace has KEY_TYPE_INT64 keys; use int_key");
        }
        byte[] b = key.getValueCase() == Key.ValueCase.STRING_KEY
            ? key.getStringKey().getBytes(StandardCharsets.UTF_8)
            : key.getBytesKey().toByteArray();
        return checkBytesKey(b, field);
      default:
        throw ShardmapException.invalid(field, "unknown key kind " + key.getValueCase());
    }
  }

  /** Checks the length rule of a BYTES key. */
  public static byte[] checkBytesKey(byte[] b, String field) {
    if (b.length == 0) {
      throw ShardmapException.invalid(field, "a key must not be empty");
    }
    if (b.length > MAX_KEY_BYTES) {
      throw ShardmapException.invalid(field, "a key must be at most " + MAX_KEY_BYTES + " bytes, got "
          + b.length);
    }
    return b;
  }

  /** The API form of a canonical key: int_key, or string_key when the bytes are printable UTF-8. */
  public static Key toProto(KeyType type, byte[] canonical) {
    if (type == KeyType.KEY_TYPE_INT64) {
      return Key.newBuilder().setIntKey(decodeInt64(canonical)).build();
    }
    String s = printableUtf8(canonical);
    return s != null
        ? Key.newBuilder().setStringKey(s).build()
        : Key.newBuilder().setBytesKey(ByteString.copyFrom(canonical)).build();
  }

  /** A key for error messages and logs: the number, the text, or 0x-hex. */
  public static String describe(KeyType type, byte[] canonical) {
    if (canonical.length == 0) {
      return "(unbounded)";
    }
    if (type == KeyType.KEY_TYPE_INT64) {
      return Long.toString(decodeInt64(canonical));
    }
    String s = printableUtf8(canonical);
    return s != null ? "'" + s + "'" : "0x" + HEX.formatHex(canonical);
  }

  public static int compare(byte[] a, byte[] b) {
    return Arrays.compareUnsigned(a, b);
  }

  /** Whether two lists of keys hold equal keys in the same order (byte[] has identity equality). */
  public static boolean equal(java.util.List<byte[]> a, java.util.List<byte[]> b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (!Arrays.equals(a.get(i), b.get(i))) {
        return false;
      }
    }
    return true;
  }

  /** A hash of a list of keys consistent with {@link #equal}. */
  public static int hash(java.util.List<byte[]> keys) {
    int h = 1;
    for (byte[] k : keys) {
      h = 31 * h + Arrays.hashCode(k);
    }
    return h;
  }

  public static String hex(byte[] b) {
    return HEX.formatHex(b);
  }

  public static byte[] fromHex(String s) {
    return HEX.parseHex(s);
  }

  private static String printableUtf8(byte[] b) {
    try {
      String s = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(b)).toString();
      for (int i = 0; i < s.length(); i++) {
        if (Character.isISOControl(s.charAt(i))) {
          return null;
        }
      }
      return s;
    } catch (CharacterCodingException e) {
      return null;
    }
  }
}
