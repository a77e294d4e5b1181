package io.shardmap.migrator.internal;

import io.shardmap.core.Ring;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The arc that changes owner when one virtual node joins or leaves a ring, computed from the layout with
 * {@link Ring}'s rules (node i of shard s at xxHash64("s#i"), a position owned by the first node at or
 * after it, ties broken by shard then index).
 */
final class RingNodes {
  private RingNodes() {}

  /** One node of the ring: its position (a hash, compared unsigned), shard, index and epoch. */
  record Node(long position, String shard, int vnode, long epoch) {}

  /**
   * What moves: the node joining or leaving, the arc (after, upTo] it takes or hands over, and the node
   * clockwise after it (whose shard gives the arc, or takes it).
   */
  record Change(Node node, long after, long upTo, Node successor, boolean collides) {}

  static List<Node> nodes(RingLayout layout) {
    List<Node> out = new ArrayList<>();
    for (RingShard s : layout.getShardsList()) {
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        out.add(new Node(Ring.position(s.getShard(), v), s.getShard(), v, s.getVnodeEpochs(v)));
      }
    }
    out.sort(Comparator.comparingLong((Node n) -> n.position() ^ Long.MIN_VALUE).thenComparing(Node::shard)
        .thenComparingInt(Node::vnode));
    return out;
  }

  static int vnodes(RingLayout layout, String shard) {
    for (RingShard s : layout.getShardsList()) {
      if (s.getShard().equals(shard)) {
        return s.getVnodeEpochsCount();
      }
    }
    return 0;
  }

  /** The next node of {@code shard} joining (its epoch is left 0: the cutover's layout decides it). */
  static Change join(RingLayout layout, String shard) {
    List<Node> nodes = nodes(layout);
    int j = vnodes(layout, shard);
    Node joining = new Node(Ring.position(shard, j), shard, j, 0);
    long p = joining.position() ^ Long.MIN_VALUE;
    int at = 0;
    boolean collides = false;
    while (at < nodes.size() && (nodes.get(at).position() ^ Long.MIN_VALUE) < p) {
      at++;
    }
    if (at < nodes.size() && nodes.get(at).position() == joining.position()) {
      collides = true;
    }
    Node successor = nodes.get(at % nodes.size());
    Node predecessor = nodes.get((at + nodes.size() - 1) % nodes.size());
    return new Change(joining, predecessor.position(), joining.position(), successor, collides);
  }

  /** The last node of {@code shard} leaving; null when the shard has no node on the ring. */
  static Change leave(RingLayout layout, String shard) {
    int j = vnodes(layout, shard) - 1;
    if (j < 0) {
      return null;
    }
    List<Node> nodes = nodes(layout);
    int i = 0;
    while (!(nodes.get(i).shard().equals(shard) && nodes.get(i).vnode() == j)) {
      i++;
    }
    Node leaving = nodes.get(i);
    Node successor = nodes.get((i + 1) % nodes.size());
    Node predecessor = nodes.get((i + nodes.size() - 1) % nodes.size());
    return new Change(leaving, predecessor.position(), leaving.position(), successor, false);
  }
}
