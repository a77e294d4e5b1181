package io.shardmap.bench.jmh;

import io.shardmap.bench.RangeMaps;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.store.WatchEvent;
import java.util.ArrayList;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * One split (two RangeAssignment changes in one revision) applied to a 100,000-range INT64 map.
 *
 * <ul>
 *   <li>{@link #applySplit}: {@code DirectorySnapshot.apply}, what a server or SDK does per revision.</li>
 *   <li>{@link #watchBatch}: the server's whole path for one etcd watch batch (DirectoryState's listener):
 *       the spec map, {@code ChangeDecoder.toChanges} on the raw events, then {@code apply}.</li>
 *   <li>{@link #toChangesOnly}: the decoding half of that path alone.</li>
 *   <li>{@link #baselineCopyArrays}: cloning a {@code long[]} and two {@code Object[]} of the map's size.
 *       A copy-on-write table of sorted arrays (what lets readers route without locks) must at least copy
 *       its arrays once per change: this is that floor, and the ratio says how close apply comes.</li>
 *   <li>{@link #baselineTreeMapSplit}: the same split on a mutable {@code TreeMap<Long, Route>} (replace,
 *       insert, then remove the inserted key so the map keeps its size): the cost without any snapshot,
 *       for scale; readers of such a map would need a lock.</li>
 * </ul>
 *
 * Each call applies a different split (1,024 precomputed, cycled) to the same base map, so the map does not
 * grow and the work per call is constant.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g"})
public class MapChangeBenchmark {
  private static final int SHARDS = 16;
  private static final int SPLITS = 1024;
  private static final long REVISION = RangeMaps.LOAD_REVISION + 1;

  @Param("100000")
  public int ranges;

  private DirectorySnapshot base;
  private List<List<MapChange>> changes;
  private List<List<WatchEvent>> events;
  private long[] intStarts;
  private Object[] routes;
  private Object[] starts;
  private TreeMap<Long, Route> tree;
  private Long[] treeLeft;
  private Long[] treeMid;
  private Route[] treeLeftRoute;
  private Route[] treeRightRoute;
  private int cursor;

  @Setup
  public void setUp() {
    base = RangeMaps.rangeSnapshot(ranges, SHARDS);
    long[] s = RangeMaps.evenStarts(ranges);
    changes = new ArrayList<>(SPLITS);
    events = new ArrayList<>(SPLITS);
    treeLeft = new Long[SPLITS];
    treeMid = new Long[SPLITS];
    treeLeftRoute = new Route[SPLITS];
    treeRightRoute = new Route[SPLITS];
    SplittableRandom rnd = new SplittableRandom(7);
    for (int j = 0; j < SPLITS; j++) {
      RangeMaps.Split split = RangeMaps.split(s, 1 + rnd.nextInt(ranges - 2), SHARDS);
      changes.add(split.changes(RangeMaps.KEYSPACE, REVISION));
      events.add(split.events(RangeMaps.KEYSPACE, REVISION));
      treeLeft[j] = split.leftStart();
      treeMid[j] = split.mid();
      treeLeftRoute[j] = KeyspaceMap.rangeRoute(KeyType.KEY_TYPE_INT64, split.left(), REVISION);
      treeRightRoute[j] = KeyspaceMap.rangeRoute(KeyType.KEY_TYPE_INT64, split.right(), REVISION);
    }
    List<Route> rs = base.keyspace(RangeMaps.KEYSPACE).ranges().routes();
    intStarts = s.clone();
    routes = rs.toArray();
    starts = new Object[ranges];
    tree = new TreeMap<>();
    for (int i = 0; i < ranges; i++) {
      starts[i] = i == 0 ? new byte[0] : Keys.encodeInt64(s[i]);
      tree.put(s[i], rs.get(i));
    }
    DirectorySnapshot after = base.apply(REVISION, changes.get(0));
    if (after.keyspace(RangeMaps.KEYSPACE).ranges().size() != ranges + 1
        || watchBatchOn(events.get(0)).keyspace(RangeMaps.KEYSPACE).ranges().size() != ranges + 1) {
      throw new IllegalStateException("a split did not add exactly one range");
    }
  }

  private int next() {
    return cursor++ & (SPLITS - 1);
  }

  @Benchmark
  public DirectorySnapshot applySplit() {
    return base.apply(REVISION, changes.get(next()));
  }

  @Benchmark
  public DirectorySnapshot watchBatch() {
    return watchBatchOn(events.get(next()));
  }

  /** As DirectoryState's watch listener does it per batch. */
  private DirectorySnapshot watchBatchOn(List<WatchEvent> batch) {
    List<MapChange> c = RangeMaps.DECODER.toChanges(batch, this::specOf);
    return base.apply(REVISION, c);
  }

  @Benchmark
  public List<MapChange> toChangesOnly() {
    return RangeMaps.DECODER.toChanges(events.get(next()), this::specOf);
  }

  private KeyspaceSpec specOf(String keyspace) {
    io.shardmap.core.KeyspaceMap k = base.keyspaces().get(keyspace);
    return k == null ? null : k.spec();
  }

  @Benchmark
  public void baselineCopyArrays(Blackhole bh) {
    next();
    bh.consume(intStarts.clone());
    bh.consume(routes.clone());
    bh.consume(starts.clone());
  }

  @Benchmark
  public Route baselineTreeMapSplit() {
    int j = next();
    tree.put(treeLeft[j], treeLeftRoute[j]);
    tree.put(treeMid[j], treeRightRoute[j]);
    return tree.remove(treeMid[j]);
  }
}
