package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.LeasedSingleton;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.core.sql.ShardJdbc;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.internal.SizeEstimator.TableCount;
import io.shardmap.store.MetaStore;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Takes the keyspaces' sizes from the shards' PostgreSQL (docs/sizes.md) and keeps the latest in etcd
 * ({@link SizeRecords}).
 *
 * <p>Every directory server runs one; only the holder of {@code {root}/size-sampler} ({@link LeasedSingleton})
 * takes sizes on its own: every keyspace that declares sharded tables, when its latest sizes in etcd are older
 * than the interval (so a new holder does not take them again at once). Every server, holder or not, reads the
 * latest heads each check for its metrics, so each exports the same {@code shardmap_shard_rows}, {@code
 * shardmap_shard_bytes} and {@code shardmap_sizes_age_seconds}. {@link #refresh} takes one keyspace's sizes now,
 * on the server asked, estimated or exact; concurrent refreshes of one keyspace share one run.
 *
 * <p>Per shard, one connection (opened for the run, read-only, with a statement timeout) reads every table of
 * every keyspace being sized; shards are read in parallel on a small dedicated pool. A shard that cannot be read
 * is reported missing (rows and bytes -1) and logged once until it can be read again; it is next tried at the
 * next interval, not in a loop.
 */
public final class SizeSampler implements AutoCloseable {
  private static final Logger log = Logger.getLogger(SizeSampler.class.getName());

  /**
   * Keys sampled per table and shard, about: a unit of N rows is then estimated within about
   * sqrt(N (1 - p) / p) rows (one standard deviation), at the rate p = 50,000 / the table's rows.
   */
  static final int SAMPLE_TARGET = 50_000;
  /** Tables with fewer rows than this (by the statistics) are read whole: the counts are then exact. */
  static final long READ_WHOLE_BELOW = 60_000;
  /** Tables larger than this are sampled by pages (TABLESAMPLE SYSTEM) instead of by rows (BERNOULLI). */
  static final long SYSTEM_SAMPLE_ABOVE_BYTES = 1L << 30;
  /** Exact counts per range with an index range scan each, for a shard owning at most this many ranges. */
  static final int COUNT_PER_RANGE_MAX = 1000;
  /** How often every server checks the role and reads the heads (at most; the interval when shorter). */
  static final Duration CHECK = Duration.ofSeconds(5);

  /** The TTL of the size-sampler role's lease. */
  public static final Duration LEASE_TTL = Duration.ofSeconds(30);
  /** The statement timeout of an estimate's queries, and of an exact count's. */
  public static final Duration STATEMENT_TIMEOUT = Duration.ofSeconds(60);
  public static final Duration EXACT_STATEMENT_TIMEOUT = Duration.ofMinutes(30);

  /** What the sampler needs beyond the server's own settings. */
  public record Settings(String dbUser, String dbPassword, Duration interval, Duration leaseTtl,
                         Duration statementTimeout, Duration exactStatementTimeout) {}

  /** Opens a connection to one shard endpoint with a socket timeout (the default: PostgreSQL JDBC). */
  @FunctionalInterface
  public interface Connector {
    Connection open(Endpoint endpoint, Duration socketTimeout) throws SQLException;
  }

  private final Settings settings;
  private final SizeRecords records;
  private final Supplier<DirectorySnapshot> snapshots;
  private final ScheduledExecutorService ticker;
  private final ExecutorService shardPool;
  private final ExecutorService refreshPool;
  private final LongSupplier clock;
  private final ServerMetrics metrics;
  private final Connector connector;
  private final LeasedSingleton lease;
  private final Map<String, CompletableFuture<KeyspaceSizes>> inFlight = new ConcurrentHashMap<>();
  /** Problems logged once, by "shard|keyspace", until they clear. */
  private final Map<String, String> problems = new ConcurrentHashMap<>();
  private ScheduledFuture<?> task;
  private volatile boolean closed;

  public SizeSampler(Settings settings, MetaStore store, SizeRecords records, CatalogPaths paths, String serverId,
                     Duration requestTimeout,
                     Supplier<DirectorySnapshot> snapshots, ScheduledExecutorService ticker, ExecutorService shardPool,
                     ExecutorService refreshPool, LongSupplier nanoTime, LongSupplier clock, ServerMetrics metrics,
                     Connector connector) {
    this.settings = settings;
    this.records = records;
    this.snapshots = snapshots;
    this.ticker = ticker;
    this.shardPool = shardPool;
    this.refreshPool = refreshPool;
    this.clock = clock;
    this.metrics = metrics;
    this.connector = connector != null ? connector : jdbc(settings);
    this.lease = new LeasedSingleton(new MeteredMetaStore(store, metrics::etcdRequest, nanoTime), paths.sizeSampler(),
        serverId, settings.leaseTtl(), requestTimeout, nanoTime, "size_sampler");
  }

  /** Read-only connections to the shards' primaries as {@code settings.dbUser()}, named {@code shardmap-sizes}. */
  static Connector jdbc(Settings settings) {
    return (e, socketTimeout) -> {
      Properties p = new Properties();
      p.setProperty("user", settings.dbUser());
      if (settings.dbPassword() != null) {
        p.setProperty("password", settings.dbPassword());
      }
      p.setProperty("ApplicationName", "shardmap-sizes");
      p.setProperty("connectTimeout", "2");
      p.setProperty("loginTimeout", "5");
      p.setProperty("socketTimeout", Long.toString(Math.max(1, socketTimeout.toSeconds())));
      p.setProperty("tcpKeepAlive", "true");
      return DriverManager.getConnection(ShardJdbc.url(e), p);
    };
  }

  /** Starts checking every {@link #CHECK} (or the interval, when shorter) on the ticker. */
  public synchronized void start() {
    long ms = Math.min(CHECK.toMillis(), settings.interval().toMillis());
    task = ticker.scheduleWithFixedDelay(this::tick, 0, Math.max(1, ms), TimeUnit.MILLISECONDS);
    log.info("size sampler started as role '" + settings.dbUser() + "': keyspaces' sizes are taken every "
        + settings.interval().toMillis() + " ms by the server holding the size-sampler role");
  }

  /** One check: metrics from the latest heads; if this server holds the role, sizes of the keyspaces due. */
  void tick() {
    if (closed) {
      return;
    }
    try {
      Map<String, SizeRecords.Head> heads = new HashMap<>();
      for (SizeRecords.Head h : records.heads()) {
        heads.put(h.sizes().getKeyspace(), h);
        metrics.sizes(h.sizes());
      }
      if (!lease.check()) {
        return;
      }
      DirectorySnapshot snap = snapshots.get();
      List<KeyspaceMap> due = new ArrayList<>();
      long now = clock.getAsLong();
      for (KeyspaceMap km : new TreeMap<>(snap.keyspaces()).values()) {
        SizeRecords.Head h = heads.get(km.name());
        if (sizable(km) && (h == null || now - h.sizes().getTakenUnixMs() >= settings.interval().toMillis())) {
          due.add(km);
        }
      }
      if (problems.remove("etcd|") != null) {
        log.info("size sampler: etcd answers again");
      }
      if (due.isEmpty()) {
        return;
      }
      for (KeyspaceSizes s : take(snap, due, false)) {
        SizeRecords.Head h = heads.get(s.getKeyspace());
        if (records.write(s, h == null ? 0 : h.modRevision())) {
          metrics.sizes(s);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException | TimeoutException e) {
      once("etcd|", "size sampler: etcd failed (" + e + "); tried again at every check, logged once until it works");
      return;
    } catch (RuntimeException e) {
      // A bug must not end the scheduled task (an exception would cancel it silently).
      log.log(Level.SEVERE, "size sampler failed", e);
    }
  }

  /** Whether sizes can be taken of the keyspace: it declares tables and its map is usable. */
  static boolean sizable(KeyspaceMap km) {
    return km.spec().getTablesCount() > 0 && km.hasLayout() && km.broken() == null;
  }

  /**
   * Takes {@code keyspace}'s sizes now on this server, writes them to etcd, and returns them. A refresh of the
   * keyspace already running is joined (an estimate also joins an exact count). The caller validated the
   * keyspace; a keyspace gone meanwhile fails NOT_FOUND.
   */
  public CompletableFuture<KeyspaceSizes> refresh(String keyspace, boolean exact) {
    if (!exact) {
      CompletableFuture<KeyspaceSizes> counting = inFlight.get(keyspace + "#exact");
      if (counting != null) {
        return counting;
      }
    }
    String key = keyspace + (exact ? "#exact" : "#estimate");
    CompletableFuture<KeyspaceSizes> mine = new CompletableFuture<>();
    CompletableFuture<KeyspaceSizes> running = inFlight.putIfAbsent(key, mine);
    if (running != null) {
      return running;
    }
    try {
      refreshPool.execute(() -> {
        try {
          DirectorySnapshot snap = snapshots.get();
          KeyspaceMap km = snap.keyspace(keyspace);
          if (km == null || !sizable(km)) {
            throw ShardmapException.notFound("keyspace: '" + keyspace + "' is gone or has no usable map");
          }
          KeyspaceSizes s = take(snap, List.of(km), exact).get(0);
          records.write(s);
          metrics.sizes(s);
          inFlight.remove(key, mine);
          mine.complete(s);
        } catch (Throwable t) {
          inFlight.remove(key, mine);
          if (t instanceof InterruptedException) {
            Thread.currentThread().interrupt();
          }
          mine.completeExceptionally(t);
        }
      });
    } catch (RuntimeException e) {
      inFlight.remove(key, mine);
      mine.completeExceptionally(e);
    }
    return mine;
  }

  /** The latest sizes of {@code keyspace} in etcd, with their units; empty when none were taken. */
  public Optional<KeyspaceSizes> latest(String keyspace)
      throws InterruptedException, ExecutionException, TimeoutException {
    return records.read(keyspace);
  }

  /**
   * Sizes of the keyspaces now, one KeyspaceSizes each in the given order: every shard that owns units of any
   * of them, or that is registered (it may hold leftovers), read in parallel.
   */
  List<KeyspaceSizes> take(DirectorySnapshot snap, List<KeyspaceMap> keyspaces, boolean exact)
      throws InterruptedException {
    long taken = clock.getAsLong();
    Map<String, Shard> shards = new TreeMap<>(snap.shards());
    Map<String, Future<Map<String, Object>>> reads = new LinkedHashMap<>();
    for (Shard s : shards.values()) {
      reads.put(s.getName(), shardPool.submit(() -> readShard(s, keyspaces, exact)));
    }
    Map<String, Map<String, Object>> byShard = new TreeMap<>();
    for (Map.Entry<String, Future<Map<String, Object>>> e : reads.entrySet()) {
      try {
        byShard.put(e.getKey(), e.getValue().get());
      } catch (ExecutionException ex) {
        // readShard catches per keyspace; this is a bug: every keyspace misses the shard.
        log.log(Level.SEVERE, "size sampler: reading shard " + e.getKey() + " failed", ex.getCause());
        Map<String, Object> failed = new HashMap<>();
        for (KeyspaceMap km : keyspaces) {
          failed.put(km.name(), ex.getCause());
        }
        byShard.put(e.getKey(), failed);
      }
    }
    List<KeyspaceSizes> out = new ArrayList<>();
    for (KeyspaceMap km : keyspaces) {
      Set<String> owners = km.owners();
      Map<String, List<TableCount>> counts = new TreeMap<>();
      Set<String> missing = new TreeSet<>();
      for (Map.Entry<String, Map<String, Object>> e : byShard.entrySet()) {
        Object r = e.getValue().get(km.name());
        String problemKey = e.getKey() + "|" + km.name();
        if (r instanceof Throwable t) {
          if (owners.contains(e.getKey())) {
            missing.add(e.getKey());
          }
          once(problemKey, "sizes of keyspace " + km.name() + ": shard " + e.getKey() + " could not be read ("
              + t.getMessage() + "); reported missing (rows -1) until it can, tried again at the next interval");
          continue;
        }
        if (problems.remove(problemKey) != null) {
          log.info("sizes of keyspace " + km.name() + ": shard " + e.getKey() + " can be read again");
        }
        @SuppressWarnings("unchecked")
        List<TableCount> tables = (List<TableCount>) r;
        boolean any = tables.stream().anyMatch(t -> t.rows() > 0 || t.bytes() > 0);
        if (owners.contains(e.getKey()) || any) {
          counts.put(e.getKey(), tables);
        }
      }
      out.add(SizeEstimator.assemble(km.name(), taken, exact, km.layoutRevision(), km.table(), counts, missing));
    }
    return out;
  }

  /** Per keyspace name: its tables' counts on the shard (List of TableCount), or the Throwable that stopped them. */
  private Map<String, Object> readShard(Shard shard, List<KeyspaceMap> keyspaces, boolean exact) {
    Map<String, Object> out = new HashMap<>();
    Duration timeout = exact ? settings.exactStatementTimeout() : settings.statementTimeout();
    Connection c;
    try {
      c = connector.open(shard.getPrimary(), timeout.plusSeconds(15));
      c.setAutoCommit(true);
      // Session settings, outside any transaction, so a rolled-back keyspace does not undo them.
      try (Statement st = c.createStatement()) {
        st.execute("SET statement_timeout = " + timeout.toMillis());
        st.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
      }
      c.setAutoCommit(false); // a cursor (fetch size) needs a transaction
    } catch (SQLException e) {
      for (KeyspaceMap km : keyspaces) {
        out.put(km.name(), e);
      }
      return out;
    }
    try {
      for (KeyspaceMap km : keyspaces) {
        try {
          List<TableCount> tables = new ArrayList<>();
          for (ShardedTable t : km.spec().getTablesList()) {
            tables.add(readTable(c, shard.getName(), km, t, exact));
          }
          out.put(km.name(), tables);
        } catch (SQLException | RuntimeException e) {
          out.put(km.name(), e);
          try {
            c.rollback(); // a failed statement aborts the transaction: start a new one for the next keyspace
          } catch (SQLException again) {
            // The connection is gone: the next keyspaces fail on it too, and say so.
          }
        }
      }
    } finally {
      try {
        c.rollback();
        c.close();
      } catch (SQLException e) {
        // Nothing was written; a connection that fails closing holds nothing.
      }
    }
    return out;
  }

  /** One table on one shard: its statistics, then a sample of its keys (or all of them), counted by unit. */
  TableCount readTable(Connection c, String shard, KeyspaceMap km, ShardedTable t, boolean exact)
      throws SQLException {
    RoutingTable table = km.table();
    int units = table.unitCount();
    String sqlName = ident(t.getName());
    Stats s = stats(c, sqlName, t.getKeyColumn());
    if (s == null) {
      return TableCount.absent(t.getName(), units);
    }
    KeyKind kind = s.keyType == null ? null : KeyKind.of(km.keyType(), s.keyType);
    if (kind == null) {
      throw new SQLException("key column " + t.getKeyColumn() + " of table " + t.getName() + " is "
          + (s.keyType == null ? "missing" : s.keyType) + ", which cannot hold the keyspace's "
          + km.keyType() + " keys", "42703");
    }
    String col = ident(t.getKeyColumn());
    if (exact && km.strategy() == Strategy.STRATEGY_RANGE) {
      List<Integer> mine = new ArrayList<>();
      for (int u = 0; u < units; u++) {
        Route r = table.unitRoute(u);
        if (r != null && r.shard().equals(shard)) {
          mine.add(u);
        }
      }
      if (s.keyIndexed && mine.size() <= COUNT_PER_RANGE_MAX) {
        return countPerRange(c, t.getName(), sqlName, col, kind, table, mine, s.totalBytes);
      }
    }
    long estimate = s.estimatedRows();
    String from = sqlName;
    double percent = 100;
    if (!exact && estimate >= READ_WHOLE_BELOW) {
      percent = Math.max(1e-4, Math.min(100, 100.0 * SAMPLE_TARGET / estimate));
      String method = s.tableBytes > SYSTEM_SAMPLE_ABOVE_BYTES ? "SYSTEM" : "BERNOULLI";
      from = sqlName + " TABLESAMPLE " + method + " (" + String.format(Locale.ROOT, "%.6f", percent)
          + ") REPEATABLE (" + ThreadLocalRandom.current().nextInt(1, Integer.MAX_VALUE) + ")";
    }
    long[] owned = new long[units];
    long notOwned = 0;
    long read = 0;
    boolean ints = km.keyType() == KeyType.KEY_TYPE_INT64;
    try (Statement st = c.createStatement()) {
      st.setFetchSize(10_000);
      try (ResultSet rs = st.executeQuery("SELECT " + col + " FROM " + from)) {
        while (rs.next()) {
          read++;
          Route r;
          int u;
          if (ints) {
            long k = rs.getLong(1);
            if (rs.wasNull()) {
              notOwned++;
              continue;
            }
            u = table.unitOf(k);
            r = table.route(k);
          } else {
            Object v = rs.getObject(1);
            if (v == null) {
              notOwned++;
              continue;
            }
            byte[] k = kind.canonical(v);
            u = table.unitOf(k);
            r = table.route(k);
          }
          if (r != null && r.shard().equals(shard)) {
            owned[u]++;
          } else {
            notOwned++;
          }
        }
      }
    }
    // A row sample's size over its rate estimates the rows better than statistics that may be stale.
    long rows = percent >= 100 ? read : Math.round(read * 100.0 / percent);
    return new TableCount(t.getName(), rows, s.totalBytes, read, owned, notOwned);
  }

  /** Exact: count(*) of each owned range (an index range scan each: the key is indexed), and the total. */
  private static TableCount countPerRange(Connection c, String name, String sqlName, String col, KeyKind kind,
                                          RoutingTable table, List<Integer> mine, long bytes) throws SQLException {
    long[] owned = new long[table.unitCount()];
    long sum = 0;
    long total;
    try (Statement st = c.createStatement()) {
      for (int u : mine) {
        String cond = KeySql.range(kind, col, table.unitRoute(u).range());
        try (ResultSet rs = st.executeQuery("SELECT count(*) FROM " + sqlName + " WHERE " + cond)) {
          rs.next();
          owned[u] = rs.getLong(1);
          sum += owned[u];
        }
      }
      try (ResultSet rs = st.executeQuery("SELECT count(*) FROM " + sqlName)) {
        rs.next();
        total = rs.getLong(1);
      }
    }
    // Rows counted twice cannot be: the ranges do not overlap. Rows added between the counts can, so a negative
    // difference is clamped.
    return new TableCount(name, total, bytes, total, owned, Math.max(0, total - sum));
  }

  /** A table's statistics on a shard. */
  record Stats(double reltuples, long relpages, long tableBytes, long totalBytes, long liveTuples, int blockSize,
               String keyType, boolean keyIndexed) {
    /**
     * Rows by the statistics, as PostgreSQL's planner scales them: tuples per page at the last ANALYZE or
     * VACUUM times the pages now; the statistics collector's live tuples when the table was never analyzed.
     */
    long estimatedRows() {
      if (reltuples > 0 && relpages > 0) {
        return Math.round(reltuples / relpages * ((double) tableBytes / blockSize));
      }
      return Math.max(0, liveTuples);
    }
  }

  /** Null when the table does not exist on the shard. */
  static Stats stats(Connection c, String sqlName, String keyColumn) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT c.reltuples::float8, c.relpages, pg_relation_size(c.oid), "
        + "pg_total_relation_size(c.oid), coalesce(s.n_live_tup, 0), current_setting('block_size')::int, "
        + "(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid "
        + "AND a.attname = ? AND a.attnum > 0 AND NOT a.attisdropped), "
        // A btree index led by the key column: count(*) of a range is then an index range scan.
        + "EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        + "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
        + "WHERE i.indrelid = c.oid AND a.attname = ? AND am.amname = 'btree') "
        + "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(?)")) {
      ps.setString(1, keyColumn);
      ps.setString(2, keyColumn);
      ps.setString(3, sqlName);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          return null;
        }
        return new Stats(rs.getDouble(1), rs.getLong(2), rs.getLong(3), rs.getLong(4), rs.getLong(5), rs.getInt(6),
            rs.getString(7), rs.getBoolean(8));
      }
    }
  }

  /** A table name as SQL: each dot-separated part quoted. */
  static String ident(String name) {
    StringBuilder b = new StringBuilder();
    for (String part : name.split("\\.", -1)) {
      if (b.length() > 0) {
        b.append('.');
      }
      b.append('"').append(part.replace("\"", "\"\"")).append('"');
    }
    return b.toString();
  }

  private void once(String key, String message) {
    if (problems.putIfAbsent(key, message) == null) {
      log.warning(message);
    }
  }

  /** Stops checking and gives the role up (another server takes it at its next check). */
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
    try {
      ticker.submit(lease::release).get(20, TimeUnit.SECONDS);
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      log.warning("stopping the size sampler: " + e);
    }
  }
}
