package io.shardmap.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.stream.Collectors;
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

  /** The shared cluster, and the shutdown hook that closes every cluster still open at exit. */
  private static final FixtureRegistry<EtcdCluster> REGISTRY = new FixtureRegistry<>("etcd-fixture-shutdown",
      "EtcdCluster", "the shared etcd cluster", "cluster", "member", "members of an external etcd cluster ("
          + ENDPOINTS_ENV + ") cannot be stopped or started; check canControlMembers() and skip");

  private final Backend backend;
  private final HttpClient http;
  private final FixtureLifecycle lifecycle;
  /** Members frozen by {@link #pauseMember} and not yet resumed, stopped or restarted. */
  private final boolean[] paused;

  private EtcdCluster(Backend backend, boolean isShared) {
    this.backend = backend;
    this.http = newHttpClient();
    this.paused = new boolean[backend.size()];
    this.lifecycle = new FixtureLifecycle(REGISTRY, this, backend, isShared); // registers; keep last
  }

  /**
   * The JVM-wide cluster ({@value #SHARED_MEMBERS} members when this class starts it). The first
   * call starts it and waits until it is healthy; later calls return the same instance. If
   * starting failed, every later call fails with the same cause instead of trying again.
   */
  public static EtcdCluster shared() {
    return REGISTRY.shared(() -> create(SHARED_MEMBERS, true));
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
      return external(external, isShared);
    }
    Path binary = findLocalBinary();
    if (binary != null) {
      return startLocal(binary, members, isShared);
    }
    if (!Docker.available()) {
      throw new IllegalStateException("no etcd available for tests: set " + ENDPOINTS_ENV
          + " to an existing cluster, install etcd (on the PATH, /usr/bin/etcd, or " + BINARY_ENV
          + "), or run a Docker engine for Testcontainers");
    }
    return startContainers(members, isShared);
  }

  /**
   * A view of the running cluster at these comma-separated client URLs, as {@value #ENDPOINTS_ENV} names
   * one: its members cannot be stopped or started, and closing it leaves them running. Returns once the
   * cluster is healthy. Package-private so the external path is tested without setting the variable.
   */
  static EtcdCluster external(String commaSeparatedEndpoints, boolean isShared) {
    EtcdCluster cluster = new EtcdCluster(new ExternalBackend(commaSeparatedEndpoints), isShared);
    cluster.awaitHealthy(CLUSTER_START_TIMEOUT, false);
    return cluster;
  }

  private static EtcdCluster startLocal(Path binary, int members, boolean isShared) {
    IllegalStateException lastFailure = null;
    for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      LocalBackend backend = new LocalBackend(binary, members);
      EtcdCluster cluster = new EtcdCluster(backend, isShared);
      try {
        backend.launchAll();
        cluster.awaitHealthy(CLUSTER_START_TIMEOUT, true);
        return cluster;
      } catch (RuntimeException e) {
        boolean someoneDied = false;
        for (int i = 0; i < members; i++) {
          someoneDied |= !backend.isRunning(i);
        }
        cluster.lifecycle.markFailed();
        cluster.lifecycle.shutDown();
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
    try {
      backend.launchAll();
      cluster.awaitHealthy(CLUSTER_START_TIMEOUT.multipliedBy(4), true); // includes image pull
      return cluster;
    } catch (RuntimeException e) {
      cluster.lifecycle.markFailed();
      cluster.lifecycle.shutDown();
      throw e;
    }
  }

  /** Whether {@link #stopMember}/{@link #startMember} work; false for an external cluster. */
  public boolean canControlMembers() {
    return backend.canControl();
  }

  public int memberCount() {
    return backend.size();
  }

  /** Client URLs of all members, e.g. {@code http://127.0.0.1:23791}, including stopped ones. */
  public List<String> clientEndpoints() {
    return backend.clientEndpoints();
  }

  public String clientEndpoint(int member) {
    lifecycle.checkIndex(member);
    return backend.clientEndpoints().get(member);
  }

  /** Where each member's output goes, for humans reading a failure (external clusters have none here). */
  public String describeLogs() {
    return lifecycle.describeLogs();
  }

  /**
   * Kills member {@code i} without warning (SIGKILL or {@code docker kill}) and returns once it
   * has exited. Its data directory and ports are kept for {@link #startMember}. Does nothing if
   * the member is already stopped.
   *
   * @throws UnsupportedOperationException if {@link #canControlMembers()} is false
   */
  public synchronized void stopMember(int i) {
    lifecycle.requireControl(i);
    backend.stop(i);
    paused[i] = false;
  }

  /**
   * Freezes member {@code i} without closing anything: {@code SIGSTOP} of its process ({@code docker
   * pause} for a container). Its sockets stay open and the kernel keeps accepting connections and
   * bytes for it, but it answers nothing, neither clients nor peers: a hung machine, which a client
   * cannot tell from a slow one except by waiting. Undo with {@link #resumeMember}; {@link #close()}
   * and {@link #stopMember} also work on a paused member. Does nothing if it is already paused.
   *
   * @throws IllegalStateException if the member is not running
   * @throws UnsupportedOperationException if {@link #canControlMembers()} is false
   */
  public synchronized void pauseMember(int i) {
    lifecycle.requireControl(i);
    if (paused[i]) {
      return;
    }
    if (!backend.isRunning(i)) {
      throw new IllegalStateException("etcd member " + i + " is not running; cannot pause it\n" + backend.diagnostics(i));
    }
    backend.pause(i);
    paused[i] = true;
  }

  /**
   * Resumes a member frozen by {@link #pauseMember} ({@code SIGCONT}, {@code docker unpause}) and
   * returns at once; it catches up with its peers by itself (use {@link #awaitHealthy}). Does nothing
   * if the member is not paused.
   */
  public synchronized void resumeMember(int i) {
    lifecycle.requireControl(i);
    if (!paused[i]) {
      return;
    }
    backend.resume(i);
    paused[i] = false;
  }

  /** Whether member {@code i} is frozen by {@link #pauseMember}. */
  public synchronized boolean isPaused(int i) {
    lifecycle.checkIndex(i);
    return paused[i];
  }

  /**
   * The index of the member that is raft leader now, as the running, unpaused members report it
   * (etcd's maintenance status, {@code POST /v3/maintenance/status}); waits up to {@code timeout}
   * for one that every answering member agrees on, as during an election there is none.
   *
   * @throws IllegalStateException on timeout, with each member's last answer
   */
  public int leader(Duration timeout) {
    Instant deadline = Instant.now().plus(timeout);
    String[] last = new String[memberCount()];
    Arrays.fill(last, "not asked");
    while (true) {
      // member id (decimal, as etcd's JSON gateway prints uint64) -> index, and the leaders named.
      java.util.Map<String, Integer> ids = new java.util.HashMap<>();
      java.util.Set<String> leaders = new java.util.HashSet<>();
      for (int i = 0; i < memberCount(); i++) {
        if (!backend.isRunning(i) || isPaused(i)) {
          last[i] = "stopped or paused";
          continue;
        }
        last[i] = post(clientEndpoint(i) + "/v3/maintenance/status", "{}");
        String member = jsonString(last[i], "member_id");
        String leader = jsonString(last[i], "leader");
        if (last[i].startsWith("200 ") && member != null) {
          ids.put(member, i);
          leaders.add(leader == null ? "0" : leader);
        }
      }
      if (leaders.size() == 1 && ids.containsKey(leaders.iterator().next())) {
        return ids.get(leaders.iterator().next());
      }
      if (!Instant.now().isBefore(deadline)) {
        break;
      }
      FixtureSupport.sleep(POLL_INTERVAL, "etcd");
    }
    StringBuilder message = new StringBuilder("no etcd leader agreed on within " + timeout);
    for (int i = 0; i < memberCount(); i++) {
      message.append("\nmember ").append(i).append(": ").append(last[i]);
    }
    throw new IllegalStateException(message.toString());
  }

  /** The value of {@code "name":"..."} in a flat JSON answer, or null. */
  private static String jsonString(String json, String name) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"" + name + "\"\\s*:\\s*\"([^\"]*)\"").matcher(json);
    return m.find() ? m.group(1) : null;
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
    lifecycle.requireControl(i);
    if (backend.isRunning(i)) {
      return;
    }
    paused[i] = false;
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
        lifecycle.markFailed();
        throw new IllegalStateException("etcd member " + i + " exited while restarting\n"
            + backend.diagnostics(i));
      }
      last = quorum ? probeHealth(i) : probe(backend.metricsEndpoint(i) + "/metrics");
      if (quorum ? last.equals(HEALTHY) : last.startsWith("200")) {
        return;
      }
      FixtureSupport.sleep(POLL_INTERVAL, "etcd");
    }
    lifecycle.markFailed();
    throw new IllegalStateException("etcd member " + i + " did not " + (quorum ? "become healthy" : "serve metrics")
        + " within " + MEMBER_START_TIMEOUT + " after restart; last answer: " + last + "\n"
        + backend.diagnostics(i));
  }

  /**
   * Saves a snapshot of the cluster's data to {@code file} ({@code etcdctl snapshot save} against the
   * first running member, etcd's backup tool), and returns the etcd revision it holds. Local clusters
   * only.
   *
   * @throws UnsupportedOperationException for an external or container cluster
   */
  public synchronized long saveSnapshot(Path file) {
    LocalBackend local = localBackend("snapshot save");
    int member = -1;
    for (int i = 0; i < memberCount() && member < 0; i++) {
      member = backend.isRunning(i) ? i : -1;
    }
    if (member < 0) {
      throw new IllegalStateException("snapshot save needs a running member");
    }
    local.etcdctl("snapshot save", "--endpoints=" + clientEndpoint(member), "snapshot", "save", file.toString());
    String status = local.etcdctl("snapshot status", "snapshot", "status", file.toString(), "--write-out=json");
    // {"hash":...,"revision":34,"totalKey":...,"totalSize":...}
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"revision\":(\\d+)").matcher(status);
    if (!m.find()) {
      throw new IllegalStateException("etcdctl snapshot status printed no revision: " + status);
    }
    return Long.parseLong(m.group(1));
  }

  /**
   * Disaster recovery from a backup, as an operator does it: kills every member, restores each one
   * from {@code file} ({@code etcdctl snapshot restore}) into a fresh data directory, starts them on the
   * same ports, and returns once every member is healthy. The cluster's revision goes back to the
   * snapshot's. With {@code keepClusterToken} the restore reuses the cluster token, so the restored
   * cluster keeps its cluster id (etcd derives it from the token and the peer URLs); otherwise it gets a
   * new token and a new cluster id. Local clusters only.
   *
   * @throws UnsupportedOperationException for an external or container cluster
   */
  public synchronized void restoreSnapshot(Path file, boolean keepClusterToken) {
    LocalBackend local = localBackend("snapshot restore");
    for (int i = 0; i < memberCount(); i++) {
      backend.stop(i);
    }
    local.restore(file, keepClusterToken);
    for (int i = 0; i < memberCount(); i++) {
      backend.start(i);
    }
    awaitHealthy(CLUSTER_START_TIMEOUT, true);
  }

  private LocalBackend localBackend(String what) {
    if (backend instanceof LocalBackend local) {
      return local;
    }
    throw new UnsupportedOperationException(what + " needs a cluster of local etcd processes, not "
        + backend.description());
  }

  /** Whether member {@code i} is up; always true for an external cluster (it cannot be observed). */
  public boolean isRunning(int i) {
    lifecycle.checkIndex(i);
    return backend.isRunning(i);
  }

  /**
   * Waits until every running member (every endpoint, for an external cluster) reports healthy on
   * {@code GET /health}, which etcd answers positively only when it has a leader and no alarms.
   * Stopped and paused members are not waited for, but at least one member must be running.
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
        if (isPaused(i)) {
          last[i] = "paused";
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
      FixtureSupport.sleep(POLL_INTERVAL, "etcd");
    }
    if (failureKeepsLogs) {
      lifecycle.markFailed();
    }
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
    synchronized (this) {
      for (int i = 0; i < paused.length; i++) {
        if (paused[i]) {
          try {
            // A paused container cannot be killed; a stopped process could, but resuming costs nothing.
            backend.resume(i);
            paused[i] = false;
          } catch (RuntimeException e) {
            // Closing goes on: killing the member is what matters, and it reports its own failures.
          }
        }
      }
    }
    lifecycle.close();
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
    return send(HttpRequest.newBuilder(URI.create(url)).timeout(HTTP_TIMEOUT).GET().build(), url);
  }

  /** "STATUS BODY" for an answered POST of a JSON body, or the failure's description; never throws. */
  private String post(String url, String json) {
    return send(HttpRequest.newBuilder(URI.create(url)).timeout(HTTP_TIMEOUT)
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build(), url);
  }

  private String send(HttpRequest request, String url) {
    try {
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
    Path onPath = FixtureSupport.firstOnPath(
        dir -> Files.isRegularFile(dir.resolve("etcd")) && Files.isExecutable(dir.resolve("etcd")));
    if (onPath != null) {
      return onPath.resolve("etcd");
    }
    Path debian = Path.of("/usr/bin/etcd");
    return Files.isExecutable(debian) ? debian : null;
  }

  // ---------------------------------------------------------------- backends

  /**
   * One way of providing members (member i is server i). Implementations are not thread-safe;
   * EtcdCluster tests are sequential.
   */
  private interface Backend extends ServerBackend {
    List<String> clientEndpoints();

    /** Base URL of member i's metrics listener, which etcd serves before it can serve clients. */
    String metricsEndpoint(int i);

    /** Freezes running member i (SIGSTOP or docker pause) without closing its sockets. */
    void pause(int i);

    /** Resumes member i frozen by {@link #pause}. */
    void resume(int i);

    @Override
    default int size() {
      return clientEndpoints().size();
    }
  }

  private static final class ExternalBackend extends ExternalServers implements Backend {
    private final List<String> endpoints;

    ExternalBackend(String commaSeparated) {
      super("external cluster");
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
    public void pause(int i) {
      throw new UnsupportedOperationException("external cluster");
    }

    @Override
    public void resume(int i) {
      throw new UnsupportedOperationException("external cluster");
    }

    @Override
    public String diagnostics(int i) {
      return "member " + i + " is external (" + endpoints.get(i) + "); no logs available";
    }
  }

  private static final class LocalBackend implements Backend {
    private final Path binary;
    private final int size;
    private final Path root;
    private final int[] clientPorts;
    private final int[] peerPorts;
    private final int[] metricsPorts;
    private final ManagedProcess[] processes;
    private final List<String> endpoints;
    private String token = "shardmap-test-" + UUID.randomUUID();
    /** Incremented by each restore: member data goes to a fresh directory every time. */
    private int generation;

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
      this.processes = new ManagedProcess[size];
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
      String initialCluster = initialCluster();
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
      return root.resolve(name(i) + (generation == 0 ? "" : "-restored-" + generation) + ".etcd");
    }

    private String initialCluster() {
      StringBuilder b = new StringBuilder();
      for (int m = 0; m < size; m++) {
        b.append(m > 0 ? "," : "").append(name(m)).append("=http://127.0.0.1:").append(peerPorts[m]);
      }
      return b.toString();
    }

    /** Restores every member's data from {@code snapshot} into fresh directories; members must be stopped. */
    void restore(Path snapshot, boolean keepToken) {
      generation++;
      if (!keepToken) {
        token = "shardmap-test-restored-" + UUID.randomUUID();
      }
      for (int i = 0; i < size; i++) {
        etcdctl("snapshot restore of member " + i, "snapshot", "restore", snapshot.toString(),
            "--name=" + name(i), "--data-dir=" + dataDir(i), "--initial-cluster=" + initialCluster(),
            "--initial-cluster-token=" + token, "--initial-advertise-peer-urls=http://127.0.0.1:" + peerPorts[i]);
      }
    }

    /** Runs etcdctl (v3 API; next to the etcd binary, else on the PATH) and returns its output. */
    String etcdctl(String what, String... args) {
      Path sibling = binary.resolveSibling("etcdctl");
      List<String> command = new ArrayList<>();
      command.add(Files.isExecutable(sibling) ? sibling.toString() : "etcdctl");
      command.addAll(List.of(args));
      Path output = root.resolve("etcdctl.out");
      ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
          .redirectOutput(output.toFile());
      builder.environment().keySet().removeIf(key -> key.startsWith("ETCD"));
      builder.environment().put("ETCDCTL_API", "3");
      try {
        Process p = builder.start();
        if (!p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new IllegalStateException("etcdctl " + what + " did not finish within 60 s");
        }
        String text = Files.readString(output);
        if (p.exitValue() != 0) {
          throw new IllegalStateException("etcdctl " + what + " failed (exit " + p.exitValue() + "): "
              + String.join(" ", command) + "\n" + text);
        }
        return text;
      } catch (IOException e) {
        throw new UncheckedIOException("cannot run etcdctl for " + what, e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while running etcdctl for " + what, e);
      }
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
    public boolean canControl() {
      return true;
    }

    @Override
    public void stop(int i) {
      ManagedProcess process = processes[i];
      if (process == null || !process.isAlive()) {
        return;
      }
      process.kill(EXIT_TIMEOUT, "etcd member " + i);
    }

    @Override
    public void pause(int i) {
      processes[i].signal("STOP", "etcd member " + i);
    }

    @Override
    public void resume(int i) {
      processes[i].signal("CONT", "etcd member " + i);
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
      try {
        processes[i] = ManagedProcess.start(builder, log(i), "starting " + String.join(" ", command));
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
      ManagedProcess process = processes[i];
      String state = process == null ? "never started" : process.state();
      return "--- member " + i + " (" + state + "), log " + log(i) + ", last lines:\n"
          + FixtureSupport.tail(log(i), FixtureSupport.LOG_TAIL_LINES);
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
      FixtureSupport.deleteRecursively(root, keepLogs, REGISTRY.logTag);
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
  private static final class ContainerBackend extends ContainerServers implements Backend {
    private final int size;
    private final int[] hostPorts;
    private final List<String> endpoints;
    private final Network network;

    ContainerBackend(int size) {
      super(IMAGE_ENV, DEFAULT_IMAGE, "member", REGISTRY.logTag);
      this.size = size;
      this.hostPorts = FreePorts.allocate(2 * size); // client ports, then metrics ports
      List<String> urls = new ArrayList<>();
      for (int i = 0; i < size; i++) {
        urls.add("http://" + host.address() + ":" + hostPorts[i]);
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
        container.setPortBindings(List.of(host.binding(hostPorts[i], 2379), host.binding(hostPorts[size + i], 2381)));
        containers.add(container);
        container.start();
      }
    }

    private static String alias(int i) {
      return "etcd-" + i;
    }

    @Override
    public List<String> clientEndpoints() {
      return endpoints;
    }

    @Override
    public String metricsEndpoint(int i) {
      return "http://" + host.address() + ":" + hostPorts[size + i];
    }

    @Override
    public void stop(int i) {
      if (!isRunning(i)) {
        return;
      }
      // docker kill sends SIGKILL and, unlike GenericContainer.stop(), keeps the container and its data.
      Docker.kill(containers.get(i), "etcd member " + i, "etcd", EXIT_TIMEOUT, POLL_INTERVAL);
    }

    @Override
    public void pause(int i) {
      containers.get(i).getDockerClient().pauseContainerCmd(containers.get(i).getContainerId()).exec();
    }

    @Override
    public void resume(int i) {
      containers.get(i).getDockerClient().unpauseContainerCmd(containers.get(i).getContainerId()).exec();
    }

    @Override
    public void close(boolean keepLogs) {
      super.close(keepLogs);
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
