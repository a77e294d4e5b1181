package io.shardmap.server.internal;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.StoreErrors;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Makes every directory server's {@link LoadHistory} hold the whole fleet's load, although each client
 * reports to one server (docs/load.md).
 *
 * <ul>
 *   <li>Every publish interval (default 5 s) one thread maintains the history and writes this server's
 *       part of every open 1-minute column that changed since it was last written to {@code
 *       {prefix}/load/{ks}/{minute}/{serverId}} ({@link CatalogPaths#load}): a {@link KeyspaceLoad} of the
 *       bands with calls, cumulative for the minute, so a rewrite replaces the previous one. Nothing is
 *       written while nothing changes.
 *   <li>Each minute's parts are put under one lease granted when the minute is first written, with the
 *       history's open time as TTL (17 minutes) and never renewed: etcd holds only recent columns, and
 *       nothing needs cleaning up. Closing the server leaves them (the load happened; others keep it).
 *   <li>A value is kept under {@value #MAX_VALUE_BYTES} bytes: bands are capped (at most maxBands, and
 *       halved until the value fits, keeping hot bands).
 *   <li>Every server watches {@code {prefix}/load/} and replaces each server's part in its history; at
 *       start (and after a compaction) it reads the prefix first, so a restarted server recovers the
 *       recent columns, its own included when it keeps its id.
 *   <li>Failures (etcd unreachable, a lease expired) are logged once until etcd answers again and retried
 *       at the next run; a failed part is written again. Nothing here runs on an RPC's thread.
 * </ul>
 */
public final class LoadExchange implements AutoCloseable {
  private static final Logger log = Logger.getLogger(LoadExchange.class.getName());
  static final int MAX_VALUE_BYTES = 512 * 1024;

  private final MetaStore store;
  private final MeteredMetaStore metered;
  private final CatalogPaths paths;
  private final String prefix;
  private final LoadHistory history;
  private final String serverId;
  private final Duration requestTimeout;
  private final long intervalMs;
  private final LongSupplier wallClockMillis;
  private final ServerMetrics metrics;
  private final ScheduledExecutorService executor;
  /** Lease per minute written: touched by the publisher thread only. */
  private final TreeMap<Long, Long> leases = new TreeMap<>();
  private volatile Watch watch;
  private volatile boolean loaded;
  private final EtcdFaultLog faults;
  private volatile boolean closed;

  public LoadExchange(MetaStore store, CatalogPaths paths, String serverId, LoadHistory history,
                      Duration requestTimeout,
                      Duration publishInterval, LongSupplier nanoTime, LongSupplier wallClockMillis,
                      ServerMetrics metrics) {
    this.store = store;
    this.metered = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.paths = paths;
    this.prefix = paths.loadPrefix();
    this.history = history;
    this.serverId = serverId;
    this.requestTimeout = requestTimeout;
    this.intervalMs = publishInterval.toMillis();
    this.faults = new EtcdFaultLog(log, requestTimeout, intervalMs);
    this.wallClockMillis = wallClockMillis;
    this.metrics = metrics;
    this.executor = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "shardmap-load-exchange");
      t.setDaemon(true);
      return t;
    });
  }

  /**
   * Reads the recent columns and starts watching and publishing. Waits for the first read, bounded by two
   * etcd request timeouts; if it fails, the next runs retry.
   */
  public void start() throws InterruptedException {
    Future<?> first = executor.submit(this::tick);
    try {
      first.get(2 * requestTimeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | TimeoutException e) {
      // tick() logs its own failures.
    }
    executor.scheduleWithFixedDelay(this::tick, intervalMs, intervalMs, TimeUnit.MILLISECONDS);
  }

  /** Whether the recent columns of every server have been read (and are being watched). */
  public boolean loaded() {
    return loaded;
  }

  /** One run: (re-)read if needed, maintain the history, publish changed own parts, update the gauges. */
  void tick() {
    if (closed) {
      return;
    }
    try {
      if (!loaded) {
        read();
      }
      history.maintain();
      publishChanged();
      metrics.loadHistory(history.estimatedBytes(), history.bandCount());
    } catch (RuntimeException e) {
      log.log(Level.SEVERE, "load exchange failed", e);
    }
  }

  private void read() {
    try {
      RangeResult r = metered.as("load_read").getPrefix(prefix).get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
      for (KeyValue kv : r.kvs()) {
        apply(kv);
      }
      Watch old = watch;
      if (old != null) {
        old.close();
      }
      watch = store.watch(prefix, r.revision(), new Listener());
      loaded = true;
      faults.recovered("read " + r.kvs().size() + " load columns from " + prefix);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
        return;
      }
      faults.fault("reading the recent load columns under " + prefix + " failed", e);
    }
  }

  /** One published part into the history; a record that does not parse is logged and skipped. */
  private void apply(KeyValue kv) {
    String rest = kv.key().substring(prefix.length());
    String[] p = rest.split("/");
    try {
      if (p.length != 3) {
        throw new IllegalArgumentException("not {ks}/{minute}/{server}");
      }
      long minute = Long.parseLong(p[1]);
      KeyspaceLoad l = KeyspaceLoad.parseFrom(kv.value());
      history.replace(p[0], p[2].equals(serverId) ? LoadHistory.LOCAL : p[2], minute, LoadReports.column(l));
    } catch (InvalidProtocolBufferException | RuntimeException e) {
      log.warning("skipping the load record " + kv.key() + ": " + e);
    }
  }

  private void publishChanged() {
    long now = wallClockMillis.getAsLong();
    long openMs = history.settings().openMs();
    // Leases of minutes past the open time have expired (or will): forget them.
    leases.headMap(now - openMs - history.settings().minuteMs(), false).clear();
    List<LoadHistory.OwnPart> parts = history.takeChangedOwnParts();
    for (Iterator<LoadHistory.OwnPart> it = parts.iterator(); it.hasNext(); ) {
      LoadHistory.OwnPart part = it.next();
      try {
        Long lease = leases.get(part.minuteUnixMs());
        if (lease == null) {
          // The key should vanish openMs after the minute began; never less than a second.
          long ttl = Math.max(1000, part.minuteUnixMs() + openMs - now);
          lease = metered.as("load_lease_grant").grantLease(Duration.ofMillis(ttl))
              .get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
          leases.put(part.minuteUnixMs(), lease);
        }
        String key = paths.load(part.keyspace(), part.minuteUnixMs(), serverId);
        byte[] value = encode(part);
        metered.as("load_put").commit(Txn.builder().put(key, value, lease).build())
            .get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
        faults.recovered("load column " + key + " written");
      } catch (Exception e) {
        // This one and every one not yet tried are written again at the next run.
        history.markChanged(part.keyspace(), part.minuteUnixMs());
        while (it.hasNext()) {
          LoadHistory.OwnPart rest = it.next();
          history.markChanged(rest.keyspace(), rest.minuteUnixMs());
        }
        if (e instanceof InterruptedException) {
          Thread.currentThread().interrupt();
          return;
        }
        if (StoreErrors.kind(e) == StoreException.Kind.NOT_FOUND) {
          leases.remove(part.minuteUnixMs()); // the lease expired under us: a new one next time
        }
        if (!closed) {
          faults.fault("writing this server's load columns failed", e);
        }
        return;
      }
    }
  }

  /** This server's part as a record: the bands with calls, under {@value #MAX_VALUE_BYTES} bytes. */
  byte[] encode(LoadHistory.OwnPart part) {
    LoadColumn c = part.column();
    while (true) {
      KeyspaceLoad.Builder b = KeyspaceLoad.newBuilder().setKeyspace(part.keyspace())
          .setStartUnixMs(part.minuteUnixMs()).setEndUnixMs(part.minuteUnixMs() + history.settings().minuteMs());
      for (int i = 0; i < c.bands(); i++) {
        if (c.calls(i) == 0 && c.get(i, LoadColumn.BUSY) == 0 && c.get(i, LoadColumn.ERRORS) == 0) {
          continue;
        }
        b.addBands(LoadBand.newBuilder().setStart(ByteString.copyFrom(c.start(i))).setEnd(ByteString.copyFrom(c.end(i)))
            .setUnits(1).setReads(c.get(i, LoadColumn.READS)).setWrites(c.get(i, LoadColumn.WRITES))
            .setBusyMicros(c.get(i, LoadColumn.BUSY)).setErrors(c.get(i, LoadColumn.ERRORS)));
      }
      KeyspaceLoad l = b.build();
      if (l.getSerializedSize() <= MAX_VALUE_BYTES || c.bands() <= 2) {
        return l.toByteArray();
      }
      c = c.capped(Math.max(2, c.bands() / 2));
    }
  }

  private final class Listener implements WatchListener {
    @Override
    public void onBatch(long revision, List<WatchEvent> events) {
      if (closed) {
        return;
      }
      for (WatchEvent e : events) {
        // Deletes are leases expiring: the column has closed in every history by then.
        if (e.type() == WatchEvent.Type.PUT) {
          apply(e.kv());
        }
      }
    }

    @Override
    public void onCompacted(long compactRevision) {
      // Re-read at the next run: replacing parts makes a re-read idempotent.
      loaded = false;
    }
  }


  /**
   * Stops publishing and watching. The published columns stay until their leases expire (the load they
   * hold happened; the other servers and a restart of this one keep it). One last run first writes what
   * changed since the previous one, bounded by the etcd timeout.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    try {
      executor.submit(() -> {
        if (loaded) {
          publishChanged();
        }
      }).get(requestTimeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
    }
    closed = true;
    executor.shutdownNow();
    try {
      executor.awaitTermination(1, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    Watch w = watch;
    if (w != null) {
      w.close();
    }
  }
}
