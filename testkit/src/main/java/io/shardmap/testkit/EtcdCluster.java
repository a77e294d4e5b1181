package io.shardmap.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.wait.strategy.WaitStrategy;
import org.testcontainers.containers.wait.strategy.WaitStrategyTarget;
import org.testcontainers.utility.DockerImageName;

/**
 * An etcd cluster for tests.
 *
 * <p>Where the cluster comes from, first match wins:
 *
 * <ol>
 *   <li>{@value #ENDPOINTS_ENV} (comma-separated client URLs): an existing cluster. Members cannot
 *       be stopped or started ({@link #canControlMembers()} is false); fault tests must skip.
 *   <li>A local {@code etcd} binary ({@value #BINARY_ENV}, else {@code etcd} on the PATH, else
 *       {@code /usr/bin/etcd}): a cluster of child processes on 127.0.0.1 with fresh ports and a
 *       fresh temporary data directory per member, fast raft timings, {@code --max-txn-ops=1024}
 *       and no auto-compaction. Member output goes to {@code member-N.log} in the temporary
 *       directory; every failure message names those files and quotes their last lines, and
 *       they are kept after {@link #close()} (data deleted) if starting the cluster or
 *       restarting a member failed.
 *   <li>Testcontainers with {@value #DEFAULT_IMAGE} (or {@value #IMAGE_ENV}): one container per
 *       member on a private Docker network, client ports published on fixed host ports so a
 *       restarted member keeps its address. Members are killed and restarted with the Docker API,
 *       keeping their data, so {@link #canControlMembers()} is true here too.
 * </ol>
 *
 * <p>{@link #shared()} is for tests that only read and write: it is started once per JVM and
 * closed by a shutdown hook, so tests must namespace their keys. Tests that stop members use
 * {@link #start(int)} and close the result themselves.
 *
 * <p>Every wait here is bounded; a timeout raises {@link IllegalStateException} with each member's
 * last observed state and log location.
 */
public final class EtcdCluster implements AutoCloseable {

  public static final String ENDPOINTS_ENV = "SHARDMAP_TEST_ETCD_ENDPOINTS";
  public static final String BINARY_ENV = "SHARDMAP_ETCD_BIN";
  public static final String IMAGE_ENV = "SHARDMAP_ETCD_IMAGE";
  public static final String DEFAULT_IMAGE = "quay.io/coreos/etcd:v3.5.17";

  /** Members of the {@link #shared()} cluster. */
  public static final int SHARED_MEMBERS = 3;

  private static final Duration CLUSTER_START_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration MEMBER_START_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration EXIT_TIMEOUT = Duration.ofSeconds(15);
  private static final Duration POLL_INTERVAL = Duration.ofMillis(25);
  private static final Duration HTTP_TIMEOUT = Duration.ofSeconds(2);
  /** Attempts with fresh ports when a member dies during start-up (typically a port taken meanwhile). */
  private static final int START_ATTEMPTS = 3;
  private static final int LOG_TAIL_LINES = 40;

  private static final Object SHARED_LOCK = new Object();
  private static EtcdCluster shared;
  private static RuntimeException sharedFailure;
  private static final Set<EtcdCluster> OPEN = ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(EtcdCluster::closeAllAtExit, "etcd-fixture-shutdown"));
  }

  private final Backend backend;
  private final boolean isShared;
  private final HttpClient http;
  private volatile boolean failed;
  private volatile boolean closed;

  private EtcdCluster(Backend backend, boolean isShared) {
    this.backend = backend;
    this.isShared = isShared;
    this.http = newHttpClient();
  }

  /**
   * The JVM-wide cluster ({@value #SHARED_MEMBERS} members when this class starts it). The first
   * call starts it and waits until it is healthy; later calls return the same instance. If
   * starting failed, every later call fails with the same cause instead of trying again.
   */
  public static EtcdCluster shared() {
    synchronized (SHARED_LOCK) {
      if (sharedFailure != null) {
        throw new IllegalStateException("the shared etcd cluster failed to start earlier", sharedFailure);
      }
      if (shared == null) {
        try {
          shared = create(SHARED_MEMBERS, true);
        } catch (RuntimeException e) {
          sharedFailure = e;
          throw e;
        }
      }
      return shared;
    }
  }

  /**
   * Starts a cluster of {@code members} members owned by the caller, who must {@link #close()}
   * it (a shutdown hook closes forgotten ones). Returns once every member reports healthy. With
   * {@value #ENDPOINTS_ENV} set this returns a view of that external cluster instead, whatever
   * {@code members} says.
   */
  public static EtcdCluster start(int members) {
    if (members < 1) {
      throw new IllegalArgumentException("members must be at least 1: " + members);
    }
    return create(members, false);
  }

  private static EtcdCluster create(int members, boolean isShared) {
    String external = System.getenv(ENDPOINTS_ENV);
    if (external != null && !external.isBlank()) {
      EtcdCluster cluster = new EtcdCluster(new ExternalBackend(external), isShared);
      OPEN.add(cluster);
      cluster.awaitHealthy(CLUSTER_START_TIMEOUT, false);
      return cluster;
    }
    Path binary = findLocalBinary();
    if (binary != null) {
      return startLocal(binary, members, isShared);
    }
    if (!dockerAvailable()) {
      throw new IllegalStateException("no etcd available for tests: set " + ENDPOINTS_ENV
          + " to an existing cluster, install etcd (on the PATH, /usr/bin/etcd, or " + BINARY_ENV
          + "), or run a Docker engine for Testcontainers");
    }
    return startContainers(members, isShared);
  }

  private static EtcdCluster startLocal(Path binary, int members, boolean isShared) {
    IllegalStateException lastFailure = null;
    for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      LocalBackend backend = new LocalBackend(binary, members);
      EtcdCluster cluster = new EtcdCluster(backend, isShared);
      OPEN.add(cluster);
      try {
        backend.launchAll();
        cluster.awaitHealthy(CLUSTER_START_TIMEOUT, true);
        return cluster;
      } catch (RuntimeException e) {
        boolean someoneDied = false;
        for (int i = 0; i < members; i++) {
          someoneDied |= !backend.isRunning(i);
        }
        cluster.failed = true;
        cluster.shutDown();
        lastFailure = e instanceof IllegalStateException ise
            ? ise : new IllegalStateException("starting local etcd failed", e);
        if (!someoneDied) {
          // Every member is alive but the cluster never became healthy: new ports
          // would not help, so report instead of hiding the problem behind retries.
          throw lastFailure;
        }
      }
    }
    throw new IllegalStateException("local etcd failed to start in " + START_ATTEMPTS
        + " attempts (a member exited each time; see its log)", lastFailure);
  }

  private static EtcdCluster startContainers(int members, boolean isShared) {
    ContainerBackend backend = new ContainerBackend(members);
    EtcdCluster cluster = new EtcdCluster(backend, isShared);
    OPEN.add(cluster);
    try {
      backend.launchAll();
      cluster.awaitHealthy(CLUSTER_START_TIMEOUT.multipliedBy(4), true); // includes image pull
      return cluster;
    } catch (RuntimeException e) {
      cluster.failed = true;
      cluster.shutDown();
      throw e;
    }
  }

  /** Whether {@link #stopMember}/{@link #startMember} work; false for an external cluster. */
  public boolean canControlMembers() {
    return backend.canControlMembers();
  }

  public int memberCount() {
    return backend.clientEndpoints().size();
  }

  /** Client URLs of all members, e.g. {@code http://127.0.0.1:23791}, including stopped ones. */
  public List<String> clientEndpoints() {
    return backend.clientEndpoints();
  }

  public String clientEndpoint(int member) {
    checkIndex(member);
    return backend.clientEndpoints().get(member);
  }

  /** Where each member's output goes, for humans reading a failure (external clusters have none here). */
  public String describeLogs() {
    StringBuilder out = new StringBuilder(backend.description());
    for (int i = 0; i < memberCount(); i++) {
      out.append("\n  member ").append(i).append(": ").append(backend.logLocation(i));
    }
    return out.toString();
  }

  /**
   * Kills member {@code i} without warning (SIGKILL or {@code docker kill}) and returns once it
   * has exited. Its data directory and ports are kept for {@link #startMember}. Does nothing if
   * the member is already stopped.
   *
   * @throws UnsupportedOperationException if {@link #canControlMembers()} is false
   */
  public synchronized void stopMember(int i) {
    requireControl();
    checkIndex(i);
    backend.stop(i);
  }

  /**
   * Restarts member {@code i} with its old data directory and ports, so it rejoins as the same
   * member. If the running members (this one included) form a majority, returns once it reports
   * healthy. Otherwise etcd cannot serve clients at all (it answers client requests only after
   * the cluster has accepted it, which takes a majority), so this returns once the member has
   * loaded its data and runs raft, as shown by its metrics listener answering; health follows
   * when enough other members are started. Does nothing if the member is running.
   *
   * @throws UnsupportedOperationException if {@link #canControlMembers()} is false
   */
  public synchronized void startMember(int i) {
    requireControl();
    checkIndex(i);
    if (backend.isRunning(i)) {
      return;
    }
    backend.start(i);
    int running = 0;
    for (int m = 0; m < memberCount(); m++) {
      running += backend.isRunning(m) ? 1 : 0;
    }
    boolean quorum = running > memberCount() / 2;
    Instant deadline = Instant.now().plus(MEMBER_START_TIMEOUT);
    String last = "not polled";
    while (Instant.now().isBefore(deadline)) {
      if (!backend.isRunning(i)) {
        failed = true;
        throw new IllegalStateException("etcd member " + i + " exited while restarting\n"
            + backend.diagnostics(i));
      }
      last = quorum ? probeHealth(i) : probe(backend.metricsEndpoint(i) + "/metrics");
      if (quorum ? last.equals(HEALTHY) : last.startsWith("200")) {
        return;
      }
      sleep(POLL_INTERVAL);
    }
    failed = true;
    throw new IllegalStateException("etcd member " + i + " did not " + (quorum ? "become healthy" : "serve metrics")
        + " within " + MEMBER_START_TIMEOUT + " after restart; last answer: " + last + "\n"
        + backend.diagnostics(i));
  }

  /** Whether member {@code i} is up; always true for an external cluster (it cannot be observed). */
  public boolean isRunning(int i) {
    checkIndex(i);
    return backend.isRunning(i);
  }

  /**
   * Waits until every running member (every endpoint, for an external cluster) reports healthy on
   * {@code GET /health}, which etcd answers positively only when it has a leader and no alarms.
   * Stopped members are not waited for, but at least one member must be running.
   *
   * @throws IllegalStateException on timeout, with each member's last answer and log
   */
  public void awaitHealthy(Duration timeout) {
    // A test may expect this to fail (quorum loss), so it alone does not keep logs on close.
    awaitHealthy(timeout, false);
  }

  private void awaitHealthy(Duration timeout, boolean failureKeepsLogs) {
    Instant deadline = Instant.now().plus(timeout);
    String[] last = new String[memberCount()];
    Arrays.fill(last, "not polled");
    while (true) {
      boolean allHealthy = true;
      int running = 0;
      for (int i = 0; i < memberCount(); i++) {
        if (!backend.isRunning(i)) {
          last[i] = "stopped";
          continue;
        }
        running++;
        last[i] = probeHealth(i);
        allHealthy &= last[i].equals(HEALTHY);
      }
      if (running > 0 && allHealthy) {
        return;
      }
      if (!Instant.now().isBefore(deadline)) {
        break;
      }
      sleep(POLL_INTERVAL);
    }
    failed |= failureKeepsLogs;
    StringBuilder message = new StringBuilder("etcd cluster not healthy within " + timeout + " (" + backend.description() + ")");
    for (int i = 0; i < memberCount(); i++) {
      message.append("\nmember ").append(i).append(" at ").append(clientEndpoint(i)).append(": ").append(last[i]);
    }
    for (int i = 0; i < memberCount(); i++) {
      message.append('\n').append(backend.diagnostics(i));
    }
    throw new IllegalStateException(message.toString());
  }

  /**
   * Kills every member and deletes all data (log files survive if anything failed, and their
   * location is printed). Idempotent.
   *
   * @throws IllegalStateException on the {@link #shared()} instance, which belongs to the JVM
   */
  @Override
  public void close() {
    if (isShared) {
      throw new IllegalStateException("the shared etcd cluster is closed by a JVM shutdown hook, not by tests");
    }
    shutDown();
  }

  private synchronized void shutDown() {
    if (closed) {
      return;
    }
    closed = true;
    OPEN.remove(this);
    backend.close(failed);
    if (failed && backend.keepsLogs()) {
      System.err.println("[EtcdCluster] a failure occurred; logs kept: " + describeLogs());
    }
  }

  private static void closeAllAtExit() {
    for (EtcdCluster cluster : List.copyOf(OPEN)) {
      try {
        cluster.shutDown();
      } catch (RuntimeException e) {
        System.err.println("[EtcdCluster] cleanup at exit failed: " + e);
      }
    }
  }

  private void requireControl() {
    if (!backend.canControlMembers()) {
      throw new UnsupportedOperationException("members of an external etcd cluster (" + ENDPOINTS_ENV
          + ") cannot be stopped or started; check canControlMembers() and skip");
    }
    if (closed) {
      throw new IllegalStateException("cluster is closed");
    }
  }

  private void checkIndex(int member) {
    if (member < 0 || member >= memberCount()) {
      throw new IndexOutOfBoundsException("member " + member + " of " + memberCount());
    }
  }

  // ---------------------------------------------------------------- HTTP probing

  private static final String HEALTHY = "healthy";

  /** {@link #HEALTHY} or a short description of what the member answered instead. */
  private String probeHealth(int i) {
    String answer = probe(clientEndpoint(i) + "/health");
    // 3.4 answers {"health":"true"}, 3.5 adds a "reason" field; both mean healthy.
    return answer.startsWith("200") && answer.replace(" ", "").contains("\"health\":\"true\"") ? HEALTHY : answer;
  }

  /** "STATUS BODY" for an answered GET, or the failure's description; never throws. */
  private String probe(String url) {
    try {
      HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(HTTP_TIMEOUT).GET().build();
      HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
      return response.statusCode() + " " + response.body().strip();
    } catch (IOException e) {
      return e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while probing " + url, e);
    }
  }

  private static HttpClient newHttpClient() {
    // No proxy selector: the JDK client then connects directly, whatever the environment's proxy settings.
    return HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(HTTP_TIMEOUT)
        .build();
  }

  private static void sleep(Duration duration) {
    try {
      Thread.sleep(duration.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for etcd", e);
    }
  }

  // ---------------------------------------------------------------- discovery

  private static Path findLocalBinary() {
    String configured = System.getenv(BINARY_ENV);
    if (configured != null && !configured.isBlank()) {
      Path path = Path.of(configured.strip());
      if (Files.isDirectory(path)) {
        path = path.resolve("etcd");
      }
      if (!Files.isExecutable(path)) {
        throw new IllegalStateException(BINARY_ENV + "=" + configured + " is not an executable etcd binary");
      }
      return path;
    }
    String pathVariable = System.getenv("PATH");
    if (pathVariable != null) {
      for (String dir : pathVariable.split(java.io.File.pathSeparator)) {
        if (dir.isEmpty()) {
          continue;
        }
        Path candidate = Path.of(dir, "etcd");
        if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
          return candidate;
        }
      }
    }
    Path debian = Path.of("/usr/bin/etcd");
    return Files.isExecutable(debian) ? debian : null;
  }

  private static boolean dockerAvailable() {
    try {
      return DockerClientFactory.instance().isDockerAvailable();
    } catch (RuntimeException | LinkageError e) {
      return false;
    }
  }

  private static String tail(Path file, int lines) {
    if (!Files.isReadable(file)) {
      return "(no log at " + file + ")";
    }
    try {
      List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException | UncheckedIOException e) {
      return "(log at " + file + " unreadable: " + e + ")";
    }
  }

  private static void deleteRecursively(Path root, Predicate<Path> keep) {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path path : walk.sorted(Comparator.reverseOrder()).collect(Collectors.toList())) {
        if (keep.test(path)) {
          continue;
        }
        try {
          Files.deleteIfExists(path);
        } catch (java.nio.file.DirectoryNotEmptyException keptInside) {
          // Holds a kept log file.
        }
      }
    } catch (IOException e) {
      System.err.println("[EtcdCluster] could not delete " + root + ": " + e);
    }
  }

  // ---------------------------------------------------------------- backends

  /** One way of providing members. Implementations are not thread-safe; EtcdCluster tests are sequential. */
  private interface Backend {
    String description();

    List<String> clientEndpoints();

    /** Base URL of member i's metrics listener, which etcd serves before it can serve clients. */
    String metricsEndpoint(int i);

    boolean canControlMembers();

    /** Hard-kills member i and waits for it to exit; no-op if stopped. */
    void stop(int i);

    /** Launches member i again with its old data and ports; does not wait for it to serve. */
    void start(int i);

    boolean isRunning(int i);

    String logLocation(int i);

    /** Log location and recent output of member i, for failure messages. */
    String diagnostics(int i);

    boolean keepsLogs();

    void close(boolean keepLogs);
  }

  private static final class ExternalBackend implements Backend {
    private final List<String> endpoints;

    ExternalBackend(String commaSeparated) {
      endpoints = Arrays.stream(commaSeparated.split(","))
          .map(String::strip)
          .filter(s -> !s.isEmpty())
          .map(s -> s.endsWith("/") ? s.substring(0, s.length() - 1) : s)
          .collect(Collectors.toUnmodifiableList());
      if (endpoints.isEmpty()) {
        throw new IllegalStateException(ENDPOINTS_ENV + " holds no endpoint: '" + commaSeparated + "'");
      }
    }

    @Override
    public String description() {
      return "external cluster from " + ENDPOINTS_ENV;
    }

    @Override
    public List<String> clientEndpoints() {
      return endpoints;
    }

    @Override
    public String metricsEndpoint(int i) {
      throw new UnsupportedOperationException("external cluster");
    }

    @Override
    public boolean canControlMembers() {
      return false;
    }

    @Override
    public void stop(int i) {
      throw new UnsupportedOperationException("external cluster");
    }

    @Override
    public void start(int i) {
      throw new UnsupportedOperationException("external cluster");
    }

    @Override
    public boolean isRunning(int i) {
      return true;
    }

    @Override
    public String logLocation(int i) {
      return "(external; no logs)";
    }

    @Override
    public String diagnostics(int i) {
      return "member " + i + " is external (" + endpoints.get(i) + "); no logs available";
    }

    @Override
    public boolean keepsLogs() {
      return false;
    }

    @Override
    public void close(boolean keepLogs) {
      // The cluster belongs to whoever set ENDPOINTS_ENV; nothing here to release.
    }
  }

  private static final class LocalBackend implements Backend {
    private final Path binary;
    private final int size;
    private final Path root;
    private final int[] clientPorts;
    private final int[] peerPorts;
    private final int[] metricsPorts;
    private final Process[] processes;
    private final List<String> endpoints;
    private final String token = "shardmap-test-" + UUID.randomUUID();

    LocalBackend(Path binary, int size) {
      this.binary = binary;
      this.size = size;
      try {
        this.root = Files.createTempDirectory("shardmap-etcd-");
      } catch (IOException e) {
        throw new UncheckedIOException("cannot create a temporary directory for etcd", e);
      }
      int[] ports = FreePorts.allocate(3 * size);
      this.clientPorts = Arrays.copyOfRange(ports, 0, size);
      this.peerPorts = Arrays.copyOfRange(ports, size, 2 * size);
      this.metricsPorts = Arrays.copyOfRange(ports, 2 * size, 3 * size);
      this.processes = new Process[size];
      List<String> urls = new ArrayList<>();
      for (int i = 0; i < size; i++) {
        urls.add("http://127.0.0.1:" + clientPorts[i]);
      }
      this.endpoints = List.copyOf(urls);
    }

    void launchAll() {
      for (int i = 0; i < size; i++) {
        start(i);
      }
    }

    private List<String> command(int i) {
      StringBuilder initialCluster = new StringBuilder();
      for (int m = 0; m < size; m++) {
        if (m > 0) {
          initialCluster.append(',');
        }
        initialCluster.append(name(m)).append("=http://127.0.0.1:").append(peerPorts[m]);
      }
      // On restart the data directory already holds the membership, and etcd ignores the
      // --initial-* flags, so the same command line serves both first start and rejoin.
      return List.of(
          binary.toString(),
          "--name=" + name(i),
          "--data-dir=" + dataDir(i),
          "--listen-client-urls=" + endpoints.get(i),
          "--advertise-client-urls=" + endpoints.get(i),
          "--listen-peer-urls=http://127.0.0.1:" + peerPorts[i],
          "--initial-advertise-peer-urls=http://127.0.0.1:" + peerPorts[i],
          "--listen-metrics-urls=" + metricsEndpoint(i),
          "--initial-cluster=" + initialCluster,
          "--initial-cluster-state=new",
          "--initial-cluster-token=" + token,
          "--heartbeat-interval=50",
          "--election-timeout=500",
          "--max-txn-ops=1024",
          // "0" disables auto-compaction; tests that read old revisions rely on it.
          "--auto-compaction-retention=0",
          "--logger=zap",
          "--log-outputs=stderr");
    }

    private static String name(int i) {
      return "member-" + i;
    }

    private Path dataDir(int i) {
      return root.resolve(name(i) + ".etcd");
    }

    private Path log(int i) {
      return root.resolve(name(i) + ".log");
    }

    @Override
    public String description() {
      return "local " + binary + " in " + root;
    }

    @Override
    public List<String> clientEndpoints() {
      return endpoints;
    }

    @Override
    public String metricsEndpoint(int i) {
      return "http://127.0.0.1:" + metricsPorts[i];
    }

    @Override
    public boolean canControlMembers() {
      return true;
    }

    @Override
    public void stop(int i) {
      Process process = processes[i];
      if (process == null || !process.isAlive()) {
        return;
      }
      process.destroyForcibly(); // SIGKILL on Unix: no chance to flush or say goodbye to peers
      try {
        if (!process.waitFor(EXIT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
          throw new IllegalStateException("etcd member " + i + " (pid " + process.pid()
              + ") still alive " + EXIT_TIMEOUT + " after SIGKILL");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while killing etcd member " + i, e);
      }
    }

    @Override
    public void start(int i) {
      List<String> command = command(i);
      ProcessBuilder builder = new ProcessBuilder(command);
      // ETCD_* variables are read as flags; a developer's shell settings must not reconfigure the fixture.
      builder.environment().keySet().removeIf(key -> key.startsWith("ETCD_"));
      String goArch = goArch();
      if (!goArch.equals("amd64")) {
        // etcd 3.4 refuses to run on architectures it calls unsupported (arm64 among them) unless told.
        builder.environment().put("ETCD_UNSUPPORTED_ARCH", goArch);
      }
      builder.redirectErrorStream(true);
      builder.redirectOutput(ProcessBuilder.Redirect.appendTo(log(i).toFile()));
      try {
        Files.writeString(log(i), "=== shardmap: " + Instant.now() + " starting " + String.join(" ", command) + "\n",
            StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        Process process = builder.start();
        process.getOutputStream().close();
        processes[i] = process;
      } catch (IOException e) {
        throw new UncheckedIOException("cannot start " + binary + " for member " + i, e);
      }
    }

    private static String goArch() {
      String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
      switch (arch) {
        case "amd64":
        case "x86_64":
          return "amd64";
        case "aarch64":
        case "arm64":
          return "arm64";
        default:
          return arch;
      }
    }

    @Override
    public boolean isRunning(int i) {
      return processes[i] != null && processes[i].isAlive();
    }

    @Override
    public String logLocation(int i) {
      return log(i).toString();
    }

    @Override
    public String diagnostics(int i) {
      Process process = processes[i];
      String state = process == null ? "never started"
          : process.isAlive() ? "running, pid " + process.pid() : "exited with " + process.exitValue();
      return "--- member " + i + " (" + state + "), log " + log(i) + ", last lines:\n" + tail(log(i), LOG_TAIL_LINES);
    }

    @Override
    public boolean keepsLogs() {
      return true;
    }

    @Override
    public void close(boolean keepLogs) {
      RuntimeException first = null;
      for (int i = 0; i < size; i++) {
        try {
          stop(i);
        } catch (RuntimeException e) {
          first = first == null ? e : first;
        }
      }
      deleteRecursively(root, path -> keepLogs && path.getFileName().toString().endsWith(".log"));
      if (first != null) {
        throw first;
      }
    }
  }

  /**
   * Members as containers on one Docker network. Peers reach each other by network alias; the
   * client port of each member is published on a host port chosen up front, so the endpoint
   * survives {@code docker kill} / {@code docker start} (Docker would pick a new random port).
   */
  private static final class ContainerBackend implements Backend {
    private final int size;
    private final String image;
    private final boolean local;
    private final String host;
    private final int[] hostPorts;
    private final List<String> endpoints;
    private final Network network;
    private final List<GenericContainer<?>> containers = new ArrayList<>();

    ContainerBackend(int size) {
      this.size = size;
      String configured = System.getenv(IMAGE_ENV);
      this.image = configured == null || configured.isBlank() ? DEFAULT_IMAGE : configured.strip();
      String dockerHost = DockerClientFactory.instance().dockerHostIpAddress();
      // Ports are published on loopback only when Docker runs on this machine (a remote
      // engine's loopback is unreachable from here); name it by address so that clients do not
      // try ::1, where nothing is published.
      this.local = isLoopback(dockerHost);
      this.host = local ? "127.0.0.1" : dockerHost;
      this.hostPorts = FreePorts.allocate(2 * size); // client ports, then metrics ports
      List<String> urls = new ArrayList<>();
      for (int i = 0; i < size; i++) {
        urls.add("http://" + host + ":" + hostPorts[i]);
      }
      this.endpoints = List.copyOf(urls);
      this.network = Network.newNetwork();
    }

    void launchAll() {
      String token = "shardmap-test-" + UUID.randomUUID();
      StringBuilder initialCluster = new StringBuilder();
      for (int m = 0; m < size; m++) {
        if (m > 0) {
          initialCluster.append(',');
        }
        initialCluster.append(alias(m)).append("=http://").append(alias(m)).append(":2380");
      }
      String bindIp = local ? "127.0.0.1:" : "";
      for (int i = 0; i < size; i++) {
        GenericContainer<?> container = new GenericContainer<>(DockerImageName.parse(image))
            .withNetwork(network)
            .withNetworkAliases(alias(i))
            .waitingFor(new ReturnWhenRunning())
            .withCommand(
                "/usr/local/bin/etcd",
                "--name=" + alias(i),
                "--data-dir=/var/lib/etcd-test",
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=" + endpoints.get(i),
                "--listen-peer-urls=http://0.0.0.0:2380",
                "--initial-advertise-peer-urls=http://" + alias(i) + ":2380",
                "--listen-metrics-urls=http://0.0.0.0:2381",
                "--initial-cluster=" + initialCluster,
                "--initial-cluster-state=new",
                "--initial-cluster-token=" + token,
                "--heartbeat-interval=50",
                "--election-timeout=500",
                "--max-txn-ops=1024",
                "--auto-compaction-retention=0");
        container.setPortBindings(List.of(bindIp + hostPorts[i] + ":2379", bindIp + hostPorts[size + i] + ":2381"));
        containers.add(container);
        container.start();
      }
    }

    private static boolean isLoopback(String host) {
      try {
        return InetAddress.getByName(host).isLoopbackAddress();
      } catch (UnknownHostException e) {
        return false;
      }
    }

    private static String alias(int i) {
      return "etcd-" + i;
    }

    @Override
    public String description() {
      return "Testcontainers " + image;
    }

    @Override
    public List<String> clientEndpoints() {
      return endpoints;
    }

    @Override
    public String metricsEndpoint(int i) {
      return "http://" + host + ":" + hostPorts[size + i];
    }

    @Override
    public boolean canControlMembers() {
      return true;
    }

    @Override
    public void stop(int i) {
      if (!isRunning(i)) {
        return;
      }
      GenericContainer<?> container = containers.get(i);
      // docker kill sends SIGKILL and, unlike GenericContainer.stop(), keeps the container and its data.
      container.getDockerClient().killContainerCmd(container.getContainerId()).exec();
      Instant deadline = Instant.now().plus(EXIT_TIMEOUT);
      while (isRunning(i)) {
        if (!Instant.now().isBefore(deadline)) {
          throw new IllegalStateException("container of etcd member " + i + " still running after docker kill");
        }
        sleep(POLL_INTERVAL);
      }
    }

    @Override
    public void start(int i) {
      GenericContainer<?> container = containers.get(i);
      container.getDockerClient().startContainerCmd(container.getContainerId()).exec();
    }

    @Override
    public boolean isRunning(int i) {
      return i < containers.size() && containers.get(i).isRunning();
    }

    @Override
    public String logLocation(int i) {
      return i < containers.size() && containers.get(i).getContainerId() != null
          ? "docker logs " + containers.get(i).getContainerId() : "(container not created)";
    }

    @Override
    public String diagnostics(int i) {
      if (i >= containers.size() || containers.get(i).getContainerId() == null) {
        return "--- member " + i + ": container not created";
      }
      String logs;
      try {
        String all = containers.get(i).getLogs();
        String[] lines = all.split("\n");
        logs = String.join("\n", Arrays.asList(lines).subList(Math.max(0, lines.length - LOG_TAIL_LINES), lines.length));
      } catch (RuntimeException e) {
        logs = "(logs unavailable: " + e + ")";
      }
      return "--- member " + i + " (" + logLocation(i) + "), last lines:\n" + logs;
    }

    @Override
    public boolean keepsLogs() {
      return false;
    }

    @Override
    public void close(boolean keepLogs) {
      for (GenericContainer<?> container : containers) {
        try {
          container.stop(); // removes the container and its data
        } catch (RuntimeException e) {
          System.err.println("[EtcdCluster] could not remove container: " + e);
        }
      }
      network.close();
    }
  }

  /**
   * Lets {@link GenericContainer#start()} return as soon as the container runs. Readiness is
   * checked by {@link #awaitHealthy} instead: the first member cannot become healthy before its
   * peers exist, so any per-container readiness wait would deadlock the sequential start.
   */
  private static final class ReturnWhenRunning implements WaitStrategy {
    @Override
    public void waitUntilReady(WaitStrategyTarget target) {
      // Intentionally returns at once; see the class comment.
    }

    @Override
    public WaitStrategy withStartupTimeout(Duration startupTimeout) {
      return this;
    }
  }
}
