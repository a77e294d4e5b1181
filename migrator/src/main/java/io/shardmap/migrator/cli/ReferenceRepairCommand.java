package io.shardmap.migrator.cli;

import io.shardmap.migrator.ReferenceRepair;
import io.shardmap.support.cli.ExitCode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code migrator reference repair --table T [--source S] [--dry-run]}: makes every copy of a reference
 * table equal (docs/reference-verify.md).
 */
@Command(
    name = "repair",
    description = {
      "Make every copy of a reference table equal: each key takes the version a strict majority of the",
      "copies hold, or, with --source, the version of that shard's copy. Each differing copy is repaired in",
      "one transaction (delete the rows the wanted version lacks, update the changed ones, insert the",
      "missing ones, by primary key), with the epoch row of every copy locked as 'reference verify' does,",
      "so coordinated writers wait for it and none is lost. Verifies again afterwards.",
      "A key without a strict majority (two copies that differ; three different versions) is refused",
      "with nothing changed: name the copy to trust with --source."
    },
    footer = {
      "",
      "Exit codes: 0 every copy is equal (repaired, already equal, or a dry run computed); 8 the copies still",
      "differ after the repair; 3 NOT_FOUND (table, --source shard); 4 FAILED_PRECONDITION (no majority,",
      "--source holds no copy, a copy unguarded, a constraint refused a change): nothing was changed;",
      "5 UNAVAILABLE; 7 ABORTED (an epoch row stayed locked); 2 usage; 1 else."
    })
final class ReferenceRepairCommand extends Cmd {
  @Mixin
  ReferenceOutput.Tuning tuning = new ReferenceOutput.Tuning();

  @Option(names = "--source", paramLabel = "SHARD",
      description = "Repair every copy from this shard's copy instead of each key's majority.")
  String source;

  @Option(names = "--dry-run", description = "Only show what would change.")
  boolean dryRun;

  @Override
  int execute(MigratorCli cli) {
    if (source != null && source.isBlank()) {
      throw usage("invalid value for option '--source': a shard name is required");
    }
    ReferenceRepair r;
    try {
      r = migrator().repairReference(tuning.table, source, dryRun, tuning.settings(this),
          ReferenceOutput.progress(cli));
    } finally {
      ReferenceOutput.finish(cli);
    }
    if (cli.json()) {
      cli.out.println(ReferenceOutput.json(r));
    } else {
      ReferenceOutput.printRepair(cli.out, r);
    }
    return r.dryRun() || r.equal() ? ExitCode.OK.code() : ExitCode.DIFFERENT.code();
  }
}
