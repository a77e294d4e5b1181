package io.shardmap.server.internal;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Shard;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import io.shardmap.store.WatchListener;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Keeps the records of Patroni shards (those registered with {@code Shard.patroni}) in step with their
 * clusters: watches each cluster's keys in etcd ({@code {namespace}/{scope}/}) and, when the confirmed
 * primary or the set of running replicas differs from the record, rewrites the record through
 * {@link AdminOps#followPatroni} in one transaction (primary term + 1 for a new primary). SDKs see the change
 * as one watch event and switch pools on it.
 *
 * <p>Every directory server runs one. That is safe without electing a writer: each write compares the
 * record's mod revision and only moves the record's observed Patroni revision forward, so of two servers
 * seeing the same change one writes and the other finds nothing to do, and a server with an older view of
 * Patroni's keys can never overwrite a newer one. It also means a failover is published by whichever
 * server sees it first, with no lease to wait out when a server dies.
 *
 * <p>All state lives on one thread ({@code executor}); watch callbacks hand their events over to it. Every
 * {@code interval} it also re-reads the snapshot for shards added or removed and re-evaluates each
 * cluster, which retries a write that failed (etcd unreachable, a conflict) without waiting for Patroni to
 * change a key again.
 */
public final class PatroniFollower implements AutoCloseable {
  private static final Logger log = Logger.getLogger(PatroniFollower.class.getName());

  private final MetaStore store;
  private final AdminOps ops;
  private final Supplier<DirectorySnapshot> snapshots;
  private final ScheduledExecutorService executor;
  private final Duration interval;
  private final Duration timeout;
  private final ServerMetrics metrics;
  /** Followed clusters by key prefix; touched on {@link #executor} only. */
  private final Map<String, Followed> followed = new HashMap<>();
  private final Map<String, String> lastProblem = new HashMap<>();
  private volatile boolean closed;

  /** One cluster's keys as last read and watched. */
  private final class Followed {
    final String prefix;
    final TreeMap<String, KeyValue> keys = new TreeMap<>();
    long revision;
    Watch watch;
    boolean reload;

    Followed(String prefix) {
      this.prefix = prefix;
    }
  }

  public PatroniFollower(MetaStore store, AdminOps ops, Supplier<DirectorySnapshot> snapshots,
      ScheduledExecutorService executor, Duration interval, Duration timeout, ServerMetrics metrics) {
    this.store = store;
    this.ops = ops;
    this.snapshots = snapshots;
    this.executor = executor;
    this.interval = interval;
    this.timeout = timeout;
    this.metrics = metrics;
  }

  public void start() {
    executor.scheduleWithFixedDelay(this::reconcile, 0, interval.toMillis(), TimeUnit.MILLISECONDS);
  }

  private void reconcile() {
    if (closed) {
      return;
    }
    try {
      DirectorySnapshot snap = snapshots.get();
      Map<String, Boolean> wanted = new HashMap<>();
      for (Shard s : snap.shards().values()) {
        if (s.hasPatroni()) {
          wanted.put(PatroniView.prefix(s.getPatroni()), Boolean.TRUE);
        }
      }
      followed.values().removeIf(f -> {
        if (wanted.containsKey(f.prefix)) {
          return false;
        }
        f.watch.close();
        log.info("no shard follows Patroni cluster " + f.prefix + " any more; stopped watching it");
        return true;
      });
      for (String prefix : wanted.keySet()) {
        Followed f = followed.get(prefix);
        if (f == null || f.reload) {
          if (f != null) {
            f.watch.close();
            followed.remove(prefix);
          }
          if (!load(prefix)) {
            continue;
          }
        }
        evaluate(followed.get(prefix));
      }
      metrics.patroniFollowed(followed.size());
    } catch (RuntimeException e) {
      problem("*", "following Patroni clusters failed: " + e);
    }
  }

  /** Reads the cluster's keys and watches from there; false (retried next round) when etcd does not answer. */
  private boolean load(String prefix) {
    RangeResult rr;
    try {
      rr = store.getPrefix(prefix).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      problem(prefix, "reading Patroni's keys under " + prefix + " failed (" + e + "); retried every "
          + interval.toMillis() + " ms");
      return false;
    }
    Followed f = new Followed(prefix);
    rr.kvs().forEach(kv -> f.keys.put(kv.key(), kv));
    f.revision = rr.revision();
    f.watch = store.watch(prefix, rr.revision(), new WatchListener() {
      @Override
      public void onBatch(long revision, List<WatchEvent> events) {
        executor.execute(() -> apply(f, revision, events));
      }

      @Override
      public void onCompacted(long compactRevision) {
        executor.execute(() -> f.reload = true);
      }
    });
    followed.put(prefix, f);
    log.info("following Patroni cluster " + prefix + " from revision " + rr.revision() + " ("
        + rr.kvs().size() + " keys)");
    return true;
  }

  private void apply(Followed f, long revision, List<WatchEvent> events) {
    if (closed || followed.get(f.prefix) != f) {
      return;
    }
    for (WatchEvent e : events) {
      if (e.type() == WatchEvent.Type.PUT) {
        f.keys.put(e.kv().key(), e.kv());
      } else {
        f.keys.remove(e.kv().key());
      }
    }
    f.revision = revision;
    try {
      evaluate(f);
    } catch (RuntimeException e) {
      problem(f.prefix, "following " + f.prefix + " failed: " + e);
    }
  }

  /** Writes the endpoints the cluster's keys show to every shard that follows it and shows other ones. */
  private void evaluate(Followed f) {
    PatroniView view = PatroniView.parse(f.prefix, f.keys.values(), f.revision);
    for (Shard s : snapshots.get().shards().values()) {
      if (!s.hasPatroni() || !PatroniView.prefix(s.getPatroni()).equals(f.prefix)
          || s.getPatroni().getObservedRevision() >= view.revision()) {
        continue;
      }
      PatroniView.Endpoints e = view.endpoints(s.getPatroni().getDatabase());
      if (e == null) {
        problem(s.getName(), "shard '" + s.getName() + "': Patroni cluster " + f.prefix + " shows no primary to "
            + "route to (" + view.whyNoPrimary() + "); the map keeps " + describe(s) + " until one runs");
        continue;
      }
      if (s.getPrimary().equals(e.primary()) && s.getReplicasList().equals(e.replicas())) {
        continue;
      }
      try {
        Shard written = ops.followPatroni(s.getName(), view);
        boolean newPrimary = written.getPrimaryTerm() != s.getPrimaryTerm();
        metrics.patroniChange(s.getName(), newPrimary ? "primary" : "replicas");
        lastProblem.remove(s.getName());
        if (newPrimary) {
          log.warning("shard '" + s.getName() + "': Patroni cluster " + f.prefix + " has a new primary, "
              + e.leader() + " at " + endpoint(written) + " (was " + endpoint(s) + "); primary term "
              + written.getPrimaryTerm() + ", written at revision " + written.getRevision() + " from Patroni's keys at "
              + view.revision());
        } else {
          log.info("shard '" + s.getName() + "': replicas now " + written.getReplicasCount() + " ("
              + view.prefix() + " at revision " + view.revision() + "), written at revision " + written.getRevision());
        }
      } catch (AdminOps.Superseded x) {
        log.log(Level.FINE, "shard ''{0}'': nothing to write: {1}", new Object[] {s.getName(), x.getMessage()});
      } catch (ShardmapException x) {
        problem(s.getName(), "shard '" + s.getName() + "': writing the endpoints Patroni shows failed (" + x.getMessage()
            + "); retried every " + interval.toMillis() + " ms");
      }
    }
  }

  /** Logs a problem once until it changes or clears. */
  private void problem(String subject, String message) {
    if (!message.equals(lastProblem.put(subject, message))) {
      log.warning(message);
    }
  }

  private static String describe(Shard s) {
    return "primary " + endpoint(s) + " (term " + s.getPrimaryTerm() + ")";
  }

  private static String endpoint(Shard s) {
    return s.getPrimary().getHost() + ":" + s.getPrimary().getPort() + "/" + s.getPrimary().getDatabase();
  }

  @Override
  public void close() {
    closed = true;
    try {
      executor.execute(this::stopWatching);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      stopWatching(); // closed twice, or after the executor: no other thread touches the map any more
    }
  }

  private void stopWatching() {
    followed.values().forEach(f -> f.watch.close());
    followed.clear();
  }
}
