package io.shardmap.core.balance;

import java.util.List;

/**
 * What the planner would do to one keyspace: the skew before, the steps in order (each with the skew
 * expected once it and every step before it are done), why it stopped, and the keyspace as it would be
 * after ({@link #after()}: planning that again gives no step unless the plan stopped at {@code maxMoves}).
 *
 * <p>Skews follow fleet.proto: the largest shard's share over the mean share, minus 1 (0: even). {@code
 * skew} is the policy's weighting of load and size (each shard's share is the weighted mean of its share
 * of calls and its share of bytes).
 */
public record BalancePlan(double loadSkewBefore, double sizeSkewBefore, double skewBefore, List<Step> steps,
    Stop stop, BalanceInput after) {

  public BalancePlan {
    steps = List.copyOf(steps);
  }

  /** The skews after the last step (the skews before when there is none). */
  public double loadSkewAfter() {
    return steps.isEmpty() ? loadSkewBefore : steps.get(steps.size() - 1).loadSkewAfter();
  }

  public double sizeSkewAfter() {
    return steps.isEmpty() ? sizeSkewBefore : steps.get(steps.size() - 1).sizeSkewAfter();
  }

  public double skewAfter() {
    return steps.isEmpty() ? skewBefore : steps.get(steps.size() - 1).skewAfter();
  }

  /** Why the plan has no further step. */
  public enum Stop {
    /** The skew is at or below the target (possibly before any step). */
    TARGET_REACHED,
    /** No step would lower the skew by more than the hysteresis, or the whole plan by minGain. */
    NO_GAIN,
    /** The policy's maxMoves steps were planned. */
    MAX_MOVES,
    /** Fewer than two shards, or nothing measured (no load and no bytes). */
    NOTHING_TO_BALANCE,
    /** The keyspace's units do not move one by one (a directory keyspace's entry groups). */
    NOT_MOVABLE
  }

  public enum Kind {
    /** Move the unit whole from source to target. */
    MOVE,
    /** Split the range at splitAt, then move the upper part [splitAt, end) to target. */
    SPLIT_AND_MOVE
  }

  /**
   * One step. {@code start}, {@code end} and {@code label} are the unit as it is when the step is taken
   * (after the plan's earlier steps); {@code splitAt} is the first key of the moved upper part for
   * SPLIT_AND_MOVE, null for MOVE. {@code moved*} are the moved part's figures (for a split, the share of
   * the unit's sampled calls above splitAt applied to its load, rows and bytes: an estimate).
   */
  public record Step(Kind kind, byte[] start, byte[] end, String label, String source, String target,
      byte[] splitAt, String movedLabel, double movedLoadPerSecond, long movedRows, long movedBytes,
      double loadSkewAfter, double sizeSkewAfter, double skewAfter) {}
}
