package io.shardmap.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.ref.Reference;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * How the heap commands ({@code heap}, {@code client-heap}) measure retained memory, and their common
 * baseline: heap used after full collections before and after building a structure, the median over
 * trials, against a {@code TreeMap<Long, String>} of the same range starts to shard names.
 */
final class HeapMeasure {
  /** Full collections per settle at most; heap use stops moving after two or three. */
  private static final int MAX_GC_PER_SETTLE = 10;

  private HeapMeasure() {}

  /** The first line of a heap command's output: the environment, the heap limit and the collector. */
  static String environment(String command) {
    return command + " | " + Report.environment() + " | max heap " + Runtime.getRuntime().maxMemory() / (1 << 20)
        + " MiB | gc " + ManagementFactory.getGarbageCollectorMXBeans().get(0).getName();
  }

  /** Heap used after building minus before, both measured after full collections. */
  static long retained(Supplier<Object> build) throws InterruptedException {
    long before = settledHeapUsed();
    Object o = build.get();
    long after = settledHeapUsed();
    Reference.reachabilityFence(o);
    return after - before;
  }

  /** Heap used after full collections, once two in a row agree (or after a bounded number of them). */
  static long settledHeapUsed() throws InterruptedException {
    MemoryMXBean mem = ManagementFactory.getMemoryMXBean();
    long last = -1;
    for (int i = 0; i < MAX_GC_PER_SETTLE; i++) {
      System.gc();
      Thread.sleep(20);
      long used = mem.getHeapMemoryUsage().getUsed();
      if (used == last) {
        return used;
      }
      last = used;
    }
    return last;
  }

  /** The baseline: the map one would write by hand, range starts to shard names (no end, epoch, revision). */
  static TreeMap<Long, String> treeMap(long[] starts, List<String> names) {
    TreeMap<Long, String> m = new TreeMap<>();
    for (int i = 0; i < starts.length; i++) {
      m.put(starts[i], names.get(i % names.size()));
    }
    return m;
  }

  static long median(List<Long> v) {
    long[] a = v.stream().mapToLong(Long::longValue).toArray();
    Arrays.sort(a);
    return a[a.length / 2];
  }

  /** The result table's header; each row from {@link #row}. */
  static final List<String> HEADER = List.of("structure", "retained bytes (median)", "bytes/range", "vs TreeMap");

  /** A result row: the bytes, per range, and as a multiple of the TreeMap baseline. */
  static List<String> row(String name, long bytes, int ranges, long treeMapBytes) {
    return List.of(name, Report.fmt(bytes, 0), Report.fmt((double) bytes / ranges, 1),
        Report.fmt((double) bytes / treeMapBytes, 2) + "x");
  }
}
