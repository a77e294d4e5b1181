package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.StoreErrors;
import io.shardmap.proto.v1.ClientPresence;
import io.shardmap.store.MetaStore;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
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
 * The SDK clients of this server and the map revision each one acknowledged ({@code ReportApplied}),
 * published for the migrator as one {@link ClientPresence} record at {@code {root}/clients/{serverId}}.
 *
 * <ul>
 *   <li>A report only updates a concurrent map (it runs on the transport threads and never blocks). The
 *       latest report of a client wins, so a late, reordered report can only understate what it applied.
 *   <li>Every {@value #PUBLISH_INTERVAL_MS} ms one thread forgets clients not heard from for the report
 *       timeout, computes the aggregate and writes the record if the aggregate changed: at most one write
 *       per interval, none while nothing changes, and one (with {@code client_count} 0) at start.
 *   <li>The record is put under a lease of this server (TTL {@link #LEASE_TTL}, renewed every third of
 *       it), so it vanishes when the server dies; {@link #close()} revokes the lease at once. A lease found
 *       expired (etcd unreachable for longer than the TTL) is replaced and the record rewritten.
 *   <li>{@code min_applied_revision} is the clients' minimum rounded down to the newest revision that
 *       changed the maps ({@link DirectoryState#changeBracket}). Unrounded, the record would chase itself:
 *       each write is an etcd revision under the watched prefix, the next watch heartbeat carries it to
 *       every client, their next reports move the minimum, and the record would be rewritten forever. A
 *       revision that changed no map leaves every client's map as it was, so rounding loses nothing the
 *       migrator asks about.
 * </ul>
 */
public final class ClientRegistry implements AutoCloseable {
  private static final Logger log = Logger.getLogger(ClientRegistry.class.getName());

  /** Lifetime of the lease the record is put under; renewed every third of it. */
  public static final Duration LEASE_TTL = Duration.ofSeconds(10);
  /** The record is rewritten at most this often (and the clients' timeouts checked this often). */
  public static final long PUBLISH_INTERVAL_MS = 250;

  /** Which revisions changed the maps; {@link DirectoryState#changeBracket} in the server. */
  public interface ChangeIndex {
    long[] changeBracket(long revision);
  }

  private record Client(long applied, long maxStalenessMs, long lastSeenNanos) {}

  /** The published fields that decide whether the record is rewritten (not the time of writing). */
  record Aggregate(long count, long minApplied, String laggard, long maxStalenessMs) {
    static final Aggregate NONE = new Aggregate(0, 0, "", 0);
  }

  private final MetaStore store;
  /** {@code store} with its round trips timed into {@code shardmap.etcd.requests}. */
  private final MeteredMetaStore metered;
  private final String key;
  private final String serverId;
  private final long timeoutNanos;
  private final Duration requestTimeout;
  private final ChangeIndex changes;
  private final LongSupplier nanoTime;
  private final LongSupplier wallClockMillis;
  private final ServerMetrics metrics;
  private final ConcurrentHashMap<String, Client> clients = new ConcurrentHashMap<>();
  private final ScheduledExecutorService executor;

  // Publisher state: touched by the publisher thread only (close() reads leaseId after stopping it).
  private volatile long leaseId;
  private long leaseRenewedNanos;
  private Aggregate published;
  private final EtcdFaultLog faults;
  private volatile boolean closed;

  public ClientRegistry(MetaStore store, CatalogPaths paths, String serverId, Duration clientTimeout,
                        Duration requestTimeout, ChangeIndex changes, LongSupplier nanoTime,
                        LongSupplier wallClockMillis, ServerMetrics metrics) {
    this.store = store;
    this.key = paths.clients(serverId);
    this.serverId = serverId;
    this.timeoutNanos = clientTimeout.toNanos();
    this.requestTimeout = requestTimeout;
    this.faults = new EtcdFaultLog(log, requestTimeout, PUBLISH_INTERVAL_MS);
    this.changes = changes;
    this.nanoTime = nanoTime;
    this.wallClockMillis = wallClockMillis;
    this.metrics = metrics;
    this.metered = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.executor = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "shardmap-client-presence");
      t.setDaemon(true);
      return t;
    });
  }

  /**
   * Publishes the first record (no clients yet) and starts the periodic publisher. Waits for the first
   * write, bounded by two etcd request timeouts; if it fails, the publisher keeps trying.
   */
  public void start() throws InterruptedException {
    Future<?> first = executor.submit(this::tick);
    try {
      first.get(2 * requestTimeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | TimeoutException e) {
      // tick() logs its own failures; the scheduled ticks retry.
    }
    executor.scheduleWithFixedDelay(this::tick, PUBLISH_INTERVAL_MS, PUBLISH_INTERVAL_MS, TimeUnit.MILLISECONDS);
  }

  public String serverId() {
    return serverId;
  }

  public Duration clientTimeout() {
    return Duration.ofNanos(timeoutNanos);
  }

  /** Records one report (validated by the caller). Never blocks. */
  public void report(String clientId, long appliedRevision, long maxStalenessMs) {
    if (clients.put(clientId, new Client(appliedRevision, maxStalenessMs, nanoTime.getAsLong())) == null) {
      metrics.reportingClients(clients.size());
    }
  }

  /** Clients heard from within the timeout (as of the last publisher run, plus new ones since). */
  public int size() {
    return clients.size();
  }

  /** One publisher run: forget silent clients, renew the lease when due, rewrite the record if changed. */
  void tick() {
    if (closed) {
      return;
    }
    try {
      long now = nanoTime.getAsLong();
      for (Map.Entry<String, Client> e : clients.entrySet()) {
        Client c = e.getValue();
        // remove(key, value): a report that arrived meanwhile keeps the client.
        if (now - c.lastSeenNanos > timeoutNanos && clients.remove(e.getKey(), c)) {
          log.info("client '" + e.getKey() + "' has not reported for "
              + TimeUnit.NANOSECONDS.toMillis(now - c.lastSeenNanos) + " ms (client report timeout "
              + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms); forgotten at applied revision " + c.applied);
        }
      }
      Aggregate a = aggregate();
      metrics.reportingClients((int) a.count());
      renewLeaseIfDue(now);
      if (!a.equals(published)) {
        publish(a);
      }
    } catch (RuntimeException e) {
      // A bug must not end the scheduled task (an exception would cancel it silently).
      log.log(Level.SEVERE, "client presence publisher failed", e);
    }
  }

  /** The aggregate of the clients known now. */
  Aggregate aggregate() {
    if (clients.isEmpty()) {
      return Aggregate.NONE;
    }
    long count = 0;
    long rawMin = Long.MAX_VALUE;
    long maxStaleness = 0;
    boolean unlimited = false;
    Map<String, Client> view = Map.copyOf(clients);
    for (Client c : view.values()) {
      count++;
      rawMin = Math.min(rawMin, c.applied);
      if (c.maxStalenessMs == 0) {
        unlimited = true;
      } else {
        maxStaleness = Math.max(maxStaleness, c.maxStalenessMs);
      }
    }
    if (count == 0) {
      return Aggregate.NONE;
    }
    long[] bracket = changes.changeBracket(rawMin);
    // Every client below the next change rounds down to the same revision as the minimum; the smallest
    // id among them is the laggard, so the choice does not flip as their unrounded revisions move.
    String laggard = null;
    for (Map.Entry<String, Client> e : view.entrySet()) {
      if (e.getValue().applied < bracket[1] && (laggard == null || e.getKey().compareTo(laggard) < 0)) {
        laggard = e.getKey();
      }
    }
    return new Aggregate(count, bracket[0], laggard, unlimited ? 0 : maxStaleness);
  }

  private void renewLeaseIfDue(long now) {
    long lease = leaseId;
    if (lease == 0 || now - leaseRenewedNanos < LEASE_TTL.toNanos() / 3) {
      return;
    }
    try {
      metered.as("presence_keepalive").keepAliveOnce(lease).get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
      leaseRenewedNanos = now;
      faults.recovered("lease of client presence record " + key + " renewed");
    } catch (Exception e) {
      if (e instanceof InterruptedException || closed) {
        Thread.currentThread().interrupt();
        return;
      }
      boolean gone = StoreErrors.kind(e) == StoreException.Kind.NOT_FOUND;
      if (gone || now - leaseRenewedNanos >= LEASE_TTL.toNanos()) {
        // The record went with the lease (or will have by now): start over with a new lease.
        leaseId = 0;
        published = null;
        faults.fault("the lease of this server's client presence record " + (gone ? "expired" : "could not be renewed for "
            + TimeUnit.NANOSECONDS.toMillis(now - leaseRenewedNanos) + " ms") + "; it is rewritten under a new "
            + "lease", e);
      } else {
        faults.fault("renewing the lease of this server's client presence record failed", e);
      }
    }
  }

  private void publish(Aggregate a) {
    try {
      if (leaseId == 0) {
        long granted = metered.as("presence_lease_grant").grantLease(LEASE_TTL)
            .get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
        leaseId = granted;
        leaseRenewedNanos = nanoTime.getAsLong();
      }
      ClientPresence record = ClientPresence.newBuilder().setServerId(serverId).setClientCount(a.count())
          .setMinAppliedRevision(a.minApplied()).setLaggardClientId(a.laggard())
          .setMaxStalenessMs(a.maxStalenessMs()).setPublishedUnixMs(wallClockMillis.getAsLong()).build();
      metered.as("presence_put").commit(Txn.builder().put(key, record.toByteArray(), leaseId).build())
          .get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
      published = a;
      faults.recovered("client presence record " + key + " written (" + a.count() + " clients, min applied revision "
          + a.minApplied() + ")");
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
        return;
      }
      if (StoreErrors.kind(e) == StoreException.Kind.NOT_FOUND) {
        leaseId = 0; // the lease expired under us; the next run grants a new one
      }
      if (!closed) {
        faults.fault("writing the client presence record " + key + " failed", e);
      }
    }
  }


  /**
   * Stops publishing and revokes the lease, which deletes the record at once (bounded by the etcd
   * timeout). While etcd was failing the revoke is not attempted: the record then vanishes when the lease
   * expires, within {@link #LEASE_TTL}, and shutdown is not held up by an unreachable etcd.
   */
  @Override
  public void close() {
    closed = true;
    // Interrupts a publisher waiting on etcd; its writes are of no use any more.
    executor.shutdownNow();
    try {
      executor.awaitTermination(1, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    long lease = leaseId;
    leaseId = 0;
    if (lease != 0 && faults.failing() == null) {
      try {
        store.revokeLease(lease).get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (Exception e) {
        if (e instanceof InterruptedException) {
          Thread.currentThread().interrupt();
        }
        log.warning("revoking the lease of the client presence record " + key + " failed (" + e
            + "); the record vanishes when the lease expires, within " + LEASE_TTL.toSeconds() + " s");
      }
    } else if (lease != 0) {
      log.info("not revoking the lease of the client presence record " + key + " (etcd was failing: " + faults.failing()
          + "); the record vanishes when the lease expires, within " + LEASE_TTL.toSeconds() + " s");
    }
    metrics.reportingClients(0);
  }
}
