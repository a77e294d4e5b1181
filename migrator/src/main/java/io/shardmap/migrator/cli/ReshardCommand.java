package io.shardmap.migrator.cli;

import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.support.cli.ExitCode;
import java.util.List;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "reshard",
    description = {
      "Add a shard to, or remove one from, a hash or consistent-hash keyspace.",
      "Hash: --add gives SHARD buckets/(owners+1) buckets, each from the shard owning the most; --remove moves",
      "each of its buckets to the shard owning the fewest. Ring: --add joins SHARD's nodes (--vnodes, default",
      "the keyspace's) one at a time, each taking the arc before it (about 1/N of the keys in all); --remove",
      "makes its nodes leave one at a time. Every step that moves data is a migration, planned and driven",
      "here to its end before the next; a ring node whose arc stays on its own shard only changes the layout.",
      "With --dry-run only the plan is printed."
    },
    footer = {
      "",
      "Exit codes: 0 done; 2 usage; 3 NOT_FOUND; 4 FAILED_PRECONDITION (refused, or a move ended other than",
      "done: the moves before it stay done); 5 UNAVAILABLE; 7 ABORTED; 1 anything else."
    })
final class ReshardCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "KEYSPACE", description = "A hash or consistent-hash keyspace.")
  String keyspace;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Change change;

  static final class Change {
    @Option(names = "--add", paramLabel = "SHARD", description = "The shard to add (registered, owning nothing).")
    String add;

    @Option(names = "--remove", paramLabel = "SHARD", description = "The shard to empty.")
    String remove;
  }

  @Option(names = "--vnodes", paramLabel = "N", defaultValue = "0",
      description = "Ring nodes the added shard gets (default: the keyspace's default_vnodes).")
  int vnodes;

  @Option(names = "--dry-run", description = "Print the plan; move nothing.")
  boolean dryRun;

  @Mixin
  MoveTuning tuning;

  @Override
  int execute(MigratorCli cli) {
    if (vnodes < 0) {
      throw usage("--vnodes: must not be negative, got " + vnodes);
    }
    boolean add = change.add != null;
    String shard = add ? change.add : change.remove;
    if (dryRun) {
      migrator().reshardPlan(keyspace, shard, add, vnodes).forEach(cli.out::println);
      cli.out.flush();
      return ExitCode.OK.code();
    }
    // Validates the options once, before the first move.
    MoveSpec.Builder probe = MoveSpec.builder();
    tune(probe);
    List<Migration> done = migrator().reshard(keyspace, shard, add, vnodes, b -> {
      tune(b);
      return b;
    }, line -> {
      cli.err.println(line);
      cli.err.flush();
    });
    if (cli.json()) {
      done.forEach(m -> cli.out.println(json(m, true)));
    } else {
      Show.table(cli.out, done, true);
    }
    cli.out.flush();
    return ExitCode.OK.code();
  }

  private void tune(MoveSpec.Builder b) {
    tuning.applyTo(b, this::set);
  }
}
