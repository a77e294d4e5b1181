package io.shardmap.client.internal;

import io.shardmap.core.DirectorySnapshot;
import java.util.Map;

/**
 * What lookups read from the follower, published whole through one volatile so that a reader never sees a
 * map without the caches it needs (or an applied revision ahead of the map). Immutable; the lazy caches it
 * names are the mutable part, and only the follower thread changes them, before publishing the view that
 * needs the change.
 *
 * @param snapshot the map; null before the first load
 * @param lazy the caches of the directory keyspaces held lazily, by keyspace
 * @param keyspaceLoadRevisions after a full read, the revision each keyspace was read at: a watched change
 *     at or below it is already in the map (emptied once the watch has passed them all)
 * @param appliedRevision the revision the map is current to (changes and heartbeats), reported to the directory
 */
public record ClientView(DirectorySnapshot snapshot, Map<String, LazyDirectory> lazy,
                         Map<String, Long> keyspaceLoadRevisions, long appliedRevision) {
  public ClientView {
    lazy = Map.copyOf(lazy);
    keyspaceLoadRevisions = Map.copyOf(keyspaceLoadRevisions);
  }

  /** Before the first load. */
  public static final ClientView EMPTY = new ClientView(null, Map.of(), Map.of(), 0);

  ClientView withAppliedRevision(long revision) {
    return revision == appliedRevision ? this : new ClientView(snapshot, lazy, keyspaceLoadRevisions, revision);
  }
}
