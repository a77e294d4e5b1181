package io.shardmap.core.strategy;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * The registry of strategies: maps a {@link Strategy} (or the {@link MapChange} case of a layout record) to
 * its {@link StrategyKind}. The one place that knows the list of strategies.
 */
public final class Strategies {
  private static final List<StrategyKind> ALL = List.of(new RangeStrategy(), new HashStrategy(),
      new RingStrategy(), new DirectoryStrategy(), new GeoStrategy());
  private static final Map<Strategy, StrategyKind> BY_STRATEGY = new EnumMap<>(Strategy.class);
  private static final Map<MapChange.ChangeCase, StrategyKind> BY_LAYOUT = new EnumMap<>(MapChange.ChangeCase.class);

  static {
    for (StrategyKind k : ALL) {
      BY_STRATEGY.put(k.strategy(), k);
      if (k.layoutCase() != MapChange.ChangeCase.CHANGE_NOT_SET) {
        BY_LAYOUT.put(k.layoutCase(), k);
      }
    }
  }

  private Strategies() {}

  /** Every strategy, in the enum's order. */
  public static List<StrategyKind> all() {
    return ALL;
  }

  /** The strategy's class, or null for UNSPECIFIED/UNRECOGNIZED. */
  public static StrategyKind find(Strategy s) {
    return s == null || s == Strategy.UNRECOGNIZED ? null : BY_STRATEGY.get(s);
  }

  /**
   * The strategy's class; INVALID_ARGUMENT naming {@code field} for a strategy that is not one (unset or
   * unknown to this version).
   */
  public static StrategyKind of(Strategy s, String field) {
    StrategyKind k = find(s);
    if (k == null) {
      throw ShardmapException.invalid(field, "choose one of " + String.join(", ",
          ALL.stream().map(x -> x.strategy().name()).toList()));
    }
    return k;
  }

  /** The strategy's class of a stored or served keyspace (INTERNAL if the strategy is unknown). */
  public static StrategyKind of(Strategy s) {
    StrategyKind k = find(s);
    if (k == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "unknown strategy " + s);
    }
    return k;
  }

  /**
   * The map a whole GetMap answer holds (every page's ranges and entries in one response, as a client that
   * read all pages merges them): its layout, ranges and entries applied at the answer's revision. A
   * directory answer without its entries gives a layout-only copy ({@link KeyspaceMap#withoutDirectoryEntries}).
   */
  public static io.shardmap.core.KeyspaceMap read(io.shardmap.proto.v1.GetMapResponse map) {
    String ks = map.getSpec().getName();
    java.util.List<MapChange> changes = new java.util.ArrayList<>();
    MapChange.Builder layout = MapChange.newBuilder().setKeyspace(ks);
    if (of(map.getSpec().getStrategy()).copyLayout(map, layout)) {
      changes.add(layout.build());
    }
    map.getRangesList().forEach(r -> changes.add(MapChange.newBuilder().setKeyspace(ks).setRange(r).build()));
    map.getEntriesList().forEach(e -> changes.add(MapChange.newBuilder().setKeyspace(ks).setEntry(e).build()));
    return io.shardmap.core.KeyspaceMap.withoutLayout(map.getSpec(), map.getRevision()).apply(map.getRevision(), changes);
  }

  /** The strategy whose layout record a change of case {@code c} carries. */
  public static StrategyKind forLayout(MapChange.ChangeCase c) {
    StrategyKind k = BY_LAYOUT.get(c);
    if (k == null) {
      throw new IllegalArgumentException("not a layout change: " + c);
    }
    return k;
  }
}
