package io.shardmap.migrator.cli;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.Errors;
import io.shardmap.support.cli.ExitCode;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ScopeType;

/**
 * The root command of {@code migrator}. It owns the global options, the one {@link Migrator} of the
 * process (opened on first use, closed when the command ends) and the mapping of failures to messages and
 * exit codes.
 */
@Command(
    name = "migrator",
    description = "Move key ranges, hash buckets, ring arcs, directory entries and regions between PostgreSQL shards "
        + "while applications keep writing.",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      MoveCommand.class,
      ReshardCommand.class,
      ResumeCommand.class,
      CancelCommand.class,
      StatusCommand.class,
      ListCommand.class,
      WorkerCommand.class,
      ReferenceCommand.class,
      BalancerCommand.class
    },
    footer = {
      "",
      "The PostgreSQL password comes from $PGPASSWORD or --pg-password-file, never from a flag value.",
      "",
      "Run 'migrator COMMAND --help' for the options of a command; docs/migrator.md for the guide.",
      ""
      // The exit codes follow, generated from ExitCode (see execute).
    })
public final class MigratorCli {
  /** The exit codes the migrator can end with, as its --help lists them. */
  static final ExitCode[] EXIT_CODES = {ExitCode.OK, ExitCode.USAGE, ExitCode.NOT_FOUND, ExitCode.REFUSED,
      ExitCode.UNAVAILABLE, ExitCode.CANCELLED, ExitCode.ABORTED, ExitCode.DIFFERENT, ExitCode.INTERRUPTED, ExitCode.TERMINATED,
      ExitCode.OTHER};

  static final String DEFAULT_ETCD = "http://127.0.0.1:2379";
  static final String ETCD_ENV = "SHARDMAP_ETCD";
  static final String ETCD_PREFIX_ENV = "SHARDMAP_ETCD_PREFIX";
  static final String DEFAULT_PG_USER = "postgres";

  /** The parent logger of Shardmap's java.util.logging records. */
  static final Logger SHARDMAP_LOGGER = Logger.getLogger("io.shardmap");

  /** How progress is shown to people (JSON mode always writes JSON lines). */
  enum ProgressMode { auto, live, lines, none }

  // Options are inherited so they may stand before or after the command. They have no picocli defaults:
  // a subcommand's copy would otherwise re-apply the default over a value given earlier.
  @Option(names = "--etcd", scope = ScopeType.INHERIT, paramLabel = "URL[,URL...]",
      description = "etcd client URLs, comma-separated (default: $" + ETCD_ENV + ", else " + DEFAULT_ETCD + ").")
  String etcd;

  @Option(names = "--etcd-prefix", scope = ScopeType.INHERIT, paramLabel = "PREFIX",
      description = "Key prefix of the directory in etcd, as the directory servers' --etcd-prefix (default: $"
          + ETCD_PREFIX_ENV + ", else /shardmap).")
  String etcdPrefix;

  @Option(names = "--etcd-timeout", scope = ScopeType.INHERIT, paramLabel = "DURATION",
      converter = Durations.Positive.class, description = "Deadline of each etcd request (default 5s).")
  Duration etcdTimeout;

  @Option(names = "--etcd-retry-for", scope = ScopeType.INHERIT, paramLabel = "DURATION",
      converter = Durations.ZeroAllowed.class, description = "How long an etcd read that failed transiently "
          + "(unavailable, or unanswered within --etcd-timeout) is retried before the command gives up "
          + "(default 30s; 0 never retries).")
  Duration etcdRetryFor;

  @Option(names = "--pg-user", scope = ScopeType.INHERIT, paramLabel = "ROLE",
      description = "PostgreSQL role used on every shard (default: $PGUSER, else " + DEFAULT_PG_USER + ").")
  String pgUser;

  @Option(names = "--pg-password-file", scope = ScopeType.INHERIT, paramLabel = "FILE",
      description = "Read the PostgreSQL password from the first line of FILE (default: $PGPASSWORD, else none).")
  Path pgPasswordFile;

  @Option(names = "--pg-connect-timeout", scope = ScopeType.INHERIT, paramLabel = "DURATION",
      converter = Durations.Positive.class, description = "Connect timeout to a shard (default 5s).")
  Duration pgConnectTimeout;

  @Option(names = "--worker-name", scope = ScopeType.INHERIT, paramLabel = "NAME",
      description = "How this process names itself as the owner of the migrations it drives (default host-pid).")
  String workerName;

  @Option(names = "--lease-ttl", scope = ScopeType.INHERIT, paramLabel = "DURATION",
      converter = Durations.Positive.class,
      description = "TTL of the etcd lease under which migrations are held; after a crash another worker takes "
          + "over at most this long later (default 10s, at least 2s).")
  Duration leaseTtl;

  @Option(names = "--json", scope = ScopeType.INHERIT,
      description = "Print protobuf JSON: the answer on stdout, progress as JSON lines on stderr.")
  boolean json;

  @Option(names = "--progress", scope = ScopeType.INHERIT, paramLabel = "auto|live|lines|none",
      description = "Progress on stderr: live (one updating line), lines (a line per state, then at most every "
          + "5s), none; auto (default) is live when the console is a terminal, else lines.")
  ProgressMode progress;

  @Option(names = {"-h", "--help"}, usageHelp = true, scope = ScopeType.INHERIT,
      description = "Show this help and exit.")
  boolean help;

  final Map<String, String> env;
  final PrintWriter out;
  final PrintWriter err;
  private final boolean interactive;
  final Signals signals;
  private final Function<MigratorOptions, Migrator> opener;
  private Migrator migrator;
  private MigratorOptions options;

  /**
   * @param interactive whether a person watches (stdin and stdout are a terminal): progress then updates
   *     one line in place
   * @param signals how SIGINT and SIGTERM reach the commands that stop gracefully
   * @param opener opens the Migrator ({@link Migrator#open} outside tests)
   */
  MigratorCli(Map<String, String> env, PrintWriter out, PrintWriter err, boolean interactive, Signals signals,
      Function<MigratorOptions, Migrator> opener) {
    this.env = env;
    this.out = out;
    this.err = err;
    this.interactive = interactive;
    this.signals = signals;
    this.opener = opener;
  }

  public static void main(String[] args) {
    librarySettings();
    PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), true);
    PrintWriter err = new PrintWriter(new OutputStreamWriter(System.err, StandardCharsets.UTF_8), true);
    int code = new MigratorCli(System.getenv(), out, err, System.console() != null, Signals.system(),
        Migrator::open).execute(args);
    out.flush();
    err.flush();
    System.exit(code);
  }

  /**
   * jetcd, gRPC and vert.x log through slf4j-simple at INFO to stderr, which would bury the progress line;
   * only their warnings are wanted. Shardmap's own java.util.logging records get one line each. Netty's
   * JFR events are off (start-up time, below).
   */
  private static void librarySettings() {
    // A foreground command shows progress itself; the migrator's INFO records would repeat it. The
    // worker turns them back on (see WorkerCommand). Held here: java.util.logging keeps loggers weakly.
    if (SHARDMAP_LOGGER.getLevel() == null) {
      SHARDMAP_LOGGER.setLevel(Level.WARNING);
    }
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    // Netty 4.2 registers JFR events for its buffer allocator when its first buffer is allocated: ~400 ms
    // of class loading and bytecode generation on the way to the first etcd answer, for events nobody
    // records here (docs/benchmarks.md, "Migrator command latency").
    if (System.getProperty("io.netty.jfr.enabled") == null) {
      System.setProperty("io.netty.jfr.enabled", "false");
    }
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %3$s: %5$s%6$s%n");
    }
  }

  /**
   * Runs one command line and returns its exit code. Never throws for a failed command: every failure has
   * been printed to {@code err} by the time this returns, and the Migrator is closed.
   */
  int execute(String... args) {
    CommandLine cl = new CommandLine(this);
    cl.setOut(out);
    cl.setErr(err);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    List<String> footer = new ArrayList<>(List.of(cl.getCommandSpec().usageMessage().footer()));
    footer.addAll(List.of(ExitCode.footer(EXIT_CODES)));
    cl.getCommandSpec().usageMessage().footer(footer.toArray(String[]::new));
    cl.setParameterExceptionHandler((ex, a) -> Errors.usageError(err, ex));
    cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> failure(ex));
    // A range like -100..-50 starts with '-': picocli would take it for an unknown option. An unknown
    // option given to move still fails, as an unmatched argument.
    cl.getSubcommands().get("move").setUnmatchedOptionsArePositionalParams(true);
    try {
      return cl.execute(args);
    } finally {
      close();
    }
  }

  /** The Migrator, opened with the global options on first use. */
  Migrator migrator(CommandLine command) {
    if (migrator == null) {
      MigratorOptions o = options(command);
      // The etcd client checks the endpoints' syntax (http://host:port) when it is built.
      set(command, "--etcd", () -> migrator = opener.apply(o));
    }
    return migrator;
  }

  /** The Migrator's options from flags, then the environment, then the defaults. */
  MigratorOptions options(CommandLine command) {
    if (options != null) {
      return options;
    }
    MigratorOptions.Builder b = MigratorOptions.builder();
    String endpoints = etcd != null ? etcd : env.getOrDefault(ETCD_ENV, "");
    if (endpoints.isBlank()) {
      endpoints = DEFAULT_ETCD;
    }
    List<String> list = Arrays.stream(endpoints.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
    set(command, "--etcd", () -> b.etcdEndpoints(list));
    String prefix = etcdPrefix != null ? etcdPrefix : env.getOrDefault(ETCD_PREFIX_ENV, "");
    if (!prefix.isBlank()) {
      set(command, "--etcd-prefix", () -> b.etcdPrefix(prefix.trim()));
    }
    if (etcdTimeout != null) {
      set(command, "--etcd-timeout", () -> b.etcdTimeout(etcdTimeout));
    }
    if (etcdRetryFor != null) {
      set(command, "--etcd-retry-for", () -> b.etcdRetryFor(etcdRetryFor));
    }
    String user = pgUser != null ? pgUser : env.getOrDefault("PGUSER", "");
    String role = user.isBlank() ? DEFAULT_PG_USER : user;
    set(command, "--pg-user", () -> b.pgUser(role));
    b.pgPassword(password(command));
    if (pgConnectTimeout != null) {
      set(command, "--pg-connect-timeout", () -> b.pgConnectTimeout(pgConnectTimeout));
    }
    if (workerName != null) {
      set(command, "--worker-name", () -> b.workerName(workerName));
    }
    if (leaseTtl != null) {
      set(command, "--lease-ttl", () -> b.leaseTtl(leaseTtl));
    }
    options = b.build();
    return options;
  }

  private String password(CommandLine command) {
    if (pgPasswordFile == null) {
      String p = env.get("PGPASSWORD");
      return p == null || p.isEmpty() ? null : p;
    }
    try {
      List<String> lines = Files.readAllLines(pgPasswordFile, StandardCharsets.UTF_8);
      return lines.isEmpty() ? "" : lines.get(0);
    } catch (IOException | RuntimeException e) {
      throw new ParameterException(command, "invalid value for option '--pg-password-file': cannot read "
          + pgPasswordFile + ": " + e);
    }
  }

  /** Applies one builder setter; its IllegalArgumentException becomes a usage error naming the option. */
  static void set(CommandLine command, String option, Runnable setter) {
    try {
      setter.run();
    } catch (IllegalArgumentException e) {
      throw new ParameterException(command, "invalid value for " + (option.startsWith("-") ? "option '" + option
          + "'" : option) + ": " + e.getMessage());
    }
  }

  boolean json() {
    return json;
  }

  /** The progress mode in effect: auto resolved by whether a person watches. */
  ProgressMode progressMode() {
    ProgressMode m = progress == null ? ProgressMode.auto : progress;
    if (m == ProgressMode.auto) {
      return interactive ? ProgressMode.live : ProgressMode.lines;
    }
    return m;
  }

  private void close() {
    if (migrator != null) {
      try {
        migrator.close();
      } catch (RuntimeException e) {
        err.println("warning: closing the etcd client failed: " + e.getMessage());
      }
      migrator = null;
    }
    out.flush();
    err.flush();
  }

  private int failure(Exception ex) {
    String label;
    String message;
    ExitCode code;
    if (ex instanceof ParameterException pe) {
      out.flush();
      return Errors.usageError(err, pe);
    } else if (ex instanceof Ended e) {
      label = e.label();
      message = e.getMessage();
      code = e.exitCode();
    } else if (ex instanceof ShardmapException se) {
      label = se.code() == ErrorCode.STALE_EPOCH ? "FAILED_PRECONDITION" : se.code().name();
      message = se.getMessage();
      code = ExitCode.ofStatus(se.code().grpcCode());
    } else if (ex instanceof IllegalArgumentException) {
      label = "usage";
      message = ex.getMessage();
      code = ExitCode.USAGE;
    } else {
      label = "INTERNAL";
      message = ex.toString();
      code = ExitCode.OTHER;
    }
    out.flush();
    return Errors.failure(err, label, message, code);
  }

  /**
   * How a command ended when that is not a {@link ShardmapException}: a migration that ended cancelled
   * (exit 6), a cancel the cutover beat (exit 4), a drive stopped by a signal (130 or 143).
   */
  static final class Ended extends RuntimeException {
    private final String label;
    private final ExitCode exitCode;

    Ended(String label, ExitCode exitCode, String message) {
      super(message, null, false, false);
      this.label = label;
      this.exitCode = exitCode;
    }

    String label() {
      return label;
    }

    ExitCode exitCode() {
      return exitCode;
    }
  }
}
