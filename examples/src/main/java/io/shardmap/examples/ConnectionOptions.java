package io.shardmap.examples;

import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.core.ShardmapException;
import io.shardmap.support.cli.Durations;
import java.time.Duration;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import picocli.CommandLine.Option;

/**
 * What every command of the example needs to reach the system: the directory servers, the PostgreSQL role
 * and the SDK's logging (a picocli mixin, so each command takes them after its name).
 */
final class ConnectionOptions {
  static final String DEFAULT_DIRECTORY = "127.0.0.1:7700,127.0.0.1:7710";

  @Option(names = "--directory", paramLabel = "HOST:PORT", split = ",",
      defaultValue = DEFAULT_DIRECTORY,
      description = "Directory servers, comma-separated, tried in order (default: ${DEFAULT-VALUE}: the "
          + "two replicas of deploy/local/up.sh).")
  List<String> directory;

  @Option(names = "--pg-user", defaultValue = "postgres", paramLabel = "ROLE",
      description = "PostgreSQL role on every shard (default: ${DEFAULT-VALUE}, as deploy/local/up.sh sets up).")
  String pgUser;

  @Option(names = "--pg-password", defaultValue = "${env:SHARDMAP_PG_PASSWORD}", paramLabel = "PASSWORD",
      description = "Its password (default: $SHARDMAP_PG_PASSWORD; none, as deploy/local/up.sh's trust "
          + "authentication needs none).")
  String pgPassword;

  @Option(names = "--start-timeout", defaultValue = "15s", paramLabel = "DURATION",
      converter = Durations.Positive.class,
      description = "How long to wait for the first map from a directory server (default: ${DEFAULT-VALUE}).")
  Duration startTimeout;

  @Option(names = "--verbose", description = "Also show the SDK's informational log (pools opened, maps loaded).")
  boolean verbose;

  /** Kept so the level set on it is not lost to garbage collection. */
  private static Logger sdkLogger;

  /** Sets the SDK's log level: warnings only unless --verbose. */
  void configureLogging() {
    sdkLogger = Logger.getLogger("io.shardmap");
    sdkLogger.setLevel(verbose ? Level.INFO : Level.WARNING);
  }

  /** Checks the directory list and keyspace names as the SDK would; the message names the rule. */
  void check(String... keyspaces) {
    ClientOptions.builder().targets(directory).keyspaces(keyspaces);
  }

  /** Starts a client routing {@code keyspaces}; a system that is not up gets a hint. */
  ShardmapClient start(String... keyspaces) throws UsersExample.Failure, InterruptedException {
    ClientOptions options = ClientOptions.builder()
        .targets(directory)
        .keyspaces(keyspaces)
        .startTimeout(startTimeout)
        .build();
    try {
      return ShardmapClient.start(options);
    } catch (ShardmapException e) {
      throw new UsersExample.Failure(e.getMessage() + " (is the system up? deploy/local/up.sh starts it)", e);
    }
  }

  /** The data options with this role and password, {@code poolSize} connections per shard. */
  DataOptions dataOptions(int poolSize) {
    return DataOptions.builder()
        .user(pgUser)
        .password(pgPassword == null || pgPassword.isEmpty() ? null : pgPassword)
        .maxPoolSize(poolSize)
        .build();
  }
}
