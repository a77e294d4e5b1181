package io.shardmap.client;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import java.util.Optional;

/**
 * A half-open key range {@code [start, end)} of a range keyspace, either side possibly unbounded.
 * Immutable; equal to another range with the same bounds of the same key kind.
 */
public final class KeyRangeView {
  private final KeyRange range;
  private final boolean integerKeys;

  KeyRangeView(KeyRange range, boolean integerKeys) {
    this.range = range;
    this.integerKeys = integerKeys;
  }

  /** The first key in the range; empty when unbounded below. */
  public Optional<ShardKey> start() {
    return bound(range.start());
  }

  /** The first key after the range; empty when unbounded above. */
  public Optional<ShardKey> end() {
    return bound(range.end());
  }

  /** Whether the key falls in the range (false for a key of the other kind). */
  public boolean contains(ShardKey key) {
    return key.isInteger() == integerKeys && range.contains(key.canonical());
  }

  private Optional<ShardKey> bound(byte[] canonical) {
    if (canonical.length == 0) {
      return Optional.empty();
    }
    return Optional.of(integerKeys ? ShardKey.of(Keys.decodeInt64(canonical)) : ShardKey.of(canonical));
  }

  /** The core range, for this package. */
  KeyRange core() {
    return range;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof KeyRangeView v && v.integerKeys == integerKeys && v.range.equals(range);
  }

  @Override
  public int hashCode() {
    return range.hashCode() * 2 + (integerKeys ? 1 : 0);
  }

  /** In the keyspace spec syntax: {@code start..end}, a side empty when unbounded ({@code ..0}, {@code 1000..}). */
  @Override
  public String toString() {
    return range.format(integerKeys ? KeyType.KEY_TYPE_INT64 : KeyType.KEY_TYPE_BYTES);
  }
}
