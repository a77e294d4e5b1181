package io.shardmap.migrator.internal;

import io.shardmap.catalog.Records;
import io.shardmap.core.KeyRange;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.HashBucketUnit;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingNodeUnit;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MapEdits;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * The etcd records a migration's unit lives in, and the cutover's change of them: the range record, the
 * hash or ring layout record, or the directory entries; and the unit's moving markers.
 *
 * <p>A range record or a directory entry belongs to the unit alone, and the admin API refuses to change
 * it while it is marked, so the cutover compares its mod revision as planned. A layout record holds every
 * bucket or node: other migrations' cutovers rewrite it while this unit moves. So the cutover reads it
 * again and compares the mod revision it read, after checking that the layout still routes the unit as
 * planned (the same owner and epoch of the bucket; the same arc, successor and epoch on the ring). A
 * transaction that loses to another layout change is built again from the new layout.
 */
final class UnitRecords {
  private UnitRecords() {}

  /** Whether the unit lives in the keyspace's layout record (rewritten by other units' cutovers). */
  static boolean inLayout(Migration m) {
    return m.hasUnit() && !m.getUnit().hasEntries();
  }

  /** The unit's moving markers (one per directory entry). */
  static List<String> markers(CatalogPaths paths, Migration m) {
    String ks = m.getKeyspace();
    if (!m.hasUnit()) {
      return List.of(paths.moving(ks, KeyRange.fromProto(m.getKeyType(), m.getRange(), "range").start()));
    }
    return switch (m.getUnit().getKindCase()) {
      case BUCKET -> List.of(paths.movingBucket(ks, m.getUnit().getBucket().getBucket()));
      case RING_NODE -> List.of(paths.movingRing(ks));
      case ENTRIES -> MoveUnits.keys(m).stream().map(k -> paths.movingEntry(ks, k)).toList();
      case KIND_NOT_SET -> throw new IllegalStateException("migration " + m.getId() + " has an empty unit");
    };
  }

  /**
   * Adds to {@code txn} the compares and writes that give the unit to the target at epoch
   * {@code range_epoch + 1} (for a ring node leaving: the successor's epoch past both). Returns null, or why
   * the map no longer routes the unit as planned (then {@code txn} must not be committed).
   */
  static String handOver(MigrationStore ms, Migration m, Txn.Builder txn) {
    CatalogPaths paths = ms.paths();
    MapEdits edits = ms.edits();
    String ks = m.getKeyspace();
    if (!m.hasUnit()) {
      KeyRange range = KeyRange.fromProto(m.getKeyType(), m.getRange(), "range");
      edits.handOverRange(txn, ks, m.getKeyType(), range, m.getRangeModRevision(), m.getTarget(), m.getRangeEpoch() + 1);
      return null;
    }
    switch (m.getUnit().getKindCase()) {
      case BUCKET -> {
        KeyValue kv = one(ms, paths.layout(ks));
        if (kv == null) {
          return "the keyspace's layout record is gone";
        }
        HashLayout h = Records.decode(kv, HashLayout.parser());
        HashBucketUnit u = m.getUnit().getBucket();
        if (h.getBucketsCount() != u.getBuckets()) {
          return "the keyspace now has " + h.getBucketsCount() + " buckets, not " + u.getBuckets();
        }
        BucketAssignment b = h.getBuckets(u.getBucket());
        if (!b.getShard().equals(m.getSource()) || b.getEpoch() != m.getRangeEpoch()) {
          return "bucket " + u.getBucket() + " is now owned by '" + b.getShard() + "' at epoch " + b.getEpoch();
        }
        edits.handOverBucket(txn, ks, h, kv.modRevision(), u.getBucket(), m.getTarget());
        return null;
      }
      case RING_NODE -> {
        KeyValue kv = one(ms, paths.layout(ks));
        if (kv == null) {
          return "the keyspace's layout record is gone";
        }
        RingLayout layout = Records.decode(kv, RingLayout.parser());
        RingNodeUnit u = m.getUnit().getRingNode();
        RingNodes.Change now = u.getRemove() ? RingNodes.leave(layout, u.getShard()) : RingNodes.join(layout, u.getShard());
        long epoch = now == null ? -1 : u.getRemove() ? now.node().epoch() : now.successor().epoch();
        if (now == null || now.node().vnode() != u.getVnode() || now.after() != u.getArcAfter()
            || now.upTo() != u.getArcUpTo() || !now.successor().shard().equals(u.getSuccessorShard())
            || now.successor().vnode() != u.getSuccessorVnode() || epoch != m.getRangeEpoch()) {
          return "the ring no longer has ring node " + u.getShard() + "#" + u.getVnode() + "'s arc as planned";
        }
        edits.handOverRingNode(txn, ks, layout, kv.modRevision(), u.getShard(), !u.getRemove());
        return null;
      }
      case ENTRIES -> {
        edits.handOverEntries(txn, ks, m.getKeyType(), MoveUnits.keys(m), m.getUnit().getEntries().getModRevisionsList(),
            m.getTarget(), m.getRangeEpoch() + 1);
        return null;
      }
      default -> throw new IllegalStateException("migration " + m.getId() + " has an empty unit");
    }
  }

  /** One read, not retried: the cutover's hand-over, which must not hold its fence through retries. */
  static KeyValue one(MigrationStore ms, String key) {
    return first(ms.await("reading " + key, ms.store().get(key)));
  }

  /**
   * One read while planning, before anything is written: a transient failure is read again within the
   * store's retry deadline ({@link MigrationStore#read}).
   */
  static KeyValue planningRead(MigrationStore ms, String key) {
    return first(ms.read("reading " + key, () -> ms.store().get(key)));
  }

  private static KeyValue first(RangeResult r) {
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

}
