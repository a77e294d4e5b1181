package io.shardmap.migrator;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.internal.MigrationStore;
import io.shardmap.migrator.internal.MoveDriver;
import io.shardmap.migrator.internal.PgConnector;
import io.shardmap.migrator.internal.ReferenceCopies;
import io.shardmap.migrator.internal.Planner;
import io.shardmap.migrator.internal.Resharder;
import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Plans, drives, cancels and lists migrations — online moves of key ranges, hash buckets, ring arcs and
 * directory entries between PostgreSQL shards (docs/migrator-design.md) — and reshards hash and
 * consistent-hash keyspaces with them. Any number of Migrators (processes) may run against one directory: a
 * migration is driven by whichever holds its etcd owner key, and resumed by another after a crash.
 */
public final class Migrator implements AutoCloseable {
  private static final Logger log = Logger.getLogger(Migrator.class.getName());

  private final MigratorOptions options;
  private final MetaStore store;
  private final boolean ownsStore;
  private final MigrationStore ms;
  private final PgConnector pg;
  private final MoveDriver.ClientAckSource acks;
  private final ScheduledExecutorService timers;
  private final ConcurrentHashMap<String, Boolean> driving = new ConcurrentHashMap<>();

  private Migrator(MigratorOptions options, MetaStore store, boolean ownsStore) {
    this.options = options;
    this.store = store;
    this.ownsStore = ownsStore;
    this.ms = new MigrationStore(store, new CatalogPaths(options.etcdPrefix()), options.etcdTimeout(),
        options.etcdRetryFor(), options.ticker(), options.clock());
    this.pg = new PgConnector(ms, options.pgUser(), options.pgPassword(), options.pgConnectTimeout());
    // Every directory server publishes the lowest map revision its live clients applied; cleanup waits for
    // all of them to pass the cutover. An unreadable etcd counts as "still waiting" (the grace bounds it).
    CatalogPaths paths = new CatalogPaths(options.etcdPrefix());
    this.acks = revision -> {
      try {
        io.shardmap.catalog.ClientAcks.Acks a = io.shardmap.catalog.ClientAcks.read(store, paths, options.etcdTimeout());
        return new MoveDriver.Acked(a.behind(revision), a.clients());
      } catch (ShardmapException e) {
        return new MoveDriver.Acked(Optional.of("client acknowledgements (unreadable: " + e.getMessage() + ")"), 0);
      }
    };
    this.timers = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "migrator-lease");
      t.setDaemon(true);
      return t;
    });
  }

  public static Migrator open(MigratorOptions options) {
    MetaStore store = EtcdMetaStore.builder().endpoints(options.etcdEndpoints()).requestTimeout(options.etcdTimeout())
        .build();
    return new Migrator(options, store, true);
  }

  /**
   * A Migrator on a store the caller owns (and closes after this Migrator): for embedding the migrator in
   * a process that already holds an etcd client, and for tests that put a store between it and etcd.
   */
  public static Migrator open(MigratorOptions options, MetaStore store) {
    return new Migrator(options, java.util.Objects.requireNonNull(store, "store"), false);
  }

  /**
   * Validates and records a move (state PLANNED); nothing is copied until a worker drives it. Reads that
   * fail transiently are retried for {@link MigratorOptions#etcdRetryFor}; a recording whose outcome etcd
   * left unknown is read back, so the move is recorded at most once and reported as it stands.
   */
  public Migration plan(MoveSpec spec) {
    return new Planner(ms, pg, options.clock()).plan(spec).migration();
  }

  public Migration status(String id) {
    return ms.list().stream().filter(v -> v.id().equals(id)).findFirst()
        .orElseThrow(() -> ShardmapException.notFound("id: no migration '" + id + "'")).migration();
  }

  /**
   * The rows a migration copies, as PostgreSQL's planner estimates them on the source (summed over its
   * tables; see {@link io.shardmap.migrator.internal.RangeTableMove#estimateRange}). Empty when the source
   * cannot be asked: an estimate is for progress display only.
   */
  public java.util.OptionalLong estimateRows(Migration m) {
    if (m.getTablesCount() == 0) {
      return java.util.OptionalLong.empty();
    }
    try (java.sql.Connection c = pg.open("source", m.getSource())) {
      long total = 0;
      for (io.shardmap.migrator.internal.RangeTableMove t : MoveDriver.tableMoves(m, c)) {
        total += t.estimateRange(c);
      }
      return java.util.OptionalLong.of(total);
    } catch (SQLException | RuntimeException e) {
      return java.util.OptionalLong.empty();
    }
  }

  /** The keyspace's spec, refusing one that is neither hash nor ring, and a shard to add that is unknown. */
  private KeyspaceSpec reshardable(Resharder r, String keyspace, String shard, boolean add) {
    KeyspaceSpec spec = r.spec(keyspace, Strategy.STRATEGY_HASH, Strategy.STRATEGY_CONSISTENT_HASH);
    if (add) {
      pg.shard("shard", shard);
    }
    return spec;
  }

  /**
   * What {@link #reshard} would do now, one line per step: the buckets and their owners, or how many ring
   * nodes join or leave and the share of keys that changes owner. Nothing is written.
   */
  public List<String> reshardPlan(String keyspace, String shard, boolean add, int vnodes) {
    Resharder r = new Resharder(ms);
    KeyspaceSpec spec = reshardable(r, keyspace, shard, add);
    List<String> out = new java.util.ArrayList<>();
    if (spec.getStrategy() == Strategy.STRATEGY_HASH) {
      for (Resharder.BucketMove b : r.hashMoves(keyspace, shard, add)) {
        out.add("bucket " + b.bucket() + ": " + b.from() + " -> " + b.to());
      }
      return out;
    }
    int count = ringSteps(r, spec, shard, add, vnodes);
    out.add(count + " ring node" + (count == 1 ? "" : "s") + " of " + shard + (add ? " join" : " leave")
        + String.format(java.util.Locale.ROOT, "; %.1f%% of the keys change owner",
        100 * r.ringMovedFraction(keyspace, shard, add, count)));
    return out;
  }

  private static int ringSteps(Resharder r, KeyspaceSpec spec,
                               String shard, boolean add, int vnodes) {
    int has = r.vnodes(spec.getName(), shard);
    if (add && has > 0) {
      throw ShardmapException.precondition("shard: '" + shard + "' already has " + has + " nodes on the ring of "
          + "keyspace '" + spec.getName() + "'");
    }
    if (!add && has == 0) {
      throw ShardmapException.notFound("shard: '" + shard + "' has no node on the ring of keyspace '"
          + spec.getName() + "'");
    }
    return add ? (vnodes > 0 ? vnodes : spec.getDefaultVnodes()) : has;
  }

  /**
   * Adds {@code shard} to ({@code add}) or removes it from a hash or consistent-hash keyspace: the moves of
   * {@link #reshardPlan}, each planned and driven here to its end before the next (a ring's next node
   * depends on the previous one). A shard added to a ring gets {@code vnodes} nodes (0: the keyspace's
   * default). {@code tuning} sets the options of every move; {@code log} hears of each step. Stops at the
   * first move that does not end DONE (FAILED_PRECONDITION naming it). Returns the migrations driven.
   */
  public List<Migration> reshard(String keyspace, String shard, boolean add, int vnodes,
                                 java.util.function.UnaryOperator<MoveSpec.Builder> tuning, Consumer<String> log) {
    Resharder r = new Resharder(ms);
    KeyspaceSpec spec = reshardable(r, keyspace, shard, add);
    if (add) {
      // A ring node whose arc stays on its shard changes only the layout: the shard needs its reference
      // copies before that edit too (moves get theirs at their start).
      new ReferenceCopies(ms, pg, log).ensureOn(keyspace, shard);
    }
    List<Migration> done = new java.util.ArrayList<>();
    if (spec.getStrategy() == Strategy.STRATEGY_HASH) {
      for (Resharder.BucketMove b : r.hashMoves(keyspace, shard, add)) {
        done.add(reshardStep(tuning.apply(MoveSpec.builder().keyspace(keyspace).bucket(b.bucket()).target(b.to())),
            "bucket " + b.bucket() + " from " + b.from() + " to " + b.to(), done.size(), log));
      }
      return done;
    }
    int steps = ringSteps(r, spec, shard, add, vnodes);
    for (int i = 0; i < steps; i++) {
      Resharder.RingStep s = r.nextRingStep(keyspace, shard, add);
      String what = "ring node " + s.shard() + "#" + s.vnode() + (add ? " joins" : " leaves");
      if (!s.movesData()) {
        log.accept(what + ": its arc stays on " + shard + ", no data moves (layout changed)");
        continue;
      }
      MoveSpec.Builder b = MoveSpec.builder().keyspace(keyspace);
      if (add) {
        b.ringJoin().target(shard);
      } else {
        b.ringLeave(shard);
      }
      done.add(reshardStep(tuning.apply(b), what + " (" + s.from() + " -> " + s.to() + ")", done.size(), log));
    }
    return done;
  }

  private Migration reshardStep(MoveSpec.Builder spec, String what, int before, Consumer<String> log) {
    Migration planned = plan(spec.build());
    log.accept(what + ": migration " + planned.getId());
    // A worker elsewhere may have claimed it first: then wait for that worker to finish it (or to die, when
    // this process takes over once its lease expires).
    Migration end = drive(planned.getId(), p -> { }, Duration.ofDays(1));
    if (end.getState() != io.shardmap.proto.v1.MigrationState.MIGRATION_STATE_DONE) {
      throw ShardmapException.precondition("reshard stopped: migration '" + end.getId() + "' (" + what + ") ended "
          + States.label(end.getState()) + (end.getLastError().isEmpty() ? "" : ": " + end.getLastError()) + "; "
          + before + " earlier move" + (before == 1 ? "" : "s") + " done");
    }
    log.accept(what + ": done, " + end.getRowsCopied() + " rows, write pause " + end.getPauseMs() + " ms");
    return end;
  }

  // ---------------------------------------------------------------- reference tables

  /**
   * Declares {@code table} (any name form, canonicalized on {@code source}) a reference table of
   * {@code keyspaces}, or of every keyspace ({@code allKeyspaces}): its rows are copied from {@code source}
   * to every shard that owns keys of them, every copy is guarded, then the record is written
   * (docs/reference-tables.md). Refused with nothing changed when the table has no primary key
   * (INVALID_ARGUMENT), is missing or different on an owner (FAILED_PRECONDITION), or a keyspace or the
   * source is unknown (NOT_FOUND). Safe to run again after a crash at any step; {@code log} hears of each.
   */
  public ReferenceTable addReference(String table, List<String> keyspaces, boolean allKeyspaces, String source,
                                     Consumer<String> log) {
    return new ReferenceCopies(ms, pg, log).add(table, keyspaces, allKeyspaces, source);
  }

  /**
   * Gives every owner of a reference table's keyspaces that lacks a copy one; with {@code shards}, gives those
   * shards (about to own keys) the copies of every reference table of {@code keyspace} (null: of every one).
   * Returns the records changed.
   */
  public List<ReferenceTable> syncReferences(List<String> shards, String keyspace, Consumer<String> log) {
    ReferenceCopies r = new ReferenceCopies(ms, pg, log);
    if (shards.isEmpty()) {
      if (keyspace != null) {
        throw ShardmapException.invalid("keyspace", "applies with --shard only (sync without shards covers every owner)");
      }
      return r.sync(null);
    }
    return r.syncShards(shards, keyspace);
  }

  /** The reference tables' records (table, keyspaces, copies, epoch), by name. */
  public List<ReferenceTable> listReferences() {
    return new ReferenceCopies(ms, pg, line -> { }).list();
  }

  /**
   * Drops the guards of every copy of reference table {@code table} (canonical name as {@link
   * #listReferences} shows it; an unqualified name means schema public), then its record; the data stay.
   */
  public ReferenceTable removeReference(String table, Consumer<String> log) {
    String name = table.indexOf('.') < 0 ? "public." + table : table;
    return new ReferenceCopies(ms, pg, log).remove(name);
  }

  public List<Migration> list() {
    return ms.list().stream().map(MigrationStore.Versioned::migration).toList();
  }

  /**
   * Compares every copy of reference table {@code table} (its catalog record's copies) at one consistent
   * point, by checksums, narrowing differences down to primary keys (docs/reference-verify.md). Changes
   * nothing.
   *
   * @throws ShardmapException NOT_FOUND when no reference table {@code table} is declared; FAILED_PRECONDITION
   *     when a copy is not guarded or the copies' columns differ; ABORTED when the copies' epoch rows stay
   *     locked past the settings' bounds; UNAVAILABLE when a shard cannot be reached
   */
  public ReferenceCheck verifyReference(String table, ReferenceCheck.Settings settings,
      Consumer<ReferenceCheck.Progress> progress) {
    io.shardmap.proto.v1.ReferenceTable record = referenceRecord(table);
    return withCopies(record, settings, progress, io.shardmap.migrator.internal.ReferenceVerifier::verify);
  }

  /**
   * Repairs every copy of reference table {@code table} from the majority version of each key
   * ({@code source} null) or from the copy on shard {@code source}, then verifies again
   * (docs/reference-verify.md). With {@code dryRun} only computes the changes.
   *
   * @throws ShardmapException NOT_FOUND for an unknown table or an unregistered {@code source};
   *     FAILED_PRECONDITION, with nothing changed, when {@code source} holds no copy or a key has no majority
   *     version; otherwise as {@link #verifyReference}
   */
  public ReferenceRepair repairReference(String table, String source, boolean dryRun,
      ReferenceCheck.Settings settings, Consumer<ReferenceCheck.Progress> progress) {
    io.shardmap.proto.v1.ReferenceTable record = referenceRecord(table);
    if (source != null && !record.getCopiesList().contains(source)) {
      pg.shard("--source", source); // NOT_FOUND when no such shard is registered at all
    }
    return withCopies(record, settings, progress, c -> c.repair(source, dryRun));
  }

  /** The record of reference table {@code table}: as named, else (no schema given) in schema public. */
  private io.shardmap.proto.v1.ReferenceTable referenceRecord(String table) {
    if (table == null || table.isBlank()) {
      throw new ShardmapException(ErrorCode.INVALID_ARGUMENT, "--table: a reference table name is required");
    }
    List<String> names = table.contains(".") ? List.of(table) : List.of(table, "public." + table);
    for (String name : names) {
      io.shardmap.store.RangeResult r = ms.read("reading reference table " + name,
          () -> ms.store().get(ms.paths().referenceTable(name)));
      if (!r.kvs().isEmpty()) {
        return io.shardmap.catalog.Records.decode(r.kvs().get(0), io.shardmap.proto.v1.ReferenceTable.parser());
      }
    }
    throw new ShardmapException(ErrorCode.NOT_FOUND, "--table: no reference table '" + table + "' is declared "
        + "(names are schema-qualified as PostgreSQL prints them, e.g. public.countries; 'reference list' shows them)");
  }

  private interface OnCopies<T> {
    T run(io.shardmap.migrator.internal.ReferenceVerifier copies) throws SQLException;
  }

  private <T> T withCopies(io.shardmap.proto.v1.ReferenceTable record, ReferenceCheck.Settings settings,
      Consumer<ReferenceCheck.Progress> progress, OnCopies<T> body) {
    java.util.Map<String, java.sql.Connection> conns = new java.util.TreeMap<>();
    try {
      for (String shard : record.getCopiesList()) {
        conns.put(shard, pg.open("copies", shard));
      }
      return body.run(new io.shardmap.migrator.internal.ReferenceVerifier(record.getTable(),
          record.getPrimaryKeyList(), conns, settings, progress));
    } catch (SQLException e) {
      // A lost connection is worth retrying; a constraint that refused a repair (a foreign key pointing at a
      // row the source lacks) needs a person; the transactions were rolled back either way.
      String state = e.getSQLState() == null ? "" : e.getSQLState();
      ErrorCode code = state.startsWith("08") || state.startsWith("57P") ? ErrorCode.UNAVAILABLE
          : state.startsWith("23") ? ErrorCode.FAILED_PRECONDITION : ErrorCode.INTERNAL;
      throw new ShardmapException(code, "comparing or repairing the copies of " + record.getTable() + " failed: "
          + e.getMessage() + " (SQLSTATE " + state + ")", e);
    } finally {
      for (java.sql.Connection c : conns.values()) {
        try {
          c.close();
        } catch (SQLException e) {
          // Closing a broken connection: nothing more to release.
        }
      }
    }
  }

  /**
   * Asks for a migration to be cancelled. Before cutover the worker driving it (or the next {@link #drive})
   * undoes it; after cutover it fails with FAILED_PRECONDITION.
   */
  public Migration requestCancel(String id) {
    return ms.requestCancel(id).migration();
  }

  /**
   * Drives a migration to DONE or CANCELLED in this thread, calling {@code progress} after every persisted
   * step. If another worker holds it, waits for that worker to finish or die (up to {@code waitForOwner})
   * and fails with ABORTED naming it after that.
   */
  public Migration drive(String id, Consumer<Migration> progress, Duration waitForOwner) {
    return drive(id, progress, waitForOwner, () -> false);
  }

  /**
   * Like {@link #drive(String, Consumer, Duration)}, until {@code stop} is true. It is asked at every step
   * boundary (after each persisted step, between cleanup batches, in waits): the step in progress ends and
   * is persisted, then the migration is handed back at once — connections closed (so the source's advisory
   * lock is released), owner key deleted, lease revoked — so any worker can resume it without waiting for
   * the lease to expire. Returns the record as it then stands, whose state is not terminal; or the final
   * record if it ended first.
   */
  public Migration drive(String id, Consumer<Migration> progress, Duration waitForOwner, BooleanSupplier stop) {
    long deadline = options.ticker().getAsLong() + waitForOwner.toNanos();
    while (true) {
      MigrationStore.Versioned v = ms.require(id);
      if (States.terminal(v.migration().getState()) || stop.getAsBoolean()) {
        return v.migration();
      }
      long lease = ms.await("granting a lease", store.grantLease(options.leaseTtl()));
      Optional<MigrationStore.Ownership> own = ms.claim(id, options.workerName(), lease);
      if (own.isPresent()) {
        return driveOwned(own.get(), progress, stop);
      }
      ms.await("revoking a lease", store.revokeLease(lease));
      if (options.ticker().getAsLong() > deadline) {
        throw new ShardmapException(ErrorCode.ABORTED, "id: migration '" + id + "' is being driven by worker '"
            + ms.owners().getOrDefault(id, "?") + "'");
      }
      sleepQuietly(options.pollInterval());
    }
  }

  private Migration driveOwned(MigrationStore.Ownership own, Consumer<Migration> progress, BooleanSupplier stop) {
    driving.put(own.id(), true);
    long ttlMs = options.leaseTtl().toMillis();
    AtomicLong renewedAt = new AtomicLong(options.ticker().getAsLong());
    ScheduledFuture<?> renewal = timers.scheduleAtFixedRate(() -> {
      try {
        ms.await("renewing lease", store.keepAliveOnce(own.leaseId()));
        renewedAt.set(options.ticker().getAsLong());
      } catch (RuntimeException e) {
        log.log(Level.WARNING, "migration " + own.id() + ": lease renewal failed: " + e.getMessage());
      }
    }, ttlMs / 3, ttlMs / 3, TimeUnit.MILLISECONDS);
    // The lease counts as alive while the last renewal is younger than two thirds of its TTL: a worker cut
    // off from etcd stops before etcd could let another take over.
    BooleanSupplier alive = () -> options.ticker().getAsLong() - renewedAt.get() < TimeUnit.MILLISECONDS.toNanos(ttlMs * 2 / 3);
    boolean crashed = true;
    try {
      Migration m = new MoveDriver(ms, pg, own, alive, stop, acks, options.clock(), options.ticker(), options.pollInterval(),
          options.faultPoints(), progress).drive();
      crashed = false;
      return m;
    } catch (ShardmapException e) {
      crashed = false;
      throw e;
    } catch (SQLException e) {
      crashed = false;
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "migration " + own.id() + ": " + e.getMessage()
          + " (SQLSTATE " + e.getSQLState() + "); the step is retried when the migration is driven again", e);
    } finally {
      renewal.cancel(false);
      driving.remove(own.id());
      if (!crashed) {
        // A clean stop hands the migration over at once; a crash leaves the lease to expire.
        try {
          ms.release(own);
          ms.await("revoking a lease", store.revokeLease(own.leaseId()));
        } catch (RuntimeException e) {
          log.log(Level.WARNING, "migration " + own.id() + ": releasing it failed (its lease expires): " + e);
        }
      }
    }
  }

  /**
   * Runs as a worker until {@code stop} says so: drives every unfinished migration nobody holds, up to
   * {@code parallel} at once, and retries failed ones after {@code retryDelay}.
   *
   * <p>Once {@code stop} is true it claims nothing more, and each drive in progress ends its current step
   * and hands its migration back (see {@link #drive(String, Consumer, Duration, BooleanSupplier)}); nothing
   * is interrupted. Returns when all have, or after {@code drainTimeout}: then the drives still running are
   * interrupted (the interrupted step is repeated by whoever continues; their migrations are free once
   * their leases expire), and their ids are returned.
   *
   * @return the migrations still being driven when the drain timed out; empty when all were handed back
   */
  public List<String> runWorker(BooleanSupplier stop, int parallel, Duration retryDelay, Duration drainTimeout) {
    if (parallel < 1) {
      throw new IllegalArgumentException("parallel: must be at least 1, got " + parallel);
    }
    if (retryDelay == null || retryDelay.isNegative() || drainTimeout == null || drainTimeout.isNegative()) {
      throw new IllegalArgumentException("retryDelay, drainTimeout: must not be negative, got " + retryDelay + ", "
          + drainTimeout);
    }
    ExecutorService pool = Executors.newFixedThreadPool(parallel);
    ConcurrentHashMap<String, Long> retryAfter = new ConcurrentHashMap<>();
    // This worker's drives: `driving` also holds foreground drives of this Migrator, which are not ours to wait for.
    Set<String> mine = ConcurrentHashMap.newKeySet();
    try {
      while (!stop.getAsBoolean()) {
        try {
          var owners = ms.owners();
          for (MigrationStore.Versioned v : ms.list()) {
            String id = v.id();
            if (stop.getAsBoolean()) {
              break;
            }
            if (States.terminal(v.migration().getState()) || owners.containsKey(id) || driving.containsKey(id)
                || driving.size() >= parallel || retryAfter.getOrDefault(id, 0L) > options.ticker().getAsLong()) {
              continue;
            }
            driving.put(id, true);
            mine.add(id);
            pool.execute(() -> {
              try {
                Migration m = drive(id, p -> { }, Duration.ZERO, stop);
                if (States.terminal(m.getState())) {
                  log.info(() -> "migration " + id + " ended " + States.label(m.getState()));
                } else {
                  log.info(() -> "migration " + id + " handed back at " + States.label(m.getState()));
                }
              } catch (RuntimeException e) {
                log.log(Level.WARNING, "migration " + id + " failed; retrying later: " + e.getMessage());
                retryAfter.put(id, options.ticker().getAsLong() + retryDelay.toNanos());
              } finally {
                driving.remove(id);
                mine.remove(id);
              }
            });
          }
        } catch (ShardmapException e) {
          log.log(Level.WARNING, "worker: listing migrations failed: " + e.getMessage());
        }
        for (int i = 0; i < 5 && !stop.getAsBoolean(); i++) {
          sleepQuietly(options.pollInterval());
        }
      }
    } catch (RuntimeException e) {
      pool.shutdownNow(); // this thread was interrupted: so are its drives
      throw e;
    }
    pool.shutdown();
    try {
      if (pool.awaitTermination(drainTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
        return List.of();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    List<String> held = List.copyOf(new java.util.TreeSet<>(mine));
    pool.shutdownNow();
    return held;
  }

  private static void sleepQuietly(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted");
    }
  }

  @Override
  public void close() {
    timers.shutdownNow();
    if (ownsStore) {
      store.close();
    }
  }
}
