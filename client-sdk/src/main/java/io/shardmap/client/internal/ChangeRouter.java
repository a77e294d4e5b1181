package io.shardmap.client.internal;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.WatchResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The follower's decisions as pure steps on an immutable {@link ClientView}: what one watch message does to
 * the view, and whether a full read may replace it. No I/O, no clock, no publishing: {@link MapFollower}
 * runs the streams and publishes what these steps return, so the state machine is tested on snapshots alone.
 *
 * <p>The one effect a step leaves to its caller is filling the lazy caches: {@link Step#lazyChanges()} are
 * entry changes for caches named in the new view, to be applied before that view is published (a lookup
 * that sees the new map must find the caches at least as new).
 */
public final class ChangeRouter {
  /** Makes the cache of a directory keyspace that turned lazy, from its layout-only map at a revision. */
  @FunctionalInterface
  public interface LazyMaker {
    LazyDirectory make(KeyspaceMap layoutOnly, long revision);
  }

  /**
   * What one watch message does.
   *
   * @param view the view to publish (the same instance when nothing changed)
   * @param resync the directory asked for a full re-read; {@code view} is the old one
   * @param mapChanged the map changed (listeners are told); false for heartbeats and skipped changes
   * @param lazyChanges entry changes for the caches of {@code view}, by keyspace, at {@code revision}: every
   *     lazy keyspace this message changed is named, with an empty list when only its spec or fallback
   *     changed (the cache still has to learn the new fallback)
   * @param grown keyspaces that turned lazy in this step (held whole until now), for the log
   * @param revision the message's revision
   */
  public record Step(ClientView view, boolean resync, boolean mapChanged, Map<String, List<MapChange>> lazyChanges,
                     List<String> grown, long revision) {}

  /** Whether a full read made at {@code serverRevision} may replace the view. */
  public enum LoadDecision {
    /** At or after the view's revision (or the first load). */
    INSTALL,
    /** Older than the view, accepted because etcd went back in time (a restore): it is the only truth now. */
    INSTALL_OLDER,
    /** Older than the view from a server that lags etcd: keep the view and watch that server from it. */
    SERVER_BEHIND
  }

  private final int directoryCacheSize;
  private final LazyMaker lazyMaker;

  public ChangeRouter(int directoryCacheSize, LazyMaker lazyMaker) {
    this.directoryCacheSize = directoryCacheSize;
    this.lazyMaker = lazyMaker;
  }

  /**
   * A full read at {@code serverRevision} against the current view: a server behind the view is refused
   * unless {@code acceptOlder} (set only after a watch from the view's revision was refused with OUT_OF_RANGE,
   * which means etcd never reached that revision).
   */
  public static LoadDecision judgeLoad(ClientView view, long serverRevision, boolean acceptOlder) {
    if (view.snapshot() == null || serverRevision >= view.snapshot().revision()) {
      return LoadDecision.INSTALL;
    }
    return acceptOlder ? LoadDecision.INSTALL_OLDER : LoadDecision.SERVER_BEHIND;
  }

  /**
   * The view after a full read. The old caches go with the old map (a re-read means changes they depend on
   * may have been missed). An older map (see {@link LoadDecision#INSTALL_OLDER}) also takes the applied
   * revision back: everything reported before was from the history etcd lost.
   */
  public static ClientView loaded(ClientView view, DirectorySnapshot map, Map<String, Long> keyspaceLoadRevisions,
                                  Map<String, LazyDirectory> lazy, LoadDecision decision) {
    if (decision == LoadDecision.SERVER_BEHIND) {
      throw new IllegalArgumentException("a map from a server behind the client is not installed");
    }
    long applied = decision == LoadDecision.INSTALL_OLDER ? map.revision()
        : Math.max(view.appliedRevision(), map.revision());
    return new ClientView(map, lazy, keyspaceLoadRevisions, applied);
  }

  /** One watch message (a change, a heartbeat, or a request to re-read) applied to {@code view}. */
  public Step step(ClientView view, WatchResponse r) {
    long rev = r.getRevision();
    if (r.getResyncRequired()) {
      return new Step(view, true, false, Map.of(), List.of(), rev);
    }
    if (r.getProgress() || rev <= view.snapshot().revision()) {
      // A heartbeat, or a change the map already holds: either way the client is current up to rev.
      return new Step(view.withAppliedRevision(Math.max(view.appliedRevision(), rev)), false, false, Map.of(),
          List.of(), rev);
    }
    List<MapChange> changes = r.getChangesList();
    Map<String, Long> loadedAt = view.keyspaceLoadRevisions();
    if (!loadedAt.isEmpty()) {
      List<MapChange> kept = new ArrayList<>(changes.size());
      for (MapChange c : changes) {
        Long at = loadedAt.get(c.getKeyspace());
        if (at == null || rev > at) {
          kept.add(c);
        }
      }
      changes = kept;
      if (loadedAt.values().stream().allMatch(at -> at <= rev)) {
        loadedAt = Map.of();
      }
    }
    DirectorySnapshot before = view.snapshot();
    Map<String, LazyDirectory> lazies = view.lazy();
    List<MapChange> forMap = changes;
    Map<String, List<MapChange>> lazyChanges = new HashMap<>();
    Set<String> dropped = Set.of();
    if (!lazies.isEmpty()) {
      // Entry changes of lazy keyspaces go to their caches; everything else (spec, fallback) to the map.
      // A lazy keyspace dropped in this revision ends here: all its changes go to the map, where a
      // re-creation in the same revision starts a new, whole keyspace.
      dropped = new HashSet<>();
      for (MapChange c : changes) {
        if (c.getChangeCase() == MapChange.ChangeCase.KEYSPACE_DROPPED && lazies.containsKey(c.getKeyspace())) {
          dropped.add(c.getKeyspace());
        }
      }
      forMap = new ArrayList<>(changes.size());
      for (MapChange c : changes) {
        if (!lazies.containsKey(c.getKeyspace()) || dropped.contains(c.getKeyspace())) {
          forMap.add(c);
          continue;
        }
        // Every change of a lazy keyspace names its cache, even with no entry change: a new fallback must
        // reach the cached "no entry" answers, which follow it.
        List<MapChange> mine = lazyChanges.computeIfAbsent(c.getKeyspace(), k -> new ArrayList<>());
        if (c.getChangeCase() == MapChange.ChangeCase.ENTRY
            || c.getChangeCase() == MapChange.ChangeCase.ENTRY_REMOVED) {
          mine.add(c);
        } else {
          forMap.add(c);
        }
      }
    }
    DirectorySnapshot applied = before.apply(rev, forMap);
    // Entry changes reach a cache only while its keyspace's map is sound (a broken map routes nothing).
    lazyChanges.keySet().removeIf(ks -> {
      KeyspaceMap k = applied.keyspaces().get(ks);
      return k == null || k.broken() != null;
    });
    DirectorySnapshot after = applied;
    // A directory held whole that grew past the cache size turns lazy, so memory stays bounded.
    Map<String, LazyDirectory> grown = new HashMap<>();
    for (MapChange c : forMap) {
      String ks = c.getKeyspace();
      if (c.getChangeCase() != MapChange.ChangeCase.ENTRY || grown.containsKey(ks)) {
        continue;
      }
      KeyspaceMap k = after.keyspaces().get(ks);
      if (k != null && k.broken() == null && k.strategy() == Strategy.STRATEGY_DIRECTORY
          && k.directory().entriesHeld() && k.directory().size() > directoryCacheSize) {
        KeyspaceMap layoutOnly = k.withoutDirectoryEntries();
        Map<String, KeyspaceMap> ksMaps = new HashMap<>(after.keyspaces());
        ksMaps.put(ks, layoutOnly);
        after = new DirectorySnapshot(after.revision(), ksMaps, after.shards());
        grown.put(ks, lazyMaker.make(layoutOnly, rev));
      }
    }
    Map<String, LazyDirectory> nextLazy = lazies;
    if (!grown.isEmpty() || !dropped.isEmpty()) {
      nextLazy = new HashMap<>(lazies);
      for (String ks : dropped) {
        nextLazy.remove(ks);
      }
      nextLazy.putAll(grown);
    }
    ClientView next = new ClientView(after, nextLazy, loadedAt, Math.max(view.appliedRevision(), rev));
    return new Step(next, false, true, lazyChanges, List.copyOf(new java.util.TreeSet<>(grown.keySet())), rev);
  }
}
