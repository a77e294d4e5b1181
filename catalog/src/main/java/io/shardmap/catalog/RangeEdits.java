package io.shardmap.catalog;

import static io.shardmap.catalog.MapEdits.keyspaceOf;
import static io.shardmap.catalog.MapEdits.registered;

import io.shardmap.catalog.MapEdits.Edit;
import io.shardmap.catalog.MapEdits.Split;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The map edits of range keyspaces: the initial ranges, split, merge, reassign, and a move's cutover of a
 * range. Each edit is a pure plan over a snapshot and the keyspace's moving markers (see {@link MapEdits}
 * for the rules every edit keeps); reached through {@link MapEdits#forStrategy} or the typed accessor.
 */
public final class RangeEdits extends StrategyEditsBase {
  RangeEdits(MapEdits edits) {
    super(edits, Strategy.STRATEGY_RANGE);
  }

  @Override
  public void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
                     Set<String> owners, int maxTxnOps) {
    KeyType type = spec.getKeyType();
    List<Route> routes = initialRanges(type, req, snap, maxTxnOps);
    RangeTable.build(type, routes, "ranges");
    for (Route r : routes) {
      owners.add(r.shard());
      txn.put(paths.range(spec.getName(), r.range().start()), bytes(KeyspaceMap.toProto(type, r)));
    }
  }

  private static List<Route> initialRanges(KeyType type, CreateKeyspaceRequest req, DirectorySnapshot snap,
                                           int maxTxnOps) {
    StrategyEdits.requireOnly(req, "ranges,range_shards");
    if (req.getRangesCount() > 0 && req.getRangeShardsCount() > 0) {
      throw ShardmapException.invalid("ranges", "give either ranges or range_shards, not both");
    }
    List<Route> routes = new ArrayList<>();
    if (req.getRangesCount() > 0) {
      for (int i = 0; i < req.getRangesCount(); i++) {
        RangeAssignment a = req.getRanges(i);
        String field = "ranges[" + i + "]";
        registered(snap, field + ".shard", a.getShard());
        routes.add(new Route(a.getShard(), 1, KeyRange.fromProto(type, a.getRange(), field + ".range"), 0));
      }
    } else if (req.getRangeShardsCount() > 0) {
      int n = req.getRangeShardsCount();
      if (n > 1024) {
        throw ShardmapException.invalid("range_shards", "at most 1024 initial ranges, got " + n);
      }
      byte[] prev = new byte[0];
      for (int i = 0; i < n; i++) {
        String s = registered(snap, "range_shards[" + i + "]", req.getRangeShards(i));
        byte[] end = i == n - 1 ? new byte[0] : evenBoundary(type, i + 1, n);
        routes.add(new Route(s, 1, KeyRange.of(prev, end, "range_shards"), 0));
        prev = end;
      }
    } else {
      throw ShardmapException.invalid("ranges", "a range keyspace needs its initial ranges: ranges, or "
          + "range_shards to split the key space evenly");
    }
    int limit = maxTxnOps - 2;
    if (routes.size() > limit) {
      throw ShardmapException.invalid("ranges", "at most " + limit + " initial ranges fit one etcd "
          + "transaction (etcd --max-txn-ops " + maxTxnOps + "); create fewer and split later");
    }
    return routes;
  }

  /** The i-th of n equal cut points of the key space. */
  public static byte[] evenBoundary(KeyType type, int i, int n) {
    if (type == KeyType.KEY_TYPE_INT64) {
      long u = BigInteger.ONE.shiftLeft(64).multiply(BigInteger.valueOf(i))
          .divide(BigInteger.valueOf(n)).longValue();
      return Keys.encodeInt64(u ^ Long.MIN_VALUE);
    }
    int v = (int) ((long) i * 65536 / n);
    return (v & 0xFF) == 0 ? new byte[] {(byte) (v >>> 8)} : new byte[] {(byte) (v >>> 8), (byte) v};
  }

  /**
   * Makes {@code at} a range boundary of keyspace {@code ks}: both halves keep the owner and epoch.
   * Refused when {@code at} already is one, when the range containing it is being moved, and when a stray
   * marker sits at {@code at} (no range starts there, so no migration moves one; but the new range would
   * look marked).
   */
  public Edit<Split> split(DirectorySnapshot snap, MovingMarkers markers, String ks, byte[] at, String field) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_RANGE);
    KeyType type = k.keyType();
    Route r = k.ranges().route(at);
    KeyRange range = r.range();
    if (Arrays.equals(range.start(), at)) {
      throw ShardmapException.precondition(field + ": " + Keys.describe(type, at) + " is already a range boundary");
    }
    markers.refuse(paths.moving(ks, range.start()), field, range.format(type));
    String stray = markers.at(paths.moving(ks, at));
    if (stray != null) {
      throw ShardmapException.precondition(field + ": keyspace '" + ks + "' has a moving marker of "
          + "migration '" + stray + "' at " + Keys.describe(type, at) + ", where no range starts; cancel "
          + "that migration (migrator cancel " + stray + ")");
    }
    Route left = new Route(r.shard(), r.epoch(), KeyRange.of(range.start(), at, field), 0);
    Route right = new Route(r.shard(), r.epoch(), KeyRange.of(at, range.end(), field), 0);
    Txn txn = Txn.builder()
        .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
        .compare(Compare.modRevision(paths.range(ks, range.start()), r.modRevision()))
        .compare(Compare.absent(paths.range(ks, at)))
        .compare(Compare.absent(paths.moving(ks, range.start())))
        .compare(Compare.absent(paths.moving(ks, at)))
        .put(paths.range(ks, range.start()), bytes(KeyspaceMap.toProto(type, left)))
        .put(paths.range(ks, at), bytes(KeyspaceMap.toProto(type, right))).build();
    return new Edit<>(txn, new Split(left, right));
  }

  /** Merges the ranges on both sides of {@code boundary}, which must have one owner; the higher epoch stays. */
  public Edit<Route> merge(DirectorySnapshot snap, MovingMarkers markers, String ks, byte[] boundary) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_RANGE);
    KeyType type = k.keyType();
    RangeTable t = k.ranges();
    int i = t.indexOfStart(boundary);
    if (i <= 0) {
      throw ShardmapException.notFound("boundary: no range starts at " + Keys.describe(type, boundary)
          + " in keyspace '" + ks + "'");
    }
    Route left = t.get(i - 1);
    Route right = t.get(i);
    markers.refuse(paths.moving(ks, left.range().start()), "boundary", left.range().format(type));
    markers.refuse(paths.moving(ks, right.range().start()), "boundary", right.range().format(type));
    if (!left.shard().equals(right.shard())) {
      throw ShardmapException.precondition("boundary: the ranges on both sides of "
          + Keys.describe(type, boundary) + " have different owners ('" + left.shard() + "' and '"
          + right.shard() + "'); reassign one first");
    }
    Route merged = new Route(left.shard(), Math.max(left.epoch(), right.epoch()),
        KeyRange.of(left.range().start(), right.range().end(), "boundary"), 0);
    Txn txn = Txn.builder()
        .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
        .compare(Compare.modRevision(paths.range(ks, left.range().start()), left.modRevision()))
        .compare(Compare.modRevision(paths.range(ks, boundary), right.modRevision()))
        .compare(Compare.absent(paths.moving(ks, left.range().start())))
        .compare(Compare.absent(paths.moving(ks, boundary)))
        .delete(paths.range(ks, boundary))
        .put(paths.range(ks, left.range().start()), bytes(KeyspaceMap.toProto(type, merged))).build();
    return new Edit<>(txn, merged);
  }

  /**
   * Gives range {@code range} (exactly a range of the map) to {@code target} at epoch + 1.
   *
   * @param expectedEpoch 0, or the epoch the caller saw (refused if it moved on)
   */
  public Edit<Route> reassignRange(DirectorySnapshot snap, MovingMarkers markers, ReferenceTables refs, String ks,
                                   KeyRange range, String target, long expectedEpoch) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_RANGE);
    KeyType type = k.keyType();
    registered(snap, "shard", target);
    int i = k.ranges().indexOfStart(range.start());
    if (i < 0 || !k.ranges().get(i).range().equals(range)) {
      Route containing = k.ranges().route(range.start());
      throw ShardmapException.notFound("range: " + range.format(type) + " is not a range of keyspace '"
          + ks + "' (the range containing its start is " + containing.range().format(type)
          + "); split first so that it is one");
    }
    Route r = k.ranges().get(i);
    markers.refuse(paths.moving(ks, range.start()), "range", range.format(type));
    if (expectedEpoch != 0 && expectedEpoch != r.epoch()) {
      throw ShardmapException.precondition("expected_epoch: range " + range.format(type) + " is at epoch "
          + r.epoch() + ", not " + expectedEpoch);
    }
    if (r.shard().equals(target)) {
      throw ShardmapException.precondition("shard: range " + range.format(type) + " is already owned by '"
          + target + "'");
    }
    Route moved = new Route(target, r.epoch() + 1, range, 0);
    Txn.Builder txn = Txn.builder()
        .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
        .compare(Compare.modRevision(paths.range(ks, range.start()), r.modRevision()))
        .compare(Compare.absent(paths.moving(ks, range.start())))
        .put(paths.range(ks, range.start()), bytes(KeyspaceMap.toProto(type, moved)));
    guardOwners(txn, ks, Set.of(target), refs);
    return new Edit<>(txn.build(), moved);
  }

  /**
   * The writes of a migration's cutover that give a range to {@code target} at {@code epoch}: the range
   * record compared at the mod revision the move was planned at (the admin API refuses to change a
   * marked range, so it cannot have moved on legitimately).
   */
  public Txn.Builder handOverRange(Txn.Builder txn, String ks, KeyType type, KeyRange range, long plannedModRevision,
                                   String target, long epoch) {
    Route moved = new Route(target, epoch, range, 0);
    return txn.compare(Compare.modRevision(paths.range(ks, range.start()), plannedModRevision))
        .put(paths.range(ks, range.start()), bytes(KeyspaceMap.toProto(type, moved)));
  }
}
