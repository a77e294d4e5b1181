package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.KeyspaceRead;
import io.shardmap.catalog.MapEdits;
import io.shardmap.catalog.Records;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.core.Ring;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryEntriesUnit;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.HashBucketUnit;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RingLayout;
import io.shardmap.proto.v1.RingNodeUnit;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
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
 * moving markers (a range's, a bucket's, the ring's, or each entry's), in one etcd transaction. Every
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

  /** What a plan of one unit found: its owner, target, epoch, records to compare and markers to write. */
  private record Proposal(String source, String target, long epoch, long recordRevision, KeyRange range,
                          MigrationUnit unit, List<Compare> compares, List<String> markers, List<byte[]> entries) {}

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
          requireUnitFits(spec, ks);
          if (ks.getTablesCount() == 0) {
            throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' has no sharded tables, so there is no "
                + "data to move; change the map with shardmapctl instead");
          }
          Proposal p = switch (ks.getStrategy()) {
            case STRATEGY_RANGE -> range(spec, ks);
            case STRATEGY_HASH -> bucket(spec, ks);
            case STRATEGY_CONSISTENT_HASH -> ringNode(spec, ks);
            case STRATEGY_DIRECTORY -> entries(spec, ks);
            default -> throw ShardmapException.precondition("keyspace: '" + ks.getName() + "' uses " + ks.getStrategy()
                + ", whose units the migrator does not move (move its data yourself, then change the map)");
          };
          List<KeyKind> kinds = checkTables(ks, p.source(), p.target(), spec.options().getCreateMissingTables());
          if (p.entries() != null) {
            requireStorable(ks, kinds, p.entries());
          }
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
  private static void requireUnitFits(MoveSpec spec, KeyspaceSpec ks) {
    String field;
    Strategy wants;
    if (spec.range() != null) {
      field = "range";
      wants = Strategy.STRATEGY_RANGE;
    } else if (spec.bucket() != null) {
      field = "bucket";
      wants = Strategy.STRATEGY_HASH;
    } else if (spec.ringJoin() || spec.ringLeave() != null) {
      field = spec.ringJoin() ? "ringJoin" : "ringLeave";
      wants = Strategy.STRATEGY_CONSISTENT_HASH;
    } else {
      field = "entries";
      wants = Strategy.STRATEGY_DIRECTORY;
    }
    if (ks.getStrategy() != wants) {
      String unit = switch (ks.getStrategy()) {
        case STRATEGY_RANGE -> "a range";
        case STRATEGY_HASH -> "a bucket";
        case STRATEGY_CONSISTENT_HASH -> "a ring node joining or leaving";
        case STRATEGY_DIRECTORY -> "directory entries";
        default -> "nothing (the migrator does not move its units)";
      };
      throw ShardmapException.precondition(field + ": keyspace '" + ks.getName() + "' uses " + ks.getStrategy()
          + ", which " + field + " does not apply to; move " + unit + " of it instead");
    }
  }

  private Proposal range(MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ms.paths();
    KeyType type = ks.getKeyType();
    KeyRange range = KeyRange.parse(type, spec.range(), "range");
    if (spec.split()) {
      splitAt(ks.getName(), range.start());
      splitAt(ks.getName(), range.end());
    }
    KeyValue rangeKv = one(paths.range(ks.getName(), range.start()));
    Route r = rangeKv == null ? null : KeyspaceMap.rangeRoute(type, Records.decode(rangeKv, RangeAssignment.parser()), 0);
    if (r == null || !r.range().equals(range)) {
      throw ShardmapException.notFound("range: " + range.format(type) + " is not a range of keyspace '"
          + ks.getName() + "'" + (r == null ? "" : " (the range starting there is " + r.range().format(type) + ")")
          + "; pass --split to split it out first");
    }
    KeyValue marker = one(paths.moving(ks.getName(), range.start()));
    if (marker != null) {
      throw ShardmapException.precondition("range: " + range.format(type) + " of keyspace '" + ks.getName()
          + "' is already being moved by migration '" + marker.valueUtf8() + "'");
    }
    pg.shard("target", spec.target());
    if (r.shard().equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns range "
          + range.format(type) + " of keyspace '" + ks.getName() + "'");
    }
    return new Proposal(r.shard(), spec.target(), r.epoch(), rangeKv.modRevision(), range, null,
        List.of(Compare.modRevision(paths.range(ks.getName(), range.start()), rangeKv.modRevision())),
        List.of(paths.moving(ks.getName(), range.start())), null);
  }

  private KeyValue layout(KeyspaceSpec ks) {
    KeyValue kv = one(ms.paths().layout(ks.getName()));
    if (kv == null) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace: '" + ks.getName() + "' has no layout record");
    }
    return kv;
  }

  private Proposal bucket(MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ms.paths();
    KeyValue kv = layout(ks);
    HashLayout h = Records.decode(kv, HashLayout.parser());
    int i = spec.bucket();
    if (i >= h.getBucketsCount()) {
      throw ShardmapException.invalid("bucket", "keyspace '" + ks.getName() + "' has buckets 0-"
          + (h.getBucketsCount() - 1) + ", got " + i);
    }
    KeyValue marker = one(paths.movingBucket(ks.getName(), i));
    if (marker != null) {
      throw ShardmapException.precondition("bucket: bucket " + i + " of keyspace '" + ks.getName()
          + "' is already being moved by migration '" + marker.valueUtf8() + "'");
    }
    BucketAssignment b = h.getBuckets(i);
    pg.shard("target", spec.target());
    if (b.getShard().equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns bucket " + i
          + " of keyspace '" + ks.getName() + "'");
    }
    MigrationUnit unit = MigrationUnit.newBuilder().setBucket(HashBucketUnit.newBuilder().setBucket(i)
        .setBuckets(h.getBucketsCount())).build();
    return new Proposal(b.getShard(), spec.target(), b.getEpoch(), kv.modRevision(), null, unit,
        List.of(Compare.modRevision(paths.layout(ks.getName()), kv.modRevision())),
        List.of(paths.movingBucket(ks.getName(), i)), null);
  }

  private Proposal ringNode(MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ms.paths();
    KeyValue kv = layout(ks);
    RingLayout layout = Records.decode(kv, RingLayout.parser());
    KeyValue marker = one(paths.movingRing(ks.getName()));
    String field = spec.ringJoin() ? "ringJoin" : "ringLeave";
    if (marker != null) {
      throw ShardmapException.precondition(field + ": a ring node of keyspace '" + ks.getName() + "' is already "
          + "joining or leaving (migration '" + marker.valueUtf8() + "'); nodes join and leave one at a time");
    }
    RingNodes.Change c;
    String source;
    String target;
    long epoch;
    if (spec.ringJoin()) {
      target = spec.target();
      pg.shard("target", target);
      if (RingNodes.vnodes(layout, target) >= Ring.MAX_VNODES_PER_SHARD) {
        throw ShardmapException.precondition("ringJoin: shard '" + target + "' already has the most virtual nodes a "
            + "shard can have (" + Ring.MAX_VNODES_PER_SHARD + ")");
      }
      c = RingNodes.join(layout, target);
      String node = target + "#" + c.node().vnode();
      if (c.collides()) {
        throw ShardmapException.precondition("ringJoin: ring node " + node + " would sit at the position of "
            + c.successor().shard() + "#" + c.successor().vnode() + "; give the shard another name");
      }
      if (c.successor().shard().equals(target)) {
        throw ShardmapException.precondition("ringJoin: ring node " + node + " would take its arc from "
            + target + "#" + c.successor().vnode() + ", a node of the same shard, so no data moves; add it with "
            + "shardmapctl (AddRingNodes)");
      }
      source = c.successor().shard();
      epoch = c.successor().epoch();
    } else {
      source = spec.ringLeave();
      c = RingNodes.leave(layout, source);
      if (c == null) {
        throw ShardmapException.notFound("ringLeave: shard '" + source + "' has no node on the ring of keyspace '"
            + ks.getName() + "'");
      }
      String node = source + "#" + c.node().vnode();
      if (c.successor().equals(c.node())) {
        throw ShardmapException.precondition("ringLeave: " + node + " is the last node of the ring of keyspace '"
            + ks.getName() + "'; a ring needs one");
      }
      target = c.successor().shard();
      if (target.equals(source)) {
        throw ShardmapException.precondition("ringLeave: ring node " + node + " hands its arc to " + source + "#"
            + c.successor().vnode() + ", a node of the same shard, so no data moves; remove it with shardmapctl "
            + "(RemoveRingNodes)");
      }
      if (spec.target() != null && !spec.target().equals(target)) {
        throw ShardmapException.precondition("target: ring node " + node + " hands its arc to the shard of the node "
            + "after it, '" + target + "', not '" + spec.target() + "'; leave the target out");
      }
      pg.shard("target", target);
      epoch = c.node().epoch();
    }
    MigrationUnit unit = MigrationUnit.newBuilder().setRingNode(RingNodeUnit.newBuilder()
        .setShard(c.node().shard()).setVnode(c.node().vnode()).setRemove(!spec.ringJoin())
        .setArcAfter(c.after()).setArcUpTo(c.upTo()).setSuccessorShard(c.successor().shard())
        .setSuccessorVnode(c.successor().vnode())).build();
    return new Proposal(source, target, epoch, kv.modRevision(), null, unit,
        List.of(Compare.modRevision(paths.layout(ks.getName()), kv.modRevision())),
        List.of(paths.movingRing(ks.getName())), null);
  }

  private Proposal entries(MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ms.paths();
    KeyType type = ks.getKeyType();
    List<byte[]> parsed = new ArrayList<>();
    List<Compare> compares = new ArrayList<>();
    List<String> markers = new ArrayList<>();
    DirectoryEntriesUnit.Builder unit = DirectoryEntriesUnit.newBuilder();
    java.util.Map<String, Integer> seen = new java.util.HashMap<>();
    String source = null;
    long epoch = 0;
    for (int i = 0; i < spec.entries().size(); i++) {
      String field = "entries[" + i + "]";
      byte[] key = KeyRange.parseKey(type, spec.entries().get(i), field);
      Integer dup = seen.put(Keys.hex(key), i);
      if (dup != null) {
        throw ShardmapException.invalid(field, "the same key as entries[" + dup + "]");
      }
      KeyValue kv = one(paths.entry(ks.getName(), key));
      if (kv == null) {
        throw ShardmapException.notFound(field + ": key " + Keys.describe(type, key) + " has no entry in keyspace '"
            + ks.getName() + "' (keys routed by the fallback do not move one by one: give them entries first)");
      }
      DirectoryEntry e = Records.decode(kv, DirectoryEntry.parser());
      if (source == null) {
        source = e.getShard();
      } else if (!source.equals(e.getShard())) {
        throw ShardmapException.precondition(field + ": key " + Keys.describe(type, key) + " is owned by '"
            + e.getShard() + "', entries[0] by '" + source + "'; one migration moves the entries of one shard");
      }
      KeyValue marker = one(paths.movingEntry(ks.getName(), key));
      if (marker != null) {
        throw ShardmapException.precondition(field + ": key " + Keys.describe(type, key) + " of keyspace '"
            + ks.getName() + "' is already being moved by migration '" + marker.valueUtf8() + "'");
      }
      epoch = Math.max(epoch, e.getEpoch());
      parsed.add(key);
      compares.add(Compare.modRevision(kv.key(), kv.modRevision()));
      markers.add(paths.movingEntry(ks.getName(), key));
      unit.addKeys(Keys.toProto(type, key)).addModRevisions(kv.modRevision());
    }
    pg.shard("target", spec.target());
    if (source.equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns these entries of "
          + "keyspace '" + ks.getName() + "'");
    }
    return new Proposal(source, spec.target(), epoch, 0, null, MigrationUnit.newBuilder().setEntries(unit).build(),
        compares, markers, parsed);
  }

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
      MapEdits.Edit<MapEdits.Split> e = ms.edits().split(read.snapshot(), read.markers(), ks, at, "range");
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
