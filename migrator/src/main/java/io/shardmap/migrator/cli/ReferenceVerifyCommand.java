package io.shardmap.migrator.cli;

import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.support.cli.ExitCode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code migrator reference verify --table T}: compares every copy of a reference table (docs/reference-verify.md). */
@Command(
    name = "verify",
    description = {
      "Compare every copy of a reference table: row count and checksum per copy, then, where they differ,",
      "per primary-key hash bucket and key by key; lists the keys at which each copy differs from the",
      "majority of the copies. Reads every copy at one point: it locks the table's epoch row on every copy",
      "(FOR UPDATE, in shard order), so no coordinated write is in flight or can start while it reads;",
      "writers wait for it. Changes nothing."
    },
    footer = {
      "",
      "Exit codes: 0 every copy is equal; 8 the copies differ; 3 NOT_FOUND (no such reference table);",
      "4 FAILED_PRECONDITION (a copy unguarded, the copies' columns differ); 5 UNAVAILABLE (etcd or a shard);",
      "7 ABORTED (an epoch row stayed locked, e.g. by a pending prepared transaction); 2 usage; 1 else."
    })
final class ReferenceVerifyCommand extends Cmd {
  @Mixin
  ReferenceOutput.Tuning tuning = new ReferenceOutput.Tuning();

  @Override
  int execute(MigratorCli cli) {
    ReferenceCheck.Settings settings = tuning.settings(this);
    ReferenceCheck r;
    try {
      r = migrator().verifyReference(tuning.table, settings, ReferenceOutput.progress(cli));
    } finally {
      ReferenceOutput.finish(cli);
    }
    if (cli.json()) {
      cli.out.println(ReferenceOutput.json(r));
    } else {
      ReferenceOutput.printCheck(cli.out, r, "agreeing with the majority");
    }
    return r.equal() ? ExitCode.OK.code() : ExitCode.DIFFERENT.code();
  }
}
