package io.shardmap.migrator.internal;

import io.shardmap.core.KeyRange;
import io.shardmap.proto.v1.Migration;

/** The {@link MoveUnit} a migration record moves. */
public final class MoveUnits {
  private MoveUnits() {}

  public static MoveUnit of(Migration m) {
    return new MoveUnit.Range(KeyRange.fromProto(m.getKeyType(), m.getRange(), "range"));
  }
}
