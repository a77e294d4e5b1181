package io.shardmap.catalog;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import java.util.ArrayList;
import java.util.List;

/**
 * One keyspace (and the shard registrations) as a {@link DirectorySnapshot}, with its moving markers and
 * the reference-table records, built from three etcd prefix reads: what a writer that does not follow the
 * watch (the migrator) plans {@link MapEdits} on. The keyspace's records and markers come from one read, so
 * they are consistent with each other; the edits' compares pin whatever they derived from any read.
 */
public record KeyspaceRead(DirectorySnapshot snapshot, MovingMarkers markers, ReferenceTables references) {
  /**
   * @param shards a read of {@link CatalogPaths#shardsPrefix()}
   * @param keyspace a read of {@link CatalogPaths#keyspacePrefix} of {@code ks}
   * @param references a read of {@link CatalogPaths#referenceTablesPrefix()}
   */
  public static KeyspaceRead of(CatalogPaths paths, String ks, RangeResult shards, RangeResult keyspace,
                                RangeResult references) {
    List<KeyValue> all = new ArrayList<>(shards.kvs());
    all.addAll(keyspace.kvs());
    DirectorySnapshot snap = DirectorySnapshot.empty(0).apply(Math.max(shards.revision(), keyspace.revision()),
        new ChangeDecoder(paths).toChanges(all));
    return new KeyspaceRead(snap, MovingMarkers.of(ks, paths, keyspace), ReferenceTables.of(paths, references));
  }
}
