package io.shardmap.migrator.cli;

import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.support.cli.ExitCode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "cancel",
    description = {
      "Cancel a migration that has not cut over.",
      "The source keeps what was moving (a range, a bucket, a ring node's arc, directory entries); the",
      "target's copy is removed.",
      "Records the request, then drives the migration to cancelled here, or, when a worker holds it, waits",
      "for that worker to do so. With --no-wait only the request is recorded. Refused once the move has cut",
      "over (the target owns it: move it back with a new migration)."
    },
    footer = {
      "",
      "Exit codes: 0 cancelled (or, with --no-wait, requested); 2 usage; 3 NOT_FOUND (no such migration);",
      "4 FAILED_PRECONDITION (it cut over already, or did while the cancel waited); 5 UNAVAILABLE (etcd or a",
      "shard unreachable: the request stands; 'migrator resume ID' finishes it); 7 ABORTED; 130/143 stopped",
      "by SIGINT/SIGTERM; 1 anything else."
    })
final class CancelCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "ID", description = "The migration's id.")
  String id;

  @Option(names = "--no-wait", description = "Only record the request; the worker driving it (or the next "
      + "'resume') undoes the move at its next step.")
  boolean noWait;

  @Override
  int execute(MigratorCli cli) {
    Migration requested = migrator().requestCancel(id);
    if (noWait) {
      if (cli.json()) {
        cli.out.println(json(requested, false));
      } else {
        cli.out.println(requested.getId() + " " + Show.state(requested)
            + (States.terminal(requested.getState()) ? "" : ", cancel requested"));
      }
      return ExitCode.OK.code();
    }
    Progress progress = Progress.of(cli, null);
    progress.show(requested);
    Migration end = Follow.untilEnd(cli, migrator(), id, progress, null);
    StatusCommand.print(cli, end);
    if (end.getState() != MigrationState.MIGRATION_STATE_CANCELLED) {
      throw new MigratorCli.Ended("FAILED_PRECONDITION", ExitCode.REFUSED, "id: migration '" + id
          + "' cut over before the cancel was honoured (" + Show.state(end) + "): " + end.getTarget() + " owns "
          + Show.named(end) + " of " + end.getKeyspace() + "; move it back with a new migration instead");
    }
    return ExitCode.OK.code();
  }
}
