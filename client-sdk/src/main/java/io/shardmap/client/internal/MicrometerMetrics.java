package io.shardmap.client.internal;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.TimeGauge;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Publishes the client's counters to a Micrometer registry. The only class of the SDK that names a
 * Micrometer type: it is loaded only when the application gave a registry, so Micrometer stays an
 * optional dependency. Every meter is a function of counters the client keeps anyway ({@link Counters},
 * {@link MapFollower}), read when the registry is scraped; nothing here runs on the lookup path.
 */
public final class MicrometerMetrics implements AutoCloseable {
  private final MeterRegistry registry;
  private final List<Meter> meters = new ArrayList<>();
  /** The breaker state gauges, one row per live endpoint breaker; null until registered. */
  private MultiGauge breakerStates;
  private BreakerBoard board;

  private MicrometerMetrics(MeterRegistry registry) {
    this.registry = registry;
  }

  /**
   * Registers the meters; closing the result removes them.
   *
   * @param registry a {@code MeterRegistry} (typed Object so callers need not load Micrometer)
   */
  public static AutoCloseable bind(Object registry, Counters stats, MapFollower follower) {
    MicrometerMetrics m = new MicrometerMetrics((MeterRegistry) registry);
    m.register(stats, follower);
    return m;
  }

  /**
   * Registers the replica gauges of one {@code ShardmapData}'s pools; closing the result removes them. Per
   * replica (tags {@code shard}, {@code replica} = {@code replicaN}): {@code shardmap.data.replica.lag}
   * (seconds; Prometheus {@code shardmap_data_replica_lag_seconds}), the replay lag reads are routed by,
   * -1 when the replica is not usable or its lag unknown; {@code shardmap.data.replica.usable}, 1 when
   * reads may use it, else 0. The rows follow the pool table after each check round.
   *
   * @param registry a {@code MeterRegistry} (typed Object so callers need not load Micrometer)
   */
  public static AutoCloseable bindReplicas(Object registry, ReplicaHealth health) {
    MeterRegistry r = (MeterRegistry) registry;
    MultiGauge lag = MultiGauge.builder("shardmap.data.replica.lag").baseUnit("seconds")
        .description("replay lag of a replica as used for routing reads (0: it had replayed all its primary had "
            + "written when checked); -1 when the replica is not usable or its lag is unknown")
        .register(r);
    MultiGauge usable = MultiGauge.builder("shardmap.data.replica.usable")
        .description("1 when reads may use the replica (reachable, in recovery, within maxReplicaLag), else 0")
        .register(r);
    java.util.concurrent.atomic.AtomicReference<Map<String, Integer>> shown =
        new java.util.concurrent.atomic.AtomicReference<>(Map.of());
    java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    Runnable refresh = () -> {
      Map<String, Integer> now = health.replicaCounts();
      synchronized (shown) {
        if (closed.get() || now.equals(shown.get())) {
          return;
        }
        List<MultiGauge.Row<?>> lags = new ArrayList<>();
        List<MultiGauge.Row<?>> flags = new ArrayList<>();
        now.forEach((shard, n) -> {
          for (int i = 0; i < n; i++) {
            int k = i;
            Tags tags = Tags.of("shard", shard, "replica", "replica" + k);
            lags.add(MultiGauge.Row.of(tags, health, h -> {
              long nanos = h.lagNanos(shard, k);
              return nanos < 0 ? -1 : nanos / 1e9;
            }));
            flags.add(MultiGauge.Row.of(tags, health, h -> h.usable(shard, k) ? 1 : 0));
          }
        });
        lag.register(lags, false);
        usable.register(flags, false);
        shown.set(now);
      }
    };
    refresh.run();
    health.afterEachRound(refresh);
    return () -> {
      synchronized (shown) {
        closed.set(true);
        lag.register(List.of(), false); // removes every row's gauge
        usable.register(List.of(), false);
      }
    };
  }

  private void register(Counters stats, MapFollower follower) {
    MeterRegistry r = registry;
    add(FunctionCounter.builder("shardmap.client.lookups", stats, Counters::lookups)
        .description("keys routed by ShardmapClient.route").register(r));

    add(FunctionTimer.builder("shardmap.client.calls", stats, Counters::calls, Counters::callNanos,
            TimeUnit.NANOSECONDS)
        .description("calls on a shard through ShardmapData, retries included").register(r));
    add(FunctionCounter.builder("shardmap.client.call.failures", stats, Counters::callFailures)
        .description("shard calls that failed after their retries").register(r));
    add(TimeGauge.builder("shardmap.client.call.max", stats, TimeUnit.NANOSECONDS, Counters::callMaxNanos)
        .description("the longest shard call since the client started").register(r));
    for (Counters.RetryCause cause : Counters.RetryCause.values()) {
      add(FunctionCounter.builder("shardmap.client.retries", stats, s -> s.retries(cause))
          .tag("cause", cause.tag()).description("shard call attempts repeated, by cause").register(r));
    }

    add(FunctionCounter.builder("shardmap.client.reconnects", follower, MapFollower::reconnects)
        .description("watch streams that failed and were re-opened").register(r));
    add(FunctionCounter.builder("shardmap.client.resyncs", follower, MapFollower::resyncs)
        .description("full re-reads of the maps a directory server asked for").register(r));
    add(FunctionCounter.builder("shardmap.client.failovers", follower, MapFollower::failovers)
        .description("moves to another directory server").register(r));
    add(Gauge.builder("shardmap.client.watch.lag", follower, MapFollower::watchLagRevisions)
        .baseUnit("revisions")
        .description("etcd revisions between the newest snapshot a directory server reported and the "
            + "client's map (the stream carries no commit times, so revisions rather than seconds)")
        .register(r));
    add(TimeGauge.builder("shardmap.client.map.age", follower, TimeUnit.NANOSECONDS, MapFollower::ageNanos)
        .description("time since a directory server last confirmed the client's map current (staleness)")
        .register(r));
    add(Gauge.builder("shardmap.client.map.revision", follower,
            f -> f.snapshot() == null ? 0 : f.snapshot().revision())
        .description("the etcd revision the client's map reflects").register(r));

    add(FunctionCounter.builder("shardmap.client.reports", stats, Counters::reports)
        .description("applied revisions reported to a directory server (ReportApplied)").register(r));
    add(FunctionCounter.builder("shardmap.client.load.reported", stats, Counters::loadReportedBands)
        .tag("kind", "bands").description("load bands (units' counts) a directory server accepted").register(r));
    add(FunctionCounter.builder("shardmap.client.load.reported", stats, Counters::loadReportedCalls)
        .tag("kind", "calls").description("calls whose load a directory server accepted").register(r));
    add(FunctionCounter.builder("shardmap.client.load.dropped", stats, Counters::loadDropped)
        .description("calls counted for load but never reported (refused by a server, pending too long or "
            + "over the pending bound)").register(r));
    add(FunctionCounter.builder("shardmap.client.report.failures", stats, Counters::reportFailures)
        .description("reports of the applied revision that failed (they are retried, never thrown)")
        .register(r));

    for (Counters.QueryOutcome outcome : Counters.QueryOutcome.values()) {
      add(FunctionTimer.builder("shardmap.client.query.finished", stats, s -> s.queries(outcome),
              s -> s.queryNanos(outcome), TimeUnit.NANOSECONDS)
          .tag("outcome", outcome.tag())
          .description("cross-shard queries from their start to their end (read to the end, closed, or thrown), "
              + "by outcome: ok, partial (partial mode, some shard failed), failed (thrown; by cause in "
              + "shardmap.client.query.failures), closed (by the caller before the last row)")
          .register(r));
    }
    for (Counters.QueryFailure cause : Counters.QueryFailure.values()) {
      add(FunctionCounter.builder("shardmap.client.query.failures", stats, s -> s.queryFailures(cause))
          .tag("cause", cause.tag())
          .description("cross-shard queries thrown to the caller, by cause: refused (bad input, nothing sent), "
              + "deadline, shard, stale_map (the guard's re-runs used up), other")
          .register(r));
    }
    add(FunctionCounter.builder("shardmap.client.query.reruns", stats, Counters::queryReruns)
        .description("cross-shard queries run again at a newer map because a part's guard saw a fence").register(r));
    add(FunctionCounter.builder("shardmap.client.query.parts", stats, Counters::partsStarted)
        .description("shard parts of cross-shard queries started (each run's)").register(r));
    add(FunctionCounter.builder("shardmap.client.query.part.failures", stats, Counters::partFailures)
        .description("shard parts that failed on their shard, starting or while read (not those cancelled)")
        .register(r));
    add(FunctionCounter.builder("shardmap.client.query.part.cancels", stats, Counters::partCancels)
        .description("running shard statements cancelled because of a failure, the deadline or an early close")
        .register(r));
    add(Gauge.builder("shardmap.client.query.connections", stats, Counters::partConnections)
        .baseUnit("connections")
        .description("query-pool connections held by cross-shard queries' parts now (until read to the end "
            + "or closed)")
        .register(r));

    for (Counters.TxnOutcome outcome : Counters.TxnOutcome.values()) {
      add(FunctionTimer.builder("shardmap.client.txn.finished", stats, s -> s.txns(outcome),
              s -> s.txnNanos(outcome), TimeUnit.NANOSECONDS)
          .tag("outcome", outcome.tag())
          .description("cross-shard transactions (ShardmapData.acrossShards) from start to end, reruns included, "
              + "by outcome: committed, failed (thrown, nothing committed), unknown (thrown, outcome unknown)")
          .register(r));
    }
    String[] writers = {"1", "2", "3", "4+"};
    for (int b = 0; b < Counters.TXN_WRITER_BUCKETS; b++) {
      int bucket = b;
      add(FunctionCounter.builder("shardmap.client.txn.committed", stats, s -> s.txnsByWriters(bucket))
          .tag("writers", writers[b])
          .description("committed cross-shard transactions by the number of shards that wrote (1: a plain "
              + "commit, no two-phase cost)")
          .register(r));
    }
    add(FunctionCounter.builder("shardmap.client.txn.reruns", stats, Counters::txnReruns)
        .description("cross-shard transaction works run again (a fenced range, a connection lost before the "
            + "commit point)").register(r));
    add(FunctionCounter.builder("shardmap.client.txn.left_to_resolver", stats, Counters::txnsLeftToResolver)
        .description("shards of committed cross-shard transactions that could not be sent COMMIT PREPARED: "
            + "the resolver commits them").register(r));
    add(FunctionCounter.builder("shardmap.client.reference.reruns", stats, Counters::referenceReruns)
        .description("cross-shard works run again because a reference table's copies changed (SMR01)").register(r));
    add(FunctionCounter.builder("shardmap.client.reference.record_fetches", stats, Counters::referenceFetches)
        .description("reads of a keyspace's reference table records from a directory server").register(r));
    add(FunctionCounter.builder("shardmap.client.reference.results_differed", stats, Counters::referenceDiffered)
        .description("reference writes refused because the copies returned different results").register(r));

    add(FunctionCounter.builder("shardmap.client.replica.fallbacks", stats, Counters::replicaFallbacks)
        .description("reads of a shard with replicas that went to its primary: no replica was usable (lagging "
            + "beyond maxReplicaLag, unreachable, not in recovery) or gave a connection").register(r));

    add(FunctionCounter.builder("shardmap.client.directory.cache.hits", stats, Counters::directoryHits)
        .description("lookups of lazily loaded directory keyspaces answered from the cache").register(r));
    add(FunctionCounter.builder("shardmap.client.directory.cache.misses", stats, Counters::directoryMisses)
        .description("lookups of lazily loaded directory keyspaces that asked a directory server").register(r));
    add(Gauge.builder("shardmap.client.directory.cache.size", follower, MapFollower::lazyCacheSize)
        .baseUnit("entries").description("keys cached for lazily loaded directory keyspaces").register(r));

    // Circuit breakers of the shard endpoints (DataOptions.breaker*): rows follow the pools as they come and go.
    board = stats.breakers();
    add(FunctionCounter.builder("shardmap.data.breaker.refusals", board, BreakerBoard::refusals)
        .description("shard calls (or replica choices of reads) refused at once by an open circuit breaker")
        .register(r));
    MultiGauge states = MultiGauge.builder("shardmap.data.breaker.state")
        .description("circuit breaker of a shard endpoint: 0 closed, 1 open (calls fail at once), 2 half-open "
            + "(probing)")
        .register(r);
    breakerStates = states;
    board.onChange(() -> states.register(board.breakers().stream()
        // The breaker itself is the gauged object: its pool holds it while the row exists.
        .map(e -> MultiGauge.Row.of(Tags.of("shard", e.shard(), "endpoint", e.endpoint()), e.breaker(),
            BreakerBoard::stateCode))
        .collect(java.util.stream.Collectors.toList()), true));
  }

  /**
   * The meters of one ShardmapData's failover buffer (docs/patroni.md): calls waiting now, calls buffered,
   * refused for a full buffer, and that waited their whole window; per Patroni shard, new primaries seen and
   * the time from the map naming the latest to the first call that succeeded on it. Closing removes them.
   */
  public static AutoCloseable bindFailover(Object registry, FailoverBuffer f) {
    MicrometerMetrics m = new MicrometerMetrics((MeterRegistry) registry);
    MeterRegistry r = m.registry;
    m.add(Gauge.builder("shardmap.data.failover.waiting", f, FailoverBuffer::waiting)
        .description("calls waiting in the failover buffer for a Patroni shard's next primary").register(r));
    m.add(FunctionCounter.builder("shardmap.data.failover.buffered", f, FailoverBuffer::buffered)
        .description("calls that waited in the failover buffer").register(r));
    m.add(FunctionCounter.builder("shardmap.data.failover.overflows", f, FailoverBuffer::overflows)
        .description("calls refused because the failover buffer was full").register(r));
    m.add(FunctionCounter.builder("shardmap.data.failover.timeouts", f, FailoverBuffer::timeouts)
        .description("calls that waited the buffer's whole window without a primary").register(r));
    f.onNewShard(shard -> {
      m.add(FunctionCounter.builder("shardmap.data.primary.changes", f,
              x -> x.failoversSeen().getOrDefault(shard, 0L))
          .tag("shard", shard).description("new primaries of a Patroni shard seen in the map").register(r));
      m.add(TimeGauge.builder("shardmap.data.failover.first_call", f, TimeUnit.NANOSECONDS, x -> {
            java.time.Duration d = x.firstCallAfterFailover().get(shard);
            return d == null ? Double.NaN : d.toNanos();
          })
          .tag("shard", shard).description("from the map naming a shard's new primary to the first call that "
              + "succeeded on it (latest failover)").register(r));
    });
    return m;
  }

  private synchronized void add(Meter m) {
    meters.add(m);
  }

  @Override
  public synchronized void close() {
    if (board != null) {
      board.onChange(null);
      breakerStates.register(List.of(), true);
    }
    for (Meter m : meters) {
      registry.remove(m);
    }
    meters.clear();
  }
}
