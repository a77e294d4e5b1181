package io.shardmap.server.internal;

import io.shardmap.catalog.LeasedSingleton;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.core.Backoff;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.InDoubt;
import io.shardmap.core.sql.PreparedTransactions;
import io.shardmap.core.sql.PreparedTransactions.Outcome;
import io.shardmap.core.sql.ShardJdbc;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Shard;
import io.shardmap.store.MetaStore;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Finishes the cross-shard transactions their coordinators left in doubt (docs/transactions.md,
 * "Resolution without anyone"). Every directory server runs one; only the holder of {@code
 * {root}/txn-resolver} ({@link io.shardmap.catalog.LeasedSingleton}) scans. Every interval, on every registered shard's primary:
 *
 * <ol>
 *   <li>installs the decision table the first time it sees the shard ({@link DecisionRows#ddl}; a failure is
 *       logged once, naming the shard and the statement, and retried with backoff);
 *   <li>reads up to {@value #GC_BATCH} decision rows per shard: the garbage-collection candidates, read
 *       <em>before</em> the prepared transactions are listed;
 *   <li>lists this cluster's prepared transactions on every shard and reads their decisions on their deciders
 *       ({@link InDoubt#scan}, the scan {@code shardmapctl txn list} prints), and does what {@link
 *       InDoubt#action} says: COMMIT PREPARED, ROLLBACK PREPARED, or, once undecided for the abort timeout,
 *       {@link DecisionRows#decideAbort} on the decider and then whatever decision stands (none yet: the
 *       coordinator is still deciding, next scan);
 *   <li>deletes each candidate whose gid was prepared on no shard in that listing, provided every shard that
 *       could hold it was listed: a COMMIT row's participants, or every shard for an ABORT row (which does
 *       not name them). A COMMIT row is written only after all its participants prepared, so a participant
 *       not listed as prepared after the row was read has finished; an ABORT row is deleted through {@link
 *       DecisionRows#forgetAll}'s guard. No clock of two servers is ever compared.
 * </ol>
 *
 * Only gids that parse as a {@link TxnId} of this cluster's namespace are ever touched. A gid whose decider is
 * not registered or cannot be read is left, counted ({@code shardmap.txn.decider_unavailable}) and logged once.
 * Every step is idempotent and every decision create-if-absent, so two servers both resolving (for the moment
 * a cut-off holder has not noticed yet) stay correct.
 *
 * <p>One thread (the injected executor's task) runs everything; connections are held per shard across scans
 * and reopened after a failure.
 */
public final class TxnResolver implements AutoCloseable {
  private static final Logger log = Logger.getLogger(TxnResolver.class.getName());

  /** Decision rows read per shard and scan for garbage collection. */
  static final int GC_BATCH = 1000;
  /** How long {@link DecisionRows#decideAbort} waits for a coordinator still inserting its COMMIT. */
  static final Duration DECIDE_LOCK_TIMEOUT = Duration.ofSeconds(1);
  private static final Backoff INSTALL_RETRY = Backoff.exponential(Duration.ofSeconds(1), Duration.ofMinutes(1));
  /** SQLSTATE object_not_in_prerequisite_state: the prepared transaction is being finished by another session. */
  private static final String BUSY = "55000";

  /** What the resolver needs beyond the server's own settings. */
  public record Settings(String namespace, String dbUser, String dbPassword, Duration interval,
                         Duration abortAfter, Duration leaseTtl) {
    public Settings {
      TxnId.requireNamespace(namespace);
    }
  }

  /** Opens a connection to one shard endpoint (the default: PostgreSQL JDBC with bounded timeouts). */
  @FunctionalInterface
  public interface Connector {
    Connection open(Endpoint endpoint) throws SQLException;
  }

  private final Settings settings;
  private final Supplier<DirectorySnapshot> snapshots;
  private final ScheduledExecutorService executor;
  private final LongSupplier nanoTime;
  private final ServerMetrics metrics;
  private final Connector connector;
  private final LeasedSingleton lease;
  private final Map<String, Link> links = new HashMap<>();
  /** Problems logged once, by "shard|step" (or "decider|shard"), until they clear. */
  private final Map<String, String> problems = new HashMap<>();
  private ScheduledFuture<?> task;
  private volatile boolean closed;

  public TxnResolver(Settings settings, MetaStore store, String resolverKey, String serverId,
                     Duration requestTimeout, Supplier<DirectorySnapshot> snapshots,
                     ScheduledExecutorService executor, LongSupplier nanoTime, ServerMetrics metrics,
                     Connector connector) {
    this.settings = settings;
    this.snapshots = snapshots;
    this.executor = executor;
    this.nanoTime = nanoTime;
    this.metrics = metrics;
    this.connector = connector != null ? connector : jdbc(settings);
    this.lease = new LeasedSingleton(new MeteredMetaStore(store, metrics::etcdRequest, nanoTime), resolverKey, serverId,
        settings.leaseTtl(), requestTimeout, nanoTime, "txn_resolver");
  }

  /** Connections to the shards' primaries as {@code settings.dbUser()}, named {@code shardmap-resolver}. */
  static Connector jdbc(Settings settings) {
    return e -> {
      Properties p = new Properties();
      p.setProperty("user", settings.dbUser());
      if (settings.dbPassword() != null) {
        p.setProperty("password", settings.dbPassword());
      }
      p.setProperty("ApplicationName", "shardmap-resolver");
      // Bounded, so an unreachable shard delays a scan by seconds, not forever.
      p.setProperty("connectTimeout", "2");
      p.setProperty("loginTimeout", "5");
      p.setProperty("socketTimeout", "15");
      p.setProperty("tcpKeepAlive", "true");
      return DriverManager.getConnection(ShardJdbc.url(e), p);
    };
  }

  /** Starts scanning every interval on the executor. */
  public synchronized void start() {
    long ms = Math.max(1, settings.interval().toMillis());
    task = executor.scheduleWithFixedDelay(this::tick, 0, ms, TimeUnit.MILLISECONDS);
    log.info("transaction resolver started for namespace '" + settings.namespace() + "' as role '"
        + settings.dbUser() + "': it scans every " + ms + " ms while this server holds the resolver role, aborts "
        + "undecided transactions prepared " + settings.abortAfter().toMillis() + " ms ago");
  }

  /** One run: take or keep the role, and scan if held. The executor's task; tests call it directly. */
  void tick() {
    if (closed) {
      return;
    }
    try {
      boolean leader = lease.check();
      metrics.txnResolverLeader(leader);
      if (!leader) {
        closeLinks();
        metrics.txnScan(0, 0, 0);
        return;
      }
      resolveOnce();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      // A bug must not end the scheduled task (an exception would cancel it silently).
      log.log(Level.SEVERE, "transaction resolver failed", e);
    }
  }

  private void resolveOnce() {
    Map<String, Shard> shards = new TreeMap<>(snapshots.get().shards());
    // Shards gone from the map, or whose primary moved, get a new connection (or none).
    for (Iterator<Map.Entry<String, Link>> it = links.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<String, Link> e = it.next();
      Shard s = shards.get(e.getKey());
      if (s == null || !s.getPrimary().equals(e.getValue().endpoint)) {
        e.getValue().close();
        it.remove();
      }
    }
    Set<String> failed = new HashSet<>();
    Map<String, List<DecisionRows.Row>> candidates = new LinkedHashMap<>();
    for (Map.Entry<String, Shard> e : shards.entrySet()) {
      String name = e.getKey();
      Link link = links.computeIfAbsent(name, n -> new Link(n, e.getValue().getPrimary()));
      Connection c;
      try {
        c = link.connection();
      } catch (SQLException ex) {
        fail(name, "connect", ex, failed);
        continue;
      }
      if (!install(link, c, failed)) {
        continue;
      }
      try {
        candidates.put(name, DecisionRows.rows(c, settings.namespace(), GC_BATCH));
      } catch (SQLException ex) {
        fail(name, "gc", ex, failed);
      }
    }
    InDoubt.Scan scan = InDoubt.scan(shards.keySet(), this::connection, settings.namespace());
    for (InDoubt.Failure f : scan.failures()) {
      fail(f.shard(), f.step(), f.error(), failed);
    }
    int unavailable = 0;
    for (InDoubt.Entry e : scan.entries()) {
      if (e.state() == InDoubt.State.DECIDER_UNAVAILABLE) {
        unavailable++;
      }
    }
    metrics.txnScan(scan.entries().size(), scan.oldest().map(d -> d.toNanos() / 1000).orElse(0L), unavailable);
    Set<String> deciderProblems = new HashSet<>();
    for (InDoubt.Entry e : scan.entries()) {
      act(e, failed, deciderProblems);
    }
    collect(candidates, scan, shards.keySet(), failed);
    clearProblems(failed, deciderProblems);
  }

  private void act(InDoubt.Entry e, Set<String> failed, Set<String> deciderProblems) {
    InDoubt.Action action = InDoubt.action(e.state(), e.prepared().age(), settings.abortAfter());
    switch (action) {
      case WAIT -> { }
      case LEAVE -> {
        String decider = e.id().decider();
        deciderProblems.add(decider);
        once("decider|" + decider, "in-doubt transactions whose decider is " + decider + " are left as they are ("
            + e.deciderProblem() + "), first " + e.id() + " prepared on " + e.shard()
            + "; they are finished once it can be read (shardmap.txn.decider_unavailable counts them)");
      }
      case COMMIT_PREPARED, ROLLBACK_PREPARED -> finish(e, action, failed, "decision on " + e.id().decider());
      case DECIDE_ABORT -> {
        String decider = e.id().decider();
        Optional<Decision> d;
        try {
          d = DecisionRows.decideAbort(connection(decider), e.id(), DECIDE_LOCK_TIMEOUT);
        } catch (SQLException | RuntimeException ex) {
          fail(decider, "decide", ex, failed);
          return;
        }
        if (d.isEmpty()) {
          log.fine(e.id() + " is still being decided on " + decider + " (its coordinator's COMMIT is not "
              + "committed yet); asked again next scan");
          return;
        }
        finish(e, InDoubt.actionOn(d.get()), failed, "undecided " + e.prepared().age().toMillis() + " ms after its "
            + "prepare; decided " + d.get() + " on " + decider);
      }
      default -> throw new IllegalStateException("unknown action " + action);
    }
  }

  private void finish(InDoubt.Entry e, InDoubt.Action action, Set<String> failed, String why) {
    boolean commit = action == InDoubt.Action.COMMIT_PREPARED;
    try {
      Connection c = connection(e.shard());
      Outcome o = commit ? PreparedTransactions.commitPrepared(c, e.id()) : PreparedTransactions.rollbackPrepared(c, e.id());
      if (o == Outcome.DONE) {
        metrics.txnResolution(commit);
        log.info((commit ? "committed " : "rolled back ") + "prepared transaction " + e.id() + " on " + e.shard()
            + " (" + why + ")");
      }
    } catch (SQLException ex) {
      if (BUSY.equals(ex.getSQLState())) {
        return; // its coordinator is finishing it right now
      }
      fail(e.shard(), "finish", ex, failed);
    } catch (RuntimeException ex) {
      fail(e.shard(), "finish", ex, failed);
    }
  }

  /** Step 4: deletes the candidates no listed shard holds prepared (see the class comment). */
  private void collect(Map<String, List<DecisionRows.Row>> candidates, InDoubt.Scan scan, Set<String> shards,
                       Set<String> failed) {
    Set<TxnId> prepared = scan.preparedIds();
    boolean everyShardListed = scan.listed().containsAll(shards);
    for (Map.Entry<String, List<DecisionRows.Row>> e : candidates.entrySet()) {
      List<TxnId> done = new ArrayList<>();
      for (DecisionRows.Row r : e.getValue()) {
        boolean listed = r.decision() == Decision.COMMIT ? scan.listed().containsAll(r.participants()) : everyShardListed;
        if (listed && !prepared.contains(r.id())) {
          done.add(r.id());
        }
      }
      if (done.isEmpty()) {
        continue;
      }
      try {
        int n = DecisionRows.forgetAll(connection(e.getKey()), done);
        metrics.txnDecisionsForgotten(n);
      } catch (SQLException | RuntimeException ex) {
        fail(e.getKey(), "gc", ex, failed);
      }
    }
  }

  /** Step 1: whether the decision table is there, installing it when due. */
  private boolean install(Link link, Connection c, Set<String> failed) {
    if (link.installed) {
      return true;
    }
    long now = nanoTime.getAsLong();
    if (link.installAttempts.retries() > 0 && now - link.nextInstallNanos < 0) {
      failed.add(link.shard); // still failing: not retried yet
      return false;
    }
    String statement = null;
    try {
      if (!DecisionRows.installed(c)) {
        statement = String.join("; ", DecisionRows.ddl());
        DecisionRows.install(c);
        log.info("installed shardmap.txn_decisions on shard " + link.shard);
      }
      link.installed = true;
      link.installAttempts.reset();
      return true;
    } catch (SQLException ex) {
      link.nextInstallNanos = now + link.installAttempts.nextPauseNanos();
      failed.add(link.shard);
      once(link.shard + "|install", "cannot install the decision table on shard " + link.shard + ": "
          + (statement == null ? "checking for it" : "'" + statement + "'") + " failed as role '" + settings.dbUser()
          + "' (" + ex.getMessage() + "). Run DecisionRows' DDL there as a role that may create schema shardmap "
          + "(see docs/transactions.md); retried with backoff up to every "
          + INSTALL_RETRY.max().toSeconds() + " s; until then its transactions cannot be aborted nor its decision "
          + "rows collected");
      metrics.txnResolverFailure(link.shard, "install"); // after the log line, which a reader of it may await
      if (isConnectionLost(ex)) {
        link.close();
      }
      return false;
    }
  }

  private Connection connection(String shard) throws SQLException {
    Link link = links.get(shard);
    if (link == null) {
      throw new SQLException("shard " + shard + " is not registered", "08000");
    }
    return link.connection();
  }

  private void fail(String shard, String step, Exception ex, Set<String> failed) {
    failed.add(shard);
    once(shard + "|" + step, "transaction resolver: step '" + step + "' failed on shard " + shard + " ("
        + ex.getMessage() + "); retried every scan, logged once until it succeeds");
    metrics.txnResolverFailure(shard, step);
    // Anything but a refused statement may have left the session unusable: reconnect next time.
    if (!(ex instanceof SQLException s) || isConnectionLost(s) || s.getSQLState() == null) {
      Link link = links.get(shard);
      if (link != null) {
        link.close();
      }
    }
  }

  private static boolean isConnectionLost(SQLException e) {
    return e.getSQLState() != null && e.getSQLState().startsWith("08");
  }

  private void once(String key, String message) {
    if (problems.putIfAbsent(key, message) == null) {
      log.warning(message);
    }
  }

  /** Logs the end of each problem of a shard that had no failure in this scan. */
  private void clearProblems(Set<String> failed, Set<String> deciderProblems) {
    for (Iterator<Map.Entry<String, String>> it = problems.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<String, String> p = it.next();
      String[] parts = p.getKey().split("\\|", 2);
      boolean ongoing = parts[0].equals("decider") ? deciderProblems.contains(parts[1]) : failed.contains(parts[0]);
      if (!ongoing) {
        it.remove();
        log.info("transaction resolver: resolved: " + p.getValue());
      }
    }
  }

  private void closeLinks() {
    for (Link l : links.values()) {
      l.close();
    }
    links.clear();
  }

  /**
   * Stops scanning, gives the role up (another server takes it at its next scan) and closes the connections.
   * Waits for a scan in progress, bounded by its statement timeouts.
   */
  @Override
  public void close() {
    closed = true;
    ScheduledFuture<?> t;
    synchronized (this) {
      t = task;
    }
    if (t != null) {
      t.cancel(false);
    }
    // Runs on the executor, after a scan in progress: the lease and the connections are the task's.
    try {
      executor.submit(() -> {
        lease.release();
        closeLinks();
      }).get(20, TimeUnit.SECONDS);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      log.warning("stopping the transaction resolver: " + e);
    }
    metrics.txnResolverLeader(false);
    metrics.txnScan(0, 0, 0);
  }

  /** The connection to one shard's primary, opened on first use. */
  private final class Link {
    final String shard;
    final Endpoint endpoint;
    final Backoff.Attempts installAttempts = INSTALL_RETRY.start();
    long nextInstallNanos;
    boolean installed;
    Connection connection;

    Link(String shard, Endpoint endpoint) {
      this.shard = shard;
      this.endpoint = endpoint;
    }

    Connection connection() throws SQLException {
      if (connection == null) {
        connection = connector.open(endpoint);
        connection.setAutoCommit(true);
      }
      return connection;
    }

    void close() {
      Connection c = connection;
      connection = null;
      if (c != null) {
        try {
          c.close();
        } catch (SQLException e) {
          // A connection that failed closing holds nothing the next one needs.
        }
      }
    }
  }
}
