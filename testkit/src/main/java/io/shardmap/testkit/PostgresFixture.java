package io.shardmap.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.UserPrincipal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/**
 * PostgreSQL servers for tests, one server (and one database) per shard.
 *
 * <p>Where the servers come from, first match wins:
 *
 * <ol>
 *   <li>{@value #URLS_ENV}: comma-separated JDBC URLs of existing databases, one per shard,
 *       credentials from {@value #USER_ENV} / {@value #PASSWORD_ENV}. They cannot be stopped or
 *       started ({@link #canControlInstances()} is false); fault tests must skip.
 *   <li>Local binaries ({@value #BIN_ENV}, else the highest {@code /usr/lib/postgresql/N/bin},
 *       else {@code initdb} on the PATH): one {@code initdb}-created cluster per shard in a
 *       temporary directory, listening on 127.0.0.1 only on a fresh port, trust authentication,
 *       and a database {@code shard_N}. As root the servers run as the {@code postgres} OS user
 *       (PostgreSQL refuses root).
 *   <li>Testcontainers {@value #DEFAULT_IMAGE} (or {@value #IMAGE_ENV}), one container per shard.
 * </ol>
 *
 * <p>Servers this class starts run with {@code wal_level=logical}, {@code
 * max_prepared_transactions=64}, {@code max_replication_slots=16}, {@code max_wal_senders=16}
 * and {@code fsync=off} ({@link #startNew(int, List)} adds or overrides settings). Durability
 * across {@link #stop}/{@link #start} still holds, because the stop kills PostgreSQL but not the
 * operating system, so written pages stay in the OS cache.
 *
 * <p>Every wait is bounded; failures name the server log files, which are kept after
 * {@link #close()} if anything failed.
 */
public final class PostgresFixture implements AutoCloseable {

  public static final String URLS_ENV = "SHARDMAP_TEST_PG_URLS";
  public static final String USER_ENV = "SHARDMAP_TEST_PG_USER";
  public static final String PASSWORD_ENV = "SHARDMAP_TEST_PG_PASSWORD";
  public static final String BIN_ENV = "SHARDMAP_PG_BIN";
  public static final String IMAGE_ENV = "SHARDMAP_PG_IMAGE";
  public static final String DEFAULT_IMAGE = "postgres:15";

  /** One shard: a server and the database on it that belongs to the shard. */
  public record PgInstance(String host, int port, String database, String user, String password) {

    public String jdbcUrl() {
      return "jdbc:postgresql://" + host + ":" + port + "/" + database;
    }

    /**
     * A new connection to this shard's database with bounded connect and login time, so a
     * stopped server makes this fail within seconds instead of hanging.
     */
    public Connection connect() throws SQLException {
      return DriverManager.getConnection(jdbcUrl(), connectionProperties(user, password));
    }

    /** Runs one statement (DDL, or DML whose count nobody needs) on a new connection to this shard. */
    public void exec(String sql) throws SQLException {
      try (Connection c = connect(); java.sql.Statement s = c.createStatement()) {
        s.execute(sql);
      }
    }
  }

  private static final String[] SERVER_SETTINGS = {
    "wal_level = logical",
    "max_prepared_transactions = 64",
    "max_replication_slots = 16",
    "max_wal_senders = 16",
    // Without fsync a commit still writes its WAL to the OS before returning, so data survives
    // a killed server (stop/start below); only an OS crash could lose it. synchronous_commit
    // stays on for exactly that reason: with it off, a killed server loses recent commits.
    "fsync = off",
    "full_page_writes = off",
  };

  private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(120);
  private static final int PG_CTL_WAIT_SECONDS = 60;
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration CONTAINER_START_TIMEOUT = Duration.ofMinutes(3);
  private static final Duration POLL_INTERVAL = Duration.ofMillis(50);
  private static final int START_ATTEMPTS = 3;

  /** The shared fixture, and the shutdown hook that closes every fixture still open at exit. */
  private static final FixtureRegistry<PostgresFixture> REGISTRY = new FixtureRegistry<>("postgres-fixture-shutdown",
      "PostgresFixture", "the shared PostgreSQL fixture", "fixture", "shard", "databases from " + URLS_ENV
          + " cannot be stopped or started; check canControlInstances() and skip");

  private final Backend backend;
  private final FixtureLifecycle lifecycle;

  private PostgresFixture(Backend backend, boolean isShared) {
    this.backend = backend;
    this.lifecycle = new FixtureLifecycle(REGISTRY, this, backend, isShared); // registers; keep last
  }

  /**
   * The JVM-wide fixture with at least {@code shards} shards. The first call starts it; a later
   * call asking for more shards adds them; all callers share the same servers, so tests must use
   * their own table names. Closed by a shutdown hook.
   */
  public static PostgresFixture shared(int shards) {
    checkShardCount(shards);
    // Sticky failure if there is nothing to use, or a half-grown fixture that cannot be grown
    // again reliably: every later caller then fails fast with the original cause instead of
    // piling up servers. Too few URLS_ENV databases is no failure of the fixture (see ensureShards).
    return REGISTRY.shared(() -> new PostgresFixture(chooseBackend(), true),
        fixture -> fixture.ensureShards(shards), fixture -> fixture.lifecycle.failed());
  }

  /**
   * A fixture with {@code shards} shards owned by the caller, for tests that stop servers. The
   * caller must {@link #close()} it (a shutdown hook closes forgotten ones). (Not named {@code
   * start}, which restarts one shard's server.)
   */
  public static PostgresFixture startNew(int shards) {
    return startNew(shards, List.of());
  }

  /**
   * As {@link #startNew(int)}, with {@code settings} ({@code "name = value"}, e.g. {@code
   * "max_prepared_transactions = 0"}) applied to every server after the usual ones, so they can also
   * override them. For tests of a server configured differently.
   *
   * @throws IllegalArgumentException if a setting is not {@code name = value} with a lower-case name
   * @throws IllegalStateException with {@value #URLS_ENV} databases, whose settings this cannot change
   *     (tests that need other settings must skip then: {@link #canStartServers()})
   */
  public static PostgresFixture startNew(int shards, List<String> settings) {
    checkShardCount(shards);
    List<String> extra = checkSettings(settings);
    Backend backend = chooseBackend(extra);
    PostgresFixture fixture = new PostgresFixture(backend, false);
    try {
      fixture.ensureShards(shards);
      return fixture;
    } catch (RuntimeException e) {
      fixture.lifecycle.shutDown();
      throw e;
    }
  }

  /** Whether this JVM starts its own servers (no {@value #URLS_ENV}), so {@link #startNew(int, List)} works. */
  public static boolean canStartServers() {
    String urls = System.getenv(URLS_ENV);
    return urls == null || urls.isBlank();
  }

  private static final Pattern SETTING = Pattern.compile("([a-z_][a-z0-9_.]*) = ([A-Za-z0-9_.:/-]+|'[^'\\n]*')");

  private static List<String> checkSettings(List<String> settings) {
    for (String setting : settings) {
      if (setting == null || !SETTING.matcher(setting).matches()) {
        throw new IllegalArgumentException("setting must be \"name = value\" (lower-case name; a value with "
            + "other characters than [A-Za-z0-9_.:/-] in single quotes), got: " + setting);
      }
    }
    return List.copyOf(settings);
  }

  private static void checkShardCount(int shards) {
    if (shards < 1) {
      throw new IllegalArgumentException("shards must be at least 1: " + shards);
    }
  }

  private static Backend chooseBackend() {
    return chooseBackend(List.of());
  }

  /** The backend for this JVM; {@code extraSettings} go after {@link #SERVER_SETTINGS} on every server. */
  private static Backend chooseBackend(List<String> extraSettings) {
    String urls = System.getenv(URLS_ENV);
    if (urls != null && !urls.isBlank()) {
      if (!extraSettings.isEmpty()) {
        throw new IllegalStateException("cannot apply " + extraSettings + " to the databases of " + URLS_ENV
            + ": this fixture does not start them");
      }
      return new ExternalBackend(urls);
    }
    Path bin = findLocalBinaries();
    if (bin != null) {
      return new LocalBackend(bin, extraSettings);
    }
    if (!Docker.available()) {
      throw new IllegalStateException("no PostgreSQL available for tests: set " + URLS_ENV
          + ", install PostgreSQL server binaries (/usr/lib/postgresql/N/bin, initdb on the PATH, or "
          + BIN_ENV + "), or run a Docker engine for Testcontainers");
    }
    return new ContainerBackend(extraSettings);
  }

  private synchronized void ensureShards(int shards) {
    lifecycle.requireOpen();
    if (backend.instances().size() >= shards) {
      return;
    }
    if (!backend.canControl()) {
      // A configuration mismatch, not a broken fixture: callers needing fewer shards can go on.
      throw new IllegalStateException(URLS_ENV + " lists " + backend.instances().size() + " databases but "
          + shards + " shards are needed");
    }
    try {
      backend.grow(shards);
      for (int i = 0; i < shards; i++) {
        awaitReady(i, READY_TIMEOUT);
      }
    } catch (RuntimeException e) {
      lifecycle.markFailed();
      throw e;
    }
  }

  /** All shards, in order; at least as many as requested, possibly more for {@link #shared}. */
  public List<PgInstance> shards() {
    return backend.instances();
  }

  public PgInstance shard(int i) {
    lifecycle.checkIndex(i);
    return backend.instances().get(i);
  }

  /** Whether {@link #stop}/{@link #start} work; false for {@value #URLS_ENV} databases. */
  public boolean canControlInstances() {
    return backend.canControl();
  }

  /**
   * Stops shard {@code i}'s server the way a crash would (immediate shutdown, or {@code docker
   * kill}) and returns once it no longer accepts connections. No-op if already stopped.
   *
   * @throws UnsupportedOperationException if {@link #canControlInstances()} is false
   */
  public synchronized void stop(int i) {
    lifecycle.requireControl(i);
    try {
      backend.stop(i);
    } catch (RuntimeException e) {
      lifecycle.markFailed();
      throw e;
    }
  }

  /**
   * Starts shard {@code i}'s server again on the same port with the same data, and returns once
   * its database answers {@code select 1}. No-op if running.
   *
   * @throws UnsupportedOperationException if {@link #canControlInstances()} is false
   */
  public synchronized void start(int i) {
    lifecycle.requireControl(i);
    try {
      if (!backend.isRunning(i)) {
        backend.start(i);
      }
      awaitReady(i, READY_TIMEOUT);
    } catch (RuntimeException e) {
      lifecycle.markFailed();
      throw e;
    }
  }

  /**
   * Hangs shard {@code i}'s server: every one of its processes (the postmaster and all its children:
   * backends, checkpointer, WAL writer, ...) is stopped with SIGSTOP. Its sockets stay open and new
   * connections are accepted by the kernel, but nothing answers: the way a shard that hangs (a stalled disk,
   * a frozen VM) looks to its clients. Undone by {@link #resume}; {@link #stop} and closing the fixture resume
   * it first. No-op if already paused. Servers from local binaries only.
   *
   * @throws UnsupportedOperationException if {@link #canControlInstances()} is false, or the servers are
   *     containers
   */
  public synchronized void pause(int i) {
    lifecycle.requireControl(i);
    try {
      backend.pause(i);
    } catch (RuntimeException e) {
      lifecycle.markFailed();
      throw e;
    }
  }

  /**
   * Lets a {@link #pause paused} shard {@code i} run on (SIGCONT to the postmaster and its children). No-op
   * if not paused.
   *
   * @throws UnsupportedOperationException if {@link #canControlInstances()} is false
   */
  public synchronized void resume(int i) {
    lifecycle.requireControl(i);
    try {
      backend.resume(i);
    } catch (RuntimeException e) {
      lifecycle.markFailed();
      throw e;
    }
  }

  /** Whether shard {@code i}'s server is up; always true for external databases. */
  public boolean isRunning(int i) {
    lifecycle.checkIndex(i);
    return backend.isRunning(i);
  }

  /** Server log locations, for humans reading a failure. */
  public String describeLogs() {
    return lifecycle.describeLogs();
  }

  /**
   * Stops every server this fixture started and deletes its data. Idempotent.
   *
   * @throws IllegalStateException on the {@link #shared} instance, which belongs to the JVM
   */
  @Override
  public void close() {
    lifecycle.close();
  }

  /** Polls {@code select 1} on shard i's database until it answers. */
  private void awaitReady(int i, Duration timeout) {
    PgInstance instance = backend.instances().get(i);
    Instant deadline = Instant.now().plus(timeout);
    SQLException last = null;
    while (true) {
      try (Connection connection = instance.connect();
          Statement statement = connection.createStatement();
          ResultSet rows = statement.executeQuery("select 1")) {
        if (rows.next() && rows.getInt(1) == 1) {
          return;
        }
      } catch (SQLException e) {
        last = e;
      }
      if (!Instant.now().isBefore(deadline)) {
        break;
      }
      if (backend.canControl() && !backend.isRunning(i)) {
        break; // it will not come up by itself
      }
      FixtureSupport.sleep(POLL_INTERVAL, "PostgreSQL");
    }
    lifecycle.markFailed();
    throw new IllegalStateException("shard " + i + " (" + instance.jdbcUrl() + ") not answering select 1 within "
        + timeout + (last == null ? "" : "; last error: " + last.getMessage()) + "\n" + backend.diagnostics(i), last);
  }

  static Properties connectionProperties(String user, String password) {
    Properties properties = new Properties();
    properties.setProperty("user", user);
    properties.setProperty("password", password == null ? "" : password);
    properties.setProperty("connectTimeout", "5");
    properties.setProperty("loginTimeout", "10");
    return properties;
  }

  // ---------------------------------------------------------------- discovery

  /** The directory holding initdb, pg_ctl and postgres, or null. */
  private static Path findLocalBinaries() {
    String configured = System.getenv(BIN_ENV);
    if (configured != null && !configured.isBlank()) {
      Path dir = Path.of(configured.strip());
      if (!Files.isExecutable(dir.resolve("initdb")) || !Files.isExecutable(dir.resolve("pg_ctl"))) {
        throw new IllegalStateException(BIN_ENV + "=" + configured + " does not contain initdb and pg_ctl");
      }
      return dir;
    }
    Path debian = Path.of("/usr/lib/postgresql");
    if (Files.isDirectory(debian)) {
      try (Stream<Path> versions = Files.list(debian)) {
        Path best = versions
            .filter(v -> v.getFileName().toString().matches("\\d+(\\.\\d+)?"))
            .filter(v -> Files.isExecutable(v.resolve("bin/initdb")) && Files.isExecutable(v.resolve("bin/pg_ctl")))
            .max(Comparator.comparingDouble(v -> Double.parseDouble(v.getFileName().toString())))
            .orElse(null);
        if (best != null) {
          return best.resolve("bin");
        }
      } catch (IOException e) {
        throw new UncheckedIOException("cannot list " + debian, e);
      }
    }
    return FixtureSupport.firstOnPath(
        dir -> Files.isExecutable(dir.resolve("initdb")) && Files.isExecutable(dir.resolve("pg_ctl")));
  }

  // ---------------------------------------------------------------- backends

  /** One way of providing shards (shard i is server i); the fixture waits for readiness. */
  private interface Backend extends ServerBackend {
    /** Snapshot of the shards so far. */
    List<PgInstance> instances();

    /** Adds shards until there are {@code total}; returns once each accepts connections. */
    void grow(int total);

    @Override
    default int size() {
      return instances().size();
    }

    /** See {@link PostgresFixture#pause}. */
    default void pause(int i) {
      throw new UnsupportedOperationException("this backend cannot pause a server");
    }

    /** See {@link PostgresFixture#resume}. */
    default void resume(int i) {
      throw new UnsupportedOperationException("this backend cannot resume a server");
    }
  }

  private static final class ExternalBackend extends ExternalServers implements Backend {
    private final List<PgInstance> instances;

    ExternalBackend(String commaSeparated) {
      super("external database");
      String user = envOr(USER_ENV, "postgres");
      String password = envOr(PASSWORD_ENV, "");
      List<PgInstance> parsed = new ArrayList<>();
      for (String raw : commaSeparated.split(",")) {
        String url = raw.strip();
        if (!url.isEmpty()) {
          parsed.add(parse(url, user, password));
        }
      }
      if (parsed.isEmpty()) {
        throw new IllegalStateException(URLS_ENV + " holds no URL: '" + commaSeparated + "'");
      }
      this.instances = List.copyOf(parsed);
    }

    private static String envOr(String name, String fallback) {
      String value = System.getenv(name);
      return value == null ? fallback : value;
    }

    private static PgInstance parse(String url, String user, String password) {
      String prefix = "jdbc:postgresql://";
      if (!url.startsWith(prefix)) {
        throw new IllegalStateException(URLS_ENV + ": not a jdbc:postgresql:// URL: " + url);
      }
      URI uri = URI.create("postgresql://" + url.substring(prefix.length()));
      if (uri.getQuery() != null) {
        // PgInstance cannot carry parameters; dropping them silently (say sslmode) would
        // test something other than what was configured.
        throw new IllegalStateException(URLS_ENV + ": URL parameters are not supported: " + url);
      }
      String database = uri.getPath() == null ? "" : uri.getPath().replaceFirst("^/", "");
      if (uri.getHost() == null || database.isEmpty()) {
        throw new IllegalStateException(URLS_ENV + ": URL needs a host and a database: " + url);
      }
      return new PgInstance(uri.getHost(), uri.getPort() == -1 ? 5432 : uri.getPort(), database, user, password);
    }

    @Override
    public String description() {
      return "external databases from " + URLS_ENV;
    }

    @Override
    public List<PgInstance> instances() {
      return instances;
    }

    @Override
    public void grow(int total) {
      throw new IllegalStateException(URLS_ENV + " lists " + instances.size() + " databases but " + total
          + " shards are needed");
    }

    @Override
    public String diagnostics(int i) {
      return "shard " + i + " is external (" + instances.get(i).jdbcUrl() + "); no logs available";
    }
  }

  /** One initdb cluster per shard under one temporary directory. */
  private static final class LocalBackend implements Backend {
    private static final String SUPERUSER = "postgres";

    private final Path bin;
    private final List<String> extraSettings;
    private final Path root;
    /** The OS user to run as when this JVM is root, else null. */
    private final UserPrincipal runAs;
    private final List<PgInstance> instances = new ArrayList<>();
    /** Shards whose processes are stopped by {@link #pause}: resumed before being stopped or closed. */
    private final java.util.Set<Integer> paused = java.util.concurrent.ConcurrentHashMap.newKeySet();

    LocalBackend(Path bin, List<String> extraSettings) {
      this.bin = bin;
      this.extraSettings = extraSettings;
      try {
        Path probe = Files.createTempDirectory("shardmap-pg-probe-");
        // Files a process creates belong to its effective uid: the portable way to ask "am I root?".
        boolean isRoot = Integer.valueOf(0).equals(Files.getAttribute(probe, "unix:uid"));
        Files.delete(probe);
        Path base = Path.of(System.getProperty("java.io.tmpdir"));
        if (isRoot && !traversableByOthers(base)) {
          base = Path.of("/tmp"); // the postgres user must reach its data directory
        }
        this.root = Files.createTempDirectory(base, "shardmap-pg-");
        this.runAs = isRoot
            ? base.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("postgres")
            : null;
      } catch (IOException e) {
        throw new IllegalStateException("cannot prepare a directory for local PostgreSQL"
            + " (as root, an OS user 'postgres' must exist)", e);
      }
      chown(root);
    }

    private static boolean traversableByOthers(Path dir) throws IOException {
      for (Path p = dir.toAbsolutePath(); p != null; p = p.getParent()) {
        if (!Files.getPosixFilePermissions(p).contains(PosixFilePermission.OTHERS_EXECUTE)) {
          return false;
        }
      }
      return true;
    }

    private void chown(Path path) {
      if (runAs == null) {
        return;
      }
      try {
        Files.setOwner(path, runAs);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot give " + path + " to " + runAs.getName(), e);
      }
    }

    private Path shardDir(int i) {
      return root.resolve("shard-" + i);
    }

    private Path dataDir(int i) {
      return shardDir(i).resolve("data");
    }

    private Path serverLog(int i) {
      return shardDir(i).resolve("postgres.log");
    }

    private Path commandLog(int i) {
      return shardDir(i).resolve("commands.log");
    }

    @Override
    public String description() {
      return "local PostgreSQL from " + bin + " in " + root;
    }

    @Override
    public synchronized List<PgInstance> instances() {
      return List.copyOf(instances);
    }

    @Override
    public void grow(int total) {
      int first;
      synchronized (this) {
        first = instances.size();
      }
      int count = total - first;
      ExecutorService pool = Executors.newFixedThreadPool(count, runnable -> {
        Thread thread = new Thread(runnable, "postgres-fixture-start");
        thread.setDaemon(true);
        return thread;
      });
      try {
        List<CompletableFuture<PgInstance>> futures = new ArrayList<>();
        for (int i = first; i < total; i++) {
          int shard = i;
          futures.add(CompletableFuture.supplyAsync(() -> createShard(shard), pool));
        }
        List<PgInstance> created = new ArrayList<>();
        List<Throwable> failures = new ArrayList<>();
        for (CompletableFuture<PgInstance> future : futures) {
          try {
            // Each step inside createShard has its own timeout; this bound is a backstop.
            created.add(future.get(COMMAND_TIMEOUT.toSeconds() * 2 + 30, TimeUnit.SECONDS));
          } catch (ExecutionException e) {
            failures.add(e.getCause());
          } catch (TimeoutException e) {
            failures.add(e);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failures.add(e);
          }
        }
        if (!failures.isEmpty()) {
          IllegalStateException error = new IllegalStateException("starting local PostgreSQL failed for "
              + failures.size() + " of " + count + " shards: " + failures.get(0).getMessage(), failures.get(0));
          failures.stream().skip(1).forEach(error::addSuppressed);
          // Servers of the shards that did come up are stopped by close(), which finds them by directory.
          throw error;
        }
        synchronized (this) {
          instances.addAll(created);
        }
      } finally {
        pool.shutdownNow();
      }
    }

    private PgInstance createShard(int i) {
      try {
        Files.createDirectories(shardDir(i));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      chown(shardDir(i));
      run(i, "initdb", List.of(bin.resolve("initdb").toString(), "-D", dataDir(i).toString(), "-U", SUPERUSER,
          "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"));
      Path sockets = shardDir(i).resolve("sockets");
      try {
        Files.createDirectories(sockets);
        Files.writeString(dataDir(i).resolve("postgresql.conf"), "\ninclude 'shardmap.conf'\n",
            StandardCharsets.UTF_8, StandardOpenOption.APPEND);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      chown(sockets);
      for (int attempt = 1; ; attempt++) {
        int port = FreePorts.allocate();
        writeSettings(i, port, sockets);
        try {
          pgCtlStart(i);
        } catch (IllegalStateException e) {
          String log = FixtureSupport.tail(serverLog(i), FixtureSupport.LOG_TAIL_LINES);
          boolean portTaken = log.contains("could not bind") || log.contains("could not create any TCP/IP sockets");
          if (portTaken && attempt < START_ATTEMPTS) {
            continue; // someone took the port between allocation and bind
          }
          throw e;
        }
        createDatabase(i, port);
        return new PgInstance("127.0.0.1", port, databaseName(i), SUPERUSER, "");
      }
    }

    private static String databaseName(int i) {
      return "shard_" + i;
    }

    private void writeSettings(int i, int port, Path sockets) {
      List<String> lines = new ArrayList<>(Arrays.asList(SERVER_SETTINGS));
      lines.addAll(extraSettings); // later lines win in postgresql.conf
      lines.add("listen_addresses = '127.0.0.1'");
      lines.add("port = " + port);
      // Our own socket directory: the packaged default (/var/run/postgresql) may be missing
      // or belong to a system cluster.
      lines.add("unix_socket_directories = '" + sockets + "'");
      Path file = dataDir(i).resolve("shardmap.conf");
      try {
        Files.write(file, lines, StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      chown(file);
    }

    private void pgCtlStart(int i) {
      run(i, "pg_ctl start", List.of(bin.resolve("pg_ctl").toString(), "-D", dataDir(i).toString(),
          "-l", serverLog(i).toString(), "-w", "-t", String.valueOf(PG_CTL_WAIT_SECONDS), "start"));
    }

    private void createDatabase(int i, int port) {
      String url = "jdbc:postgresql://127.0.0.1:" + port + "/postgres";
      try (Connection connection = DriverManager.getConnection(url, connectionProperties(SUPERUSER, ""));
          Statement statement = connection.createStatement()) {
        statement.execute("CREATE DATABASE " + databaseName(i));
      } catch (SQLException e) {
        throw new IllegalStateException("cannot create database " + databaseName(i) + " on port " + port
            + ": " + e.getMessage() + "\n" + diagnostics(i), e);
      }
    }

    /** Runs a PostgreSQL tool (as the postgres user when root), output appended to commands.log. */
    private void run(int i, String what, List<String> command) {
      List<String> full = new ArrayList<>();
      if (runAs != null) {
        full.addAll(List.of("runuser", "-u", runAs.getName(), "--"));
      }
      full.addAll(command);
      ProcessBuilder builder = new ProcessBuilder(full);
      // PGDATA, PGPORT and friends from a developer's shell must not redirect the tools.
      builder.environment().keySet().removeIf(key -> key.startsWith("PG"));
      int exitCode;
      try {
        exitCode = ManagedProcess.start(builder, commandLog(i), String.join(" ", full)).awaitExit(COMMAND_TIMEOUT);
      } catch (TimeoutException e) {
        throw new IllegalStateException(what + " for shard " + i + " did not finish within " + COMMAND_TIMEOUT
            + "\n" + diagnostics(i));
      } catch (IOException e) {
        throw new UncheckedIOException("cannot run " + what + " for shard " + i, e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while running " + what, e);
      }
      if (exitCode != 0) {
        throw new IllegalStateException(what + " for shard " + i + " failed with exit code " + exitCode
            + "\n" + diagnostics(i));
      }
    }

    @Override
    public boolean canControl() {
      return true;
    }

    @Override
    public void stop(int i) {
      stopDirectory(i);
    }

    /**
     * SIGSTOP to the postmaster first (so it forks no new child meanwhile), then to each of its descendants
     * as the OS lists them once it is stopped.
     */
    @Override
    public void pause(int i) {
      if (!isRunning(i) || paused.contains(i)) {
        return;
      }
      long postmaster = postmasterPid(i);
      run(i, "kill -STOP postmaster", List.of("kill", "-STOP", Long.toString(postmaster)));
      paused.add(i);
      List<String> children = descendants(postmaster);
      if (!children.isEmpty()) {
        List<String> command = new ArrayList<>(List.of("kill", "-STOP"));
        command.addAll(children);
        run(i, "kill -STOP children", command);
      }
    }

    /** SIGCONT to the postmaster's descendants, then to the postmaster. */
    @Override
    public void resume(int i) {
      if (!paused.contains(i)) {
        return;
      }
      long postmaster = postmasterPid(i);
      List<String> command = new ArrayList<>(List.of("kill", "-CONT"));
      command.addAll(descendants(postmaster));
      command.add(Long.toString(postmaster));
      run(i, "kill -CONT", command);
      paused.remove(i);
    }

    /** The first line of postmaster.pid. */
    private long postmasterPid(int i) {
      try {
        return Long.parseLong(Files.readAllLines(dataDir(i).resolve("postmaster.pid")).get(0).trim());
      } catch (IOException | RuntimeException e) {
        throw new IllegalStateException("shard " + i + ": cannot read the postmaster's pid from "
            + dataDir(i).resolve("postmaster.pid") + ": " + e, e);
      }
    }

    private static List<String> descendants(long pid) {
      return ProcessHandle.of(pid).map(h -> h.descendants().map(d -> Long.toString(d.pid()))
          .collect(Collectors.toList())).orElse(List.of());
    }

    /** Immediate shutdown: no checkpoint, the next start runs crash recovery. */
    private void stopDirectory(int i) {
      if (!isRunning(i)) {
        return;
      }
      resume(i); // a stopped postmaster would not act on pg_ctl's signal
      run(i, "pg_ctl stop", List.of(bin.resolve("pg_ctl").toString(), "-D", dataDir(i).toString(),
          "-m", "immediate", "-w", "-t", String.valueOf(PG_CTL_WAIT_SECONDS), "stop"));
    }

    @Override
    public void start(int i) {
      pgCtlStart(i);
    }

    /** Judged by postmaster.pid, which the postmaster removes when it exits. */
    @Override
    public boolean isRunning(int i) {
      return Files.exists(dataDir(i).resolve("postmaster.pid"));
    }

    @Override
    public String logLocation(int i) {
      return serverLog(i) + " (tool output: " + commandLog(i) + ")";
    }

    @Override
    public String diagnostics(int i) {
      return "--- shard " + i + " tool output " + commandLog(i) + ", last lines:\n"
          + FixtureSupport.tail(commandLog(i), FixtureSupport.LOG_TAIL_LINES)
          + "\n--- shard " + i + " server log " + serverLog(i) + ", last lines:\n"
          + FixtureSupport.tail(serverLog(i), FixtureSupport.LOG_TAIL_LINES);
    }

    @Override
    public boolean keepsLogs() {
      return true;
    }

    @Override
    public void close(boolean keepLogs) {
      RuntimeException first = null;
      // Walk the directories rather than `instances`: shards that failed half-way may be running.
      try (Stream<Path> dirs = Files.exists(root) ? Files.list(root) : Stream.empty()) {
        for (Path dir : dirs.collect(Collectors.toList())) {
          String name = dir.getFileName().toString();
          if (!name.startsWith("shard-")) {
            continue;
          }
          try {
            stopDirectory(Integer.parseInt(name.substring("shard-".length())));
          } catch (RuntimeException e) {
            first = first == null ? e : first;
          }
        }
      } catch (IOException e) {
        first = new UncheckedIOException(e);
      }
      if (first == null) {
        FixtureSupport.deleteRecursively(root, keepLogs, REGISTRY.logTag);
      } else {
        // A server we could not stop still uses its directory; leave it for inspection.
        System.err.println("[" + REGISTRY.logTag + "] not deleting " + root + ": " + first.getMessage());
        throw first;
      }
    }
  }

  /** One postgres container per shard, client port published on a host port chosen up front. */
  private static final class ContainerBackend extends ContainerServers implements Backend {
    private static final String PASSWORD = "shardmap";

    private final List<PgInstance> instances = new ArrayList<>();
    private final List<String> extraSettings;

    ContainerBackend(List<String> extraSettings) {
      super(IMAGE_ENV, DEFAULT_IMAGE, "shard", REGISTRY.logTag);
      this.extraSettings = extraSettings;
    }

    @Override
    public synchronized List<PgInstance> instances() {
      return List.copyOf(instances);
    }

    @Override
    public synchronized void grow(int total) {
      for (int i = instances.size(); i < total; i++) {
        // A fixed host port (rather than Docker's random one) survives docker kill / docker start.
        int port = FreePorts.allocate();
        List<String> command = new ArrayList<>(List.of("postgres"));
        List<String> settings = new ArrayList<>(Arrays.asList(SERVER_SETTINGS));
        settings.addAll(extraSettings); // a later -c wins
        for (String setting : settings) {
          command.add("-c");
          command.add(setting.replaceFirst(" = ", "=").replace("'", ""));
        }
        GenericContainer<?> container = new GenericContainer<>(DockerImageName.parse(image))
            .withEnv("POSTGRES_USER", "postgres")
            .withEnv("POSTGRES_PASSWORD", PASSWORD)
            .withEnv("POSTGRES_DB", "shard_" + i)
            .withCommand(command.toArray(new String[0]))
            // The entrypoint runs a temporary server for initialisation first; the
            // second "ready" line is the real one.
            .waitingFor(Wait.forLogMessage(".*database system is ready to accept connections.*\\s", 2)
                .withStartupTimeout(CONTAINER_START_TIMEOUT));
        container.setPortBindings(List.of(host.binding(port, 5432)));
        containers.add(container);
        container.start();
        instances.add(new PgInstance(host.address(), port, "shard_" + i, "postgres", PASSWORD));
      }
    }

    @Override
    public void stop(int i) {
      if (!isRunning(i)) {
        return;
      }
      // docker kill, unlike GenericContainer.stop(), keeps the container and its data for start().
      Docker.kill(containers.get(i), "shard " + i, "PostgreSQL", Duration.ofSeconds(15), POLL_INTERVAL);
    }
  }
}
