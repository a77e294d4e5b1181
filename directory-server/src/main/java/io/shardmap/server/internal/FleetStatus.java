package io.shardmap.server.internal;

import com.google.protobuf.ByteString;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyRange;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Keys;
import io.shardmap.core.Names;
import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.UnitSpace;
import io.shardmap.core.balance.BalanceInput;
import io.shardmap.core.balance.BalancePlan;
import io.shardmap.core.balance.BalancePlanner;
import io.shardmap.core.balance.BalancePolicy;
import io.shardmap.core.balance.BalancerPolicies;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationPhase;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.MoveStatus;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.ShardStatus;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.proto.v1.UnitStatus;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Assembles GetFleetStatus (docs/balancing.md, "What status reads"): per keyspace, the current map's units
 * with the load the clients reported over the window ({@link LoadHistory#totals}), the latest sizes in
 * etcd ({@link SizeRecords}), the shards' totals and skews, the hottest units, and the balance planner's
 * suggestions under {@link #POLICY} (or the request's policy, as the balancer's dry run asks); and every migration record not finished, with its phase, rate and
 * ETA. Reads etcd (sizes, migrations): call it off the transport threads.
 */
public final class FleetStatus {
  public static final long DEFAULT_WINDOW_SECONDS = 300;
  public static final long MIN_WINDOW_SECONDS = 60;
  public static final long MAX_WINDOW_SECONDS = Duration.ofDays(28).toSeconds();
  public static final int DEFAULT_TOP = 10;
  public static final int MAX_TOP = 1000;
  /** What status suggests by: skew 0.25 by load and size, hysteresis 0.05, at most 5 suggestions. */
  public static final BalancePolicy POLICY = BalancePolicy.builder().targetSkew(0.25).loadWeight(1).sizeWeight(1)
      .hysteresis(0.05).maxMoves(5).build();

  /** The latest sizes of a keyspace (empty: never taken). */
  @FunctionalInterface
  public interface SizeSource {
    Optional<KeyspaceSizes> read(String keyspace) throws Exception;
  }

  /** Every migration record. */
  @FunctionalInterface
  public interface MoveSource {
    List<Migration> read() throws Exception;
  }

  private final Supplier<DirectorySnapshot> snapshots;
  private final LoadHistory history;
  private final SizeSource sizes;
  private final MoveSource moves;
  private final LongSupplier wallClockMillis;

  public FleetStatus(Supplier<DirectorySnapshot> snapshots, LoadHistory history, SizeSource sizes, MoveSource moves,
      LongSupplier wallClockMillis) {
    this.snapshots = snapshots;
    this.history = history;
    this.sizes = sizes;
    this.moves = moves;
    this.wallClockMillis = wallClockMillis;
  }

  /** Every migration record under {@code {root}/migrations/} of the store. */
  public static MoveSource migrations(io.shardmap.store.MetaStore store, io.shardmap.catalog.CatalogPaths paths,
      Duration timeout) {
    return () -> {
      List<Migration> out = new ArrayList<>();
      for (io.shardmap.store.KeyValue kv : store.getPrefix(paths.migrationsPrefix())
          .get(timeout.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS).kvs()) {
        try {
          out.add(Migration.parseFrom(kv.value()));
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
          // Not a migration we can read (a newer migrator's?): status leaves it out rather than fail.
        }
      }
      return out;
    };
  }

  public GetFleetStatusResponse status(GetFleetStatusRequest req) throws Exception {
    long window = req.getWindowSeconds() == 0 ? DEFAULT_WINDOW_SECONDS : req.getWindowSeconds();
    if (window < MIN_WINDOW_SECONDS || window > MAX_WINDOW_SECONDS) {
      throw ShardmapException.invalid("window_seconds", "must be " + MIN_WINDOW_SECONDS + "-" + MAX_WINDOW_SECONDS
          + " (1 minute to 28 days; 0 for the default " + DEFAULT_WINDOW_SECONDS + "), got " + req.getWindowSeconds());
    }
    int top = req.getTop() == 0 ? DEFAULT_TOP : req.getTop();
    if (top < 0 || top > MAX_TOP) {
      throw ShardmapException.invalid("top", "must be 0-" + MAX_TOP + " (0 for the default " + DEFAULT_TOP + "), got "
          + req.getTop());
    }
    BalancePolicy policy = req.hasPolicy() ? policyOf(req.getPolicy()) : POLICY;
    DirectorySnapshot snap = snapshots.get();
    List<KeyspaceMap> keyspaces = new ArrayList<>();
    if (req.getKeyspace().isEmpty()) {
      keyspaces.addAll(new TreeMap<>(snap.keyspaces()).values());
    } else {
      Names.keyspace("keyspace", req.getKeyspace());
      KeyspaceMap k = snap.keyspace(req.getKeyspace());
      if (k == null) {
        throw ShardmapException.notFound("keyspace: no keyspace '" + req.getKeyspace() + "'");
      }
      keyspaces.add(k);
    }
    long now = wallClockMillis.getAsLong();
    List<Migration> running = new ArrayList<>();
    for (Migration m : moves.read()) {
      if (m.getState() != MigrationState.MIGRATION_STATE_DONE
          && m.getState() != MigrationState.MIGRATION_STATE_CANCELLED) {
        running.add(m);
      }
    }
    running.sort(Comparator.comparingLong(Migration::getCreatedUnixMs).thenComparing(Migration::getId));
    GetFleetStatusResponse.Builder out = GetFleetStatusResponse.newBuilder().setGeneratedUnixMs(now);
    for (KeyspaceMap k : keyspaces) {
      out.addKeyspaces(keyspace(snap, k, window * 1000, top, now, running, policy));
    }
    for (Migration m : running) {
      out.addMoves(move(m, now));
    }
    return out.build();
  }

  /**
   * The planner's policy from a balancer's (the balancer's dry run asks with its stored policy): refused with
   * INVALID_ARGUMENT naming {@code policy.<field>} when a value is out of its bounds.
   */
  static BalancePolicy policyOf(BalancerPolicy requested) {
    BalancerPolicy p = BalancerPolicies.effective(requested);
    return BalancePolicy.builder().targetSkew(p.getTargetSkew()).loadWeight(p.getLoadWeight())
        .sizeWeight(p.getSizeWeight()).hysteresis(p.getHysteresis()).maxMoves(p.getMaxMoves()).build();
  }

  private KeyspaceStatus keyspace(DirectorySnapshot snap, KeyspaceMap k, long windowMs, int top, long now,
      List<Migration> running, BalancePolicy policy) throws Exception {
    KeyspaceStatus.Builder b = KeyspaceStatus.newBuilder().setKeyspace(k.name()).setStrategy(k.strategy());
    RoutingTable t;
    try {
      t = k.hasLayout() ? k.table() : null;
    } catch (RuntimeException e) {
      t = null; // a broken map: nothing to lay counts over
    }
    if (t == null) {
      return b.build();
    }
    int n = t.unitCount();
    b.setUnits(n);

    // Load: each band's counts spread evenly over the current units it overlaps.
    double[] reads = new double[n];
    double[] writes = new double[n];
    double[] busy = new double[n];
    LoadHistory.Totals tot = history.totals(k.name(), now - windowMs,
        now + LoadReports.MAX_FUTURE_MS + history.settings().minuteMs());
    for (LoadHistory.Band band : tot.bands()) {
      if (band.reads() == 0 && band.writes() == 0 && band.busyMicros() == 0) {
        continue;
      }
      int first = UnitSpace.unitAt(t, band.start());
      int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, band.end()));
      double units = last - first + 1;
      for (int u = first; u <= last; u++) {
        reads[u] += band.reads() / units;
        writes[u] += band.writes() / units;
        busy[u] += band.busyMicros() / units;
      }
    }
    // The counts cover the columns from the first one's start until now (the first may begin before the
    // window): rates are per second of that span.
    long from = tot.fromUnixMs() > 0 ? Math.min(tot.fromUnixMs(), now - 1000) : now - windowMs;
    double seconds = Math.max(1.0, (now - from) / 1000.0);
    for (int u = 0; u < n; u++) {
      reads[u] /= seconds;
      writes[u] /= seconds;
      busy[u] /= seconds * 1e6;
    }

    // Sizes: each unit size spread evenly over the current units it overlaps (one per unit when the map
    // has not changed since they were taken).
    long[] rows = new long[n];
    long[] bytes = new long[n];
    Optional<KeyspaceSizes> sz = sizes.read(k.name());
    Map<String, long[]> shardSizes = new TreeMap<>();
    if (sz.isPresent()) {
      KeyspaceSizes s = sz.get();
      b.setSizesUnixMs(s.getTakenUnixMs()).setSizesExact(s.getExact());
      for (UnitSize us : s.getUnitsList()) {
        int first = UnitSpace.unitAt(t, us.getStart().toByteArray());
        int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, us.getEnd().toByteArray()));
        int units = last - first + 1;
        long r = Math.max(0, us.getRows());
        long by = Math.max(0, us.getBytes());
        for (int u = first; u <= last; u++) {
          rows[u] += r / units + (u == first ? r % units : 0);
          bytes[u] += by / units + (u == first ? by % units : 0);
        }
      }
      for (ShardSize ss : s.getShardsList()) {
        shardSizes.put(ss.getShard(), new long[] {ss.getRows(), ss.getBytes()});
      }
    }

    // Shards: every owner, by name.
    Set<String> owners = new TreeSet<>();
    t.addOwners(owners);
    Map<String, ShardStatus.Builder> shards = new TreeMap<>();
    for (String s : owners) {
      shards.put(s, ShardStatus.newBuilder().setShard(s));
    }
    Map<String, long[]> unitSizesPerShard = new TreeMap<>();
    double totalLoad = 0;
    double totalReads = 0;
    double totalWrites = 0;
    for (int u = 0; u < n; u++) {
      totalReads += reads[u];
      totalWrites += writes[u];
      totalLoad += reads[u] + writes[u];
      Route r = t.unitRoute(u);
      if (r == null) {
        continue;
      }
      ShardStatus.Builder s = shards.computeIfAbsent(r.shard(), x -> ShardStatus.newBuilder().setShard(x));
      s.setUnits(s.getUnits() + 1).setReadsPerSecond(s.getReadsPerSecond() + reads[u])
          .setWritesPerSecond(s.getWritesPerSecond() + writes[u]).setBusy(s.getBusy() + busy[u]);
      long[] us = unitSizesPerShard.computeIfAbsent(r.shard(), x -> new long[2]);
      us[0] += rows[u];
      us[1] += bytes[u];
    }
    for (ShardStatus.Builder s : shards.values()) {
      // The shard's own totals when taken (every row of the keyspace's tables there), else its units' sum.
      long[] given = shardSizes.get(s.getShard());
      long[] sum = unitSizesPerShard.getOrDefault(s.getShard(), new long[2]);
      s.setRows(given != null ? given[0] : sum[0]).setBytes(given != null ? given[1] : sum[1]);
      b.addShards(s);
    }
    b.setReadsPerSecond(totalReads).setWritesPerSecond(totalWrites);
    double[] loads = new double[shards.size()];
    double[] sizesPerShard = new double[shards.size()];
    int i = 0;
    for (ShardStatus.Builder s : shards.values()) {
      loads[i] = s.getReadsPerSecond() + s.getWritesPerSecond();
      sizesPerShard[i++] = Math.max(0, s.getBytes());
    }
    b.setLoadSkew(skew(loads)).setSizeSkew(skew(sizesPerShard));

    // The hottest units: those with calls, by calls per second.
    Integer[] order = new Integer[n];
    for (int u = 0; u < n; u++) {
      order[u] = u;
    }
    Arrays.sort(order, (x, y) -> Double.compare(reads[y] + writes[y], reads[x] + writes[x]));
    for (int j = 0; j < Math.min(top, n); j++) {
      int u = order[j];
      if (reads[u] + writes[u] <= 0) {
        break;
      }
      Route r = t.unitRoute(u);
      b.addHottest(UnitStatus.newBuilder().setStart(ByteString.copyFrom(t.unitStart(u)))
          .setEnd(ByteString.copyFrom(t.unitEnd(u))).setLabel(t.describeUnit(u)).setShard(r == null ? "" : r.shard())
          .setReadsPerSecond(reads[u]).setWritesPerSecond(writes[u]).setBusy(busy[u]).setRows(rows[u])
          .setBytes(bytes[u]).setLoadShare(totalLoad > 0 ? (reads[u] + writes[u]) / totalLoad : 0));
    }

    // Suggestions: the planner over the units, every active registered shard a possible target.
    boolean movable = k.strategy() == Strategy.STRATEGY_RANGE || k.strategy() == Strategy.STRATEGY_HASH
        || k.strategy() == Strategy.STRATEGY_GEOGRAPHIC;
    if (movable && top > 0) {
      boolean[] moving = moving(k, t, running);
      BalanceInput.Builder in = BalanceInput.builder(k.strategy());
      for (int u = 0; u < n; u++) {
        Route r = t.unitRoute(u);
        in.unit(new BalanceInput.Unit(t.unitStart(u), t.unitEnd(u), t.describeUnit(u), r == null ? null : r.shard(),
            reads[u], writes[u], rows[u], bytes[u], r != null && !moving[u]));
      }
      for (Shard s : snap.shards().values()) {
        if (s.getState() == ShardState.SHARD_STATE_ACTIVE) {
          in.shard(s.getName());
        }
      }
      for (ShardStatus.Builder s : shards.values()) {
        in.shard(s.getShard(), s.getReadsPerSecond() + s.getWritesPerSecond(), Math.max(0, s.getBytes()));
      }
      if (k.strategy() == Strategy.STRATEGY_RANGE) {
        for (LoadHistory.Sample s : tot.samples()) {
          in.sample(s.key(), s.weight());
        }
      }
      KeyType type = k.keyType();
      BalancePlan plan = BalancePlanner.plan(in.build(), policy, key -> rangeLabelKey(type, key));
      for (BalancePlan.Step st : plan.steps()) {
        b.addSuggestions(suggestion(k, st));
      }
    }
    return b.build();
  }

  /** The units a running migration of the keyspace moves (not to be suggested again). */
  private static boolean[] moving(KeyspaceMap k, RoutingTable t, List<Migration> running) {
    boolean[] out = new boolean[t.unitCount()];
    for (Migration m : running) {
      if (!m.getKeyspace().equals(k.name())) {
        continue;
      }
      try {
        if (m.hasRange() && k.strategy() == Strategy.STRATEGY_RANGE) {
          KeyRange r = KeyRange.fromProto(m.getKeyType(), m.getRange(), "range");
          int first = UnitSpace.unitAt(t, r.start());
          int last = Math.max(first, LoadColumn.UnitWeights.lastUnit(t, r.end()));
          for (int u = first; u <= last; u++) {
            out[u] = true;
          }
        } else if (m.getUnit().getKindCase() == MigrationUnit.KindCase.BUCKET && k.strategy() == Strategy.STRATEGY_HASH) {
          int bucket = m.getUnit().getBucket().getBucket();
          if (bucket >= 0 && bucket < out.length) {
            out[bucket] = true;
          }
        } else if (m.getUnit().getKindCase() == MigrationUnit.KindCase.REGION
            && k.strategy() == Strategy.STRATEGY_GEOGRAPHIC) {
          out[UnitSpace.unitAt(t, m.getUnit().getRegion().getRegion().getBytes(StandardCharsets.UTF_8))] = true;
        }
      } catch (RuntimeException e) {
        // A record this map cannot place: it marks nothing.
      }
    }
    return out;
  }

  /** The largest value over the mean, minus 1; 0 without any. */
  static double skew(double[] v) {
    double total = 0;
    double max = 0;
    for (double x : v) {
      total += x;
      max = Math.max(max, x);
    }
    return total <= 0 ? 0 : Math.max(0, max * v.length / total - 1);
  }

  /** A range bound as RangeTable labels it ([a, b) with -inf/+inf added by the planner). */
  private static String rangeLabelKey(KeyType type, byte[] key) {
    return Keys.describe(type, key);
  }

  /** A key in the syntax the CLIs read ({@link KeyRange#parse}): a decimal, or 0x-hex. */
  static String pasteable(KeyType type, byte[] key) {
    String f = KeyRange.of(key, KeyRange.FULL.end(), "key").format(type);
    return f.substring(0, f.length() - 2);
  }

  static Suggestion suggestion(KeyspaceMap k, BalancePlan.Step st) {
    Suggestion.Builder s = Suggestion.newBuilder().setStart(ByteString.copyFrom(st.start()))
        .setEnd(ByteString.copyFrom(st.end())).setLabel(st.label()).setSource(st.source()).setTarget(st.target())
        .setLoadSkewAfter(st.loadSkewAfter()).setSizeSkewAfter(st.sizeSkewAfter());
    String ks = k.name();
    KeyType type = k.keyType();
    String text;
    if (st.kind() == BalancePlan.Kind.SPLIT_AND_MOVE) {
      s.setKind(Suggestion.Kind.KIND_SPLIT_AND_MOVE).setSplitAt(Keys.toProto(type, st.splitAt()));
      String at = pasteable(type, st.splitAt());
      String upper = KeyRange.of(st.splitAt(), st.end(), "range").format(type);
      text = "split " + ks + " " + st.label() + " at " + at + " (where its load halves) and move " + st.movedLabel()
          + " from " + st.source() + " to " + st.target() + ": shardmapctl range split " + ks + " " + at
          + " && migrator move " + ks + " " + upper + " --to " + st.target();
    } else {
      s.setKind(Suggestion.Kind.KIND_MOVE);
      String what = switch (k.strategy()) {
        case STRATEGY_RANGE -> KeyRange.of(st.start(), st.end(), "range").format(type);
        case STRATEGY_HASH -> "--bucket " + java.nio.ByteBuffer.wrap(st.start()).getInt();
        case STRATEGY_GEOGRAPHIC -> "--region " + shellWord(new String(st.start(), StandardCharsets.UTF_8));
        default -> throw new IllegalStateException("no move command for " + k.strategy());
      };
      text = "move " + ks + " " + st.label() + " from " + st.source() + " to " + st.target() + ": migrator move "
          + ks + " " + what + " --to " + st.target();
    }
    return s.setText(text).build();
  }

  /** A region name as one shell word. */
  private static String shellWord(String s) {
    return s.matches("[A-Za-z0-9_.:/-]+") ? s : "'" + s.replace("'", "'\\''") + "'";
  }

  static MoveStatus move(Migration m, long now) {
    MoveStatus.Builder b = MoveStatus.newBuilder().setId(m.getId()).setKeyspace(m.getKeyspace()).setUnit(unit(m))
        .setSource(m.getSource()).setTarget(m.getTarget()).setPhase(phase(m.getState()))
        .setRowsCopied(m.getRowsCopied()).setRowsEstimate(m.getRowsEstimate()).setStartedUnixMs(m.getCreatedUnixMs());
    double rate = 0;
    if (m.getCopyStartedUnixMs() > 0) {
      // While copying, since the copy began until now; later, until verification began (about when the copy
      // and catch-up ended), else the record's last update.
      long end = m.getState() == MigrationState.MIGRATION_STATE_COPYING ? now
          : m.getVerifyStartedUnixMs() > 0 ? m.getVerifyStartedUnixMs() : m.getUpdatedUnixMs();
      double secs = (end - m.getCopyStartedUnixMs()) / 1000.0;
      rate = secs > 0 ? m.getRowsCopied() / secs : 0;
    }
    b.setRowsPerSecond(rate);
    long eta = -1;
    if (m.getEtaUnixMs() > 0) {
      // The migrator's own estimate of the whole move (MoveEta: every phase, cleanup included).
      eta = Math.max(0, m.getEtaUnixMs() - now);
    } else if (m.getState() == MigrationState.MIGRATION_STATE_COPYING && rate > 0 && m.getRowsEstimate() > 0) {
      // No estimate in the record (a migrator from before issue 16): the copy's end at its rate so far, a
      // lower bound of the whole move's.
      eta = Math.round(Math.max(0, m.getRowsEstimate() - m.getRowsCopied()) / rate * 1000);
    }
    return b.setEtaMs(eta).build();
  }

  /** The coarse phase of a state; cancelling (and anything unknown) is unspecified. */
  static MigrationPhase phase(MigrationState s) {
    return switch (s) {
      case MIGRATION_STATE_PLANNED, MIGRATION_STATE_PREPARING -> MigrationPhase.MIGRATION_PHASE_PREPARING;
      case MIGRATION_STATE_COPYING -> MigrationPhase.MIGRATION_PHASE_COPYING;
      case MIGRATION_STATE_CATCHING_UP -> MigrationPhase.MIGRATION_PHASE_CATCHING_UP;
      case MIGRATION_STATE_VERIFYING -> MigrationPhase.MIGRATION_PHASE_VERIFYING;
      case MIGRATION_STATE_CUTTING_OVER -> MigrationPhase.MIGRATION_PHASE_CUTTING_OVER;
      case MIGRATION_STATE_CLEANING_UP -> MigrationPhase.MIGRATION_PHASE_CLEANING_UP;
      default -> MigrationPhase.MIGRATION_PHASE_UNSPECIFIED;
    };
  }

  /** What a migration moves, as the migrator's list shows it: {@code 0..1000}, {@code bucket 3 of 8}, ... */
  static String unit(Migration m) {
    try {
      if (m.hasRange()) {
        return KeyRange.fromProto(m.getKeyType(), m.getRange(), "range").format(m.getKeyType());
      }
      MigrationUnit u = m.getUnit();
      return switch (u.getKindCase()) {
        case BUCKET -> "bucket " + u.getBucket().getBucket() + " of " + u.getBucket().getBuckets();
        case RING_NODE -> "ring node " + u.getRingNode().getShard() + "#" + u.getRingNode().getVnode()
            + (u.getRingNode().getRemove() ? " leaves" : " joins");
        case ENTRIES -> u.getEntries().getKeysCount() + " entries";
        case REGION -> "region '" + u.getRegion().getRegion() + "'";
        default -> "?";
      };
    } catch (RuntimeException e) {
      return "?";
    }
  }
}
