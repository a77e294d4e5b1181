package io.shardmap.migrator.cli;

import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationState;
import io.shardmap.support.cli.ExitCode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "move",
    description = {
      "Move a key range (or a hash bucket, a ring node's arc, directory entries, a region) to another shard while",
      "applications keep writing.",
      "Plans the move of RANGE of KEYSPACE to SHARD (every check happens here, before anything is written),",
      "then drives it here to the end, showing progress on stderr. With --detach it is only recorded",
      "(state planned) for a 'migrator worker' to run, and its id is printed.",
      "RANGE is start..end, half-open, either side may be empty: 5000..25000, ..0, 1000..",
      "Other keyspaces name their unit instead of RANGE: --bucket N (hash), --ring-join (the target's next",
      "virtual node joins the ring), --ring-leave SHARD (its last node leaves; --to may be left out), or",
      "--entries KEY,KEY,... (directory, up to 50 entries of one shard), or --region NAME (geographic; the",
      "default region takes every unlisted region's keys with it).",
      "Ctrl-C (SIGINT) or SIGTERM stops after the current step and hands the migration back; 'resume' goes on."
    },
    footer = {
      "",
      "Exit codes: 0 done (or recorded, with --detach); 2 usage or INVALID_ARGUMENT; 3 NOT_FOUND (keyspace,",
      "shard, range); 4 FAILED_PRECONDITION or ALREADY_EXISTS (refused before anything was copied);",
      "5 UNAVAILABLE (etcd or a shard unreachable: 'migrator resume ID' later); 6 the move ended cancelled;",
      "7 ABORTED (held by another worker, or concurrent changes); 130/143 stopped by SIGINT/SIGTERM; 1 else."
    })
final class MoveCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "KEYSPACE", description = "The keyspace.")
  String keyspace;

  @Parameters(index = "1", paramLabel = "RANGE", arity = "0..1",
      description = "start..end: one range of the map, or any range with --split (range keyspaces).")
  String range;

  @Option(names = "--bucket", paramLabel = "N", description = "Move hash bucket N (hash keyspaces).")
  Integer bucket;

  @Option(names = "--ring-join", description = "The target's next virtual node joins the ring and takes its "
      + "arc from the node after it (consistent-hash keyspaces).")
  boolean ringJoin;

  @Option(names = "--ring-leave", paramLabel = "SHARD", description = "SHARD's last virtual node leaves the ring; "
      + "its arc moves to the node after it (consistent-hash keyspaces).")
  String ringLeave;

  @Option(names = "--entries", paramLabel = "KEY", split = ",",
      description = "Move these directory entries: 42, 'name', 0x00ff (directory keyspaces; all of one shard).")
  java.util.List<String> entries;

  @Option(names = "--region", paramLabel = "NAME", description = "Move region NAME: every key that is NAME, and for "
      + "the default region every key naming no listed region (geographic keyspaces).")
  String region;

  @Option(names = "--to", paramLabel = "SHARD", description = "The target shard (required but with --ring-leave).")
  String target;

  @Option(names = "--id", paramLabel = "ID",
      description = "The migration's id: 1-40 of a-z, 0-9 and _ (default: generated).")
  String id;

  @Option(names = "--split", description = "Split the range out of the ranges holding its bounds first.")
  boolean split;

  @Mixin
  MoveTuning tuning;

  @Option(names = "--detach", description = "Only record the move for a worker; print its id and return.")
  boolean detach;

  @Override
  int execute(MigratorCli cli) {
    MoveSpec spec = spec();
    Migration planned = migrator().plan(spec);
    if (detach) {
      if (cli.json()) {
        cli.out.println(json(planned, false));
      } else {
        cli.out.println(planned.getId());
        cli.err.println("recorded migration " + planned.getId() + ": " + planned.getKeyspace() + " "
            + Show.named(planned) + " from " + planned.getSource() + " to " + planned.getTarget()
            + "; a 'migrator worker' runs it, or 'migrator resume " + planned.getId() + "' here");
      }
      return ExitCode.OK.code();
    }
    Progress progress = Progress.of(cli, migrator()::estimateRows);
    progress.show(planned);
    Migration end = Follow.untilEnd(cli, migrator(), planned.getId(), progress, null);
    return ended(cli, end);
  }

  private MoveSpec spec() {
    MoveSpec.Builder b = MoveSpec.builder();
    set("KEYSPACE", () -> b.keyspace(keyspace));
    if (range != null) {
      set("RANGE", () -> b.range(range));
    }
    if (bucket != null) {
      set("--bucket", () -> b.bucket(bucket));
    }
    if (ringJoin) {
      b.ringJoin();
    }
    if (ringLeave != null) {
      set("--ring-leave", () -> b.ringLeave(ringLeave));
    }
    if (entries != null) {
      set("--entries", () -> b.entries(entries));
    }
    if (region != null) {
      set("--region", () -> b.region(region));
    }
    if (target != null) {
      set("--to", () -> b.target(target));
    }
    if (id != null) {
      set("--id", () -> b.id(id));
    }
    b.split(split);
    tuning.applyTo(b, this::set);
    int units = (range != null ? 1 : 0) + (bucket != null ? 1 : 0) + (ringJoin ? 1 : 0) + (ringLeave != null ? 1 : 0)
        + (entries != null ? 1 : 0) + (region != null ? 1 : 0);
    if (units != 1) {
      throw usage("give exactly one of RANGE, --bucket, --ring-join, --ring-leave, --entries and --region");
    }
    if (target == null && ringLeave == null) {
      throw usage("--to SHARD is required (but with --ring-leave)");
    }
    try {
      return b.build();
    } catch (IllegalArgumentException e) {
      throw usage(e.getMessage());
    }
  }

  /**
   * Prints how a driven migration ended (stdout) and returns 0 for DONE; a move that ended CANCELLED (by
   * request, or because the pause budget could not be met) fails with exit 6.
   */
  static int ended(MigratorCli cli, Migration end) {
    StatusCommand.print(cli, end);
    if (end.getState() == MigrationState.MIGRATION_STATE_CANCELLED) {
      throw new MigratorCli.Ended("CANCELLED", ExitCode.CANCELLED, "migration '" + end.getId()
          + "' ended cancelled: " + (end.getLastError().isEmpty() ? "a cancel was requested" : end.getLastError())
          + "; " + end.getSource() + " still owns " + Show.named(end) + " of " + end.getKeyspace());
    }
    return ExitCode.OK.code();
  }
}
