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
  private final ConcurrentHashMap<String, Timer> etcdTimers = new ConcurrentHashMap<>();
  private final AtomicLong snapshotRevision = new AtomicLong();
  private final AtomicLong snapshotAgeMillis = new AtomicLong();
  private final AtomicLong etcdReachable = new AtomicLong(1);
  private final AtomicLong watchStreams = new AtomicLong();
  private final AtomicLong watchLag = new AtomicLong();
  private final AtomicLong reportingClients = new AtomicLong();

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

  /** SDK clients this server currently counts in its client presence record. */
  public void reportingClients(int n) {
    reportingClients.set(n);
  }
}
