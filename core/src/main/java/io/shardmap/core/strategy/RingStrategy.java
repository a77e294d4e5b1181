package io.shardmap.core.strategy;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Ring;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/** STRATEGY_CONSISTENT_HASH: a ring of virtual nodes at xxHash64 positions, in one layout record. */
final class RingStrategy implements StrategyKind {
  /** Virtual nodes per shard when a spec leaves {@code default_vnodes} unset. */
  public static final int DEFAULT_VNODES = 1024;

  @Override
  public Strategy strategy() {
    return Strategy.STRATEGY_CONSISTENT_HASH;
  }

  @Override
  public String label() {
    return "consistent hash";
  }

  @Override
  public String unitNoun() {
    return "virtual nodes";
  }

  @Override
  public MapChange.ChangeCase layoutCase() {
    return MapChange.ChangeCase.RING;
  }

  @Override
  public Class<? extends RoutingTable> tableType() {
    return Ring.class;
  }

  @Override
  public RoutingTable withLayout(RoutingTable previous, MapChange change, long revision) {
    return Ring.of(change.getRing(), revision);
  }

  @Override
  public void decodeLayout(byte[] record, MapChange.Builder into) throws InvalidProtocolBufferException {
    into.setRing(RingLayout.parseFrom(record));
  }

  @Override
  public boolean copyLayout(GetMapResponse map, MapChange.Builder into) {
    into.setRing(map.getRing());
    return true;
  }

  @Override
  public long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries) {
    out.setRing(k.ring().layout());
    return 0;
  }

  @Override
  public void validate(KeyspaceSpec spec, KeyspaceSpec.Builder out) {
    if (spec.getKeyType() == KeyType.KEY_TYPE_UNSPECIFIED || spec.getKeyType() == KeyType.UNRECOGNIZED) {
      throw ShardmapException.invalid("spec.key_type", "choose KEY_TYPE_INT64 or KEY_TYPE_BYTES");
    }
    if (spec.getDefaultVnodes() == 0) {
      out.setDefaultVnodes(DEFAULT_VNODES);
    } else if (spec.getDefaultVnodes() < 1 || spec.getDefaultVnodes() > Ring.MAX_VNODES_PER_SHARD) {
      throw ShardmapException.invalid("spec.default_vnodes", "must be 1-" + Ring.MAX_VNODES_PER_SHARD
          + ", got " + spec.getDefaultVnodes());
    }
  }

  @Override
  public List<String> describeUnits(KeyspaceMap k) {
    List<String> out = new ArrayList<>();
    for (RingShard s : k.ring().layout().getShardsList()) {
      for (int v = 0; v < s.getVnodeEpochsCount(); v++) {
        out.add(s.getShard() + "#" + v + " at " + Long.toUnsignedString(Ring.position(s.getShard(), v), 16)
            + " (epoch " + s.getVnodeEpochs(v) + ")");
      }
    }
    return out;
  }

  @Override
  public java.util.Map<String, String> summary(KeyspaceMap k) {
    return java.util.Map.of("vnodes", Integer.toString(k.spec().getDefaultVnodes()));
  }

  @Override
  public long layoutEntries(KeyspaceMap k) {
    return k.ring().size();
  }

  @Override
  public SortedMap<String, Share> shares(KeyspaceMap k) {
    SortedMap<String, Share> out = new TreeMap<>();
    Ring r = k.ring();
    java.util.Map<String, Double> f = r.shares();
    for (RingShard s : r.layout().getShardsList()) {
      out.put(s.getShard(), new Share(f.getOrDefault(s.getShard(), 0.0), s.getVnodeEpochsCount()));
    }
    return out;
  }

  @Override
  public String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref) {
    // Node i owns (position of node i-1, position of node i]; node 0's arc wraps past the top. Consecutive
    // nodes of the shard merge into one arc.
    Ring r = k.ring();
    int n = r.size();
    List<String> terms = new ArrayList<>();
    if (n == 1) {
      return r.ownerOf(0).equals(shard) ? KeySql.TRUE : KeySql.FALSE;
    }
    // Start the walk after a node of another shard, so no run of the shard's nodes is cut in two.
    int first = -1;
    for (int i = 0; i < n; i++) {
      if (!r.ownerOf(i).equals(shard)) {
        first = i;
        break;
      }
    }
    if (first < 0) {
      return KeySql.TRUE;
    }
    Long runAfter = null;
    long runUpTo = 0;
    for (int step = 1; step <= n; step++) {
      int i = (first + step) % n;
      int prev = (i + n - 1) % n;
      if (r.ownerOf(i).equals(shard)) {
        if (runAfter == null) {
          runAfter = r.positionOf(prev);
        }
        runUpTo = r.positionOf(i);
      } else if (runAfter != null) {
        addArc(terms, column, ref, runAfter, runUpTo);
        runAfter = null;
      }
    }
    if (runAfter != null) {
      addArc(terms, column, ref, runAfter, runUpTo);
    }
    return KeySql.or(terms);
  }

  /** A run that is not the whole ring and starts and ends at one position (a tie) owns no position. */
  private static void addArc(List<String> terms, KeyKind column, String ref, long after, long upTo) {
    if (after != upTo) {
      terms.add(KeySql.arc(column, ref, after, upTo));
    }
  }
}
