package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MapEdits;
import io.shardmap.proto.v1.Migration;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * The etcd records a migration's unit lives in, and the cutover's change of them, through the unit's
 * {@link UnitKind}: the range record, the hash, ring or geographic layout record, or the directory entries;
 * and the unit's moving markers.
 *
 * <p>A range record or a directory entry belongs to the unit alone, and the admin API refuses to change
 * it while it is marked, so the cutover compares its mod revision as planned. A layout record holds every
 * bucket, node or region: other migrations' cutovers rewrite it while this unit moves. So the cutover reads
 * it again and compares the mod revision it read, after checking that the layout still routes the unit as
 * planned. A transaction that loses to another layout change is built again from the new layout.
 */
final class UnitRecords {
  private UnitRecords() {}

  /** Whether the unit lives in the keyspace's layout record (rewritten by other units' cutovers). */
  static boolean inLayout(Migration m) {
    return UnitKinds.of(m).inLayout();
  }

  /** The unit's moving markers (one per directory entry). */
  static List<String> markers(CatalogPaths paths, Migration m) {
    return UnitKinds.of(m).markers(paths, m);
  }

  /**
   * Adds to {@code txn} the compares and writes that give the unit to the target (see {@link
   * UnitKind#handOver}). Returns null, or why the map no longer routes the unit as planned.
   */
  static String handOver(MigrationStore ms, Migration m, Txn.Builder txn) {
    return UnitKinds.of(m).handOver(new UnitKind.CutoverContext() {
      @Override
      public CatalogPaths paths() {
        return ms.paths();
      }

      @Override
      public MapEdits edits() {
        return ms.edits();
      }

      @Override
      public KeyValue one(String key) {
        return UnitRecords.one(ms, key);
      }
    }, m, txn);
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
