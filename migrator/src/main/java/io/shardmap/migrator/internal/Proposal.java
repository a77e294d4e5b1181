package io.shardmap.migrator.internal;

import io.shardmap.core.KeyRange;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.store.Compare;
import java.util.List;

/**
 * What planning one unit found: its owner, target and epoch, the records to compare and the markers to
 * write, and the unit as recorded (a range, or a {@link MigrationUnit}). {@code keys}: keys that will be
 * rows of every table (directory entries), which must be storable in the key columns; else empty.
 */
record Proposal(String source, String target, long epoch, long recordRevision, KeyRange range,
                MigrationUnit unit, List<Compare> compares, List<String> markers, List<byte[]> keys) {
  Proposal {
    compares = List.copyOf(compares);
    markers = List.copyOf(markers);
    keys = List.copyOf(keys);
  }
}
