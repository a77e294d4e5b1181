package io.shardmap.migrator.cli;

import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.support.cli.ExitCode;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code migrator reference}: the reference tables, small tables copied on every shard of their keyspaces
 * (docs/reference-tables.md). Each subcommand is a class nested here, except {@code verify} and {@code repair}
 * ({@link ReferenceVerifyCommand}, {@link ReferenceRepairCommand}; docs/reference-verify.md).
 */
@Command(
    name = "reference",
    description = {
      "Reference tables: small tables (countries, plans, currencies) copied on every shard that owns keys of",
      "their keyspaces, so each shard joins them locally. Every copy is guarded in its database: a write to one",
      "copy alone (psql) is refused; the SDK writes every copy in one cross-shard transaction.",
      "See docs/reference-tables.md."
    },
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      ReferenceCommand.Add.class,
      ReferenceCommand.Sync.class,
      ReferenceCommand.ListTables.class,
      ReferenceCommand.Remove.class,
      ReferenceVerifyCommand.class,
      ReferenceRepairCommand.class
    },
    footer = {"", "Exit codes: 0 ok; 2 usage; 3 NOT_FOUND; 4 refused; 5 UNAVAILABLE (a rerun finishes the work); "
        + "8 the copies differ (verify); 1 anything else."})
final class ReferenceCommand extends Cmd {
  @Override
  int execute(MigratorCli cli) {
    throw usage("give a subcommand: add, sync, list, remove, verify or repair (migrator reference --help)");
  }

  static void print(MigratorCli cli, List<ReferenceTable> tables, boolean array) {
    if (cli.json()) {
      if (!array && tables.size() == 1) {
        cli.out.println(json(tables.get(0), false));
        return;
      }
      StringBuilder b = new StringBuilder("[");
      for (int i = 0; i < tables.size(); i++) {
        b.append(i == 0 ? "\n" : ",\n").append(json(tables.get(i), false));
      }
      cli.out.println(b.append(tables.isEmpty() ? "]" : "\n]"));
      return;
    }
    if (tables.isEmpty() && array) {
      cli.out.println("(no reference tables)");
    }
    for (ReferenceTable t : tables) {
      cli.out.println(t.getTable() + "  keyspaces " + (t.getAllKeyspaces() ? "(all)" : String.join(",", t.getKeyspacesList()))
          + "  key (" + String.join(", ", t.getPrimaryKeyList()) + ")  epoch " + t.getEpoch() + "  copies "
          + String.join(",", t.getCopiesList()));
    }
  }

  @Command(
      name = "add",
      description = {
        "Declare TABLE a reference table of the given keyspaces (or of all, present and future): its rows are",
        "copied from --source to every shard owning keys of them (replacing what they held), every copy is",
        "guarded, then it is recorded in etcd. The table must have a primary key and exist with the same",
        "columns and key on every such shard; otherwise nothing changes anywhere. Safe to run again after a",
        "crash at any step."
      },
      footer = {"", "Exit codes: 0 declared; 2 usage or INVALID_ARGUMENT (no primary key); 3 NOT_FOUND (table, "
          + "keyspace or shard); 4 refused (a table missing or different on a shard, declared otherwise); "
          + "5 UNAVAILABLE; 1 anything else."})
  static final class Add extends Cmd {
    @Parameters(index = "0", paramLabel = "TABLE", description = "The table, in any form PostgreSQL resolves on "
        + "the source (countries, public.countries, \"Plans\"); recorded by its canonical name.")
    String table;

    static final class Scope {
      @Option(names = "--keyspace", paramLabel = "KS", split = ",", required = true,
          description = "A keyspace whose shards get a copy; repeat or comma-separate for more.")
      List<String> keyspaces = new ArrayList<>();

      @Option(names = "--all-keyspaces", required = true,
          description = "Copy it on the shards of every keyspace, present and future.")
      boolean all;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Scope scope;

    @Option(names = "--source", paramLabel = "SHARD", required = true,
        description = "The shard whose rows every copy gets.")
    String source;

    @Override
    int execute(MigratorCli cli) {
      ReferenceTable t = migrator().addReference(table, scope.all ? List.of() : scope.keyspaces, scope.all, source,
          line -> cli.err.println(line));
      print(cli, List.of(t), false);
      return ExitCode.OK.code();
    }
  }

  @Command(
      name = "sync",
      description = {
        "Give every shard that owns keys of a reference table's keyspaces and lacks a copy one: the epoch is",
        "raised on every copy (writers that knew the old copies are refused and rerun), the rows are copied",
        "from an existing copy, the new copy is guarded, and the record names it. With --shard, give those",
        "shards the copies of every reference table of --keyspace (or of all), so a map edit may then make them",
        "owners (an edit making a shard without them an owner is refused). Migrator moves do it themselves."
      },
      footer = {"", "Exit codes: 0 ok; 5 UNAVAILABLE (a rerun finishes the work); 1 anything else."})
  static final class Sync extends Cmd {
    @Option(names = "--shard", paramLabel = "SHARD", split = ",",
        description = "A shard to give copies to before it owns keys; repeat or comma-separate for more.")
    List<String> shards = new ArrayList<>();

    @Option(names = "--keyspace", paramLabel = "KS",
        description = "With --shard: only the reference tables of this keyspace.")
    String keyspace;

    @Override
    int execute(MigratorCli cli) {
      List<ReferenceTable> changed = migrator().syncReferences(shards, keyspace, line -> cli.err.println(line));
      if (!cli.json() && changed.isEmpty()) {
        cli.out.println("every owner has its copies");
        return ExitCode.OK.code();
      }
      print(cli, changed, true);
      return ExitCode.OK.code();
    }
  }

  @Command(
      name = "list",
      description = {"The reference tables: keyspaces, primary key, epoch and the shards holding a copy.",
        "With --json: a JSON array of ReferenceTable records (protobuf JSON)."},
      footer = {"", "Exit codes: 0 ok; 5 UNAVAILABLE (etcd unreachable); 1 anything else."})
  static final class ListTables extends Cmd {
    @Override
    int execute(MigratorCli cli) {
      print(cli, migrator().listReferences(), true);
      return ExitCode.OK.code();
    }
  }

  @Command(
      name = "remove",
      description = {"Stop treating TABLE as a reference table: the guard of every copy is dropped, then the",
        "record. The copies' rows stay where they are."},
      footer = {"", "Exit codes: 0 removed; 3 NOT_FOUND (no such reference table); 5 UNAVAILABLE (run again); "
          + "8 the copies differ (verify); 1 anything else."})
  static final class Remove extends Cmd {
    @Parameters(index = "0", paramLabel = "TABLE", description = "The table's canonical name, as 'list' shows it "
        + "(an unqualified name means schema public).")
    String table;

    @Override
    int execute(MigratorCli cli) {
      ReferenceTable t = migrator().removeReference(table, line -> cli.err.println(line));
      if (cli.json()) {
        cli.out.println(json(t, false));
      } else {
        cli.out.println(t.getTable() + ": removed (copies on " + String.join(",", t.getCopiesList()) + " keep their rows)");
      }
      return ExitCode.OK.code();
    }
  }
}
