package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.TextFormat;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.ChangeDecoder;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Watch;
import io.shardmap.store.WatchEvent;
import io.shardmap.store.WatchListener;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.FreePorts;
import java.io.IOException;
import java.net.BindException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Randomized consistency of many clients under faults, in the spirit of Apache Curator's
 * TestCuratorCacheConsistency: a seeded stream of admin changes of every kind runs through three directory
 * replicas while a chaos thread restarts replicas, stops one etcd member at a time and compacts etcd; once
 * the faults are healed and the changes have stopped, every client's map must equal the truth read straight
 * from etcd, at the same revision, and route every probed key exactly as the servers do.
 *
 * <p>An end-state check alone misses a change lost during a failover and overwritten later, so the test also
 * follows etcd itself and compares every map each client publishes during the run with etcd at that
 * revision.
 *
 * <p>The seed is printed; rerun one with {@code -Dshardmap.consistency.seed=N}. The fault window is
 * {@code -Dshardmap.consistency.seconds} (default 20).
 */
@Tag("consistency")
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class ClientConsistencyTest {
  private static final String PREFIX = "/consistency";
  private static final int REPLICAS = 3;
  private static final int CLIENTS = 12;
  private static final int ADMINS = 4;
  private static final int KEYS_PER_KEYSPACE = 4000;
  private static final int SINGLE_LOOKUPS_PER_KEYSPACE = 200;
  private static final List<String> KEYSPACES = List.of("users", "sessions", "carts", "tenants", "profiles");
  /** s1..s6 registered up front; s7 and s8 come and go. */
  private static final List<String> SHARD_POOL = List.of("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8");
  private static final List<String> REGION_POOL = List.of("eu-west", "us-east", "ap-south", "sa-east",
      "af-south", "me-central");
  /** A small pool so puts hit existing entries and deletes find something. */
  private static final int DIRECTORY_POOL = 60;
  /** Bounds keep every change cheap to apply on 36 followers (12 clients x 3 replicas) and 2 CPUs. */
  private static final int MAX_RANGES = 300;
  private static final int MAX_RING_NODES = 400;

  private final long seed = Long.getLong("shardmap.consistency.seed", System.nanoTime());
  private final Duration faultWindow = Duration.ofSeconds(Long.getLong("shardmap.consistency.seconds", 20));
  private final String tag = "[seed=" + seed + "] ";

  private EtcdCluster etcd;
  /** The test's own etcd client: truth, compaction, head revisions. Never goes through a replica. */
  private EtcdMetaStore etcdReader;
  private final CatalogPaths paths = new CatalogPaths(PREFIX);
  private final ChangeDecoder decoder = new ChangeDecoder(paths);
  private TruthFollower truth;
  private LiveVerifier verifier;
  private final Replica[] replicas = new Replica[REPLICAS];
  private final List<ShardmapClient> clients = Collections.synchronizedList(new ArrayList<>());
  private final List<String> problems = Collections.synchronizedList(new ArrayList<>());
  private final Map<String, AtomicLong> outcomes = new ConcurrentHashMap<>();
  private final AtomicLong applied = new AtomicLong();
  private final AtomicLong refused = new AtomicLong();
  private final AtomicLong unavailable = new AtomicLong();
  private final AtomicLong replicaKills = new AtomicLong();
  private final AtomicLong etcdStops = new AtomicLong();
  private final AtomicLong bindRetries = new AtomicLong();
  private final AtomicLong compactions = new AtomicLong();
  private final AtomicLong directoryGapDrops = new AtomicLong();
  private final AtomicLong directoryReReadDrops = new AtomicLong();
  private final AtomicLong liveVerified = new AtomicLong();
  private final AtomicLong liveSkipped = new AtomicLong();

  @Test
  void everyClientConvergesToEtcdAndRoutesLikeTheServers() throws Exception {
    System.out.println(tag + "ClientConsistencyTest (override with -Dshardmap.consistency.seed=" + seed + ")");
    long t0 = System.nanoTime();
    etcd = EtcdCluster.start(3);
    ExecutorService pool = Executors.newFixedThreadPool(ADMINS + 1, r -> {
      Thread t = new Thread(r, "consistency-worker");
      t.setDaemon(true);
      return t;
    });
    try {
      assumeTrue(etcd.canControlMembers(), "needs an etcd cluster whose members the test can stop");
      etcdReader = EtcdMetaStore.builder().endpoints(etcd.clientEndpoints())
          .requestTimeout(Duration.ofSeconds(3)).connectTimeout(Duration.ofSeconds(3)).build();
      // Before any write, so every revision a client can show is in the truth's history.
      truth = new TruthFollower();
      truth.start();
      verifier = new LiveVerifier();
      int[] ports = FreePorts.allocate(REPLICAS);
      for (int i = 0; i < REPLICAS; i++) {
        replicas[i] = new Replica(i, ports[i]);
        replicas[i].start();
      }
      createMaps(replicas[0].admin());
      startClients();
      Thread verifierThread = new Thread(verifier, "consistency-live-verifier");
      verifierThread.setDaemon(true);
      verifierThread.start();
      long setupMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);

      long deadline = System.nanoTime() + faultWindow.toNanos();
      List<Future<?>> work = new ArrayList<>();
      for (int w = 0; w < ADMINS; w++) {
        Random rnd = new Random(seed * 31 + w);
        work.add(pool.submit(() -> adminLoop(rnd, deadline)));
      }
      work.add(pool.submit(() -> {
        chaos(new Random(seed ^ 0x5DEECE66DL), deadline);
        return null;
      }));
      DirectorySnapshot end;
      long comparedKeys;
      long chaosMs;
      try {
        for (Future<?> f : work) {
          f.get(faultWindow.toSeconds() + 90, TimeUnit.SECONDS);
        }
        chaosMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) - setupMs;
        end = converge();
        verifier.stopping = true;
        verifierThread.join(TimeUnit.SECONDS.toMillis(60));
        assertTrue(!verifierThread.isAlive(), tag + "the live verifier did not finish; " + verifier.queue.size()
            + " client maps still queued");
        comparedKeys = compareRoutes(end);
      } catch (Exception | AssertionError e) {
        // What the live checks saw first usually explains a later failure.
        assertNoProblems(e);
        throw e;
      }

      long failovers = 0;
      long reconnects = 0;
      long resyncs = 0;
      for (ShardmapClient c : clients) {
        failovers += c.stats().failovers();
        reconnects += c.stats().reconnects();
        resyncs += c.stats().resyncs();
      }
      System.out.printf("%ssetup %d ms, faults %d ms, total %d ms; admin changes applied %d, refused %d, "
              + "unavailable %d; replica restarts %d (bind retries %d), etcd member stops %d, compactions %d; "
              + "client failovers %d, reconnects %d, resyncs %d; truth revision %d (%d ranges); client routes "
              + "compared %d; client maps verified live against etcd %d (skipped while loading %d); directory "
              + "epoch drops across an unroutable gap %d, across a re-read %d%n",
          tag, setupMs, chaosMs, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), applied.get(),
          refused.get(), unavailable.get(), replicaKills.get(), bindRetries.get(), etcdStops.get(),
          compactions.get(), failovers, reconnects, resyncs, end.revision(),
          end.keyspace("users").ranges().size(), comparedKeys, liveVerified.get(), liveSkipped.get(),
          directoryGapDrops.get(), directoryReReadDrops.get());
      System.out.println(tag + "outcomes " + new TreeMap<>(outcomes));

      assertNoProblems(null);
      // Liveness: the run must actually have exercised what it claims to prove.
      assertTrue(replicaKills.get() >= 2 && etcdStops.get() >= 1, tag + "chaos did too little: "
          + replicaKills + " replica restarts, " + etcdStops + " etcd stops");
      assertTrue(failovers > 0, tag + "no client ever failed over");
      assertTrue(applied.get() >= 200, tag + "only " + applied + " admin changes applied");
      // Each client passes through nearly every revision; re-reads skip some. A quarter proves the check ran.
      assertTrue(liveVerified.get() >= CLIENTS * applied.get() / 4, tag + "only " + liveVerified
          + " client maps verified live for " + applied + " changes");
      for (String op : List.of("split", "merge", "reassignRange", "reassignBucket", "reshardHash", "addRingNodes",
          "removeRingNodes", "putEntries", "deleteEntries", "setFallback", "setRegion", "removeRegion",
          "updateShard")) {
        assertTrue(outcomes.containsKey(op + " OK"), tag + "no successful " + op + ": " + new TreeMap<>(outcomes));
      }
    } finally {
      pool.shutdownNow();
      if (verifier != null) {
        verifier.stopping = true;
      }
      for (ShardmapClient c : clients) {
        c.close();
      }
      for (Replica r : replicas) {
        if (r != null) {
          r.close();
        }
      }
      if (truth != null) {
        truth.close();
      }
      if (etcdReader != null) {
        etcdReader.close();
      }
      if (etcd != null) {
        etcd.close();
      }
    }
  }

  // ------------------------------------------------------------------ setup

  private void createMaps(ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin) {
    for (String s : SHARD_POOL.subList(0, 6)) {
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(shard(s, 5432)).build());
    }
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("users", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_RANGE)).addAllRangeShards(List.of("s1", "s2", "s3")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("sessions", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_HASH)).addAllHashBuckets(List.of("s1", "s2", "s3", "s4")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("carts", KeyType.KEY_TYPE_INT64,
        Strategy.STRATEGY_CONSISTENT_HASH).toBuilder().setDefaultVnodes(32)).addAllRingShards(List.of("s1", "s2"))
        .build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("tenants", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_DIRECTORY)).setFallbackShard("s4").build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(spec("profiles", KeyType.KEY_TYPE_BYTES,
        Strategy.STRATEGY_GEOGRAPHIC))
        .addRegions(RegionAssignment.newBuilder().setRegion("eu-west").setShard("s1"))
        .addRegions(RegionAssignment.newBuilder().setRegion("us-east").setShard("s2"))
        .setDefaultRegion("us-east").build());
  }

  private void startClients() throws InterruptedException {
    List<String> addresses = new ArrayList<>();
    for (Replica r : replicas) {
      addresses.add("127.0.0.1:" + r.port);
    }
    List<List<String>> orders = new ArrayList<>();
    permutations(addresses, new ArrayList<>(), orders);
    Random rnd = new Random(seed);
    for (int i = 0; i < CLIENTS; i++) {
      // Every order appears twice, so each replica is the first choice of a third of the clients.
      ShardmapClient c = ShardmapClient.start(ClientOptions.builder().targets(orders.get(i % orders.size()))
          .keyspaces(KEYSPACES.toArray(String[]::new)).rpcTimeout(Duration.ofSeconds(3))
          .backoff(Duration.ofMillis(20), Duration.ofMillis(500)).build());
      // Its keyspaces were read at revisions up to the head now, after the snapshot's own revision.
      verifier.consistentFrom.set(i, head());
      c.addListener(new Observer(i, sampleKeys(new Random(rnd.nextLong()))));
      clients.add(c);
    }
  }

  private static void permutations(List<String> rest, List<String> prefix, List<List<String>> out) {
    if (rest.isEmpty()) {
      out.add(List.copyOf(prefix));
      return;
    }
    for (int i = 0; i < rest.size(); i++) {
      List<String> r = new ArrayList<>(rest);
      prefix.add(r.remove(i));
      permutations(r, prefix, out);
      prefix.remove(prefix.size() - 1);
    }
  }

  private static KeyspaceSpec spec(String name, KeyType type, Strategy s) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(type).setStrategy(s).build();
  }

  private static Shard shard(String name, int port) {
    return Shard.newBuilder().setName(name)
        .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(port).setDatabase(name)).build();
  }

  // ------------------------------------------------------------------ replicas

  /** One replica on a fixed port, so clients configured with its address find it again after a restart. */
  private final class Replica implements AutoCloseable {
    final int index;
    final int port;
    final ManagedChannel channel;
    volatile DirectoryServer server;
    volatile long downUntilNanos;

    Replica(int index, int port) {
      this.index = index;
      this.port = port;
      this.channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
          .maxInboundMessageSize(64 << 20).build();
    }

    ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin() {
      return ShardMapAdminServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    ShardMapServiceGrpc.ShardMapServiceBlockingStub read() {
      return ShardMapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS);
    }

    synchronized void start() throws IOException, InterruptedException {
      ServerOptions options = ServerOptions.loopbackForTests(etcd.clientEndpoints(), PREFIX).listen("127.0.0.1", port)
          // A short history makes clients that come back from a dead replica re-read now and then.
          .watchHistory(200).maxTxnOps(1024).build();
      for (int attempt = 1; ; attempt++) {
        try {
          server = DirectoryServer.start(options);
          break;
        } catch (IOException e) {
          if (!(rootCause(e) instanceof BindException) || attempt >= 40) {
            throw new IOException("replica " + index + " could not listen on its port " + port + " again after "
                + attempt + " attempts", e);
          }
          bindRetries.incrementAndGet();
          Thread.sleep(250);
        }
      }
      // The channels may sit in reconnect backoff from the downtime; the replica is back now.
      channel.resetConnectBackoff();
    }

    synchronized void kill() {
      DirectoryServer s = server;
      server = null;
      if (s != null) {
        s.close();
      }
    }

    boolean up() {
      return server != null;
    }

    @Override
    public void close() {
      kill();
      channel.shutdownNow();
    }
  }

  private static Throwable rootCause(Throwable t) {
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t;
  }

  // ------------------------------------------------------------------ chaos

  private void chaos(Random rnd, long deadline) throws Exception {
    EtcdMetaStore store = etcdReader;
    long compactedTo = 0;
    int etcdDown = -1;
    long etcdUpAt = 0;
    long start = System.nanoTime();
    boolean forcedKill = false;
    boolean forcedStop = false;
    while (System.nanoTime() < deadline) {
      Thread.sleep(100 + rnd.nextInt(300));
      long now = System.nanoTime();
      for (Replica r : replicas) {
        if (!r.up() && now >= r.downUntilNanos) {
          r.start();
        }
      }
      if (etcdDown >= 0 && now >= etcdUpAt) {
        etcd.startMember(etcdDown);
        etcdDown = -1;
      }
      int live = 0;
      for (Replica r : replicas) {
        live += r.up() ? 1 : 0;
      }
      // One kill and one member stop early on for sure, so a run never proves nothing; the rest is random.
      boolean mustKill = !forcedKill && now - start > TimeUnit.MILLISECONDS.toNanos(1500);
      if (live > 1 && (mustKill || rnd.nextInt(5) == 0)) {
        forcedKill = true;
        List<Replica> up = new ArrayList<>();
        for (Replica r : replicas) {
          if (r.up()) {
            up.add(r);
          }
        }
        Replica victim = up.get(rnd.nextInt(up.size()));
        victim.downUntilNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(300 + rnd.nextInt(1700));
        victim.kill();
        replicaKills.incrementAndGet();
      }
      boolean mustStop = !forcedStop && now - start > TimeUnit.MILLISECONDS.toNanos(3000);
      if (etcdDown < 0 && (mustStop || rnd.nextInt(12) == 0)) {
        forcedStop = true;
        etcdDown = rnd.nextInt(etcd.memberCount());
        etcdUpAt = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1000 + rnd.nextInt(2500));
        etcd.stopMember(etcdDown);
        etcdStops.incrementAndGet();
      }
      // Compaction close behind the head: a replica whose watch lags (its etcd member just died) must re-read
      // and send its clients to re-read too.
      if (rnd.nextInt(6) == 0) {
        try {
          long head = store.currentRevision().get(3, TimeUnit.SECONDS);
          // Never past the test's own watch, which must see every revision.
          long at = Math.min(head - rnd.nextInt(100), truth.latest);
          if (at > compactedTo) {
            store.compact(at).get(3, TimeUnit.SECONDS);
            compactedTo = at;
            compactions.incrementAndGet();
          }
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
          // A leader election under way; compaction is best effort.
        }
      }
    }
    if (etcdDown >= 0) {
      etcd.startMember(etcdDown);
    }
    for (Replica r : replicas) {
      if (!r.up()) {
        r.start();
      }
    }
    etcd.awaitHealthy(Duration.ofSeconds(30));
  }

  // ------------------------------------------------------------------ admin changes

  private record Op(String name, Function<ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub, Object> call) {}

  private Object adminLoop(Random rnd, long deadline) {
    while (System.nanoTime() < deadline) {
      // Picks come from a client's map, possibly stale, as an operator's would; a map the client cannot use
      // (the live checks report why) gives way to etcd's.
      Op op;
      try {
        op = nextOp(rnd, clients.get(rnd.nextInt(clients.size())).snapshot().core());
      } catch (ShardmapException e) {
        op = nextOp(rnd, truth.current);
      }
      Replica via = replicas[rnd.nextInt(REPLICAS)];
      try {
        op.call.apply(via.admin());
        applied.incrementAndGet();
        count(op.name + " OK");
      } catch (StatusRuntimeException e) {
        Status.Code code = e.getStatus().getCode();
        count(op.name + " " + code);
        switch (code) {
          // Random picks from a possibly stale view, and concurrent admins racing each other.
          case FAILED_PRECONDITION, ABORTED, NOT_FOUND, ALREADY_EXISTS -> refused.incrementAndGet();
          // The replica or an etcd member is down, or the outcome of a write is unknown.
          case UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED -> {
            unavailable.incrementAndGet();
            sleep(20);
          }
          default -> {
            // A bucket index from a view taken before a reshard to fewer buckets is out of range.
            if (code == Status.Code.INVALID_ARGUMENT && op.name.equals("reassignBucket")
                && String.valueOf(e.getStatus().getDescription()).startsWith("bucket:")) {
              refused.incrementAndGet();
            } else {
              problem("admin " + op.name + " failed with " + code + ": " + e.getStatus().getDescription());
            }
          }
        }
      }
    }
    return null;
  }

  private final AtomicLong problemCount = new AtomicLong();

  private void assertNoProblems(Throwable later) {
    List<String> found = new ArrayList<>(problems);
    if (!found.isEmpty()) {
      AssertionError e = new AssertionError(tag + problemCount + " problems, first: "
          + found.subList(0, Math.min(10, found.size())));
      if (later != null) {
        e.addSuppressed(later);
      }
      throw e;
    }
  }

  /** Keeps the first thousand; a real bug tends to repeat on every client and revision. */
  private void problem(String what) {
    if (problemCount.incrementAndGet() <= 1000) {
      problems.add(what);
    }
  }

  private void count(String what) {
    outcomes.computeIfAbsent(what, k -> new AtomicLong()).incrementAndGet();
  }

  private Op nextOp(Random rnd, DirectorySnapshot view) {
    int pick = rnd.nextInt(30);
    KeyspaceMap users = view.keyspace("users");
    KeyspaceMap carts = view.keyspace("carts");
    if (pick < 4) {
      if (users.ranges().size() >= MAX_RANGES) {
        return merge(rnd, users);
      }
      long at = rnd.nextBoolean() ? rnd.nextLong() : rnd.nextInt(200_001) - 100_000;
      return new Op("split", a -> a.splitRange(SplitRangeRequest.newBuilder().setKeyspace("users")
          .setSplitKey(Key.newBuilder().setIntKey(at)).build()));
    }
    if (pick < 7) {
      return merge(rnd, users);
    }
    if (pick < 10) {
      Route r = users.ranges().get(rnd.nextInt(users.ranges().size()));
      ReassignRangeRequest.Builder b = ReassignRangeRequest.newBuilder().setKeyspace("users")
          .setRange(r.range().toProto(KeyType.KEY_TYPE_INT64)).setShard(shardPick(rnd, view));
      if (rnd.nextBoolean()) {
        b.setExpectedEpoch(r.epoch());
      }
      return new Op("reassignRange", a -> a.reassignRange(b.build()));
    }
    if (pick < 12) {
      HashLayout h = view.keyspace("sessions").hash().layout();
      int bucket = rnd.nextInt(h.getBucketsCount());
      ReassignBucketRequest.Builder b = ReassignBucketRequest.newBuilder().setKeyspace("sessions")
          .setBucket(bucket).setShard(shardPick(rnd, view));
      if (rnd.nextBoolean()) {
        b.setExpectedEpoch(h.getBuckets(bucket).getEpoch());
      }
      return new Op("reassignBucket", a -> a.reassignBucket(b.build()));
    }
    if (pick < 13) {
      ReshardHashRequest.Builder b = ReshardHashRequest.newBuilder().setKeyspace("sessions");
      for (int i = 1 + rnd.nextInt(8); i > 0; i--) {
        b.addBuckets(shardPick(rnd, view));
      }
      return new Op("reshardHash", a -> a.reshardHash(b.build()));
    }
    int ringNodes = 0;
    for (RingShard s : carts.ring().layout().getShardsList()) {
      ringNodes += s.getVnodeEpochsCount();
    }
    if (pick < 15 && ringNodes < MAX_RING_NODES) {
      String s = shardPick(rnd, view);
      int vnodes = 1 + rnd.nextInt(24);
      return new Op("addRingNodes", a -> a.addRingNodes(AddRingNodesRequest.newBuilder().setKeyspace("carts")
          .setShard(s).setVnodes(vnodes).build()));
    }
    if (pick < 17) {
      List<RingShard> on = carts.ring().layout().getShardsList();
      String s = rnd.nextInt(5) == 0 || on.isEmpty() ? shardPick(rnd, view) : on.get(rnd.nextInt(on.size())).getShard();
      int vnodes = rnd.nextInt(4) == 0 ? 0 : 1 + rnd.nextInt(16);
      return new Op("removeRingNodes", a -> a.removeRingNodes(RemoveRingNodesRequest.newBuilder()
          .setKeyspace("carts").setShard(s).setVnodes(vnodes).build()));
    }
    if (pick < 20) {
      PutDirectoryEntriesRequest.Builder b = PutDirectoryEntriesRequest.newBuilder().setKeyspace("tenants");
      for (String k : tenantKeys(rnd)) {
        b.addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setStringKey(k))
            .setShard(shardPick(rnd, view)));
      }
      return new Op("putEntries", a -> a.putDirectoryEntries(b.build()));
    }
    if (pick < 22) {
      DeleteDirectoryEntriesRequest.Builder b = DeleteDirectoryEntriesRequest.newBuilder().setKeyspace("tenants");
      for (String k : tenantKeys(rnd)) {
        b.addKeys(Key.newBuilder().setStringKey(k));
      }
      return new Op("deleteEntries", a -> a.deleteDirectoryEntries(b.build()));
    }
    if (pick < 23) {
      String s = rnd.nextInt(4) == 0 ? "" : shardPick(rnd, view);
      return new Op("setFallback", a -> a.setDirectoryFallback(SetDirectoryFallbackRequest.newBuilder()
          .setKeyspace("tenants").setShard(s).build()));
    }
    if (pick < 25) {
      SetRegionRequest r = SetRegionRequest.newBuilder().setKeyspace("profiles")
          .setRegion(REGION_POOL.get(rnd.nextInt(REGION_POOL.size()))).setShard(shardPick(rnd, view))
          .setMakeDefault(rnd.nextInt(5) == 0).build();
      return new Op("setRegion", a -> a.setRegion(r));
    }
    if (pick < 26) {
      String region = REGION_POOL.get(rnd.nextInt(REGION_POOL.size()));
      return new Op("removeRegion", a -> a.removeRegion(RemoveRegionRequest.newBuilder().setKeyspace("profiles")
          .setRegion(region).build()));
    }
    if (pick < 28) {
      String name = SHARD_POOL.get(rnd.nextInt(SHARD_POOL.size()));
      Shard.Builder s = shard(name, 5432 + rnd.nextInt(100)).toBuilder()
          .setState(rnd.nextInt(4) == 0 ? ShardState.SHARD_STATE_DRAINING : ShardState.SHARD_STATE_ACTIVE);
      if (rnd.nextBoolean()) {
        s.setRegion(REGION_POOL.get(rnd.nextInt(REGION_POOL.size())));
      }
      for (int i = rnd.nextInt(3); i > 0; i--) {
        s.addReplicas(Endpoint.newBuilder().setHost("replica-" + i + ".local").setPort(6432 + i).setDatabase(name));
      }
      UpdateShardRequest.Builder b = UpdateShardRequest.newBuilder().setShard(s);
      Shard known = view.shards().get(name);
      if (known != null && rnd.nextBoolean()) {
        b.setExpectedRevision(known.getRevision());
      }
      return new Op("updateShard", a -> a.updateShard(b.build()));
    }
    if (pick < 29) {
      String name = SHARD_POOL.get(6 + rnd.nextInt(2));
      return new Op("registerShard", a -> a.registerShard(RegisterShardRequest.newBuilder()
          .setShard(shard(name, 5440)).build()));
    }
    String name = SHARD_POOL.get(rnd.nextInt(SHARD_POOL.size()));
    return new Op("deregisterShard", a -> a.deregisterShard(DeregisterShardRequest.newBuilder().setName(name).build()));
  }

  private static Op merge(Random rnd, KeyspaceMap users) {
    int n = users.ranges().size();
    long boundary = n < 2 ? rnd.nextLong()
        : Keys.decodeInt64(users.ranges().get(1 + rnd.nextInt(n - 1)).range().start());
    return new Op("merge", a -> a.mergeRanges(MergeRangesRequest.newBuilder().setKeyspace("users")
        .setBoundary(Key.newBuilder().setIntKey(boundary)).build()));
  }

  /** Mostly shards the view shows registered; sometimes any name of the pool (NOT_FOUND if unregistered). */
  private static String shardPick(Random rnd, DirectorySnapshot view) {
    List<String> registered = new ArrayList<>(new TreeMap<>(view.shards()).keySet());
    if (registered.isEmpty() || rnd.nextInt(10) == 0) {
      return SHARD_POOL.get(rnd.nextInt(SHARD_POOL.size()));
    }
    return registered.get(rnd.nextInt(registered.size()));
  }

  private static Set<String> tenantKeys(Random rnd) {
    Set<String> keys = new LinkedHashSet<>();
    for (int i = 1 + rnd.nextInt(5); i > 0; i--) {
      keys.add("t" + rnd.nextInt(DIRECTORY_POOL));
    }
    return keys;
  }

  // ------------------------------------------------------------------ the end state

  /**
   * Reads the truth from etcd and waits until every client and replica is at its revision. A write whose
   * caller gave up (deadline, killed replica) may still land late; then the truth is read again.
   */
  private DirectorySnapshot converge() throws Exception {
    // A fresh client, so the final read shares nothing with the watch that fed the live checks.
    try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(etcd.clientEndpoints())
        .requestTimeout(Duration.ofSeconds(5)).connectTimeout(Duration.ofSeconds(5)).build()) {
      for (int round = 1; ; round++) {
        RangeResult all = store.getPrefix(paths.rootPrefix()).get(10, TimeUnit.SECONDS);
        DirectorySnapshot fresh = DirectorySnapshot.empty(0).apply(all.revision(), decoder.toChanges(all.kvs()));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        for (Replica r : replicas) {
          if (!r.server.awaitRevision(fresh.revision(), Duration.ofSeconds(30))) {
            fail(tag + "replica " + r.index + " stuck at revision " + r.server.snapshot().revision()
                + ", etcd is at " + fresh.revision());
          }
        }
        while (!allClientsAt(fresh.revision())) {
          if (System.nanoTime() > deadline) {
            StringBuilder sb = new StringBuilder(tag + "clients did not reach etcd revision " + fresh.revision()
                + " within 30 s:");
            for (int i = 0; i < clients.size(); i++) {
              ShardmapClient c = clients.get(i);
              sb.append("\n  client ").append(i).append(" ").append(c.options().targets()).append(" at ")
                  .append(c.follower().appliedRevision()).append(" (map of ").append(c.revision())
                  .append("), failovers ").append(c.stats().failovers()).append(", reconnects ")
                  .append(c.stats().reconnects()).append(", resyncs ").append(c.stats().resyncs()).append(", staleness ")
                  .append(c.staleness().toMillis()).append(" ms");
            }
            fail(sb.toString());
          }
          Thread.sleep(20);
        }
        // Revisions that change no map (the directory servers' client presence records) go on after the
        // admin changes stop, e.g. when a server forgets a client that failed over. They reach clients only as
        // heartbeats, which advance a client's applied revision (waited for above) but not its map, whose
        // revision stays the last change's; replicas move their snapshot to them. Only a map change after
        // the read makes it late.
        assertTrue(truth.at(fresh.revision(), 10_000) != null, tag + "the test's etcd watch reached " + fresh.revision());
        long lastChange = truth.lastChangeAtOrBefore(fresh.revision());
        List<DirectorySnapshot> seen = new ArrayList<>();
        boolean late = false;
        // A client that got its map from the watch holds the last change's revision; one that re-read it
        // (after a failover or resync) holds the serving replica's snapshot revision, which may be a
        // revision that changed no map. Either way the map must be the one of the last change.
        for (ShardmapClient c : clients) {
          DirectorySnapshot s = c.snapshot().core();
          late |= s.revision() > fresh.revision() || truth.lastChangeAtOrBefore(s.revision()) != lastChange;
          seen.add(s);
        }
        List<DirectorySnapshot> replicaMaps = new ArrayList<>();
        for (Replica r : replicas) {
          DirectorySnapshot s = r.server.snapshot();
          late |= s.revision() < fresh.revision() || truth.at(s.revision(), 10_000) == null
              || truth.lastChangeAtOrBefore(s.revision()) != lastChange;
          replicaMaps.add(s);
        }
        if (late && round < 5) {
          System.out.println(tag + "a late write landed after revision " + fresh.revision() + "; reading etcd again");
          continue;
        }
        List<String> expected = describe(fresh);
        for (KeyspaceMap k : fresh.keyspaces().values()) {
          assertEquals(null, k.broken(), tag + "etcd holds an inconsistent map for " + k.name());
        }
        assertEquals(KEYSPACES.size(), fresh.keyspaces().size(), tag + "keyspaces in etcd");
        for (int i = 0; i < seen.size(); i++) {
          long r = seen.get(i).revision();
          assertTrue(r <= fresh.revision(), tag + "client " + i + " at revision " + r + ", past etcd's "
              + fresh.revision());
          assertEquals(lastChange, truth.lastChangeAtOrBefore(r), tag + "client " + i + " at revision " + r
              + ": its map is not the one of etcd's last change (etcd is at " + fresh.revision() + ")");
          assertSameMap("client " + i, expected, describe(seen.get(i)));
        }
        for (int i = 0; i < replicaMaps.size(); i++) {
          DirectorySnapshot s = replicaMaps.get(i);
          assertTrue(s.revision() >= fresh.revision(), tag + "replica " + i + " at revision " + s.revision()
              + ", etcd at " + fresh.revision());
          assertEquals(lastChange, truth.lastChangeAtOrBefore(s.revision()), tag + "replica " + i
              + " at revision " + s.revision() + ": a map change after etcd's " + fresh.revision());
          assertSameMap("replica " + i, expected, describe(s));
        }
        // The live checks judged by the test's own watch; it must agree with this independent read.
        assertSameMap("the test's etcd watch", expected, describe(truth.at(fresh.revision(), 10_000)));
        return fresh;
      }
    }
  }

  /** Every client's map is current to {@code revision} (applied changes and heartbeats up to it). */
  private boolean allClientsAt(long revision) {
    for (ShardmapClient c : clients) {
      if (c.follower().appliedRevision() < revision) {
        return false;
      }
    }
    return true;
  }

  private void assertSameMap(String who, List<String> expected, List<String> actual) {
    if (expected.equals(actual)) {
      return;
    }
    int i = 0;
    while (i < Math.min(expected.size(), actual.size()) && expected.get(i).equals(actual.get(i))) {
      i++;
    }
    fail(tag + who + "'s map differs from etcd at line " + i + " of " + expected.size() + ":\n  etcd:   "
        + (i < expected.size() ? expected.get(i) : "(end)") + "\n  " + who + ": "
        + (i < actual.size() ? actual.get(i) : "(end)"));
  }

  /**
   * Everything a map says, one line per fact, in a fixed order. Mod revisions of layout records are left out:
   * a client that loaded with GetMap knows only the snapshot revision, which is not part of the map's meaning;
   * shard records carry theirs in the API, so those are compared.
   */
  private static List<String> describe(DirectorySnapshot s) {
    TextFormat.Printer p = TextFormat.printer();
    List<String> out = new ArrayList<>();
    new TreeMap<>(s.shards()).forEach((name, shard) -> out.add("shard " + name + " " + p.shortDebugString(shard)));
    for (String name : new TreeMap<>(s.keyspaces()).keySet()) {
      KeyspaceMap k = s.keyspaces().get(name);
      out.add("keyspace " + name + " " + p.shortDebugString(k.spec())
          + (k.broken() == null ? "" : " BROKEN " + k.broken()));
      switch (k.strategy()) {
        case STRATEGY_RANGE -> {
          for (Route r : k.ranges().routes()) {
            out.add("  range " + r.range().format(k.keyType()) + " " + r.shard() + "@" + r.epoch());
          }
        }
        case STRATEGY_HASH -> out.add("  hash " + p.shortDebugString(k.hash().layout()));
        case STRATEGY_CONSISTENT_HASH -> out.add("  ring " + p.shortDebugString(k.ring().layout()));
        case STRATEGY_GEOGRAPHIC -> out.add("  geo " + p.shortDebugString(k.geo().layout()));
        case STRATEGY_DIRECTORY -> {
          out.add("  fallback " + p.shortDebugString(k.directory().layout()));
          TreeMap<String, String> entries = new TreeMap<>();
          k.directory().forEach((key, r) -> entries.put(Keys.hex(key), r.shard() + "@" + r.epoch()));
          entries.forEach((key, r) -> out.add("  entry " + key + " " + r));
        }
        default -> out.add("  strategy " + k.strategy());
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ routes

  /** Each client's route of every probe key against BatchLookup on every replica, plus single Lookups. */
  private long compareRoutes(DirectorySnapshot truth) {
    Random rnd = new Random(seed ^ 0x9E3779B97F4A7C15L);
    long compared = 0;
    for (String ks : KEYSPACES) {
      KeyspaceMap k = truth.keyspace(ks);
      boolean ints = k.keyType() == KeyType.KEY_TYPE_INT64;
      long[] intKeys = ints ? intProbes(rnd, k) : null;
      String[] strKeys = ints ? null : stringProbes(rnd, ks);
      int n = ints ? intKeys.length : strKeys.length;
      for (Replica r : replicas) {
        BatchLookupRequest.Builder req = BatchLookupRequest.newBuilder().setKeyspace(ks);
        for (int i = 0; i < n; i++) {
          if (ints) {
            req.addIntKeys(intKeys[i]);
          } else {
            req.addBytesKeys(ByteString.copyFromUtf8(strKeys[i]));
          }
        }
        BatchLookupResponse resp = r.read().batchLookup(req.build());
        assertEquals(n, resp.getShardIndexesCount(), tag + "batch answer size");
        for (int i = 0; i < n; i++) {
          int idx = resp.getShardIndexes(i);
          String server = idx < 0 ? "NOT_FOUND" : resp.getShards(idx) + "@" + resp.getEpochs(i);
          for (int c = 0; c < clients.size(); c++) {
            String client = ints ? clientRoute(clients.get(c), ks, intKeys[i])
                : clientRoute(clients.get(c), ks, strKeys[i]);
            if (!server.equals(client)) {
              fail(tag + "keyspace " + ks + " key " + (ints ? intKeys[i] : "'" + strKeys[i] + "'") + ": replica "
                  + r.index + " BatchLookup says " + server + ", client " + c + " routes " + client);
            }
            compared++;
          }
        }
      }
      for (int j = 0; j < SINGLE_LOOKUPS_PER_KEYSPACE; j++) {
        int i = rnd.nextInt(n);
        Replica r = replicas[rnd.nextInt(REPLICAS)];
        Key key = ints ? Key.newBuilder().setIntKey(intKeys[i]).build()
            : Key.newBuilder().setStringKey(strKeys[i]).build();
        String server;
        try {
          LookupResponse resp = r.read().lookup(LookupRequest.newBuilder().setKeyspace(ks).setKey(key).build());
          server = resp.getRoute().getShard() + "@" + resp.getRoute().getEpoch()
              + (resp.getRoute().hasRange() ? " " + p(resp.getRoute().getRange()) : "");
        } catch (StatusRuntimeException e) {
          assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode(), tag + "Lookup " + ks + " " + key);
          server = "NOT_FOUND";
        }
        for (int c = 0; c < clients.size(); c++) {
          String client;
          try {
            ShardRoute route = ints ? clients.get(c).route(ks, intKeys[i]) : clients.get(c).route(ks, ShardKey.of(strKeys[i]));
            client = route.shard() + "@" + route.epoch()
                + (route.range() != null ? " " + p(route.range().core().toProto(k.keyType())) : "");
          } catch (ShardmapException e) {
            client = e.code().name();
          }
          assertEquals(server, client, tag + "Lookup " + ks + " " + TextFormat.printer().shortDebugString(key)
              + " on replica " + r.index + " vs client " + c);
          compared++;
        }
      }
    }
    return compared;
  }

  private static String p(io.shardmap.proto.v1.KeyRange r) {
    return TextFormat.printer().shortDebugString(r);
  }

  private static String clientRoute(ShardmapClient c, String ks, long key) {
    try {
      ShardRoute r = c.route(ks, key);
      return r.shard() + "@" + r.epoch();
    } catch (ShardmapException e) {
      return e.code().name();
    }
  }

  private static String clientRoute(ShardmapClient c, String ks, String key) {
    try {
      ShardRoute r = c.route(ks, ShardKey.of(key));
      return r.shard() + "@" + r.epoch();
    } catch (ShardmapException e) {
      return e.code().name();
    }
  }

  /** Random keys, plus every range boundary and the key just below it, where an off-by-one would show. */
  private static long[] intProbes(Random rnd, KeyspaceMap k) {
    List<Long> keys = new ArrayList<>(List.of(Long.MIN_VALUE, Long.MAX_VALUE, 0L, -1L));
    if (k.strategy() == Strategy.STRATEGY_RANGE) {
      for (Route r : k.ranges().routes()) {
        if (r.range().start().length > 0) {
          long b = Keys.decodeInt64(r.range().start());
          keys.add(b);
          keys.add(b - 1);
        }
      }
    }
    while (keys.size() < KEYS_PER_KEYSPACE) {
      keys.add(rnd.nextBoolean() ? rnd.nextLong() : rnd.nextInt(200_001) - 100_000);
    }
    return keys.stream().mapToLong(Long::longValue).toArray();
  }

  private static String[] stringProbes(Random rnd, String ks) {
    List<String> keys = new ArrayList<>();
    if (ks.equals("tenants")) {
      for (int i = 0; i < DIRECTORY_POOL; i++) {
        keys.add("t" + i);
      }
    }
    if (ks.equals("profiles")) {
      keys.addAll(REGION_POOL);
    }
    while (keys.size() < KEYS_PER_KEYSPACE) {
      keys.add((ks.equals("profiles") ? "r-" : "k") + Long.toString(rnd.nextLong() & Long.MAX_VALUE, 36));
    }
    return keys.toArray(String[]::new);
  }

  // ------------------------------------------------------------------ monotonicity, checked live

  private record Sample(String keyspace, long intKey, byte[] bytesKey) {
    String describe() {
      return keyspace + " " + (bytesKey == null ? Long.toString(intKey)
          : "'" + new String(bytesKey, StandardCharsets.UTF_8) + "'");
    }
  }

  private static List<Sample> sampleKeys(Random rnd) {
    List<Sample> out = new ArrayList<>();
    for (int i = 0; i < 24; i++) {
      out.add(new Sample("users", rnd.nextBoolean() ? rnd.nextLong() : rnd.nextInt(200_001) - 100_000, null));
      out.add(new Sample("carts", rnd.nextLong(), null));
      out.add(new Sample("sessions", 0, ("k" + rnd.nextInt(1_000_000)).getBytes(StandardCharsets.UTF_8)));
      out.add(new Sample("profiles", 0, (i < REGION_POOL.size() ? REGION_POOL.get(i) : "r-" + i)
          .getBytes(StandardCharsets.UTF_8)));
      out.add(new Sample("tenants", 0, (i % 4 == 3 ? "x" + rnd.nextInt(1000) : "t" + rnd.nextInt(DIRECTORY_POOL))
          .getBytes(StandardCharsets.UTF_8)));
    }
    return out;
  }

  /**
   * What a client may never show, whatever the faults: its revision going back, or a key whose epoch drops or
   * whose owner changes without a higher epoch (docs/data-model.md, Epochs). A directory key can route nowhere
   * for a while (fallback removed); its epoch must not drop across that gap either, nor across a re-read that
   * hides such a gap (both happened before AdminOps kept the fallback epoch without a fallback shard).
   */
  private final class Observer implements MapListener {
    private final int client;
    private final List<Sample> samples;
    /** Last routed epoch of each sample, kept across unroutable periods (follower thread only). */
    private final long[] lastRouted;

    Observer(int client, List<Sample> samples) {
      this.client = client;
      this.samples = samples;
      this.lastRouted = new long[samples.size()];
    }

    @Override
    public void onChange(MapView beforeView, MapView afterView, boolean resync) {
      DirectorySnapshot before = beforeView == null ? null : beforeView.core();
      DirectorySnapshot after = afterView.core();
      verifier.queue.add(new Observation(client, after, before == null || resync));
      if (before == null) {
        return;
      }
      if (after.revision() < before.revision()) {
        problem("client " + client + " went back from revision " + before.revision() + " to "
            + after.revision() + (resync ? " on a re-read" : ""));
      }
      for (int i = 0; i < samples.size(); i++) {
        Sample s = samples.get(i);
        Route b = route(before, s);
        Route a = route(after, s);
        if (a != null && b == null && a.epoch() < lastRouted[i]) {
          directoryGapDrops.incrementAndGet();
          problem("client " + client + " key " + s.describe() + " routed at epoch " + lastRouted[i]
              + ", then nowhere, then " + a.shard() + "@" + a.epoch() + " (revision " + after.revision() + ")");
        }
        if (a != null) {
          lastRouted[i] = a.epoch();
        }
        if (b == null || a == null) {
          continue;
        }
        boolean dropped = a.epoch() < b.epoch() || (!a.shard().equals(b.shard()) && a.epoch() <= b.epoch());
        if (dropped && resync && s.keyspace().equals("tenants")) {
          directoryReReadDrops.incrementAndGet();
          problem("client " + client + " key " + s.describe() + " " + b.shard() + "@" + b.epoch() + " (revision "
              + before.revision() + ") -> " + a.shard() + "@" + a.epoch() + " after a re-read at revision "
              + after.revision());
        } else if (dropped) {
          problem("client " + client + " key " + s.describe() + " went from " + b.shard() + "@" + b.epoch()
              + " (revision " + before.revision() + ") to " + a.shard() + "@" + a.epoch() + " (revision "
              + after.revision() + (resync ? ", re-read" : "") + ")");
        }
      }
    }

    private Route route(DirectorySnapshot snap, Sample s) {
      KeyspaceMap k = snap.keyspaces().get(s.keyspace());
      if (k == null) {
        problem("client " + client + " lost keyspace " + s.keyspace() + " at revision " + snap.revision());
        return null;
      }
      try {
        return s.bytesKey() == null ? k.routeOrNull(s.intKey()) : k.routeOrNull(s.bytesKey());
      } catch (RuntimeException e) {
        problem("client " + client + " cannot route " + s.describe() + " at revision " + snap.revision()
            + ": " + e.getMessage());
        return null;
      }
    }
  }

  // ------------------------------------------------------------------ live verification

  private long head() {
    for (int attempt = 0; attempt < 5; attempt++) {
      try {
        return etcdReader.currentRevision().get(3, TimeUnit.SECONDS);
      } catch (Exception e) {
        // An election under way; ask again.
      }
    }
    // Without a bound, skip this client's maps until its next full read.
    return Long.MAX_VALUE;
  }

  /** Every revision of the maps, from the test's own etcd watch, decoded as a replica would. */
  private final class TruthFollower implements WatchListener, AutoCloseable {
    private final ConcurrentSkipListMap<Long, DirectorySnapshot> history = new ConcurrentSkipListMap<>();
    volatile DirectorySnapshot current;
    volatile long latest;
    private Watch watch;

    void start() throws Exception {
      RangeResult all = etcdReader.getPrefix(paths.rootPrefix()).get(10, TimeUnit.SECONDS);
      current = DirectorySnapshot.empty(0).apply(all.revision(), decoder.toChanges(all.kvs()));
      history.put(all.revision(), current);
      latest = all.revision();
      watch = etcdReader.watch(paths.rootPrefix(), all.revision(), this);
    }

    @Override
    public void onBatch(long revision, List<WatchEvent> events) {
      DirectorySnapshot before = current;
      if (revision <= before.revision()) {
        return;
      }
      DirectorySnapshot next = before.apply(revision, decoder.toChanges(events, name -> {
        KeyspaceMap k = before.keyspaces().get(name);
        return k == null ? null : k.spec();
      }));
      history.put(revision, next);
      current = next;
      latest = revision;
      synchronized (this) {
        notifyAll();
      }
    }

    /**
     * The newest revision at or before {@code revision} that changed the maps. A revision that changed
     * none (a client presence record) keeps every keyspace map and shard object (DirectorySnapshot.apply).
     */
    long lastChangeAtOrBefore(long revision) {
      Map.Entry<Long, DirectorySnapshot> e = history.floorEntry(revision);
      while (e != null) {
        Map.Entry<Long, DirectorySnapshot> prev = history.lowerEntry(e.getKey());
        if (prev == null || !sameObjects(prev.getValue().keyspaces(), e.getValue().keyspaces())
            || !sameObjects(prev.getValue().shards(), e.getValue().shards())) {
          return e.getKey();
        }
        e = prev;
      }
      throw new IllegalStateException("no history at or before " + revision);
    }

    private static boolean sameObjects(Map<String, ?> a, Map<String, ?> b) {
      if (a.size() != b.size()) {
        return false;
      }
      for (Map.Entry<String, ?> e : a.entrySet()) {
        if (b.get(e.getKey()) != e.getValue()) {
          return false;
        }
      }
      return true;
    }

    @Override
    public void onCompacted(long compactRevision) {
      problem("the test's own etcd watch fell behind a compaction at " + compactRevision);
    }

    /** The maps at {@code revision}, waiting (bounded) for the watch to get there; null on timeout. */
    DirectorySnapshot at(long revision, long timeoutMs) throws InterruptedException {
      long deadline = System.currentTimeMillis() + timeoutMs;
      synchronized (this) {
        while (latest < revision) {
          long left = deadline - System.currentTimeMillis();
          if (left <= 0) {
            return null;
          }
          wait(left);
        }
      }
      Map.Entry<Long, DirectorySnapshot> e = history.floorEntry(revision);
      return e == null ? null : e.getValue();
    }

    @Override
    public void close() {
      if (watch != null) {
        watch.close();
      }
    }
  }

  private record Observation(int client, DirectorySnapshot snapshot, boolean load) {}

  /**
   * Compares each map a client publishes with etcd at the map's revision. Right after a full read a client's
   * keyspaces may be newer than its revision (each is read at its own revision; the watch catches the rest
   * up), so its maps are checked again only from the etcd head at the time of that read on.
   */
  private final class LiveVerifier implements Runnable {
    final LinkedBlockingQueue<Observation> queue = new LinkedBlockingQueue<>();
    final AtomicLongArray consistentFrom = new AtomicLongArray(CLIENTS);
    /** Per client and keyspace, the last pair found equal: unchanged objects need no new comparison. */
    private final KeyspaceMap[][] lastClient = new KeyspaceMap[CLIENTS][KEYSPACES.size()];
    private final KeyspaceMap[][] lastTruth = new KeyspaceMap[CLIENTS][KEYSPACES.size()];
    volatile boolean stopping;

    @Override
    public void run() {
      while (!(stopping && queue.isEmpty())) {
        try {
          Observation o = queue.poll(100, TimeUnit.MILLISECONDS);
          if (o != null) {
            verify(o);
          }
        } catch (InterruptedException e) {
          return;
        } catch (RuntimeException e) {
          problem("live verification failed: " + e);
        }
      }
    }

    private void verify(Observation o) throws InterruptedException {
      int c = o.client();
      if (o.load()) {
        consistentFrom.set(c, head());
      }
      DirectorySnapshot s = o.snapshot();
      if (s.revision() < consistentFrom.get(c)) {
        liveSkipped.incrementAndGet();
        return;
      }
      DirectorySnapshot t = truth.at(s.revision(), 30_000);
      if (t == null) {
        problem("the test's etcd watch did not reach revision " + s.revision() + " (at " + truth.latest + ")");
        return;
      }
      String where = "client " + c + " at revision " + s.revision() + ": ";
      if (!s.shards().equals(t.shards())) {
        problem(where + "shards " + new TreeMap<>(s.shards()).keySet() + " differ from etcd's "
            + new TreeMap<>(t.shards()).keySet() + " (or their registrations do)");
      }
      if (!s.keyspaces().keySet().equals(t.keyspaces().keySet())) {
        problem(where + "keyspaces " + s.keyspaces().keySet() + ", etcd has " + t.keyspaces().keySet());
        return;
      }
      for (int i = 0; i < KEYSPACES.size(); i++) {
        KeyspaceMap a = s.keyspaces().get(KEYSPACES.get(i));
        KeyspaceMap b = t.keyspaces().get(KEYSPACES.get(i));
        if (a == lastClient[c][i] && b == lastTruth[c][i]) {
          continue;
        }
        if (sameContent(a, b)) {
          lastClient[c][i] = a;
          lastTruth[c][i] = b;
        } else {
          List<String> mine = describe(new DirectorySnapshot(s.revision(), Map.of(a.name(), a), Map.of()));
          List<String> theirs = describe(new DirectorySnapshot(t.revision(), Map.of(b.name(), b), Map.of()));
          int d = 0;
          while (d < Math.min(mine.size(), theirs.size()) && mine.get(d).equals(theirs.get(d))) {
            d++;
          }
          problem(where + "keyspace " + a.name() + " differs from etcd: client has "
              + (d < mine.size() ? mine.get(d) : "(end)") + ", etcd has "
              + (d < theirs.size() ? theirs.get(d) : "(end)"));
        }
      }
      liveVerified.incrementAndGet();
    }
  }

  /** Same spec and same owners and epochs everywhere; mod revisions aside (see {@link #describe}). */
  private static boolean sameContent(KeyspaceMap a, KeyspaceMap b) {
    if (!a.spec().equals(b.spec()) || a.broken() != null || b.broken() != null) {
      return false;
    }
    switch (a.strategy()) {
      case STRATEGY_RANGE -> {
        if (a.ranges().size() != b.ranges().size()) {
          return false;
        }
        for (int i = 0; i < a.ranges().size(); i++) {
          Route x = a.ranges().get(i);
          Route y = b.ranges().get(i);
          if (x.epoch() != y.epoch() || !x.shard().equals(y.shard()) || !x.range().equals(y.range())) {
            return false;
          }
        }
        return true;
      }
      case STRATEGY_HASH -> {
        return a.hash().layout().equals(b.hash().layout());
      }
      case STRATEGY_CONSISTENT_HASH -> {
        return a.ring().layout().equals(b.ring().layout());
      }
      case STRATEGY_GEOGRAPHIC -> {
        return a.geo().layout().equals(b.geo().layout());
      }
      case STRATEGY_DIRECTORY -> {
        if (!a.directory().layout().equals(b.directory().layout()) || a.directory().size() != b.directory().size()) {
          return false;
        }
        boolean[] same = {true};
        a.directory().forEach((key, r) -> {
          Route o = b.directory().entry(key);
          same[0] &= o != null && o.epoch() == r.epoch() && o.shard().equals(r.shard());
        });
        return same[0];
      }
      default -> {
        return false;
      }
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
