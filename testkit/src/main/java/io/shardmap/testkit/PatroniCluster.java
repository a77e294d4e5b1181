package io.shardmap.testkit;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One PostgreSQL shard managed by Patroni: {@code N} (default 2) Patroni nodes of one scope, on an
 * etcd the caller provides (Patroni's {@code etcd3} DCS, a fresh namespace per fixture so fixtures
 * sharing an etcd never see each other's keys).
 *
 * <p>Every node runs PostgreSQL 15 from {@value #PG_BIN} on 127.0.0.1 (trust authentication on
 * loopback, superuser {@code postgres}, replication user {@code replicator}), with synchronous
 * replication ({@code synchronous_mode: true}), {@code failsafe_mode: true} (a primary keeps
 * serving while etcd is unreachable if it can reach every member's REST API) and {@code
 * max_prepared_transactions = 64} (Shardmap's cross-shard commit needs prepared transactions).
 * Timing settings, in the cluster's dynamic configuration in etcd:
 *
 * <ul>
 *   <li>{@code ttl} {@value #TTL_SECONDS} s, {@code loop_wait} {@value #LOOP_WAIT_SECONDS} s:
 *       Patroni's documented minimums (newer Patroni refuses smaller values).
 *   <li>{@code retry_timeout} {@value #RETRY_TIMEOUT_SECONDS} s: above the minimum (3) so a slow,
 *       shared CI machine does not demote the primary on one slow etcd call, and within Patroni's
 *       rule {@code loop_wait + 2 * retry_timeout <= ttl}.
 *   <li>{@code primary_start_timeout} 0: when the primary's postmaster dies, fail over to the
 *       synchronous standby at once instead of restarting PostgreSQL in place (Patroni's default
 *       waits 300 s for the crashed primary to recover). With synchronous replication no
 *       acknowledged commit is lost by this.
 * </ul>
 *
 * <p>A killed postmaster is thus replaced by a promoted standby within about a second or two
 * (one {@code loop_wait} to notice, one more to take the leader key); a killed or partitioned
 * Patroni node only after {@code ttl}.
 *
 * <p>As root, Patroni (and so PostgreSQL) runs as the OS user {@code postgres} through {@code
 * setpriv}, which executes Patroni in place (unlike {@code runuser}, which forks and waits), so
 * signals sent to the child reach Patroni itself. Node {@code i}'s files live in {@code
 * node-i/} of a temporary directory: {@code patroni.yml}, {@code data/}, and {@code patroni.log}
 * (Patroni's and PostgreSQL's output), kept after {@link #close()} if anything failed.
 *
 * <p>Where Patroni keeps its keys (the layout Shardmap's directory follows) is described in
 * docs/patroni.md: {@code <namespace>/<scope>/leader} holds the leader's node name, {@code
 * <namespace>/<scope>/members/<name>} a JSON document with {@code conn_url}, {@code api_url},
 * {@code role}, {@code state}, {@code timeline}.
 */
public final class PatroniCluster implements AutoCloseable {

  public static final String PATRONI_BIN_ENV = "SHARDMAP_PATRONI_BIN";
  static final String PG_BIN = "/usr/lib/postgresql/15/bin";

  public static final int TTL_SECONDS = 20;
  static final int LOOP_WAIT_SECONDS = 1;
  static final int RETRY_TIMEOUT_SECONDS = 5;
  static final int MAX_PREPARED_TRANSACTIONS = 64;

  public static final String SUPERUSER = "postgres";
  public static final String REPLICATION_USER = "replicator";
  private static final String REPLICATION_PASSWORD = "replicator";

  private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
  private static final Duration STOP_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration HTTP_TIMEOUT = Duration.ofSeconds(5);
  private static final Duration POLL = Duration.ofMillis(50);
  private static final String LOG_TAG = "patroni-cluster";

  /** One Patroni member as its key in etcd describes it. */
  public record Member(String name, String host, int port, String role, String state, String apiUrl,
      long timeline) {
    /** Whether Patroni reports this member as the running primary ("master" in Patroni 3.0, "primary" later). */
    public boolean isPrimary() {
      return (role.equals("master") || role.equals("primary")) && state.equals("running");
    }
  }

  /** The holder of the leader key and where its PostgreSQL listens. */
  public record Leader(String name, String host, int port) {
    public String hostPort() {
      return host + ":" + port;
    }
  }

  private record Node(String name, int pgPort, int apiPort, Path dir) {}

  private final String scope;
  private final String namespace;
  private final List<String> etcdHosts;
  private final Path root;
  private final UserPrincipal runAs;
  private final Path patroni;
  private final Path patronictl;
  private final Map<String, Node> nodes = new LinkedHashMap<>();
  private final Map<String, ProcessHandle> processes = new LinkedHashMap<>();
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(HTTP_TIMEOUT).build();
  private boolean failed;
  private boolean closed;

  /**
   * Why Patroni-managed shards cannot run on this machine, or null if they can: Patroni (with its
   * etcd3 support) must be installed, PostgreSQL 15 server binaries present, and as root the OS
   * user {@code postgres} and {@code setpriv} must exist. Tests skip with this text as the reason.
   */
  public static String unavailableReason() {
    Path patroni = findPatroni();
    if (patroni == null) {
      return "Patroni is not installed (no patroni on the PATH or in " + PATRONI_BIN_ENV
          + "; on Debian: apt-get install patroni python3-etcd)";
    }
    if (!Files.isExecutable(Path.of(PG_BIN, "postgres")) || !Files.isExecutable(Path.of(PG_BIN, "initdb"))) {
      return "PostgreSQL 15 server binaries are missing in " + PG_BIN;
    }
    String interpreter = interpreterOf(patroni);
    if (interpreter != null) {
      String out = runQuietly(List.of(interpreter, "-c", "import patroni.dcs.etcd3"));
      if (out != null) {
        return "Patroni at " + patroni + " cannot load its etcd3 DCS (" + interpreter
            + " -c 'import patroni.dcs.etcd3'; on Debian install python3-etcd): " + out;
      }
    }
    if (isRoot()) {
      if (FixtureSupport.firstOnPath(dir -> Files.isExecutable(dir.resolve("setpriv"))) == null) {
        return "running as root needs setpriv (util-linux) to run Patroni as the postgres user";
      }
      try {
        Path.of("/").getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(SUPERUSER);
      } catch (IOException e) {
        return "running as root needs an OS user 'postgres' to run PostgreSQL as";
      }
    }
    return null;
  }

  /** A cluster of {@code nodes} nodes with scope {@code "shard"} on {@code etcd}. */
  public static PatroniCluster start(EtcdCluster etcd, int nodes) {
    return start(etcd.clientEndpoints(), "shard", nodes);
  }

  /**
   * Starts {@code nodes} Patroni nodes of {@code scope} under a fresh namespace on the etcd at
   * {@code etcdEndpoints} ({@code http://host:port}), and returns once one node holds the leader
   * key as a running primary and, with two or more nodes, a synchronous standby is streaming.
   *
   * @throws IllegalStateException if {@link #unavailableReason()} is not null, or the cluster did
   *     not come up within {@link #START_TIMEOUT} (the message quotes every node's log)
   */
  public static PatroniCluster start(List<String> etcdEndpoints, String scope, int nodes) {
    if (nodes < 1) {
      throw new IllegalArgumentException("nodes must be at least 1: " + nodes);
    }
    if (scope == null || !scope.matches("[a-z][a-z0-9_-]*")) {
      throw new IllegalArgumentException("scope must match [a-z][a-z0-9_-]*, got: " + scope);
    }
    if (etcdEndpoints.isEmpty()) {
      throw new IllegalArgumentException("etcdEndpoints is empty");
    }
    String reason = unavailableReason();
    if (reason != null) {
      throw new IllegalStateException("cannot start a Patroni cluster: " + reason);
    }
    PatroniCluster cluster = new PatroniCluster(etcdEndpoints, scope);
    try {
      for (int i = 0; i < nodes; i++) {
        cluster.createNode("node" + i);
      }
      for (String name : cluster.nodes.keySet()) {
        cluster.startNode(name);
      }
      cluster.awaitLeader(START_TIMEOUT);
      if (nodes > 1) {
        cluster.awaitSyncStandby(START_TIMEOUT);
      }
      return cluster;
    } catch (RuntimeException e) {
      cluster.failed = true;
      try {
        cluster.close();
      } catch (RuntimeException closing) {
        e.addSuppressed(closing);
      }
      throw e;
    }
  }

  private PatroniCluster(List<String> etcdEndpoints, String scope) {
    this.scope = scope;
    this.namespace = "/shardmap-patroni-" + UUID.randomUUID().toString().substring(0, 8);
    this.etcdHosts = etcdEndpoints.stream().map(e -> e.replaceFirst("^https?://", "")).toList();
    this.patroni = findPatroni();
    this.patronictl = patroni.resolveSibling("patronictl");
    try {
      Path base = Path.of(System.getProperty("java.io.tmpdir"));
      boolean root = isRoot();
      if (root && !traversableByOthers(base)) {
        base = Path.of("/tmp"); // the postgres user must reach its data directory
      }
      this.root = Files.createTempDirectory(base, "shardmap-patroni-");
      this.runAs = root ? base.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(SUPERUSER) : null;
      Files.setPosixFilePermissions(this.root, java.util.EnumSet.of(PosixFilePermission.OWNER_READ,
          PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OTHERS_EXECUTE,
          PosixFilePermission.GROUP_EXECUTE));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot prepare a directory for Patroni", e);
    }
    Runtime.getRuntime().addShutdownHook(new Thread(this::closeQuietly, "patroni-cluster-shutdown"));
  }

  // ---------------------------------------------------------------- accessors

  public String scope() {
    return scope;
  }

  /** Patroni's namespace, e.g. {@code /shardmap-patroni-1a2b3c4d} (no trailing slash). */
  public String namespace() {
    return namespace;
  }

  /** The etcd key prefix of this cluster: {@code <namespace>/<scope>/}. */
  public String keyPrefix() {
    return namespace + "/" + scope + "/";
  }

  public List<String> nodeNames() {
    return List.copyOf(nodes.keySet());
  }

  public int restApiPort(String node) {
    return node(node).apiPort();
  }

  public int postgresPort(String node) {
    return node(node).pgPort();
  }

  /** A connectable instance for {@code node}'s PostgreSQL, database {@code postgres}, whatever its role. */
  public PgInstance instance(String node) {
    return new PgInstance("127.0.0.1", node(node).pgPort(), "postgres", SUPERUSER, "");
  }

  /**
   * The current primary's instance, after {@link #awaitLeader} (so it may be briefly stale
   * right after a failover the caller did not wait for).
   */
  public PgInstance primary(Duration timeout) {
    return instance(awaitLeader(timeout).name());
  }

  // ---------------------------------------------------------------- state from etcd

  /** The holder of the leader key right now, from etcd; empty while nobody holds it. */
  public Optional<Leader> leader() {
    String name = etcdGet(keyPrefix() + "leader");
    if (name == null) {
      return Optional.empty();
    }
    for (Member member : members()) {
      if (member.name().equals(name)) {
        return Optional.of(new Leader(name, member.host(), member.port()));
      }
    }
    Node node = nodes.get(name); // member key not written yet: fall back to the configuration
    return node == null ? Optional.empty() : Optional.of(new Leader(name, "127.0.0.1", node.pgPort()));
  }

  /** Every member key under {@code <prefix>members/}, as etcd holds it now (expired members are gone). */
  public List<Member> members() {
    List<Member> members = new ArrayList<>();
    for (Map.Entry<String, String> entry : etcdRange(keyPrefix() + "members/").entrySet()) {
      String name = entry.getKey().substring((keyPrefix() + "members/").length());
      JsonObject json = JsonParser.parseString(entry.getValue()).getAsJsonObject();
      URI conn = URI.create(json.get("conn_url").getAsString());
      members.add(new Member(name, conn.getHost(), conn.getPort(), string(json, "role"), string(json, "state"),
          string(json, "api_url"), json.has("timeline") ? json.get("timeline").getAsLong() : 0));
    }
    return members;
  }

  /** The synchronous standby named by the {@code sync} key, if any. */
  public Optional<String> syncStandby() {
    String sync = etcdGet(keyPrefix() + "sync");
    if (sync == null) {
      return Optional.empty();
    }
    JsonElement standby = JsonParser.parseString(sync).getAsJsonObject().get("sync_standby");
    return standby == null || standby.isJsonNull() ? Optional.empty() : Optional.of(standby.getAsString());
  }

  /**
   * Waits until a node holds the leader key and its own REST API reports it as a running primary,
   * so its PostgreSQL accepts writes.
   */
  public Leader awaitLeader(Duration timeout) {
    return awaitLeader(null, timeout);
  }

  /** As {@link #awaitLeader(Duration)}, for a leader other than {@code previous} (a failover's outcome). */
  public Leader awaitLeader(String previous, Duration timeout) {
    Instant deadline = Instant.now().plus(timeout);
    String last = "no leader key";
    while (true) {
      try {
        Optional<Leader> leader = leader();
        if (leader.isPresent() && !leader.get().name().equals(previous)) {
          JsonObject status = restGet(leader.get().name(), "/patroni");
          String role = string(status, "role");
          if ((role.equals("master") || role.equals("primary")) && string(status, "state").equals("running")) {
            return leader.get();
          }
          last = leader.get().name() + " holds the key, its REST API says role=" + role;
        } else {
          last = leader.map(l -> "leader is still " + l.name()).orElse("no leader key");
        }
      } catch (RuntimeException e) {
        last = e.toString();
      }
      if (!Instant.now().isBefore(deadline)) {
        failed = true;
        throw new IllegalStateException("no leader" + (previous == null ? "" : " other than " + previous)
            + " within " + timeout + " in " + keyPrefix() + " (" + last + ")\n" + diagnostics());
      }
      FixtureSupport.sleep(POLL, "Patroni");
    }
  }

  /** Waits until the {@code sync} key names a standby that the leader reports as streaming synchronously. */
  public String awaitSyncStandby(Duration timeout) {
    Instant deadline = Instant.now().plus(timeout);
    String last = "no sync standby";
    while (true) {
      try {
        Optional<Leader> leader = leader();
        Optional<String> standby = syncStandby();
        if (leader.isPresent() && standby.isPresent()) {
          JsonObject status = restGet(leader.get().name(), "/patroni");
          JsonArray replication = status.has("replication") ? status.getAsJsonArray("replication") : new JsonArray();
          for (JsonElement element : replication) {
            JsonObject r = element.getAsJsonObject();
            if (standby.get().equals(string(r, "application_name")) && string(r, "state").equals("streaming")
                && string(r, "sync_state").equals("sync")) {
              return standby.get();
            }
          }
          last = "sync key names " + standby.get() + ", leader " + leader.get().name() + " replicates " + replication;
        }
      } catch (RuntimeException e) {
        last = e.toString();
      }
      if (!Instant.now().isBefore(deadline)) {
        failed = true;
        throw new IllegalStateException("no synchronous standby within " + timeout + " (" + last + ")\n"
            + diagnostics());
      }
      FixtureSupport.sleep(POLL, "Patroni");
    }
  }

  // ---------------------------------------------------------------- faults and operations

  /**
   * SIGKILLs {@code node}'s postmaster (its PostgreSQL dies at once, Patroni stays up) and returns
   * once the process is gone. On the primary this triggers a failover to the synchronous standby
   * (primary_start_timeout 0).
   *
   * @return the killed postmaster's pid
   */
  public long killPostmaster(String node) {
    long pid = postmasterPid(node(node)).orElseThrow(() -> new IllegalStateException(node
        + " has no running postmaster (no readable postmaster.pid)"));
    ProcessHandle handle = ProcessHandle.of(pid)
        .orElseThrow(() -> new IllegalStateException(node + "'s postmaster " + pid + " is not running"));
    handle.destroyForcibly();
    if (!awaitExit(handle, Duration.ofSeconds(10))) {
      throw new IllegalStateException(node + "'s postmaster " + pid + " still alive 10 s after SIGKILL");
    }
    return pid;
  }

  /**
   * Stops {@code node}'s Patroni with SIGTERM, as an operator would: Patroni shuts PostgreSQL down
   * and, if it was the leader, hands the leader key over. Returns once Patroni has exited.
   */
  public synchronized void stopNode(String node) {
    ProcessHandle process = processes.remove(node(node).name());
    if (process == null || !process.isAlive()) {
      return;
    }
    process.destroy();
    if (!awaitExit(process, STOP_TIMEOUT)) {
      process.destroyForcibly();
      failed = true;
      throw new IllegalStateException("Patroni " + node + " still running " + STOP_TIMEOUT + " after SIGTERM\n"
          + diagnostics());
    }
  }

  /** Starts {@code node}'s Patroni again (or the first time); it rejoins as a replica unless it can lead. */
  public synchronized void startNode(String node) {
    Node n = node(node);
    ProcessHandle running = processes.get(n.name());
    if (running != null && running.isAlive()) {
      return;
    }
    List<String> command = new ArrayList<>();
    if (runAs != null) {
      command.addAll(List.of("setpriv", "--reuid=" + SUPERUSER, "--regid=" + SUPERUSER, "--init-groups"));
    }
    command.add(patroni.toString());
    command.add(n.dir().resolve("patroni.yml").toString());
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().keySet().removeIf(key -> key.startsWith("PG") || key.startsWith("PATRONI"));
    builder.environment().put("HOME", n.dir().toString());
    try {
      processes.put(n.name(), ManagedProcess.start(builder, log(n), String.join(" ", command)).handle());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start Patroni " + node, e);
    }
  }

  /**
   * A planned switchover to {@code candidate} through the leader's REST API ({@code POST
   * /switchover}, what {@code patronictl switchover} does), returning once {@code candidate}
   * is the running primary.
   */
  public Leader switchover(String candidate, Duration timeout) {
    node(candidate);
    Leader current = awaitLeader(timeout);
    if (current.name().equals(candidate)) {
      throw new IllegalArgumentException(candidate + " is already the leader");
    }
    JsonObject body = new JsonObject();
    body.addProperty("leader", current.name());
    body.addProperty("candidate", candidate);
    HttpResponse<String> response = send(HttpRequest.newBuilder(api(current.name(), "/switchover"))
        .timeout(timeout).POST(HttpRequest.BodyPublishers.ofString(body.toString())).build());
    if (response.statusCode() != 200) {
      failed = true;
      throw new IllegalStateException("switchover " + current.name() + " -> " + candidate + " refused: HTTP "
          + response.statusCode() + " " + response.body());
    }
    Leader leader = awaitLeader(current.name(), timeout);
    if (!leader.name().equals(candidate)) {
      throw new IllegalStateException("switchover to " + candidate + " made " + leader.name() + " the leader");
    }
    return leader;
  }

  /** Runs {@code patronictl -c <node's config> <args>} (e.g. {@code list}) and returns its output. */
  public String patronictl(String node, String... args) {
    List<String> command = new ArrayList<>(List.of(patronictl.toString(), "-c",
        node(node).dir().resolve("patroni.yml").toString()));
    command.addAll(List.of(args));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
    builder.environment().keySet().removeIf(key -> key.startsWith("PG") || key.startsWith("PATRONI"));
    try {
      Process process = builder.start();
      process.getOutputStream().close();
      String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
        process.destroyForcibly();
        throw new IllegalStateException("patronictl " + String.join(" ", args) + " failed: " + out);
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted running patronictl", e);
    }
  }

  /** Every node's log location and last lines, for failure messages. */
  public String diagnostics() {
    StringBuilder out = new StringBuilder();
    for (Node node : nodes.values()) {
      out.append("--- ").append(node.name()).append(" ").append(log(node)).append(", last lines:\n")
          .append(FixtureSupport.tail(log(node), FixtureSupport.LOG_TAIL_LINES)).append('\n');
    }
    return out.toString();
  }

  /**
   * Kills every Patroni and PostgreSQL process of this cluster, deletes its keys from etcd and its
   * files (logs stay if anything failed). Idempotent.
   */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    RuntimeException first = null;
    for (ProcessHandle process : processes.values()) {
      process.destroyForcibly(); // Patroni first, so it does not restart PostgreSQL behind our back
    }
    for (ProcessHandle process : processes.values()) {
      awaitExit(process, Duration.ofSeconds(10));
    }
    processes.clear();
    for (Node node : nodes.values()) {
      // A killed postmaster leaves its pid file behind: only a live pid needs killing.
      Optional<ProcessHandle> postmaster = postmasterPid(node).flatMap(ProcessHandle::of);
      if (postmaster.isPresent()) {
        postmaster.get().destroyForcibly();
        if (!awaitExit(postmaster.get(), Duration.ofSeconds(10))) {
          RuntimeException e = new IllegalStateException(node.name() + "'s postmaster "
              + postmaster.get().pid() + " still alive 10 s after SIGKILL");
          first = first == null ? e : first;
        }
      }
    }
    try {
      etcdDeletePrefix(keyPrefix());
    } catch (RuntimeException e) {
      System.err.println("[" + LOG_TAG + "] could not delete " + keyPrefix() + " from etcd: " + e.getMessage());
    }
    if (failed) {
      System.err.println("[" + LOG_TAG + "] keeping logs under " + root);
    }
    FixtureSupport.deleteRecursively(root, failed, LOG_TAG);
    if (first != null) {
      throw first;
    }
  }

  private void closeQuietly() {
    try {
      close();
    } catch (RuntimeException e) {
      System.err.println("[" + LOG_TAG + "] closing at exit: " + e.getMessage());
    }
  }

  // ---------------------------------------------------------------- internals

  private Node node(String name) {
    Node node = nodes.get(name);
    if (node == null) {
      throw new IllegalArgumentException("no node " + name + " in " + nodes.keySet());
    }
    return node;
  }

  private static Path log(Node node) {
    return node.dir().resolve("patroni.log");
  }

  private void createNode(String name) {
    int[] ports = FreePorts.allocate(2);
    Node node = new Node(name, ports[0], ports[1], root.resolve(name));
    try {
      Files.createDirectories(node.dir());
      Files.writeString(node.dir().resolve("patroni.yml"), config(node), StandardCharsets.UTF_8);
      Files.writeString(log(node), "", StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    chown(node.dir());
    chown(node.dir().resolve("patroni.yml"));
    chown(log(node));
    nodes.put(name, node);
  }

  /** The node's Patroni configuration; the bootstrap.dcs part becomes the cluster's dynamic configuration. */
  private String config(Node node) {
    String hosts = String.join(", ", etcdHosts.stream().map(h -> "'" + h + "'").toList());
    return String.join("\n",
        "scope: " + scope,
        "namespace: " + namespace,
        "name: " + node.name(),
        "log:",
        "  level: INFO",
        "restapi:",
        "  listen: 127.0.0.1:" + node.apiPort(),
        "  connect_address: 127.0.0.1:" + node.apiPort(),
        "etcd3:",
        "  hosts: [" + hosts + "]",
        "bootstrap:",
        "  dcs:",
        "    ttl: " + TTL_SECONDS,
        "    loop_wait: " + LOOP_WAIT_SECONDS,
        "    retry_timeout: " + RETRY_TIMEOUT_SECONDS,
        "    primary_start_timeout: 0",
        "    maximum_lag_on_failover: 1048576",
        "    synchronous_mode: true",
        "    failsafe_mode: true",
        "    postgresql:",
        "      use_pg_rewind: true",
        "      parameters:",
        "        max_prepared_transactions: " + MAX_PREPARED_TRANSACTIONS,
        "        wal_level: logical",
        "        max_wal_senders: 16",
        "        max_replication_slots: 16",
        "        wal_log_hints: 'on'",
        // As in PostgresFixture: commits still reach the OS before returning, so killed servers
        // keep them; only an OS crash could lose data, which these tests never cause.
        "        fsync: 'off'",
        // pg_rewind refuses a source without full page writes: a killed primary whose WAL went past
        // its standby's could not rejoin.
        "        full_page_writes: 'on'",
        "  initdb:",
        "  - encoding: UTF8",
        "  - locale: C",
        "  - no-sync",
        "postgresql:",
        "  listen: 127.0.0.1:" + node.pgPort(),
        "  connect_address: 127.0.0.1:" + node.pgPort(),
        "  data_dir: " + node.dir().resolve("data"),
        "  bin_dir: " + PG_BIN,
        "  pgpass: " + node.dir().resolve("pgpass"),
        "  authentication:",
        "    superuser:",
        "      username: " + SUPERUSER,
        "    replication:",
        "      username: " + REPLICATION_USER,
        "      password: " + REPLICATION_PASSWORD,
        "    rewind:",
        "      username: " + SUPERUSER,
        "  pg_hba:",
        "  - local all all trust",
        "  - host all all 127.0.0.1/32 trust",
        "  - host replication all 127.0.0.1/32 trust",
        "  parameters:",
        // Our own socket directory: the packaged default may be missing or belong to another cluster.
        "    unix_socket_directories: '" + node.dir() + "'",
        "");
  }

  /** The pid in the node's postmaster.pid (possibly stale after a kill), or empty if there is none. */
  private static Optional<Long> postmasterPid(Node node) {
    Path pidFile = node.dir().resolve("data").resolve("postmaster.pid");
    try {
      return Optional.of(Long.parseLong(Files.readAllLines(pidFile, StandardCharsets.UTF_8).get(0).strip()));
    } catch (IOException | RuntimeException missingOrPartial) {
      return Optional.empty();
    }
  }

  /** Whether {@code process} exited within {@code timeout}. */
  private static boolean awaitExit(ProcessHandle process, Duration timeout) {
    try {
      process.onExit().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      return true;
    } catch (TimeoutException e) {
      return false;
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for " + process.pid(), e);
    }
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

  private URI api(String node, String path) {
    return URI.create("http://127.0.0.1:" + node(node).apiPort() + path);
  }

  private JsonObject restGet(String node, String path) {
    HttpResponse<String> response = send(HttpRequest.newBuilder(api(node, path)).timeout(HTTP_TIMEOUT).GET().build());
    // /patroni answers 503 on a replica or a stopped PostgreSQL, still with the status body.
    return JsonParser.parseString(response.body()).getAsJsonObject();
  }

  private HttpResponse<String> send(HttpRequest request) {
    try {
      return http.send(request, HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new UncheckedIOException(request.uri() + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted calling " + request.uri(), e);
    }
  }

  // etcd v3 through its JSON gateway (what Patroni itself uses), so the fixture needs no gRPC client.

  private String etcdGet(String key) {
    Map<String, String> kvs = etcdCall("/v3/kv/range", key, null);
    return kvs.get(key);
  }

  private Map<String, String> etcdRange(String prefix) {
    return etcdCall("/v3/kv/range", prefix, prefixEnd(prefix));
  }

  private void etcdDeletePrefix(String prefix) {
    etcdCall("/v3/kv/deleterange", prefix, prefixEnd(prefix));
  }

  private Map<String, String> etcdCall(String path, String key, String rangeEnd) {
    JsonObject body = new JsonObject();
    body.addProperty("key", b64(key));
    if (rangeEnd != null) {
      body.addProperty("range_end", b64(rangeEnd));
    }
    RuntimeException last = null;
    for (String host : etcdHosts) {
      try {
        HttpResponse<String> response = send(HttpRequest.newBuilder(URI.create("http://" + host + path))
            .timeout(HTTP_TIMEOUT).POST(HttpRequest.BodyPublishers.ofString(body.toString())).build());
        if (response.statusCode() != 200) {
          last = new IllegalStateException("etcd " + host + path + ": HTTP " + response.statusCode() + " "
              + response.body());
          continue;
        }
        Map<String, String> kvs = new LinkedHashMap<>();
        JsonObject json = JsonParser.parseString(response.body()).getAsJsonObject();
        if (json.has("kvs")) {
          for (JsonElement element : json.getAsJsonArray("kvs")) {
            JsonObject kv = element.getAsJsonObject();
            kvs.put(unb64(kv.get("key").getAsString()), kv.has("value") ? unb64(kv.get("value").getAsString()) : "");
          }
        }
        return kvs;
      } catch (RuntimeException e) {
        last = e;
      }
    }
    throw new IllegalStateException("no etcd endpoint of " + etcdHosts + " answered " + path, last);
  }

  private static String prefixEnd(String prefix) {
    char last = prefix.charAt(prefix.length() - 1);
    return prefix.substring(0, prefix.length() - 1) + (char) (last + 1);
  }

  private static String b64(String s) {
    return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
  }

  private static String unb64(String s) {
    return new String(Base64.getDecoder().decode(s), StandardCharsets.UTF_8);
  }

  private static String string(JsonObject json, String field) {
    JsonElement value = json.get(field);
    return value == null || value.isJsonNull() ? "" : value.getAsString();
  }

  // ---------------------------------------------------------------- discovery

  private static Path findPatroni() {
    String configured = System.getenv(PATRONI_BIN_ENV);
    if (configured != null && !configured.isBlank()) {
      Path path = Path.of(configured.strip());
      return Files.isExecutable(path) ? path : null;
    }
    Path dir = FixtureSupport.firstOnPath(d -> Files.isExecutable(d.resolve("patroni"))
        && Files.isExecutable(d.resolve("patronictl")));
    return dir == null ? null : dir.resolve("patroni");
  }

  /** The interpreter of a {@code #!} script, or null. */
  private static String interpreterOf(Path script) {
    try (var reader = Files.newBufferedReader(script, StandardCharsets.ISO_8859_1)) {
      String first = reader.readLine();
      if (first == null || !first.startsWith("#!")) {
        return null;
      }
      String[] parts = first.substring(2).strip().split("\\s+");
      return parts[0].endsWith("/env") && parts.length > 1 ? parts[1] : parts[0];
    } catch (IOException e) {
      return null;
    }
  }

  /** Runs a short check; null if it exited 0 within 30 s, else its output. */
  private static String runQuietly(List<String> command) {
    try {
      Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
      process.getOutputStream().close();
      String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        return "timed out";
      }
      return process.exitValue() == 0 ? null : out;
    } catch (IOException e) {
      return e.toString();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
  }

  private static boolean isRoot() {
    try {
      Path probe = Files.createTempFile("shardmap-patroni-probe-", "");
      try {
        return Integer.valueOf(0).equals(Files.getAttribute(probe, "unix:uid"));
      } finally {
        Files.delete(probe);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot tell whether this JVM runs as root", e);
    }
  }

  private static boolean traversableByOthers(Path dir) throws IOException {
    for (Path p = dir.toAbsolutePath(); p != null; p = p.getParent()) {
      if (!Files.getPosixFilePermissions(p).contains(PosixFilePermission.OTHERS_EXECUTE)) {
        return false;
      }
    }
    return true;
  }
}
