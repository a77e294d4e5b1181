package io.shardmap.migrator;

import java.util.List;

/**
 * What repairing the copies of a reference table did ({@link Migrator#repairReference}).
 *
 * @param table the canonical table name
 * @param source the shard every copy was repaired from, or null when each key was repaired from its
 *     majority version
 * @param dryRun whether the changes were only computed (nothing was written)
 * @param before the comparison the repair was computed from (against the source when one was named)
 * @param changes the rows changed (or, in a dry run, to change) per repaired copy, by shard; empty when
 *     the copies were already equal
 * @param after the verification run once the repair committed; null in a dry run and when nothing was
 *     to repair
 */
public record ReferenceRepair(String table, String source, boolean dryRun, ReferenceCheck before,
    List<Change> changes, ReferenceCheck after) {

  public ReferenceRepair {
    changes = List.copyOf(changes);
  }

  /** The rows one copy got (or would get): inserted (missing there), updated (changed), deleted (extra). */
  public record Change(String shard, long inserted, long updated, long deleted) {
    public long total() {
      return inserted + updated + deleted;
    }
  }

  /** Whether every copy is equal now (after the repair, or already before it). */
  public boolean equal() {
    return after != null ? after.equal() : before.equal();
  }
}
