package io.shardmap.core.strategy;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import java.util.List;

/**
 * Everything that differs between sharding strategies, in one class per strategy (the shape of grpc-java's
 * {@code LoadBalancerProvider}: a small contract, one implementation per policy, a registry mapping a name
 * to it). Code that depends on the strategy asks {@link Strategies#of} for the class and calls it; nothing
 * else switches on {@link Strategy}. Implementations are stateless singletons.
 *
 * <p>Adding a strategy: a proto enum value and layout message, a {@link RoutingTable}, one class here
 * registered in {@link Strategies}, its map edits in the catalog ({@code StrategyEdits}) and, if its data can
 * move, a unit kind in the migrator (docs/data-model.md, "Where each strategy lives").
 */
public interface StrategyKind {
  Strategy strategy();

  /** For messages: {@code range}, {@code hash}, {@code consistent hash}, {@code directory}, {@code geographic}. */
  String label();

  /** What its layout is made of, plural: {@code ranges}, {@code buckets}, {@code virtual nodes}, ... */
  String unitNoun();

  /**
   * The {@link MapChange} case of its layout record ({@code layouts/{ks}}), or {@code CHANGE_NOT_SET} when
   * the strategy keeps no such record (ranges live in one record each).
   */
  MapChange.ChangeCase layoutCase();

  /** The class of its routing table. */
  Class<? extends RoutingTable> tableType();

  /**
   * The table after a change of its layout record ({@link #layoutCase}) at {@code revision}; {@code previous}
   * is the keyspace's table before (null, or of any strategy), of which it keeps what outlives a layout
   * change (a directory's entries). Throws ShardmapException when the layout breaks an invariant.
   */
  RoutingTable withLayout(RoutingTable previous, MapChange change, long revision);

  /** Decodes an etcd layout record into {@code into} (as a change of {@link #layoutCase}). */
  void decodeLayout(byte[] record, MapChange.Builder into) throws InvalidProtocolBufferException;

  /** Copies the layout of a GetMap answer into {@code into}; false when the strategy has none. */
  boolean copyLayout(GetMapResponse map, MapChange.Builder into);

  /**
   * Fills one page of a GetMap answer from {@code k}: the layout, and the items from {@code offset} (at
   * most {@code pageSize}) of what is paged. Returns how many items are paged in all (0: nothing is).
   */
  long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries);

  /**
   * Checks the spec's strategy-specific fields, normalising them into {@code out} (a copy of the spec).
   * Refusals are INVALID_ARGUMENT naming the {@code spec.*} field and the rule. By default: a key type must
   * be chosen and {@code default_vnodes} must be unset.
   */
  default void validate(KeyspaceSpec spec, KeyspaceSpec.Builder out) {
    if (spec.getKeyType() == KeyType.KEY_TYPE_UNSPECIFIED || spec.getKeyType() == KeyType.UNRECOGNIZED) {
      throw ShardmapException.invalid("spec.key_type", "choose KEY_TYPE_INT64 or KEY_TYPE_BYTES");
    }
    if (spec.getDefaultVnodes() != 0) {
      throw ShardmapException.invalid("spec.default_vnodes", "only applies to STRATEGY_CONSISTENT_HASH");
    }
  }

  /**
   * Whether a client may hold only the layout and look entries up one by one (a directory): its map can be
   * too large to load whole.
   */
  default boolean loadsLazily() {
    return false;
  }

  /** The units of the layout, one line each (for printing): {@code 0..100 -> s1 (epoch 2)}, ... */
  List<String> describeUnits(KeyspaceMap k);

  /**
   * What the layout says besides its units, as label → value for a printed header: a ring's {@code vnodes},
   * a directory's {@code fallback}, a geographic keyspace's {@code default} region; empty for the others.
   */
  default java.util.Map<String, String> summary(KeyspaceMap k) {
    return java.util.Map.of();
  }

  /** How many units the layout has (ranges, buckets, virtual nodes, entries, regions). */
  long layoutEntries(KeyspaceMap k);

  /**
   * Each owner's share of the key space (of the hash space for hash and ring; of the listed keys for a
   * directory and of the listed regions for geographic) and how many units it holds, by shard name.
   */
  java.util.SortedMap<String, Share> shares(KeyspaceMap k);

  /** A shard's share of a keyspace and its number of units. */
  record Share(double fraction, long units) {
    Share plus(double f) {
      return new Share(fraction + f, units + 1);
    }
  }

  /**
   * SQL: the rows of a table whose key column {@code ref} (of {@code column} kind) holds a key that
   * {@code k} routes to {@code shard} — "what does shard S own at the map's revision". Built from {@link
   * io.shardmap.core.sql.KeySql} (hash and ring conditions call the routing functions of {@link
   * io.shardmap.core.sql.SqlRouting}, which must be installed on the shard). {@code false} when the shard
   * owns nothing. Throws FAILED_PRECONDITION for a directory copy without its entries.
   */
  String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref);
}
