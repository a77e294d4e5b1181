package io.shardmap.migrator.internal;

import io.shardmap.proto.v1.Migration;

/** The {@link MoveUnit} a migration record moves, and how it reads in messages (each from its {@link UnitKind}). */
public final class MoveUnits {
  private MoveUnits() {}

  public static MoveUnit of(Migration m) {
    return UnitKinds.of(m).unit(m);
  }

  /**
   * What moves, in a table cell: {@code 5000..25000} (as {@code move} reads a range), {@code bucket 3 of 8},
   * {@code ring node s4#2 joins}, {@code 2 entries ('a', 'b')}, {@code region 'eu'}.
   */
  public static String describe(Migration m) {
    UnitKind k = UnitKinds.find(m);
    return k == null ? "(no unit)" : k.describe(m);
  }

  /**
   * What moves, in a sentence: {@code range 5000..25000}, {@code bucket 3 of 8}, {@code ring node s4#2
   * joins}, {@code 2 directory entries ('a', 'b')}, {@code region 'eu'}. Every message about a migration
   * names its unit so.
   */
  public static String name(Migration m) {
    UnitKind k = UnitKinds.find(m);
    return k == null ? "(no unit)" : k.name(m);
  }

  /** The unit's kind, to label its epoch: {@code range}, {@code bucket}, {@code ring node}, {@code entries}, {@code region}. */
  public static String kind(Migration m) {
    UnitKind k = UnitKinds.find(m);
    return k == null ? "unit" : k.label();
  }
}
