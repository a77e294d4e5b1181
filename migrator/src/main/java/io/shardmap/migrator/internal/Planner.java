package io.shardmap.migrator.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.internal.StoreLayout;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Validates a move against etcd and both shards and records it (state PLANNED) together with the
 * range's moving marker, in one etcd transaction. Every refusal happens before anything is written:
 * INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS or FAILED_PRECONDITION with a message naming the field.
 *
 * <p>The creating transaction compares the range record's and the keyspace spec's mod revisions and
 * rewrites the keyspace's moving guard: the directory server's split, merge and reassign rewrite the range
 * record and compare the marker's absence, and a drop compares the guard, so a marker and a concurrent
 * admin change of the same range can never both commit (docs/data-model.md, "Moving ranges").
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
    StoreLayout keys = ms.keys();
    for (int attempt = 1; ; attempt++) {
      KeyValue specKv = one(keys.spec(spec.keyspace()));
      if (specKv == null) {
        throw ShardmapException.notFound("keyspace: no keyspace '" + spec.keyspace() + "'");
      }
      KeyspaceSpec ks = parse(specKv, KeyspaceSpec.parser());
      if (ks.getStrategy() != Strategy.STRATEGY_RANGE) {
        throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' uses " + ks.getStrategy()
            + "; this version of the migrator moves ranges of STRATEGY_RANGE keyspaces");
      }
      if (ks.getKeyType() != KeyType.KEY_TYPE_INT64) {
        throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' has " + ks.getKeyType()
            + " keys; this version of the migrator moves INT64 keyspaces");
      }
      if (ks.getTablesCount() == 0) {
        throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' has no sharded tables, so there is no "
            + "data to move; reassign the range with shardmapctl instead");
      }
      KeyType type = ks.getKeyType();
      KeyRange range = KeyRange.parse(type, spec.range(), "range");
      if (spec.split() && (splitAt(ks, specKv.modRevision(), range.start()) | splitAt(ks, specKv.modRevision(), range.end()))) {
        continue; // a split changed the spec's ranges: read again
      }
      KeyValue rangeKv = one(keys.range(ks.getName(), range.start()));
      Route r = rangeKv == null ? null : KeyspaceMap.rangeRoute(type, parse(rangeKv, RangeAssignment.parser()), 0);
      if (r == null || !r.range().equals(range)) {
        throw ShardmapException.notFound("range: " + range.format(type) + " is not a range of keyspace '"
            + ks.getName() + "'" + (r == null ? "" : " (the range starting there is " + r.range().format(type) + ")")
            + "; pass --split to split it out first");
      }
      KeyValue marker = one(keys.moving(ks.getName(), range.start()));
      if (marker != null) {
        throw ShardmapException.precondition("range: " + range.format(type) + " of keyspace '" + ks.getName()
            + "' is already being moved by migration '" + marker.valueUtf8() + "'");
      }
      pg.shard("target", spec.target());
      if (r.shard().equals(spec.target())) {
        throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns range "
            + range.format(type) + " of keyspace '" + ks.getName() + "'");
      }
      checkTables(ks, r.shard(), spec.target(), spec.options().getCreateMissingTables());
      long now = clock.millis();
      Migration m = Migration.newBuilder().setId(id).setKeyspace(ks.getName()).setRange(range.toProto(type))
          .setKeyType(type).setSource(r.shard()).setTarget(spec.target()).addAllTables(ks.getTablesList())
          .setRangeEpoch(r.epoch()).setRangeModRevision(rangeKv.modRevision()).setSpecModRevision(specKv.modRevision())
          .setOptions(spec.options()).setState(MigrationState.MIGRATION_STATE_PLANNED).setCreatedUnixMs(now)
          .setUpdatedUnixMs(now).build();
      TxnResult res = ms.commit("recording migration " + id, Txn.builder()
          .compare(Compare.absent(keys.migration(id)))
          .compare(Compare.absent(keys.moving(ks.getName(), range.start())))
          .compare(Compare.modRevision(keys.range(ks.getName(), range.start()), rangeKv.modRevision()))
          .compare(Compare.modRevision(keys.spec(ks.getName()), specKv.modRevision()))
          .put(keys.migration(id), m.toByteArray())
          .put(keys.moving(ks.getName(), range.start()), id.getBytes(StandardCharsets.UTF_8))
          .put(keys.movingGuard(ks.getName()), new byte[0]).build());
      if (res.succeeded()) {
        return new MigrationStore.Versioned(m, res.revision());
      }
      if (ms.load(id).isPresent()) {
        throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "id: a migration '" + id + "' already exists");
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new ShardmapException(ErrorCode.ABORTED, "range: the keyspace kept changing while the move was "
            + "planned; nothing was written; retry");
      }
      // The range, the spec or the marker changed meanwhile: plan again against the new state.
    }
  }

  /**
   * Makes {@code at} a range boundary if it is not one, with the directory's split rules (both halves keep
   * owner and epoch), unless the range containing it is being moved. Returns true if it split.
   */
  private boolean splitAt(KeyspaceSpec ks, long specRevision, byte[] at) {
    if (at.length == 0) {
      return false;
    }
    StoreLayout keys = ms.keys();
    KeyType type = ks.getKeyType();
    RangeResult all = ms.await("reading ranges of " + ks.getName(),
        ms.store().getPrefix(keys.keyspacePrefix(ks.getName()) + "ranges/"));
    KeyValue containing = null;
    Route r = null;
    for (KeyValue kv : all.kvs()) {
      Route c = KeyspaceMap.rangeRoute(type, parse(kv, RangeAssignment.parser()), kv.modRevision());
      if (c.range().contains(at)) {
        containing = kv;
        r = c;
      }
    }
    if (r == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "range: no range of keyspace '" + ks.getName()
          + "' contains " + Keys.describe(type, at) + " (the map does not partition the key space)");
    }
    if (java.util.Arrays.equals(r.range().start(), at)) {
      return false;
    }
    KeyValue marker = one(keys.moving(ks.getName(), r.range().start()));
    if (marker != null) {
      throw ShardmapException.precondition("range: splitting at " + Keys.describe(type, at) + " would split "
          + r.range().format(type) + ", which migration '" + marker.valueUtf8() + "' is moving");
    }
    Route left = new Route(r.shard(), r.epoch(), KeyRange.of(r.range().start(), at, "range"), 0);
    Route right = new Route(r.shard(), r.epoch(), KeyRange.of(at, r.range().end(), "range"), 0);
    ms.commit("splitting " + r.range().format(type), Txn.builder()
        .compare(Compare.modRevision(keys.spec(ks.getName()), specRevision))
        .compare(Compare.modRevision(containing.key(), containing.modRevision()))
        .compare(Compare.absent(keys.range(ks.getName(), at)))
        .compare(Compare.absent(keys.moving(ks.getName(), r.range().start())))
        .put(containing.key(), KeyspaceMap.toProto(type, left).toByteArray())
        .put(keys.range(ks.getName(), at), KeyspaceMap.toProto(type, right).toByteArray()).build());
    // Whether it committed or lost a race, the caller reads the map again.
    return true;
  }

  /** Refuses tables missing on the source, wrong key columns, and targets with a different schema. */
  private void checkTables(KeyspaceSpec ks, String source, String target, boolean createMissing) {
    try (Connection src = pg.open("source", source); Connection dst = pg.open("target", target)) {
      for (ShardedTable t : ks.getTablesList()) {
        List<Tables.Column> s = Tables.columns(src, t.getName());
        if (s == null) {
          throw ShardmapException.precondition("tables: table " + t.getName() + " of keyspace '" + ks.getName()
              + "' does not exist on source shard '" + source + "'");
        }
        Tables.requireKeyColumn(t.getName(), source, s, t.getKeyColumn(), ks.getKeyType());
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
    } catch (SQLException e) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "tables: reading table definitions failed: "
          + e.getMessage(), e);
    }
  }

  private KeyValue one(String key) {
    RangeResult r = ms.await("reading " + key, ms.store().get(key));
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

  private static <T> T parse(KeyValue kv, com.google.protobuf.Parser<T> parser) {
    try {
      return parser.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd record " + kv.key() + " is not valid", e);
    }
  }

  private String generatedId() {
    return "m" + Long.toString(clock.millis(), 36) + "_" + Integer.toString(ThreadLocalRandom.current().nextInt(1 << 20), 36);
  }
}
