package io.shardmap.migrator.internal;

import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.Strategy;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** The registry of move units: the one place that lists them and maps a spec, a record or a strategy to one. */
final class UnitKinds {
  static final List<UnitKind> ALL = List.of(new RangeMove(), new BucketMove(), new RingNodeMove(),
      new EntriesMove(), new RegionMove());
  private static final Map<MigrationUnit.KindCase, UnitKind> BY_CASE = new EnumMap<>(MigrationUnit.KindCase.class);
  private static final Map<Strategy, UnitKind> BY_STRATEGY = new EnumMap<>(Strategy.class);

  static {
    for (UnitKind k : ALL) {
      BY_CASE.put(k.unitCase(), k);
      BY_STRATEGY.put(k.strategy(), k);
    }
  }

  private UnitKinds() {}

  /** The unit a migration record moves; null for a record whose unit is set but empty (a corrupt record). */
  static UnitKind find(Migration m) {
    if (!m.hasUnit()) {
      return BY_CASE.get(MigrationUnit.KindCase.KIND_NOT_SET);
    }
    MigrationUnit.KindCase c = m.getUnit().getKindCase();
    return c == MigrationUnit.KindCase.KIND_NOT_SET ? null : BY_CASE.get(c);
  }

  /** As {@link #find}, failing on an empty unit. */
  static UnitKind of(Migration m) {
    UnitKind k = find(m);
    if (k == null) {
      throw new IllegalStateException("migration " + m.getId() + " has an empty unit");
    }
    return k;
  }

  /** The unit the spec asks for (MoveSpec holds exactly one). */
  static UnitKind requested(MoveSpec spec) {
    for (UnitKind k : ALL) {
      if (k.requested(spec)) {
        return k;
      }
    }
    throw new IllegalStateException("a MoveSpec without a unit");
  }

  /** The unit keyspaces of this strategy move by, or null. */
  static UnitKind forStrategy(Strategy s) {
    return s == null || s == Strategy.UNRECOGNIZED ? null : BY_STRATEGY.get(s);
  }
}
