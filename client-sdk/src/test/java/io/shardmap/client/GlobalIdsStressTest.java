package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.proto.v1.WorkerClaim;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Global ids under leases that expire and clocks that step back, across processes: 16 generators of one
 * name in 4 child JVMs ({@link IdStressProcess}) through two real directory servers on real etcd, with a
 * 1 s lease TTL, issue tens of millions of ids while
 * <ol>
 *   <li>one process is frozen (SIGSTOP) until etcd has expired its 4 worker ids, another process takes them
 *       over and issues with them, and then the frozen process is resumed (SIGCONT);
 *   <li>another process's clock steps back 1.5 s (past the generator's 1 s wait bound);
 *   <li>a third process stops (releasing its worker ids) and is restarted with its clock 9 s behind, so it
 *       takes the same worker ids with a clock below the times their previous holder issued.
 * </ol>
 * Every id each generator returned is written, in order, to a file; the test merges the sorted files
 * (k-way, streaming) and checks: each generator's ids strictly increase; no id appears twice; ids of one
 * worker id from different generators lie in disjoint time intervals (the high-water mark); the frozen
 * process issued nothing with its old worker ids after its lease (nothing stamped later than its last
 * possible renewal + TTL, and nothing after it woke) and logged giving them up, while another process
 * issued with them; the stepped process refused rather than repeat; the restarted process did not issue
 * with a taken-over worker id until its clock passed every id the previous holder issued.
 */
@Tag("consistency")
class GlobalIdsStressTest {
  static final String GEN = "stress";
  /** Short, so that leases expire within the run: the freeze outlasts it, and so may a starved renewer. */
  static final long TTL_MS = 2_000;
  /** Ids per second per generator (paced; a generator behind its pace catches up at full speed). */
  static final long RATE = Long.getLong("shardmap.ids.stress.rate", 100_000);
  static final long MAX_PER_GENERATOR = 20_000_000;
  static final IdLayout LAYOUT = IdLayout.defaults();
  static final long STEP_MS = 1_500;
  /**
   * How far behind the restarted process's clock runs. It must exceed the restart itself (a JVM start and
   * its generators' first lease), or its clock is past the old holder's ids by the time it opens: 4 s did
   * not on a loaded CI machine (about 4.8 s to restart).
   */
  static final long RESTART_BEHIND_MS = 9_000;

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(0).servers(2).sockets().extension();

  @TempDir
  Path dir;

  final List<Proc> procs = new ArrayList<>();

  @AfterEach
  void stop() throws InterruptedException {
    for (Proc p : procs) {
      p.process.destroyForcibly();
      p.process.waitFor(30, TimeUnit.SECONDS);
    }
  }

  /** A child process and what it said. */
  final class Proc {
    final String name;
    final Process process;
    final Writer stdin;
    final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    final StringBuffer log = new StringBuffer();
    /** generator index -> worker id it opened with, and this process's clock then. */
    final Map<Integer, Integer> opened = new ConcurrentHashMap<>();
    final Map<Integer, Long> openedAtClock = new ConcurrentHashMap<>();
    /** generator index -> {ids, unavailable, failedPrecondition}, at the end. */
    final Map<Integer, long[]> summary = new ConcurrentHashMap<>();
    final List<String> sdkLog = java.util.Collections.synchronizedList(new ArrayList<>());
    /** generator index -> the worker id of its latest ids, as they change. */
    final Map<Integer, Integer> using = new ConcurrentHashMap<>();
    /** worker id -> the parent's clock when this process was first seen issuing with it (since clear()). */
    final Map<Integer, Long> usedSince = new ConcurrentHashMap<>();
    volatile long cpuMs = -1;

    Proc(String name, int generators, long clockOffsetMs) throws IOException {
      this.name = name;
      Path java = Path.of(System.getProperty("java.home"), "bin", "java");
      process = new ProcessBuilder(java.toString(), "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
          "-cp", System.getProperty("java.class.path"), IdStressProcess.class.getName(),
          String.join(",", fleet.get().targets()), GEN, Long.toString(TTL_MS), dir.toString(), name,
          Integer.toString(generators), Long.toString(clockOffsetMs), Long.toString(RATE),
          Long.toString(MAX_PER_GENERATOR)).redirectErrorStream(true).start();
      procs.add(this);
      stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
      Thread reader = new Thread(() -> {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
          for (String line; (line = r.readLine()) != null; ) {
            log.append(line).append('\n');
            String[] w = line.split(" ");
            switch (w[0]) {
              case "OPENED" -> {
                openedAtClock.put(Integer.parseInt(w[1]), Long.parseLong(w[3]));
                opened.put(Integer.parseInt(w[1]), Integer.parseInt(w[2]));
              }
              case "GEN" -> summary.put(Integer.parseInt(w[1]),
                  new long[] {Long.parseLong(w[2]), Long.parseLong(w[3]), Long.parseLong(w[4])});
              case "LOG" -> sdkLog.add(line.substring(4));
              case "DONE" -> cpuMs = Long.parseLong(w[1].substring("cpu_ms=".length()));
              case "USING" -> {
                int worker = Integer.parseInt(w[2]);
                using.put(Integer.parseInt(w[1]), worker);
                usedSince.computeIfAbsent(worker, k -> System.currentTimeMillis());
              }
              default -> { }
            }
            lines.add(line);
          }
        } catch (IOException e) {
          log.append("(reader: ").append(e).append(")\n");
        }
        lines.add("EOF");
      }, "ids-stress-" + name);
      reader.setDaemon(true);
      reader.start();
    }

    void send(String line) throws IOException {
      stdin.write(line + "\n");
      stdin.flush();
    }

    /** Waits for the next line that matches, skipping others; fails on the process's end or after 60 s. */
    String await(Predicate<String> what, String describe) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (true) {
        String line = lines.poll(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        if (line == null || line.equals("EOF")) {
          fail(name + " ended or stalled before " + describe + ":\n" + log);
        }
        if (what.test(line)) {
          return line;
        }
      }
    }

    String await(String prefix) throws InterruptedException {
      return await(l -> l.startsWith(prefix), "'" + prefix + "'");
    }

    /** Waits until each of these generators has written ids. */
    void awaitIssuing(Set<Integer> indexes) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (!using.keySet().containsAll(indexes)) {
        assertTrue(System.nanoTime() < deadline && process.isAlive(), name + ": generators " + indexes
            + " did not issue:\n" + log);
        Thread.sleep(20);
      }
    }

    void signal(String sig) throws IOException, InterruptedException {
      Process k = new ProcessBuilder("kill", "-" + sig, Long.toString(process.pid())).inheritIO().start();
      assertTrue(k.waitFor(10, TimeUnit.SECONDS) && k.exitValue() == 0, "kill -" + sig + " " + name);
    }

    void stopAndWait() throws IOException, InterruptedException {
      send("STOP");
      await("DONE");
      assertTrue(process.waitFor(30, TimeUnit.SECONDS), name + " did not exit");
      assertEquals(0, process.exitValue(), name + ":\n" + log);
    }

    Set<Integer> workersOf(Set<Integer> indexes) {
      return indexes.stream().map(opened::get).collect(Collectors.toSet());
    }
  }

  static Set<Integer> range(int from, int to) {
    Set<Integer> s = new HashSet<>();
    for (int i = from; i < to; i++) {
      s.add(i);
    }
    return s;
  }

  /** The worker ids whose claims in etcd name this owner (the process's client id). */
  Set<Integer> claimedWorkers(EtcdMetaStore store, String owner) throws Exception {
    CatalogPaths paths = new CatalogPaths(fleet.get().prefix());
    String prefix = paths.workerClaimsPrefix(GEN);
    Set<Integer> held = new HashSet<>();
    for (KeyValue kv : store.getPrefix(prefix).get(10, TimeUnit.SECONDS).kvs()) {
      if (WorkerClaim.parseFrom(kv.value()).getOwnerId().equals(owner)) {
        held.add(Integer.parseInt(kv.key().substring(prefix.length())));
      }
    }
    return held;
  }

  @Test
  void sixteenGeneratorsInFourProcessesNeverRepeatAnIdThroughFreezesClockStepsAndRestarts() throws Exception {
    ShardmapFleet f = fleet.get();
    long started = System.nanoTime();
    Set<Integer> initial = range(0, 4);
    Proc p0 = new Proc("p0", 4, 0);
    Proc p1 = new Proc("p1", 4, 0);
    Proc p2 = new Proc("p2", 4, 0);
    Proc p3 = new Proc("p3", 4, 0);
    for (Proc p : List.of(p0, p1, p2, p3)) {
      p.await("READY");
    }
    // (Worker ids at open need not be 16 different ones: on a starved machine a renewer may miss its lease
    // already while the others start, and its generator takes another id. What counts is what was issued.)
    Thread.sleep(4_000);

    long stopWall;
    long contWall;
    Set<Integer> frozen;
    int extraTakers;
    Set<Integer> takers = range(4, 8);
    try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(f.etcd().clientEndpoints())
        .requestTimeout(Duration.ofSeconds(5)).connectTimeout(Duration.ofSeconds(5)).build()) {
      // 1. Freeze p1 until etcd has expired its claims; p2 takes its worker ids (the lowest free ones) and
      //    issues with them; then p1 wakes up.
      p1.signal("STOP");
      stopWall = System.currentTimeMillis(); // p1 renewed nothing after this
      frozen = claimedWorkers(store, "p1");
      assertFalse(frozen.isEmpty(), "p1 holds worker ids when frozen");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!claimedWorkers(store, "p1").isEmpty()) {
        assertTrue(System.nanoTime() < deadline, "p1's claims " + frozen + " never expired");
        Thread.sleep(50);
      }
      for (Proc p : List.of(p0, p2, p3)) {
        p.usedSince.clear();
      }
      p2.send("OPEN 4");
      p2.awaitIssuing(takers);
      // Normally p2's new generators hold p1's worker ids (the lowest free ones). On a starved machine a
      // generator that lost its lease meanwhile may hold a lower free id for a moment, or take one of p1's
      // first: open one more generator at a time until another process issues with each of p1's ids.
      int extra = 0;
      deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (!frozen.stream().allMatch(w -> Stream.of(p0, p2, p3).anyMatch(p -> p.usedSince.containsKey(w)))) {
        if (System.nanoTime() > deadline) {
          assertTrue(extra < 8, "no other process issued with p1's worker ids " + frozen + ":\n" + p2.log);
          p2.send("OPEN 1");
          extra++;
          deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        }
        Thread.sleep(20);
      }
      extraTakers = extra;
      // Frozen for longer than a whole TTL, whatever the takeover took: etcd may expire the claims as soon as
      // 2/3 of a TTL after the freeze (the last renewal came up to a third of a TTL before it).
      while (System.currentTimeMillis() <= stopWall + TTL_MS + 100) {
        Thread.sleep(20);
      }
      contWall = System.currentTimeMillis();
      p1.signal("CONT");
    }
    assertTrue(contWall - stopWall > TTL_MS, "p1 was frozen for longer than its lease TTL");
    Thread.sleep(3_000);

    // 2. p3's clock steps back by more than the generator's wait bound.
    p3.send("STEP " + STEP_MS);
    p3.await("STEPPED ");
    Thread.sleep(3_000);

    // 3. p0 stops (releasing its worker ids) and restarts with its clock behind: the same worker ids, whose
    //    high-water marks are ahead of its clock.
    Set<Integer> p0Workers = p0.workersOf(initial);
    p0.stopAndWait();
    Proc p0b = new Proc("p0b", 4, -RESTART_BEHIND_MS);
    p0b.await("READY");
    p0b.awaitIssuing(initial);
    Thread.sleep(3_000);

    for (Proc p : List.of(p0b, p1, p2, p3)) {
      p.stopAndWait();
    }
    long runMs = (System.nanoTime() - started) / 1_000_000;

    // ---- the files: merge, duplicates, spans
    long checkStarted = System.nanoTime();
    List<IdStream> streams = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      for (Path p : files.filter(p -> p.toString().endsWith(".ids")).sorted().toList()) {
        streams.add(new IdStream(streams.size(), p));
      }
    }
    long merged = merge(streams);
    long checkMs = (System.nanoTime() - checkStarted) / 1_000_000;
    long reported = 0;
    for (Proc p : procs) {
      for (long[] s : p.summary.values()) {
        reported += s[0];
      }
    }
    assertEquals(reported, merged, "the files hold every id the generators returned");
    Map<String, IdStream> byName = new HashMap<>();
    for (IdStream s : streams) {
      byName.put(s.name, s);
    }
    assertEquals(4 + 4 + 8 + extraTakers + 4 + 4, streams.size());

    // Ids of one worker id from different generators: disjoint time intervals, in claim order.
    Map<Integer, List<Span>> byWorker = new TreeMap<>();
    int spans = 0;
    for (IdStream s : streams) {
      for (Span sp : s.spans) {
        byWorker.computeIfAbsent(sp.worker, k -> new ArrayList<>()).add(sp);
        spans++;
      }
    }
    int handovers = 0;
    for (List<Span> l : byWorker.values()) {
      l.sort(Comparator.comparingLong((Span sp) -> sp.minTime).thenComparingLong(sp -> sp.maxTime)
          .thenComparingInt(sp -> sp.stream.ordinal).thenComparingInt(sp -> sp.ordinal));
      for (int i = 1; i < l.size(); i++) {
        Span a = l.get(i - 1);
        Span b = l.get(i);
        if (a.stream == b.stream) {
          assertTrue(a.maxTime <= b.minTime, a + " then " + b);
        } else {
          handovers++;
          assertTrue(a.maxTime < b.minTime, "worker " + a.worker + " used at overlapping times: " + a + " and " + b);
        }
      }
    }

    // 1. The frozen process: nothing with the worker ids it held when frozen is stamped after its lease (it
    //    renewed nothing after stopWall) or after it woke; it logged giving each of them up, and issued again
    //    (under other claims) after waking; meanwhile another process issued with each of them.
    List<IdStream> p1Streams = streams.stream().filter(x -> x.name.startsWith("p1-")).toList();
    long frozenIds = 0;
    for (int w : frozen) {
      List<Span> old = p1Streams.stream().flatMap(x -> x.spans.stream())
          .filter(sp -> sp.worker == w && sp.minTime <= stopWall).toList();
      long oldMax = Long.MIN_VALUE;
      for (Span sp : old) {
        assertTrue(sp.maxTime <= stopWall + TTL_MS, "p1 issued with worker " + w + " at ms " + sp.maxTime
            + ", after its lease (renewed at the latest at " + stopWall + ", TTL " + TTL_MS + "): " + sp);
        assertTrue(sp.maxTime < contWall, "p1 issued with worker " + w + " after waking: " + sp);
        oldMax = Math.max(oldMax, sp.maxTime);
        frozenIds += sp.count;
      }
      // A claim p1 never issued with can be an orphan: an AcquireWorker whose answer p1 did not get in time
      // (a starved server) leaves a claim nobody renews, which expires with its lease (worker-leases.md).
      if (!old.isEmpty()) {
        assertTrue(p1.sdkLog.stream().anyMatch(m -> m.contains("gave up worker id " + w + ":")),
            "p1 logged giving up worker id " + w + ":\n" + String.join("\n", p1.sdkLog));
      }
      long above = oldMax;
      assertTrue(streams.stream().filter(x -> !x.name.startsWith("p1-")).flatMap(x -> x.spans.stream())
          .anyMatch(sp -> sp.worker == w && sp.minTime > above && sp.minTime < contWall),
          "another process issued with worker " + w + " while p1 was frozen, above p1's ids");
    }
    assertTrue(frozenIds > 0, "p1 issued with the worker ids it held when frozen");
    for (IdStream s : p1Streams) {
      assertTrue(s.spans.stream().anyMatch(sp -> sp.minTime >= contWall), s.name + " issued again after waking");
    }

    // 2. The stepped clock: each of p3's generators refused (FAILED_PRECONDITION after waiting its 1 s bound)
    //    rather than reuse a time; its ids kept increasing (checked by the merge).
    long steppedRefusals = 0;
    for (int g : initial) {
      long[] sum = p3.summary.get(g);
      assertTrue(sum[1] + sum[2] >= 1, "p3-g" + g + " refused while its clock was behind");
      steppedRefusals += sum[2];
    }
    assertTrue(steppedRefusals >= 1, "p3's generators refused FAILED_PRECONDITION (clock behind past 1 s)");

    // 3. The restarted process: it took worker ids used just before (normally p0's, released: the lowest free
    //    ones) with its clock behind the times they were used at; it waited or refused until its clock passed
    //    every id of their previous holders.
    int behind = 0;
    for (int g : initial) {
      Span first = byName.get("p0b-g" + g).spans.get(0);
      int w = first.worker;
      assertEquals(p0b.opened.get(g), w);
      long prevLast = streams.stream().filter(x -> !x.name.startsWith("p0b-")).flatMap(x -> x.spans.stream())
          .filter(sp -> sp.worker == w && sp.minTime < first.minTime).mapToLong(sp -> sp.maxTime).max()
          .orElse(Long.MIN_VALUE);
      long clockAtOpen = p0b.openedAtClock.get(g);
      if (clockAtOpen < prevLast) {
        behind++;
        assertTrue(first.minTime > prevLast, "p0b-g" + g + "'s first id (ms " + first.minTime + ") is after the "
            + "previous holder's last (ms " + prevLast + ") although its clock was at " + clockAtOpen);
      }
      System.out.printf("GlobalIdsStressTest: p0b-g%d took worker %d (p0 had %s) with its clock at %d, %s; first "
          + "id at ms %d; refused %d times%n", g, w, p0Workers, clockAtOpen, prevLast == Long.MIN_VALUE
          ? "a worker id not used before" : (prevLast - clockAtOpen) + " ms behind the previous holder's last id",
          first.minTime, p0b.summary.get(g)[1] + p0b.summary.get(g)[2]);
    }
    assertTrue(behind >= 1, "p0b took at least one worker id whose last use is ahead of its clock");

    long gaveUp = 0;
    long acquired = 0;
    for (Proc p : procs) {
      gaveUp += p.sdkLog.stream().filter(m -> m.contains("gave up worker id")).count();
      acquired += p.sdkLog.stream().filter(m -> m.contains("acquired worker id")).count();
    }
    assertTrue(gaveUp >= 4 && acquired >= 4, "leases lost " + gaveUp + ", re-acquired " + acquired);
    long bytes = 0;
    for (IdStream s : streams) {
      bytes += s.bytes;
    }
    long childCpuMs = procs.stream().mapToLong(p -> p.cpuMs).sum();
    System.out.printf("GlobalIdsStressTest: %,d ids from %d generators in 5 processes (%,d bytes of files), no "
        + "duplicate; run %,d ms, check %,d ms; %d spans, %d hand-overs of a worker id between generators; leases "
        + "given up %d, re-acquired %d; p1 frozen %,d ms; child processes' CPU %,d ms%n", merged, streams.size(), bytes,
        runMs, checkMs, spans, handovers, gaveUp, acquired, contWall - stopWall, childCpuMs);
  }

  /** A run of one stream's ids with one worker id, between refusals. */
  static final class Span {
    final IdStream stream;
    final int ordinal;
    final int worker;
    long minTime = Long.MAX_VALUE;
    long maxTime = Long.MIN_VALUE;
    long count;

    Span(IdStream stream, int ordinal, int worker) {
      this.stream = stream;
      this.ordinal = ordinal;
      this.worker = worker;
    }

    @Override
    public String toString() {
      return stream.name + "#" + ordinal + "{worker " + worker + ", " + count + " ids, ms " + minTime + ".." + maxTime + "}";
    }
  }

  /** One generator's file, read forward: the current id ({@link #head}) and the spans read so far. */
  static final class IdStream {
    final int ordinal;
    final String name;
    final InputStream in;
    final long bytes;
    final byte[] buf = new byte[1 << 16];
    int pos;
    int lim;
    long head;
    long prev;
    long count;
    Span span;
    final List<Span> spans = new ArrayList<>();

    IdStream(int ordinal, Path p) throws IOException {
      this.ordinal = ordinal;
      this.name = p.getFileName().toString().replace(".ids", "");
      this.in = new FileInputStream(p.toFile());
      this.bytes = Files.size(p);
    }

    private int readByte() throws IOException {
      if (pos == lim) {
        lim = in.read(buf);
        pos = 0;
        if (lim <= 0) {
          lim = 0;
          return -1;
        }
      }
      return buf[pos++] & 0xFF;
    }

    /** Moves to the next id; false at the end. Checks that ids strictly increase and tracks spans. */
    boolean advance() throws IOException {
      for (;;) {
        long v = 0;
        int shift = 0;
        int b;
        do {
          b = readByte();
          if (b < 0) {
            if (shift != 0) {
              fail(name + ": truncated");
            }
            in.close();
            return false;
          }
          v |= (long) (b & 0x7F) << shift;
          shift += 7;
        } while ((b & 0x80) != 0);
        if (v == 0) {
          span = null; // a run of refusals: the claim may have changed
          continue;
        }
        long id = prev + v;
        if (count > 0 && id <= prev) {
          fail(name + ": id " + id + " after " + prev + " (ids of one generator must strictly increase)");
        }
        if (id <= 0) {
          fail(name + ": id " + id + " is not positive");
        }
        prev = id;
        head = id;
        count++;
        int worker = (int) LAYOUT.workerOf(id);
        long time = LAYOUT.unixMillisOf(id);
        if (span == null || span.worker != worker) {
          span = new Span(this, spans.size(), worker);
          spans.add(span);
        }
        span.minTime = Math.min(span.minTime, time);
        span.maxTime = Math.max(span.maxTime, time);
        span.count++;
        return true;
      }
    }
  }

  /**
   * K-way merge of the streams in id order, failing on an id present twice. A stream is taken off the heap
   * and drained while its ids stay below every other stream's head, so the heap is touched once per run of
   * ids rather than once per id.
   */
  static long merge(List<IdStream> streams) throws IOException {
    PriorityQueue<IdStream> heap = new PriorityQueue<>(Comparator.comparingLong((IdStream s) -> s.head));
    for (IdStream s : streams) {
      if (s.advance()) {
        heap.add(s);
      }
    }
    long n = 0;
    long last = 0;
    while (!heap.isEmpty()) {
      IdStream s = heap.poll();
      long bound = heap.isEmpty() ? Long.MAX_VALUE : heap.peek().head;
      boolean more;
      do {
        long id = s.head;
        if (id == bound) {
          fail("duplicate id " + id + " (worker " + LAYOUT.workerOf(id) + ", ms " + LAYOUT.unixMillisOf(id)
              + ", sequence " + LAYOUT.sequenceOf(id) + ") in " + s.name + " and " + heap.peek().name);
        }
        if (n > 0 && id <= last) {
          fail("merge out of order at " + id);
        }
        last = id;
        n++;
        more = s.advance();
      } while (more && s.head < bound);
      if (more) {
        heap.add(s);
      }
    }
    return n;
  }
}
