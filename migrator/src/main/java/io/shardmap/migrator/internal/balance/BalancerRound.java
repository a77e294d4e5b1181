package io.shardmap.migrator.internal.balance;

import io.shardmap.core.balance.BalancerPolicies;
import io.shardmap.core.balance.QuietHours;
import io.shardmap.core.UnitSpace;
import io.shardmap.proto.v1.BalancerMove;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * What one balancer round starts, decided from the policy, the plan the directory answered, the moves the
 * balancer started before, and the keyspaces with a move still running (anyone's). Pure.
 *
 * <p>The rules, in order: nothing when disabled or inside a quiet window; nothing beyond
 * {@code max_concurrent_moves} running balancer moves; at most one move per keyspace at a time (a keyspace
 * whose load and size are in flux is re-planned once the move ends); and never a step that touches a unit
 * the balancer moved within {@code cooldown_seconds} (overlapping positions in the same keyspace), which
 * with the planner's hysteresis keeps a unit from going back and forth. Steps are taken in plan order.
 */
public final class BalancerRound {
  /** One planned step of a keyspace, as GetFleetStatus listed it. */
  public record Step(String keyspace, Strategy strategy, Suggestion suggestion) {}

  /** The steps to start now (in order), or why none: one of the reasons below, or "" when steps start. */
  public record Decision(List<Step> start, String idleReason) {}

  public static final String DISABLED = "disabled";
  public static final String BALANCED = "balanced: nothing planned";
  public static final String BUSY = "moves running";
  public static final String COOLING = "every planned unit was moved within the cooldown";

  private BalancerRound() {}

  /**
   * @param policy the effective policy ({@link BalancerPolicies#effective})
   * @param runningOurs migration ids of balancer moves not finished yet
   * @param busyKeyspaces keyspaces with any migration not finished yet
   */
  public static Decision decide(BalancerPolicy policy, Instant now, List<Step> plan, List<BalancerMove> recent,
                                Set<String> runningOurs, Set<String> busyKeyspaces) {
    if (!policy.getEnabled()) {
      return new Decision(List.of(), DISABLED);
    }
    String quiet = QuietHours.quietAt(policy.getQuietHoursList(), now);
    if (quiet != null) {
      return new Decision(List.of(), "quiet hours " + quiet + " UTC");
    }
    int free = policy.getMaxConcurrentMoves() - runningOurs.size();
    if (free <= 0) {
      return new Decision(List.of(), BUSY);
    }
    if (plan.isEmpty()) {
      return new Decision(List.of(), BALANCED);
    }
    Instant cooledSince = now.minus(Duration.ofSeconds(policy.getCooldownSeconds()));
    Set<String> taken = new HashSet<>(busyKeyspaces);
    List<Step> start = new ArrayList<>();
    boolean cooling = false;
    for (Step s : plan) {
      if (start.size() >= free) {
        break;
      }
      if (taken.contains(s.keyspace())) {
        continue;
      }
      if (coolingDown(s, recent, cooledSince)) {
        cooling = true;
        continue;
      }
      start.add(s);
      taken.add(s.keyspace());
    }
    if (!start.isEmpty()) {
      return new Decision(List.copyOf(start), "");
    }
    return new Decision(List.of(), cooling ? COOLING : BUSY);
  }

  /** Whether the step's unit overlaps a unit of its keyspace that the balancer moved after {@code since}. */
  static boolean coolingDown(Step s, List<BalancerMove> recent, Instant since) {
    byte[] start = s.suggestion().getStart().toByteArray();
    byte[] end = s.suggestion().getEnd().toByteArray();
    for (BalancerMove m : recent) {
      if (!m.getKeyspace().equals(s.keyspace()) || Instant.ofEpochMilli(m.getStartedUnixMs()).isBefore(since)) {
        continue;
      }
      if (overlap(start, end, m.getStart().toByteArray(), m.getEnd().toByteArray())) {
        return true;
      }
    }
    return false;
  }

  /** Whether [a, b) and [c, d) share a position (empty start: the start of the space; empty end: its end). */
  static boolean overlap(byte[] a, byte[] b, byte[] c, byte[] d) {
    return UnitSpace.before(a, d) && UnitSpace.before(c, b);
  }
}
