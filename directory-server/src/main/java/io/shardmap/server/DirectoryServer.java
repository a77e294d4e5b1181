package io.shardmap.server;

import com.sun.net.httpserver.HttpServer;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.TxnId;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.Freshness;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.server.internal.AdminOps;
import io.shardmap.server.internal.AdminService;
import io.shardmap.server.internal.ClientRegistry;
import io.shardmap.server.internal.DirectoryState;
import io.shardmap.server.internal.LoadExchange;
import io.shardmap.server.internal.FleetPage;
import io.shardmap.server.internal.FleetStatus;
import io.shardmap.server.internal.LoadHistory;
import io.shardmap.server.internal.LoadReports;
import io.shardmap.server.internal.IdService;
import io.shardmap.server.internal.MalformedRequests;
import io.shardmap.server.internal.ReadService;
import io.shardmap.server.internal.ReferenceTables;
import io.shardmap.server.internal.ServerMetrics;
import io.shardmap.server.internal.FleetService;
import io.shardmap.server.internal.SizeRecords;
import io.shardmap.server.internal.SizeSampler;
import io.shardmap.server.internal.SizesRpc;
import io.shardmap.server.internal.TxnResolver;
import io.shardmap.server.internal.PatroniFollower;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.server.internal.WatchStreams;
import io.shardmap.server.internal.Sequences;
import io.shardmap.server.internal.WorkerLeases;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;

/**
 * One stateless directory-server replica: a gRPC server (read service, admin service, health,
 * reflection) over a watched in-memory copy of the maps in etcd, plus an HTTP endpoint with Prometheus
 * metrics ({@code /metrics}) and a readiness check ({@code /healthz}).
 *
 * <p>By default the gRPC services are served by a plaintext Netty server on {@link ServerOptions#host()}
 * and {@link ServerOptions#port()}. {@link #start(ServerOptions, MetaStore, ServerBuilder)} mounts them on a
 * server builder of the caller's instead (TLS, an in-process server for tests): the caller's builder decides
 * address, transport and executor; the services, their guards and the RPC counter are the same.
 */
public final class DirectoryServer implements AutoCloseable {
  private static final Logger log = Logger.getLogger(DirectoryServer.class.getName());

  /**
   * How often the Patroni follower re-reads the shard list and re-evaluates each cluster, besides reacting
   * to every watched change at once: bounds how long a failed write of new endpoints waits for its retry.
   */
  private static final java.time.Duration PATRONI_RECHECK = java.time.Duration.ofMillis(500);

  private final MetaStore store;
  private final boolean ownsStore;
  private final ServerMetrics metrics = new ServerMetrics();
  private final ScheduledExecutorService scheduler;
  private final ExecutorService adminExecutor;
  /** Runs the worker-lease and sequence calls of the id service (each waits on etcd), apart from admin calls. */
  private final ExecutorService idExecutor;
  private final DirectoryState state;
  private final WatchStreams watches;
  private final ClientRegistry clients;
  /** The fleet's load over unit space and time (docs/load.md), and its exchange with the other servers. */
  private final LoadHistory load;
  private final LoadExchange loadExchange;
  /** Null when the server runs no resolver (no --resolver-db-user). */
  private final TxnResolver resolver;
  private final ScheduledExecutorService resolverExecutor;
  /** Follows the Patroni clusters of Patroni shards; on its own thread (it blocks on etcd writes). */
  private final PatroniFollower patroni;
  private final ScheduledExecutorService patroniExecutor;
  /** Refreshes the fleet gauges (FleetService#refreshMetrics). */
  private final ScheduledExecutorService fleetMetricsExecutor;
  /** Null when the server has no database role (no --resolver-db-user): it then takes no sizes. */
  private final SizeSampler sizes;
  private final ScheduledExecutorService sizesTicker;
  /** Reads the shards for sizes (one task per shard), and runs RefreshSizes calls (each waits on those). */
  private final ExecutorService sizesShardPool;
  private final ExecutorService sizesRefreshPool;
  private final HealthStatusManager health = new HealthStatusManager();
  private final Server grpc;
  private final HttpServer http;

  private DirectoryServer(ServerOptions o, MetaStore store, boolean ownsStore, ServerBuilder<?> builder)
      throws IOException {
    this.store = store;
    this.ownsStore = ownsStore;
    this.scheduler = Executors.newScheduledThreadPool(2, daemon("shardmap-scheduler"));
    this.adminExecutor = Executors.newFixedThreadPool(8, daemon("shardmap-admin"));
    this.idExecutor = Executors.newFixedThreadPool(4, daemon("shardmap-ids"));
    CatalogPaths paths = new CatalogPaths(o.etcdPrefix());
    this.state = new DirectoryState(store, paths, scheduler, System::nanoTime, o.etcdTimeout(),
        o.probeInterval(), o.watchHistory(), metrics);
    this.watches = new WatchStreams(state, o.watchQueueLimit());
    AdminOps ops = new AdminOps(store, paths, state, o.etcdTimeout(), o.maxTxnOps(), System::nanoTime, metrics);
    Sequences sequences = new Sequences(store, paths, o.etcdTimeout(), System::nanoTime, System::currentTimeMillis,
        metrics);
    ServerInterceptor counting = new RpcCounter(metrics);
    ReadService read = new ReadService(state, metrics, watches, o.etcdPrefix(), new ReferenceTables(store, paths,
        ks -> state.snapshot().keyspaces().containsKey(ks), o.etcdTimeout()));
    SizeRecords sizeRecords = new SizeRecords(store, paths, o.etcdTimeout(), System::nanoTime, metrics);
    SizesRpc sizesRpc = new SizesRpc(state::snapshot, sizeRecords, adminExecutor);
    health.setStatus("", ServingStatus.NOT_SERVING);
    health.setStatus(ShardMapServiceGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
    health.setStatus(ShardMapAdminServiceGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
    health.setStatus(ShardMapIdServiceGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
    health.setStatus(FleetServiceGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
    this.load = LoadHistory.over(loadSettings(o), System::currentTimeMillis, state::snapshot);
    read.loads(new LoadReports(load, metrics, System::currentTimeMillis));
    FleetService fleet = new FleetService(state::snapshot, load, System::currentTimeMillis, sizesRpc,
        new FleetStatus(state::snapshot, load, sizeRecords::read, FleetStatus.migrations(store, paths, o.etcdTimeout()),
            System::currentTimeMillis), adminExecutor, metrics);
    this.grpc = (builder != null ? builder : nettyBuilder(o))
        // Every method of every service refuses undecodable requests with INVALID_ARGUMENT (see
        // MalformedRequests); the counter goes outside that guard so it counts the refusals too.
        .addService(ServerInterceptors.intercept(MalformedRequests.guard(read.bindService()), counting))
        .addService(ServerInterceptors.intercept(
            MalformedRequests.guard(new AdminService(ops, sequences, adminExecutor).bindService()), counting))
        .addService(ServerInterceptors.intercept(MalformedRequests.guard(new IdService(new WorkerLeases(store, paths,
            o.etcdTimeout(), System::nanoTime, System::currentTimeMillis, metrics), sequences, idExecutor).bindService()),
            counting))
        .addService(ServerInterceptors.intercept(MalformedRequests.guard(fleet.bindService()), counting))
        .addService(MalformedRequests.guard(health.getHealthService().bindService()))
        .addService(MalformedRequests.guard(ProtoReflectionServiceV1.newInstance().bindService()))
        .build()
        .start();
    String id = o.serverId() != null ? o.serverId() : defaultServerId(grpc.getPort());
    if (o.resolverDbUser() != null) {
      this.sizesTicker = Executors.newSingleThreadScheduledExecutor(daemon("shardmap-size-sampler"));
      this.sizesShardPool = Executors.newFixedThreadPool(4, daemon("shardmap-sizes"));
      this.sizesRefreshPool = Executors.newFixedThreadPool(2, daemon("shardmap-sizes-refresh"));
      this.sizes = new SizeSampler(new SizeSampler.Settings(o.resolverDbUser(), o.resolverDbPassword(),
          o.sizeInterval(), SizeSampler.LEASE_TTL, SizeSampler.STATEMENT_TIMEOUT, SizeSampler.EXACT_STATEMENT_TIMEOUT),
          store, sizeRecords, paths, id, o.etcdTimeout(), state::snapshot, sizesTicker, sizesShardPool,
          sizesRefreshPool, System::nanoTime, System::currentTimeMillis, metrics, null);
    } else {
      this.sizesTicker = null;
      this.sizesShardPool = null;
      this.sizesRefreshPool = null;
      this.sizes = null;
    }
    sizesRpc.sampler(sizes);
    this.clients = new ClientRegistry(store, paths, id, o.clientReportTimeout(), o.etcdTimeout(),
        state::changeBracket, System::nanoTime, System::currentTimeMillis, metrics);
    read.clients(clients);
    this.loadExchange = new LoadExchange(store, paths, id, load, o.etcdTimeout(), o.loadPublishInterval(),
        System::nanoTime, System::currentTimeMillis, metrics);
    if (o.resolverDbUser() != null) {
      // Its own thread: a scan blocks on the shards' PostgreSQL, which must not hold up probes or heartbeats.
      this.resolverExecutor = Executors.newSingleThreadScheduledExecutor(daemon("shardmap-txn-resolver"));
      this.resolver = new TxnResolver(new TxnResolver.Settings(TxnId.namespaceOf(o.etcdPrefix()), o.resolverDbUser(),
          o.resolverDbPassword(), o.txnResolveInterval(), o.txnAbortAfter(), o.txnResolverLeaseTtl()), store,
          paths.txnResolver(), id, o.etcdTimeout(), state::snapshot, resolverExecutor, System::nanoTime, metrics,
          null);
    } else {
      this.resolverExecutor = null;
      this.resolver = null;
    }
    this.patroniExecutor = Executors.newSingleThreadScheduledExecutor(daemon("shardmap-patroni-follower"));
    this.patroni = new PatroniFollower(store, ops, state::snapshot, patroniExecutor, PATRONI_RECHECK, o.etcdTimeout(),
        metrics);
    this.http = o.metricsHost() == null ? null : startHttp(o.metricsHost(), o.metricsPort(), new FleetPage(fleet, read));
    long hb = o.watchHeartbeat().toMillis();
    scheduler.scheduleWithFixedDelay(state::heartbeat, hb, hb, TimeUnit.MILLISECONDS);
    // Its own thread: the refresh reads etcd (sizes, migrations), which must not hold up heartbeats.
    this.fleetMetricsExecutor = Executors.newSingleThreadScheduledExecutor(daemon("shardmap-fleet-metrics"));
    long fp = FleetService.METRICS_PERIOD.toMillis();
    fleetMetricsExecutor.scheduleWithFixedDelay(fleet::refreshMetrics, fp, fp, TimeUnit.MILLISECONDS);
  }

  private static LoadHistory.Settings loadSettings(ServerOptions o) {
    List<Duration> r = o.loadRetention();
    return LoadHistory.Settings.defaults().withLadder(List.of(
        new LoadHistory.Tier(Duration.ofMinutes(1).toMillis(), r.get(0).toMillis()),
        new LoadHistory.Tier(Duration.ofMinutes(10).toMillis(), r.get(1).toMillis()),
        new LoadHistory.Tier(Duration.ofHours(1).toMillis(), r.get(2).toMillis()))).withMaxBands(o.loadMaxBands());
  }

  /** The load history of this server (the whole fleet's load; docs/load.md). */
  public LoadHistory loadHistory() {
    return load;
  }

  /** The default transport: plaintext Netty on the options' host and port. */
  private static ServerBuilder<?> nettyBuilder(ServerOptions o) {
    return NettyServerBuilder.forAddress(new InetSocketAddress(o.host(), o.port()))
        // Lookups never block, so they run on the transport threads; admin calls hop to their own pool.
        .directExecutor()
        .permitKeepAliveTime(5, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .maxInboundMessageSize(32 << 20);
  }

  /** Starts a server on etcd; returns once the maps are loaded (retrying while etcd is unreachable). */
  public static DirectoryServer start(ServerOptions options) throws IOException, InterruptedException {
    MetaStore store = EtcdMetaStore.builder().endpoints(options.etcdEndpoints())
        .requestTimeout(options.etcdTimeout()).connectTimeout(options.etcdTimeout()).build();
    return start(options, store, true, null);
  }

  /** Starts a server on the given store (tests use the in-memory fake); the caller keeps the store. */
  public static DirectoryServer start(ServerOptions options, MetaStore store)
      throws IOException, InterruptedException {
    return start(options, store, false, null);
  }

  /**
   * Starts a server on the given store whose gRPC services are mounted on {@code builder} (built and started
   * here, shut down by {@link #close}); {@link ServerOptions#host()} and {@link ServerOptions#port()} are
   * then unused. For TLS ({@code NettyServerBuilder.forPort(p).sslContext(...)}) or an in-process server
   * ({@code InProcessServerBuilder.forName(n).directExecutor()}). The caller keeps the store.
   */
  public static DirectoryServer start(ServerOptions options, MetaStore store, ServerBuilder<?> builder)
      throws IOException, InterruptedException {
    if (builder == null) {
      throw new IllegalArgumentException("builder: a gRPC ServerBuilder is required");
    }
    return start(options, store, false, builder);
  }

  private static DirectoryServer start(ServerOptions options, MetaStore store, boolean owns,
      ServerBuilder<?> builder) throws IOException, InterruptedException {
    DirectoryServer s = new DirectoryServer(options, store, owns, builder);
    try {
      s.state.start();
      s.clients.start();
      s.loadExchange.start();
      s.patroni.start();
      if (s.sizes != null) {
        s.sizes.start();
      }
      if (s.resolver != null) {
        s.resolver.start();
      } else {
        log.warning("no --resolver-db-user: this server runs no resolver of in-doubt cross-shard transactions "
            + "(prepared transactions a dead coordinator left stay prepared, holding their locks, until a server "
            + "with one finishes them); see docs/transactions.md");
      }
    } catch (InterruptedException | RuntimeException e) {
      s.close();
      throw e;
    }
    s.health.setStatus("", ServingStatus.SERVING);
    s.health.setStatus(ShardMapServiceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    s.health.setStatus(ShardMapAdminServiceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    s.health.setStatus(ShardMapIdServiceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    s.health.setStatus(FleetServiceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    log.info("directory server serving gRPC on " + (builder == null ? options.host() + ":" + s.port()
        : "the given " + builder.getClass().getSimpleName())
        + (s.http == null ? "" : ", metrics on http://" + options.metricsHost() + ":" + s.metricsPort()
        + "/metrics") + " at revision " + s.snapshot().revision() + "; server id '" + s.serverId()
        + "' (client presence record " + new CatalogPaths(options.etcdPrefix()).clients(s.serverId()) + ")");
    return s;
  }

  /** This server's id in client presence records ({@link ServerOptions.Builder#serverId}). */
  public String serverId() {
    return clients.serverId();
  }

  /** The gRPC port; -1 for a transport without one (in-process). */
  public int port() {
    return grpc.getPort();
  }

  /** The metrics port, or -1 when the endpoint is off. */
  public int metricsPort() {
    return http == null ? -1 : http.getAddress().getPort();
  }

  public DirectorySnapshot snapshot() {
    return state.snapshot();
  }

  public Freshness freshness() {
    return state.freshness();
  }

  /** Waits until this replica has applied {@code revision}; false on timeout. */
  public boolean awaitRevision(long revision, Duration timeout) throws InterruptedException {
    return state.awaitRevision(revision, timeout);
  }

  public String scrapeMetrics() {
    return metrics.scrape();
  }

  private HttpServer startHttp(String host, int port, FleetPage page) throws IOException {
    HttpServer h = HttpServer.create(new InetSocketAddress(host, port), 16);
    h.createContext("/metrics", ex -> {
      byte[] body = metrics.scrape().getBytes(StandardCharsets.UTF_8);
      ex.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      ex.sendResponseHeaders(200, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    });
    h.createContext("/healthz", ex -> {
      boolean ok = state.isLoaded();
      Freshness f = state.freshness();
      String text = (ok ? "serving" : "loading") + " revision=" + f.getRevision() + " age_ms="
          + f.getAgeMillis() + " etcd_reachable=" + state.etcdReachable() + "\n";
      byte[] body = text.getBytes(StandardCharsets.UTF_8);
      ex.sendResponseHeaders(ok ? 200 : 503, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    });
    // The fleet page (docs/load.md): /fleet and its JSON endpoints under /api/v1/, next to /metrics.
    page.mount(h);
    // A few threads: a status answer reads etcd, and must not hold up a Prometheus scrape.
    h.setExecutor(Executors.newFixedThreadPool(4, daemon("shardmap-http")));
    h.start();
    return h;
  }

  @Override
  public void close() {
    health.enterTerminalState();
    // Refuse new calls before ending the watch streams: a client reconnecting in between would otherwise
    // open a fresh stream that graceful shutdown then waits for.
    grpc.shutdown();
    watches.close();
    if (clients != null) {
      clients.close();
    }
    if (loadExchange != null) {
      loadExchange.close();
    }
    if (resolver != null) {
      resolver.close(); // gives the role up at once, so another server takes it at its next scan
      resolverExecutor.shutdownNow();
    }
    if (sizes != null) {
      sizes.close(); // gives the role up at once
      sizesTicker.shutdownNow();
      sizesShardPool.shutdownNow();
      sizesRefreshPool.shutdownNow();
    }
    patroni.close();
    patroniExecutor.shutdown();
    fleetMetricsExecutor.shutdownNow();
    state.close();
    try {
      if (!grpc.awaitTermination(5, TimeUnit.SECONDS)) {
        grpc.shutdownNow();
      }
    } catch (InterruptedException e) {
      grpc.shutdownNow();
      Thread.currentThread().interrupt();
    }
    if (http != null) {
      http.stop(0);
    }
    adminExecutor.shutdownNow();
    idExecutor.shutdownNow();
    scheduler.shutdownNow();
    if (ownsStore) {
      store.close();
    }
  }

  /** {@code hostname:port-random}: readable in etcd, and unique per run even for servers on one host. */
  private static String defaultServerId(int port) {
    String random = Long.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextLong() >>> 16);
    return io.shardmap.core.Names.localHostName("localhost") + ":" + port + "-" + random;
  }

  private static ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** Counts finished RPCs by method and status code. */
  private static final class RpcCounter implements ServerInterceptor {
    private final ServerMetrics metrics;

    RpcCounter(ServerMetrics metrics) {
      this.metrics = metrics;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
      String method = call.getMethodDescriptor().getBareMethodName();
      return next.startCall(new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
        @Override
        public void close(Status status, Metadata trailers) {
          metrics.rpc(method, status.getCode().name());
          super.close(status, trailers);
        }
      }, headers);
    }
  }
}
