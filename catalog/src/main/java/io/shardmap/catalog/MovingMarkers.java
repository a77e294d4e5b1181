package io.shardmap.catalog;

import io.shardmap.core.ShardmapException;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * A keyspace's moving markers as etcd held them at {@code revision} (marker key → migration id), the
 * largest of their mod revisions, and the refuse rules every map edit applies to them.
 *
 * <p>The migrator writes a marker ({@code moving/{hex start}}, {@code moving/bucket/N}, {@code moving/ring},
 * {@code moving/entry/HEX}; see {@link CatalogPaths}) in a transaction that compares the mod revision of the
 * records of the unit it marks and rewrites the keyspace's moving guard. Why an edit and a marker can
 * never both commit: an edit of a unit compares that unit's records (pinned from its snapshot) and the
 * absence of the unit's marker, and rewrites or deletes those records; an edit of a whole keyspace (drop,
 * reshard, directory batches) compares the moving guard unchanged since this read ({@link
 * #unchangedSince}). etcd applies one transaction at a time: if the marker's comes first, the edit's
 * compare fails and its re-plan reads the marker here and refuses (FAILED_PRECONDITION, not a retry until
 * ABORTED); if the edit's comes first, the unit's records have new mod revisions (etcd never reuses one),
 * so the marker's compare fails and the migrator must read the unit again.
 *
 * <p>Markers are not part of the watched maps: planners read them from etcd (one linearizable prefix
 * read) on every attempt. The guard compare is needed because etcd compares are per key and a new
 * marker's key is not known in advance, and comparing every possible marker would not fit etcd's limit.
 */
public record MovingMarkers(String keyspace, Map<String, String> ids, long revision, long lastWrite) {
  public MovingMarkers {
    ids = Map.copyOf(new TreeMap<>(ids));
  }

  /** One linearizable read of the markers of {@code keyspace}, made while planning (nothing written yet). */
  public static MovingMarkers read(MetaStore store, CatalogPaths paths, String keyspace, Duration timeout) {
    RangeResult rr;
    try {
      rr = store.getPrefix(paths.movingPrefix(keyspace)).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStoreRead("the moving markers of keyspace '" + keyspace + "'", e);
    }
    return of(keyspace, paths, rr);
  }

  /** The markers among the records of a read of (at least) the keyspace's moving prefix. */
  public static MovingMarkers of(String keyspace, CatalogPaths paths, RangeResult rr) {
    String prefix = paths.movingPrefix(keyspace);
    Map<String, String> ids = new TreeMap<>();
    long lastWrite = 0;
    for (KeyValue kv : rr.kvs()) {
      if (kv.key().startsWith(prefix)) {
        ids.put(kv.key(), new String(kv.value(), StandardCharsets.UTF_8));
        lastWrite = Math.max(lastWrite, kv.modRevision());
      }
    }
    return new MovingMarkers(keyspace, ids, rr.revision(), lastWrite);
  }

  /** No markers, as read at {@code revision}. */
  public static MovingMarkers none(String keyspace, long revision) {
    return new MovingMarkers(keyspace, Map.of(), revision, 0);
  }

  /** The migration whose marker is at {@code markerKey}, or null. */
  public String at(String markerKey) {
    return ids.get(markerKey);
  }

  /**
   * Refuses a change of a marked unit. The plan must also compare the marker's absence (or {@link
   * #unchangedSince}): that compare, not this read, makes the refusal race-free.
   *
   * @param field the request field that names the unit
   * @param what the unit, e.g. "100..200" or "bucket 3"
   */
  public void refuse(String markerKey, String field, String what) {
    String id = ids.get(markerKey);
    if (id != null) {
      throw ShardmapException.precondition(field + ": " + what + " of keyspace '" + keyspace
          + "' is being moved by migration '" + id + "'; wait for it or cancel it (migrator cancel " + id + ")");
    }
  }

  /**
   * Refuses a change of the whole keyspace while any of its units moves. The plan must also compare
   * {@link #unchangedSince}.
   */
  public void refuseAny(String field) {
    if (ids.isEmpty()) {
      return;
    }
    Set<String> migrations = new TreeSet<>(ids.values());
    boolean one = migrations.size() == 1;
    throw ShardmapException.precondition(field + ": keyspace '" + keyspace + "' has units being moved by "
        + (one ? "migration '" : "migrations '") + String.join("', '", migrations) + "'; wait for "
        + (one ? "it" : "them") + " or cancel " + (one ? "it" : "them") + " (migrator cancel "
        + String.join("; migrator cancel ", migrations) + ")");
  }

  /** "No marker of the keyspace was written since this read": every marker transaction rewrites the guard. */
  public Compare unchangedSince(CatalogPaths paths) {
    return new Compare(paths.movingGuard(keyspace), Compare.Target.MOD_REVISION, Compare.Op.LESS, revision + 1);
  }
}
