package io.shardmap.migrator.internal;

import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.Strategy;

/**
 * The constants that tell the unit kinds apart (their strategy, where the record keeps them, how messages
 * name them), given once in each kind's constructor rather than as a method each.
 */
abstract class UnitKindBase implements UnitKind {
  private final Strategy strategy;
  private final MigrationUnit.KindCase unitCase;
  private final String label;
  private final String noun;
  private final boolean inLayout;

  /**
   * @param label the unit's label, also the spec's field that names it unless {@link #field} says otherwise
   * @param noun how to ask for one, for the refusal of another kind
   * @param inLayout whether the unit lives in the keyspace's layout record
   */
  UnitKindBase(Strategy strategy, MigrationUnit.KindCase unitCase, String label, String noun, boolean inLayout) {
    this.strategy = strategy;
    this.unitCase = unitCase;
    this.label = label;
    this.noun = noun;
    this.inLayout = inLayout;
  }

  @Override
  public final Strategy strategy() {
    return strategy;
  }

  @Override
  public final MigrationUnit.KindCase unitCase() {
    return unitCase;
  }

  @Override
  public String field(MoveSpec spec) {
    return label;
  }

  @Override
  public final String noun() {
    return noun;
  }

  @Override
  public final String label() {
    return label;
  }

  @Override
  public final boolean inLayout() {
    return inLayout;
  }
}
