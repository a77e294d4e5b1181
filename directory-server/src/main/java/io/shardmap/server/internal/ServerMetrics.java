package io.shardmap.server.internal;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The server's Prometheus metrics. Hot-path counters are resolved once and held in fields, so a lookup
 * costs one striped-counter increment.
 */
public final class ServerMetrics {
  private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
  private final Counter lookups;
  private final Counter batchLookups;
  private final Counter batchKeys;
  private final Counter watchErrors;
  private final Counter resyncs;
  private final ConcurrentHashMap<String, Counter> rpcResults = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicLong> workersHeld = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, Timer> etcdTimers = new ConcurrentHashMap<>();
  private final AtomicLong snapshotRevision = new AtomicLong();
  private final AtomicLong snapshotAgeMillis = new AtomicLong();
  private final AtomicLong etcdReachable = new AtomicLong(1);
  private final AtomicLong watchStreams = new AtomicLong();
  private final AtomicLong watchLag = new AtomicLong();
  private final AtomicLong reportingClients = new AtomicLong();
  private final AtomicLong txnInDoubt = new AtomicLong();
  private final AtomicLong txnOldestPreparedMicros = new AtomicLong();
  private final AtomicLong txnDeciderUnavailable = new AtomicLong();
  private final AtomicLong txnResolverLeader = new AtomicLong();
  private final Counter txnCommits;
  private final Counter txnAborts;
  private final Counter txnForgotten;
  private final ConcurrentHashMap<String, Counter> txnFailures = new ConcurrentHashMap<>();

  public ServerMetrics() {
    lookups = Counter.builder("shardmap.lookups").description("keys routed by Lookup")
        .tag("rpc", "Lookup").register(registry);
    batchLookups = Counter.builder("shardmap.lookups").description("keys routed by BatchLookup")
        .tag("rpc", "BatchLookup").register(registry);
    batchKeys = Counter.builder("shardmap.batch.keys").description("keys in BatchLookup requests")
        .register(registry);
    watchErrors = Counter.builder("shardmap.etcd.watch.errors")
        .description("transient etcd watch interruptions").register(registry);
    resyncs = Counter.builder("shardmap.snapshot.loads")
        .description("full reads of the maps from etcd").register(registry);
    registry.gauge("shardmap.snapshot.revision", snapshotRevision);
    registry.gauge("shardmap.snapshot.age.millis", snapshotAgeMillis);
    registry.gauge("shardmap.etcd.reachable", etcdReachable);
    registry.gauge("shardmap.watch.streams", watchStreams);
    registry.gauge("shardmap.watch.lag.revisions", watchLag);
    Gauge.builder("shardmap.clients.reporting", reportingClients, AtomicLong::get)
        .description("SDK clients that reported their applied revision within --client-report-timeout")
        .register(registry);
    Gauge.builder("shardmap.txn.in_doubt", txnInDoubt, AtomicLong::get)
        .description("prepared cross-shard transactions of this cluster seen on the shards by the resolver's last "
            + "scan (0 on a server that does not hold the resolver role)").register(registry);
    Gauge.builder("shardmap.txn.oldest_prepared_seconds", txnOldestPreparedMicros, m -> m.get() / 1e6)
        .description("age of the oldest of them, by its shard's clock (it holds locks and stops vacuum)")
        .register(registry);
    Gauge.builder("shardmap.txn.decider_unavailable", txnDeciderUnavailable, AtomicLong::get)
        .description("of them, those left by the last scan because their decider shard is not registered or "
            + "could not be read").register(registry);
    Gauge.builder("shardmap.txn.resolver.leader", txnResolverLeader, AtomicLong::get)
        .description("1 while this server holds the resolver role ({prefix}/txn-resolver), else 0")
        .register(registry);
    txnCommits = Counter.builder("shardmap.txn.resolutions").tag("outcome", "commit")
        .description("prepared transactions the resolver finished, by outcome").register(registry);
    txnAborts = Counter.builder("shardmap.txn.resolutions").tag("outcome", "abort")
        .description("prepared transactions the resolver finished, by outcome").register(registry);
    txnForgotten = Counter.builder("shardmap.txn.decisions.forgotten")
        .description("decision rows the resolver deleted once every participant had finished").register(registry);
  }

  public MeterRegistry registry() {
    return registry;
  }

  /** Prometheus text exposition. */
  public String scrape() {
    return registry.scrape();
  }

  public void lookup() {
    lookups.increment();
  }

  public void batchLookup(int keys) {
    batchLookups.increment(keys);
    batchKeys.increment(keys);
  }

  /** One finished RPC, by method and gRPC status code. */
  public void rpc(String method, String status) {
    rpcResults.computeIfAbsent(method + "|" + status, k -> Counter.builder("shardmap.rpc.results")
        .description("finished RPCs by method and status").tag("method", method).tag("status", status)
        .register(registry)).increment();
  }

  public void etcdRequest(String op, String outcome, long nanos) {
    etcdTimers.computeIfAbsent(op + "|" + outcome, k -> Timer.builder("shardmap.etcd.requests")
        .description("etcd round trips").tag("op", op).tag("outcome", outcome).register(registry))
        .record(nanos, TimeUnit.NANOSECONDS);
  }

  public void snapshot(long revision) {
    snapshotRevision.set(revision);
  }

  public void freshness(long ageNanos, boolean reachable) {
    snapshotAgeMillis.set(ageNanos / 1_000_000);
    etcdReachable.set(reachable ? 1 : 0);
  }

  /** etcd revisions the watch had not yet delivered when the last probe read etcd's revision. */
  public void watchLag(long revisions) {
    watchLag.set(Math.max(0, revisions));
  }

  public void watchError() {
    watchErrors.increment();
  }

  public void resync() {
    resyncs.increment();
  }

  public void watchStreams(int n) {
    watchStreams.set(n);
  }

  /** Worker ids of id generator {@code generator} held now in the cluster (see WorkerCensus). */
  public void workersHeld(String generator, int n) {
    workersHeld.computeIfAbsent(generator, g -> {
      AtomicLong v = new AtomicLong();
      Gauge.builder("shardmap.ids.workers.held", v, AtomicLong::get)
          .description("worker ids of the id generator held by a live owner (docs/worker-leases.md)")
          .tag("generator", g).register(registry);
      return v;
    }).set(n);
  }

  /** SDK clients this server currently counts in its client presence record. */
  public void reportingClients(int n) {
    reportingClients.set(n);
  }

  /** What the resolver's last scan saw; all zero when this server does not scan. */
  public void txnScan(int inDoubt, long oldestPreparedMicros, int deciderUnavailable) {
    txnInDoubt.set(inDoubt);
    txnOldestPreparedMicros.set(oldestPreparedMicros);
    txnDeciderUnavailable.set(deciderUnavailable);
  }

  /** One prepared transaction finished by the resolver: committed or rolled back. */
  public void txnResolution(boolean committed) {
    (committed ? txnCommits : txnAborts).increment();
  }

  public void txnResolverLeader(boolean leader) {
    txnResolverLeader.set(leader ? 1 : 0);
  }

  /**
   * One step of the resolver that failed on one shard: {@code connect}, {@code install} (the decision table),
   * {@code list}, {@code decisions}, {@code decide}, {@code finish} or {@code gc}.
   */
  public void txnResolverFailure(String shard, String step) {
    txnFailures.computeIfAbsent(shard + "|" + step, k -> Counter.builder("shardmap.txn.resolver.failures")
        .description("resolver steps that failed, by shard and step").tag("shard", shard).tag("step", step)
        .register(registry)).increment();
  }

  public void txnDecisionsForgotten(int n) {
    txnForgotten.increment(n);
  }

  private final ConcurrentHashMap<String, Counter> patroniChanges = new ConcurrentHashMap<>();
  private final AtomicLong patroniFollowed = new AtomicLong();
  private final AtomicLong patroniFollowedRegistered = new AtomicLong();

  /**
   * This server wrote a followed Patroni shard's new endpoints: {@code kind} {@code primary} (a failover or
   * switchover: the primary term rose) or {@code replicas}.
   */
  public void patroniChange(String shard, String kind) {
    patroniChanges.computeIfAbsent(shard + "|" + kind, k -> Counter.builder("shardmap.patroni.changes")
        .description("endpoint changes of Patroni shards written by this server (primary: failovers and "
            + "switchovers)").tag("shard", shard).tag("kind", kind).register(registry)).increment();
  }

  /** Patroni clusters this server watches now. */
  public void patroniFollowed(int n) {
    if (patroniFollowedRegistered.compareAndSet(0, 1)) {
      Gauge.builder("shardmap.patroni.followed", patroniFollowed, AtomicLong::get)
          .description("Patroni clusters whose keys this server watches").register(registry);
    }
    patroniFollowed.set(n);
  }

  // Load (docs/load.md). Labels are keyspaces and shards only, never units: bounded cardinality.
  private final ConcurrentHashMap<String, Counter> loadCalls = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, Counter> loadReports = new ConcurrentHashMap<>();
  private final AtomicLong loadHistoryBytes = new AtomicLong();
  private final AtomicLong loadHistoryBands = new AtomicLong();
  private final AtomicLong loadGaugesRegistered = new AtomicLong();

  /** Calls of one report laid over the current map, credited to one shard of one keyspace. */
  public void loadCalls(String keyspace, String shard, long reads, long writes, long errors) {
    loadCall(keyspace, shard, "read", reads);
    loadCall(keyspace, shard, "write", writes);
    loadCall(keyspace, shard, "error", errors);
  }

  private void loadCall(String keyspace, String shard, String kind, long n) {
    if (n <= 0) {
      return;
    }
    loadCalls.computeIfAbsent(keyspace + "|" + shard + "|" + kind, k -> Counter.builder("shardmap.load.calls")
        .description("calls the SDK clients reported to this server, by keyspace, owner shard (by the map when "
            + "reported) and kind (read, write, error)").tag("keyspace", keyspace).tag("shard", shard)
        .tag("kind", kind).register(registry)).increment(n);
  }

  /** One keyspace load of a report: accepted, dropped_layout (hash bands of another layout), refused. */
  public void loadReport(String result) {
    loadReports.computeIfAbsent(result, r -> Counter.builder("shardmap.load.reports")
        .description("keyspace loads in ReportApplied requests by result (refused: the whole report)")
        .tag("result", r).register(registry)).increment();
  }

  /** The load history's size as its maintenance last measured it. */
  public void loadHistory(long bytes, long bands) {
    if (loadGaugesRegistered.compareAndSet(0, 1)) {
      Gauge.builder("shardmap.load.history.bytes", loadHistoryBytes, AtomicLong::get)
          .description("heap held by the load history, estimated").register(registry);
      Gauge.builder("shardmap.load.history.bands", loadHistoryBands, AtomicLong::get)
          .description("bands held by the load history (every column of every keyspace)").register(registry);
    }
    loadHistoryBytes.set(bytes);
    loadHistoryBands.set(bands);
  }

  // Sizes (docs/sizes.md): every server exports the latest record's, read from etcd.
  private final ConcurrentHashMap<String, java.util.concurrent.atomic.AtomicReference<Double>> shardRows =
      new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, java.util.concurrent.atomic.AtomicReference<Double>> shardBytes =
      new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicLong> sizesTaken = new ConcurrentHashMap<>();

  /** The latest sizes of a keyspace (units not needed): rows and bytes per shard (NaN: missing), and when. */
  public void sizes(io.shardmap.proto.v1.KeyspaceSizes s) {
    String ks = s.getKeyspace();
    for (io.shardmap.proto.v1.ShardSize sh : s.getShardsList()) {
      sizeGauge(shardRows, "shardmap.shard.rows", "rows of the keyspace's sharded tables on the shard, as last "
          + "estimated or counted (NaN: the shard could not be read)", ks, sh.getShard())
          .set(sh.getRows() < 0 ? Double.NaN : (double) sh.getRows());
      sizeGauge(shardBytes, "shardmap.shard.bytes", "bytes of the keyspace's sharded tables on the shard, indexes "
          + "and TOAST included (NaN: the shard could not be read)", ks, sh.getShard())
          .set(sh.getBytes() < 0 ? Double.NaN : (double) sh.getBytes());
    }
    sizesTaken.computeIfAbsent(ks, k -> {
      AtomicLong taken = new AtomicLong();
      Gauge.builder("shardmap.sizes.age_seconds", taken, t -> (System.currentTimeMillis() - t.get()) / 1000.0)
          .description("age of the keyspace's latest sizes in etcd").tag("keyspace", k).register(registry);
      return taken;
    }).set(s.getTakenUnixMs());
  }

  private java.util.concurrent.atomic.AtomicReference<Double> sizeGauge(
      ConcurrentHashMap<String, java.util.concurrent.atomic.AtomicReference<Double>> map, String name,
      String description, String ks, String shard) {
    return map.computeIfAbsent(ks + "|" + shard, k -> {
      java.util.concurrent.atomic.AtomicReference<Double> v = new java.util.concurrent.atomic.AtomicReference<>(0.0);
      Gauge.builder(name, v, java.util.concurrent.atomic.AtomicReference::get).description(description)
          .tag("keyspace", ks).tag("shard", shard).register(registry);
      return v;
    });
  }

  // Fleet status (docs/balancing.md): refreshed by FleetService every FLEET_METRICS_PERIOD. Multi-gauges, so that
  // a dropped keyspace or a finished move leaves the exposition at the next refresh.
  private final AtomicLong movesRunning = new AtomicLong();
  private final io.micrometer.core.instrument.MultiGauge loadSkew = io.micrometer.core.instrument.MultiGauge
      .builder("shardmap.keyspace.load_skew").description("the keyspace's busiest shard's calls per second over "
          + "the mean, minus 1, over the fleet status window (0: even)").register(registry);
  private final io.micrometer.core.instrument.MultiGauge sizeSkew = io.micrometer.core.instrument.MultiGauge
      .builder("shardmap.keyspace.size_skew").description("the keyspace's largest shard's bytes over the mean, "
          + "minus 1, by the latest sizes (0: even)").register(registry);
  private final io.micrometer.core.instrument.MultiGauge moveEta = io.micrometer.core.instrument.MultiGauge
      .builder("shardmap.move.eta_seconds").description("time left to a running move's end as last estimated "
          + "(only moves with an estimate)").register(registry);

  {
    Gauge.builder("shardmap.moves.running", movesRunning, AtomicLong::get)
        .description("migrations recorded in etcd and not finished (done or cancelled)").register(registry);
  }

  /** The fleet as a status just assembled it (every keyspace). */
  public void fleet(io.shardmap.proto.v1.GetFleetStatusResponse r) {
    java.util.List<io.micrometer.core.instrument.MultiGauge.Row<?>> load = new java.util.ArrayList<>();
    java.util.List<io.micrometer.core.instrument.MultiGauge.Row<?>> size = new java.util.ArrayList<>();
    for (io.shardmap.proto.v1.KeyspaceStatus k : r.getKeyspacesList()) {
      io.micrometer.core.instrument.Tags tags = io.micrometer.core.instrument.Tags.of("keyspace", k.getKeyspace());
      load.add(io.micrometer.core.instrument.MultiGauge.Row.of(tags, k.getLoadSkew()));
      size.add(io.micrometer.core.instrument.MultiGauge.Row.of(tags, k.getSizeSkew()));
    }
    java.util.List<io.micrometer.core.instrument.MultiGauge.Row<?>> eta = new java.util.ArrayList<>();
    for (io.shardmap.proto.v1.MoveStatus m : r.getMovesList()) {
      if (m.getEtaMs() >= 0) {
        eta.add(io.micrometer.core.instrument.MultiGauge.Row.of(io.micrometer.core.instrument.Tags.of("id", m.getId()),
            m.getEtaMs() / 1000.0));
      }
    }
    loadSkew.register(load, true);
    sizeSkew.register(size, true);
    moveEta.register(eta, true);
    movesRunning.set(r.getMovesCount());
  }
}
