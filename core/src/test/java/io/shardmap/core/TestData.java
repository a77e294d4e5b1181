package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.function.Executable;

/** Shared builders and assertions of the core tests. */
final class TestData {
  static final KeyType INT64 = KeyType.KEY_TYPE_INT64;
  static final KeyType BYTES = KeyType.KEY_TYPE_BYTES;

  private TestData() {}

  /** A range route from a range spec such as {@code "-100..250"} or {@code "'m'.."}. */
  static Route range(KeyType type, String spec, String shard, long epoch) {
    return new Route(shard, epoch, KeyRange.parse(type, spec, "test"), 0);
  }

  static Route route(byte[] start, byte[] end, String shard, long epoch) {
    return new Route(shard, epoch, KeyRange.of(start, end, "test"), 0);
  }

  static RangeTable intTable(Route... routes) {
    return RangeTable.build(INT64, List.of(routes), "ranges");
  }

  /** A ring whose shards each have {@code vnodes} virtual nodes, every segment at epoch 1. */
  static RingLayout ring(int vnodes, String... shards) {
    RingLayout.Builder b = RingLayout.newBuilder();
    for (String s : shards) {
      RingShard.Builder rs = RingShard.newBuilder().setShard(s);
      for (int i = 0; i < vnodes; i++) {
        rs.addVnodeEpochs(1);
      }
      b.addShards(rs);
    }
    return b.build();
  }

  static HashLayout hash(String... shards) {
    HashLayout.Builder b = HashLayout.newBuilder();
    for (String s : shards) {
      b.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(1));
    }
    return b.build();
  }

  static byte[] randomBytes(Random rnd, int len) {
    byte[] b = new byte[len];
    rnd.nextBytes(b);
    return b;
  }

  /** Asserts a ShardmapException with the code and every message fragment; returns it. */
  static ShardmapException assertError(ErrorCode code, Executable call, String... fragments) {
    ShardmapException e = assertThrows(ShardmapException.class, call,
        "expected a ShardmapException " + code);
    assertEquals(code, e.code(), () -> "wrong error code; message: " + e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f),
          () -> "message should contain '" + f + "' but was: " + e.getMessage());
    }
    return e;
  }
}
