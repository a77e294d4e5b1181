package io.shardmap.core;

import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Shard;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every keyspace map and every shard at one etcd revision: the value readers see. Immutable; a change
 * builds a new snapshot sharing everything it did not touch, and the holder swaps it in atomically, so
 * readers never lock.
 */
public final class DirectorySnapshot {
  private final long revision;
  private final Map<String, KeyspaceMap> keyspaces;
  private final Map<String, Shard> shards;

  public DirectorySnapshot(long revision, Map<String, KeyspaceMap> keyspaces, Map<String, Shard> shards) {
    this.revision = revision;
    this.keyspaces = Collections.unmodifiableMap(keyspaces);
    this.shards = Collections.unmodifiableMap(shards);
  }

  public static DirectorySnapshot empty(long revision) {
    return new DirectorySnapshot(revision, Map.of(), Map.of());
  }

  public long revision() {
    return revision;
  }

  public Map<String, KeyspaceMap> keyspaces() {
    return keyspaces;
  }

  public Map<String, Shard> shards() {
    return shards;
  }

  /** The keyspace, or NOT_FOUND naming it. */
  public KeyspaceMap keyspace(String name) {
    KeyspaceMap k = keyspaces.get(name);
    if (k == null) {
      throw ShardmapException.notFound("keyspace '" + name + "' does not exist");
    }
    return k;
  }

  public Shard shard(String name) {
    Shard s = shards.get(name);
    if (s == null) {
      throw ShardmapException.notFound("shard '" + name + "' is not registered");
    }
    return s;
  }

  /**
   * The snapshot after the changes of one revision. Layout changes of a keyspace are applied together
   * (see {@link KeyspaceMap#apply}); spec changes first, so a keyspace created in this revision exists
   * before its layout is applied.
   */
  public DirectorySnapshot apply(long newRevision, List<MapChange> changes) {
    if (newRevision < revision || (newRevision == revision && !changes.isEmpty())) {
      throw new IllegalArgumentException("revision " + newRevision + " is not after " + revision);
    }
    Map<String, KeyspaceMap> ks = null;
    Map<String, Shard> sh = null;
    Map<String, List<MapChange>> layoutChanges = new LinkedHashMap<>();
    for (MapChange c : changes) {
      long rev = c.getModRevision() != 0 ? c.getModRevision() : newRevision;
      switch (c.getChangeCase()) {
        case SHARD -> {
          sh = sh != null ? sh : new HashMap<>(shards);
          sh.put(c.getShard().getName(), c.getShard().toBuilder().setRevision(rev).build());
        }
        case SHARD_REMOVED -> {
          sh = sh != null ? sh : new HashMap<>(shards);
          sh.remove(c.getShardRemoved());
        }
        case SPEC -> {
          ks = ks != null ? ks : new HashMap<>(keyspaces);
          KeyspaceMap old = ks.get(c.getKeyspace());
          ks.put(c.getKeyspace(), old == null
              ? KeyspaceMap.withoutLayout(c.getSpec(), rev)
              : old.withSpec(c.getSpec(), rev));
        }
        case KEYSPACE_DROPPED -> {
          ks = ks != null ? ks : new HashMap<>(keyspaces);
          ks.remove(c.getKeyspace());
          layoutChanges.remove(c.getKeyspace());
        }
        case CHANGE_NOT_SET -> { }
        default -> layoutChanges.computeIfAbsent(c.getKeyspace(), k -> new ArrayList<>()).add(c);
      }
    }
    for (Map.Entry<String, List<MapChange>> e : layoutChanges.entrySet()) {
      Map<String, KeyspaceMap> current = ks != null ? ks : keyspaces;
      KeyspaceMap k = current.get(e.getKey());
      if (k == null) {
        // Layout records without a spec: left behind by nothing we write; ignore rather than guess a spec.
        continue;
      }
      ks = ks != null ? ks : new HashMap<>(keyspaces);
      ks.put(e.getKey(), k.apply(newRevision, e.getValue()));
    }
    return new DirectorySnapshot(newRevision, ks != null ? ks : keyspaces, sh != null ? sh : shards);
  }
}
