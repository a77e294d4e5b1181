package io.shardmap.migrator.internal.balance;

import io.shardmap.core.balance.BalancerPolicies;
import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Channel;
import io.grpc.StatusRuntimeException;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.LeasedSingleton;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BalancerMove;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.BalancerState;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import java.util.function.UnaryOperator;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The balancer's I/O around {@link BalancerRound}: its policy and state records in etcd, the plan from a
 * directory server ({@code GetFleetStatus} with the policy), and the moves it starts through a {@link Moves}
 * (the migrator). One process acts at a time: {@link #run} holds {@link CatalogPaths#balancerLeader} under
 * a lease and plays rounds only while it holds it.
 *
 * <p>A move it starts is recorded in its state before it is driven, and driven on its own thread; a
 * balancer that dies leaves a migration record that any migrator worker, or the next balancer, resumes.
 */
public final class Balancer {
  private static final Logger log = Logger.getLogger(Balancer.class.getName());
  /** Moves kept in the state record. */
  static final int KEPT_MOVES = 100;

  /** What the balancer needs of the migrator: plan a move, drive one, and the records of all. */
  public interface Moves {
    /** Records a move of the step's unit to its target (a split first where the step says so); its id. */
    String start(String keyspace, String range, Integer bucket, boolean split, String target, long pauseBudgetMs);

    /** Drives the migration to its end (or until {@code stop}), in this thread. */
    Migration drive(String id, BooleanSupplier stop);

    /** Every migration record. */
    List<Migration> list();
  }

  /** What one round did. */
  public record Round(List<BalancerRound.Step> plan, List<BalancerMove> started, String idleReason) {}

  private final MetaStore store;
  private final CatalogPaths paths;
  private final Moves moves;
  private final FleetServiceGrpc.FleetServiceBlockingStub fleet;
  private final String holder;
  private final Clock clock;
  private final Duration requestTimeout;
  private final ExecutorService drivers;
  private final Set<String> driving = ConcurrentHashMap.newKeySet();
  private final LeasedSingleton role;
  private volatile boolean stopping;

  public Balancer(MetaStore store, CatalogPaths paths, Moves moves, Channel directory, String holder, Clock clock,
                  LongSupplier nanoTime, Duration requestTimeout, Duration leaseTtl, ExecutorService drivers) {
    this.store = store;
    this.paths = paths;
    this.moves = moves;
    this.fleet = FleetServiceGrpc.newBlockingStub(directory);
    this.holder = holder;
    this.clock = clock;
    this.requestTimeout = requestTimeout;
    this.drivers = drivers;
    this.role = new LeasedSingleton(new MeteredMetaStore(store, (op, outcome, nanos) -> { }, nanoTime),
        paths.balancerLeader(), holder, leaseTtl, requestTimeout, nanoTime, "balancer");
  }

  /** The stored policy, or the default one (disabled) when none was ever set. */
  public BalancerPolicy policy() {
    KeyValue kv = get(paths.balancerPolicy());
    return kv == null ? BalancerPolicy.getDefaultInstance() : parse(kv, BalancerPolicy.parser(), "policy");
  }

  /**
   * Rewrites the policy with {@code edit} applied to the stored one, if the result is valid (INVALID_ARGUMENT
   * naming the field otherwise, nothing written); retried when another writer changed it meanwhile.
   */
  public BalancerPolicy updatePolicy(UnaryOperator<BalancerPolicy> edit) {
    for (int attempt = 0; attempt < 10; attempt++) {
      KeyValue kv = get(paths.balancerPolicy());
      BalancerPolicy current = kv == null ? BalancerPolicy.getDefaultInstance()
          : parse(kv, BalancerPolicy.parser(), "policy");
      BalancerPolicy next = BalancerPolicies.validate(edit.apply(current));
      Compare guard = kv == null ? Compare.absent(paths.balancerPolicy())
          : Compare.modRevision(paths.balancerPolicy(), kv.modRevision());
      if (commit(Txn.builder().compare(guard).put(paths.balancerPolicy(), next.toByteArray()).build())) {
        return next;
      }
    }
    throw new ShardmapException(ErrorCode.ABORTED, "policy: changed by others ten times in a row; try again");
  }

  /** The state the acting balancer last wrote (empty before any round). */
  public BalancerState state() {
    KeyValue kv = get(paths.balancerState());
    return kv == null ? BalancerState.getDefaultInstance() : parse(kv, BalancerState.parser(), "state");
  }

  /**
   * What the policy would have the balancer do now, in order: every planned step of the keyspaces it covers
   * (all of the plan, not only what one round starts). Nothing is written.
   */
  public List<BalancerRound.Step> plan(BalancerPolicy policy) {
    BalancerPolicy p = BalancerPolicies.effective(policy);
    GetFleetStatusResponse status;
    try {
      status = fleet.withDeadlineAfter(Math.max(requestTimeout.toMillis(), 10_000), TimeUnit.MILLISECONDS)
          .getFleetStatus(GetFleetStatusRequest.newBuilder().setWindowSeconds(p.getWindowSeconds()).setTop(0)
              .setPolicy(p).build());
    } catch (StatusRuntimeException e) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "directory: GetFleetStatus failed: " + e.getStatus());
    }
    List<BalancerRound.Step> out = new ArrayList<>();
    for (KeyspaceStatus ks : status.getKeyspacesList()) {
      if (!p.getKeyspacesList().isEmpty() && !p.getKeyspacesList().contains(ks.getKeyspace())) {
        continue;
      }
      if (ks.getStrategy() != Strategy.STRATEGY_RANGE && ks.getStrategy() != Strategy.STRATEGY_HASH) {
        continue; // ring arcs, regions and directory groups are not moved by the balancer
      }
      for (Suggestion s : ks.getSuggestionsList()) {
        out.add(new BalancerRound.Step(ks.getKeyspace(), ks.getStrategy(), s));
      }
    }
    return out;
  }

  /** One round: plan, decide, start what the decision says, write the state. */
  public Round round() {
    BalancerPolicy p = BalancerPolicies.effective(policy());
    BalancerState before = state();
    Instant now = clock.instant();
    List<Migration> all = moves.list();
    Set<String> ours = new HashSet<>();
    Set<String> busy = new HashSet<>();
    Set<String> started = new HashSet<>();
    before.getMovesList().forEach(m -> started.add(m.getMigrationId()));
    for (Migration m : all) {
      if (!terminal(m)) {
        busy.add(m.getKeyspace());
        if (started.contains(m.getId())) {
          ours.add(m.getId());
          resume(m.getId()); // a move a previous balancer started and did not finish
        }
      }
    }
    List<BalancerRound.Step> plan = p.getEnabled() ? plan(p) : List.of();
    BalancerRound.Decision d = BalancerRound.decide(p, now, plan, before.getMovesList(), ours, busy);
    List<BalancerMove> begun = new ArrayList<>();
    String reason = d.idleReason();
    for (BalancerRound.Step s : d.start()) {
      try {
        begun.add(begin(s, p, now));
      } catch (ShardmapException e) {
        reason = "planning the move of " + s.suggestion().getLabel() + " failed: " + e.getMessage();
        log.warning("balancer: " + reason);
      }
    }
    List<BalancerMove> kept = new ArrayList<>(before.getMovesList());
    kept.addAll(begun);
    if (kept.size() > KEPT_MOVES) {
      kept = kept.subList(kept.size() - KEPT_MOVES, kept.size());
    }
    BalancerState next = BalancerState.newBuilder().setHolder(holder).setRoundUnixMs(now.toEpochMilli())
        .setIdleReason(begun.isEmpty() ? reason : "").addAllPlan(plan.stream().map(BalancerRound.Step::suggestion)
            .toList()).addAllMoves(kept).build();
    put(paths.balancerState(), next.toByteArray());
    begun.forEach(m -> resume(m.getMigrationId()));
    return new Round(plan, begun, next.getIdleReason());
  }

  /** Records the step's move with the migrator and in the state; returns what was recorded. */
  private BalancerMove begin(BalancerRound.Step s, BalancerPolicy p, Instant now) {
    Suggestion g = s.suggestion();
    String id;
    byte[] start = g.getStart().toByteArray();
    byte[] end = g.getEnd().toByteArray();
    if (isBucket(s)) {
      int bucket = start.length == 0 ? 0 : java.nio.ByteBuffer.wrap(start).getInt();
      id = moves.start(s.keyspace(), null, bucket, false, g.getTarget(), p.getPauseBudgetMs());
    } else {
      KeyType type = keyType(s.keyspace());
      boolean split = g.getKind() == Suggestion.Kind.KIND_SPLIT_AND_MOVE;
      if (split) {
        start = Keys.canonical(type, g.getSplitAt(), "split_at");
      }
      String range = KeyRange.of(start, end, "range").format(type);
      id = moves.start(s.keyspace(), range, null, split, g.getTarget(), p.getPauseBudgetMs());
    }
    log.info("balancer: started " + id + ": " + g.getText());
    return BalancerMove.newBuilder().setMigrationId(id).setKeyspace(s.keyspace())
        .setStart(com.google.protobuf.ByteString.copyFrom(start)).setEnd(g.getEnd()).setLabel(g.getLabel())
        .setSource(g.getSource()).setTarget(g.getTarget()).setStartedUnixMs(now.toEpochMilli()).build();
  }

  private static boolean isBucket(BalancerRound.Step s) {
    return s.strategy() == Strategy.STRATEGY_HASH;
  }

  private KeyType keyType(String keyspace) {
    KeyValue kv = get(paths.spec(keyspace));
    if (kv == null) {
      throw ShardmapException.notFound("keyspace: no keyspace '" + keyspace + "'");
    }
    return parse(kv, KeyspaceSpec.parser(), "keyspace spec").getKeyType();
  }

  /** Drives a migration on the drivers' pool unless this balancer drives it already. */
  private void resume(String id) {
    if (!driving.add(id)) {
      return;
    }
    drivers.execute(() -> {
      try {
        Migration m = moves.drive(id, () -> stopping);
        log.info("balancer: move " + id + " is " + m.getState());
      } catch (RuntimeException e) {
        log.log(Level.WARNING, "balancer: driving " + id + " failed (the next round resumes it): " + e.getMessage());
      } finally {
        driving.remove(id);
      }
    });
  }

  /**
   * Plays a round every policy interval while this process holds the balancer's role, until {@code stop}.
   * A round that fails is logged and the next one runs at the next interval.
   */
  public void run(BooleanSupplier stop) throws InterruptedException {
    try {
      while (!stop.getAsBoolean()) {
        long sleepMs = BalancerPolicies.DEFAULT_INTERVAL_SECONDS * 1000;
        if (role.check()) {
          try {
            BalancerPolicy p = BalancerPolicies.effective(policy());
            sleepMs = p.getIntervalSeconds() * 1000;
            Round r = round();
            if (!r.started().isEmpty() || !r.idleReason().equals(BalancerRound.DISABLED)) {
              log.info("balancer round: " + (r.started().isEmpty() ? r.idleReason()
                  : "started " + r.started().size() + " move(s)"));
            }
          } catch (ShardmapException e) {
            log.warning("balancer round failed (next in " + sleepMs + " ms): " + e.getMessage());
          }
        } else {
          sleepMs = Math.min(sleepMs, 5_000); // a standby checks often, to take over soon
        }
        for (long slept = 0; slept < sleepMs && !stop.getAsBoolean(); slept += 200) {
          Thread.sleep(200);
        }
      }
    } finally {
      stopping = true;
      role.release();
    }
  }

  private static boolean terminal(Migration m) {
    return io.shardmap.migrator.internal.States.terminal(m.getState());
  }

  private KeyValue get(String key) {
    RangeResult r = await(store.get(key), "reading " + key);
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

  private void put(String key, byte[] value) {
    commit(Txn.builder().put(key, value).build());
  }

  private boolean commit(Txn txn) {
    TxnResult r = await(store.commit(txn), "writing the balancer's records");
    return r.succeeded();
  }

  private <T> T await(java.util.concurrent.CompletableFuture<T> f, String what) {
    try {
      return f.get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted");
    } catch (ExecutionException | TimeoutException e) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + " failed: "
          + (e.getCause() != null ? e.getCause().getMessage() : "no answer within " + requestTimeout.toMillis() + " ms"));
    }
  }

  private static <M> M parse(KeyValue kv, com.google.protobuf.Parser<M> parser, String what) {
    try {
      return parser.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "the balancer's " + what + " record " + kv.key()
          + " cannot be decoded: " + e.getMessage());
    }
  }
}
