package io.shardmap.migrator.cli;

import io.shardmap.proto.v1.Migration;
import io.shardmap.support.cli.ExitCode;
import io.shardmap.support.cli.Table;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(
    name = "status",
    description = {
      "Show one migration.",
      "Where it is, its counters, its owner and its last error.",
      "With --json: the Migration record as protobuf JSON (one object)."
    },
    footer = {"", "Exit codes: 0 ok; 2 usage; 3 NOT_FOUND (no such migration); 5 UNAVAILABLE (etcd unreachable);",
        "1 anything else."})
final class StatusCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "ID", description = "The migration's id.")
  String id;

  @Override
  int execute(MigratorCli cli) {
    print(cli, migrator().status(id));
    return ExitCode.OK.code();
  }

  /** One migration on stdout: protobuf JSON, or for people its table row and details. */
  static void print(MigratorCli cli, Migration m) {
    if (cli.json()) {
      cli.out.println(json(m, false));
    } else {
      Show.table(cli.out, List.of(m), true);
      cli.out.println();
      Table.keyValues(cli.out, Show.details(m));
    }
    cli.out.flush();
  }
}
