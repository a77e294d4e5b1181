package io.shardmap.bench.jmh;

import io.shardmap.client.ShardRoute;
import io.shardmap.bench.RangeMaps;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.ShardmapClient;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * A cached INT64 lookup on a 100,000-range map: {@code KeyspaceMap.routeOrNull(long)}, what the SDK and
 * the server call per key, against {@code TreeMap<Long, Route>.floorEntry} and a plain
 * {@code Arrays.binarySearch} over the same starts. Keys are uniformly random over the INT64 space
 * (4,096 precomputed, cycled), so every call walks a full binary search. Run with {@code -prof gc} for
 * the allocation rate: routeOrNull should show 0 B/op.
 *
 * <p>The SDK path, {@code sdkRoute}: {@code ShardmapClient.route(keyspace, key)} on a real client that
 * loaded the same map from a directory server in this JVM (on {@link InMemoryMetaStore}) and follows its
 * watch stream: the staleness check (when configured), the volatile snapshot read, the keyspace lookup by
 * name, then {@code KeyspaceMap.route(long)}. {@code sdkRouteMaxStaleness} is the same with
 * {@code maxStaleness} set, which adds a clock read per lookup. Server and clients are started only for
 * the sdk benchmarks; they sit idle during measurement (a heartbeat every 2 s).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class RouteLookupBenchmark {
  private static final int KEYS = 4096;

  @Param("100000")
  public int ranges;

  private KeyspaceMap map;
  private long[] starts;
  private Route[] routes;
  private TreeMap<Long, Route> tree;
  private long[] keys;
  private int cursor;

  private InMemoryMetaStore sdkStore;
  private ShardmapFleet sdkFleet;
  private ShardmapClient client;
  private ShardmapClient stalenessClient;

  @Setup(Level.Trial)
  public void trialSetUp(BenchmarkParams params) throws Exception {
    setUp();
    if (params.getBenchmark().substring(params.getBenchmark().lastIndexOf('.') + 1).startsWith("sdk")) {
      startSdk();
    }
  }

  /** The maps and keys of every benchmark (checks that the three lookups agree). */
  public void setUp() {
    map = RangeMaps.rangeSnapshot(ranges, 16).keyspace(RangeMaps.KEYSPACE);
    starts = RangeMaps.evenStarts(ranges);
    List<Route> rs = map.ranges().routes();
    routes = rs.toArray(new Route[0]);
    tree = new TreeMap<>();
    for (int i = 0; i < ranges; i++) {
      tree.put(starts[i], rs.get(i));
    }
    SplittableRandom rnd = new SplittableRandom(11);
    keys = new long[KEYS];
    for (int i = 0; i < KEYS; i++) {
      keys[i] = rnd.nextLong();
      if (map.routeOrNull(keys[i]) != tree.floorEntry(keys[i]).getValue()
          || map.routeOrNull(keys[i]) != routes[search(keys[i])]) {
        throw new IllegalStateException("the three lookups disagree on key " + keys[i]);
      }
    }
  }

  /**
   * A directory server on loopback holding the same map (written to its store as records, then loaded),
   * and two clients that have loaded it from the server; checks the clients agree with the map on every key.
   */
  public void startSdk() throws Exception {
    sdkStore = new InMemoryMetaStore();
    RangeMaps.write(sdkStore, RangeMaps.PATHS, RangeMaps.KEYSPACE, ranges, 16, InMemoryMetaStore.DEFAULT_MAX_TXN_OPS);
    sdkFleet = ShardmapFleet.builder().store(sdkStore).sockets().productionIntervals().prefix(RangeMaps.PREFIX)
        .unregistered().build();
    ClientOptions.Builder o = ClientOptions.builder().targets(sdkFleet.targets())
        .keyspaces(RangeMaps.KEYSPACE);
    client = ShardmapClient.start(o.build());
    stalenessClient = ShardmapClient.start(o.maxStaleness(Duration.ofHours(1)).build());
    for (long k : keys) {
      Route want = map.routeOrNull(k);
      for (ShardmapClient c : new ShardmapClient[] {client, stalenessClient}) {
        ShardRoute got = c.route(RangeMaps.KEYSPACE, k);
        if (!got.shard().equals(want.shard()) || got.epoch() != want.epoch()
            || !got.range().toString().equals(want.range().format(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64))) {
          throw new IllegalStateException("the client routes key " + k + " to " + got + ", the map to " + want);
        }
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    for (AutoCloseable c : new AutoCloseable[] {client, stalenessClient, sdkFleet, sdkStore}) {
      if (c != null) {
        try {
          c.close();
        } catch (Exception ignored) {
          // the fork ends anyway
        }
      }
    }
  }

  private long nextKey() {
    return keys[cursor++ & (KEYS - 1)];
  }

  private int search(long key) {
    int i = Arrays.binarySearch(starts, key);
    return i >= 0 ? i : -i - 2;
  }

  @Benchmark
  public Route routeOrNull() {
    return map.routeOrNull(nextKey());
  }

  @Benchmark
  public ShardRoute sdkRoute() {
    return client.route(RangeMaps.KEYSPACE, nextKey());
  }

  @Benchmark
  public ShardRoute sdkRouteMaxStaleness() {
    return stalenessClient.route(RangeMaps.KEYSPACE, nextKey());
  }

  @Benchmark
  public Route baselineTreeMapFloorEntry() {
    return tree.floorEntry(nextKey()).getValue();
  }

  @Benchmark
  public Route baselineBinarySearch() {
    return routes[search(nextKey())];
  }
}
