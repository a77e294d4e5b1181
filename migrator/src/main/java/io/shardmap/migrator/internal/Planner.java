package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.KeyspaceRead;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.Records;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Validates a move against etcd and both shards and records it (state PLANNED) together with the unit's
 * moving markers, in one etcd transaction. What differs per unit (reading and checking it, its markers) is
 * its {@link UnitKind}'s; this class keeps the common flow: the id, the spec, the tables, the transaction. Every
 * refusal happens before anything is written: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS or
 * FAILED_PRECONDITION with a message naming the field.
 *
 * <p>The creating transaction compares the mod revisions of the keyspace spec and of the records the unit
 * was read from (range record, layout, entries), compares the markers' absence and rewrites the keyspace's
 * moving guard: the directory server's admin changes compare the absence of the markers of what they
 * rewrite (or the guard), so a marker and a concurrent admin change of the same unit can never both commit
 * (docs/data-model.md, "Moving ranges").
 */
public final class Planner {
  private static final int MAX_ATTEMPTS = 16;

  private final MigrationStore ms;
  private final PgConnector pg;
  private final Clock clock;

  public Planner(MigrationStore ms, PgConnector pg, Clock clock) {
    this.ms = ms;
    this.pg = pg;
    this.clock = clock;
  }

  public MigrationStore.Versioned plan(MoveSpec spec) {
    String id = spec.id() != null ? spec.id() : generatedId();
    if (ms.load(id).isPresent()) {
      throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "id: a migration '" + id + "' already exists");
    }
    CatalogPaths paths = ms.paths();
    String what = "recording migration " + id;
    long start = ms.ticker().getAsLong();
    int[] attempt = {0};
    // When etcd leaves the recording's outcome unknown, CatalogTxns reads back what it wrote (for
    // MigrationStore#retryFor): ours means it applied; the compares still holding means it did not, and it is
    // planned and sent again (it compares the record's absence, so of two copies at most one applies).
    return ms.txns(MAX_ATTEMPTS).onUnknownOutcome(unknown -> new ShardmapException(ErrorCode.UNAVAILABLE, what
        + ": the outcome is unknown after " + TimeUnit.NANOSECONDS.toMillis(ms.ticker().getAsLong() - start)
        + " ms of asking etcd (" + unknown.getMessage() + "); 'migrator status " + id + "' shows whether it was "
        + "recorded (a recorded move is driven by 'migrator resume " + id + "' or a worker, or undone by "
        + "'migrator cancel " + id + "')", unknown)).build().update(what, () -> {
          if (++attempt[0] > 1 && ms.load(id).isPresent()) {
            throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "id: a migration '" + id + "' already exists");
          }
          KeyValue specKv = one(paths.spec(spec.keyspace()));
          if (specKv == null) {
            throw ShardmapException.notFound("keyspace: no keyspace '" + spec.keyspace() + "'");
          }
          KeyspaceSpec ks = Records.decode(specKv, KeyspaceSpec.parser());
          UnitKind kind = UnitKinds.requested(spec);
          requireUnitFits(kind, spec, ks);
          if (ks.getTablesCount() == 0) {
            throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' has no sharded tables, so there is no "
                + "data to move; change the map with shardmapctl instead");
          }
          Proposal p = kind.propose(context, spec, ks);
          List<KeyKind> kinds = checkTables(ks, p.source(), p.target(), spec.options().getCreateMissingTables());
          requireStorable(ks, kinds, p.keys());
          long now = clock.millis();
          Migration.Builder mb = Migration.newBuilder().setId(id).setKeyspace(ks.getName()).setKeyType(ks.getKeyType())
              .setSource(p.source()).setTarget(p.target()).addAllTables(ks.getTablesList())
              .setRangeEpoch(p.epoch()).setRangeModRevision(p.recordRevision()).setSpecModRevision(specKv.modRevision())
              .setOptions(spec.options()).setState(MigrationState.MIGRATION_STATE_PLANNED).setCreatedUnixMs(now)
              .setUpdatedUnixMs(now);
          if (p.unit() != null) {
            mb.setUnit(p.unit());
          } else {
            mb.setRange(p.range().toProto(ks.getKeyType()));
          }
          Migration m = mb.build();
          Txn.Builder txn = Txn.builder()
              .compare(Compare.absent(paths.migration(id)))
              .compare(Compare.modRevision(paths.spec(ks.getName()), specKv.modRevision()))
              .put(paths.migration(id), m.toByteArray());
          p.compares().forEach(txn::compare);
          for (String marker : p.markers()) {
            txn.compare(Compare.absent(marker)).put(marker, id.getBytes(StandardCharsets.UTF_8));
          }
          txn.put(paths.movingGuard(ks.getName()), new byte[0]);
          return new CatalogTxns.Plan<>(txn.build(), rev -> new MigrationStore.Versioned(m, rev));
        }, CatalogTxns.FRESH_READS);
  }

  /** Refuses a unit the keyspace's strategy does not have, naming the spec's field. */
  private static void requireUnitFits(UnitKind kind, MoveSpec spec, KeyspaceSpec ks) {
    if (ks.getStrategy() != kind.strategy()) {
      String field = kind.field(spec);
      UnitKind fits = UnitKinds.forStrategy(ks.getStrategy());
      String unit = fits != null ? fits.noun() : "nothing (the migrator does not move its units)";
      throw ShardmapException.precondition(field + ": keyspace '" + ks.getName() + "' uses " + ks.getStrategy()
          + ", which " + field + " does not apply to; move " + unit + " of it instead");
    }
  }

  /** What the unit kinds read and check while planning: etcd (fresh reads), the shards, the admin split. */
  private final UnitKind.PlanContext context = new UnitKind.PlanContext() {
    @Override
    public CatalogPaths paths() {
      return ms.paths();
    }

    @Override
    public KeyValue one(String key) {
      return Planner.this.one(key);
    }

    @Override
    public void requireShard(String field, String shard) {
      pg.shard(field, shard);
    }

    @Override
    public void splitAt(String keyspace, byte[] at) {
      Planner.this.splitAt(keyspace, at);
    }
  };

  /** A text key column holds only valid UTF-8 without NUL: refuse entries no table could hold. */
  private static void requireStorable(KeyspaceSpec ks, List<KeyKind> kinds, List<byte[]> entries) {
    for (int t = 0; t < kinds.size(); t++) {
      for (int i = 0; i < entries.size(); i++) {
        String why = kinds.get(t).unstorable(entries.get(i));
        if (why != null) {
          throw ShardmapException.precondition("entries[" + i + "]: key " + Keys.describe(ks.getKeyType(),
              entries.get(i)) + " cannot be a row of table " + ks.getTables(t).getName() + ": " + why);
        }
      }
    }
  }

  /**
   * Makes {@code at} a range boundary if it is not one, by the admin API's own SplitRange edit ({@link
   * MapEdits#split}: both halves keep owner and epoch; refused while the range containing it, or a stray
   * marker at it, is being moved), committed on its own before the move is planned on the new map.
   */
  private void splitAt(String ks, byte[] at) {
    if (at.length == 0) {
      return;
    }
    ms.txns(MAX_ATTEMPTS).build().update("splitting keyspace '" + ks + "'", () -> {
      KeyspaceRead read = ms.readKeyspace(ks);
      KeyspaceMap k = read.snapshot().keyspace(ks);
      if (java.util.Arrays.equals(k.ranges().route(at).range().start(), at)) {
        return null; // already a boundary
      }
      MapEdits.Edit<MapEdits.Split> e = ms.edits().range().split(read.snapshot(), read.markers(), ks, at, "range");
      return new CatalogTxns.Plan<>(e.txn(), rev -> e.value());
    }, CatalogTxns.FRESH_READS);
  }

  /**
   * Refuses tables missing on the source, wrong key columns, and targets with a different schema; returns
   * the kind of each table's key column.
   */
  private List<KeyKind> checkTables(KeyspaceSpec ks, String source, String target, boolean createMissing) {
    List<KeyKind> kinds = new ArrayList<>();
    try (Connection src = pg.open("source", source); Connection dst = pg.open("target", target)) {
      for (ShardedTable t : ks.getTablesList()) {
        List<Tables.Column> s = Tables.columns(src, t.getName());
        if (s == null) {
          throw ShardmapException.precondition("tables: table " + t.getName() + " of keyspace '" + ks.getName()
              + "' does not exist on source shard '" + source + "'");
        }
        kinds.add(Tables.requireKeyColumn(t.getName(), source, s, t.getKeyColumn(), ks.getKeyType()));
        List<Tables.Column> d = Tables.columns(dst, t.getName());
        if (d == null) {
          if (!createMissing) {
            throw ShardmapException.precondition("target: table " + t.getName() + " does not exist on shard '"
                + target + "'; create it, or let the migrator create it from the source's definition");
          }
          continue;
        }
        Tables.requireSameColumns(t.getName(), source, s, target, d);
      }
      return kinds;
    } catch (SQLException e) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "tables: reading table definitions failed: "
          + e.getMessage(), e);
    }
  }

  private KeyValue one(String key) {
    RangeResult r = ms.read("reading " + key, () -> ms.store().get(key));
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

  private String generatedId() {
    return "m" + Long.toString(clock.millis(), 36) + "_" + Integer.toString(ThreadLocalRandom.current().nextInt(1 << 20), 36);
  }
}
