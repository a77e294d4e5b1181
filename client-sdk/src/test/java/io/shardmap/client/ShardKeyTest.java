package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The SDK's key and value types, on snapshots built in memory (no server). */
@Tag("unit")
class ShardKeyTest {

  @Test
  void keysEncodeCanonicallyAndCompareByWhatTheyRoute() {
    assertArrayEquals(Keys.encodeInt64(-5), ShardKey.of(-5).canonical());
    assertArrayEquals("acme".getBytes(StandardCharsets.UTF_8), ShardKey.of("acme").canonical());
    assertEquals(ShardKey.of("acme"), ShardKey.of("acme".getBytes(StandardCharsets.UTF_8)));
    assertEquals(ShardKey.of("acme").hashCode(), ShardKey.of("acme".getBytes(StandardCharsets.UTF_8)).hashCode());
    assertEquals(ShardKey.of(7), ShardKey.of(7L));
    assertNotEquals(ShardKey.of(7), ShardKey.of(new byte[] {0, 0, 0, 0, 0, 0, 0, 7}));
    assertEquals("42", ShardKey.of(42).toString());
    assertEquals("'acme'", ShardKey.of("acme").toString());
    assertEquals("0x00ff", ShardKey.of(new byte[] {0, (byte) 0xff}).toString());
    assertTrue(ShardKey.of(1).isInteger());
    assertFalse(ShardKey.of("x").isInteger());
    assertThrows(IllegalStateException.class, () -> ShardKey.of("x").intValue());
    assertThrows(IllegalStateException.class, () -> ShardKey.of(1).bytes());
  }

  @Test
  void keysAreImmutableCopies() {
    byte[] b = {1, 2, 3};
    ShardKey k = ShardKey.of(b);
    b[0] = 9;
    assertArrayEquals(new byte[] {1, 2, 3}, k.bytes());
    k.bytes()[1] = 9;
    assertArrayEquals(new byte[] {1, 2, 3}, k.canonical());
  }

  @Test
  void badKeysAreRefusedNamingTheKey() {
    ShardmapException empty = assertThrows(ShardmapException.class, () -> ShardKey.of(""));
    assertEquals(ErrorCode.INVALID_ARGUMENT, empty.code());
    assertTrue(empty.getMessage().contains("key"), empty.getMessage());
    assertThrows(ShardmapException.class, () -> ShardKey.of(new byte[Keys.MAX_KEY_BYTES + 1]));
    ShardKey.of(new byte[Keys.MAX_KEY_BYTES]);
    assertThrows(IllegalArgumentException.class, () -> ShardKey.of((String) null));
    assertThrows(IllegalArgumentException.class, () -> ShardKey.of((byte[]) null));
  }

  private static MapView twoRanges() {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("users").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build();
    KeyRange below = KeyRange.parse(KeyType.KEY_TYPE_INT64, "..100", "range");
    KeyRange above = KeyRange.parse(KeyType.KEY_TYPE_INT64, "100..", "range");
    KeyspaceMap users = KeyspaceMap.withoutLayout(spec, 5).apply(6, List.of(
        MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder()
            .setRange(below.toProto(KeyType.KEY_TYPE_INT64)).setShard("s1").setEpoch(1)).build(),
        MapChange.newBuilder().setKeyspace("users").setRange(RangeAssignment.newBuilder()
            .setRange(above.toProto(KeyType.KEY_TYPE_INT64)).setShard("s2").setEpoch(3)).build()));
    Shard s1 = Shard.newBuilder().setName("s1").setPrimary(Endpoint.newBuilder().setHost("h1").setPort(5432)
        .setDatabase("d1")).addReplicas(Endpoint.newBuilder().setHost("r1").setPort(5433).setDatabase("d1"))
        .setState(ShardState.SHARD_STATE_DRAINING).setRevision(4).build();
    Shard s2 = Shard.newBuilder().setName("s2").setPrimary(Endpoint.newBuilder().setHost("h2").setPort(5432)
        .setDatabase("d2")).setState(ShardState.SHARD_STATE_ACTIVE).build();
    return new MapView(new DirectorySnapshot(6, Map.of("users", users), Map.of("s1", s1, "s2", s2)));
  }

  @Test
  void aMapViewRoutesWithTheSdkTypes() {
    MapView v = twoRanges();
    assertEquals(6, v.revision());
    ShardRoute r = v.route("users", ShardKey.of(99));
    assertEquals(new ShardRoute("users", "s1", 1, r.range(), r.entryRevision()), r);
    assertEquals("..100", r.range().toString());
    assertTrue(r.range().start().isEmpty());
    assertEquals(ShardKey.of(100), r.range().end().orElseThrow());
    assertTrue(r.range().contains(ShardKey.of(-1)));
    assertFalse(r.range().contains(ShardKey.of(100)));
    assertFalse(r.range().contains(ShardKey.of("x")), "a key of the other kind is in no INT64 range");
    assertSame(r, v.route("users", ShardKey.of(-7)), "one shared route per map entry");
    assertEquals("s2", v.route("users", ShardKey.of(100)).shard());
    assertEquals(3, v.route("users", ShardKey.of(100)).epoch());
    assertEquals(List.of("s1", "s2"), v.ranges("users").stream().map(ShardRoute::shard).toList());

    KeyspaceInfo k = v.keyspace("users").orElseThrow();
    assertEquals(new KeyspaceInfo("users", "RANGE", true, true), k);
    assertTrue(v.keyspace("nope").isEmpty());

    ShardInfo s1 = v.shard("s1");
    assertEquals(new ShardInfo.Endpoint("h1", 5432, "d1"), s1.primary());
    assertEquals(List.of(new ShardInfo.Endpoint("r1", 5433, "d1")), s1.replicas());
    assertEquals("DRAINING", s1.state());
    assertEquals(4, s1.revision());
    assertEquals("h1:5432/d1", s1.primary().toString());
    assertEquals(List.of("s1", "s2"), List.copyOf(v.shards().keySet()));

    assertEquals(ErrorCode.INVALID_ARGUMENT,
        assertThrows(ShardmapException.class, () -> v.route("users", ShardKey.of("x"))).code());
    assertEquals(ErrorCode.NOT_FOUND, assertThrows(ShardmapException.class, () -> v.route("nope", ShardKey.of(1))).code());
    assertEquals(ErrorCode.NOT_FOUND, assertThrows(ShardmapException.class, () -> v.shard("s9")).code());
    assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(ShardmapException.class, () -> v.route("users", null)).code());
  }
}
