package io.shardmap.client.internal;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.client.ClientOptions;
import io.shardmap.core.Backoff;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.strategy.Strategies;
import io.shardmap.core.strategy.StrategyKind;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.GetMapRequest;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.ListShardsResponse;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.WatchRequest;
import io.shardmap.proto.v1.WatchResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Keeps the client's copy of the maps: a full read, then the directory's watch stream applied in
 * revision order with the same core code the server uses. One thread does all of it, so views are
 * published in order; lookups read the one volatile {@link ClientView} (map, lazy caches, applied revision)
 * and never wait. What each watch message or full read does to the view is decided by {@link ChangeRouter},
 * a pure step tested without a server; this class runs the streams, the failover and the backoff
 * ({@link Backoff}) around it.
 *
 * <p>Consistency of the first read: the shard list is read first (revision R0), then each keyspace
 * (revision Rk ≥ R0). The watch starts after R0; a change of keyspace k at a revision ≤ Rk is already in
 * its map and is skipped, so no keyspace ever sees changes applied out of order.
 *
 * <p>Directory keyspaces with more entries than {@link ClientOptions#directoryCacheSize()} are held
 * lazily: the snapshot keeps their spec and fallback only (a layout-only map that refuses to route), and a
 * {@link LazyDirectory} caches per-key answers. Their entry changes go to that cache instead of the
 * snapshot, before the snapshot of the same revision is published.
 *
 * <p>Faults: any stream or RPC failure moves to the next directory server after a jittered exponential
 * backoff, resuming from the last applied revision; {@code resync_required} triggers a full re-read (which
 * also drops the lazy caches); a stream silent for longer than the idle limit (the server sends heartbeats)
 * is abandoned as dead. Every failover and every re-read is logged with the targets and revisions.
 *
 * <p>The map never goes back in time, with one exception. A re-read from a server behind the client's map
 * is not installed; the client watches that server from its own revision instead (a lagging server
 * accepts it once etcd confirms the revision exists). Only a refusal of that watch with OUT_OF_RANGE
 * (etcd has not reached the client's revision: it was restored from a backup) makes the next re-read
 * accept an older revision, which then also becomes the applied revision reported to the directory.
 */
public final class MapFollower implements AutoCloseable {
  private static final Logger log = Logger.getLogger(MapFollower.class.getName());

  private final ClientOptions options;
  private final Counters stats;
  private final LongSupplier nanoTime;
  private final List<ManagedChannel> channels = new ArrayList<>();
  private final List<SnapshotListener> listeners = new CopyOnWriteArrayList<>();
  private final CountDownLatch firstLoad = new CountDownLatch(1);
  private final Thread worker;
  private final long idleLimitNanos;
  private final DirectoryRpc rpc;
  private final AppliedReporter reporter;

  /** The map, its lazy caches and the applied revision: one immutable view, written by the follower thread. */
  private volatile ClientView view = ClientView.EMPTY;
  private final ChangeRouter router;
  private final Backoff backoff;
  /** Local time at which a directory server last vouched that the map was current. */
  private volatile long confirmedAtNanos;
  private volatile boolean closed;
  private volatile Context.CancellableContext streamContext;
  private volatile long lastMessageNanos;
  /** The directory server the follower uses now; single-key RPCs start there. */
  private volatile int target;
  /**
   * Newest snapshot revision a directory server reported: telemetry of the servers, not part of the view
   * (only the watch lag compares it with the view's applied revision).
   */
  private volatile long serverRevision;

  private final AtomicLong reconnects = new AtomicLong();
  private final AtomicLong resyncs = new AtomicLong();
  private final AtomicLong failovers = new AtomicLong();

  public MapFollower(ClientOptions options, String clientId, Counters stats, LongSupplier nanoTime) {
    this(options, clientId, stats, nanoTime, null);
  }

  /** As above, the presence reports carrying the load of {@code load} (null: load accounting off). */
  public MapFollower(ClientOptions options, String clientId, Counters stats, LongSupplier nanoTime,
                     io.shardmap.client.internal.load.LoadMeter load) {
    this.options = options;
    this.stats = stats;
    this.nanoTime = nanoTime;
    // Servers send heartbeats on idle streams; several missed in a row means the server or path is dead.
    this.idleLimitNanos = options.watchIdleTimeout().toNanos();
    for (String t : options.targets()) {
      // Map pages of big keyspaces may exceed gRPC's default 4 MiB inbound limit.
      channels.add(options.channelFactory().builderFor(t).maxInboundMessageSize(64 << 20).build());
    }
    this.backoff = Backoff.exponential(options.initialBackoff(), options.maxBackoff());
    this.rpc = new DirectoryRpc(options.targets(), channels, () -> target, options.rpcTimeout().toNanos(), backoff,
        nanoTime);
    this.router = new ChangeRouter(options.directoryCacheSize(), this::newLazy);
    long maxStalenessMs = options.maxStaleness() == null ? 0 : Math.max(1, options.maxStaleness().toMillis());
    this.reporter = new AppliedReporter(clientId, maxStalenessMs, options.reportInterval().toNanos(),
        options.rpcTimeout().toNanos(), options.targets(), channels, () -> target, () -> view.appliedRevision(),
        stats, nanoTime, load);
    this.worker = new Thread(this::run, "shardmap-client-follower");
    this.worker.setDaemon(true);
  }

  public void start() {
    worker.start();
    reporter.start();
  }

  /**
   * The revision the client's map is current to: the map holds every change up to it of the followed
   * keyspaces and the shards (a heartbeat of the watch stream advances it without a change). 0 before the
   * first load. This is what the client reports to the directory server it follows.
   */
  public long appliedRevision() {
    return view.appliedRevision();
  }

  /** Reports {@link #appliedRevision()} to the followed directory server. */
  public AppliedReporter reporter() {
    return reporter;
  }

  /** The view lookups read now. */
  public ClientView view() {
    return view;
  }

  /** Waits for the first full map; false on timeout. */
  public boolean awaitFirstLoad(long timeout, TimeUnit unit) throws InterruptedException {
    return firstLoad.await(timeout, unit);
  }

  /** The current map, or null before the first load. */
  public DirectorySnapshot snapshot() {
    return view.snapshot();
  }

  /** The cache of a lazily held directory keyspace, or null if the keyspace is not held lazily. */
  public LazyDirectory lazy(String keyspace) {
    return view.lazy().get(keyspace);
  }

  /** Single-key questions to the directory servers (lazy misses, remote lookups). */
  public DirectoryRpc rpc() {
    return rpc;
  }

  /** Answers cached over all lazily held directory keyspaces. */
  public long lazyCacheSize() {
    long n = 0;
    for (LazyDirectory d : view.lazy().values()) {
      n += d.size();
    }
    return n;
  }

  /**
   * How many etcd revisions the client's map trails the newest snapshot a directory server reported:
   * 0 when the stream is live, large while it catches up. Revisions, not time: the stream carries no
   * commit timestamps. etcd revisions count changes of every keyspace, so this measures catching up, not
   * how many changes of the followed keyspaces are missing.
   */
  public long watchLagRevisions() {
    return Math.max(0, serverRevision - view.appliedRevision());
  }

  public long ageNanos() {
    return Math.max(0, nanoTime.getAsLong() - confirmedAtNanos);
  }

  public void addListener(SnapshotListener l) {
    listeners.add(l);
  }

  public void removeListener(SnapshotListener l) {
    listeners.remove(l);
  }

  public long reconnects() {
    return reconnects.get();
  }

  public long resyncs() {
    return resyncs.get();
  }

  public long failovers() {
    return failovers.get();
  }

  /** Set after a failure; logged (then cleared) once the next server delivers. */
  private String recovering;

  private void run() {
    int t = 0;
    Backoff.Attempts attempts = backoff.start();
    boolean needLoad = true;
    // Set once a directory server refused to watch from our revision because etcd has not reached it:
    // etcd went back in time (restored from a backup), so the next full read may be older than our map.
    boolean acceptOlder = false;
    // Refusals since the last watch that did not end in one: a server that has not noticed the restore yet
    // can hand out a map from the lost history, refused again at once; back off rather than spin.
    int refusalsInARow = 0;
    String lastFailure = null;
    while (!closed) {
      if (target != t) {
        target = t;
        reporter.advanced();
      }
      ShardMapServiceGrpc.ShardMapServiceBlockingStub stub = ShardMapServiceGrpc.newBlockingStub(channels.get(t));
      try {
        if (needLoad) {
          try {
            load(stub, t, acceptOlder);
            acceptOlder = false;
          } catch (ServerBehind b) {
            // Either the server lags etcd, or etcd itself went back. A watch from our own revision tells
            // which: a lagging server accepts it (etcd has that revision) and streams what follows once it
            // has caught up, so our map stays valid; a server whose etcd never reached it refuses with
            // OUT_OF_RANGE (handled below).
            log.info("shardmap client: directory " + options.targets().get(t) + " " + b.getMessage()
                + "; watching it from our revision instead of re-reading");
          }
          needLoad = false;
        }
        boolean resync = follow(stub, t);
        refusalsInARow = 0;
        if (resync) {
          needLoad = true;
          resyncs.incrementAndGet();
          log.info("shardmap client: directory " + options.targets().get(t) + " asked for a full re-read "
              + "(our revision " + view.snapshot().revision() + " is no longer in its history)");
        }
        attempts.reset();
        lastFailure = null;
      } catch (StatusRuntimeException e) {
        if (closed) {
          break;
        }
        DirectorySnapshot snapshot = view.snapshot();
        if (e.getStatus().getCode() == Status.Code.OUT_OF_RANGE && snapshot != null) {
          // Only a Watch from a revision etcd has not reached is refused so; etcd's revision never goes
          // down unless it was restored from a backup (or the servers now use another cluster). Our map
          // is from a history etcd no longer has: re-read it, even at an older revision.
          resyncs.incrementAndGet();
          log.warning("shardmap client: directory " + options.targets().get(t) + " refused to watch from "
              + "revision " + snapshot.revision() + " (" + e.getStatus().getDescription() + "); etcd went "
              + "back in time, re-reading the maps and accepting an older revision");
          needLoad = true;
          acceptOlder = true;
          if (refusalsInARow++ > 0) {
            sleepNanos(attempts.nextPauseNanos());
          }
          continue;
        }
        refusalsInARow = 0;
        String failure = options.targets().get(t) + " (" + e.getStatus().getCode()
            + (e.getStatus().getDescription() == null ? "" : ": " + e.getStatus().getDescription()) + ")";
        String revision = snapshot == null ? "(none yet)" : Long.toString(snapshot.revision());
        reconnects.incrementAndGet();
        long pause = attempts.nextPauseNanos();
        if (channels.size() > 1) {
          int next = (t + 1) % channels.size();
          failovers.incrementAndGet();
          // Every failover, even a repeated one: it is bounded by the backoff and says where we went.
          log.warning("shardmap client: failing over from directory " + failure + " to "
              + options.targets().get(next) + " in " + TimeUnit.NANOSECONDS.toMillis(pause)
              + " ms; lookups use revision " + revision + " meanwhile");
          recovering = "after failing over from " + options.targets().get(t);
          t = next;
        } else {
          if (!failure.equals(lastFailure)) {
            log.warning("shardmap client: lost directory " + failure + "; retrying it, lookups use revision "
                + revision + " meanwhile");
          }
          recovering = "after losing it";
        }
        lastFailure = failure;
        sleepNanos(pause);
      }
    }
  }

  /** The server's maps are older than the client's; the client keeps its own. */
  private static final class ServerBehind extends RuntimeException {
    ServerBehind(String message) {
      super(message, null, false, false);
    }
  }

  /**
   * A full read: shards at R0, then every followed keyspace at its own revision. A server behind the
   * client's map is refused ({@link ServerBehind}) unless {@code acceptOlder}: a replica that lags etcd
   * (just restarted, or cut off) must not take the client's map back in time, but after etcd went back
   * (a restore) the older map is the only true one.
   */
  private void load(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, int t, boolean acceptOlder) {
    ListShardsResponse shardsResp = stub.withDeadlineAfter(options.rpcTimeout().toNanos(), TimeUnit.NANOSECONDS)
        .listShards(ListShardsRequest.getDefaultInstance());
    ClientView current = view;
    ChangeRouter.LoadDecision decision = ChangeRouter.judgeLoad(current, shardsResp.getRevision(), acceptOlder);
    if (decision == ChangeRouter.LoadDecision.SERVER_BEHIND) {
      throw new ServerBehind("is at revision " + shardsResp.getRevision() + ", behind this client's "
          + current.snapshot().revision());
    }
    Map<String, Shard> shards = new HashMap<>();
    for (Shard s : shardsResp.getShardsList()) {
      shards.put(s.getName(), s);
    }
    Map<String, KeyspaceMap> keyspaces = new HashMap<>();
    Map<String, Long> loadedAt = new HashMap<>();
    Map<String, LazyDirectory> lazies = new HashMap<>();
    for (String ks : options.keyspaces()) {
      try {
        KeyspaceRead read = readKeyspace(stub, ks);
        keyspaces.put(ks, read.map);
        loadedAt.put(ks, read.revision);
        if (read.lazy) {
          lazies.put(ks, newLazy(read.map, read.revision));
        }
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
          throw e;
        }
        // Not created yet: the watch will bring its spec and layout when it is.
      }
    }
    DirectorySnapshot before = current.snapshot();
    DirectorySnapshot loaded = new DirectorySnapshot(shardsResp.getRevision(), keyspaces, shards);
    int droppedCaches = current.lazy().size();
    ClientView next = ChangeRouter.loaded(current, loaded, loadedAt, lazies, decision);
    if (decision == ChangeRouter.LoadDecision.INSTALL_OLDER) {
      // Everything we reported or saw was from the history etcd lost; report the map we hold now.
      serverRevision = loaded.revision();
    }
    publish(before, next, true);
    String lazyNote = lazies.isEmpty() ? "" : "; lazily held directories: " + new TreeSet<>(lazies.keySet());
    if (before == null) {
      log.info("shardmap client: loaded " + keyspaces.size() + " keyspaces from " + options.targets().get(t)
          + " at revision " + loaded.revision() + lazyNote);
    } else {
      log.info("shardmap client: re-read " + keyspaces.size() + " keyspaces from " + options.targets().get(t)
          + ": revision " + before.revision() + " -> " + loaded.revision()
          + (droppedCaches == 0 ? "" : "; dropped " + droppedCaches + " lazy directory caches") + lazyNote);
    }
    if (recovering != null) {
      log.info("shardmap client: following directory " + options.targets().get(t) + " again at revision "
          + loaded.revision() + " " + recovering);
      recovering = null;
    }
    firstLoad.countDown();
  }

  private record KeyspaceRead(KeyspaceMap map, long revision, boolean lazy) {}

  private LazyDirectory newLazy(KeyspaceMap layoutOnly, long revision) {
    return new LazyDirectory(layoutOnly.name(), layoutOnly.keyType(), options.directoryCacheSize(), rpc, stats,
        revision, layoutOnly.directory().fallback(), 2 * options.rpcTimeout().toNanos());
  }

  private GetMapResponse getMap(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, String ks, String token,
                                boolean skipEntries) {
    return stub.withDeadlineAfter(options.rpcTimeout().toNanos(), TimeUnit.NANOSECONDS)
        .getMap(GetMapRequest.newBuilder().setKeyspace(ks).setPageToken(token).setSkipEntries(skipEntries).build());
  }

  /**
   * Reads one keyspace. The first request skips directory entries: it tells the strategy and the entry
   * count, so a big directory is never transferred, and for other strategies it is simply the first page.
   */
  private KeyspaceRead readKeyspace(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, String ks) {
    GetMapResponse page = getMap(stub, ks, "", true);
    // Null for a strategy this SDK does not know (a newer server): the map is then held without a layout,
    // which KeyspaceMap reports as broken rather than routing by guesswork.
    StrategyKind kind = Strategies.find(page.getSpec().getStrategy());
    if (kind != null && kind.loadsLazily()) {
      if (page.getEntryCount() > options.directoryCacheSize()) {
        confirm(page.getFreshness());
        MapChange.Builder layoutOnly = layout(ks);
        kind.copyLayout(page, layoutOnly);
        KeyspaceMap map = KeyspaceMap.withoutLayout(page.getSpec(), page.getRevision())
            .apply(page.getRevision(), List.of(layoutOnly.build()));
        return new KeyspaceRead(map.broken() == null ? map.withoutDirectoryEntries() : map, page.getRevision(),
            map.broken() == null);
      }
      // Small enough to hold whole: read it again with its entries. (A server that predates skip_entries
      // reports no count and lands here too, which is the old behaviour.)
      page = null;
    }
    List<MapChange> changes = new ArrayList<>();
    String token = "";
    GetMapResponse first = null;
    do {
      if (page == null) {
        page = getMap(stub, ks, token, false);
      }
      if (first == null) {
        first = page;
        confirm(page.getFreshness());
        MapChange.Builder layoutRecord = layout(ks);
        if (kind != null && kind.copyLayout(page, layoutRecord)) {
          changes.add(layoutRecord.build());
        }
      }
      for (RangeAssignment r : page.getRangesList()) {
        changes.add(layout(ks).setRange(r).build());
      }
      for (DirectoryEntry e : page.getEntriesList()) {
        changes.add(layout(ks).setEntry(e).build());
      }
      token = page.getNextPageToken();
      page = null;
    } while (!token.isEmpty());
    KeyspaceMap map = KeyspaceMap.withoutLayout(first.getSpec(), first.getRevision())
        .apply(first.getRevision(), changes);
    return new KeyspaceRead(map, first.getRevision(), false);
  }

  private static MapChange.Builder layout(String ks) {
    return MapChange.newBuilder().setKeyspace(ks);
  }

  /** Follows the watch stream; returns true when the server asks for a full re-read. */
  private boolean follow(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, int t) {
    Context.CancellableContext ctx = Context.current().withCancellation();
    streamContext = ctx;
    lastMessageNanos = nanoTime.getAsLong();
    Thread watchdog = new Thread(() -> {
      while (!ctx.isCancelled()) {
        if (nanoTime.getAsLong() - lastMessageNanos > idleLimitNanos) {
          ctx.cancel(Status.UNAVAILABLE.withDescription("no message from the directory for "
              + TimeUnit.NANOSECONDS.toMillis(idleLimitNanos) + " ms (watchIdleTimeout)").asRuntimeException());
          return;
        }
        sleepNanos(Math.min(TimeUnit.MILLISECONDS.toNanos(200), idleLimitNanos / 4));
      }
    }, "shardmap-client-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    try {
      return ctx.call(() -> {
        Iterator<WatchResponse> it = stub.watch(WatchRequest.newBuilder()
            .addAllKeyspaces(options.keyspaces()).setAfterRevision(view.snapshot().revision()).build());
        while (it.hasNext()) {
          WatchResponse r = it.next();
          lastMessageNanos = nanoTime.getAsLong();
          confirm(r.getFreshness());
          if (recovering != null) {
            log.info("shardmap client: following directory " + options.targets().get(t) + " again from "
                + "revision " + view.snapshot().revision() + " " + recovering);
            recovering = null;
          }
          if (apply(r)) {
            return true;
          }
          serverRevision = Math.max(serverRevision, r.getFreshness().getRevision());
        }
        throw Status.UNAVAILABLE.withDescription("the directory ended the watch stream").asRuntimeException();
      });
    } catch (StatusRuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw Status.INTERNAL.withDescription("applying a map change failed: " + e).withCause(e)
          .asRuntimeException();
    } finally {
      ctx.cancel(null);
      watchdog.interrupt();
    }
  }

  /**
   * A server's word that its map was current {@code age_millis} ago: only while it reaches etcd (an answer
   * without etcd_quorum, from a server that predates it, proves nothing).
   */
  private void confirm(io.shardmap.proto.v1.Freshness f) {
    if (f.getEtcdQuorum() == io.shardmap.proto.v1.EtcdQuorum.ETCD_QUORUM_REACHABLE) {
      confirmedAtNanos = Math.max(confirmedAtNanos,
          nanoTime.getAsLong() - TimeUnit.MILLISECONDS.toNanos(f.getAgeMillis()));
    }
  }

  /** Applies one watch message; true when the directory asked for a full re-read. */
  private boolean apply(WatchResponse r) {
    ClientView before = view;
    ChangeRouter.Step step = router.step(before, r);
    if (step.resync()) {
      return true;
    }
    // Entry changes go into the caches before the view whose map needs them is published.
    for (Map.Entry<String, List<MapChange>> e : step.lazyChanges().entrySet()) {
      step.view().lazy().get(e.getKey()).apply(step.revision(), e.getValue(),
          step.view().snapshot().keyspaces().get(e.getKey()).directory().fallback());
    }
    for (String ks : step.grown()) {
      log.info("shardmap client: directory keyspace '" + ks + "' grew past directoryCacheSize "
          + options.directoryCacheSize() + " entries at revision " + step.revision()
          + "; its entries are now cached on demand");
    }
    if (step.mapChanged()) {
      publish(before.snapshot(), step.view(), false);
    } else if (step.view() != before) {
      view = step.view();
      reporter.advanced();
    }
    return false;
  }

  /** Publishes a view with a new map, then tells the listeners; only the follower thread calls this. */
  private void publish(DirectorySnapshot before, ClientView next, boolean resync) {
    boolean advanced = next.appliedRevision() != view.appliedRevision();
    view = next;
    if (advanced) {
      reporter.advanced();
    }
    for (SnapshotListener l : listeners) {
      try {
        l.onChange(before, next.snapshot(), resync);
      } catch (RuntimeException e) {
        log.warning("shardmap client: a map listener threw " + e + "; it keeps receiving changes");
      }
    }
  }

  private void sleepNanos(long nanos) {
    try {
      TimeUnit.NANOSECONDS.sleep(nanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    closed = true;
    reporter.close();
    Context.CancellableContext ctx = streamContext;
    if (ctx != null) {
      ctx.cancel(null);
    }
    worker.interrupt();
    for (ManagedChannel c : channels) {
      c.shutdownNow();
    }
    try {
      worker.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
