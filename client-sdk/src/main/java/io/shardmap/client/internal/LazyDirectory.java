package io.shardmap.client.internal;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.XxHash64;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.MapChange;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReferenceFieldUpdater;

/**
 * One directory keyspace the client does not hold whole: a bounded cache of per-key answers, filled on a
 * miss by asking a directory server ({@link Fetcher}) and kept current by the watch stream
 * ({@link #apply}), which the follower thread feeds with this keyspace's entry changes.
 *
 * <p><b>Ordering.</b> Every answer carries the etcd revision it reflects, and a key's answer is only ever
 * replaced by one with a higher revision ({@link Node#offer}). A fetched answer may be newer than what the
 * watch has applied (the server is ahead of our stream) or older (a lagging replica); the watch may change
 * the key while a fetch is in flight. Revisions, not epochs, order the answers: revisions are one total
 * order over all of etcd, while one epoch can stand for different states of a key (an entry on the
 * fallback's shard has the fallback's epoch). The data model's promise that a key's epoch never decreases
 * then holds for this cache because it holds for etcd's revisions.
 *
 * <p><b>The fetch/watch race.</b> A watch change for a key that has no node is dropped (the cache holds
 * only keys somebody asked for). So a miss first publishes a loading node, then reads {@link #floor} — the
 * revision of the last batch the watch started applying — and accepts only answers at or past it. The
 * watch thread writes the floor before it looks up nodes. Either the miss read the new floor (so the answer
 * includes that batch), or its node was in the map before the watch looked (so the watch updated it).
 *
 * <p><b>Answers without an entry</b> (the key falls to the fallback, or to nobody) are cached too, with the
 * fallback route of their revision. They follow later fallback changes without being touched: while the
 * watch's fallback ({@link #fallback}) is at least as new as the answer, the watch's fallback is returned.
 * An entry created later replaces the answer through the watch like any other change.
 *
 * <p><b>Reads</b> take no lock and, on a hit, allocate nothing: a per-thread probe key looks the node up in
 * a {@link ConcurrentHashMap}. Eviction is CLOCK (second chance) over a slot array, under a lock taken only
 * when a new key is admitted, i.e. on a miss that is about to make an RPC anyway. Concurrent misses for one
 * key share one fetch.
 */
public final class LazyDirectory {
  /** What the directory said about one key at one revision. */
  record Answer(Route route, boolean noEntry, long revision) {}

  /** Asks a directory server for one key's answer, at {@code atLeastRevision} or later. */
  interface Fetcher {
    /**
     * @return the answer, whose revision is at least {@code atLeastRevision}
     * @throws ShardmapException UNAVAILABLE (naming the key and keyspace) when no server answered in time
     */
    Answer fetch(String keyspace, KeyType type, byte[] canonicalKey, long atLeastRevision);
  }

  /** The fallback as of the last batch the watch applied to this keyspace. */
  private record FallbackState(Route route, long asOf) {}

  private static final ThreadLocal<Probe> PROBES = ThreadLocal.withInitial(Probe::new);

  private final String keyspace;
  private final KeyType keyType;
  private final int capacity;
  private final Fetcher fetcher;
  private final Counters stats;
  private final long waitNanos;
  private final ConcurrentHashMap<Key, Node> nodes = new ConcurrentHashMap<>();

  private volatile long floor;
  private volatile FallbackState fallback;

  // CLOCK state, guarded by clock. The array grows to the capacity, so a big capacity costs nothing
  // until keys are actually cached.
  private final Object clock = new Object();
  private Node[] slots = new Node[16];
  private int used;
  private int hand;
  private long evictions;

  /**
   * @param loadedAt the revision the keyspace's layout was read at (nothing older may enter the cache)
   * @param fallbackAtLoad the fallback route at that revision ({@code null}: keys without entry have no owner)
   * @param waitNanos how long a miss waits for another thread's fetch of the same key
   */
  LazyDirectory(String keyspace, KeyType keyType, int capacity, Fetcher fetcher, Counters stats,
                long loadedAt, Route fallbackAtLoad, long waitNanos) {
    if (capacity < 1) {
      throw new IllegalArgumentException("capacity " + capacity);
    }
    this.keyspace = keyspace;
    this.keyType = keyType;
    this.capacity = capacity;
    this.fetcher = fetcher;
    this.stats = stats;
    this.waitNanos = waitNanos;
    this.floor = loadedAt;
    this.fallback = new FallbackState(fallbackAtLoad, loadedAt);
  }

  public String keyspace() {
    return keyspace;
  }

  /** Keys cached now (answers and loads in flight). */
  public int size() {
    return nodes.size();
  }

  public long evictions() {
    synchronized (clock) {
      return evictions;
    }
  }

  /** Routes an INT64 key: from the cache, else (blocking, bounded by the RPC timeout) from a server. */
  public Route route(long key) {
    return route(PROBES.get().int64(key));
  }

  /** Routes a canonical key: from the cache, else (blocking, bounded by the RPC timeout) from a server. */
  public Route route(byte[] canonicalKey) {
    Probe p = PROBES.get().bytes(canonicalKey);
    try {
      return route(p);
    } finally {
      p.bytes = null; // do not keep the caller's array reachable from the thread
    }
  }

  private Route route(Probe p) {
    Node n = nodes.get(p);
    if (n != null) {
      Answer a = n.answer;
      if (a != null) {
        if (!n.referenced) {
          // Plain field, racy on purpose: CLOCK only needs "used recently" approximately, and writing
          // only when unset keeps hits from dirtying the cache line on every lookup.
          n.referenced = true;
        }
        stats.directoryHit();
        return resolve(a, n.bytes);
      }
    }
    stats.directoryMiss();
    if (n == null) {
      Node fresh = new Node(p.bytes.clone(), p.hash);
      n = nodes.putIfAbsent(fresh, fresh);
      if (n == null) {
        return fetchInto(fresh);
      }
    }
    return await(n);
  }

  /**
   * Asks a server for the key now, even if cached, and keeps the newer of that answer and the cached one
   * (a caller that just saw a route go stale wants the directory's latest word).
   */
  public Route refresh(byte[] canonicalKey) {
    byte[] key = canonicalKey.clone();
    Node fresh = new Node(key, hashOf(key));
    Node n = nodes.putIfAbsent(fresh, fresh);
    if (n == null) {
      return fetchInto(fresh);
    }
    // The node was already visible to the watch, so any floor read now is safe (see the class comment).
    long atLeast = floor;
    n.offer(checked(fetcher.fetch(keyspace, keyType, key, atLeast), atLeast, key));
    return resolve(n.answer, key);
  }

  public Route refresh(long key) {
    return refresh(Keys.encodeInt64(key));
  }

  /** The thread that published the loading node {@code n} fetches its answer. */
  private Route fetchInto(Node n) {
    admit(n);
    // Read only now that n is in the map: see "the fetch/watch race" in the class comment.
    long atLeast = floor;
    try {
      n.offer(checked(fetcher.fetch(keyspace, keyType, n.bytes, atLeast), atLeast, n.bytes));
    } catch (RuntimeException e) {
      if (n.answer == null) {
        nodes.remove(n, n); // the next lookup of the key tries again; failures are not cached
        n.failed(e);
        throw e;
      }
      // The watch answered for this key while the fetch failed; a watch answer is complete by itself.
    }
    n.loaded();
    return resolve(n.answer, n.bytes);
  }

  private Answer checked(Answer a, long atLeast, byte[] key) {
    if (a.revision() < atLeast) {
      // The fetcher promises otherwise; accepting it could undo a change the watch already applied.
      throw new ShardmapException(ErrorCode.INTERNAL, "directory answer for key " + Keys.describe(keyType, key)
          + " of keyspace '" + keyspace + "' is at revision " + a.revision() + ", older than " + atLeast);
    }
    return a;
  }

  /** Waits for the fetch another thread is doing for the same key. */
  private Route await(Node n) {
    CompletableFuture<Void> loading = n.loading; // read before answer: see Node.loaded()
    Answer a = n.answer;
    if (a == null && loading != null) {
      try {
        loading.get(waitNanos, TimeUnit.NANOSECONDS);
      } catch (ExecutionException e) {
        Throwable c = e.getCause();
        if (c instanceof ShardmapException se) {
          throw new ShardmapException(se.code(), se.getMessage(), se);
        }
        throw new ShardmapException(ErrorCode.UNAVAILABLE, unavailable(n.bytes, String.valueOf(c)), c);
      } catch (TimeoutException e) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, unavailable(n.bytes, "another lookup of the same "
            + "key has been waiting for the directory for " + TimeUnit.NANOSECONDS.toMillis(waitNanos) + " ms"));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ShardmapException(ErrorCode.UNAVAILABLE, unavailable(n.bytes, "interrupted"), e);
      }
      a = n.answer;
    }
    if (a == null) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, unavailable(n.bytes, "its fetch was abandoned"));
    }
    return resolve(a, n.bytes);
  }

  private String unavailable(byte[] key, String why) {
    return "cannot route key " + Keys.describe(keyType, key) + " of directory keyspace '" + keyspace
        + "' (not in the client's cache): " + why;
  }

  private Route resolve(Answer a, byte[] key) {
    Route r = a.route();
    if (a.noEntry()) {
      FallbackState fb = fallback;
      if (a.revision() <= fb.asOf) {
        r = fb.route; // the key still has no entry (else the watch would have replaced a), so today's fallback
      }
    }
    if (r == null) {
      throw ShardmapException.notFound("key " + Keys.describe(keyType, key) + " has no entry in directory "
          + "keyspace '" + keyspace + "' and the keyspace has no fallback shard");
    }
    return r;
  }

  /**
   * The watch thread: the entry changes of this keyspace in one revision, and the fallback after it.
   * Called before the snapshot of that revision is published, so listeners see a cache that includes it.
   */
  void apply(long revision, List<MapChange> entryChanges, Route fallbackNow) {
    floor = revision; // before any node lookup: see "the fetch/watch race"
    if (!entryChanges.isEmpty()) {
      Probe p = PROBES.get();
      for (MapChange c : entryChanges) {
        Node n;
        Answer a;
        long modRevision = c.getModRevision() != 0 ? c.getModRevision() : revision;
        switch (c.getChangeCase()) {
          case ENTRY -> {
            DirectoryEntry e = c.getEntry();
            n = nodes.get(p.bytes(Keys.canonical(keyType, e.getKey(), "entry.key")));
            a = n == null ? null : new Answer(new Route(e.getShard(), e.getEpoch(), null, modRevision), false,
                revision);
          }
          case ENTRY_REMOVED -> {
            n = nodes.get(p.bytes(Keys.canonical(keyType, c.getEntryRemoved(), "entry_removed")));
            a = n == null ? null : new Answer(fallbackNow, true, revision);
          }
          default -> throw new IllegalArgumentException("not an entry change: " + c.getChangeCase());
        }
        if (n != null) {
          n.offer(a);
        }
      }
      p.bytes = null;
    }
    fallback = new FallbackState(fallbackNow, revision);
  }

  /** Takes a slot for a new node, evicting by CLOCK when the cache is full. */
  private void admit(Node n) {
    synchronized (clock) {
      if (used < capacity) {
        if (used == slots.length) {
          slots = Arrays.copyOf(slots, (int) Math.min(capacity, 2L * slots.length));
        }
        slots[used++] = n;
        return;
      }
      // Two full sweeps clear every reference bit; past that, evict whatever is under the hand (only
      // possible when every slot is a fetch in flight).
      long limit = 2L * capacity;
      for (long scanned = 0; ; scanned++) {
        Node v = slots[hand];
        boolean gone = nodes.get(v) != v; // failed fetch, or replaced by a newer node for the same key
        if (!gone && scanned < limit) {
          if (v.answer == null || v.referenced) {
            v.referenced = false;
            hand = (hand + 1) % capacity;
            continue;
          }
        }
        if (!gone) {
          nodes.remove(v, v);
          evictions++;
        }
        slots[hand] = n;
        hand = (hand + 1) % capacity;
        return;
      }
    }
  }

  static int hashOf(byte[] canonical) {
    long h = XxHash64.hash(canonical);
    return (int) (h ^ (h >>> 32));
  }

  /** A canonical key as a hash-map key; its hash is xxHash64's, computed once. */
  static class Key {
    byte[] bytes;
    int hash;

    @Override
    public final int hashCode() {
      return hash;
    }

    @Override
    public final boolean equals(Object o) {
      return o instanceof Key k && k.hash == hash && Arrays.equals(k.bytes, bytes);
    }
  }

  /** A reusable per-thread lookup key, so hits allocate nothing (INT64 keys are encoded into scratch). */
  static final class Probe extends Key {
    private final byte[] int64 = new byte[8];

    Probe bytes(byte[] canonical) {
      bytes = canonical;
      hash = hashOf(canonical);
      return this;
    }

    Probe int64(long v) {
      long x = v ^ Long.MIN_VALUE; // Keys.encodeInt64, in place
      for (int i = 0; i < 8; i++) {
        int64[i] = (byte) (x >>> (56 - 8 * i));
      }
      bytes = int64;
      long h = XxHash64.hashInt64(v);
      hash = (int) (h ^ (h >>> 32));
      return this;
    }
  }

  /** One cached key. Its bytes and hash never change once it is in the map. */
  static final class Node extends Key {
    private static final AtomicReferenceFieldUpdater<Node, Answer> ANSWER =
        AtomicReferenceFieldUpdater.newUpdater(Node.class, Answer.class, "answer");

    /** Null while the first fetch is in flight (unless the watch answered first). */
    volatile Answer answer;
    /** CLOCK's reference bit. */
    boolean referenced;
    /** Set while loading; null once loaded (after answer is set); completed exceptionally on failure. */
    volatile CompletableFuture<Void> loading = new CompletableFuture<>();

    Node(byte[] canonical, int hash) {
      this.bytes = canonical;
      this.hash = hash;
    }

    /** Keeps {@code a} unless the node already holds an answer at the same or a newer revision. */
    boolean offer(Answer a) {
      while (true) {
        Answer cur = answer;
        if (cur != null && cur.revision() >= a.revision()) {
          return false;
        }
        if (ANSWER.compareAndSet(this, cur, a)) {
          return true;
        }
      }
    }

    void loaded() {
      CompletableFuture<Void> f = loading;
      if (f != null) {
        f.complete(null);
        loading = null; // after answer was set, so a reader that sees null sees the answer
      }
    }

    void failed(Throwable t) {
      CompletableFuture<Void> f = loading;
      if (f != null) {
        f.completeExceptionally(t);
      }
    }
  }
}
