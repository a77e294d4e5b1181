package io.shardmap.catalog;

import com.google.protobuf.MessageLite;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.RangeTable;
import io.shardmap.core.Ring;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The one implementation of the map edits (every change of who owns which keys, made by the directory
 * server's admin API and by the migrator): each a pure plan over a {@link DirectorySnapshot} and the keyspace's
 * {@link MovingMarkers}, returning the records it writes and one {@link Txn} built with {@link
 * CatalogPaths} whose compares pin every record the plan read. Commit it with {@link CatalogTxns}.
 *
 * <p>The rules every edit keeps (docs/data-model.md):
 * <ul>
 *   <li>an edit that changes who owns a key raises that key's epoch past every epoch it had;
 *   <li>the ownership guard: every write that makes a shard an owner compares the shard's registration
 *       present and rewrites {@code shardrefs/{shard}} ({@link #guardOwners}), which deregistration
 *       compares unchanged since the snapshot that showed the shard owning nothing;
 *   <li>a unit being moved by the migrator is refused, race-free (see {@link MovingMarkers}).
 * </ul>
 * Refusals are ShardmapExceptions naming the request field and the rule; nothing is written then.
 */
public final class MapEdits {
  private final CatalogPaths paths;

  public MapEdits(CatalogPaths paths) {
    this.paths = paths;
  }

  public CatalogPaths paths() {
    return paths;
  }

  /** What an edit writes ({@code txn}) and the records it produces ({@code value}). */
  public record Edit<T>(Txn txn, T value) {}

  /** The two ranges a split leaves. */
  public record Split(Route left, Route right) {}

  /** A layout edit with the share of the key space that changes owner. */
  public record LayoutChange<L>(L layout, double movedFraction) {}

  /** The keyspace {@code name}, which must use {@code strategy}; field names the request field. */
  public static KeyspaceMap keyspaceOf(DirectorySnapshot snap, String field, String name, Strategy strategy) {
    Names.keyspace(field, name);
    KeyspaceMap k = snap.keyspace(name);
    if (k.strategy() != strategy) {
      throw ShardmapException.precondition("keyspace '" + name + "' uses " + k.strategy() + "; this call "
          + "only applies to " + strategy + " keyspaces");
    }
    return k;
  }

  /** {@code shard}, which must be registered in {@code snap} (NOT_FOUND naming {@code field} if not). */
  public static String registered(DirectorySnapshot snap, String field, String shard) {
    Names.shard(field, shard);
    if (!snap.shards().containsKey(shard)) {
      throw ShardmapException.notFound(field + ": shard '" + shard + "' is not registered");
    }
    return shard;
  }

  /** The ownership guard: every owner is registered at commit time, and is marked as an owner. */
  public Txn.Builder guardOwners(Txn.Builder txn, Set<String> owners) {
    for (String s : owners) {
      txn.compare(Compare.present(paths.shard(s)));
      txn.put(paths.shardRef(s), new byte[0]);
    }
    return txn;
  }

  // ---------------------------------------------------------------- range strategy

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
  public Edit<Route> reassignRange(DirectorySnapshot snap, MovingMarkers markers, String ks, KeyRange range,
                                   String target, long expectedEpoch) {
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
    guardOwners(txn, Set.of(target));
    return new Edit<>(txn.build(), moved);
  }

  // ---------------------------------------------------------------- layouts held in one record

  /** A rewrite of the keyspace's layout record, pinning the spec and the layout as in the snapshot. */
  public Txn.Builder layoutTxn(KeyspaceMap k, MessageLite newLayout) {
    return Txn.builder()
        .compare(Compare.modRevision(paths.spec(k.name()), k.specRevision()))
        .compare(Compare.modRevision(paths.layout(k.name()), k.layoutRevision()))
        .put(paths.layout(k.name()), bytes(newLayout));
  }

  /** Gives hash bucket {@code bucket} to {@code target} at epoch + 1. */
  public Edit<BucketAssignment> reassignBucket(DirectorySnapshot snap, MovingMarkers markers, String ks, int bucket,
                                               String target, long expectedEpoch) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_HASH);
    HashLayout h = k.hash().layout();
    if (bucket < 0 || bucket >= h.getBucketsCount()) {
      throw ShardmapException.invalid("bucket", "must be 0-" + (h.getBucketsCount() - 1) + ", got " + bucket);
    }
    registered(snap, "shard", target);
    BucketAssignment b = h.getBuckets(bucket);
    String marker = paths.movingBucket(ks, bucket);
    markers.refuse(marker, "bucket", "bucket " + bucket);
    if (expectedEpoch != 0 && expectedEpoch != b.getEpoch()) {
      throw ShardmapException.precondition("expected_epoch: bucket " + bucket + " is at epoch "
          + b.getEpoch() + ", not " + expectedEpoch);
    }
    if (b.getShard().equals(target)) {
      throw ShardmapException.precondition("shard: bucket " + bucket + " is already owned by '" + target + "'");
    }
    BucketAssignment nb = BucketAssignment.newBuilder().setShard(target).setEpoch(b.getEpoch() + 1).build();
    HashLayout next = h.toBuilder().setBuckets(bucket, nb).build();
    // Race-free like a range's: the migrator's marker transaction compares the layout's mod revision.
    Txn.Builder txn = layoutTxn(k, next).compare(Compare.absent(marker));
    guardOwners(txn, Set.of(target));
    return new Edit<>(txn.build(), nb);
  }

  /** Replaces every bucket (the new list names a registered shard per bucket); every epoch passes all old ones. */
  public Edit<LayoutChange<HashLayout>> reshardHash(DirectorySnapshot snap, MovingMarkers markers, String ks,
                                                    List<String> buckets) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_HASH);
    HashLayout h = k.hash().layout();
    markers.refuseAny("buckets");
    int n = buckets.size();
    if (n == 0 || n > HashTable.MAX_BUCKETS) {
      throw ShardmapException.invalid("buckets", "1 to " + HashTable.MAX_BUCKETS + " buckets, got " + n);
    }
    Set<String> owners = new LinkedHashSet<>();
    List<String> before = new ArrayList<>();
    long maxEpoch = 0;
    for (BucketAssignment b : h.getBucketsList()) {
      before.add(b.getShard());
      maxEpoch = Math.max(maxEpoch, b.getEpoch());
    }
    for (int i = 0; i < n; i++) {
      owners.add(registered(snap, "buckets[" + i + "]", buckets.get(i)));
    }
    if (before.equals(buckets)) {
      throw ShardmapException.precondition("buckets: the keyspace already has exactly these buckets");
    }
    // Every bucket's keys may have changed owner, so every epoch moves past all previous ones.
    HashLayout.Builder next = HashLayout.newBuilder();
    for (String s : buckets) {
      next.addBuckets(BucketAssignment.newBuilder().setShard(s).setEpoch(maxEpoch + 1));
    }
    double moved = HashTable.movedFraction(before, buckets);
    HashLayout layout = next.build();
    Txn.Builder txn = layoutTxn(k, layout).compare(markers.unchangedSince(paths));
    guardOwners(txn, owners);
    return new Edit<>(txn.build(), new LayoutChange<>(layout, moved));
  }

  /**
   * Adds {@code count} virtual nodes of registered shard {@code shard} to a ring. Refused while a ring
   * node joins or leaves by migration; the transaction compares that marker absent.
   *
   * @param field the request field naming the keyspace in a refusal
   */
  public Edit<LayoutChange<RingLayout>> addRingNodes(DirectorySnapshot snap, MovingMarkers markers, String ks,
                                                     String shard, int count, String field) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_CONSISTENT_HASH);
    registered(snap, "shard", shard);
    markers.refuse(paths.movingRing(ks), field, "a ring node");
    if (count < 1 || count > Ring.MAX_VNODES_PER_SHARD) {
      throw ShardmapException.invalid("vnodes", "must be 1-" + Ring.MAX_VNODES_PER_SHARD + ", got " + count);
    }
    Ring before = k.ring();
    RingLayout layout = before.withAddedNodes(shard, count);
    double moved = Ring.movedFraction(before, Ring.of(layout, 0));
    Txn.Builder txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(ks)));
    guardOwners(txn, Set.of(shard));
    return new Edit<>(txn.build(), new LayoutChange<>(layout, moved));
  }

  /** Removes {@code count} (0: all) virtual nodes of {@code shard} from a ring; see {@link #addRingNodes}. */
  public Edit<LayoutChange<RingLayout>> removeRingNodes(DirectorySnapshot snap, MovingMarkers markers, String ks,
                                                        String shard, int count, String field) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_CONSISTENT_HASH);
    Names.shard("shard", shard);
    markers.refuse(paths.movingRing(ks), field, "a ring node");
    if (count < 0) {
      throw ShardmapException.invalid("vnodes", "must be 0 (all) or a positive count, got " + count);
    }
    Ring before = k.ring();
    RingLayout layout = before.withRemovedNodes(shard, count);
    double moved = Ring.movedFraction(before, Ring.of(layout, 0));
    Txn txn = layoutTxn(k, layout).compare(Compare.absent(paths.movingRing(ks))).build();
    return new Edit<>(txn, new LayoutChange<>(layout, moved));
  }

  // ---------------------------------------------------------------- directory strategy

  /** The most entries (or keys) one Put/DeleteDirectoryEntries may carry. */
  public static final int MAX_DIRECTORY_BATCH = 100;

  /**
   * Puts directory entries (key → registered shard). A new entry takes the fallback's epoch if it keeps the
   * fallback's owner, else one more (or, without a fallback, one past the kept fallback epoch); a changed
   * owner raises the entry's epoch. Entries being moved are refused; one compare on the moving guard (not
   * one per key, which would not fit etcd's limit with a full batch) makes that race-free.
   */
  public Edit<List<DirectoryEntry>> putEntries(DirectorySnapshot snap, MovingMarkers marked, String ks,
                                               List<DirectoryEntry> entries) {
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
    guardOwners(txn, owners);
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
  public Edit<DirectoryLayout> setFallback(DirectorySnapshot snap, String ks, String shard) {
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
    guardOwners(txn, owners);
    return new Edit<>(txn.build(), layout);
  }

  // ---------------------------------------------------------------- geographic strategy

  /**
   * Routes {@code region} to registered {@code shard} (adding the region if new), and makes it the default
   * region if asked: unknown regions then change owner with it, so its epoch passes every epoch they could
   * have had. Refused while any region of the keyspace is being moved: listing a region, or changing the
   * default, changes which keys the default region's unit holds (the guard compare makes it race-free).
   */
  public Edit<GeoLayout> setRegion(DirectorySnapshot snap, MovingMarkers markers, String ks, String regionName,
                                   String shardName, boolean makeDefault) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_GEOGRAPHIC);
    markers.refuseAny("region");
    String region = Names.region("region", regionName);
    String shard = registered(snap, "shard", shardName);
    GeoLayout g = k.geo().layout();
    Route current = k.geo().route(region);
    boolean known = k.geo().regions().containsKey(region);
    if (known && current.shard().equals(shard) && (!makeDefault || g.getDefaultRegion().equals(region))) {
      throw ShardmapException.precondition("region '" + region + "' already routes to '" + shard + "'");
    }
    long epoch = current.shard().equals(shard) ? current.epoch() : current.epoch() + 1;
    GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(makeDefault ? region : g.getDefaultRegion());
    boolean replaced = false;
    for (RegionAssignment r : g.getRegionsList()) {
      if (r.getRegion().equals(region)) {
        next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
        replaced = true;
      } else {
        next.addRegions(r);
      }
    }
    if (!replaced) {
      next.addRegions(RegionAssignment.newBuilder().setRegion(region).setShard(shard).setEpoch(epoch));
    }
    GeoLayout layout = next.build();
    if (makeDefault && !g.getDefaultRegion().equals(region)) {
      // Unknown regions change owner with the default: bump past every epoch they could have had.
      long max = 0;
      for (RegionAssignment r : layout.getRegionsList()) {
        max = Math.max(max, r.getEpoch());
      }
      GeoLayout.Builder bumped = layout.toBuilder();
      for (int i = 0; i < bumped.getRegionsCount(); i++) {
        if (bumped.getRegions(i).getRegion().equals(region)) {
          bumped.setRegions(i, bumped.getRegions(i).toBuilder().setEpoch(max + 1));
        }
      }
      layout = bumped.build();
    }
    Txn.Builder txn = layoutTxn(k, layout).compare(markers.unchangedSince(paths));
    guardOwners(txn, Set.of(shard));
    return new Edit<>(txn.build(), layout);
  }

  /**
   * Removes a region (not the default one): its keys route to the default region, whose epoch passes theirs.
   * Refused while any region of the keyspace is being moved, as {@link #setRegion}.
   */
  public Edit<GeoLayout> removeRegion(DirectorySnapshot snap, MovingMarkers markers, String ks, String regionName) {
    KeyspaceMap k = keyspaceOf(snap, "keyspace", ks, Strategy.STRATEGY_GEOGRAPHIC);
    markers.refuseAny("region");
    String region = Names.region("region", regionName);
    GeoLayout g = k.geo().layout();
    Route removed = k.geo().regions().get(region);
    if (removed == null) {
      throw ShardmapException.notFound("region: '" + region + "' is not a region of keyspace '" + ks + "'");
    }
    if (g.getDefaultRegion().equals(region)) {
      throw ShardmapException.precondition("region: '" + region + "' is the default region; make "
          + "another region the default first");
    }
    GeoLayout.Builder next = GeoLayout.newBuilder().setDefaultRegion(g.getDefaultRegion());
    for (RegionAssignment r : g.getRegionsList()) {
      if (r.getRegion().equals(region)) {
        continue;
      }
      if (r.getRegion().equals(g.getDefaultRegion())) {
        // The removed region's keys now route here: its epoch passes theirs.
        next.addRegions(r.toBuilder().setEpoch(Math.max(r.getEpoch(), removed.epoch()) + 1));
      } else {
        next.addRegions(r);
      }
    }
    GeoLayout layout = next.build();
    return new Edit<>(layoutTxn(k, layout).compare(markers.unchangedSince(paths)).build(), layout);
  }

  // ---------------------------------------------------------------- a move's cutover

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

  /** The cutover of hash bucket {@code bucket} (as read at {@code layoutRevision}) to {@code target}, epoch + 1. */
  public Txn.Builder handOverBucket(Txn.Builder txn, String ks, HashLayout h, long layoutRevision, int bucket,
                                    String target) {
    BucketAssignment b = h.getBuckets(bucket);
    HashLayout next = h.toBuilder().setBuckets(bucket, BucketAssignment.newBuilder().setShard(target)
        .setEpoch(b.getEpoch() + 1)).build();
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision)).put(paths.layout(ks), bytes(next));
  }

  /**
   * The cutover of geographic region {@code region} (as read at {@code layoutRevision}) to {@code target} at
   * its epoch + 1. For the default region the unlisted names move with it and route at that epoch too.
   */
  public Txn.Builder handOverRegion(Txn.Builder txn, String ks, GeoLayout g, long layoutRevision, String region,
                                    String target) {
    GeoLayout.Builder next = g.toBuilder();
    for (int i = 0; i < next.getRegionsCount(); i++) {
      RegionAssignment r = next.getRegions(i);
      if (r.getRegion().equals(region)) {
        next.setRegions(i, r.toBuilder().setShard(target).setEpoch(r.getEpoch() + 1));
      }
    }
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision)).put(paths.layout(ks), bytes(next.build()));
  }

  /** The cutover of one ring node of {@code shard} joining (or leaving) the ring read at {@code layoutRevision}. */
  public Txn.Builder handOverRingNode(Txn.Builder txn, String ks, RingLayout layout, long layoutRevision,
                                      String shard, boolean join) {
    return txn.compare(Compare.modRevision(paths.layout(ks), layoutRevision))
        .put(paths.layout(ks), bytes(ringStep(layout, shard, join)));
  }

  /** The layout after one node of {@code shard} joins (or leaves): the epoch rules of Add/RemoveRingNodes. */
  public static RingLayout ringStep(RingLayout layout, String shard, boolean join) {
    Ring ring = Ring.of(layout, 0);
    return join ? ring.withAddedNodes(shard, 1) : ring.withRemovedNodes(shard, 1);
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

  private static byte[] bytes(MessageLite m) {
    return m.toByteArray();
  }
}
