package io.shardmap.server.internal;

import io.grpc.stub.StreamObserver;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.GetHeatmapRequest;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.GetSizesRequest;
import io.shardmap.proto.v1.GetSizesResponse;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.RefreshSizesResponse;
import java.time.Duration;
import java.util.concurrent.Executor;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * shardmap.v1.FleetService: where the data and the load are (docs/load.md, docs/sizes.md). Thin: the load is
 * kept by {@link LoadHistory} and drawn by {@link Heatmap}; sizes are {@link SizesRpc}'s. Runs on the transport threads; nothing here blocks
 * (the history is in memory; a heatmap of 28 days of a large map is a few milliseconds of CPU).
 */
public final class FleetService extends FleetServiceGrpc.FleetServiceImplBase {
  public static final long DEFAULT_WINDOW_SECONDS = 3600;
  public static final long MAX_WINDOW_SECONDS = Duration.ofDays(28).toSeconds();
  public static final int DEFAULT_MAX_ROWS = 256;
  public static final int MAX_ROWS = 4096;
  /** How often the fleet gauges are refreshed. */
  public static final Duration METRICS_PERIOD = Duration.ofSeconds(30);
  private static final Logger LOG = Logger.getLogger(FleetService.class.getName());

  private final Supplier<DirectorySnapshot> snapshots;
  private final LoadHistory history;
  private final LongSupplier wallClockMillis;
  private final SizesRpc sizes;
  private final FleetStatus status;
  /** Where GetFleetStatus runs: it reads etcd (sizes, migrations). */
  private final Executor executor;
  private final ServerMetrics metrics;

  public FleetService(Supplier<DirectorySnapshot> snapshots, LoadHistory history, LongSupplier wallClockMillis,
      SizesRpc sizes, FleetStatus status, Executor executor, ServerMetrics metrics) {
    this.snapshots = snapshots;
    this.history = history;
    this.wallClockMillis = wallClockMillis;
    this.sizes = sizes;
    this.status = status;
    this.executor = executor;
    this.metrics = metrics;
  }

  @Override
  public void getFleetStatus(GetFleetStatusRequest r, StreamObserver<GetFleetStatusResponse> o) {
    executor.execute(() -> {
      try {
        o.onNext(status.status(r));
        o.onCompleted();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        o.onError(Errors.toStatus(e));
      } catch (Exception e) {
        o.onError(Errors.toStatus(e));
      }
    });
  }

  /**
   * Refreshes the fleet gauges (skews per keyspace, running moves and their ETAs) from a status of every
   * keyspace; the server runs it every {@link #METRICS_PERIOD}. A failure (etcd unreachable) keeps the
   * previous values and is logged.
   */
  public void refreshMetrics() {
    try {
      metrics.fleet(status.status(GetFleetStatusRequest.newBuilder().setTop(1).build()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      LOG.log(Level.FINE, "fleet metrics not refreshed", e);
    }
  }

  @Override
  public void getSizes(GetSizesRequest r, StreamObserver<GetSizesResponse> o) {
    sizes.getSizes(r, o);
  }

  @Override
  public void refreshSizes(RefreshSizesRequest r, StreamObserver<RefreshSizesResponse> o) {
    sizes.refreshSizes(r, o);
  }

  /** The load history this service answers from (for the other FleetService methods). */
  public LoadHistory history() {
    return history;
  }

  @Override
  public void getHeatmap(GetHeatmapRequest req, StreamObserver<GetHeatmapResponse> out) {
    try {
      out.onNext(heatmap(req));
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  GetHeatmapResponse heatmap(GetHeatmapRequest req) {
    Names.keyspace("keyspace", req.getKeyspace());
    long window = req.getWindowSeconds() == 0 ? DEFAULT_WINDOW_SECONDS : req.getWindowSeconds();
    if (window < 1 || window > MAX_WINDOW_SECONDS) {
      throw ShardmapException.invalid("window_seconds", "must be 1-" + MAX_WINDOW_SECONDS + " (28 days; 0 for the "
          + "default " + DEFAULT_WINDOW_SECONDS + "), got " + req.getWindowSeconds());
    }
    int maxRows = req.getMaxRows() == 0 ? DEFAULT_MAX_ROWS : req.getMaxRows();
    if (maxRows < 1 || maxRows > MAX_ROWS) {
      throw ShardmapException.invalid("max_rows", "must be 1-" + MAX_ROWS + " (0 for the default " + DEFAULT_MAX_ROWS
          + "), got " + req.getMaxRows());
    }
    KeyspaceMap k = snapshots.get().keyspaces().get(req.getKeyspace());
    if (k == null) {
      throw ShardmapException.notFound("no keyspace '" + req.getKeyspace() + "'");
    }
    long now = wallClockMillis.getAsLong();
    // Reports may end up to a minute after this clock: include the columns they went to.
    long until = now + LoadReports.MAX_FUTURE_MS + history.settings().minuteMs();
    return Heatmap.build(k, history.columns(k.name(), now - window * 1000, until), maxRows, now);
  }
}
