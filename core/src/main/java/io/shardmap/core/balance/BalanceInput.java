package io.shardmap.core.balance;

import io.shardmap.core.ShardmapException;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * One keyspace as the planner sees it: its strategy, its units in position order with their owner, load
 * and size, the shards that may take units (every owner, plus any shard named by {@link Builder#shard}),
 * and sampled keys with weights for split points. Immutable; built by {@link #builder}, which refuses
 * units out of order or overlapping and negative figures (INVALID_ARGUMENT naming the field).
 */
public final class BalanceInput {
  /**
   * A unit: positions [start, end) of the keyspace's unit space ({@link UnitSpace}; an empty start or end
   * is the start or end of the space). {@code shard} is null where the unit has several owners (a
   * directory's entry group). {@code movable} is false for a unit that must not be planned (already
   * moving, or of a strategy whose units do not move one by one).
   */
  public record Unit(byte[] start, byte[] end, String label, String shard, double readsPerSecond,
      double writesPerSecond, long rows, long bytes, boolean movable) {
    public Unit {
      Objects.requireNonNull(start, "start");
      Objects.requireNonNull(end, "end");
      Objects.requireNonNull(label, "label");
      nonNegative("readsPerSecond", readsPerSecond);
      nonNegative("writesPerSecond", writesPerSecond);
      nonNegative("rows", rows);
      nonNegative("bytes", bytes);
      if (!UnitSpace.before(start, end)) {
        throw ShardmapException.invalid("unit.end", "a unit must end after its start (" + label + ")");
      }
    }

    /** Calls per second: reads and writes. */
    public double load() {
      return readsPerSecond + writesPerSecond;
    }

    @Override
    public String toString() {
      return label + "@" + shard;
    }
  }

  /** A sampled key (canonical bytes, a position of the unit space) and how many calls it stands for. */
  public record Sample(byte[] key, double weight) {
    public Sample {
      Objects.requireNonNull(key, "key");
      if (!(weight > 0) || Double.isInfinite(weight)) {
        throw ShardmapException.invalid("sample.weight", "must be above 0 and finite, was " + weight);
      }
    }
  }

  /** A shard's totals; at least the sum of its units (bytes no unit accounts for count too). */
  public record ShardTotals(double loadPerSecond, long bytes) {}

  private final Strategy strategy;
  private final List<Unit> units;
  private final Map<String, ShardTotals> shards;
  private final List<Sample> samples;

  private BalanceInput(Strategy strategy, List<Unit> units, Map<String, ShardTotals> shards,
      List<Sample> samples) {
    this.strategy = strategy;
    this.units = units;
    this.shards = shards;
    this.samples = samples;
  }

  public static Builder builder(Strategy strategy) {
    return new Builder(strategy);
  }

  public Strategy strategy() {
    return strategy;
  }

  /** In position order. */
  public List<Unit> units() {
    return units;
  }

  /** Every shard that may hold units, by name, with its totals. */
  public Map<String, ShardTotals> shards() {
    return shards;
  }

  /** In key order. */
  public List<Sample> samples() {
    return samples;
  }

  private static void nonNegative(String field, double v) {
    if (!(v >= 0) || Double.isInfinite(v)) {
      throw ShardmapException.invalid(field, "must be at least 0 and finite, was " + v);
    }
  }

  /** Not thread-safe. */
  public static final class Builder {
    private final Strategy strategy;
    private final List<Unit> units = new ArrayList<>();
    private final Map<String, ShardTotals> given = new TreeMap<>();
    private final List<Sample> samples = new ArrayList<>();

    private Builder(Strategy strategy) {
      if (strategy == null || strategy == Strategy.STRATEGY_UNSPECIFIED || strategy == Strategy.UNRECOGNIZED) {
        throw ShardmapException.invalid("strategy", "must be a known strategy, was " + strategy);
      }
      this.strategy = strategy;
    }

    /** Adds the next unit (after every unit added before). */
    public Builder unit(Unit u) {
      if (!units.isEmpty()) {
        Unit last = units.get(units.size() - 1);
        if (last.end().length == 0 || Arrays.compareUnsigned(last.end(), u.start()) > 0) {
          throw ShardmapException.invalid("units", "must be in position order without overlap: " + u.label()
              + " starts before " + last.label() + " ends");
        }
      }
      units.add(u);
      return this;
    }

    /** Names a shard that may take units even if it owns none yet. */
    public Builder shard(String name) {
      given.putIfAbsent(Objects.requireNonNull(name, "shard"), null);
      return this;
    }

    /**
     * A shard's totals when they exceed its units' sum (bytes outside any unit, load from a report the units
     * do not carry); the larger of the two counts.
     */
    public Builder shard(String name, double loadPerSecond, long bytes) {
      nonNegative("shard.loadPerSecond", loadPerSecond);
      nonNegative("shard.bytes", bytes);
      given.put(Objects.requireNonNull(name, "shard"), new ShardTotals(loadPerSecond, bytes));
      return this;
    }

    public Builder sample(byte[] key, double weight) {
      samples.add(new Sample(key, weight));
      return this;
    }

    public BalanceInput build() {
      if (units.isEmpty()) {
        throw ShardmapException.invalid("units", "a keyspace has at least one unit");
      }
      Map<String, double[]> sums = new TreeMap<>();
      for (String s : given.keySet()) {
        sums.put(s, new double[2]);
      }
      for (Unit u : units) {
        if (u.shard() != null) {
          double[] t = sums.computeIfAbsent(u.shard(), k -> new double[2]);
          t[0] += u.load();
          t[1] += u.bytes();
        }
      }
      Map<String, ShardTotals> shards = new TreeMap<>();
      for (Map.Entry<String, double[]> e : sums.entrySet()) {
        ShardTotals g = given.get(e.getKey());
        double load = e.getValue()[0];
        long bytes = (long) e.getValue()[1];
        if (g != null) {
          load = Math.max(load, g.loadPerSecond());
          bytes = Math.max(bytes, g.bytes());
        }
        shards.put(e.getKey(), new ShardTotals(load, bytes));
      }
      List<Sample> sorted = new ArrayList<>(samples);
      sorted.sort((a, b) -> Arrays.compareUnsigned(a.key(), b.key()));
      return new BalanceInput(strategy, List.copyOf(units), Collections.unmodifiableMap(shards),
          List.copyOf(sorted));
    }
  }
}
