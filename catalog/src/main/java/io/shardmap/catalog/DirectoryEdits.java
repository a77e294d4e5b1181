package io.shardmap.catalog;

import static io.shardmap.catalog.MapEdits.keyspaceOf;
import static io.shardmap.catalog.MapEdits.registered;

import io.shardmap.catalog.MapEdits.Edit;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The map edits of directory keyspaces: the initial fallback, putting and deleting entries, the fallback,
 * and a move's cutover of entries. Each edit is a pure plan over a snapshot and the keyspace's moving
 * markers (see {@link MapEdits} for the rules every edit keeps); reached through {@link
 * MapEdits#forStrategy} or the typed accessor.
 */
public final class DirectoryEdits extends StrategyEditsBase {
  DirectoryEdits(MapEdits edits) {
    super(edits, Strategy.STRATEGY_DIRECTORY);
  }

  @Override
  public void create(DirectorySnapshot snap, CreateKeyspaceRequest req, KeyspaceSpec spec, Txn.Builder txn,
                     Set<String> owners, int maxTxnOps) {
    StrategyEdits.requireOnly(req, "fallback_shard");
    DirectoryLayout.Builder d = DirectoryLayout.newBuilder();
    if (!req.getFallbackShard().isEmpty()) {
      owners.add(registered(snap, "fallback_shard", req.getFallbackShard()));
      d.setFallbackShard(req.getFallbackShard()).setFallbackEpoch(1);
    }
    txn.put(paths.layout(spec.getName()), bytes(d.build()));
  }

  /** The most entries (or keys) one Put/DeleteDirectoryEntries may carry. */
  public static final int MAX_DIRECTORY_BATCH = 100;

  /**
   * Puts directory entries (key → registered shard). A new entry takes the fallback's epoch if it keeps the
   * fallback's owner, else one more (or, without a fallback, one past the kept fallback epoch); a changed
   * owner raises the entry's epoch. Entries being moved are refused; one compare on the moving guard (not
   * one per key, which would not fit etcd's limit with a full batch) makes that race-free.
   */
  public Edit<List<DirectoryEntry>> putEntries(DirectorySnapshot snap, MovingMarkers marked, ReferenceTables refs,
                                               String ks, List<DirectoryEntry> entries) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_DIRECTORY);
    int n = entries.size();
    if (n == 0 || n > MAX_DIRECTORY_BATCH) {
      throw ShardmapException.invalid("entries", "1 to " + MAX_DIRECTORY_BATCH + " entries per call, got " + n);
    }
    KeyType type = k.keyType();
    DirectoryTable d = k.directory();
    Route fallback = d.fallback();
    Txn.Builder txn = Txn.builder()
        .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
        // New entries take their epoch from the fallback's, so the fallback must not move meanwhile.
        .compare(Compare.modRevision(paths.layout(ks), k.layoutRevision()))
        .compare(marked.unchangedSince(paths));
    Set<String> owners = new LinkedHashSet<>();
    Map<String, Integer> seen = new HashMap<>();
    List<DirectoryEntry> written = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      DirectoryEntry e = entries.get(i);
      String field = "entries[" + i + "]";
      byte[] key = Keys.canonical(type, e.getKey(), field + ".key");
      Integer dup = seen.put(Keys.hex(key), i);
      if (dup != null) {
        throw ShardmapException.invalid(field + ".key", "the same key as entries[" + dup + "]");
      }
      marked.refuse(paths.movingEntry(ks, key), field + ".key", "entry " + Keys.describe(type, key));
      String shard = registered(snap, field + ".shard", e.getShard());
      owners.add(shard);
      Route old = d.entry(key);
      long epoch;
      if (old != null) {
        txn.compare(Compare.modRevision(paths.entry(ks, key), old.modRevision()));
        epoch = old.shard().equals(shard) ? old.epoch() : old.epoch() + 1;
      } else {
        txn.compare(Compare.absent(paths.entry(ks, key)));
        // Without a fallback the layout still keeps the last fallback epoch (raised past every deleted
        // entry), and the key may have routed at it before: start above it.
        epoch = fallback == null ? d.layout().getFallbackEpoch() + 1
            : fallback.shard().equals(shard) ? fallback.epoch() : fallback.epoch() + 1;
      }
      DirectoryEntry stored = DirectoryEntry.newBuilder().setKey(Keys.toProto(type, key)).setShard(shard)
          .setEpoch(epoch).build();
      txn.put(paths.entry(ks, key), bytes(stored));
      written.add(stored);
    }
    guardOwners(txn, ks, owners, refs);
    return new Edit<>(txn.build(), List.copyOf(written));
  }

  /**
   * Deletes directory entries (absent keys are compared absent and count for nothing); returns how many
   * were deleted. The deleted keys fall back to the fallback, whose epoch passes theirs.
   */
  public Edit<Integer> deleteEntries(DirectorySnapshot snap, MovingMarkers marked, String ks, List<Key> keys) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_DIRECTORY);
    int n = keys.size();
    if (n == 0 || n > MAX_DIRECTORY_BATCH) {
      throw ShardmapException.invalid("keys", "1 to " + MAX_DIRECTORY_BATCH + " keys per call, got " + n);
    }
    DirectoryTable d = k.directory();
    Txn.Builder txn = Txn.builder()
        .compare(Compare.modRevision(paths.spec(ks), k.specRevision()))
        .compare(Compare.modRevision(paths.layout(ks), k.layoutRevision()))
        .compare(marked.unchangedSince(paths));
    int deleted = 0;
    long maxEpoch = 0;
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < n; i++) {
      byte[] key = Keys.canonical(k.keyType(), keys.get(i), "keys[" + i + "]");
      if (!seen.add(Keys.hex(key))) {
        continue;
      }
      marked.refuse(paths.movingEntry(ks, key), "keys[" + i + "]", "entry " + Keys.describe(k.keyType(), key));
      Route old = d.entry(key);
      if (old == null) {
        txn.compare(Compare.absent(paths.entry(ks, key)));
        continue;
      }
      txn.compare(Compare.modRevision(paths.entry(ks, key), old.modRevision()));
      txn.delete(paths.entry(ks, key));
      maxEpoch = Math.max(maxEpoch, old.epoch());
      deleted++;
    }
    if (deleted > 0) {
      // The deleted keys now route to the fallback, or to no one until a fallback or a new entry comes;
      // either takes its epoch from the fallback epoch, which must therefore pass theirs so that no
      // key's epoch ever drops. Kept even while there is no fallback shard.
      DirectoryLayout next = d.layout().toBuilder()
          .setFallbackEpoch(Math.max(d.layout().getFallbackEpoch(), maxEpoch) + 1).build();
      txn.put(paths.layout(ks), bytes(next));
    }
    return new Edit<>(txn.build(), deleted);
  }

  /** Sets (a registered shard) or removes (empty {@code shard}) the directory's fallback. */
  public Edit<DirectoryLayout> setFallback(DirectorySnapshot snap, ReferenceTables refs, String ks, String shard) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_DIRECTORY);
    DirectoryLayout old = k.directory().layout();
    DirectoryLayout.Builder next = DirectoryLayout.newBuilder();
    Set<String> owners = Set.of();
    if (!shard.isEmpty()) {
      String s = registered(snap, "shard", shard);
      if (s.equals(old.getFallbackShard())) {
        throw ShardmapException.precondition("shard: '" + s + "' is already the fallback");
      }
      next.setFallbackShard(s).setFallbackEpoch(old.getFallbackEpoch() + 1);
      owners = Set.of(s);
    } else if (old.getFallbackShard().isEmpty()) {
      throw ShardmapException.precondition("shard: the keyspace has no fallback to remove");
    } else {
      // Keep the epoch so a fallback set later continues above it.
      next.setFallbackEpoch(old.getFallbackEpoch());
    }
    DirectoryLayout layout = next.build();
    Txn.Builder txn = layoutTxn(k, layout);
    guardOwners(txn, ks, owners, refs);
    return new Edit<>(txn.build(), layout);
  }

  /** The cutover of directory entries (each compared at its planned mod revision) to {@code target} at {@code epoch}. */
  public Txn.Builder handOverEntries(Txn.Builder txn, String ks, KeyType type, List<byte[]> keys,
                                     List<Long> plannedModRevisions, String target, long epoch) {
    for (int i = 0; i < keys.size(); i++) {
      byte[] key = keys.get(i);
      DirectoryEntry e = DirectoryEntry.newBuilder().setKey(Keys.toProto(type, key)).setShard(target)
          .setEpoch(epoch).build();
      txn.compare(Compare.modRevision(paths.entry(ks, key), plannedModRevisions.get(i)))
          .put(paths.entry(ks, key), bytes(e));
    }
    return txn;
  }
}
