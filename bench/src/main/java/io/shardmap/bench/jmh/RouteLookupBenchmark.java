package io.shardmap.bench.jmh;

import io.shardmap.bench.RangeMaps;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A cached INT64 lookup on a 100,000-range map: {@code KeyspaceMap.routeOrNull(long)}, what the SDK and
 * the server call per key, against {@code TreeMap<Long, Route>.floorEntry} and a plain
 * {@code Arrays.binarySearch} over the same starts. Keys are uniformly random over the INT64 space
 * (4,096 precomputed, cycled), so every call walks a full binary search. Run with {@code -prof gc} for
 * the allocation rate: routeOrNull should show 0 B/op.
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

  @Setup
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
  public Route baselineTreeMapFloorEntry() {
    return tree.floorEntry(nextKey()).getValue();
  }

  @Benchmark
  public Route baselineBinarySearch() {
    return routes[search(nextKey())];
  }
}
