package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.KeyspaceRead;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.Records;
import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Migration;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Migration records in etcd: {@code {prefix}/migrations/{id}} (a {@link Migration}) and the owner key
 * {@code {prefix}/migration-owners/{id}}, held under the driving worker's lease. Every state write of a
 * driving worker compares the record's mod revision and the owner key's create revision, so a worker
 * whose lease expired (and whose migration another worker took over) can never write again.
 *
 * <p>One retry policy for etcd: reads are idempotent, so {@link #read} retries one that failed transiently
 * (etcd unavailable, or no answer within the request timeout) with a growing pause ({@link #READ_BACKOFF}), until {@code retryFor}
 * has passed since its first attempt. Writes are never simply sent again: a write whose outcome is unknown
 * is settled by reading back what it would have written (see {@link Planner} and {@link MoveDriver}).
 */
public final class MigrationStore {
  /**
   * Pauses between attempts of a read: 50-75 ms, growing by half to doubling up to 1-1.5 s (the
   * ceiling doubles from 75 ms to 1.5 s, each pause drawn from its upper two thirds).
   */
  static final Backoff READ_BACKOFF = Backoff.exponential(Duration.ofMillis(75), Duration.ofMillis(1_500))
      .withJitter(1.0 / 3);

  private final MetaStore store;
  private final CatalogPaths paths;
  private final Duration timeout;
  private final Duration retryFor;
  private final LongSupplier ticker;
  private final Clock clock;
  private final MapEdits edits;

  /**
   * @param timeout deadline of each etcd request
   * @param retryFor how long a read that failed transiently is retried, counted from its first attempt
   * @param ticker monotonic nanoseconds (deadlines and durations)
   * @param clock wall time written into records
   */
  public MigrationStore(MetaStore store, CatalogPaths paths, Duration timeout, Duration retryFor, LongSupplier ticker,
                        Clock clock) {
    this.store = store;
    this.paths = paths;
    this.timeout = timeout;
    this.retryFor = retryFor;
    this.ticker = ticker;
    this.clock = clock;
    this.edits = new MapEdits(paths);
  }

  /** The map edits the migrator shares with the admin API. */
  public MapEdits edits() {
    return edits;
  }

  /** The migrator's monotonic clock. */
  public LongSupplier ticker() {
    return ticker;
  }

  /** The migrator's wall clock. */
  public Clock clock() {
    return clock;
  }

  /**
   * The optimistic loop for the migrator's catalog writes: unknown outcomes are read back for
   * {@link #retryFor}. etcd's own limit on transaction size applies (the migrator does not know
   * {@code --max-txn-ops}; a too large transaction fails with INVALID_ARGUMENT from etcd).
   */
  public CatalogTxns.Builder txns(int maxAttempts) {
    return CatalogTxns.builder(store).timeout(timeout).maxTxnOps(Integer.MAX_VALUE).maxAttempts(maxAttempts)
        .readBackFor(retryFor).nanoTime(ticker);
  }

  /** One consistent read of a keyspace (and the shard registrations) to plan map edits on; retried like {@link #read}. */
  public KeyspaceRead readKeyspace(String ks) {
    RangeResult shards = read("reading the shard registrations", () -> store.getPrefix(paths.shardsPrefix()));
    RangeResult records = read("reading keyspace '" + ks + "'", () -> store.getPrefix(paths.keyspacePrefix(ks)));
    RangeResult references = read("reading the reference tables", () -> store.getPrefix(paths.referenceTablesPrefix()));
    return KeyspaceRead.of(paths, ks, shards, records, references);
  }

  /**
   * Every keyspace and the shard registrations as one snapshot, at the revision of the keyspaces' read
   * (what a reference-table declaration compares the owners guard against); retried like {@link #read}.
   */
  public io.shardmap.core.DirectorySnapshot readMaps() {
    RangeResult shards = read("reading the shard registrations", () -> store.getPrefix(paths.shardsPrefix()));
    RangeResult keyspaces = read("reading the keyspaces", () -> store.getPrefix(paths.keyspacesPrefix()));
    List<KeyValue> all = new ArrayList<>(shards.kvs());
    all.addAll(keyspaces.kvs());
    return io.shardmap.core.DirectorySnapshot.empty(0).apply(keyspaces.revision(),
        new io.shardmap.catalog.ChangeDecoder(paths).toChanges(all));
  }

  /** One linearizable read of the reference-table records; retried like {@link #read}. */
  public io.shardmap.catalog.ReferenceTables readReferences() {
    return io.shardmap.catalog.ReferenceTables.of(paths,
        read("reading the reference tables", () -> store.getPrefix(paths.referenceTablesPrefix())));
  }

  /** How long a read that failed transiently is retried (also the read-back of an unknown outcome). */
  public Duration retryFor() {
    return retryFor;
  }

  public MetaStore store() {
    return store;
  }

  public CatalogPaths paths() {
    return paths;
  }

  /** A migration record with the mod revision it was read at. */
  public record Versioned(Migration migration, long modRevision) {
    public String id() {
      return migration.getId();
    }
  }

  /** The proof that this worker drives a migration: its owner key, created at {@code createRevision}. */
  public record Ownership(String id, long leaseId, long createRevision, String worker) {}

  public Optional<Versioned> load(String id) {
    RangeResult r = read("reading migration " + id, () -> store.get(paths.migration(id)));
    if (r.kvs().isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(decode(r.kvs().get(0)));
  }

  public Versioned require(String id) {
    return load(id).orElseThrow(() -> ShardmapException.notFound("id: no migration '" + id + "'"));
  }

  /** Every migration, with its current owner (worker name) filled in, sorted by id. */
  public List<Versioned> list() {
    RangeResult all = read("listing migrations", () -> store.getPrefix(paths.migrationsPrefix()));
    Map<String, String> owners = owners();
    List<Versioned> out = new ArrayList<>();
    for (KeyValue kv : all.kvs()) {
      Versioned v = decode(kv);
      String owner = owners.get(v.id());
      out.add(owner == null ? v : new Versioned(v.migration().toBuilder().setOwner(owner).build(), v.modRevision()));
    }
    return out;
  }

  /** Migration id → the worker holding it. */
  public Map<String, String> owners() {
    Map<String, String> out = new HashMap<>();
    for (KeyValue kv : read("listing migration owners", () -> store.getPrefix(paths.migrationOwnersPrefix())).kvs()) {
      out.put(kv.key().substring(paths.migrationOwnersPrefix().length()), kv.valueUtf8());
    }
    return out;
  }

  /**
   * Takes a migration for {@code worker} if nobody holds it. Returns empty when another worker (or an
   * earlier life of this one whose lease has not expired yet) holds it.
   */
  public Optional<Ownership> claim(String id, String worker, long leaseId) {
    String key = paths.migrationOwner(id);
    TxnResult r = commit("claiming migration " + id, Txn.builder().compare(Compare.absent(key))
        .put(key, worker.getBytes(StandardCharsets.UTF_8), leaseId).build());
    if (!r.succeeded()) {
      return Optional.empty();
    }
    return Optional.of(new Ownership(id, leaseId, r.revision(), worker));
  }

  /** Gives a migration up (its owner key is deleted only if it is still ours). */
  public void release(Ownership o) {
    commit("releasing migration " + o.id(), Txn.builder()
        .compare(new Compare(paths.migrationOwner(o.id()), Compare.Target.CREATE_REVISION, Compare.Op.EQUAL,
            o.createRevision()))
        .delete(paths.migrationOwner(o.id())).build());
  }

  /** The guards of every write by the owner: the record is unchanged since read, and still ours. */
  public Txn.Builder ownedTxn(Versioned v, Ownership o) {
    return Txn.builder()
        .compare(Compare.modRevision(paths.migration(v.id()), v.modRevision()))
        .compare(new Compare(paths.migrationOwner(v.id()), Compare.Target.CREATE_REVISION, Compare.Op.EQUAL,
            o.createRevision()));
  }

  /**
   * Writes the next version of a migration this worker drives. Fails with ABORTED when the record changed
   * since it was read (an operator's cancel request: re-read and go on) or when ownership was lost.
   */
  public Versioned update(Versioned v, Ownership o, Migration next) {
    return commitOwned(v, o, ownedTxn(v, o), next);
  }

  /** Commits {@code txn} (built from {@link #ownedTxn}) plus the put of {@code next}. */
  public Versioned commitOwned(Versioned v, Ownership o, Txn.Builder txn, Migration next) {
    TxnResult r = commit("updating migration " + v.id(), txn.put(paths.migration(v.id()), next.toByteArray()).build());
    if (!r.succeeded()) {
      throw new ShardmapException(ErrorCode.ABORTED, "migration " + v.id() + " changed under worker "
          + o.worker() + " (a cancel request, or its ownership was lost); re-read");
    }
    return new Versioned(next, r.revision());
  }

  /** Stores an operator's request to cancel; the driving worker honours it at its next step. */
  public Versioned requestCancel(String id) {
    Versioned[] unchanged = {null};
    Versioned written = txns(32).build().update("cancelling migration " + id, () -> {
      Versioned v = require(id);
      Migration m = v.migration();
      switch (m.getState()) {
        case MIGRATION_STATE_CLEANING_UP, MIGRATION_STATE_DONE -> throw ShardmapException.precondition("id: migration '"
            + id + "' has already cut over (" + States.label(m.getState()) + "): " + m.getTarget() + " owns "
            + MoveUnits.name(m) + " of keyspace '" + m.getKeyspace() + "'; move it back with a new migration instead");
        case MIGRATION_STATE_CANCELLED, MIGRATION_STATE_CANCELLING -> {
          unchanged[0] = v;
          return null;
        }
        default -> { }
      }
      if (m.getCancelRequested()) {
        unchanged[0] = v;
        return null;
      }
      Migration next = m.toBuilder().setCancelRequested(true).setUpdatedUnixMs(clock.millis()).build();
      return new CatalogTxns.Plan<>(Txn.builder()
          .compare(Compare.modRevision(paths.migration(id), v.modRevision()))
          .put(paths.migration(id), next.toByteArray()).build(), rev -> new Versioned(next, rev));
    }, CatalogTxns.FRESH_READS);
    return written != null ? written : unchanged[0];
  }

  public TxnResult commit(String what, Txn txn) {
    return await(what, store.commit(txn));
  }

  /**
   * An idempotent read ({@code call} sends it again on every attempt): a transient failure (see {@link
   * #isTransient}) is retried after 50-75 ms, then after pauses doubling up to 1-1.5 s ({@link #READ_BACKOFF}), until {@link
   * #retryFor} has passed since the first attempt; each attempt waits at most the request timeout and never
   * past that deadline. The last failure is thrown, saying how many attempts were made over how long.
   */
  public <T> T read(String what, Supplier<CompletableFuture<T>> call) {
    long start = ticker.getAsLong();
    long end = start + retryFor.toNanos();
    Backoff.Attempts pauses = READ_BACKOFF.start();
    for (int attempt = 1; ; attempt++) {
      long leftMs = TimeUnit.NANOSECONDS.toMillis(end - ticker.getAsLong());
      long waitMs = attempt == 1 ? timeout.toMillis() : Math.max(1, Math.min(timeout.toMillis(), leftMs));
      try {
        return await(what, call.get(), waitMs);
      } catch (ShardmapException e) {
        long pauseNanos = pauses.nextPauseNanos();
        if (!isTransient(e) || ticker.getAsLong() + pauseNanos - end >= 0) {
          if (attempt == 1) {
            throw e;
          }
          // The same cause, so that isTransient classifies it as the last failure.
          throw new ShardmapException(e.code(), e.getMessage() + " (" + attempt + " attempts over "
              + TimeUnit.NANOSECONDS.toMillis(ticker.getAsLong() - start) + " ms)", e.getCause());
        }
        sleep(TimeUnit.NANOSECONDS.toMillis(pauseNanos), what);
      }
    }
  }

  /**
   * Whether a failed etcd call may succeed if sent again: etcd was unavailable or did not answer in time.
   * Not when this thread was interrupted, the store is closed, or etcd refused the request.
   */
  public static boolean isTransient(ShardmapException e) {
    if (Thread.currentThread().isInterrupted()) {
      return false;
    }
    if (e.code() == ErrorCode.DEADLINE_EXCEEDED) {
      return true;
    }
    if (e.code() != ErrorCode.UNAVAILABLE) {
      return false;
    }
    Throwable c = e.getCause();
    return c == null || c instanceof StoreException se && se.kind() == StoreException.Kind.UNAVAILABLE;
  }

  private static void sleep(long ms, String what) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted");
    }
  }

  /** One attempt of an etcd call, waiting at most the request timeout; see {@link #read} for reads. */
  public <T> T await(String what, CompletableFuture<T> f) {
    return await(what, f, timeout.toMillis());
  }

  private <T> T await(String what, CompletableFuture<T> f, long waitMs) {
    try {
      return f.get(waitMs, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted");
    } catch (TimeoutException e) {
      f.cancel(true);
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": etcd did not answer within " + waitMs + " ms");
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof StoreException se) {
        ErrorCode code = se.kind() == StoreException.Kind.NOT_FOUND ? ErrorCode.NOT_FOUND : ErrorCode.UNAVAILABLE;
        throw new ShardmapException(code, what + ": " + se.getMessage(), se);
      }
      throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": " + c, c);
    }
  }

  static Versioned decode(KeyValue kv) {
    return new Versioned(Records.decode(kv, Migration.parser()), kv.modRevision());
  }
}
