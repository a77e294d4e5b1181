package io.shardmap.bench.jmh;

import io.shardmap.bench.RangeMaps;
import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.load.LoadMeter;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import java.util.SplittableRandom;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * The per-call cost of the SDK's load accounting (issue 16): what {@code ShardmapData} adds to a call after
 * it routed the key, on a map of {@code ranges} ranges (100,000: 1024 slots of about 98 ranges each).
 *
 * <ul>
 *   <li>{@code routeAndRecord}: the route lookup a call does, then the meter's record path as
 *       {@code ShardmapData} takes it with accounting on (the keyspace's counters by name, the unit lookup in
 *       the bound table, the striped atomic adds, the one-in-64 sampling draw);
 *   <li>{@code routeOnly}: the same lookup, then the check of the null meter field: accounting off.
 * </ul>
 *
 * The difference is the cost per call. Run with {@code -t 1} and {@code -t 4} (threads share one meter, as
 * a client's threads do); {@code -prof gc} should show 0 B/op for both.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class LoadMeterBenchmark {
  private static final int KEYS = 4096;

  @Param("100000")
  public int ranges;

  KeyspaceMap map;
  LoadMeter on;
  long[] keys;

  @Setup(Level.Trial)
  public void setUp() {
    map = RangeMaps.rangeSnapshot(ranges, 16).keyspace(RangeMaps.KEYSPACE);
    on = new LoadMeter(1024, 64, System::currentTimeMillis, new Counters());
    on.bind(RangeMaps.KEYSPACE, map.table(), map.layoutRevision(), true);
    SplittableRandom rnd = new SplittableRandom(16);
    keys = new long[KEYS];
    for (int i = 0; i < KEYS; i++) {
      keys[i] = rnd.nextLong();
    }
  }

  /** Each thread's cursor over the keys, and the meter it sees (null: accounting off). */
  @State(Scope.Thread)
  public static class Caller {
    int cursor;
    LoadMeter meter;
    LoadMeter none;

    @Setup(Level.Trial)
    public void setUp(LoadMeterBenchmark b) {
      cursor = (int) Thread.currentThread().getId() * 977;
      meter = b.on;
      none = null;
    }
  }

  private long nextKey(Caller c) {
    return keys[c.cursor++ & (KEYS - 1)];
  }

  @Benchmark
  public Route routeAndRecord(Caller c) {
    long k = nextKey(c);
    Route r = map.routeOrNull(k);
    LoadMeter m = c.meter;
    if (m != null) {
      m.record(RangeMaps.KEYSPACE, k, false, 250_000, false);
    }
    return r;
  }

  @Benchmark
  public Route routeOnly(Caller c) {
    long k = nextKey(c);
    Route r = map.routeOrNull(k);
    LoadMeter m = c.none;
    if (m != null) {
      m.record(RangeMaps.KEYSPACE, k, false, 250_000, false);
    }
    return r;
  }
}
