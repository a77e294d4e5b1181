package io.shardmap.migrator.internal;

import io.shardmap.proto.v1.MigrationState;
import java.util.Locale;

/** Names and classes of migration states as people and scripts see them ("copying", "done"). */
public final class States {
  private States() {}

  public static String label(MigrationState s) {
    return s.name().substring("MIGRATION_STATE_".length()).toLowerCase(Locale.ROOT).replace('_', '-');
  }

  /** DONE or CANCELLED: nothing is left to drive. */
  public static boolean terminal(MigrationState s) {
    return s == MigrationState.MIGRATION_STATE_DONE || s == MigrationState.MIGRATION_STATE_CANCELLED;
  }

  /** The states in which the source still owns the range, so a cancel is possible. */
  public static boolean beforeCutover(MigrationState s) {
    return switch (s) {
      case MIGRATION_STATE_PLANNED, MIGRATION_STATE_PREPARING, MIGRATION_STATE_COPYING, MIGRATION_STATE_CATCHING_UP,
          MIGRATION_STATE_VERIFYING, MIGRATION_STATE_CUTTING_OVER -> true;
      default -> false;
    };
  }
}
