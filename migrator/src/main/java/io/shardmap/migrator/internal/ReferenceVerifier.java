package io.shardmap.migrator.internal;

import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.ReferenceGuard;
import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.migrator.ReferenceCheck.Copy;
import io.shardmap.migrator.ReferenceCheck.KeyDiff;
import io.shardmap.migrator.ReferenceCheck.Kind;
import io.shardmap.migrator.ReferenceCheck.Progress;
import io.shardmap.migrator.ReferenceCheck.Settings;
import io.shardmap.migrator.ReferenceCheck.Unresolved;
import io.shardmap.migrator.ReferenceRepair;
import io.shardmap.migrator.ReferenceRepair.Change;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.stream.Collectors;

/**
 * Compares and repairs the copies of one reference table (docs/reference-verify.md), given a connection to
 * every copy's shard.
 *
 * <p>Consistent point: before reading, it takes the table's epoch row ({@code shardmap.reference_tables})
 * FOR UPDATE on every copy, in shard name order, in one transaction per copy held until it is done. Every
 * coordinated write holds a share lock on that row on each copy it writes until its transaction ends there
 * (a prepared one until COMMIT PREPARED), so once all the rows are locked no coordinated write is in flight
 * on any copy and none can start: every copy shows the same set of committed writes. Each lock waits at most
 * {@link Settings#lockTimeout}; a timeout releases every lock taken and tries again (a writer that locks the
 * copies in another order could otherwise wait on this one forever), up to {@link Settings#lockAttempts}.
 *
 * <p>Comparison, cheapest first: per copy a row count and the sum of a 64-bit hash of every row's text
 * (the migrator's verifier; columns in name order, so copies whose columns were created in another order
 * still compare); when they differ, the same per primary-key hash bucket; then, only in buckets that
 * differ, every row's key and hash. Repairs write by primary key under {@link ReferenceGuard#bypass}, in the
 * locked transaction of the copy: DELETE the rows the wanted version lacks, UPDATE the changed ones (never
 * delete-and-insert, which would cascade to or be refused by foreign keys pointing at the table), INSERT
 * the missing ones.
 */
public final class ReferenceVerifier {
  /** Rows per statement when fetching or writing rows by key. */
  static final int BATCH = 500;
  private static final String LOCK_TIMEOUT_SQLSTATE = "55P03";
  private static final Backoff LOCK_RETRY = Backoff.exponential(Duration.ofMillis(50), Duration.ofSeconds(1));

  private final String table;
  private final List<String> primaryKey;
  private final SortedMap<String, Connection> copies;
  private final Settings options;
  private final Consumer<Progress> progress;

  /**
   * @param table canonical name ({@link ReferenceGuard#canonicalName}) as in the catalog record
   * @param primaryKey the record's primary key columns
   * @param copies a connection (autocommit) to each copy's shard, by shard name; owned by the caller
   */
  public ReferenceVerifier(String table, List<String> primaryKey, Map<String, Connection> copies, Settings options,
      Consumer<Progress> progress) {
    if (copies.isEmpty()) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "table: reference table " + table
          + " has no copies to compare");
    }
    if (primaryKey.isEmpty()) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "table: reference table " + table
          + " has no primary key in its record");
    }
    this.table = table;
    this.primaryKey = List.copyOf(primaryKey);
    this.copies = new TreeMap<>(copies);
    this.options = options;
    this.progress = progress == null ? p -> {} : progress;
  }

  /** Compares every copy at one consistent point; changes nothing. */
  public ReferenceCheck verify() throws SQLException {
    Locked locked = lock();
    try {
      return compare(locked, null).check;
    } finally {
      locked.release(false);
    }
  }

  /**
   * Makes every copy equal to the majority version of each key ({@code source} null), or to the copy on
   * {@code source}. Refused, with nothing written, when {@code source} is not a copy or (majority) when a key
   * has no majority version. The copies are re-verified after the repair committed.
   */
  public ReferenceRepair repair(String source, boolean dryRun) throws SQLException {
    if (source != null && !copies.containsKey(source)) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "--source: shard '" + source + "' holds no copy of "
          + table + "; its copies are on " + String.join(", ", copies.keySet()));
    }
    Locked locked = lock();
    boolean committed = false;
    Compared before;
    List<Change> changes = new ArrayList<>();
    try {
      before = compare(locked, source);
      if (before.check.equal()) {
        return new ReferenceRepair(table, source, dryRun, before.check, List.of(), null);
      }
      if (source == null && before.check.unresolvedKeys() > 0) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "no strict majority of the " + copies.size()
            + " copies of " + table + " agrees on " + before.check.unresolvedKeys() + " key(s), e.g. "
            + before.check.unresolved().get(0).key() + " " + new TreeMap<>(before.check.unresolved().get(0).versions())
            + "; nothing was changed. Name the copy to repair from: --source SHARD");
      }
      Map<String, Plan> plans = plan(before);
      for (Map.Entry<String, Plan> e : plans.entrySet()) {
        Plan p = e.getValue();
        changes.add(new Change(e.getKey(), p.insert.size(), p.update.size(), p.delete.size()));
      }
      if (dryRun) {
        return new ReferenceRepair(table, source, true, before.check, changes, null);
      }
      for (Map.Entry<String, Plan> e : plans.entrySet()) {
        apply(before.layout, e.getKey(), e.getValue());
      }
      locked.release(true);
      committed = true;
    } finally {
      if (!committed) {
        locked.release(false);
      }
    }
    ReferenceCheck after = verify();
    return new ReferenceRepair(table, source, false, before.check, changes, after);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Locking

  /** Every copy's connection in an open transaction holding its epoch row FOR UPDATE, and the epochs. */
  private final class Locked {
    final Map<String, Long> epochs = new TreeMap<>();
    private final List<Connection> open = new ArrayList<>();

    void begin(Connection c) throws SQLException {
      c.setAutoCommit(false);
      open.add(c);
    }

    /** Commits (or rolls back) every transaction, releasing the locks; every connection is back in autocommit. */
    void release(boolean commit) throws SQLException {
      SQLException failed = null;
      for (Connection c : open) {
        try {
          if (commit && failed == null) {
            c.commit();
          } else {
            c.rollback();
          }
        } catch (SQLException e) {
          if (failed == null) {
            failed = e;
          } else {
            failed.addSuppressed(e);
          }
        }
        try {
          c.setAutoCommit(true);
        } catch (SQLException e) {
          // The connection is broken; the caller closes it.
        }
      }
      open.clear();
      if (failed != null) {
        throw failed;
      }
    }
  }

  private Locked lock() throws SQLException {
    Backoff.Attempts pauses = LOCK_RETRY.start();
    for (int attempt = 1; ; attempt++) {
      Locked l = new Locked();
      String at = null;
      try {
        int n = 0;
        for (Map.Entry<String, Connection> e : copies.entrySet()) {
          at = e.getKey();
          l.begin(e.getValue());
          l.epochs.put(e.getKey(), lockEpochRow(e.getKey(), e.getValue()));
          progress.accept(new Progress("locking", ++n, copies.size(), 0));
        }
        return l;
      } catch (SQLException e) {
        l.release(false);
        if (!LOCK_TIMEOUT_SQLSTATE.equals(e.getSQLState())) {
          throw e;
        }
        if (attempt >= options.lockAttempts()) {
          throw new ShardmapException(ErrorCode.ABORTED, "could not lock the epoch row of " + table + " on shard '"
              + at + "' within " + options.lockTimeout().toMillis() + " ms (" + attempt + " attempt(s)): a "
              + "coordinated write holds it (a prepared transaction pending there keeps it until COMMIT or "
              + "ROLLBACK PREPARED: see pg_prepared_xacts); nothing was changed, try again", e);
        }
        try {
          TimeUnit.NANOSECONDS.sleep(pauses.nextPauseNanos());
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new ShardmapException(ErrorCode.ABORTED, "interrupted while locking the copies of " + table, ie);
        }
      } catch (RuntimeException e) {
        l.release(false);
        throw e;
      }
    }
  }

  private long lockEpochRow(String shard, Connection c) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("SET LOCAL lock_timeout = '" + Math.max(1, options.lockTimeout().toMillis()) + "ms'");
    }
    try (PreparedStatement p = c.prepareStatement(
        "SELECT epoch FROM shardmap.reference_tables WHERE tbl = ? FOR UPDATE")) {
      p.setString(1, table);
      try (ResultSet rs = p.executeQuery()) {
        if (rs.next()) {
          return rs.getLong(1);
        }
      }
    } catch (SQLException e) {
      if (!"42P01".equals(e.getSQLState()) && !"3F000".equals(e.getSQLState())) {
        throw e;
      }
    }
    throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard '" + shard + "': its copy of " + table
        + " is not guarded (no epoch row in shardmap.reference_tables); the catalog lists it as a copy: "
        + "'shardmap-migrator reference sync' installs the guard");
  }

  // ---------------------------------------------------------------------------------------------------------
  // Comparing

  /** The columns of the table, as every copy has them. */
  record Layout(List<String> byName, Map<String, List<String>> byAttnum, Map<String, List<String>> writable) {}

  private record Compared(ReferenceCheck check, Layout layout, Map<String, Map<String, Long>> rows,
      Map<String, Long> wanted, Map<String, String> provider) {}

  private Compared compare(Locked locked, String source) throws SQLException {
    Layout layout = layout();
    String hash = "hashtextextended(" + row(layout.byName) + ", 0)";
    Map<String, long[]> whole = new TreeMap<>();
    Map<String, String> sums = new TreeMap<>();
    java.util.concurrent.atomic.AtomicLong rowsSummed = new java.util.concurrent.atomic.AtomicLong();
    Map<String, String[]> summed = onEveryCopy((shard, c) -> {
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*), "
          + "coalesce(sum(h), 0)::text FROM (SELECT " + hash + " AS h FROM " + table + " t) x")) {
        rs.next();
        return new String[] {Long.toString(rs.getLong(1)), rs.getString(2)};
      }
    }, (n, r) -> new Progress("checksums", n, copies.size(), rowsSummed.addAndGet(Long.parseLong(r[0]))));
    summed.forEach((shard, r) -> {
      whole.put(shard, new long[] {Long.parseLong(r[0])});
      sums.put(shard, r[1]);
    });
    long rowsRead = rowsSummed.get();
    boolean equal = new TreeSet<>(sums.values()).size() == 1
        && whole.values().stream().map(a -> a[0]).distinct().count() == 1;
    if (equal) {
      List<Copy> cs = new ArrayList<>();
      whole.forEach((shard, c) -> cs.add(new Copy(shard, locked.epochs.get(shard), c[0], sums.get(shard), 0, 0, 0)));
      return new Compared(new ReferenceCheck(table, cs, true, List.of(), List.of(), 0, options.buckets(), 0, 0),
          layout, Map.of(), Map.of(), Map.of());
    }

    // Narrow down: the same summary per primary-key hash bucket.
    String bucket = "(hashtextextended(" + row(primaryKey) + ", 0) & " + (options.buckets() - 1) + ")";
    Map<String, Map<Long, String>> perBucket = onEveryCopy((shard, c) -> {
      Map<Long, String> m = new HashMap<>();
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT b, count(*), "
          + "sum(h)::text FROM (SELECT " + bucket + " AS b, " + hash + " AS h FROM " + table + " t) x GROUP BY b")) {
        while (rs.next()) {
          m.put(rs.getLong(1), rs.getLong(2) + ":" + rs.getString(3));
        }
      }
      return m;
    }, (n, m) -> new Progress("buckets", (long) n * options.buckets(), (long) copies.size() * options.buckets(),
        rowsRead));
    List<Long> differing = new ArrayList<>();
    for (long b = 0; b < options.buckets(); b++) {
      final long k = b;
      if (perBucket.values().stream().map(m -> m.getOrDefault(k, "0:0")).distinct().count() > 1) {
        differing.add(b);
      }
    }

    // Row by row, in the differing buckets only: each copy's key -> row hash.
    java.util.concurrent.atomic.AtomicLong keyed = new java.util.concurrent.atomic.AtomicLong();
    Long[] differingBuckets = differing.toArray(Long[]::new);
    Map<String, Map<String, Long>> rows = onEveryCopy((shard, c) -> {
      Map<String, Long> m = new HashMap<>();
      try (PreparedStatement p = c.prepareStatement("SELECT " + row(primaryKey) + ", " + hash + " FROM "
          + table + " t WHERE " + bucket + " = ANY(?)")) {
        p.setArray(1, c.createArrayOf("bigint", differingBuckets));
        try (ResultSet rs = p.executeQuery()) {
          while (rs.next()) {
            m.put(rs.getString(1), rs.getLong(2));
          }
        }
      }
      return m;
    }, (n, m) -> new Progress("rows", n, copies.size(), keyed.addAndGet(m.size())));
    long compared = keyed.get();

    // Per key: the wanted version (majority, or the source's) and who holds it.
    TreeSet<String> keys = new TreeSet<>();
    rows.values().forEach(m -> keys.addAll(m.keySet()));
    Map<String, Long> wanted = new HashMap<>(); // absent from the map: the key's row is wanted nowhere
    Map<String, String> provider = new HashMap<>();
    Map<String, long[]> counts = new TreeMap<>(); // shard -> missing, extra, changed
    copies.keySet().forEach(s -> counts.put(s, new long[3]));
    Map<String, Integer> listed = new HashMap<>();
    List<KeyDiff> diffs = new ArrayList<>();
    List<Unresolved> unresolved = new ArrayList<>();
    long unresolvedKeys = 0;
    for (String key : keys) {
      Map<String, Long> version = new TreeMap<>();
      rows.forEach((shard, m) -> version.put(shard, m.get(key))); // null: absent
      Want w = want(version, source);
      if (!w.resolved()) {
        unresolvedKeys++;
        if (unresolved.size() < options.listLimit()) {
          unresolved.add(new Unresolved(key, labels(version)));
        }
        continue;
      }
      Long want = w.version();
      if (want != null) {
        wanted.put(key, want);
        for (Map.Entry<String, Long> v : version.entrySet()) {
          if (want.equals(v.getValue())) {
            provider.put(key, v.getKey());
            break;
          }
        }
      }
      for (Map.Entry<String, Long> v : version.entrySet()) {
        if (Objects.equals(want, v.getValue())) {
          continue;
        }
        Kind kind = v.getValue() == null ? Kind.MISSING : want == null ? Kind.EXTRA : Kind.CHANGED;
        counts.get(v.getKey())[kind.ordinal()]++;
        if (listed.merge(v.getKey(), 1, Integer::sum) <= options.listLimit()) {
          diffs.add(new KeyDiff(v.getKey(), key, kind));
        }
      }
    }
    diffs.sort((a, b) -> a.shard().equals(b.shard()) ? a.key().compareTo(b.key()) : a.shard().compareTo(b.shard()));
    List<Copy> cs = new ArrayList<>();
    whole.forEach((shard, c) -> {
      long[] k = counts.get(shard);
      cs.add(new Copy(shard, locked.epochs.get(shard), c[0], sums.get(shard), k[0], k[1], k[2]));
    });
    ReferenceCheck check = new ReferenceCheck(table, cs, false, diffs, unresolved, unresolvedKeys, options.buckets(),
        differing.size(), compared);
    return new Compared(check, layout, rows, wanted, provider);
  }

  /**
   * The version a key should have on every copy.
   *
   * @param resolved false when no version is held by a strict majority (and no source was named)
   * @param version the row hash wanted, or null for "no row"
   */
  record Want(boolean resolved, Long version) {}

  /**
   * Decides one key from the version each copy holds ({@code versions}: shard to row hash, null for no
   * row, one entry per copy): the named {@code source}'s version, else the version (no row counts as one)
   * held by more than half of the copies; none when no version has that.
   */
  static Want want(Map<String, Long> versions, String source) {
    if (source != null) {
      if (!versions.containsKey(source)) {
        throw new IllegalArgumentException("source: '" + source + "' is not one of the copies " + versions.keySet());
      }
      return new Want(true, versions.get(source));
    }
    Map<Long, Integer> votes = new HashMap<>();
    int absent = 0;
    for (Long v : versions.values()) {
      if (v == null) {
        absent++;
      } else {
        votes.merge(v, 1, Integer::sum);
      }
    }
    if (2 * absent > versions.size()) {
      return new Want(true, null);
    }
    for (Map.Entry<Long, Integer> v : votes.entrySet()) {
      if (2 * v.getValue() > versions.size()) {
        return new Want(true, v.getKey());
      }
    }
    return new Want(false, null);
  }

  private interface CopyRead<T> {
    T read(String shard, Connection c) throws SQLException;
  }

  /**
   * Runs {@code read} on every copy at once, in the copies' locked transactions, and returns the results by
   * shard. At once because the copies are on different servers and coordinated writers wait while the
   * epoch rows are held: their wait is the slowest copy's read, not the sum of all. Reports {@code
   * progress} (completed count, result) as each copy finishes. Returns only once every read has ended, so
   * that no connection is still in use when a failure rolls the transactions back.
   */
  private <T> Map<String, T> onEveryCopy(CopyRead<T> read,
      java.util.function.BiFunction<Integer, T, Progress> progressOf) throws SQLException {
    Map<String, T> out = new TreeMap<>();
    if (copies.size() == 1) {
      Map.Entry<String, Connection> e = copies.entrySet().iterator().next();
      T r = read.read(e.getKey(), e.getValue());
      out.put(e.getKey(), r);
      progress.accept(progressOf.apply(1, r));
      return out;
    }
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(copies.size(), r -> {
      Thread t = new Thread(r, "reference-copies-" + table);
      t.setDaemon(true);
      return t;
    });
    try {
      java.util.concurrent.atomic.AtomicInteger finished = new java.util.concurrent.atomic.AtomicInteger();
      Map<String, java.util.concurrent.Future<T>> futures = new TreeMap<>();
      copies.forEach((shard, c) -> futures.put(shard, pool.submit(() -> {
        T r = read.read(shard, c);
        synchronized (progress) {
          progress.accept(progressOf.apply(finished.incrementAndGet(), r));
        }
        return r;
      })));
      Throwable failed = null;
      for (Map.Entry<String, java.util.concurrent.Future<T>> f : futures.entrySet()) {
        try {
          out.put(f.getKey(), f.getValue().get());
        } catch (java.util.concurrent.ExecutionException e) {
          if (failed == null) {
            failed = e.getCause();
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          failed = failed != null ? failed : new ShardmapException(ErrorCode.ABORTED, "interrupted while reading the "
              + "copies of " + table, e);
        }
      }
      if (failed instanceof SQLException se) {
        throw se;
      }
      if (failed instanceof RuntimeException re) {
        throw re;
      }
      if (failed != null) {
        throw new IllegalStateException("reading a copy of " + table + " failed", failed);
      }
      return out;
    } finally {
      pool.shutdownNow();
    }
  }

  /** Labels the versions of one key: absent, or v1, v2, ... in order of first appearance by shard. */
  private static Map<String, String> labels(Map<String, Long> version) {
    Map<Long, String> names = new LinkedHashMap<>();
    Map<String, String> out = new TreeMap<>();
    version.forEach((shard, v) -> out.put(shard, v == null ? "absent"
        : names.computeIfAbsent(v, x -> "v" + (names.size() + 1))));
    return out;
  }

  /** The copies' columns; refused unless every copy has the same columns with the same types. */
  private Layout layout() throws SQLException {
    Map<String, List<String>> byAttnum = new TreeMap<>();
    Map<String, List<String>> writable = new TreeMap<>();
    Map<String, String> first = null;
    String firstShard = null;
    for (Map.Entry<String, Connection> e : copies.entrySet()) {
      Map<String, String> types = new TreeMap<>();
      List<String> ordered = new ArrayList<>();
      List<String> w = new ArrayList<>();
      try (PreparedStatement p = e.getValue().prepareStatement("SELECT attname, format_type(atttypid, atttypmod), "
          + "attgenerated <> '' FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 "
          + "AND NOT attisdropped ORDER BY attnum")) {
        p.setString(1, table);
        try (ResultSet rs = p.executeQuery()) {
          while (rs.next()) {
            types.put(rs.getString(1), rs.getString(2));
            ordered.add(rs.getString(1));
            if (!rs.getBoolean(3)) {
              w.add(rs.getString(1));
            }
          }
        }
      }
      if (types.isEmpty()) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard '" + e.getKey() + "' has no table " + table
            + ", though the catalog lists it as a copy");
      }
      List<String> pk = ReferenceGuard.primaryKey(e.getValue(), table);
      if (!pk.equals(primaryKey)) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "shard '" + e.getKey() + "': the primary key of "
            + table + " is " + pk + ", the record says " + primaryKey + "; copies are compared by primary key");
      }
      if (first == null) {
        first = types;
        firstShard = e.getKey();
      } else if (!first.equals(types)) {
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "the columns of " + table + " differ: shard '"
            + firstShard + "' has " + first + ", shard '" + e.getKey() + "' has " + types
            + "; rows can only be compared once every copy has the same columns");
      }
      byAttnum.put(e.getKey(), ordered);
      writable.put(e.getKey(), w);
    }
    return new Layout(List.copyOf(first.keySet()), byAttnum, writable);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Repairing

  /** What one copy needs: keys to delete; keys to update and insert, each with the shard to read it from. */
  private record Plan(List<String> delete, Map<String, String> update, Map<String, String> insert) {}

  private Map<String, Plan> plan(Compared c) {
    Map<String, Plan> plans = new TreeMap<>();
    c.rows.forEach((shard, has) -> {
      Plan p = new Plan(new ArrayList<>(), new TreeMap<>(), new TreeMap<>());
      TreeSet<String> keys = new TreeSet<>(has.keySet());
      keys.addAll(c.wanted.keySet());
      for (String key : keys) {
        Long want = c.wanted.get(key);
        Long now = has.get(key);
        if (Objects.equals(want, now)) {
          continue;
        }
        if (want == null) {
          p.delete.add(key);
        } else if (now == null) {
          p.insert.put(key, c.provider.get(key));
        } else {
          p.update.put(key, c.provider.get(key));
        }
      }
      if (!p.delete.isEmpty() || !p.update.isEmpty() || !p.insert.isEmpty()) {
        plans.put(shard, p);
      }
    });
    return plans;
  }

  private void apply(Layout layout, String shard, Plan p) throws SQLException {
    Connection target = copies.get(shard);
    ReferenceGuard.bypass(target);
    long total = p.delete.size() + p.update.size() + p.insert.size();
    long done = 0;
    String step = "repair " + shard;
    for (List<String> batch : batches(p.delete)) {
      try (PreparedStatement s = target.prepareStatement("DELETE FROM " + table + " t WHERE " + row(primaryKey)
          + " = ANY(?)")) {
        s.setArray(1, target.createArrayOf("text", batch.toArray(String[]::new)));
        done += s.executeUpdate();
      }
      progress.accept(new Progress(step, done, total, total));
    }
    List<String> cols = layout.byAttnum.get(shard);
    List<String> writable = layout.writable.get(shard);
    List<String> setCols = writable.stream().filter(c -> !primaryKey.contains(c)).toList();
    String parsed = "(SELECT x::" + table + " AS r FROM unnest(?::text[]) x) s";
    String match = "(" + primaryKey.stream().map(c -> "t." + ident(c)).collect(Collectors.joining(", ")) + ") = ("
        + primaryKey.stream().map(c -> "(s.r)." + ident(c)).collect(Collectors.joining(", ")) + ")";
    for (Map.Entry<String, List<String>> e : rowsFrom(layout, shard, p.update).entrySet()) {
      if (setCols.isEmpty()) {
        break; // every column is a key column: a row cannot differ without its key differing
      }
      for (List<String> batch : batches(e.getValue())) {
        try (PreparedStatement s = target.prepareStatement("UPDATE " + table + " t SET ("
            + setCols.stream().map(ReferenceVerifier::ident).collect(Collectors.joining(", ")) + ") = ROW("
            + setCols.stream().map(c -> "(s.r)." + ident(c)).collect(Collectors.joining(", ")) + ") FROM "
            + parsed + " WHERE " + match)) {
          s.setArray(1, target.createArrayOf("text", batch.toArray(String[]::new)));
          done += s.executeUpdate();
        }
        progress.accept(new Progress(step, done, total, total));
      }
    }
    for (Map.Entry<String, List<String>> e : rowsFrom(layout, shard, p.insert).entrySet()) {
      for (List<String> batch : batches(e.getValue())) {
        try (PreparedStatement s = target.prepareStatement("INSERT INTO " + table + " ("
            + writable.stream().map(ReferenceVerifier::ident).collect(Collectors.joining(", ")) + ") OVERRIDING SYSTEM "
            + "VALUE SELECT " + writable.stream().map(c -> "(s.r)." + ident(c)).collect(Collectors.joining(", "))
            + " FROM " + parsed)) {
          s.setArray(1, target.createArrayOf("text", batch.toArray(String[]::new)));
          done += s.executeUpdate();
        }
        progress.accept(new Progress(step, done, total, total));
      }
    }
    if (done != total) {
      // The rows are locked against coordinated writers; anything else changing them is a bug to stop at.
      throw new ShardmapException(ErrorCode.ABORTED, "repairing the copy of " + table + " on shard '" + shard
          + "' changed " + done + " rows where " + total + " were planned; rolled back, nothing was changed");
    }
  }

  /**
   * The wanted rows of {@code keys} (key -> providing shard) as text in the column order of {@code target}'s
   * table (what {@code text::table} parses there), grouped by providing shard. Read in the providers' locked
   * transactions.
   */
  private Map<String, List<String>> rowsFrom(Layout layout, String target, Map<String, String> keys)
      throws SQLException {
    Map<String, List<String>> byProvider = new TreeMap<>();
    keys.forEach((key, provider) -> byProvider.computeIfAbsent(provider, x -> new ArrayList<>()).add(key));
    Map<String, List<String>> out = new TreeMap<>();
    for (Map.Entry<String, List<String>> e : byProvider.entrySet()) {
      Connection c = copies.get(e.getKey());
      List<String> texts = new ArrayList<>();
      for (List<String> batch : batches(e.getValue())) {
        try (PreparedStatement p = c.prepareStatement("SELECT " + row(layout.byAttnum.get(target)) + " FROM " + table
            + " t WHERE " + row(primaryKey) + " = ANY(?)")) {
          p.setArray(1, c.createArrayOf("text", batch.toArray(String[]::new)));
          try (ResultSet rs = p.executeQuery()) {
            while (rs.next()) {
              texts.add(rs.getString(1));
            }
          }
        }
      }
      if (texts.size() != e.getValue().size()) {
        throw new ShardmapException(ErrorCode.ABORTED, "shard '" + e.getKey() + "' returned " + texts.size()
            + " of the " + e.getValue().size() + " rows of " + table + " it held when compared; nothing was changed");
      }
      out.put(e.getKey(), texts);
    }
    return out;
  }

  private static List<List<String>> batches(List<String> all) {
    List<List<String>> out = new ArrayList<>();
    for (int i = 0; i < all.size(); i += BATCH) {
      out.add(all.subList(i, Math.min(all.size(), i + BATCH)));
    }
    return out;
  }

  /** {@code ROW(t.a, t.b)::text}: the text PostgreSQL prints for a row of these columns of alias t. */
  static String row(List<String> cols) {
    return "ROW(" + cols.stream().map(c -> "t." + ident(c)).collect(Collectors.joining(", ")) + ")::text";
  }

  static String ident(String name) {
    return "\"" + name.replace("\"", "\"\"") + "\"";
  }
}
