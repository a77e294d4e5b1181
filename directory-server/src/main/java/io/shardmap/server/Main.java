package io.shardmap.server;

import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.Errors;
import io.shardmap.support.cli.ExitCode;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code shardmap-server}: runs one directory-server replica. Every option can also come from a
 * properties file ({@code --config}, keys are the long option names without dashes, e.g.
 * {@code etcd-endpoints=...}) or an environment variable ({@code SHARDMAP_ETCD_ENDPOINTS}); a flag beats
 * the file, the file beats the environment.
 */
@Command(name = "shardmap-server", mixinStandardHelpOptions = true, version = "shardmap-server 0.1.0",
    sortOptions = false,
    description = "Serves shard maps stored in etcd over gRPC (shardmap.v1): lookups from an in-memory "
        + "watched copy, admin changes as guarded etcd transactions.",
    footer = {"", "Each option may also be set as SHARDMAP_<NAME> (e.g. SHARDMAP_ETCD_ENDPOINTS) or in the "
        + "--config file as name=value."})
public final class Main implements Callable<Integer> {

  @Option(names = "--config", paramLabel = "FILE", description = "Properties file with option values.")
  Path config;

  @Option(names = "--listen", paramLabel = "HOST:PORT", description = "gRPC address (default: ${DEFAULT-VALUE}).")
  String listen = "127.0.0.1:7700";

  @Option(names = "--metrics-listen", paramLabel = "HOST:PORT",
      description = "HTTP address of /metrics and /healthz, or 'off' (default: ${DEFAULT-VALUE}).")
  String metricsListen = "127.0.0.1:7701";

  @Option(names = "--etcd-endpoints", paramLabel = "URL", split = ",", hideParamSyntax = false,
      description = "etcd client URLs (default: ${DEFAULT-VALUE}).")
  List<String> etcdEndpoints = List.of("http://127.0.0.1:2379");

  @Option(names = "--etcd-prefix", paramLabel = "PREFIX",
      description = "Key prefix of all Shardmap data in etcd (default: ${DEFAULT-VALUE}).")
  String etcdPrefix = "/shardmap";

  @Option(names = "--etcd-timeout", paramLabel = "DURATION", defaultValue = "3s", converter = Durations.Positive.class,
      description = "Deadline of each etcd request, e.g. 3s, 500ms (default: ${DEFAULT-VALUE}).")
  Duration etcdTimeout;

  @Option(names = "--probe-interval", paramLabel = "DURATION", defaultValue = "1s", converter = Durations.Positive.class,
      description = "How often a quorum read proves the snapshot fresh (default: ${DEFAULT-VALUE}).")
  Duration probeInterval;

  @Option(names = "--watch-heartbeat", paramLabel = "DURATION", defaultValue = "2s", converter = Durations.Positive.class,
      description = "Progress messages to idle client watches (default: ${DEFAULT-VALUE}).")
  Duration watchHeartbeat;

  @Option(names = "--watch-history", paramLabel = "N",
      description = "Recent change batches kept so client watches resume without a re-read (default: ${DEFAULT-VALUE}).")
  int watchHistory = 10_000;

  @Option(names = "--watch-queue-limit", paramLabel = "N",
      description = "Messages a slow watch client may fall behind before it must re-read (default: ${DEFAULT-VALUE}).")
  int watchQueueLimit = 10_000;

  @Option(names = "--max-txn-ops", paramLabel = "N",
      description = "The etcd cluster's --max-txn-ops (default: ${DEFAULT-VALUE}, etcd's own default).")
  int maxTxnOps = 128;

  @Option(names = "--server-id", paramLabel = "ID",
      description = "This server's id in client presence records ({prefix}/clients/{id}); 1-128 characters of "
          + "[A-Za-z0-9._:-], unique per etcd prefix (default: hostname:port-random).")
  String serverId;

  @Option(names = "--client-report-timeout", paramLabel = "DURATION", defaultValue = "10s",
      converter = Durations.Positive.class,
      description = "Forget an SDK client that has not reported its applied revision for this long "
          + "(default: ${DEFAULT-VALUE}).")
  Duration clientReportTimeout;

  @Option(names = "--load-max-bands", paramLabel = "N", defaultValue = "4096",
      description = "At most this many bands per column of the load history (16-65536; its memory bound, "
          + "docs/load.md; default: ${DEFAULT-VALUE}).")
  int loadMaxBands;

  @Option(names = "--resolver-db-user", paramLabel = "ROLE",
      description = "PostgreSQL role the resolver of in-doubt cross-shard transactions connects to the shards as: "
          + "the applications' role or a superuser (only they may finish a prepared transaction). Without it "
          + "this server runs no resolver.")
  String resolverDbUser;

  @Option(names = "--resolver-db-password-file", paramLabel = "FILE",
      description = "File holding that role's password (one line; the trailing newline is dropped).")
  Path resolverDbPasswordFile;

  @Option(names = "--txn-resolve-interval", paramLabel = "DURATION", defaultValue = "1s",
      converter = Durations.Positive.class,
      description = "How often the resolver scans every shard for prepared transactions (default: ${DEFAULT-VALUE}).")
  Duration txnResolveInterval;

  @Option(names = "--txn-abort-after", paramLabel = "DURATION", defaultValue = "2s",
      converter = Durations.Positive.class,
      description = "The resolver aborts a prepared transaction that has no decision this long after its "
          + "prepare (default: ${DEFAULT-VALUE}).")
  Duration txnAbortAfter;

  @Option(names = "--txn-resolver-lease-ttl", paramLabel = "DURATION", defaultValue = "5s",
      converter = Durations.Positive.class,
      description = "TTL of the lease under which one directory server holds the resolver role "
          + "({prefix}/txn-resolver); another takes over this long after its holder died (default: "
          + "${DEFAULT-VALUE}, whole seconds).")
  Duration txnResolverLeaseTtl;

  @Option(names = "--size-interval", paramLabel = "DURATION", defaultValue = "5m",
      converter = Durations.Positive.class,
      description = "How often the server holding the size-sampler role ({prefix}/size-sampler) estimates every "
          + "keyspace's rows and bytes per unit and shard from the shards' PostgreSQL, as --resolver-db-user "
          + "(docs/sizes.md; default: ${DEFAULT-VALUE}, 1s to 168h).")
  Duration sizeInterval;

  public static void main(String[] args) {
    // One line per record (the JDK's default spreads each over two): an operator greps the log, and a
    // refused malformed request is one line (MalformedRequests). Before any logger is used; -D overrides.
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT.%1$tL %4$s %3$s: %5$s%6$s%n");
    }
    PrintWriter err = new PrintWriter(new OutputStreamWriter(System.err, StandardCharsets.UTF_8), true);
    CommandLine cl = commandLine(args);
    cl.setParameterExceptionHandler((ex, a) -> Errors.usageError(err, ex));
    System.exit(cl.execute(args));
  }

  /** A command line whose defaults come from the --config file named in {@code args}, then the env. */
  static CommandLine commandLine(String... args) {
    CommandLine cl = new CommandLine(new Main());
    Path file = null;
    for (int i = 0; i < args.length - 1; i++) {
      if (args[i].equals("--config")) {
        file = Path.of(args[i + 1]);
      }
    }
    cl.setDefaultValueProvider(new FileAndEnvDefaults(file));
    return cl;
  }

  /**
   * Options resolved against flags, file and environment (for tests).
   *
   * @throws IllegalArgumentException naming the option, for a value its converter or {@link ServerOptions}
   *     refuses
   */
  static ServerOptions parse(String... args) {
    CommandLine cl = commandLine(args);
    try {
      cl.parseArgs(args);
    } catch (CommandLine.ParameterException e) {
      throw new IllegalArgumentException(e.getMessage(), e);
    }
    return ((Main) cl.getCommand()).options();
  }

  ServerOptions options() {
    ServerOptions.Builder b = ServerOptions.builder();
    String[] l = hostPort("--listen", listen);
    b.listen(l[0], Integer.parseInt(l[1]));
    if (metricsListen.equalsIgnoreCase("off")) {
      b.metrics(null, 0);
    } else {
      String[] m = hostPort("--metrics-listen", metricsListen);
      b.metrics(m[0], Integer.parseInt(m[1]));
    }
    if (serverId != null && !serverId.isEmpty()) {
      b.serverId(serverId);
    }
    boolean resolver = resolverDbUser != null && !resolverDbUser.isEmpty();
    if (resolverDbPasswordFile != null && !resolverDbPasswordFile.toString().isEmpty()) {
      if (!resolver) {
        throw new IllegalArgumentException("resolver-db-password-file: given without --resolver-db-user (the role "
            + "whose password it holds)");
      }
      b.resolver(resolverDbUser, readPassword(resolverDbPasswordFile));
    } else if (resolver) {
      b.resolver(resolverDbUser, null);
    }
    b.txnResolveInterval(txnResolveInterval).txnAbortAfter(txnAbortAfter).txnResolverLeaseTtl(txnResolverLeaseTtl);
    b.sizeInterval(sizeInterval);
    return b.etcdEndpoints(etcdEndpoints).etcdPrefix(etcdPrefix)
        .etcdTimeout(etcdTimeout).probeInterval(probeInterval).watchHeartbeat(watchHeartbeat)
        .clientReportTimeout(clientReportTimeout).loadMaxBands(loadMaxBands)
        .watchHistory(watchHistory).watchQueueLimit(watchQueueLimit).maxTxnOps(maxTxnOps).build();
  }

  @Override
  public Integer call() throws Exception {
    ServerOptions o;
    try {
      o = options();
    } catch (IllegalArgumentException e) {
      return Errors.failure(new PrintWriter(new OutputStreamWriter(System.err, StandardCharsets.UTF_8), true),
          "usage", e.getMessage(), ExitCode.USAGE);
    }
    DirectoryServer server;
    try {
      server = DirectoryServer.start(o);
    } catch (IOException e) {
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      System.err.println("shardmap-server: cannot listen on " + o.host() + ":" + o.port()
          + (o.metricsHost() == null ? "" : " / " + o.metricsHost() + ":" + o.metricsPort()) + ": "
          + root.getMessage());
      return 1;
    }
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.close();
      stopped.countDown();
    }, "shardmap-shutdown"));
    stopped.await();
    return 0;
  }

  /** The password in {@code file}: its first line, without the line end. */
  static String readPassword(Path file) {
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException("resolver-db-password-file: cannot read '" + file + "' ("
          + e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage()) + ")", e);
    }
    int end = text.indexOf('\n');
    String line = end < 0 ? text : text.substring(0, end);
    if (line.endsWith("\r")) {
      line = line.substring(0, line.length() - 1);
    }
    if (line.isEmpty()) {
      throw new IllegalArgumentException("resolver-db-password-file: '" + file + "' holds no password (its first "
          + "line is empty)");
    }
    return line;
  }

  static String[] hostPort(String option, String value) {
    int c = value.lastIndexOf(':');
    if (c <= 0 || c == value.length() - 1) {
      throw new IllegalArgumentException(option + ": expected HOST:PORT, got '" + value + "'");
    }
    String port = value.substring(c + 1);
    if (!port.chars().allMatch(Character::isDigit)) {
      throw new IllegalArgumentException(option + ": port '" + port + "' is not a number");
    }
    return new String[] {value.substring(0, c), port};
  }

  /** Defaults from the --config file, then SHARDMAP_* environment variables, then the field values. */
  static final class FileAndEnvDefaults implements CommandLine.IDefaultValueProvider {
    private final Properties props = new Properties();
    private boolean loaded;
    private Path file;

    FileAndEnvDefaults(Path file) {
      this.file = file;
    }

    @Override
    public String defaultValue(CommandLine.Model.ArgSpec arg) throws IOException {
      if (!(arg instanceof CommandLine.Model.OptionSpec opt)) {
        return null;
      }
      String name = opt.longestName().replaceFirst("^--", "");
      if (name.equals("config") || name.equals("help") || name.equals("version")) {
        return null;
      }
      if (!loaded) {
        loaded = true;
        if (file == null) {
          String env = System.getenv("SHARDMAP_CONFIG");
          file = env == null || env.isEmpty() ? null : Path.of(env);
        }
        if (file != null) {
          try (Reader r = Files.newBufferedReader(file)) {
            props.load(r);
          }
          for (String key : props.stringPropertyNames()) {
            boolean known = Arrays.stream(opt.command().options().toArray(new CommandLine.Model.OptionSpec[0]))
                .anyMatch(o -> o.longestName().equals("--" + key));
            if (!known) {
              throw new IllegalArgumentException("--config " + file + ": unknown option '" + key + "'");
            }
          }
        }
      }
      String v = props.getProperty(name);
      if (v != null) {
        return v;
      }
      String env = System.getenv("SHARDMAP_" + name.toUpperCase(Locale.ROOT).replace('-', '_'));
      return env == null || env.isEmpty() ? null : env;
    }
  }
}
