package io.shardmap.client.internal.query;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Targets at a map, without a database: which shards are asked and what each part's predicate says. */
@Tag("unit")
class TargetsTest {
  /** (..0) on s1, [0, 100) on s2, [100..) on s3. */
  static KeyspaceMap ranges() {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build();
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, List.of(range(null, 0L, "s1"), range(0L, 100L, "s2"),
        range(100L, null, "s3")));
  }

  private static MapChange range(Long start, Long end, String shard) {
    io.shardmap.proto.v1.KeyRange.Builder r = io.shardmap.proto.v1.KeyRange.newBuilder();
    if (start != null) {
      r.setStart(Key.newBuilder().setIntKey(start));
    }
    if (end != null) {
      r.setEnd(Key.newBuilder().setIntKey(end));
    }
    return MapChange.newBuilder().setKeyspace("ks")
        .setRange(RangeAssignment.newBuilder().setRange(r).setShard(shard).setEpoch(1)).build();
  }

  static DirectorySnapshot map(KeyspaceMap k, String... shards) {
    Map<String, Shard> registered = new java.util.TreeMap<>();
    for (String s : shards) {
      registered.put(s, Shard.newBuilder().setName(s).setPrimary(Endpoint.newBuilder().setHost("127.0.0.1")
          .setPort(5432).setDatabase(s)).build());
    }
    return new DirectorySnapshot(2, Map.of(k.name(), k), registered);
  }

  static byte[] k(long v) {
    return Keys.encodeInt64(v);
  }

  @Test
  void aMapNamingAnUnregisteredShardOrWithoutLayoutIsRefused() {
    KeyspaceMap k = ranges();
    Targets.checkCovers(k, map(k, "s1", "s2", "s3"));
    ShardmapException e = assertThrows(ShardmapException.class, () -> Targets.checkCovers(k, map(k, "s1", "s3")));
    assertEquals(ErrorCode.FAILED_PRECONDITION, e.code());
    assertTrue(e.getMessage().contains("'s2'"), e.getMessage());
    KeyspaceMap empty = KeyspaceMap.withoutLayout(k.spec(), 1);
    assertEquals(ErrorCode.FAILED_PRECONDITION, assertThrows(ShardmapException.class,
        () -> Targets.checkCovers(empty, map(empty, "s1"))).code());
  }

  @Test
  void eachTargetAsksTheShardsOwningWhatItCovers() {
    KeyspaceMap k = ranges();
    assertEquals(List.of("s1", "s2", "s3"), shards(Targets.select(k, new QueryTarget.All())));
    assertEquals(List.of("s2"), shards(Targets.select(k, new QueryTarget.Range(k(0), k(100)))));
    assertEquals(List.of("s1", "s2"), shards(Targets.select(k, new QueryTarget.Range(k(-5), k(1)))));
    assertEquals(List.of("s2", "s3"), shards(Targets.select(k, new QueryTarget.Range(k(99), new byte[0]))));
    assertEquals(List.of("s1"), shards(Targets.select(k, new QueryTarget.Range(new byte[0], k(0)))));
    List<Targets.ShardTarget> byKeys = Targets.select(k, new QueryTarget.Keys(List.of(k(5), k(500), k(7))));
    assertEquals(List.of("s2", "s3"), shards(byKeys));
    assertEquals(2, byKeys.get(0).keys().size(), "5 and 7 go to s2 together");
  }

  @Test
  void aPartsPredicateIsWhatItsShardOwnsAndWithinTheTarget() {
    KeyspaceMap k = ranges();
    Targets.ShardTarget s2 = new Targets.ShardTarget("s2", null);
    assertEquals("(id >= 0 AND id < 100)", Targets.predicate(k, new QueryTarget.All(), s2, KeyKind.INT64, "id"));
    assertEquals("((id >= 0 AND id < 100) AND (id >= 50))",
        Targets.predicate(k, new QueryTarget.Range(k(50), new byte[0]), s2, KeyKind.INT64, "id"));
    Targets.ShardTarget keys = new Targets.ShardTarget("s2", List.of(k(5), k(-7)));
    assertEquals("((id >= 0 AND id < 100) AND id = ANY(E'{5,-7}'::bigint[]))",
        Targets.predicate(k, new QueryTarget.Keys(List.of(k(5), k(-7))), keys, KeyKind.INT64, "id"));
  }

  @Test
  void keySetLiteralsEscapeQuotesBackslashesAndDollarsAndSkipKeysNoColumnHolds() {
    byte[] odd = "a'b\\c\"d$e".getBytes(StandardCharsets.UTF_8);
    byte[] notUtf8 = {(byte) 0xff, 0x01};
    assertEquals("k = ANY(E'{\"a''b\\\\\\\\c\\\\\"d\\x24e\"}'::text[])",
        Targets.anyOf(KeyKind.TEXT, "k", List.of(odd, notUtf8)));
    assertEquals("k = ANY(E'{\"\\\\\\\\xff01\"}'::bytea[])", Targets.anyOf(KeyKind.BYTEA, "k", List.of(notUtf8)));
    assertEquals("false", Targets.anyOf(KeyKind.TEXT, "k", List.of(notUtf8)));
  }

  private static List<String> shards(List<Targets.ShardTarget> t) {
    return t.stream().map(Targets.ShardTarget::shard).toList();
  }
}
