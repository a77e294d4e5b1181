package io.shardmap.migrator.cli;

import io.shardmap.proto.v1.Migration;
import io.shardmap.support.cli.Durations;
import java.time.Duration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "resume",
    description = {
      "Drive a migration to its end here, from where it stands.",
      "After a crash, a stop or a --detach: drives it here, showing progress on stderr. If a worker holds",
      "it, waits up to --wait-for-owner for that worker to finish or its lease to expire (a dead worker's",
      "lease expires within its TTL, 10s by default); a worker that is alive and still holds it then is",
      "reported (exit 7). A migration that has ended is only shown."
    },
    footer = {
      "",
      "Exit codes: 0 done; 2 usage; 3 NOT_FOUND (no such migration); 4 FAILED_PRECONDITION;",
      "5 UNAVAILABLE (etcd or a shard unreachable: resume again later); 6 the migration ended cancelled;",
      "7 ABORTED (held by another live worker); 130/143 stopped by SIGINT/SIGTERM; 1 anything else."
    })
final class ResumeCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "ID", description = "The migration's id.")
  String id;

  @Option(names = "--wait-for-owner", paramLabel = "DURATION", converter = Durations.ZeroAllowed.class,
      defaultValue = "15s", description = "How long another worker may hold it before giving up (default 15s; 0 "
          + "gives up at once).")
  Duration waitForOwner;

  @Override
  int execute(MigratorCli cli) {
    Progress progress = Progress.of(cli, migrator()::estimateRows);
    Migration end = Follow.untilEnd(cli, migrator(), id, progress, waitForOwner);
    return MoveCommand.ended(cli, end);
  }
}
