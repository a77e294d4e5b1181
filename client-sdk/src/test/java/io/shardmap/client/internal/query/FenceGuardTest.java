package io.shardmap.client.internal.query;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.client.internal.query.FenceGuard.Candidate;
import io.shardmap.client.internal.query.FenceGuard.Verdict;
import io.shardmap.core.FenceUnit;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** FenceGuard's decision from fence rows as read (new rows with unit_id, and the rows older migrators wrote). */
@Tag("unit")
class FenceGuardTest {
  /** [..0) on s1 at epoch 1, [0, 100) on {@code shard} at {@code epoch}, [100..) on s2 at epoch 1. */
  static KeyspaceMap ranges(String shard, long epoch) {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE).build();
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, List.of(range(null, 0L, "s1", 1), range(0L, 100L, shard, epoch),
        range(100L, null, "s2", 1)));
  }

  private static MapChange range(Long start, Long end, String shard, long epoch) {
    io.shardmap.proto.v1.KeyRange.Builder r = io.shardmap.proto.v1.KeyRange.newBuilder();
    if (start != null) {
      r.setStart(Key.newBuilder().setIntKey(start));
    }
    if (end != null) {
      r.setEnd(Key.newBuilder().setIntKey(end));
    }
    return MapChange.newBuilder().setKeyspace("ks")
        .setRange(RangeAssignment.newBuilder().setRange(r).setShard(shard).setEpoch(epoch)).build();
  }

  /** 8 buckets alternating s1/s2 at epoch 1, bucket 3 on {@code shard} at {@code epoch}. */
  static KeyspaceMap hash(String shard, long epoch) {
    KeyspaceSpec spec = KeyspaceSpec.newBuilder().setName("ks").setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_HASH).build();
    HashLayout.Builder b = HashLayout.newBuilder();
    for (int i = 0; i < 8; i++) {
      b.addBuckets(i == 3 ? BucketAssignment.newBuilder().setShard(shard).setEpoch(epoch)
          : BucketAssignment.newBuilder().setShard(i % 2 == 0 ? "s1" : "s2").setEpoch(1));
    }
    return KeyspaceMap.withoutLayout(spec, 1).apply(2, List.of(MapChange.newBuilder().setKeyspace("ks").setHash(b).build()));
  }

  private static Candidate withId(String migration, long epoch, FenceUnit u) {
    return new Candidate(migration, "t", epoch, null, null, u.encode(), null, true);
  }

  @Test
  void aFenceOfAUnitTheMapStillRoutesHereAtOrBelowItsEpochMakesThePartStale() {
    List<Candidate> fences = List.of(withId("m1", 5, FenceUnit.Range.int64(0L, 100L)));
    Verdict v = FenceGuard.decide(fences, "s1", ranges("s1", 5));
    assertTrue(v.stale());
    assertEquals("stale: fence of range [0, 100) at epoch 5 (migration 'm1', table t) on shard 's1', whose map "
        + "still routes keys of it here at epoch 5; re-run once the map routes it above 5", v.message());
    assertFalse(v.passedBy(ranges("s1", 5)));
    assertTrue(v.passedBy(ranges("s3", 6)), "moved on");
    assertFalse(FenceGuard.decide(fences, "s1", ranges("s3", 6)).stale(), "the map has the cutover");
    assertFalse(FenceGuard.decide(fences, "s1", ranges("s1", 7)).stale(), "the unit came back: an old fence");
    assertFalse(FenceGuard.decide(fences, "s3", ranges("s1", 5)).stale(), "another shard's part");
    assertTrue(FenceGuard.decide(List.of(), "s1", ranges("s1", 5)).notes().isEmpty());
  }

  @Test
  void theStaleFenceWithTheHighestEpochIsNamed() {
    // Both fences cover [0, 100) of s1 at epoch 2; the rerun must wait for the map to pass the higher one.
    List<Candidate> fences = List.of(withId("old", 2, FenceUnit.Range.int64(0L, 50L)),
        withId("new", 5, FenceUnit.Range.int64(50L, 100L)), withId("gone", 9, FenceUnit.Range.int64(200L, 300L)));
    Verdict v = FenceGuard.decide(fences, "s1", ranges("s1", 2));
    assertEquals("new", v.migration());
    assertEquals(5, v.fencedEpoch());
  }

  @Test
  void rowsOfOlderMigratorsAreReadFromTheirBoundsOrBucketSpecElseAsTheWholeKeyspaceAndReported() {
    Candidate bounds = new Candidate("b", "t", 5, 0L, 100L, null, null, false);
    assertTrue(FenceGuard.decide(List.of(bounds), "s1", ranges("s1", 5)).stale());
    assertFalse(FenceGuard.decide(List.of(bounds), "s1", ranges("s3", 6)).stale());
    Candidate unbounded = new Candidate("u", "t", 5, null, null, null, null, false);
    assertTrue(FenceGuard.decide(List.of(unbounded), "s1", ranges("s3", 6)).stale(), "both bounds NULL: every key");
    Candidate bucket = new Candidate("k", "t", 5, null, null, null, "bucket:3:8;bucket:11:16", true);
    assertTrue(FenceGuard.decide(List.of(bucket), "s2", hash("s2", 5)).stale());
    Verdict moved = FenceGuard.decide(List.of(bucket), "s2", hash("s3", 6));
    assertFalse(moved.stale());
    assertTrue(moved.notes().isEmpty());
    Candidate sqlOnly = new Candidate("arc", "t", 5, null, null, null, null, true);
    Verdict v = FenceGuard.decide(List.of(sqlOnly), "s1", ranges("s3", 6));
    assertTrue(v.stale(), "s1 owns [..0) at epoch 1, within the whole keyspace");
    assertTrue(v.message().contains("fence of migration 'arc' on table t (epoch 5) was written before fence rows "
        + "named their unit (no unit_id)"), v.message());
    Verdict fresh = FenceGuard.decide(List.of(sqlOnly), "s3", ranges("s3", 6));
    assertFalse(fresh.stale());
    assertEquals(1, fresh.notes().size(), "reported even when it did not make the part stale");
    Candidate garbled = new Candidate("g", "t", 5, null, null, null, "bucket:x", true);
    assertTrue(FenceGuard.decide(List.of(garbled), "s1", ranges("s3", 6)).notes().get(0)
        .contains("unit_spec 'bucket:x' cannot be read"));
    Candidate future = new Candidate("f", "t", 5, null, null, "v2:cube:1", null, true);
    assertTrue(FenceGuard.decide(List.of(future), "s1", ranges("s3", 6)).notes().get(0)
        .contains("unit_id cannot be read (unit code 'v2:cube:1' is not of version v1"));
  }
}
