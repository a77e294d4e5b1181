package io.shardmap.bench;

import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * One move driven to its end through {@link Migrator#drive}, with the {@code System.nanoTime()} at which
 * its progress callback first reported each state. The callback runs after each persisted step, so a
 * state's first report is when the previous phase ended; a phase lasts from its first report to the
 * next phase's.
 */
final class MoveTimeline {
  /** The phases of a move that completes, in order; a phase lasts until the next one is first reported. */
  static final List<MigrationState> PHASES = List.of(MigrationState.MIGRATION_STATE_PREPARING,
      MigrationState.MIGRATION_STATE_COPYING, MigrationState.MIGRATION_STATE_CATCHING_UP,
      MigrationState.MIGRATION_STATE_VERIFYING, MigrationState.MIGRATION_STATE_CUTTING_OVER,
      MigrationState.MIGRATION_STATE_CLEANING_UP, MigrationState.MIGRATION_STATE_DONE);

  final long start;
  final long planned;
  final long end;
  final Migration result;
  private final Map<MigrationState, Long> firstSeen;

  private MoveTimeline(long start, long planned, long end, Migration result, Map<MigrationState, Long> firstSeen) {
    this.start = start;
    this.planned = planned;
    this.end = end;
    this.result = result;
    this.firstSeen = firstSeen;
  }

  /**
   * Plans {@code spec} and drives it here until it ends; {@code observer} sees every progress report.
   * Fails unless the move ends DONE.
   */
  static MoveTimeline run(Migrator migrator, MoveSpec spec, java.util.function.Consumer<Migration> observer) {
    Map<MigrationState, Long> seen = new EnumMap<>(MigrationState.class);
    long t0 = System.nanoTime();
    Migration plan = migrator.plan(spec);
    long planned = System.nanoTime();
    Migration end = migrator.drive(plan.getId(), m -> {
      seen.putIfAbsent(m.getState(), System.nanoTime());
      observer.accept(m);
    }, Duration.ofSeconds(10));
    long t1 = System.nanoTime();
    if (end.getState() != MigrationState.MIGRATION_STATE_DONE) {
      throw new IllegalStateException("move " + plan.getId() + " ended " + end.getState() + ": " + end.getLastError());
    }
    return new MoveTimeline(t0, planned, t1, end, seen);
  }

  /** When {@code s} was first reported (nanoTime); the end of the phase before it. */
  long at(MigrationState s) {
    Long t = firstSeen.get(s);
    if (t == null) {
      throw new IllegalStateException("state " + s + " was never reported");
    }
    return t;
  }

  /** How long phase {@code s} lasted, in ns (DONE: 0). */
  long phaseNanos(MigrationState s) {
    int i = PHASES.indexOf(s);
    return i == PHASES.size() - 1 ? 0 : at(PHASES.get(i + 1)) - at(s);
  }

  /** From the plan request to the DONE record. */
  long totalNanos() {
    return end - start;
  }

  /** The copy phase: from the record that ended preparation to the one that recorded the last chunk. */
  long copyNanos() {
    return phaseNanos(MigrationState.MIGRATION_STATE_COPYING);
  }

  static String label(MigrationState s) {
    return s.name().substring("MIGRATION_STATE_".length()).toLowerCase(java.util.Locale.ROOT).replace('_', '-');
  }
}
