package io.shardmap.client;

import io.shardmap.core.Keys;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A key to route: an integer (for INT64 keyspaces) or a byte string (for BYTES keyspaces; a text key is
 * its UTF-8 bytes, and a geographic keyspace's key is the region name). Immutable; two keys are equal when
 * they route alike: the same integer, or the same bytes (so {@code of("acme")} equals
 * {@code of("acme".getBytes(UTF_8))}).
 *
 * <p>Byte-string keys are checked when made: 1 to {@value Keys#MAX_KEY_BYTES} bytes, else
 * {@link io.shardmap.core.ShardmapException} INVALID_ARGUMENT naming {@code key}. Whether the kind fits the
 * keyspace is checked when the key is used.
 */
public final class ShardKey {
  private final long intValue;
  /** Null for an integer key; never exposed (callers get copies). */
  private final byte[] bytes;

  private ShardKey(long intValue, byte[] bytes) {
    this.intValue = intValue;
    this.bytes = bytes;
  }

  /** An integer key, for INT64 keyspaces. */
  public static ShardKey of(long key) {
    return new ShardKey(key, null);
  }

  /** A text key (its UTF-8 bytes), for BYTES keyspaces; a region name for geographic keyspaces. */
  public static ShardKey of(String key) {
    if (key == null) {
      throw new IllegalArgumentException("key: must not be null");
    }
    return new ShardKey(0, Keys.checkBytesKey(key.getBytes(StandardCharsets.UTF_8), "key"));
  }

  /** A byte-string key (copied), for BYTES keyspaces. */
  public static ShardKey of(byte[] key) {
    if (key == null) {
      throw new IllegalArgumentException("key: must not be null");
    }
    return new ShardKey(0, Keys.checkBytesKey(key.clone(), "key"));
  }

  /** True for an integer key, false for a byte-string (or text) key. */
  public boolean isInteger() {
    return bytes == null;
  }

  /**
   * The integer of an integer key.
   *
   * @throws IllegalStateException for a byte-string key
   */
  public long intValue() {
    if (bytes != null) {
      throw new IllegalStateException("key " + this + " is a byte string, not an integer");
    }
    return intValue;
  }

  /**
   * A copy of the bytes of a byte-string key.
   *
   * @throws IllegalStateException for an integer key
   */
  public byte[] bytes() {
    if (bytes == null) {
      throw new IllegalStateException("key " + intValue + " is an integer, not a byte string");
    }
    return bytes.clone();
  }

  /**
   * The canonical byte form every range bound, hash and stored entry uses ({@link Keys}): 8 big-endian bytes
   * with the sign bit flipped for an integer, the bytes themselves otherwise. A fresh array.
   */
  public byte[] canonical() {
    return bytes == null ? Keys.encodeInt64(intValue) : bytes.clone();
  }

  /** The bytes without a copy, for the SDK's own read-only use. */
  byte[] bytesUnsafe() {
    return bytes;
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof ShardKey k)) {
      return false;
    }
    return bytes == null ? k.bytes == null && intValue == k.intValue : Arrays.equals(bytes, k.bytes);
  }

  @Override
  public int hashCode() {
    return bytes == null ? Long.hashCode(intValue) : 31 + Arrays.hashCode(bytes);
  }

  /** The number, the text in quotes when the bytes are printable UTF-8, else {@code 0x}-hex. */
  @Override
  public String toString() {
    return bytes == null ? Long.toString(intValue)
        : Keys.describe(io.shardmap.proto.v1.KeyType.KEY_TYPE_BYTES, bytes);
  }
}
