package io.shardmap.core.balance;

import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BalancerPolicy;

/**
 * Defaults and bounds of {@link BalancerPolicy}: one place, so the stored policy, the dry run and the running
 * balancer agree. {@link #validate} refuses a value out of bounds naming the field and the rule (INVALID_ARGUMENT)
 * and never changes anything; {@link #effective} fills the defaults in.
 */
public final class BalancerPolicies {
  public static final double DEFAULT_TARGET_SKEW = 0.25;
  public static final double DEFAULT_HYSTERESIS = 0.05;
  public static final int DEFAULT_MAX_CONCURRENT_MOVES = 1;
  public static final int DEFAULT_MAX_MOVES = 5;
  public static final long DEFAULT_PAUSE_BUDGET_MS = 100;
  public static final long DEFAULT_COOLDOWN_SECONDS = 3600;
  public static final long DEFAULT_WINDOW_SECONDS = 600;
  public static final long DEFAULT_INTERVAL_SECONDS = 60;

  private BalancerPolicies() {}

  /** Refuses any value out of its bounds (0 and empty mean the default and are fine). */
  public static BalancerPolicy validate(BalancerPolicy p) {
    for (int i = 0; i < p.getKeyspacesCount(); i++) {
      String ks = Names.keyspace("policy.keyspaces[" + i + "]", p.getKeyspaces(i));
      if (p.getKeyspacesList().subList(0, i).contains(ks)) {
        throw ShardmapException.invalid("policy.keyspaces[" + i + "]", "keyspace '" + ks + "' is listed twice");
      }
    }
    within("policy.target_skew", p.getTargetSkew(), 0.01, 10);
    if (p.hasLoadWeight()) {
      within("policy.load_weight", p.getLoadWeight(), 0, 1);
    }
    if (p.hasSizeWeight()) {
      within("policy.size_weight", p.getSizeWeight(), 0, 1);
    }
    if (p.hasLoadWeight() && p.hasSizeWeight() && p.getLoadWeight() == 0 && p.getSizeWeight() == 0) {
      throw ShardmapException.invalid("policy.load_weight", "load_weight and size_weight are both 0: nothing "
          + "would be balanced; give at least one a weight above 0");
    }
    within("policy.hysteresis", p.getHysteresis(), 0.001, 0.9);
    within("policy.max_concurrent_moves", p.getMaxConcurrentMoves(), 1, 16);
    within("policy.max_moves", p.getMaxMoves(), 1, 100);
    within("policy.pause_budget_ms", p.getPauseBudgetMs(), 1, 60_000);
    for (int i = 0; i < p.getQuietHoursCount(); i++) {
      QuietHours.parseWindow("policy.quiet_hours[" + i + "]", p.getQuietHours(i));
    }
    within("policy.cooldown_seconds", p.getCooldownSeconds(), 0, 30L * 86_400);
    within("policy.window_seconds", p.getWindowSeconds(), 60, 86_400);
    within("policy.interval_seconds", p.getIntervalSeconds(), 5, 3600);
    return p;
  }

  /** The policy with every default filled in; validates first. */
  public static BalancerPolicy effective(BalancerPolicy p) {
    validate(p);
    BalancerPolicy.Builder b = p.toBuilder();
    if (p.getTargetSkew() == 0) {
      b.setTargetSkew(DEFAULT_TARGET_SKEW);
    }
    if (!p.hasLoadWeight()) {
      b.setLoadWeight(1);
    }
    if (!p.hasSizeWeight()) {
      b.setSizeWeight(1);
    }
    if (p.getHysteresis() == 0) {
      b.setHysteresis(DEFAULT_HYSTERESIS);
    }
    if (p.getMaxConcurrentMoves() == 0) {
      b.setMaxConcurrentMoves(DEFAULT_MAX_CONCURRENT_MOVES);
    }
    if (p.getMaxMoves() == 0) {
      b.setMaxMoves(DEFAULT_MAX_MOVES);
    }
    if (p.getPauseBudgetMs() == 0) {
      b.setPauseBudgetMs(DEFAULT_PAUSE_BUDGET_MS);
    }
    if (p.getCooldownSeconds() == 0) {
      b.setCooldownSeconds(DEFAULT_COOLDOWN_SECONDS);
    }
    if (p.getWindowSeconds() == 0) {
      b.setWindowSeconds(DEFAULT_WINDOW_SECONDS);
    }
    if (p.getIntervalSeconds() == 0) {
      b.setIntervalSeconds(DEFAULT_INTERVAL_SECONDS);
    }
    return b.build();
  }

  /** 0 (the default) or a value in [min, max]. */
  private static void within(String field, double v, double min, double max) {
    if (v != 0 && !(v >= min && v <= max)) {
      throw ShardmapException.invalid(field, "must be between " + min + " and " + max + " (0 for the default), got "
          + v);
    }
  }

  private static void within(String field, long v, long min, long max) {
    if (v != 0 && (v < min || v > max)) {
      throw ShardmapException.invalid(field, "must be between " + min + " and " + max + " (0 for the default), got "
          + v);
    }
  }
}
