package io.shardmap.migrator.internal.balance;

import io.shardmap.core.balance.BalancerPolicies;
import io.shardmap.core.balance.QuietHours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BalancerMove;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The balancer's policy bounds, quiet windows and what a round starts. */
@Tag("unit")
class BalancerRoundTest {
  private static final Instant NOON = Instant.parse("2026-12-08T12:00:00Z");
  private static final BalancerPolicy ON = BalancerPolicies.effective(BalancerPolicy.newBuilder().setEnabled(true)
      .setMaxConcurrentMoves(2).build());

  private static BalancerRound.Step step(String ks, long start, long end, String source, String target) {
    return new BalancerRound.Step(ks, Strategy.STRATEGY_RANGE, Suggestion.newBuilder().setKind(Suggestion.Kind.KIND_MOVE)
        .setStart(ByteString.copyFrom(Keys.encodeInt64(start))).setEnd(ByteString.copyFrom(Keys.encodeInt64(end)))
        .setSource(source).setTarget(target).build());
  }

  private static BalancerMove moved(String ks, long start, long end, Instant when) {
    return BalancerMove.newBuilder().setKeyspace(ks).setStart(ByteString.copyFrom(Keys.encodeInt64(start)))
        .setEnd(ByteString.copyFrom(Keys.encodeInt64(end))).setStartedUnixMs(when.toEpochMilli()).build();
  }

  @Test
  void defaultsAreFilledAndBoundsNamed() {
    BalancerPolicy p = BalancerPolicies.effective(BalancerPolicy.getDefaultInstance());
    assertEquals(0.25, p.getTargetSkew());
    assertEquals(1.0, p.getLoadWeight());
    assertEquals(1.0, p.getSizeWeight());
    assertEquals(0.05, p.getHysteresis());
    assertEquals(1, p.getMaxConcurrentMoves());
    assertEquals(3600, p.getCooldownSeconds());
    // A weight may be 0 when the other is not.
    assertEquals(0.0, BalancerPolicies.effective(BalancerPolicy.newBuilder().setSizeWeight(0).build()).getSizeWeight());

    List<UnaryOperator<BalancerPolicy.Builder>> bad = List.of(
        b -> b.setTargetSkew(-0.1), b -> b.setTargetSkew(11), b -> b.setHysteresis(0.95),
        b -> b.setLoadWeight(0).setSizeWeight(0), b -> b.setLoadWeight(1.5), b -> b.setMaxConcurrentMoves(17),
        b -> b.setMaxMoves(-1), b -> b.setPauseBudgetMs(60_001), b -> b.addQuietHours("25:00-01:00"),
        b -> b.addQuietHours("10:00-10:00"), b -> b.setCooldownSeconds(-5), b -> b.setWindowSeconds(30),
        b -> b.setIntervalSeconds(1), b -> b.addKeyspaces("Users"), b -> b.addKeyspaces("a").addKeyspaces("a"));
    List<String> fields = List.of("policy.target_skew", "policy.target_skew", "policy.hysteresis",
        "policy.load_weight", "policy.load_weight", "policy.max_concurrent_moves", "policy.max_moves",
        "policy.pause_budget_ms", "policy.quiet_hours[0]", "policy.quiet_hours[0]", "policy.cooldown_seconds",
        "policy.window_seconds", "policy.interval_seconds", "policy.keyspaces[0]", "policy.keyspaces[1]");
    for (int i = 0; i < bad.size(); i++) {
      BalancerPolicy p2 = bad.get(i).apply(BalancerPolicy.newBuilder()).build();
      ShardmapException e = assertThrows(ShardmapException.class, () -> BalancerPolicies.validate(p2), p2.toString());
      assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
      assertTrue(e.getMessage().contains(fields.get(i)), e.getMessage() + " should name " + fields.get(i));
    }
  }

  @Test
  void quietWindowsMayWrapMidnight() {
    List<String> w = List.of("22:00-06:00", "12:30-13:00");
    assertEquals("22:00-06:00", QuietHours.quietAt(w, Instant.parse("2026-12-08T23:59:00Z")));
    assertEquals("22:00-06:00", QuietHours.quietAt(w, Instant.parse("2026-12-08T05:59:00Z")));
    assertNull(QuietHours.quietAt(w, Instant.parse("2026-12-08T06:00:00Z")));
    assertEquals("12:30-13:00", QuietHours.quietAt(w, Instant.parse("2026-12-08T12:30:00Z")));
    assertNull(QuietHours.quietAt(w, NOON));
  }

  @Test
  void aRoundStartsPlannedStepsWithinItsLimits() {
    List<BalancerRound.Step> plan = List.of(step("users", 0, 100, "s1", "s2"), step("users", 100, 200, "s1", "s3"),
        step("orders", 0, 50, "s2", "s3"), step("items", 0, 50, "s2", "s1"));
    BalancerRound.Decision d = BalancerRound.decide(ON, NOON, plan, List.of(), Set.of(), Set.of());
    assertEquals("", d.idleReason());
    assertEquals(List.of(plan.get(0), plan.get(2)), d.start(), "one move per keyspace, at most two at once");

    d = BalancerRound.decide(ON, NOON, plan, List.of(), Set.of("m1"), Set.of("users"));
    assertEquals(List.of(plan.get(2)), d.start(), "one slot left; users has a move running");

    d = BalancerRound.decide(ON, NOON, plan, List.of(), Set.of("m1", "m2"), Set.of());
    assertEquals(BalancerRound.BUSY, d.idleReason());
    assertTrue(d.start().isEmpty());
  }

  @Test
  void nothingStartsWhenDisabledQuietOrBalanced() {
    List<BalancerRound.Step> plan = List.of(step("users", 0, 100, "s1", "s2"));
    BalancerPolicy off = ON.toBuilder().setEnabled(false).build();
    assertEquals(BalancerRound.DISABLED, BalancerRound.decide(off, NOON, plan, List.of(), Set.of(), Set.of())
        .idleReason());
    BalancerPolicy quiet = ON.toBuilder().addQuietHours("11:00-13:00").build();
    BalancerRound.Decision d = BalancerRound.decide(quiet, NOON, plan, List.of(), Set.of(), Set.of());
    assertEquals("quiet hours 11:00-13:00 UTC", d.idleReason());
    assertTrue(d.start().isEmpty());
    assertEquals(BalancerRound.BALANCED, BalancerRound.decide(ON, NOON, List.of(), List.of(), Set.of(), Set.of())
        .idleReason());
  }

  @Test
  void aUnitMovedWithinTheCooldownIsNotMovedAgain() {
    List<BalancerRound.Step> plan = List.of(step("users", 50, 150, "s2", "s1"), step("users", 150, 300, "s2", "s3"));
    List<BalancerMove> recent = List.of(moved("users", 0, 100, NOON.minusSeconds(600)));
    BalancerRound.Decision d = BalancerRound.decide(ON, NOON, plan, recent, Set.of(), Set.of());
    assertEquals(List.of(plan.get(1)), d.start(), "[50, 150) overlaps [0, 100), moved 10 minutes ago");

    d = BalancerRound.decide(ON, NOON, plan.subList(0, 1), recent, Set.of(), Set.of());
    assertEquals(BalancerRound.COOLING, d.idleReason());

    List<BalancerMove> old = List.of(moved("users", 0, 100, NOON.minusSeconds(3601)));
    assertEquals(List.of(plan.get(0)), BalancerRound.decide(ON, NOON, plan, old, Set.of(), Set.of()).start(),
        "past the cooldown the unit may move");
    List<BalancerMove> other = List.of(moved("orders", 0, 100, NOON.minusSeconds(60)));
    assertEquals(List.of(plan.get(0)), BalancerRound.decide(ON, NOON, plan, other, Set.of(), Set.of()).start(),
        "another keyspace's move does not cool this one");
  }

  @Test
  void overlapTreatsEmptyBoundsAsTheEndsOfTheSpace() {
    byte[] e = new byte[0];
    byte[] k = Keys.encodeInt64(10);
    assertTrue(BalancerRound.overlap(e, e, k, Keys.encodeInt64(11)));
    assertTrue(BalancerRound.overlap(e, Keys.encodeInt64(11), k, e));
    assertTrue(!BalancerRound.overlap(e, k, k, e), "[start, 10) and [10, end) touch but do not overlap");
  }
}
