package io.shardmap.examples;

import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.QueryResult;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.ShardmapException;
import java.io.PrintWriter;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The example's {@code countries}: a reference table of the users keyspace (a copy on every shard, declared
 * with {@code shardmap-migrator reference add countries --keyspace users --source shard1}, which up.sh does),
 * written through {@link ShardmapData#writeReference} (every copy in one cross-shard commit) and joined with
 * the users on each shard by one cross-shard query.
 */
@Command(name = "countries", mixinStandardHelpOptions = true, version = "shardmap-example 0.1.0", sortOptions = false,
    description = {"The countries reference table: with --set, writes a country on every copy in one cross-shard "
        + "transaction (ShardmapData.writeReference); then prints the users per country, one cross-shard query "
        + "in which each shard joins its users with its own copy of countries.",
        "Exit status: 0; 1 on a failure, with the reason on stderr; 2 for bad options."})
final class CountriesCommand implements Callable<Integer> {
  @Mixin
  ConnectionOptions conn;

  @Option(names = "--keyspace", defaultValue = "users", paramLabel = "NAME",
      description = "INT64 keyspace of the users table (default: ${DEFAULT-VALUE}).")
  String keyspace;

  @Option(names = "--table", defaultValue = "users", paramLabel = "NAME",
      description = "Users table (id bigint PRIMARY KEY, name text NOT NULL, country text) (default: ${DEFAULT-VALUE}).")
  String table;

  @Option(names = "--countries-table", defaultValue = "countries", paramLabel = "NAME",
      description = "Reference table (code text PRIMARY KEY, name text NOT NULL) of the keyspace "
          + "(default: ${DEFAULT-VALUE}).")
  String countries;

  @Option(names = "--set", arity = "2", paramLabel = "CODE NAME",
      description = "Insert or rename country CODE (two lower-case letters) on every copy.")
  String[] set;

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    try {
      for (String t : new String[] {table, countries}) {
        if (!t.matches("[a-z_][a-z0-9_]{0,62}")) {
          throw bad("--table/--countries-table: '" + t + "' is not a plain lower-case SQL name");
        }
      }
      if (set != null && (!set[0].matches("[a-z]{2}") || set[1].isBlank())) {
        throw bad("--set: CODE is two lower-case letters and NAME is not blank, got '" + set[0] + "' '" + set[1] + "'");
      }
      try {
        conn.check(keyspace);
      } catch (IllegalArgumentException e) {
        throw bad("--directory/--keyspace: " + e.getMessage());
      }
      conn.configureLogging();
      try (ShardmapClient client = conn.start(keyspace);
           ShardmapData data = ShardmapData.open(client, conn.dataOptions(4))) {
        if (set != null) {
          String code = set[0];
          String name = set[1];
          long t0 = System.nanoTime();
          int copies = data.writeReference(keyspace, countries, c -> {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + countries + " (code, name) VALUES (?, ?) "
                + "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name")) {
              ps.setString(1, code);
              ps.setString(2, name);
              return ps.executeUpdate();
            }
          });
          out.printf("Set country %s = '%s' on every copy of %s in one cross-shard commit (%d row per copy, %,d ms)%n",
              code, name, countries, copies, (System.nanoTime() - t0) / 1_000_000);
        }
        out.println("Users per country (one cross-shard query; each shard joins its users with its own copy of "
            + countries + "):");
        try (QueryResult r = data.query(CrossShardQuery.builder(keyspace, "SELECT coalesce(c.name, '(none)') AS "
            + "country, count(*) AS users FROM " + table + " u LEFT JOIN " + countries + " c ON c.code = u.country "
            + "GROUP BY 1 ORDER BY 2 DESC, 1").build())) {
          while (r.next()) {
            out.printf("  %-20s %,8d%n", r.getString(1), ((Number) r.getObject(2)).longValue());
          }
        }
        out.println("The countries, as read on one shard (every copy is the same):");
        data.read(keyspace, 0L, c -> {
          try (PreparedStatement ps = c.prepareStatement("SELECT code, name FROM " + countries + " ORDER BY code");
               ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
              out.printf("  %s  %s%n", rs.getString(1), rs.getString(2));
            }
          }
          return null;
        });
      }
      out.println("OK");
      out.flush();
      return 0;
    } catch (CommandLine.ParameterException e) {
      throw e;
    } catch (UsersExample.Failure | InterruptedException | RuntimeException | SQLException e) {
      if (e instanceof ShardmapException s && s.code() == io.shardmap.core.ErrorCode.NOT_FOUND) {
        err.println("(is " + countries + " a reference table of keyspace " + keyspace + "? deploy/local/up.sh declares "
            + "it: deploy/local/migrator reference add " + countries + " --keyspace " + keyspace + " --source shard1)");
      }
      return UsersExample.failed(e, out, err);
    }
  }

  private CommandLine.ParameterException bad(String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }
}
