package io.shardmap.core;

import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * STRATEGY_CONSISTENT_HASH: a ring of virtual nodes. Virtual node {@code i} of shard {@code s} sits at
 * position {@code xxHash64(UTF-8 "s#i")} (unsigned); a key at position {@code h = xxHash64(key)} belongs
 * to the first node at or after {@code h}, wrapping around. Positions are derived, so the stored layout
 * is only each shard's node count and the epoch of each node's segment. Immutable.
 */
public final class Ring implements RoutingTable {
  /** Bounds the ring so its layout stays well under etcd's 1.5 MiB value limit. */
  public static final int MAX_NODES = 262_144;
  public static final int MAX_VNODES_PER_SHARD = 8192;

  private final RingLayout layout;
  /** Node positions with the sign bit flipped, so signed order is the unsigned ring order. */
  private final long[] positions;
  private final Route[] routes;
  private final String[] owners;
  /** The vnode index of each node, in ring order. */
  private final int[] vnodes;

  private Ring(RingLayout layout, long[] positions, Route[] routes, String[] owners, int[] vnodes) {
    this.layout = layout;
    this.positions = positions;
    this.routes = routes;
    this.owners = owners;
    this.vnodes = vnodes;
  }

  public static long position(String shard, int vnode) {
    return XxHash64.hash((shard + "#" + vnode).getBytes(StandardCharsets.UTF_8));
  }

  public static Ring of(RingLayout layout, long modRevision) {
    int total = 0;
    for (RingShard s : layout.getShardsList()) {
      total += s.getVnodeEpochsCount();
    }
    if (total == 0) {
      throw ShardmapException.invalid("ring", "a consistent-hash keyspace needs at least one virtual node");
    }
    if (total > MAX_NODES) {
      throw ShardmapException.invalid("ring", "at most " + MAX_NODES + " virtual nodes in a ring, got "
          + total);
    }
    long[] keys = new long[total];
    int[] shardIdx = new int[total];
    int[] vnode = new int[total];
    int k = 0;
    for (int si = 0; si < layout.getShardsCount(); si++) {
      RingShard s = layout.getShards(si);
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        keys[k] = position(s.getShard(), v) ^ Long.MIN_VALUE;
        shardIdx[k] = si;
        vnode[k] = v;
        k++;
      }
    }
    Integer[] order = new Integer[total];
    for (int i = 0; i < total; i++) {
      order[i] = i;
    }
    // Ties (astronomically rare) break by shard name then vnode, so every process builds the same ring.
    Arrays.sort(order, (a, b) -> {
      int c = Long.compare(keys[a], keys[b]);
      if (c != 0) {
        return c;
      }
      c = layout.getShards(shardIdx[a]).getShard().compareTo(layout.getShards(shardIdx[b]).getShard());
      return c != 0 ? c : Integer.compare(vnode[a], vnode[b]);
    });
    long[] positions = new long[total];
    Route[] routes = new Route[total];
    String[] owners = new String[total];
    int[] vnodeOfNode = new int[total];
    Map<String, Route> shared = new HashMap<>();
    for (int i = 0; i < total; i++) {
      int o = order[i];
      RingShard s = layout.getShards(shardIdx[o]);
      positions[i] = keys[o];
      long epoch = s.getVnodeEpochs(vnode[o]);
      owners[i] = s.getShard();
      vnodeOfNode[i] = vnode[o];
      // Routes with equal shard and epoch are interchangeable; share them to keep the ring small.
      routes[i] = shared.computeIfAbsent(s.getShard() + "@" + epoch,
          x -> new Route(s.getShard(), epoch, null, modRevision));
    }
    return new Ring(layout, positions, routes, owners, vnodeOfNode);
  }

  public RingLayout layout() {
    return layout;
  }

  public int size() {
    return positions.length;
  }

  public Route route(long intKey) {
    return routes[nodeAt(XxHash64.hashInt64(intKey))];
  }

  public Route route(byte[] canonicalKey) {
    return routes[nodeAt(XxHash64.hash(canonicalKey))];
  }

  /** Index of the node owning hash position {@code hash}. */
  public int nodeAt(long hash) {
    int u = unitAt(hash);
    return u == positions.length ? 0 : u; // the wrap-around above the last position is node 0's
  }

  /** The share of the ring (hash space) each shard owns. */
  public Map<String, Double> shares() {
    Map<String, Double> out = new HashMap<>();
    int n = positions.length;
    for (int i = 0; i < n; i++) {
      long prev = positions[(i + n - 1) % n];
      double arc = n == 1 ? 1.0 : arcFraction(prev, positions[i]);
      out.merge(owners[i], arc, Double::sum);
    }
    return out;
  }

  private static double arcFraction(long fromExclusive, long to) {
    // Unsigned distance on the 2^64 ring, as a fraction.
    long d = to - fromExclusive;
    double u = d >= 0 ? (double) d : (double) d + 0x1p64;
    return u / 0x1p64;
  }

  /** Exact fraction of the hash space whose owner differs between two rings. */
  public static double movedFraction(Ring a, Ring b) {
    long[] cuts = new long[a.positions.length + b.positions.length];
    System.arraycopy(a.positions, 0, cuts, 0, a.positions.length);
    System.arraycopy(b.positions, 0, cuts, a.positions.length, b.positions.length);
    Arrays.sort(cuts);
    double moved = 0;
    for (int i = 0; i < cuts.length; i++) {
      long prev = cuts[(i + cuts.length - 1) % cuts.length];
      if (prev == cuts[i] && cuts.length > 1) {
        continue;
      }
      // Every position in (prev, cuts[i]] has the same owner in each ring: the node at cuts[i].
      long probe = cuts[i] ^ Long.MIN_VALUE;
      if (!a.owners[a.nodeAt(probe)].equals(b.owners[b.nodeAt(probe)])) {
        moved += cuts.length == 1 ? 1.0 : arcFraction(prev, cuts[i]);
      }
    }
    return moved;
  }

  /**
   * The layout after giving {@code shard} {@code count} more virtual nodes. A new node's segment was
   * owned by the node after it, so it takes that node's epoch + 1 (or keeps it when the owner is the
   * same shard): for every hash position, the epoch never decreases and grows when the owner changes.
   */
  public RingLayout withAddedNodes(String shard, int count) {
    List<RingShard.Builder> shards = new ArrayList<>();
    int target = -1;
    for (RingShard s : layout.getShardsList()) {
      if (s.getShard().equals(shard)) {
        target = shards.size();
      }
      shards.add(s.toBuilder());
    }
    if (target < 0) {
      target = shards.size();
      shards.add(RingShard.newBuilder().setShard(shard));
    }
    RingShard.Builder t = shards.get(target);
    if (t.getVnodeEpochsCount() + count > MAX_VNODES_PER_SHARD) {
      throw ShardmapException.invalid("vnodes", "a shard can have at most " + MAX_VNODES_PER_SHARD
          + " virtual nodes; it has " + t.getVnodeEpochsCount() + " and " + count + " were requested");
    }
    int first = t.getVnodeEpochsCount();
    for (int v = first; v < first + count; v++) {
      int succ = nodeAt(position(shard, v));
      Route r = routes[succ];
      t.addVnodeEpochs(r.shard().equals(shard) ? r.epoch() : r.epoch() + 1);
    }
    RingLayout.Builder out = RingLayout.newBuilder();
    shards.forEach(out::addShards);
    return out.build();
  }

  /**
   * The layout after removing {@code count} of {@code shard}'s highest-numbered nodes (all if
   * {@code count <= 0}). Each removed segment joins the next remaining node clockwise, whose epoch becomes
   * max(its own, the removed ones') + 1.
   */
  public RingLayout withRemovedNodes(String shard, int count) {
    RingShard victim = null;
    for (RingShard s : layout.getShardsList()) {
      if (s.getShard().equals(shard)) {
        victim = s;
      }
    }
    if (victim == null) {
      throw ShardmapException.notFound("shard '" + shard + "' has no virtual nodes on the ring");
    }
    int have = victim.getVnodeEpochsCount();
    int keep = count <= 0 ? 0 : Math.max(0, have - count);
    int n = positions.length;
    boolean[] removed = new boolean[n];
    Map<String, long[]> newEpochs = new HashMap<>();
    for (RingShard s : layout.getShardsList()) {
      long[] e = new long[s.getVnodeEpochsCount()];
      for (int v = 0; v < e.length; v++) {
        e[v] = s.getVnodeEpochs(v);
      }
      newEpochs.put(s.getShard(), e);
    }
    for (int i = 0; i < n; i++) {
      removed[i] = owners[i].equals(shard) && vnodes[i] >= keep;
    }
    int remaining = 0;
    for (boolean r : removed) {
      remaining += r ? 0 : 1;
    }
    if (remaining == 0) {
      throw ShardmapException.precondition("removing these virtual nodes would leave the ring empty; "
          + "a consistent-hash keyspace needs at least one node");
    }
    for (int i = 0; i < n; i++) {
      if (!removed[i]) {
        continue;
      }
      long maxEpoch = newEpochs.get(owners[i])[vnodes[i]];
      int j = (i + 1) % n;
      while (removed[j]) {
        maxEpoch = Math.max(maxEpoch, newEpochs.get(owners[j])[vnodes[j]]);
        j = (j + 1) % n;
      }
      long[] succ = newEpochs.get(owners[j]);
      succ[vnodes[j]] = Math.max(succ[vnodes[j]], maxEpoch) + 1;
    }
    RingLayout.Builder out = RingLayout.newBuilder();
    for (RingShard s : layout.getShardsList()) {
      long[] e = newEpochs.get(s.getShard());
      int len = s.getShard().equals(shard) ? keep : e.length;
      if (len == 0) {
        continue;
      }
      RingShard.Builder b = RingShard.newBuilder().setShard(s.getShard());
      for (int v = 0; v < len; v++) {
        b.addVnodeEpochs(e[v]);
      }
      out.addShards(b);
    }
    return out.build();
  }

  @Override
  public void addOwners(Set<String> out) {
    layout.getShardsList().forEach(s -> out.add(s.getShard()));
  }

  /**
   * Units are the arcs in hash order, at their unsigned hash positions (eight bytes big-endian): unit i ends
   * just after node i's position, and one more unit, owned by node 0 like the first, holds the wrap-around
   * part above the last node's position (absent when that position is the largest hash).
   */
  @Override
  public int unitCount() {
    return positions[positions.length - 1] == Long.MAX_VALUE ? positions.length : positions.length + 1;
  }

  @Override
  public int unitOf(long intKey) {
    return unitAt(XxHash64.hashInt64(intKey));
  }

  @Override
  public int unitOf(byte[] canonicalKey) {
    return unitAt(XxHash64.hash(canonicalKey));
  }

  private int unitAt(long hash) {
    long h = hash ^ Long.MIN_VALUE;
    long[] p = positions;
    int lo = 0;
    int hi = p.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (p[mid] < h) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  @Override
  public Route unitRoute(int unit) {
    return routes[unit == positions.length ? 0 : unit];
  }

  @Override
  public byte[] unitStart(int unit) {
    return unit == 0 ? UnitSpace.START : UnitSpace.int64((positions[unit - 1] ^ Long.MIN_VALUE) + 1);
  }

  @Override
  public byte[] unitEnd(int unit) {
    return unit == positions.length || positions[unit] == Long.MAX_VALUE ? UnitSpace.END
        : UnitSpace.int64((positions[unit] ^ Long.MIN_VALUE) + 1);
  }

  @Override
  public String describeUnit(int unit) {
    int node = unit == positions.length ? 0 : unit;
    return "arc of " + owners[node] + "#" + vnodes[node] + " ending at "
        + Long.toUnsignedString(unit == positions.length ? -1L : positions[unit] ^ Long.MIN_VALUE);
  }

  /** The ring position (xxHash64, compared unsigned) of node {@code i} in ring order. */
  public long positionOf(int i) {
    return positions[i] ^ Long.MIN_VALUE;
  }

  /** The route (shard, epoch) of node {@code i} in ring order, which owns the arc ending at its position. */
  public Route routeOf(int i) {
    return routes[i];
  }

  /** The shard of node {@code i} in ring order; it owns the arc (position of node i-1, position of node i]. */
  public String ownerOf(int i) {
    return owners[i];
  }
}
