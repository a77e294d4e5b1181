package io.shardmap.catalog;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Parser;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.KeyValue;

/** The one decoding of the protobuf records stored under {@link CatalogPaths}. */
public final class Records {
  private Records() {}

  /**
   * Decodes {@code kv}'s value with {@code parser}.
   *
   * @throws ShardmapException INTERNAL naming the key when the value is not such a message: a corrupt
   *     record is an operator's problem to find, and the key says where
   */
  public static <T> T decode(KeyValue kv, Parser<T> parser) {
    try {
      return parser.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd record " + kv.key() + " is not a valid "
          + "protobuf value", e);
    }
  }
}
