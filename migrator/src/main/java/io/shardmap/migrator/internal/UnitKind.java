package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.List;

/**
 * Everything that differs between the units the migrator moves, one class per unit (range, hash bucket,
 * ring node, directory entries, geographic region), found through {@link UnitKinds}: proposing the move of
 * one from a {@link MoveSpec} (reading and checking its records, the markers to write), the records its
 * cutover rewrites ({@link #handOver}), its moving markers, the SQL condition on its rows ({@link
 * #unit}, a {@link MoveUnit}) and how messages name it. {@link Planner} and {@link MoveDriver} keep only
 * the common flow; nothing else switches on the kind of unit.
 *
 * <p>Adding a unit: a proto message in {@code MigrationUnit}, a {@link MoveUnit} record with its SQL
 * condition, one class here registered in {@link UnitKinds}, its cutover edit in the catalog's {@code
 * MapEdits}, a marker path in {@code CatalogPaths}, and the refusal of admin edits while it is marked
 * (docs/migrator-design.md, "Move units").
 */
interface UnitKind {
  /** The strategy whose keyspaces this unit belongs to. */
  Strategy strategy();

  /** The case of {@link Migration#getUnit()}; {@code KIND_NOT_SET} for a range (held in {@code Migration.range}). */
  MigrationUnit.KindCase unitCase();

  /** Whether the spec asks to move a unit of this kind. */
  boolean requested(MoveSpec spec);

  /** The spec's field that names the unit, for refusals ({@code range}, {@code bucket}, {@code ringJoin}, ...). */
  String field(MoveSpec spec);

  /** How to ask for a unit of this kind, for the refusal of another: "a range", "a bucket", ... */
  String noun();

  /** The label of its epoch and kind: {@code range}, {@code bucket}, {@code ring node}, {@code entries}, {@code region}. */
  String label();

  /**
   * Reads and checks the unit the spec names in keyspace {@code ks} (which uses {@link #strategy}): that it
   * exists, is not marked, that the target is a shard that does not own it yet. Refusals name the spec's
   * field; nothing is written.
   */
  Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks);

  /** Whether the unit lives in the keyspace's layout record (rewritten by other units' cutovers). */
  boolean inLayout();

  /** The unit's moving markers (one per directory entry). */
  List<String> markers(CatalogPaths paths, Migration m);

  /**
   * Adds to {@code txn} the compares and writes that give the unit to the target (at epoch {@code
   * range_epoch + 1}, or as {@link #returnEpoch} says). Returns null, or why the map no longer routes the
   * unit as planned (then {@code txn} must not be committed).
   */
  String handOver(CutoverContext ctx, Migration m, Txn.Builder txn);

  /** The unit's rows as a SQL condition. */
  MoveUnit unit(Migration m);

  /** What moves, in a table cell: {@code 5000..25000}, {@code bucket 3 of 8}, ... */
  String describe(Migration m);

  /** What moves, in a sentence ({@code range 5000..25000}); by default as {@link #describe}. */
  default String name(Migration m) {
    return describe(m);
  }

  /** The epoch the unit gets on its target at cutover; {@code Long.MAX_VALUE} when only known then. */
  default long returnEpoch(Migration m) {
    return m.getRangeEpoch() + 1;
  }

  /** How a fence's refusal names the unit. */
  default String fenceWording(Migration m) {
    return unit(m).fenceWording(KeyKind.BYTEA);
  }

  /** What a unit's planning reads and checks beyond etcd records. */
  interface PlanContext {
    CatalogPaths paths();

    /** One linearizable read of {@code key} while planning (null if absent). */
    KeyValue one(String key);

    /** Refuses a shard the migrator cannot reach or that is not registered ({@code field} names it). */
    void requireShard(String field, String shard);

    /** Makes {@code at} a range boundary by the admin API's own split, committed on its own. */
    void splitAt(String keyspace, byte[] at);
  }

  /** What a cutover's hand-over reads: one read, not retried (the fence is up). */
  interface CutoverContext {
    CatalogPaths paths();

    io.shardmap.catalog.MapEdits edits();

    KeyValue one(String key);
  }
}
