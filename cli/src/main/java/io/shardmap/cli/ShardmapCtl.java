package io.shardmap.cli;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ListKeyspacesRequest;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.Errors;
import io.shardmap.support.cli.ExitCode;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * The root command. It owns the global options, the one channel to the server (opened on first use,
 * closed when the command ends) and the mapping of failures to messages and exit codes.
 */
@Command(
    name = "shardmapctl",
    description = {"Operate a Shardmap directory: shards, keyspaces and their maps, lookups and watches.",
      "query, count and txn list also read the shards' PostgreSQL (--pg-user, password from $SHARDMAP_PG_PASSWORD "
          + "or $PGPASSWORD)."},
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      ShardCommands.class,
      KeyspaceCommands.class,
      LookupCommand.class,
      RangeCommands.class,
      BucketCommands.class,
      HashCommands.class,
      RingCommands.class,
      DirectoryCommands.class,
      RegionCommands.class,
      WatchCommand.class,
      QueryCommands.Query.class,
      QueryCommands.Count.class,
      TxnCommands.class,
      SequenceCommands.class,
      StatusCommands.Status.class,
      StatusCommands.Hot.class
    },
    footer = {
      "",
      "Run 'shardmapctl COMMAND --help' for the options of a command.",
      ""
      // The exit codes follow, generated from ExitCode (see run).
    })
public final class ShardmapCtl {
  static final String DEFAULT_SERVER = "127.0.0.1:7700";
  static final String SERVER_ENV = "SHARDMAP_SERVER";
  static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);

  /** The exit codes shardmapctl can end with, as its --help lists them. */
  static final ExitCode[] EXIT_CODES = {ExitCode.OK, ExitCode.USAGE, ExitCode.NOT_FOUND, ExitCode.REFUSED,
      ExitCode.UNAVAILABLE, ExitCode.ABORTED, ExitCode.OTHER};

  /** How results are printed. */
  enum Format { text, json }

  // Options are inherited so they may stand before or after the subcommand. They have no picocli
  // defaults: a subcommand's copy would otherwise re-apply the default over a value given earlier.
  @Option(names = "--server", scope = ScopeType.INHERIT, paramLabel = "HOST:PORT",
      description = "Directory server to talk to (default: $SHARDMAP_SERVER, else " + DEFAULT_SERVER + ").")
  String server;

  @Option(names = {"-o", "--output"}, scope = ScopeType.INHERIT, paramLabel = "text|json",
      description = "text (for people, the default) or json (protobuf JSON of the response, for scripts).")
  Format format;

  @Option(names = "--timeout", scope = ScopeType.INHERIT, paramLabel = "DURATION",
      converter = Durations.Positive.class,
      description = "Deadline of each RPC: 500ms, 10s, 2m, 1h or ISO-8601 PT10S (default 10s; watch streams "
          + "have none).")
  Duration timeout;

  @Option(names = {"-h", "--help"}, usageHelp = true, scope = ScopeType.INHERIT,
      description = "Show this help and exit.")
  boolean help;

  private final Map<String, String> env;
  private final Function<String, ManagedChannel> channels;
  final PrintWriter out;
  final PrintWriter err;
  private ManagedChannel channel;

  ShardmapCtl(Map<String, String> env, Function<String, ManagedChannel> channels, PrintWriter out,
      PrintWriter err) {
    this.env = env;
    this.channels = channels;
    this.out = out;
    this.err = err;
  }

  /**
   * The SDK's loggers, held so their level sticks (JUL keeps loggers weakly): query and count run a client,
   * whose INFO lines (map loaded, pools opened) are noise on a command's stderr; warnings still show.
   */
  private static final java.util.logging.Logger SDK_LOG = java.util.logging.Logger.getLogger("io.shardmap.client");

  public static void main(String[] args) {
    SDK_LOG.setLevel(java.util.logging.Level.WARNING);
    // HikariCP logs through SLF4J, which has no provider in this jar and says so on stderr once; SLF4J
    // 2.0.10+ reads this property for its own messages (errors still show).
    System.setProperty("slf4j.internal.verbosity", "ERROR");
    PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), true);
    PrintWriter err = new PrintWriter(new OutputStreamWriter(System.err, StandardCharsets.UTF_8), true);
    int code = run(args, System.getenv(), ShardmapCtl::plaintextChannel, out, err);
    out.flush();
    err.flush();
    System.exit(code);
  }

  static ManagedChannel plaintextChannel(String target) {
    return Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
  }

  /**
   * Runs one command line and returns its exit code. Never throws for a failed command: every failure
   * has been printed to {@code err} by the time this returns, and the channel is shut down.
   */
  static int run(String[] args, Map<String, String> env, Function<String, ManagedChannel> channels,
      PrintWriter out, PrintWriter err) {
    ShardmapCtl root = new ShardmapCtl(env, channels, out, err);
    CommandLine cl = new CommandLine(root);
    cl.setOut(out);
    cl.setErr(err);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    List<String> footer = new ArrayList<>(List.of(cl.getCommandSpec().usageMessage().footer()));
    footer.addAll(List.of(ExitCode.footer(EXIT_CODES)));
    cl.getCommandSpec().usageMessage().footer(footer.toArray(String[]::new));
    cl.setParameterExceptionHandler((ex, a) -> Errors.usageError(err, ex));
    cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> root.failure(ex));
    try {
      return cl.execute(args);
    } finally {
      root.close();
    }
  }

  Format format() {
    return format == null ? Format.text : format;
  }

  boolean json() {
    return format() == Format.json;
  }

  String target() {
    if (server != null) {
      return server;
    }
    String fromEnv = env.get(SERVER_ENV);
    return fromEnv == null || fromEnv.isBlank() ? DEFAULT_SERVER : fromEnv.trim();
  }

  private ManagedChannel channel() {
    if (channel == null) {
      channel = channels.apply(target());
    }
    return channel;
  }

  private long deadlineMillis() {
    return rpcTimeout().toMillis();
  }

  /** The deadline of each RPC (--timeout, default 10 s). */
  Duration rpcTimeout() {
    return timeout == null ? DEFAULT_TIMEOUT : timeout;
  }

  /** A variable of the environment the command runs in (the tests' own map), or null. */
  String env(String name) {
    return env.get(name);
  }

  /** A read stub whose deadline starts now: call it right before the RPC. */
  ShardMapServiceGrpc.ShardMapServiceBlockingStub read() {
    return ShardMapServiceGrpc.newBlockingStub(channel()).withDeadlineAfter(deadlineMillis(),
        TimeUnit.MILLISECONDS);
  }

  /** An admin stub whose deadline starts now: call it right before the RPC. */
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin() {
    return ShardMapAdminServiceGrpc.newBlockingStub(channel()).withDeadlineAfter(deadlineMillis(),
        TimeUnit.MILLISECONDS);
  }

  /** An id-service stub (worker leases, dense sequences) whose deadline starts now. */
  io.shardmap.proto.v1.ShardMapIdServiceGrpc.ShardMapIdServiceBlockingStub ids() {
    return io.shardmap.proto.v1.ShardMapIdServiceGrpc.newBlockingStub(channel()).withDeadlineAfter(deadlineMillis(),
        TimeUnit.MILLISECONDS);
  }

  /** A fleet-service stub (status, heatmap, sizes) whose deadline starts now. */
  io.shardmap.proto.v1.FleetServiceGrpc.FleetServiceBlockingStub fleet() {
    return io.shardmap.proto.v1.FleetServiceGrpc.newBlockingStub(channel()).withDeadlineAfter(deadlineMillis(),
        TimeUnit.MILLISECONDS);
  }

  /** A read stub without deadline, for the watch stream (which lives until cancelled). */
  ShardMapServiceGrpc.ShardMapServiceBlockingStub streaming() {
    return ShardMapServiceGrpc.newBlockingStub(channel());
  }

  /**
   * The definition of a keyspace, from ListKeyspaces: commands that parse keys need its key type before
   * they can build the request.
   */
  KeyspaceSpec keyspace(String name) {
    for (KeyspaceSpec s : read().listKeyspaces(ListKeyspacesRequest.getDefaultInstance()).getKeyspacesList()) {
      if (s.getName().equals(name)) {
        return s;
      }
    }
    throw ShardmapException.notFound("keyspace '" + name + "' does not exist (see: shardmapctl keyspace list)");
  }

  private void close() {
    if (channel == null) {
      return;
    }
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private int failure(Exception ex) {
    String code;
    String message;
    if (ex instanceof StatusRuntimeException || ex instanceof StatusException) {
      Status s = Status.fromThrowable(ex);
      code = s.getCode().name();
      message = describe(s);
    } else if (ex instanceof ShardmapException se) {
      code = se.code().grpcCode();
      message = se.getMessage();
    } else if (ex instanceof WatchCommand.ResyncRequired r) {
      code = Status.Code.FAILED_PRECONDITION.name();
      message = r.getMessage();
    } else {
      code = Status.Code.UNKNOWN.name();
      message = ex.toString();
    }
    return Errors.failure(err, code, message, ExitCode.ofStatus(code));
  }

  private String describe(Status s) {
    StringBuilder b = new StringBuilder(s.getDescription() == null ? "(no message)" : s.getDescription());
    Throwable cause = s.getCause();
    while (cause != null && cause.getCause() != null) {
      cause = cause.getCause();
    }
    if (cause != null && cause.getMessage() != null && !b.toString().contains(cause.getMessage())) {
      b.append(" (").append(cause.getMessage()).append(')');
    }
    if (s.getCode() == Status.Code.UNAVAILABLE || s.getCode() == Status.Code.DEADLINE_EXCEEDED) {
      b.append(" [server ").append(target()).append(']');
    }
    return b.toString();
  }
}
