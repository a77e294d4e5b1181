package io.shardmap.core.balance;

import io.shardmap.core.Keys;
import io.shardmap.core.balance.BalanceInput.Sample;
import io.shardmap.core.balance.BalanceInput.ShardTotals;
import io.shardmap.core.balance.BalanceInput.Unit;
import io.shardmap.core.balance.BalancePlan.Kind;
import io.shardmap.core.balance.BalancePlan.Step;
import io.shardmap.core.balance.BalancePlan.Stop;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.HashSet;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The greedy planner (docs/balancing.md). Each step takes from the shard with the largest weighted share
 * and gives to the one with the smallest: of the source's movable units, moved whole or (a range, with
 * sampled keys) split where its sampled load halves with the upper part moved, it takes the one that
 * lowers the larger of the two shards' shares most, if by more than the hysteresis. It stops at the target
 * skew, at maxMoves, or when no step gains enough; a plan that lowers the skew by less than minGain in all
 * is dropped. A part the plan moved may move on (or be split) in a later step, but never back to a shard
 * it was on within the plan.
 *
 * <p>Deterministic: ties go to a whole move before a split, then the fewer bytes, then position order;
 * shards tie by name.
 */
public final class BalancePlanner {
  /** Gains closer than this are ties (shares are fractions of 1). */
  private static final double EPS = 1e-12;

  private BalancePlanner() {}

  /** Plans with split parts labelled by their bounds in hex. */
  public static BalancePlan plan(BalanceInput input, BalancePolicy policy) {
    return plan(input, policy, Keys::hex);
  }

  /**
   * @param describeKey how a range bound reads in a split part's label (e.g. {@code k ->
   *     Keys.describe(type, k)}); labels read {@code [a, b)} with {@code -inf} and {@code +inf} at the ends
   */
  public static BalancePlan plan(BalanceInput input, BalancePolicy policy, Function<byte[], String> describeKey) {
    Objects.requireNonNull(input, "input");
    Objects.requireNonNull(policy, "policy");
    Objects.requireNonNull(describeKey, "describeKey");
    State st = new State(input, policy);
    double loadBefore = st.skew(0);
    double sizeBefore = st.skew(1);
    double before = st.combinedSkew();
    List<Step> steps = new ArrayList<>();
    Stop stop;
    if (st.shards.size() < 2 || st.wl + st.ws == 0) {
      stop = Stop.NOTHING_TO_BALANCE;
    } else if (input.strategy() == Strategy.STRATEGY_DIRECTORY) {
      stop = Stop.NOT_MOVABLE;
    } else {
      stop = null;
      while (stop == null) {
        if (st.combinedSkew() <= policy.targetSkew() + EPS) {
          stop = Stop.TARGET_REACHED;
        } else if (steps.size() >= policy.maxMoves()) {
          stop = Stop.MAX_MOVES;
        } else {
          Candidate c = st.best(input.strategy() == Strategy.STRATEGY_RANGE && policy.splitRanges());
          if (c == null || c.gain * st.shards.size() <= policy.hysteresis() + 1e-9) {
            stop = Stop.NO_GAIN;
          } else {
            steps.add(st.apply(c, describeKey));
          }
        }
      }
      if (!steps.isEmpty() && before - st.combinedSkew() < policy.minGain()) {
        // Moves that buy almost nothing: not worth their copies and cutovers.
        steps.clear();
        st = new State(input, policy);
        stop = Stop.NO_GAIN;
      }
    }
    return new BalancePlan(loadBefore, sizeBefore, before, steps, stop, st.toInput(input));
  }

  /** A unit as the plan changes it. */
  private static final class Part {
    final byte[] start;
    final byte[] end;
    final String label;
    String shard;
    final double reads;
    final double writes;
    final long rows;
    final long bytes;
    final boolean movable;
    /** The shards this part was on in this plan: it never moves to one of them again. */
    final Set<String> visited = new HashSet<>();

    Part(byte[] start, byte[] end, String label, String shard, double reads, double writes, long rows,
        long bytes, boolean movable) {
      this.start = start;
      this.end = end;
      this.label = label;
      this.shard = shard;
      this.reads = reads;
      this.writes = writes;
      this.rows = rows;
      this.bytes = bytes;
      this.movable = movable;
    }

    double load() {
      return reads + writes;
    }
  }

  /** A possible step: move {@code part} whole (splitAt null) or its upper fraction from splitAt. */
  private record Candidate(int index, byte[] splitAt, double fraction, double share, double gain,
      double maxAfter, String source, String target) {}

  private static final class State {
    final List<Part> parts = new ArrayList<>();
    /** Per shard: [load, bytes]. */
    final Map<String, double[]> shards = new TreeMap<>();
    final List<Sample> samples;
    final double totalLoad;
    final double totalBytes;
    /** The policy's weights, 0 for a dimension with nothing measured. */
    final double wl;
    final double ws;

    State(BalanceInput in, BalancePolicy p) {
      for (Unit u : in.units()) {
        parts.add(new Part(u.start(), u.end(), u.label(), u.shard(), u.readsPerSecond(), u.writesPerSecond(),
            u.rows(), u.bytes(), u.movable() && u.shard() != null));
      }
      double l = 0;
      double b = 0;
      for (Map.Entry<String, ShardTotals> e : in.shards().entrySet()) {
        shards.put(e.getKey(), new double[] {e.getValue().loadPerSecond(), e.getValue().bytes()});
        l += e.getValue().loadPerSecond();
        b += e.getValue().bytes();
      }
      samples = in.samples();
      totalLoad = l;
      totalBytes = b;
      wl = l > 0 ? p.loadWeight() : 0;
      ws = b > 0 ? p.sizeWeight() : 0;
    }

    /** The weighted share of a load and a size. */
    double share(double load, double bytes) {
      double s = 0;
      if (wl > 0) {
        s += wl * load / totalLoad;
      }
      if (ws > 0) {
        s += ws * bytes / totalBytes;
      }
      return wl + ws == 0 ? 0 : s / (wl + ws);
    }

    double shardShare(String shard) {
      double[] t = shards.get(shard);
      return share(t[0], t[1]);
    }

    /** The skew of dimension d (0 load, 1 bytes). */
    double skew(int d) {
      double total = d == 0 ? totalLoad : totalBytes;
      if (total <= 0 || shards.isEmpty()) {
        return 0;
      }
      double max = 0;
      for (double[] t : shards.values()) {
        max = Math.max(max, t[d]);
      }
      return Math.max(0, max * shards.size() / total - 1);
    }

    double combinedSkew() {
      if (wl + ws == 0 || shards.isEmpty()) {
        return 0;
      }
      double max = 0;
      for (String s : shards.keySet()) {
        max = Math.max(max, shardShare(s));
      }
      return Math.max(0, max * shards.size() - 1);
    }

    Candidate best(boolean splits) {
      String src = null;
      String tgt = null;
      double srcShare = -1;
      double tgtShare = Double.MAX_VALUE;
      for (String s : shards.keySet()) {
        double sh = shardShare(s);
        if (sh > srcShare + EPS) {
          srcShare = sh;
          src = s;
        }
        if (sh < tgtShare - EPS) {
          tgtShare = sh;
          tgt = s;
        }
      }
      if (src == null || src.equals(tgt)) {
        return null;
      }
      Candidate best = null;
      for (int i = 0; i < parts.size(); i++) {
        Part p = parts.get(i);
        if (!p.movable || !src.equals(p.shard) || p.visited.contains(tgt)) {
          continue;
        }
        double x = share(p.load(), p.bytes);
        best = better(best, candidate(i, null, 1, x, src, srcShare, tgt, tgtShare));
        if (splits) {
          SplitPoint sp = splitPoint(p);
          if (sp != null) {
            double xs = share(p.load() * sp.fraction, p.bytes * sp.fraction);
            best = better(best, candidate(i, sp.key, sp.fraction, xs, src, srcShare, tgt, tgtShare));
          }
        }
      }
      return best;
    }

    /**
     * A candidate, or null when it would not lower the pair's larger share or would raise the keyspace's
     * largest share (a unit larger than the gap overshoots: the target becomes the new hot spot).
     */
    Candidate candidate(int index, byte[] splitAt, double fraction, double x, String src, double srcShare,
        String tgt, double tgtShare) {
      double gain = gain(srcShare, tgtShare, x);
      if (gain <= EPS) {
        return null;
      }
      // The largest share after: the pair's new larger one, or the largest other shard's.
      double max = Math.max(srcShare - x, tgtShare + x);
      for (String s : shards.keySet()) {
        if (!s.equals(src) && !s.equals(tgt)) {
          max = Math.max(max, shardShare(s));
        }
      }
      return new Candidate(index, splitAt, fraction, x, gain, max, src, tgt);
    }

    /** How much moving share x lowers the larger of the two shards' shares. */
    static double gain(double src, double tgt, double x) {
      return src - Math.max(src - x, tgt + x);
    }

    /** The lower largest share after, then the larger gain, a whole move, the fewer bytes, the first. */
    Candidate better(Candidate a, Candidate b) {
      if (a == null || b == null) {
        return a == null ? b : a;
      }
      if (b.maxAfter < a.maxAfter - EPS) {
        return b;
      }
      if (a.maxAfter < b.maxAfter - EPS) {
        return a;
      }
      if (b.gain > a.gain + EPS) {
        return b;
      }
      if (a.gain > b.gain + EPS) {
        return a;
      }
      boolean aWhole = a.splitAt == null;
      boolean bWhole = b.splitAt == null;
      if (aWhole != bWhole) {
        return aWhole ? a : b;
      }
      double ab = parts.get(a.index).bytes * a.fraction;
      double bb = parts.get(b.index).bytes * b.fraction;
      return bb < ab ? b : a;
    }

    record SplitPoint(byte[] key, double fraction) {}

    /**
     * Where the part's sampled load halves: the sampled key k inside the part (above its start) that leaves
     * the sampled weight below k closest to half, ties to the first; null without two such halves (no
     * samples, or every sample on one key).
     */
    SplitPoint splitPoint(Part p) {
      int from = firstAtOrAfter(p.start);
      int to = p.end.length == 0 ? samples.size() : firstAtOrAfter(p.end);
      if (to - from < 2) {
        return null;
      }
      double total = 0;
      for (int i = from; i < to; i++) {
        total += samples.get(i).weight();
      }
      double below = 0;
      byte[] bestKey = null;
      double bestBelow = 0;
      double bestDiff = Double.MAX_VALUE;
      for (int i = from; i < to; i++) {
        byte[] k = samples.get(i).key();
        boolean first = i == from || !Arrays.equals(k, samples.get(i - 1).key());
        if (first && below > 0 && Arrays.compareUnsigned(k, p.start) > 0) {
          double diff = Math.abs(2 * below - total);
          if (diff < bestDiff - EPS * total) {
            bestDiff = diff;
            bestKey = k;
            bestBelow = below;
          }
        }
        below += samples.get(i).weight();
      }
      if (bestKey == null || total - bestBelow <= 0) {
        return null;
      }
      return new SplitPoint(bestKey.clone(), (total - bestBelow) / total);
    }

    int firstAtOrAfter(byte[] key) {
      int lo = 0;
      int hi = samples.size();
      while (lo < hi) {
        int mid = (lo + hi) >>> 1;
        if (Arrays.compareUnsigned(samples.get(mid).key(), key) < 0) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    }

    Step apply(Candidate c, Function<byte[], String> describeKey) {
      Part p = parts.get(c.index);
      Part moved;
      Kind kind;
      if (c.splitAt == null) {
        kind = Kind.MOVE;
        moved = p;
        p.shard = c.target;
      } else {
        kind = Kind.SPLIT_AND_MOVE;
        double f = c.fraction;
        long upRows = Math.round(p.rows * f);
        long upBytes = Math.round(p.bytes * f);
        Part lower = new Part(p.start, c.splitAt, label(p.start, c.splitAt, describeKey), p.shard,
            p.reads * (1 - f), p.writes * (1 - f), p.rows - upRows, p.bytes - upBytes, true);
        moved = new Part(c.splitAt, p.end, label(c.splitAt, p.end, describeKey), c.target, p.reads * f,
            p.writes * f, upRows, upBytes, true);
        lower.visited.addAll(p.visited);
        moved.visited.addAll(p.visited);
        parts.set(c.index, lower);
        parts.add(c.index + 1, moved);
      }
      moved.visited.add(c.source);
      moved.visited.add(c.target);
      double[] s = shards.get(c.source);
      double[] t = shards.get(c.target);
      s[0] = Math.max(0, s[0] - moved.load());
      s[1] = Math.max(0, s[1] - moved.bytes);
      t[0] += moved.load();
      t[1] += moved.bytes;
      return new Step(kind, p.start.clone(), p.end.clone(), p.label, c.source, c.target,
          c.splitAt == null ? null : c.splitAt.clone(), moved.label, moved.load(), moved.rows, moved.bytes,
          skew(0), skew(1), combinedSkew());
    }

    static String label(byte[] start, byte[] end, Function<byte[], String> describeKey) {
      return "[" + (start.length == 0 ? "-inf" : describeKey.apply(start)) + ", "
          + (end.length == 0 ? "+inf" : describeKey.apply(end)) + ")";
    }

    BalanceInput toInput(BalanceInput in) {
      BalanceInput.Builder b = BalanceInput.builder(in.strategy());
      for (Part p : parts) {
        b.unit(new Unit(p.start, p.end, p.label, p.shard, p.reads, p.writes, p.rows, p.bytes, p.movable));
      }
      for (Map.Entry<String, double[]> e : shards.entrySet()) {
        b.shard(e.getKey(), e.getValue()[0], (long) e.getValue()[1]);
      }
      for (Sample s : samples) {
        b.sample(s.key(), s.weight());
      }
      return b.build();
    }
  }
}
