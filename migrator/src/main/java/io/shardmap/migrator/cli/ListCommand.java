package io.shardmap.migrator.cli;

import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.Migration;
import io.shardmap.support.cli.ExitCode;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
    name = "list",
    description = {
      "List migrations, sorted by id.",
      "With --json: a JSON array of Migration records (protobuf JSON), [] when there are none."
    },
    footer = {"", "Exit codes: 0 ok; 2 usage; 5 UNAVAILABLE (etcd unreachable); 1 anything else."})
final class ListCommand extends Cmd {
  @Option(names = "--active", description = "Only migrations that have not ended (neither done nor cancelled).")
  boolean active;

  @Override
  int execute(MigratorCli cli) {
    List<Migration> all = migrator().list().stream()
        .filter(m -> !active || !States.terminal(m.getState())).toList();
    if (cli.json()) {
      StringBuilder b = new StringBuilder("[");
      for (int i = 0; i < all.size(); i++) {
        b.append(i == 0 ? "\n" : ",\n").append(json(all.get(i), false));
      }
      cli.out.println(b.append(all.isEmpty() ? "]" : "\n]"));
    } else {
      Show.table(cli.out, all, false);
    }
    return ExitCode.OK.code();
  }
}
