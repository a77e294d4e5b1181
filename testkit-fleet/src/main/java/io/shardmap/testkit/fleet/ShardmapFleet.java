package io.shardmap.testkit.fleet;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.ShardMapServiceGrpc.ShardMapServiceBlockingStub;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.PostgresFixture;
import io.shardmap.testkit.PostgresFixture.PgInstance;
import java.io.IOException;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/**
 * An etcd cluster, N directory servers on a prefix no other fleet uses, and M PostgreSQL shards registered
 * with them under the names {@code s1..sM}, optionally with one table created on every shard. Closing the
 * fleet stops its servers and drops its table; the shared etcd cluster and PostgreSQL servers stay up for
 * the next fleet (a fleet's keys and table never collide with another's).
 *
 * <p>Servers are in-process gRPC servers unless {@link Builder#sockets()} is asked for. Either way a client
 * reaches them through {@link #targets()} and {@link #channelBuilder(String)}:
 * {@code ClientOptions.builder().targets(fleet.targets()).channelFactory(fleet::channelBuilder)}.
 */
public final class ShardmapFleet implements AutoCloseable {
  private final Builder spec;
  private final String prefix;
  private final String table;
  private final EtcdCluster etcd;
  private final List<String> etcdEndpoints;
  private final PostgresFixture postgres;
  private final MetaStore store;
  private final boolean ownsStore;
  private final List<String> shardNames;
  private final List<DirectoryServer> servers = new ArrayList<>();
  private final List<String> targets = new ArrayList<>();
  private final List<ManagedChannel> channels = new ArrayList<>();
  private final ManagedChannel channel;
  private boolean tableCreated;

  private ShardmapFleet(Builder b) throws IOException, InterruptedException, SQLException {
    spec = b;
    String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    prefix = b.prefix != null ? b.prefix : "/f" + uid;
    table = b.tableColumns == null ? null : (b.tableName != null ? b.tableName : "t_" + uid);
    etcd = b.store != null || b.etcdEndpoints != null ? null : (b.etcd != null ? b.etcd : EtcdCluster.shared());
    etcdEndpoints = b.store != null ? List.of("http://127.0.0.1:1")
        : b.etcdEndpoints != null ? b.etcdEndpoints : etcd.clientEndpoints();
    postgres = b.shards == 0 ? null : (b.postgres != null ? b.postgres : PostgresFixture.shared(b.shards));
    List<String> names = new ArrayList<>();
    for (int i = 1; i <= b.shards; i++) {
      names.add("s" + i);
    }
    shardNames = Collections.unmodifiableList(names);
    if (b.store != null) {
      store = b.store;
      ownsStore = false;
    } else if (b.sockets) {
      store = null; // each socket server builds and owns its etcd client, as in production
      ownsStore = false;
    } else {
      store = EtcdMetaStore.builder().endpoints(etcdEndpoints).requestTimeout(Duration.ofSeconds(3))
          .connectTimeout(Duration.ofSeconds(3)).build();
      ownsStore = true;
    }
    ManagedChannel first = null;
    try {
      for (int i = 0; i < b.servers; i++) {
        startServer();
      }
      first = b.servers == 0 ? null : channelBuilder(targets.get(0)).build();
      if (first != null) {
        channels.add(first);
      }
    } catch (IOException | InterruptedException | RuntimeException e) {
      closeQuietly();
      throw e;
    }
    channel = first;
    try {
      if (b.registerShards && channel != null) {
        // Bounded, so a server that never answers fails the fleet's start instead of hanging the test.
        ShardMapAdminServiceBlockingStub admin = admin().withDeadlineAfter(30, TimeUnit.SECONDS);
        for (int i = 0; i < shardNames.size(); i++) {
          admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder()
              .setName(shardNames.get(i)).setPrimary(endpoint(shard(i)))).build());
        }
      }
      if (table != null) {
        tableCreated = true;
        execOnShards("CREATE TABLE " + table + " (" + b.tableColumns + ")");
      }
    } catch (SQLException | RuntimeException e) {
      closeQuietly();
      throw e;
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A shard's primary as the directory's proto {@link Endpoint}: host, port and database. */
  public static Endpoint endpoint(PgInstance p) {
    return endpoint(p, p.database());
  }

  /** Another database on a shard's server (a second shard, or a replica, on the same PostgreSQL). */
  public static Endpoint endpoint(PgInstance p, String database) {
    return Endpoint.newBuilder().setHost(p.host()).setPort(p.port()).setDatabase(database).build();
  }

  /** The etcd key prefix of this fleet's servers. */
  public String prefix() {
    return prefix;
  }

  /**
   * The etcd cluster, or null when the fleet runs on a given store ({@link Builder#store}) or on endpoints
   * ({@link Builder#etcdEndpoints}).
   */
  public EtcdCluster etcd() {
    return etcd;
  }

  /** The PostgreSQL servers, or null without shards. */
  public PostgresFixture postgres() {
    return postgres;
  }

  /** {@code s1..sM}, in the order of {@link #shard(int)}. */
  public List<String> shardNames() {
    return shardNames;
  }

  public PgInstance shard(int i) {
    return postgres.shard(i);
  }

  /** The table created on every shard by {@link Builder#table}, or null. */
  public String table() {
    return table;
  }

  /**
   * The settings this fleet starts its servers with: {@link ServerOptions#loopbackForTests} (or the
   * production defaults on loopback, {@link Builder#productionIntervals()}) and the builder's overrides.
   */
  public ServerOptions.Builder serverOptions() {
    ServerOptions.Builder o = spec.productionIntervals
        ? ServerOptions.builder().listen("127.0.0.1", 0).metrics(null, 0).etcdEndpoints(etcdEndpoints)
            .etcdPrefix(prefix)
        : ServerOptions.loopbackForTests(etcdEndpoints, prefix);
    return spec.options.apply(o);
  }

  public DirectoryServer server(int i) {
    return servers.get(i);
  }

  public List<DirectoryServer> servers() {
    return Collections.unmodifiableList(servers);
  }

  /** One target per server, in order: {@code 127.0.0.1:port} with sockets, an in-process name otherwise. */
  public List<String> targets() {
    return Collections.unmodifiableList(targets);
  }

  /**
   * A channel builder for one of {@link #targets()}: plaintext Netty for {@code host:port}, in-process
   * otherwise. Its shape is the client SDK's {@code ChannelFactory}.
   */
  public ManagedChannelBuilder<?> channelBuilder(String target) {
    if (spec.sockets) {
      return NettyChannelBuilder.forTarget(target).usePlaintext().maxInboundMessageSize(64 << 20);
    }
    return InProcessChannelBuilder.forName(target).maxInboundMessageSize(64 << 20);
  }

  /** A new channel to server {@code i}, closed with the fleet. */
  public synchronized ManagedChannel channel(int i) {
    ManagedChannel c = channelBuilder(targets.get(i)).build();
    channels.add(c);
    return c;
  }

  /** The admin service of the first server (no deadline: callers add theirs). */
  public ShardMapAdminServiceBlockingStub admin() {
    return ShardMapAdminServiceGrpc.newBlockingStub(channel);
  }

  /** The lookup service of the first server. */
  public ShardMapServiceBlockingStub read() {
    return ShardMapServiceGrpc.newBlockingStub(channel);
  }

  /** Runs one statement on every shard, in order. */
  public void execOnShards(String sql) throws SQLException {
    for (int i = 0; i < shardNames.size(); i++) {
      shard(i).exec(sql);
    }
  }

  /**
   * Starts one more server on this fleet's prefix (with the fleet's settings and transport) and returns
   * its index in {@link #servers()}.
   */
  public synchronized int startServer() throws IOException, InterruptedException {
    ServerOptions options = serverOptions().build();
    int index = servers.size();
    DirectoryServer s;
    String target;
    if (spec.sockets) {
      s = store == null ? DirectoryServer.start(options) : DirectoryServer.start(options, store);
      target = "127.0.0.1:" + s.port();
    } else {
      target = "fleet" + prefix.replace('/', '-') + "-" + index;
      s = DirectoryServer.start(options, store, InProcessServerBuilder.forName(target).directExecutor());
    }
    servers.add(s);
    targets.add(target);
    return index;
  }

  @Override
  public void close() throws SQLException {
    closeQuietly();
    if (tableCreated) {
      tableCreated = false;
      execOnShards("DROP TABLE IF EXISTS " + table + " CASCADE");
    }
  }

  private synchronized void closeQuietly() {
    for (ManagedChannel c : channels) {
      c.shutdownNow();
    }
    channels.clear();
    for (DirectoryServer s : servers) {
      s.close();
    }
    servers.clear();
    if (ownsStore) {
      try {
        store.close();
      } catch (Exception e) {
        // Closing the etcd client of a stopped fleet: nothing is left to release that matters to the test.
      }
    }
  }

  /** What a fleet consists of; {@link #build()} starts it. Every setting has a default. */
  public static final class Builder {
    private EtcdCluster etcd;
    private List<String> etcdEndpoints;
    private MetaStore store;
    private PostgresFixture postgres;
    private int servers = 1;
    private int shards;
    private boolean sockets;
    private boolean productionIntervals;
    private boolean registerShards = true;
    private String prefix;
    private String tableName;
    private String tableColumns;
    private UnaryOperator<ServerOptions.Builder> options = UnaryOperator.identity();

    private Builder() {}

    /** The etcd cluster; {@link EtcdCluster#shared()} unless set. */
    public Builder etcd(EtcdCluster cluster) {
      this.etcd = cluster;
      return this;
    }

    /** An etcd cluster by its client endpoints (one the fleet did not start, e.g. a benchmark's). */
    public Builder etcdEndpoints(List<String> endpoints) {
      this.etcdEndpoints = List.copyOf(endpoints);
      return this;
    }

    /** Run the servers on this store (e.g. the in-memory one) instead of etcd; the caller keeps it. */
    public Builder store(MetaStore store) {
      this.store = store;
      return this;
    }

    /** The PostgreSQL servers; {@code PostgresFixture.shared(shards)} unless set. */
    public Builder postgres(PostgresFixture fixture) {
      this.postgres = fixture;
      return this;
    }

    /** How many directory servers start on the prefix (default 1; 0 for a test that starts its own). */
    public Builder servers(int n) {
      this.servers = nonNegative("servers", n);
      return this;
    }

    /** How many PostgreSQL shards, named {@code s1..sN} (default 0). */
    public Builder shards(int n) {
      this.shards = nonNegative("shards", n);
      return this;
    }

    /** Real Netty sockets on loopback instead of in-process gRPC: failover, child processes, load. */
    public Builder sockets() {
      this.sockets = true;
      return this;
    }

    /**
     * The servers' production timing defaults (probe, heartbeat, etcd timeout, transaction size) instead of
     * the short test intervals: for benchmarks, whose figures should describe a deployed server.
     */
    public Builder productionIntervals() {
      this.productionIntervals = true;
      return this;
    }

    /** Leave the shards unregistered (default: registered with the first server). */
    public Builder unregistered() {
      this.registerShards = false;
      return this;
    }

    /** A fixed etcd prefix instead of a unique one. */
    public Builder prefix(String prefix) {
      this.prefix = prefix;
      return this;
    }

    /** Creates a table with these column definitions on every shard (name {@link #table()}). */
    public Builder table(String columns) {
      this.tableColumns = columns;
      return this;
    }

    /** Like {@link #table(String)} with a fixed name instead of a unique one. */
    public Builder table(String name, String columns) {
      this.tableName = name;
      this.tableColumns = columns;
      return this;
    }

    /** Changes the servers' settings on top of {@link ServerOptions#loopbackForTests}. */
    public Builder serverOptions(UnaryOperator<ServerOptions.Builder> change) {
      UnaryOperator<ServerOptions.Builder> before = this.options;
      this.options = o -> change.apply(before.apply(o));
      return this;
    }

    private static int nonNegative(String name, int n) {
      if (n < 0) {
        throw new IllegalArgumentException(name + ": must be 0 or more, was " + n);
      }
      return n;
    }

    /** Starts the fleet; the caller closes it. */
    public ShardmapFleet build() throws IOException, InterruptedException, SQLException {
      return new ShardmapFleet(this);
    }

    /** A JUnit 5 extension that starts this fleet before each test (or once, on a static field). */
    public ShardmapFleetExtension extension() {
      return new ShardmapFleetExtension(this);
    }
  }
}
