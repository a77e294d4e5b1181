package io.shardmap.bench;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.DataOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.PatroniCluster;
import io.shardmap.testkit.PatroniCluster.Leader;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Write outage of a Patroni shard's failover: writes through {@link ShardmapData} (the map follows Patroni's
 * keys, the SDK buffers writes until the map names the new primary) against the same writes through PgJDBC's
 * multi-host URL with {@code targetServerType=primary} (the usual alternative, in a HikariCP pool sized like
 * the SDK's), both running at once against one 2-node Patroni cluster (primary + synchronous standby).
 *
 * <p>Each round SIGKILLs the primary's postmaster (or, with {@code --switchover}, asks Patroni's REST API for
 * a planned switchover) under both writers and measures, per writer: the write outage (the longest time
 * between two consecutive acknowledged writes), kill to the first acknowledged write that ended it, and
 * promotion (the standby's {@code pg_is_in_recovery()} turned false, polled every 5 ms) to that write. The
 * oracle: every acknowledged id of both writers is on the new primary. Each round waits until the old primary
 * has rejoined as the synchronous standby, so the next round fails over the other way.
 */
@Command(name = "failover", mixinStandardHelpOptions = true,
    description = {"Write outage of a Patroni shard's failover (SIGKILL of the primary's postmaster, or "
        + "--switchover): ShardmapData writers against PgJDBC multi-host targetServerType=primary writers, "
        + "same run.",
        "Prints per round and p50/max over rounds: kill -> first write, promotion -> first write, write outage, "
            + "failed writes, acknowledged writes missing on the new primary (must be 0)."})
public final class FailoverCommand implements Callable<Integer> {
  static final String KEYSPACE = "items";
  static final String SHARD = "p1";
  /** Ids of one round: round * ROUND_IDS + thread * THREAD_IDS + sequence, so no round reuses one. */
  static final long ROUND_IDS = 10_000_000L;
  static final long THREAD_IDS = 1_000_000L;
  static final long PROMOTION_POLL_MILLIS = 5;

  @Option(names = "--rounds", defaultValue = "5", description = "Failovers (1-50; default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--threads", defaultValue = "2", description = "Writer threads of each side, one write at a "
      + "time each (1-8; default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--switchover", description = "Planned switchovers (Patroni REST POST /switchover) instead of "
      + "SIGKILLing the primary's postmaster.")
  boolean switchover;

  @Option(names = "--steady-writes", defaultValue = "200", description = "Acknowledged writes of each side "
      + "before the fault (default: ${DEFAULT-VALUE}).")
  int steadyWrites;

  @Option(names = "--after-writes", defaultValue = "100", description = "Acknowledged writes of each side after "
      + "the new leader runs, before the round ends (default: ${DEFAULT-VALUE}).")
  int afterWrites;

  @Option(names = "--max-writes", defaultValue = "200000", description = "Write limit of each writer thread per "
      + "round (at most 1000000; default: ${DEFAULT-VALUE}).")
  int maxWrites;

  @Option(names = "--round-seconds", defaultValue = "180", description = "Time limit of the writers of one round "
      + "(default: ${DEFAULT-VALUE}).")
  int roundSeconds;

  @Option(names = "--wait-seconds", defaultValue = "60", description = "Bound of each wait: steady writes, the "
      + "new leader, writes again after it, the old primary rejoining as sync standby (default: "
      + "${DEFAULT-VALUE}).")
  int waitSeconds;

  @Option(names = "--connection-timeout-ms", description = "Pool connectionTimeout of both sides (default: "
      + "DataOptions' default, 5000).")
  Long connectionTimeoutMs;

  @Option(names = "--fsync", defaultValue = "true", arity = "1", description = "fsync on both PostgreSQL servers "
      + "(default true, as in production; the test fixture starts them with it off).")
  boolean fsync;

  @Option(names = "--etcd-endpoints", split = ",",
      description = "etcd on 127.0.0.1 to use; default: start --etcd-members local members.")
  List<String> etcdEndpoints = new ArrayList<>();

  @Option(names = "--etcd-members", defaultValue = "1", description = "Members of the etcd started here (1-5; "
      + "default: ${DEFAULT-VALUE}).")
  int etcdMembers;

  @Override
  public Integer call() throws Exception {
    Result r = run(System.out);
    return r.clean() ? 0 : 1;
  }

  /** Marks a figure not measured (the side did not recover, or the promotion was not seen). */
  public static final long NONE = Long.MIN_VALUE;

  /**
   * One side's figures of one round; times in ms, {@link #NONE} when not measured. Promotion to first write
   * may be slightly negative: the watcher polls every 5 ms.
   */
  public record Side(String writer, boolean recovered, long killToFirstWrite, long promotionToFirstWrite,
                     long outage, long acknowledged, long failed, String firstFailure, long missing) {}

  /** One failover: from which node to which, and both sides' figures. */
  public record Round(int round, String from, String to, long promotionMillis, long mapMillis, Side shardmap,
                      Side pgjdbc) {}

  /** Every round; {@link #clean()} when every side recovered in every round and no acknowledged write is missing. */
  public record Result(List<Round> rounds) {
    public boolean clean() {
      return rounds.stream().allMatch(r -> r.shardmap().recovered() && r.pgjdbc().recovered()
          && r.shardmap().missing() == 0 && r.pgjdbc().missing() == 0);
    }
  }

  /** The shard's primary port in the client's map, and when it last changed (System.nanoTime). */
  private final AtomicLong mapPort = new AtomicLong();
  private final AtomicLong mapChangedAt = new AtomicLong();

  public Result run(PrintStream out) throws Exception {
    if (rounds < 1 || rounds > 50 || threads < 1 || threads > 8 || steadyWrites < 1 || afterWrites < 1
        || maxWrites < steadyWrites + afterWrites || maxWrites > THREAD_IDS || roundSeconds < 1 || waitSeconds < 1) {
      throw new IllegalArgumentException("--rounds 1-50, --threads 1-8, --steady-writes and --after-writes >= 1, "
          + "--max-writes from steady + after writes to " + THREAD_IDS + ", --round-seconds and --wait-seconds >= 1");
    }
    String reason = PatroniCluster.unavailableReason();
    if (reason != null) {
      throw new IllegalStateException("failover needs Patroni: " + reason);
    }
    Duration wait = Duration.ofSeconds(waitSeconds);
    String fault = switchover ? "switchover" : "kill";
    out.println("failover | " + Report.environment());
    List<Round> results = new ArrayList<>();
    try (Closer closer = new Closer()) {
      LocalEtcd etcd = closer.add(LocalEtcd.start(etcdEndpoints, etcdMembers));
      PatroniCluster cluster = closer.add(PatroniCluster.start(etcd.endpoints(), "shard", 2));
      cluster.awaitSyncStandby(wait);
      configure(cluster, wait);
      try (Connection c = cluster.primary(wait).connect(); Statement s = c.createStatement()) {
        s.execute("create table items (id bigint primary key, writer int not null)");
        s.execute("create table baseline_items (id bigint primary key, writer int not null)");
      }
      String prefix = "/bench-failover-" + UUID.randomUUID().toString().substring(0, 8);
      DirectoryServer server = closer.add(DirectoryServer.start(ServerOptions.builder().listen("127.0.0.1", 0)
          .metrics(null, 0).etcdEndpoints(etcd.endpoints()).etcdPrefix(prefix).build()));
      register(server.port(), cluster);
      ShardmapClient client = closer.add(ShardmapClient.start(ClientOptions.builder()
          .targets("127.0.0.1:" + server.port()).keyspaces(KEYSPACE).build()));
      DataOptions.Builder ob = DataOptions.builder().user(PatroniCluster.SUPERUSER);
      if (connectionTimeoutMs != null) {
        ob.connectionTimeout(Duration.ofMillis(connectionTimeoutMs));
      }
      DataOptions options = ob.build();
      ShardmapData data = closer.add(ShardmapData.open(client, options));
      List<String> nodes = cluster.nodeNames();
      String url = "jdbc:postgresql://127.0.0.1:" + cluster.postgresPort(nodes.get(0)) + ",127.0.0.1:"
          + cluster.postgresPort(nodes.get(1)) + "/postgres?targetServerType=primary";
      HikariDataSource baseline = closer.add(baselinePool(url, options));
      // When the client's map names a new primary for the shard (the directory's Patroni follower wrote it).
      client.addListener((before, after, resync) -> {
        try {
          int port = client.shard(SHARD).primary().port();
          if (port != mapPort.get()) {
            mapPort.set(port);
            mapChangedAt.set(System.nanoTime());
          }
        } catch (RuntimeException e) {
          // not registered yet: nothing to time
        }
      });

      out.println("etcd:     " + etcd.description());
      out.println("cluster:  Patroni " + nodes + " (primary + synchronous standby, synchronous_mode, failsafe_mode; "
          + "ttl " + PatroniCluster.TTL_SECONDS + " s, loop_wait 1 s, retry_timeout 5 s, primary_start_timeout 0; "
          + "PostgreSQL 15, fsync " + (fsync ? "on" : "off") + ", full_page_writes on, synchronous_commit on) under "
          + cluster.keyPrefix());
      out.println("shardmap: DirectoryServer (default ServerOptions, its Patroni follower) registering shard " + SHARD
          + " from Patroni; ShardmapData with DataOptions defaults except user " + PatroniCluster.SUPERUSER
          + (connectionTimeoutMs == null ? "" : " and connectionTimeout")
          + " (pool " + options.maxPoolSize() + ", connectionTimeout " + options.connectionTimeout().toMillis()
          + " ms, validationTimeout " + options.validationTimeout().toMillis() + " ms, failoverBufferWindow "
          + options.failoverBufferWindow().toMillis() + " ms, failoverBufferSize " + options.failoverBufferSize()
          + ", failoverProbeInterval " + options.failoverProbeInterval().toMillis() + " ms); "
          + "inTransaction(insert into items)");
      out.println("pgjdbc:   HikariCP " + url + " (maximumPoolSize " + options.maxPoolSize() + ", minimumIdle "
          + options.minIdle() + ", connectionTimeout " + options.connectionTimeout().toMillis()
          + " ms, validationTimeout " + options.validationTimeout().toMillis() + " ms, like the SDK's pools; "
          + "PgJDBC defaults otherwise: hostRecheckSeconds 10, loadBalanceHosts false, connectTimeout 10 s, "
          + "socketTimeout 0, loginTimeout 0); a transaction inserting into baseline_items, retried at once with "
          + "the next id on failure");
      out.printf(Locale.ROOT, "rounds:   %d %s, %d writer thread(s) per side; per round: %d acknowledged writes "
              + "per side, promotion watcher (pg_is_in_recovery() every %d ms), %s, new leader, %d more writes per "
              + "side, old primary back as sync standby; each wait at most %d s, writers at most %,d writes per "
              + "thread or %d s%n", rounds, fault, threads, steadyWrites, PROMOTION_POLL_MILLIS,
          switchover ? "POST /switchover to the sync standby" : "SIGKILL of the primary's postmaster", afterWrites,
          waitSeconds, maxWrites, roundSeconds);
      out.println();
      for (int round = 1; round <= rounds; round++) {
        Round r = round(out, round, cluster, data, baseline, wait);
        results.add(r);
        printRound(out, r, fault);
      }
      out.println();
      out.println(summary(results, fault));
      long[] promo = results.stream().mapToLong(Round::promotionMillis).filter(v -> v != NONE).toArray();
      long[] map = results.stream().mapToLong(Round::mapMillis).filter(v -> v != NONE).toArray();
      out.println(fault + " -> promotion p50 " + p50(promo) + " ms, max " + max(promo) + " ms; " + fault
          + " -> the client's map names the new primary p50 " + p50(map) + " ms, max " + max(map) + " ms");
      out.println(fault + " -> first write: from the " + (switchover ? "switchover request" : "SIGKILL")
          + " to the acknowledged write that ended the side's longest gap between acknowledgements (the outage); "
          + "promotion: the standby answering pg_is_in_recovery() = false. p50 nearest-rank over rounds.");
      out.println("SDK failover stats: " + data.failoverStats());
      out.println("load average at the end: " + Report.loadAverage());
      Result result = new Result(List.copyOf(results));
      if (!result.clean()) {
        out.println("!!! NOT CLEAN: a side did not write again within " + waitSeconds + " s, or acknowledged writes "
            + "are missing on the new primary (see the rounds above) !!!");
      }
      return result;
    }
  }

  /**
   * Sets fsync as asked and full_page_writes on through Patroni's dynamic configuration (both reload without
   * a restart) and waits until both servers run with them. The fixture turns both off for speed; without
   * full_page_writes pg_rewind refuses to run, so an old primary whose WAL went past the standby's before the
   * kill could not rejoin.
   */
  private void configure(PatroniCluster cluster, Duration wait) throws Exception {
    String leader = cluster.awaitLeader(wait).name();
    String value = fsync ? "on" : "off";
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
            + cluster.restApiPort(leader) + "/config")).timeout(Duration.ofSeconds(10))
        .method("PATCH", HttpRequest.BodyPublishers.ofString("{\"postgresql\":{\"parameters\":{\"fsync\":\""
            + value + "\",\"full_page_writes\":\"on\"}}}")).build(), HttpResponse.BodyHandlers.ofString());
    if (response.statusCode() != 200) {
      throw new IllegalStateException("Patroni refused the configuration change: HTTP " + response.statusCode() + " "
          + response.body());
    }
    long deadline = System.nanoTime() + wait.toNanos();
    for (String node : cluster.nodeNames()) {
      while (!(value.equals(show(cluster, node, "fsync")) && "on".equals(show(cluster, node, "full_page_writes")))) {
        if (System.nanoTime() >= deadline) {
          throw new IllegalStateException(node + " did not apply fsync=" + value + ", full_page_writes=on within "
              + wait);
        }
        Thread.sleep(100);
      }
    }
  }

  private static String show(PatroniCluster cluster, String node, String setting) {
    try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement();
        ResultSet rs = s.executeQuery("show " + setting)) {
      rs.next();
      return rs.getString(1);
    } catch (SQLException e) {
      return null;
    }
  }

  private static void register(int port, PatroniCluster cluster) {
    ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    try {
      var admin = ShardMapAdminServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS);
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(SHARD)
          .setPatroni(PatroniSource.newBuilder().setNamespace(cluster.namespace()).setScope(cluster.scope())))
          .build());
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName(KEYSPACE)
          .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)
          .addTables(ShardedTable.newBuilder().setName("items").setKeyColumn("id"))).addRangeShards(SHARD).build());
    } finally {
      ch.shutdownNow();
    }
  }

  /** The alternative: one pool on the multi-host URL, configured like the SDK's primary pools. */
  static HikariDataSource baselinePool(String url, DataOptions o) {
    HikariConfig c = new HikariConfig();
    c.setPoolName("pgjdbc-multihost");
    c.setJdbcUrl(url);
    c.setUsername(o.user());
    c.setMaximumPoolSize(o.maxPoolSize());
    c.setMinimumIdle(Math.min(o.minIdle(), o.maxPoolSize()));
    c.setConnectionTimeout(o.connectionTimeout().toMillis());
    c.setValidationTimeout(o.validationTimeout().toMillis());
    c.setIdleTimeout(o.idleTimeout().toMillis());
    c.setMaxLifetime(o.maxLifetime().toMillis());
    c.setKeepaliveTime(o.keepaliveTime().toMillis());
    c.setInitializationFailTimeout(-1);
    return new HikariDataSource(c);
  }

  private Round round(PrintStream out, int round, PatroniCluster cluster, ShardmapData data,
      HikariDataSource baseline, Duration wait) throws Exception {
    Leader old = cluster.awaitLeader(wait);
    String standby = cluster.awaitSyncStandby(wait);
    long base = round * ROUND_IDS;
    Writer sdk = new Writer("shardmap", id -> data.inTransaction(KEYSPACE, id, c -> insert(c, "items", id)));
    Writer jdbc = new Writer("pgjdbc", id -> {
      try (Connection c = baseline.getConnection()) {
        c.setAutoCommit(false);
        insert(c, "baseline_items", id);
        c.commit();
      }
    });
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(roundSeconds);
    sdk.start(base, threads, maxWrites, deadline);
    jdbc.start(base, threads, maxWrites, deadline);
    AtomicLong promotedAt = new AtomicLong();
    long faultAt;
    Leader now;
    boolean sdkAgain;
    boolean jdbcAgain;
    try {
      awaitAcks(List.of(sdk, jdbc), steadyWrites, wait, "steady writes before the " + (switchover ? "switchover"
          : "kill"));
      Thread watcher = promotionWatcher(cluster, standby, promotedAt, wait);
      mapPort.set(cluster.postgresPort(old.name()));
      mapChangedAt.set(0);
      faultAt = System.nanoTime();
      sdk.faultAt(faultAt);
      jdbc.faultAt(faultAt);
      if (switchover) {
        cluster.switchover(standby, wait);
      } else {
        cluster.killPostmaster(old.name());
      }
      now = cluster.awaitLeader(old.name(), wait);
      watcher.join(wait.toMillis());
      watcher.interrupt();
      long sdkAfter = sdk.acked.size() + afterWrites;
      long jdbcAfter = jdbc.acked.size() + afterWrites;
      long until = System.nanoTime() + wait.toNanos();
      while ((sdk.acked.size() < sdkAfter || jdbc.acked.size() < jdbcAfter) && System.nanoTime() < until
          && !(sdk.done() && jdbc.done())) {
        Thread.sleep(10);
      }
      sdkAgain = sdk.acked.size() >= sdkAfter;
      jdbcAgain = jdbc.acked.size() >= jdbcAfter;
    } finally {
      sdk.stopAndJoin();
      jdbc.stopAndJoin();
    }
    Set<Long> sdkOnPrimary = idsOn(cluster, now.name(), "items", base);
    Set<Long> jdbcOnPrimary = idsOn(cluster, now.name(), "baseline_items", base);
    long promoted = promotedAt.get();
    long mapAt = mapChangedAt.get();
    Round r = new Round(round, old.name(), now.name(), promoted == 0 ? NONE : millis(promoted - faultAt),
        mapAt == 0 ? NONE : millis(mapAt - faultAt),
        sdk.side(promoted, sdkAgain, sdkOnPrimary), jdbc.side(promoted, jdbcAgain, jdbcOnPrimary));
    // The old primary rejoins as the synchronous standby (pg_rewind if its WAL went past the standby's), so
    // the next round fails over back to it. Should Patroni not manage within the bound, the node is rebuilt
    // from the new primary (patronictl reinit, a fresh base backup), and the round says so.
    if (!healed(cluster, old.name(), wait)) {
      out.println("  note: " + old.name() + " did not rejoin as sync standby within " + wait.toSeconds()
          + " s; rebuilt with patronictl reinit");
      cluster.patronictl(old.name(), "reinit", cluster.scope(), old.name(), "--force");
      if (!healed(cluster, old.name(), wait)) {
        throw new IllegalStateException(old.name() + " did not rejoin as sync standby, even after reinit\n"
            + cluster.diagnostics());
      }
    }
    return r;
  }

  /** Whether {@code node} became the synchronous standby within {@code wait}. */
  private static boolean healed(PatroniCluster cluster, String node, Duration wait) throws InterruptedException {
    long deadline = System.nanoTime() + wait.toNanos();
    while (System.nanoTime() < deadline) {
      try {
        if (cluster.awaitSyncStandby(Duration.ofNanos(Math.max(1, deadline - System.nanoTime()))).equals(node)) {
          return true;
        }
      } catch (IllegalStateException timedOut) {
        return false;
      }
      Thread.sleep(100);
    }
    return false;
  }

  private static Integer insert(Connection c, String table, long id) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("insert into " + table + " (id, writer) values (?, ?)")) {
      ps.setLong(1, id);
      ps.setInt(2, (int) (id % ROUND_IDS / THREAD_IDS));
      return ps.executeUpdate();
    }
  }

  private static Set<Long> idsOn(PatroniCluster cluster, String node, String table, long base) throws SQLException {
    Set<Long> ids = new HashSet<>();
    try (Connection c = cluster.instance(node).connect();
        PreparedStatement ps = c.prepareStatement("select id from " + table + " where id >= ? and id < ?")) {
      ps.setLong(1, base);
      ps.setLong(2, base + ROUND_IDS);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          ids.add(rs.getLong(1));
        }
      }
    }
    return ids;
  }

  private static void awaitAcks(List<Writer> writers, long atLeast, Duration wait, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + wait.toNanos();
    for (Writer w : writers) {
      while (w.acked.size() < atLeast) {
        if (System.nanoTime() >= deadline || w.done()) {
          throw new IllegalStateException("no " + what + " from " + w.name + " within " + wait + " ("
              + w.acked.size() + " acknowledged, " + w.failed.get() + " failed, first failure: " + w.firstFailure.get()
              + ")");
        }
        Thread.sleep(10);
      }
    }
  }

  /** Polls {@code node}'s PostgreSQL until it accepts writes; sets when, in System.nanoTime. Bounded by wait. */
  private static Thread promotionWatcher(PatroniCluster cluster, String node, AtomicLong promotedAt, Duration wait) {
    Thread t = new Thread(() -> {
      long deadline = System.nanoTime() + wait.toNanos();
      while (System.nanoTime() < deadline) {
        try (Connection c = cluster.instance(node).connect(); Statement s = c.createStatement()) {
          while (System.nanoTime() < deadline) {
            try (ResultSet rs = s.executeQuery("select pg_is_in_recovery()")) {
              rs.next();
              if (!rs.getBoolean(1)) {
                promotedAt.set(System.nanoTime());
                return;
              }
            }
            Thread.sleep(PROMOTION_POLL_MILLIS);
          }
        } catch (SQLException e) {
          try {
            Thread.sleep(PROMOTION_POLL_MILLIS);
          } catch (InterruptedException x) {
            return;
          }
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "promotion-watcher");
    t.setDaemon(true);
    t.start();
    return t;
  }

  static long millis(long nanos) {
    return TimeUnit.NANOSECONDS.toMillis(nanos);
  }

  /** One write of one id, in its own transaction; returns once acknowledged (committed). */
  @FunctionalInterface
  interface Write {
    void run(long id) throws SQLException;
  }

  /** Writer threads of one side, each inserting its own ids; records acknowledgements and their longest gap. */
  static final class Writer {
    final String name;
    final Write write;
    final Set<Long> acked = ConcurrentHashMap.newKeySet();
    final AtomicLong failed = new AtomicLong();
    final AtomicReference<String> firstFailure = new AtomicReference<>();
    final AtomicBoolean stop = new AtomicBoolean();
    final List<Thread> running = new ArrayList<>();
    private long lastAckNanos;
    /** When the fault was started; before that, gaps do not count (a pause before the fault is not the outage). */
    private long faultAtNanos = Long.MAX_VALUE;
    private long maxGapNanos;
    private long gapEndNanos;

    Writer(String name, Write write) {
      this.name = name;
      this.write = write;
    }

    /** Each thread stops after {@code maxWrites} attempts, at {@code deadline}, or at {@link #stopAndJoin}. */
    void start(long base, int threads, int maxWrites, long deadline) {
      for (int w = 0; w < threads; w++) {
        long first = base + w * THREAD_IDS;
        Thread t = new Thread(() -> {
          for (long seq = 0; seq < maxWrites && !stop.get() && System.nanoTime() < deadline; seq++) {
            long id = first + seq;
            try {
              write.run(id);
              acked.add(id);
              acknowledged(System.nanoTime());
            } catch (SQLException | RuntimeException e) {
              // The next attempt starts at once with the next id; an unknown-outcome commit keeps its id unused.
              failed.incrementAndGet();
              firstFailure.compareAndSet(null, e.toString());
            }
          }
        }, name + "-writer-" + w);
        t.setDaemon(true);
        running.add(t);
        t.start();
      }
    }

    boolean done() {
      return running.stream().noneMatch(Thread::isAlive);
    }

    synchronized void faultAt(long nanos) {
      faultAtNanos = nanos;
    }

    private synchronized void acknowledged(long now) {
      // The gap spanning the fault (it started before and ended after it) is the outage.
      if (lastAckNanos != 0 && now > faultAtNanos && now - lastAckNanos > maxGapNanos) {
        maxGapNanos = now - lastAckNanos;
        gapEndNanos = now;
      }
      lastAckNanos = Math.max(lastAckNanos, now);
    }

    void stopAndJoin() throws InterruptedException {
      stop.set(true);
      for (Thread t : running) {
        // A write in flight is bounded by the pools' connection timeout and the SDK's failover window.
        t.join(TimeUnit.SECONDS.toMillis(60));
        if (t.isAlive()) {
          throw new IllegalStateException(t.getName() + " still runs 60 s after stop");
        }
      }
    }

    /**
     * This round's figures: the longest gap that ended after the fault is the outage; the side recovered
     * when it wrote {@code afterWrites} more once the new leader ran ({@code wroteAgain}).
     */
    synchronized Side side(long promotedAt, boolean wroteAgain, Set<Long> onPrimary) {
      Set<Long> missing = new HashSet<>(acked);
      missing.removeAll(onPrimary);
      boolean recovered = wroteAgain && gapEndNanos != 0;
      return new Side(name, recovered, recovered ? millis(gapEndNanos - faultAtNanos) : NONE,
          recovered && promotedAt != 0 ? millis(gapEndNanos - promotedAt) : NONE,
          recovered ? millis(maxGapNanos) : NONE,
          acked.size(), failed.get(), firstFailure.get(), missing.size());
    }
  }

  private static void printRound(PrintStream out, Round r, String fault) {
    out.printf(Locale.ROOT, "round %d: %s -> %s, promotion %s ms after the fault, the client's map named "
        + "the new primary %s ms after it; load average %s%n", r.round(), r.from(), r.to(), ms(r.promotionMillis()),
        ms(r.mapMillis()), Report.loadAverage());
    for (Side s : List.of(r.shardmap(), r.pgjdbc())) {
      out.printf(Locale.ROOT, "  %-8s %s->first write %6s ms, promotion->first write %6s ms, outage %6s ms, "
              + "acknowledged %,7d, failed %,4d, missing on new primary %d%s%n", s.writer(), fault,
          ms(s.killToFirstWrite()), ms(s.promotionToFirstWrite()), ms(s.outage()), s.acknowledged(), s.failed(), s.missing(),
          s.firstFailure() == null ? "" : "; first failure: " + abbreviate(s.firstFailure(), 200));
      if (!s.recovered()) {
        out.println("  !!! " + s.writer() + " did NOT write again after the failover within the bound !!!");
      }
      if (s.missing() > 0) {
        out.println("  !!! " + s.writer() + ": " + s.missing() + " ACKNOWLEDGED WRITES MISSING on the new primary "
            + r.to() + " !!!");
      }
    }
  }

  private static String ms(long v) {
    return v == NONE ? "n/a" : Long.toString(v);
  }

  private static String abbreviate(String s, int max) {
    String one = s.replace('\n', ' ');
    return one.length() <= max ? one : one.substring(0, max) + "...";
  }

  static String summary(List<Round> rounds, String fault) {
    List<List<String>> rows = new ArrayList<>();
    for (String writer : List.of("shardmap", "pgjdbc")) {
      List<Side> sides = rounds.stream().map(r -> writer.equals("shardmap") ? r.shardmap() : r.pgjdbc()).toList();
      List<Side> ok = sides.stream().filter(Side::recovered).toList();
      long[] kill = ok.stream().mapToLong(Side::killToFirstWrite).toArray();
      long[] promo = ok.stream().mapToLong(Side::promotionToFirstWrite).filter(v -> v != NONE).toArray();
      long[] outage = ok.stream().mapToLong(Side::outage).toArray();
      long[] failed = sides.stream().mapToLong(Side::failed).toArray();
      rows.add(List.of(writer, ok.size() + "/" + sides.size(), p50(kill), max(kill), p50(promo), max(promo),
          p50(outage), max(outage), p50(failed), max(failed),
          Long.toString(sides.stream().mapToLong(Side::missing).sum())));
    }
    return "summary over " + rounds.size() + " " + fault + " round(s), ms:\n" + Report.table(List.of("writer",
        "recovered", fault + "->write p50", "max", "promotion->write p50", "max", "outage p50", "max",
        "failed p50", "max", "missing"), rows);
  }

  private static String p50(long[] v) {
    long[] s = v.clone();
    Arrays.sort(s);
    return s.length == 0 ? "n/a" : Long.toString(Report.quantile(s, 0.5));
  }

  private static String max(long[] v) {
    return v.length == 0 ? "n/a" : Long.toString(Arrays.stream(v).max().orElseThrow());
  }
}
