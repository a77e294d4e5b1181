package io.shardmap.examples;

import io.shardmap.client.GlobalIds;
import io.shardmap.client.ShardKey;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.ids.IdLayout;
import java.io.PrintWriter;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * The example's {@code signup}: new users get a global id ({@link ShardmapClient#ids}: unique across every
 * process and shard without a round trip per id) and are written on the shard that owns it.
 *
 * <p>The ids use {@link #LAYOUT}: the default Snowflake layout with {@code spreadBits = 3}, because the users
 * keyspace is split by ranges of the id and time-ordered ids would all land in its last range (docs/ids.md,
 * "New ids and range keyspaces"). Every process of generator {@code users} must use this layout.
 */
@Command(name = "signup", mixinStandardHelpOptions = true, version = "shardmap-example 0.1.0", sortOptions = false,
    description = {"Signs up new users: each gets a global id from the SDK's id generator (a worker id leased "
        + "through the directory servers, no round trip per id) and is inserted, in a transaction, on the shard "
        + "that owns that id. Prints each user's id, what it is made of and its shard.",
        "Exit status: 0 when every user was written; 1 otherwise, with the reason on stderr; 2 for bad options."})
final class SignupCommand implements Callable<Integer> {
  /** The example's id layout: 41 bits of ms, 10 of worker, 12 of sequence, new ids spread over 8 slices. */
  static final IdLayout LAYOUT = IdLayout.builder().spreadBits(3).build();

  @Mixin
  ConnectionOptions conn;

  @Parameters(paramLabel = "NAME", arity = "1..*", description = "Names of the users to sign up.")
  List<String> names = new ArrayList<>();

  @Option(names = "--keyspace", defaultValue = "users", paramLabel = "NAME",
      description = "INT64 keyspace of the users table (default: ${DEFAULT-VALUE}).")
  String keyspace;

  @Option(names = "--table", defaultValue = "users", paramLabel = "NAME",
      description = "Table (id bigint PRIMARY KEY, name text NOT NULL[, country text]) on every shard "
          + "(default: ${DEFAULT-VALUE}).")
  String table;

  @Option(names = "--generator", defaultValue = "users", paramLabel = "NAME",
      description = "Name of the global id generator (default: ${DEFAULT-VALUE}).")
  String generator;

  @Option(names = "--country", paramLabel = "CODE",
      description = "The users' country code (column country), e.g. fr; none by default.")
  String country;

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    try {
      if (!table.matches("[a-z_][a-z0-9_]{0,62}")) {
        throw bad("--table: '" + table + "' is not a plain lower-case SQL name");
      }
      for (String n : names) {
        if (n.isBlank()) {
          throw bad("NAME: a user's name is not blank");
        }
      }
      if (country != null && !country.matches("[a-z]{2}")) {
        throw bad("--country: a two-letter lower-case code, got '" + country + "'");
      }
      try {
        conn.check(keyspace);
      } catch (IllegalArgumentException e) {
        throw bad("--directory/--keyspace: " + e.getMessage());
      }
      conn.configureLogging();
      try (ShardmapClient client = conn.start(keyspace);
           ShardmapData data = ShardmapData.open(client, conn.dataOptions(4));
           GlobalIds ids = client.ids(generator, LAYOUT)) {
        var k = client.snapshot().keyspace(keyspace).orElse(null);
        if (k == null || !k.integerKeys()) {
          throw new UsersExample.Failure("keyspace '" + keyspace + "' " + (k == null ? "does not exist"
              : "has byte-string keys") + "; signup needs an INT64 keyspace (deploy/local/up.sh creates 'users')", null);
        }
        String sql = "INSERT INTO " + table + (country == null ? " (id, name) VALUES (?, ?)"
            : " (id, name, country) VALUES (?, ?, ?)");
        out.printf("Generator '%s': worker id %d leased through the directory servers (%s)%n", generator,
            ids.workerId(), LAYOUT);
        for (String name : names) {
          long id = ids.next(); // taken once: the work below may run again on another shard
          data.inTransaction(keyspace, ShardKey.of(id), c -> {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
              ps.setLong(1, id);
              ps.setString(2, name);
              if (country != null) {
                ps.setString(3, country);
              }
              return ps.executeUpdate();
            }
          });
          out.printf("  %s: id %d (made at %s by worker %d, sequence %d) on %s%n", name, id,
              Instant.ofEpochMilli(LAYOUT.unixMillisOf(id)), LAYOUT.workerOf(id), LAYOUT.sequenceOf(id),
              client.route(keyspace, id).shard());
        }
      }
      out.println("OK");
      out.flush();
      return 0;
    } catch (CommandLine.ParameterException e) {
      throw e;
    } catch (UsersExample.Failure | InterruptedException | RuntimeException | SQLException e) {
      return UsersExample.failed(e, out, err);
    }
  }

  private CommandLine.ParameterException bad(String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }
}
