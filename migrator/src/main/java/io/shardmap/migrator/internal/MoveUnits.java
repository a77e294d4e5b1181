package io.shardmap.migrator.internal;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.RingNodeUnit;
import java.util.ArrayList;
import java.util.List;

/** The {@link MoveUnit} a migration record moves, and how it reads in messages. */
public final class MoveUnits {
  private MoveUnits() {}

  public static MoveUnit of(Migration m) {
    if (!m.hasUnit()) {
      return new MoveUnit.Range(KeyRange.fromProto(m.getKeyType(), m.getRange(), "range"));
    }
    MigrationUnit u = m.getUnit();
    return switch (u.getKindCase()) {
      case BUCKET -> new MoveUnit.Bucket(u.getBucket().getBucket(), u.getBucket().getBuckets());
      case RING_NODE -> new MoveUnit.Arc(u.getRingNode().getArcAfter(), u.getRingNode().getArcUpTo());
      case ENTRIES -> new MoveUnit.Entries(keys(m));
      case KIND_NOT_SET -> throw new IllegalStateException("migration " + m.getId() + " has an empty unit");
    };
  }

  /** The canonical keys of a migration of directory entries. */
  static List<byte[]> keys(Migration m) {
    List<byte[]> out = new ArrayList<>();
    int i = 0;
    for (Key k : m.getUnit().getEntries().getKeysList()) {
      out.add(Keys.canonical(m.getKeyType(), k, "entries[" + i++ + "]"));
    }
    return out;
  }

  /**
   * What moves, in a table cell: {@code 5000..25000} (as {@code move} reads a range), {@code bucket 3 of 8},
   * {@code ring node s4#2 joins}, {@code 2 entries ('a', 'b')}.
   */
  public static String describe(Migration m) {
    if (!m.hasUnit()) {
      return KeyRange.fromProto(m.getKeyType(), m.getRange(), "range").format(m.getKeyType());
    }
    MigrationUnit u = m.getUnit();
    return switch (u.getKindCase()) {
      case BUCKET -> "bucket " + u.getBucket().getBucket() + " of " + u.getBucket().getBuckets();
      case RING_NODE -> {
        RingNodeUnit r = u.getRingNode();
        yield "ring node " + r.getShard() + "#" + r.getVnode() + (r.getRemove() ? " leaves" : " joins");
      }
      case ENTRIES -> new MoveUnit.Entries(keys(m)).describe(m.getKeyType());
      case KIND_NOT_SET -> "(no unit)";
    };
  }

  /**
   * What moves, in a sentence: {@code range 5000..25000}, {@code bucket 3 of 8}, {@code ring node s4#2
   * joins}, {@code 2 directory entries ('a', 'b')}. Every message about a migration names its unit so.
   */
  public static String name(Migration m) {
    if (!m.hasUnit()) {
      return "range " + describe(m);
    }
    if (m.getUnit().getKindCase() == MigrationUnit.KindCase.ENTRIES) {
      return describe(m).replaceFirst("^(\\d+) (entr)", "$1 directory $2");
    }
    return describe(m);
  }

  /** The unit's kind, to label its epoch: {@code range}, {@code bucket}, {@code ring node}, {@code entries}. */
  public static String kind(Migration m) {
    if (!m.hasUnit()) {
      return "range";
    }
    return switch (m.getUnit().getKindCase()) {
      case BUCKET -> "bucket";
      case RING_NODE -> "ring node";
      case ENTRIES -> "entries";
      case KIND_NOT_SET -> "unit";
    };
  }
}
