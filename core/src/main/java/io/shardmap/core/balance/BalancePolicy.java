package io.shardmap.core.balance;

import io.shardmap.core.ShardmapException;

/**
 * What the planner aims for and how cautious it is. Immutable; built by {@link #builder()}, which refuses
 * impossible values with INVALID_ARGUMENT naming the field and the rule.
 *
 * <ul>
 *   <li>{@code targetSkew} (default 0.25, 0 to 100): the plan stops once the keyspace's skew is at or
 *       below it. Skew is the largest shard's share over the mean share, minus 1.
 *   <li>{@code loadWeight}, {@code sizeWeight} (default 1 and 1, each 0 to 1000, not both 0): how much calls
 *       per second and bytes count in a shard's share. Size only: {@code loadWeight(0)}.
 *   <li>{@code hysteresis} (default 0.05, at least 0, below 1): a step is taken only when it lowers the share
 *       of the shard it takes from by more than this many mean shares, so that a plan never trades one
 *       near-even state for another and a plan made after carrying out a plan is empty.
 *   <li>{@code maxMoves} (default 5, 0 to 1000): at most this many steps (0: report the skew, plan nothing).
 *   <li>{@code minGain} (default 0.02, 0 to 100): a plan whose steps together lower the skew by less than
 *       this is not worth its moves; the planner then proposes nothing.
 *   <li>{@code splitRanges} (default true): whether a range may be split where its load halves; without,
 *       ranges only move whole.
 * </ul>
 */
public final class BalancePolicy {
  private final double targetSkew;
  private final double loadWeight;
  private final double sizeWeight;
  private final double hysteresis;
  private final int maxMoves;
  private final double minGain;
  private final boolean splitRanges;

  private BalancePolicy(Builder b) {
    this.targetSkew = b.targetSkew;
    this.loadWeight = b.loadWeight;
    this.sizeWeight = b.sizeWeight;
    this.hysteresis = b.hysteresis;
    this.maxMoves = b.maxMoves;
    this.minGain = b.minGain;
    this.splitRanges = b.splitRanges;
  }

  /** Every default: target skew 0.25 by load and size, hysteresis 0.05, at most 5 moves. */
  public static BalancePolicy defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  public double targetSkew() {
    return targetSkew;
  }

  public double loadWeight() {
    return loadWeight;
  }

  public double sizeWeight() {
    return sizeWeight;
  }

  public double hysteresis() {
    return hysteresis;
  }

  public int maxMoves() {
    return maxMoves;
  }

  public double minGain() {
    return minGain;
  }

  public boolean splitRanges() {
    return splitRanges;
  }

  @Override
  public String toString() {
    return "BalancePolicy{targetSkew=" + targetSkew + ", loadWeight=" + loadWeight + ", sizeWeight="
        + sizeWeight + ", hysteresis=" + hysteresis + ", maxMoves=" + maxMoves + ", minGain=" + minGain
        + ", splitRanges=" + splitRanges + "}";
  }

  /** Not thread-safe; {@link #build()} validates every field. */
  public static final class Builder {
    private double targetSkew = 0.25;
    private double loadWeight = 1;
    private double sizeWeight = 1;
    private double hysteresis = 0.05;
    private int maxMoves = 5;
    private double minGain = 0.02;
    private boolean splitRanges = true;

    private Builder() {}

    public Builder targetSkew(double v) {
      this.targetSkew = v;
      return this;
    }

    public Builder loadWeight(double v) {
      this.loadWeight = v;
      return this;
    }

    public Builder sizeWeight(double v) {
      this.sizeWeight = v;
      return this;
    }

    public Builder hysteresis(double v) {
      this.hysteresis = v;
      return this;
    }

    public Builder maxMoves(int v) {
      this.maxMoves = v;
      return this;
    }

    public Builder minGain(double v) {
      this.minGain = v;
      return this;
    }

    public Builder splitRanges(boolean v) {
      this.splitRanges = v;
      return this;
    }

    public BalancePolicy build() {
      range("targetSkew", targetSkew, 0, 100);
      range("loadWeight", loadWeight, 0, 1000);
      range("sizeWeight", sizeWeight, 0, 1000);
      if (loadWeight == 0 && sizeWeight == 0) {
        throw ShardmapException.invalid("loadWeight", "loadWeight and sizeWeight are both 0; at least one must"
            + " be above 0 (what would the plan even out?)");
      }
      if (!(hysteresis >= 0 && hysteresis < 1)) {
        throw ShardmapException.invalid("hysteresis", "must be at least 0 and below 1, was " + hysteresis);
      }
      if (maxMoves < 0 || maxMoves > 1000) {
        throw ShardmapException.invalid("maxMoves", "must be 0 to 1000, was " + maxMoves);
      }
      range("minGain", minGain, 0, 100);
      return new BalancePolicy(this);
    }

    private static void range(String field, double v, double min, double max) {
      // !(a && b) also refuses NaN.
      if (!(v >= min && v <= max)) {
        throw ShardmapException.invalid(field, "must be " + min + " to " + max + ", was " + v);
      }
    }
  }
}
