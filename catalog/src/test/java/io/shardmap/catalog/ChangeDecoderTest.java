package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.KeyValue;
import io.shardmap.store.WatchEvent;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The key scheme and the decoding of records into map changes, without etcd. */
@Tag("unit")
class ChangeDecoderTest {
  private final CatalogPaths paths = new CatalogPaths("/sm");
  private final ChangeDecoder decoder = new ChangeDecoder(paths);

  private static KeyValue kv(String key, byte[] value, long rev) {
    return new KeyValue(key, value, rev, rev, 1, 0);
  }

  private static KeyspaceSpec spec(String name, Strategy s) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(s).build();
  }

  @Test
  void pathsRejectABadPrefixAndKeepKeyOrder() {
    assertThrows(IllegalArgumentException.class, () -> new CatalogPaths("sm"));
    assertThrows(IllegalArgumentException.class, () -> new CatalogPaths("/sm/"));
    assertEquals("/sm/keyspaces/users/ranges/", paths.range("users", new byte[0]));
    assertTrue(paths.range("users", Keys.encodeInt64(-5)).compareTo(paths.range("users", Keys.encodeInt64(7))) < 0);
    assertTrue(paths.movingBucket("users", 3).startsWith(paths.movingPrefix("users")));
    assertTrue(paths.moving("users", Keys.encodeInt64(7)).startsWith(paths.movingPrefix("users")));
  }

  @Test
  void fullReadBecomesChangesAndSkipsRecordsOutsideTheMaps() {
    KeyspaceSpec users = spec("users", Strategy.STRATEGY_RANGE);
    KeyspaceSpec carts = spec("carts", Strategy.STRATEGY_HASH);
    RangeAssignment whole = RangeAssignment.newBuilder().setRange(KeyRange.getDefaultInstance()).setShard("s1")
        .setEpoch(1).build();
    HashLayout hash = HashLayout.newBuilder().addBuckets(BucketAssignment.newBuilder().setShard("s1").setEpoch(1))
        .build();
    List<MapChange> changes = decoder.toChanges(List.of(
        kv(paths.shard("s1"), Shard.newBuilder().setName("s1").build().toByteArray(), 2),
        kv(paths.shardRef("s1"), new byte[0], 3),
        kv(paths.range("users", new byte[0]), whole.toByteArray(), 4),
        kv(paths.spec("users"), users.toByteArray(), 4),
        kv(paths.spec("carts"), carts.toByteArray(), 5),
        kv(paths.layout("carts"), hash.toByteArray(), 5),
        kv(paths.moving("users", new byte[0]), "m1".getBytes(StandardCharsets.UTF_8), 6),
        kv(paths.migration("m1"), new byte[] {1}, 6)));
    assertEquals(5, changes.size(), changes::toString);
    assertEquals("s1", changes.get(0).getShard().getName());
    // The range record comes before its spec in key order; the spec is known from the same batch.
    assertEquals(whole, changes.get(1).getRange());
    assertEquals(users, changes.get(2).getSpec());
    assertEquals(hash, changes.get(4).getHash());
    assertEquals(5, changes.get(4).getModRevision());
  }

  @Test
  void aKeyspaceDroppedInTheBatchYieldsOneDrop() {
    KeyspaceSpec users = spec("users", Strategy.STRATEGY_RANGE);
    List<MapChange> changes = decoder.toChanges(List.of(
        new WatchEvent(WatchEvent.Type.DELETE, kv(paths.range("users", new byte[0]), new byte[0], 9)),
        new WatchEvent(WatchEvent.Type.DELETE, kv(paths.spec("users"), new byte[0], 9))),
        ks -> ks.equals("users") ? users : null);
    assertEquals(1, changes.size(), changes::toString);
    assertTrue(changes.get(0).getKeyspaceDropped());
    assertEquals("users", changes.get(0).getKeyspace());
  }

  @Test
  void aRemovedRangeIsNamedByItsStartInTheKeyspacesKeyType() {
    KeyspaceSpec users = spec("users", Strategy.STRATEGY_RANGE);
    List<MapChange> changes = decoder.toChanges(List.of(
        new WatchEvent(WatchEvent.Type.DELETE, kv(paths.range("users", Keys.encodeInt64(100)), new byte[0], 9))),
        ks -> users);
    assertEquals(100, changes.get(0).getRangeRemovedStart().getIntKey());
  }

  @Test
  void aCorruptRecordIsAnInternalErrorNamingItsKey() {
    String key = paths.spec("users");
    ShardmapException e = assertThrows(ShardmapException.class,
        () -> decoder.toChanges(List.of(kv(key, new byte[] {(byte) 0xFF, 0x01}, 3))));
    assertEquals(ErrorCode.INTERNAL, e.code());
    assertTrue(e.getMessage().contains(key), e.getMessage());
    e = assertThrows(ShardmapException.class, () -> Records.decode(kv("/x", new byte[] {(byte) 0xFF}, 1),
        Shard.parser()));
    assertTrue(e.getMessage().contains("/x"), e.getMessage());
  }
}
