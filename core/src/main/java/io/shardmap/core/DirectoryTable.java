package io.shardmap.core;

import io.shardmap.proto.v1.DirectoryLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * STRATEGY_DIRECTORY: explicit key → shard entries plus an optional fallback. Sized for millions of
 * entries: the entries are split by hash into {@value #CHUNKS} immutable chunks, and a change copies only
 * the chunks it touches, so snapshots stay immutable without copying the whole directory per change.
 *
 * <p>A copy may hold only the layout ({@link #withoutEntries()}): a client that loads a big directory
 * lazily keeps the fallback here and the entries it needs elsewhere. Such a table refuses to route,
 * because answering from the fallback alone would send every key with an entry to the wrong shard.
 */
public final class DirectoryTable implements RoutingTable {
  static final int CHUNKS = 4096;
  private static final Map<ByteKey, Route> EMPTY_CHUNK = Map.of();

  private final Map<ByteKey, Route>[] chunks;
  private final int size;
  private final Route fallback;
  private final DirectoryLayout layout;
  private final boolean entriesHeld;

  private DirectoryTable(Map<ByteKey, Route>[] chunks, int size, Route fallback, DirectoryLayout layout,
                         boolean entriesHeld) {
    this.chunks = chunks;
    this.size = size;
    this.fallback = fallback;
    this.layout = layout;
    this.entriesHeld = entriesHeld;
  }

  @SuppressWarnings("unchecked")
  public static DirectoryTable empty(DirectoryLayout layout, long layoutRevision) {
    Map<ByteKey, Route>[] chunks = new Map[CHUNKS];
    Arrays.fill(chunks, EMPTY_CHUNK);
    return new DirectoryTable(chunks, 0, fallbackRoute(layout, layoutRevision), layout, true);
  }

  /** The same layout and fallback without any entries; see the class comment. */
  public DirectoryTable withoutEntries() {
    DirectoryTable empty = empty(layout, 0);
    return new DirectoryTable(empty.chunks, 0, fallback, layout, false);
  }

  /** False for a layout-only copy ({@link #withoutEntries()}), which cannot route. */
  public boolean entriesHeld() {
    return entriesHeld;
  }

  private static Route fallbackRoute(DirectoryLayout layout, long revision) {
    return layout.getFallbackShard().isEmpty()
        ? null : new Route(layout.getFallbackShard(), layout.getFallbackEpoch(), null, revision);
  }

  public DirectoryLayout layout() {
    return layout;
  }

  /** The fallback route, or {@code null} when keys without an entry have no owner. */
  public Route fallback() {
    return fallback;
  }

  /** Entries held by this table (0 for a layout-only copy, whatever the directory holds). */
  public int size() {
    return size;
  }

  /** The entry for a key, or {@code null}; does not consult the fallback. */
  public Route entry(byte[] canonicalKey) {
    if (!entriesHeld) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this copy of the directory holds only its "
          + "layout, not its entries (a client loading it lazily routes its keys itself)");
    }
    ByteKey k = new ByteKey(canonicalKey);
    return chunks[k.hash & (CHUNKS - 1)].get(k);
  }

  /** The entry for the key, else the fallback, else {@code null}. */
  public Route route(byte[] canonicalKey) {
    Route r = entry(canonicalKey);
    return r != null ? r : fallback;
  }

  /**
   * Units are {@link UnitSpace#DIRECTORY_GROUPS} groups of keys by hash (a group at position g, four bytes
   * big-endian): entries are many and come and go, so load and size are counted per group, whose owners
   * are those of the entries in it (and the fallback).
   */
  @Override
  public int unitCount() {
    return UnitSpace.DIRECTORY_GROUPS;
  }

  @Override
  public int unitOf(long key) {
    return HashTable.bucketOf(XxHash64.hashInt64(key), UnitSpace.DIRECTORY_GROUPS);
  }

  @Override
  public int unitOf(byte[] canonicalKey) {
    return HashTable.bucketOf(XxHash64.hash(canonicalKey), UnitSpace.DIRECTORY_GROUPS);
  }

  @Override
  public Route unitRoute(int unit) {
    return null;
  }

  @Override
  public byte[] unitStart(int unit) {
    return unit == 0 ? UnitSpace.START : UnitSpace.int32(unit);
  }

  @Override
  public byte[] unitEnd(int unit) {
    return unit + 1 < UnitSpace.DIRECTORY_GROUPS ? UnitSpace.int32(unit + 1) : UnitSpace.END;
  }

  @Override
  public String describeUnit(int unit) {
    return "entry group " + unit + " of " + UnitSpace.DIRECTORY_GROUPS;
  }

  public DirectoryTable withLayout(DirectoryLayout newLayout, long revision) {
    return new DirectoryTable(chunks, size, fallbackRoute(newLayout, revision), newLayout, entriesHeld);
  }

  /** A new table with {@code removed} keys deleted and {@code puts} (canonical key → route) set. */
  public DirectoryTable apply(List<byte[]> removed, Map<byte[], Route> puts) {
    if (!entriesHeld) {
      throw new IllegalStateException("entry changes applied to a layout-only copy of a directory");
    }
    Map<Integer, Map<ByteKey, Route>> copies = new HashMap<>();
    int newSize = size;
    for (byte[] key : removed) {
      ByteKey k = new ByteKey(key);
      Map<ByteKey, Route> chunk = copies.computeIfAbsent(k.hash & (CHUNKS - 1),
          c -> new HashMap<>(chunks[c]));
      if (chunk.remove(k) != null) {
        newSize--;
      }
    }
    for (Map.Entry<byte[], Route> e : puts.entrySet()) {
      ByteKey k = new ByteKey(e.getKey());
      Map<ByteKey, Route> chunk = copies.computeIfAbsent(k.hash & (CHUNKS - 1),
          c -> new HashMap<>(chunks[c]));
      if (chunk.put(k, e.getValue()) == null) {
        newSize++;
      }
    }
    Map<ByteKey, Route>[] next = chunks.clone();
    copies.forEach((c, m) -> next[c] = m);
    return new DirectoryTable(next, newSize, fallback, layout, true);
  }

  /** Visits every entry (canonical key, route), in an order fixed for this instance. */
  public void forEach(BiConsumer<byte[], Route> visitor) {
    for (Map<ByteKey, Route> chunk : chunks) {
      chunk.forEach((k, r) -> visitor.accept(k.bytes, r));
    }
  }

  /** Up to {@code limit} entries starting at position {@code offset} of {@link #forEach}'s order. */
  public List<Map.Entry<byte[], Route>> page(long offset, int limit) {
    List<Map.Entry<byte[], Route>> out = new ArrayList<>(Math.min(limit, 1024));
    long skipped = 0;
    for (Map<ByteKey, Route> chunk : chunks) {
      if (skipped + chunk.size() <= offset) {
        skipped += chunk.size();
        continue;
      }
      for (Map.Entry<ByteKey, Route> e : chunk.entrySet()) {
        if (skipped++ < offset) {
          continue;
        }
        out.add(Map.entry(e.getKey().bytes, e.getValue()));
        if (out.size() == limit) {
          return out;
        }
      }
    }
    return out;
  }

  /** A byte[] usable as a hash key; its hash is the key's xxHash64, so chunking is uniform. */
  static final class ByteKey {
    final byte[] bytes;
    final int hash;

    ByteKey(byte[] bytes) {
      this.bytes = bytes;
      long h = XxHash64.hash(bytes);
      this.hash = (int) (h ^ (h >>> 32));
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof ByteKey k && k.hash == hash && Arrays.equals(k.bytes, bytes);
    }

    @Override
    public int hashCode() {
      return hash;
    }
  }

  @Override
  public void addOwners(java.util.Set<String> out) {
    if (fallback != null) {
      out.add(fallback.shard());
    }
    forEach((k, r) -> out.add(r.shard()));
  }
}
