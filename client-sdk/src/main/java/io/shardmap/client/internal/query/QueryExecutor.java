package io.shardmap.client.internal.query;

import com.zaxxer.hikari.HikariDataSource;
import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.Counters.QueryFailure;
import io.shardmap.client.internal.ShardPools;
import io.shardmap.client.internal.ShardPools.ShardPool;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.ShardStatement;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs cross-shard queries: pins the client's map, picks the target shards, opens every shard's part in
 * parallel (at most the query's parallelism at once) on the shards' query pools, and hands the parts' rows
 * to the plan's merge once every part has started its transaction. See {@link Execution} for the running
 * query and docs/client-sdk.md, "Cross-shard queries", for the guarantees. Thread-safe; one per
 * {@code ShardmapData}.
 */
public final class QueryExecutor implements AutoCloseable {
  /** What one query asks; {@code deadlineNanos} and {@code startNanos} are {@link System#nanoTime()} times. */
  public record Request(String keyspace, QueryPlan plan, String keyColumn, List<Object> params, QueryTarget target,
                        long startNanos, long deadlineNanos, boolean partial, boolean replicas, int fetchSize,
                        long maxInMemoryRows, int parallelism) {}

  private final ShardPools pools;
  private final MapSource maps;
  private final PartGuard guard;
  private final int maxRuns;
  /** The client's counters: queries, reruns and parts are counted where they happen (docs: "Metrics and logs"). */
  final Counters stats;
  private final ExecutorService workers;
  private final ScheduledExecutorService timer;
  final ColumnTypes columnTypes = new ColumnTypes();
  /** Key column type names by shard and table, for BYTES keyspaces (text or bytea). */
  private final Map<String, KeyKind> keyKinds = new ConcurrentHashMap<>();

  /**
   * @param pools the shards' query pools (not the single-key calls' pools)
   * @param maxRuns how many times a query may run when its guard asks for a newer map
   * @param stats the client's counters
   */
  public QueryExecutor(ShardPools pools, MapSource maps, PartGuard guard, int maxRuns, Counters stats) {
    this.pools = pools;
    this.maps = maps;
    this.guard = guard;
    this.maxRuns = maxRuns;
    this.stats = stats;
    AtomicInteger n = new AtomicInteger();
    // Threads only open parts (connect, begin, guard, execute to the first rows); the merge reads on the
    // caller's thread. A query's parallelism bounds how many of these it uses at once.
    this.workers = new ThreadPoolExecutor(0, Integer.MAX_VALUE, 30, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
      Thread t = new Thread(r, "shardmap-query-part-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1, r -> {
      Thread th = new Thread(r, "shardmap-query-deadline");
      th.setDaemon(true);
      return th;
    });
    t.setRemoveOnCancelPolicy(true);
    this.timer = t;
  }

  /**
   * Runs {@code r} at map {@code pinned} (re-run at a newer map when the guard asks) and returns the running
   * query once every part has started; nothing is read from a shard before that.
   *
   * @throws ShardmapException FAILED_PRECONDITION when the map does not cover the keyspace; the failure of
   *     the parts (every failed shard named) in default mode, or of all of them in partial mode;
   *     DEADLINE_EXCEEDED; STALE_EPOCH when the guard's newer map does not come in time
   */
  public Execution run(Request r, DirectorySnapshot pinned) {
    // Counted here when thrown; once returned, the Execution counts how the query ends.
    QueryFailure[] where = {QueryFailure.OTHER};
    try {
      return runAttempts(r, pinned, where);
    } catch (RuntimeException | Error e) {
      stats.queryFailed(QueryFailure.of(e, where[0]), System.nanoTime() - r.startNanos());
      throw e;
    }
  }

  /** {@link #run}; sets {@code where[0]} to SHARD when the parts' failure is thrown. */
  private Execution runAttempts(Request r, DirectorySnapshot pinned, QueryFailure[] where) {
    DirectorySnapshot snap = pinned;
    for (int run = 1; ; run++) {
      KeyspaceMap km = snap.keyspace(r.keyspace());
      Targets.checkCovers(km, snap);
      List<Targets.ShardTarget> targets = Targets.select(km, r.target());
      Attempt a = new Attempt(r, snap, km, targets);
      a.launch();
      a.awaitSettled();
      PartGuard.Rerun rerun = a.rerun();
      if (rerun != null) {
        a.abort("the query runs again at a newer map");
        if (run >= maxRuns) {
          throw new ShardmapException(ErrorCode.STALE_EPOCH, "cross-shard query on keyspace '" + r.keyspace()
              + "' gave up after " + run + " runs: " + rerun.reason());
        }
        DirectorySnapshot next;
        try {
          next = maps.await(r.keyspace(), rerun.passedBy(), r.deadlineNanos());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while waiting for a newer map", e);
        }
        if (next == null) {
          throw new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "cross-shard query on keyspace '" + r.keyspace()
              + "' passed its deadline waiting for a map newer than revision " + snap.revision() + ": "
              + rerun.reason());
        }
        snap = next;
        stats.queryRerun();
        continue;
      }
      return a.finish(where);
    }
  }

  /** {@code send}'s answer for a part cancelled before it was sent. */
  private static final PartGuard.Rerun STOPPED = new PartGuard.Rerun("stopped", m -> false);

  /**
   * The start of a part's round trip: its transaction (REPEATABLE READ, READ ONLY) and its timeouts, as
   * utility statements (no plan, no snapshot: the first query takes it). A bounded part begins its own
   * transaction here and ends it in the same round trip; a streamed one runs after PgJDBC's BEGIN (autocommit
   * off, for the cursor), and also gets the idle timeout, which ends the session on the server if its result
   * is left unread and unclosed. The timeouts are whole seconds rounded up from the time left before the
   * deadline, so the text stays the same from run to run (PgJDBC prepares it on the server after a few runs)
   * and PostgreSQL stops the statement at most a second after the executor's own timer has cancelled it.
   */
  static String begin(boolean whole, long msLeft) {
    long s = (msLeft + 999) / 1000;
    return whole
        ? "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = '" + s + "s'"
        : "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = '" + s
            + "s'; SET LOCAL idle_in_transaction_session_timeout = '" + (s + 1) + "s'";
  }

  /**
   * Moves {@code s} on to its next result set (past the update counts of BEGIN and SET). {@code isRows} is
   * what the last execute or getMoreResults returned.
   */
  private static ResultSet resultSet(Statement s, boolean isRows, String shard) throws SQLException {
    while (!isRows) {
      if (s.getUpdateCount() == -1) {
        throw new IllegalStateException("shard '" + shard + "': the part's round trip returned fewer results "
            + "than the statements it sent");
      }
      isRows = s.getMoreResults();
    }
    return s.getResultSet();
  }

  /** The pool a part takes its connection from: a random replica (else the next, else the primary) or the primary. */
  private Connection connect(Part p, boolean replicas, DirectorySnapshot map, long deadline) throws SQLException {
    ShardPool pool = pools.get(p.shard, map);
    if (pool == null) {
      throw ShardmapException.precondition("shard '" + p.shard + "' is not registered at revision " + map.revision());
    }
    if (replicas && pool.replicas().length > 0) {
      HikariDataSource[] rs = pool.replicas();
      int first = rs.length == 1 ? 0 : ThreadLocalRandom.current().nextInt(rs.length);
      for (int i = 0; i < rs.length; i++) {
        try {
          return p.connect(rs[(first + i) % rs.length], deadline) ? p.connection() : null;
        } catch (SQLException e) {
          // this replica gave no connection within replicaConnectionTimeout: the next one, then the primary
        }
      }
    }
    return p.connect(pool.primary(), deadline) ? p.connection() : null;
  }

  /** The kind of the key column of {@code table} on the part's shard (BYTES keyspaces: text or bytea). */
  private KeyKind keyKind(Connection c, KeyspaceMap km, String shard, String table, String column)
      throws SQLException {
    if (km.keyType() == KeyType.KEY_TYPE_INT64) {
      return KeyKind.INT64;
    }
    String key = shard + '\0' + table + '\0' + column;
    KeyKind k = keyKinds.get(key);
    if (k != null) {
      return k;
    }
    try (PreparedStatement ps = c.prepareStatement("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        + "WHERE a.attrelid = to_regclass(?) AND a.attname = ? AND a.attnum > 0 AND NOT a.attisdropped")) {
      ps.setString(1, table);
      ps.setString(2, column);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          throw ShardmapException.precondition("shard '" + shard + "' has no column " + column + " in table "
              + table + " (the key column the keyspace's spec names)");
        }
        String type = rs.getString(1);
        k = KeyKind.of(km.keyType(), type);
        if (k == null) {
          throw ShardmapException.precondition("column " + table + "." + column + " on shard '" + shard + "' is "
              + type + ", which cannot hold the BYTES keys of keyspace '" + km.name() + "' (text, varchar or bytea)");
        }
      }
    }
    keyKinds.put(key, k);
    return k;
  }

  /** One run of a query at one map: its parts and their opening. */
  final class Attempt {
    final Request request;
    final DirectorySnapshot map;
    final KeyspaceMap keyspace;
    final List<Part> parts = new ArrayList<>();
    private final AtomicInteger nextPart = new AtomicInteger();
    private int workersRunning;
    private int settled;
    private int failed;
    private PartGuard.Rerun rerun;
    private boolean stopping;
    private volatile boolean timedOut;
    private final List<Throwable> causes = new ArrayList<>();
    private ScheduledFuture<?> deadline;

    Attempt(Request request, DirectorySnapshot map, KeyspaceMap keyspace, List<Targets.ShardTarget> targets) {
      this.request = request;
      this.map = map;
      this.keyspace = keyspace;
      Set<String> names = new java.util.TreeSet<>();
      for (Targets.ShardTarget t : targets) {
        parts.add(new Part(t, request.startNanos(), stats));
        names.add(t.shard());
      }
      this.shards = Set.copyOf(names);
    }

    /** The shards of the run's parts (the key of the merge's column types). */
    final Set<String> shards;

    /**
     * Opens the parts, at most the query's parallelism at once: on that many threads less one from the
     * executor's, and on the caller's, which would otherwise only wait (one thread hand-off fewer per query,
     * and none at all with parallelism 1). Returns when the caller has no part left to open.
     */
    void launch() {
      long delay = request.deadlineNanos() - System.nanoTime();
      deadline = timer.schedule(this::deadlinePassed, Math.max(0, delay), TimeUnit.NANOSECONDS);
      int n = Math.min(request.parallelism(), parts.size());
      synchronized (this) {
        workersRunning = n;
      }
      for (int i = 1; i < n; i++) {
        try {
          workers.execute(this::work);
        } catch (RuntimeException e) { // the executor is shut down: ShardmapData closed
          synchronized (this) {
            workersRunning -= n - i;
            notifyAll();
          }
          throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this ShardmapData is closed", e);
        }
      }
      if (n > 0) {
        work();
      }
    }

    /** Opens parts until none is left, or the run cannot succeed any more (it stops, fails, times out or reruns). */
    private void work() {
      try {
        for (int i = nextPart.getAndIncrement(); i < parts.size(); i = nextPart.getAndIncrement()) {
          synchronized (this) {
            if (stopping || timedOut || rerun != null || (!request.partial() && failed > 0)) {
              return;
            }
          }
          open(parts.get(i));
        }
      } finally {
        synchronized (this) {
          workersRunning--;
          notifyAll();
        }
      }
    }

    /** Opens one part up to its first rows. */
    private void open(Part p) {
      try {
        openPart(p);
      } finally {
        p.openingDone();
      }
    }

    private void openPart(Part p) {
      stats.partStarted();
      try {
        Connection c = connect(p, request.replicas(), map, request.deadlineNanos());
        if (c == null) {
          return; // cancelled while waiting for a connection
        }
        KeyKind kind = keyKind(c, keyspace, p.shard, request.plan().table(), request.keyColumn());
        String predicate = Targets.predicate(keyspace, request.target(), p.target, kind, request.plan().keyRef());
        ShardStatement st = request.plan().shardStatement(predicate, request.params());
        // A part whose SQL bounds its rows to one fetch comes whole; any other streams through a cursor.
        boolean bounded = st.maxRows() >= 0 && st.maxRows() <= request.fetchSize();
        PartGuard.Rerun verdict;
        do {
          verdict = send(p, c, st, bounded); // AGAIN: the guard has learned how to check this shard
        } while (verdict == PartGuard.AGAIN);
        if (verdict == STOPPED) {
          return; // cancelled before it was sent: nothing to settle (see awaitSettled)
        }
        synchronized (this) {
          if (verdict != null && rerun == null) {
            rerun = verdict;
          }
          settled++;
          notifyAll();
        }
      } catch (Throwable e) {
        failed(p, e);
      }
    }

    /**
     * Sends the part in one round trip: the transaction's start (REPEATABLE READ, READ ONLY, with its
     * timeouts), the guard's inline check and the part's statement, as one multi-statement that PgJDBC sends
     * with one Sync (each statement prepared on the server once it has run a few times, since the text does
     * not change between runs). A bounded part also ends its transaction in it (COMMIT: nothing is left to
     * end when its rows are read); any other is left open, with the statement's cursor, until the part is
     * released. A guard without an inline check costs a round trip of its own first. Returns the guard's
     * verdict (null: the part is open); on any other than null the part's rows are not used.
     */
    private PartGuard.Rerun send(Part p, Connection c, ShardStatement st, boolean bounded) throws SQLException {
      long ms = TimeUnit.NANOSECONDS.toMillis(request.deadlineNanos() - System.nanoTime());
      if (ms <= 0) {
        throw new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "the deadline passed before the part started");
      }
      PartGuard.Inline check = guard == PartGuard.NONE ? null : guard.inline(request.keyspace(), p.shard);
      boolean checkFirst = guard != PartGuard.NONE && check == null;
      boolean whole = bounded && !checkFirst;
      c.setAutoCommit(whole);
      StringBuilder sql = new StringBuilder();
      List<Object> params = new ArrayList<>();
      sql.append(begin(whole, ms));
      if (checkFirst) {
        try (Statement s = c.createStatement()) {
          s.execute(sql.toString());
        }
        PartGuard.Rerun r = guard.check(c, request.keyspace(), p.shard, keyspace);
        if (r != null) {
          return r;
        }
        sql.setLength(0);
      }
      if (check != null) {
        sql.append("; ").append(check.sql());
        params.addAll(check.params());
      }
      sql.append(sql.length() == 0 ? "" : "; ").append(st.sql());
      params.addAll(st.params());
      if (whole) {
        sql.append("; COMMIT");
      }
      if (!p.prepare(sql.toString())) {
        return STOPPED;
      }
      PreparedStatement ps = p.statement();
      ps.setFetchSize(whole ? 0 : request.fetchSize());
      for (int i = 0; i < params.size(); i++) {
        ps.setObject(i + 1, params.get(i));
      }
      try {
        boolean isRows = p.execute();
        if (check != null) {
          PartGuard.Rerun r = check.verdict(resultSet(ps, isRows, p.shard), keyspace);
          if (r == PartGuard.AGAIN) {
            p.discardStatement(!whole);
            return r;
          }
          if (r != null) {
            return r;
          }
          isRows = ps.getMoreResults();
        }
        ResultSet rows = resultSet(ps, isRows, p.shard);
        p.opened(rows);
        if (whole) {
          // The merge's column types need a connection the first time a plan runs on these shards: learnt
          // here, so the part can give its connection back now.
          columnTypes.of(request.plan(), shards, c, rows.getMetaData(), request.params());
          p.detach();
        }
        return null;
      } catch (SQLException e) {
        if (check != null) {
          check.failed(e);
        }
        throw e;
      }
    }

    private void failed(Part p, Throwable e) {
      boolean stopOthers = false;
      synchronized (this) {
        // A part that failed because this query cancelled it is not a failure of its shard; one that failed on
        // its own while the query was stopping (no connection in time, a lost shard) still is.
        if (timedOut || (stopping && p.cancelSent() && e instanceof SQLException s && "57014".equals(s.getSQLState()))) {
          p.fail("cancelled: " + (timedOut ? "the query's deadline passed" : "the query was stopped"));
        } else {
          p.fail(describe(p.shard, e));
          causes.add(e);
          failed++;
          stats.partFailed();
          if (!request.partial() && !stopping) {
            stopping = true; // from here a part cancelled by this query is not its shard's failure
            stopOthers = true;
          }
        }
        settled++;
        notifyAll();
      }
      if (stopOthers) {
        stopOthers(p);
      }
      if (e instanceof Error err && !(e instanceof OutOfMemoryError)) {
        throw err;
      }
    }

    /**
     * Default mode, on the thread of the part that failed: the run cannot succeed any more, so the other parts'
     * statements are cancelled now, and again while they are still being opened (a cancel that reaches
     * PostgreSQL before its statement is lost). Not left to {@link #abort}: the caller's thread opens parts
     * too, and while it runs one of them it cannot see the failure; without this its part would run on to
     * its own end or the deadline. Returns once no other part is being opened, or at the deadline.
     */
    private void stopOthers(Part failedPart) {
      while (true) {
        boolean open = false;
        for (Part o : parts) {
          if (o != failedPart) {
            o.cancel();
            open |= o.opening();
          }
        }
        synchronized (this) {
          if (!open || timedOut || System.nanoTime() - request.deadlineNanos() > 0) {
            return;
          }
          try {
            wait(50);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
          }
        }
      }
    }

    /** Waits until every part started or failed, or a failure ends the run (default mode), or the deadline. */
    synchronized void awaitSettled() {
      while (settled < parts.size() && rerun == null && !timedOut && (request.partial() || failed == 0)) {
        try {
          wait(100);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          abortNow("interrupted");
          throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while the query's parts started");
        }
        if (workersRunning == 0 && nextPart.get() >= parts.size() && settled < parts.size()) {
          break; // parts cancelled before they took a connection: nothing more will settle
        }
      }
    }

    synchronized PartGuard.Rerun rerun() {
      return rerun;
    }

    private void deadlinePassed() {
      synchronized (this) {
        timedOut = true;
        notifyAll();
      }
      for (Part p : parts) {
        p.cancel();
      }
    }

    boolean timedOut() {
      return timedOut;
    }

    void cancelDeadline() {
      deadline.cancel(false);
    }

    ColumnTypes executorColumnTypes() {
      return columnTypes;
    }

    Counters stats() {
      return stats;
    }

    private void abortNow(String why) {
      synchronized (this) {
        stopping = true;
      }
      abort(why);
    }

    /**
     * Stops every part: cancels the running statements (repeating the cancel while a worker is still inside
     * one, since a cancel that reaches PostgreSQL before its statement is lost), waits for the workers and
     * gives back every connection. When it returns no statement of this run is left on any shard, unless a
     * worker stayed stuck past the deadline and 10 s more (then it releases its part itself when done).
     */
    void abort(String why) {
      abort(why, false);
    }

    /** {@link #abort(String)}; {@code waitForConnecting}: also wait for parts still waiting for a connection. */
    void abort(String why, boolean waitForConnecting) {
      synchronized (this) {
        stopping = true;
      }
      long giveUp = Math.max(request.deadlineNanos(), System.nanoTime()) + TimeUnit.SECONDS.toNanos(10);
      while (true) {
        boolean open = false;
        for (Part p : parts) {
          p.cancel();
          open |= p.opening();
        }
        synchronized (this) {
          // Workers still waiting for a pool connection hold nothing and run nothing: once they get one they
          // see the part cancelled and give it straight back, so only parts being opened are waited for.
          // After a failure (not the deadline) they are waited for until the deadline, so that the error names
          // every shard that fails on its own (a shard down makes all its waiting parts fail alike).
          long now = System.nanoTime();
          boolean waitConnecting = waitForConnecting && now - request.deadlineNanos() < 0;
          if (workersRunning == 0 || (!open && !waitConnecting) || now - giveUp > 0) {
            break;
          }
          try {
            wait(50);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            break;
          }
        }
      }
      for (Part p : parts) {
        if (p.error() == null && !p.exhausted()) {
          p.fail("cancelled: " + why);
        }
        p.release();
      }
      deadline.cancel(false);
    }

    /**
     * After {@link #awaitSettled}: the failure to throw (then {@code where[0]} is SHARD: the parts' failure,
     * unless the deadline's), or the running query.
     */
    Execution finish(QueryFailure[] where) {
      boolean fail;
      synchronized (this) {
        fail = timedOut || (!request.partial() && failed > 0) || (request.partial() && failed == parts.size()
            && !parts.isEmpty()) || settled < parts.size();
      }
      if (fail) {
        // Stopped first, so that the error names every shard that failed on its own meanwhile too.
        boolean deadlinePassed;
        synchronized (this) {
          deadlinePassed = timedOut;
        }
        abort(deadlinePassed ? "the query's deadline passed" : "another shard failed", !deadlinePassed);
        where[0] = QueryFailure.SHARD; // a deadline's failure is DEADLINE_EXCEEDED, which QueryFailure.of sees
        throw failure();
      }
      try {
        return new Execution(this, request, map.revision());
      } catch (RuntimeException e) {
        abort("the query failed to start its merge");
        throw e;
      } catch (SQLException e) {
        abort("the query failed to start its merge");
        throw new ShardmapException(codeOf(List.of(e)), "cross-shard query on keyspace '" + request.keyspace()
            + "' could not read the result's column types: " + e.getMessage(), e);
      }
    }

    /** One exception naming every shard that failed, and why. */
    synchronized ShardmapException failure() {
      if (timedOut) {
        List<String> open = new ArrayList<>();
        for (Part p : parts) {
          if (p.error() == null || p.error().startsWith("cancelled")) {
            open.add(p.shard);
          }
        }
        return deadlineExceeded(open);
      }
      List<String> reasons = new ArrayList<>();
      for (Part p : parts) {
        if (p.error() != null && !p.error().startsWith("cancelled")) {
          reasons.add(p.error());
        }
      }
      ShardmapException e = new ShardmapException(codeOf(causes), "cross-shard query on keyspace '"
          + request.keyspace() + "' at revision " + map.revision() + " failed on " + reasons.size() + " of "
          + parts.size() + " shards: " + String.join("; ", reasons)
          + (request.partial() ? "" : " (the other shards' statements were cancelled)"),
          causes.isEmpty() ? null : causes.get(0));
      for (int i = 1; i < causes.size(); i++) {
        e.addSuppressed(causes.get(i));
      }
      return e;
    }

    ShardmapException deadlineExceeded(List<String> shards) {
      return new ShardmapException(ErrorCode.DEADLINE_EXCEEDED, "cross-shard query on keyspace '"
          + request.keyspace() + "' passed its deadline of "
          + TimeUnit.NANOSECONDS.toMillis(request.deadlineNanos() - request.startNanos()) + " ms; cancelled the "
          + "statements of shards " + shards);
    }
  }

  /** "s2: why" for a part's failure, with the fix where one is known (routing functions not installed). */
  static String describe(String shard, Throwable e) {
    String msg = String.valueOf(e.getMessage());
    if (lacksRoutingFunctions(e)) {
      return shard + ": its database lacks Shardmap's SQL routing functions (" + msg.trim() + "), which the "
          + "ownership predicate of hash and consistent-hash keyspaces calls. The migrator installs them on every "
          + "shard a move touches; install them on this shard by running the statements of "
          + "io.shardmap.core.sql.SqlRouting.ddl() as a role that may create schema shardmap (docs/client-sdk.md, "
          + "\"Cross-shard queries\")";
    }
    if (e instanceof SQLException s && "57014".equals(s.getSQLState())) {
      return shard + ": statement cancelled by PostgreSQL (" + msg.trim() + ")";
    }
    // A pool that gave no connection says only that it timed out; the reason (a refused login, a server
    // down) is its cause, which the caller needs.
    Throwable cause = e.getCause();
    if (e instanceof java.sql.SQLTransientConnectionException && cause != null && cause.getMessage() != null
        && !msg.contains(cause.getMessage())) {
      return shard + ": " + msg.trim() + " (last connection failure: " + cause.getMessage().trim() + ")";
    }
    return shard + ": " + msg.trim();
  }

  /** An undefined function or schema {@code shardmap.*}: the shard lacks the routing functions. */
  static boolean lacksRoutingFunctions(Throwable e) {
    String msg = String.valueOf(e.getMessage());
    return e instanceof SQLException s && ("42883".equals(s.getSQLState()) && msg.contains("shardmap.")
        || "3F000".equals(s.getSQLState()) && msg.contains("\"shardmap\""));
  }

  /** The code of a failure: the deadline, an unreachable shard, a statement error, or the map. */
  static ErrorCode codeOf(List<Throwable> causes) {
    for (Throwable t : causes) {
      if (t instanceof ShardmapException s) {
        return s.code();
      }
      if (lacksRoutingFunctions(t)) {
        return ErrorCode.FAILED_PRECONDITION;
      }
    }
    for (Throwable t : causes) {
      if (t instanceof SQLException s && "57014".equals(s.getSQLState())) {
        return ErrorCode.DEADLINE_EXCEEDED;
      }
    }
    for (Throwable t : causes) {
      String state = t instanceof SQLException s ? s.getSQLState() : null;
      if (state == null || state.startsWith("08") || state.startsWith("57P")) {
        return ErrorCode.UNAVAILABLE; // a lost or refused connection, a pool timeout, a server shutting down
      }
    }
    for (Throwable t : causes) {
      String state = ((SQLException) t).getSQLState();
      if (state.startsWith("22") || state.startsWith("42")) {
        return ErrorCode.INVALID_ARGUMENT;
      }
    }
    return ErrorCode.FAILED_PRECONDITION;
  }

  @Override
  public void close() {
    workers.shutdownNow();
    timer.shutdownNow();
  }
}
