package io.shardmap.server;

import static io.shardmap.server.TestSupport.assertStatus;
import static io.shardmap.server.TestSupport.create;
import static io.shardmap.server.TestSupport.intKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.*;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.testkit.ForwardingMetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The migrator's moving markers ({@code keyspaces/{ks}/moving/{hex start}}) written straight into etcd, as
 * the migrator writes them: split, merge and reassign refuse to change a marked range and DropKeyspace
 * refuses to drop its keyspace, with FAILED_PRECONDITION naming the migration and nothing written; a marker
 * that appears between a plan and its commit ends in the same refusal; and racing admins never change a
 * range after a marker on it was written.
 */
@Tag("integration")
class MovingMarkerTest {
  static String prefix;
  static CatalogPaths paths;
  static HookedStore serverStore;
  static MetaStore etcd;
  static DirectoryServer server;
  static TestSupport.Client c;

  @BeforeAll
  static void start() throws Exception {
    EtcdCluster cluster = EtcdCluster.shared();
    prefix = TestSupport.uniquePrefix();
    paths = new CatalogPaths(prefix);
    serverStore = new HookedStore(TestSupport.etcdClient(cluster.clientEndpoints()));
    server = DirectoryServer.start(TestSupport.options(cluster.clientEndpoints(), prefix).build(), serverStore);
    c = new TestSupport.Client(server.port());
    etcd = TestSupport.etcdClient(cluster.clientEndpoints());
    c.registerShards("s1", "s2");
  }

  @AfterAll
  static void stop() {
    c.close();
    server.close();
    serverStore.close();
    etcd.close();
  }

  // ---------------------------------------------------------------- the migrator's side, by hand

  static byte[] start(long k) {
    return Keys.encodeInt64(k);
  }

  /**
   * Writes a marker the way the migrator must: compares the mod revision of the range record it marks
   * and of the keyspace spec (as just read), and the marker's absence; puts the marker and rewrites the
   * keyspace's moving guard. Returns the txn result and the range record's mod revision it pinned.
   */
  static long[] tryMark(String ks, byte[] rangeStart, String migration) throws Exception {
    KeyValue range = only(etcd.get(paths.range(ks, rangeStart)).get(5, TimeUnit.SECONDS));
    KeyValue spec = only(etcd.get(paths.spec(ks)).get(5, TimeUnit.SECONDS));
    if (range == null || spec == null) {
      return new long[] {0, 0};
    }
    TxnResult r = etcd.commit(Txn.builder()
        .compare(Compare.modRevision(range.key(), range.modRevision()))
        .compare(Compare.modRevision(spec.key(), spec.modRevision()))
        .compare(Compare.absent(paths.moving(ks, rangeStart)))
        .put(paths.moving(ks, rangeStart), migration.getBytes(StandardCharsets.UTF_8))
        .put(paths.movingGuard(ks), new byte[0]).build()).get(5, TimeUnit.SECONDS);
    return new long[] {r.succeeded() ? r.revision() : 0, range.modRevision()};
  }

  /** Marks a range, retrying on conflict; returns the range record's mod revision the marker pinned. */
  static long mark(String ks, byte[] rangeStart, String migration) throws Exception {
    for (int i = 0; i < 1000; i++) {
      long[] r = tryMark(ks, rangeStart, migration);
      if (r[0] != 0) {
        return r[1];
      }
    }
    throw new AssertionError("could not write the marker of " + migration);
  }

  static void unmark(String ks, byte[] rangeStart) throws Exception {
    etcd.commit(Txn.builder().delete(paths.moving(ks, rangeStart)).build()).get(5, TimeUnit.SECONDS);
  }

  static KeyValue only(RangeResult r) {
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

  static long etcdRevision() throws Exception {
    return etcd.currentRevision().get(5, TimeUnit.SECONDS);
  }

  /**
   * Every key of this server's prefix with its mod revision: what a refused change must leave as it was (not
   * the shared etcd's revision, which another test class's expiring leases may move meanwhile).
   */
  static List<String> prefixKeys() throws Exception {
    return etcd.getPrefix(prefix + "/").get(5, TimeUnit.SECONDS).kvs().stream()
        .map(kv -> kv.key() + "@" + kv.modRevision()).sorted().toList();
  }

  /** The call is refused as a change of a moving range, naming the migration, and writes nothing. */
  static void assertRefused(Executable call, String... fragments) throws Exception {
    List<String> before = prefixKeys();
    assertStatus(Status.Code.FAILED_PRECONDITION, call, fragments);
    assertEquals(before, prefixKeys(), "a refused change writes nothing");
  }

  static KeyRange range(Long start, Long end) {
    KeyRange.Builder r = KeyRange.newBuilder();
    if (start != null) {
      r.setStart(intKey(start));
    }
    if (end != null) {
      r.setEnd(intKey(end));
    }
    return r.build();
  }

  static RangeAssignment assignment(Long start, Long end, String shard) {
    return RangeAssignment.newBuilder().setRange(range(start, end)).setShard(shard).build();
  }

  static void createUsers(String ks) {
    c.admin().createKeyspace(create(ks, KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRanges(assignment(null, 100L, "s1")).addRanges(assignment(100L, 200L, "s1"))
        .addRanges(assignment(200L, 300L, "s1")).addRanges(assignment(300L, null, "s2")).build());
  }

  static SplitRangeRequest split(String ks, long at) {
    return SplitRangeRequest.newBuilder().setKeyspace(ks).setSplitKey(intKey(at)).build();
  }

  static MergeRangesRequest merge(String ks, long boundary) {
    return MergeRangesRequest.newBuilder().setKeyspace(ks).setBoundary(intKey(boundary)).build();
  }

  static ReassignRangeRequest reassign(String ks, KeyRange r, String shard) {
    return ReassignRangeRequest.newBuilder().setKeyspace(ks).setRange(r).setShard(shard).build();
  }

  static DropKeyspaceRequest drop(String ks) {
    return DropKeyspaceRequest.newBuilder().setName(ks).build();
  }

  // ---------------------------------------------------------------- tests

  @Test
  void everyChangeOfAMarkedRangeIsRefusedUntilTheMarkerIsGone() throws Exception {
    String ks = "users";
    createUsers(ks);
    mark(ks, start(100), "m1");
    // Lookups of the server must not mind the marker (the watch ignores it).
    assertTrue(server.awaitRevision(etcdRevision(), Duration.ofSeconds(10)));

    assertRefused(() -> c.admin().splitRange(split(ks, 150)),
        "split_key: 100..200 of keyspace 'users' is being moved by migration 'm1'", "migrator cancel m1");
    // Either side of a merge.
    assertRefused(() -> c.admin().mergeRanges(merge(ks, 100)), "boundary: 100..200", "'m1'");
    assertRefused(() -> c.admin().mergeRanges(merge(ks, 200)), "boundary: 100..200", "'m1'");
    assertRefused(() -> c.admin().reassignRange(reassign(ks, range(100L, 200L), "s2")),
        "range: 100..200 of keyspace 'users' is being moved by migration 'm1'");
    assertRefused(() -> c.admin().dropKeyspace(drop(ks)), "name: keyspace 'users'", "migration 'm1'",
        "migrator cancel m1");

    DescribeKeyspaceResponse d = c.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(ks)
        .build());
    assertFalse(d.getMovingUnknown());
    assertEquals(List.of(MovingRange.newBuilder().setRange(range(100L, 200L)).setMigrationId("m1").build()),
        d.getMovingList());

    // Ranges that are not marked stay changeable.
    c.admin().splitRange(split(ks, 250));
    c.admin().mergeRanges(merge(ks, 250));
    assertEquals("s1", c.lookup(ks, 150).getRoute().getShard(), "lookups do not mind the marker");

    unmark(ks, start(100));
    assertEquals(List.of(), c.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(ks)
        .build()).getMovingList());
    c.admin().splitRange(split(ks, 150));
    c.admin().mergeRanges(merge(ks, 150));
    c.admin().reassignRange(reassign(ks, range(100L, 200L), "s2"));
    c.admin().reassignRange(reassign(ks, range(200L, 300L), "s2"));
    c.admin().mergeRanges(merge(ks, 200));
    assertEquals("s2", c.lookup(ks, 150).getRoute().getShard());
    c.admin().dropKeyspace(drop(ks));
  }

  @Test
  void aMarkerOnTheFirstRangeAndAStrayMarkerAreRefusedToo() throws Exception {
    String ks = "firsts";
    createUsers(ks);
    mark(ks, new byte[0], "m-first");
    assertRefused(() -> c.admin().splitRange(split(ks, 0)), "split_key: ..100", "'m-first'");
    assertRefused(() -> c.admin().mergeRanges(merge(ks, 100)), "boundary: ..100", "'m-first'");
    assertRefused(() -> c.admin().reassignRange(reassign(ks, range(null, 100L), "s2")), "range: ..100",
        "'m-first'");
    unmark(ks, new byte[0]);

    // A marker where no range starts (left behind by a broken migrator, say): splitting there would make
    // the new range look moved, so that is refused; the range containing it is not marked.
    etcd.commit(Txn.builder().put(paths.moving(ks, start(150)), "m-stray".getBytes(StandardCharsets.UTF_8))
        .build()).get(5, TimeUnit.SECONDS);
    assertRefused(() -> c.admin().splitRange(split(ks, 150)), "split_key", "at 150", "'m-stray'");
    DescribeKeyspaceResponse d = c.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(ks)
        .build());
    assertEquals(List.of(MovingRange.newBuilder().setRange(range(150L, 150L)).setMigrationId("m-stray")
        .build()), d.getMovingList());
    c.admin().splitRange(split(ks, 120));
    c.admin().mergeRanges(merge(ks, 120));
    assertRefused(() -> c.admin().dropKeyspace(drop(ks)), "'m-stray'");
    unmark(ks, start(150));
    c.admin().dropKeyspace(drop(ks));
  }

  /**
   * The marker is written after the plan read none and before its transaction commits: the transaction's
   * compares must fail it, and the re-plan must end as the clear refusal (not a success that changes a
   * moving range or drops its keyspace, nor ABORTED after every retry).
   */
  @Test
  void aMarkerWrittenBetweenPlanAndCommitEndsInTheRefusal() throws Exception {
    String ks = "between";
    record Op(String name, long markedAt, Executable call, String fragment) {}
    List<Op> ops = List.of(
        new Op("split", 100, () -> c.admin().splitRange(split(ks, 150)), "split_key: 100..200"),
        new Op("merge, right side marked", 100, () -> c.admin().mergeRanges(merge(ks, 100)), "boundary: 100..200"),
        new Op("merge, left side marked", 100, () -> c.admin().mergeRanges(merge(ks, 200)), "boundary: 100..200"),
        new Op("reassign", 100, () -> c.admin().reassignRange(reassign(ks, range(100L, 200L), "s2")),
            "range: 100..200"),
        new Op("drop", 300, () -> c.admin().dropKeyspace(drop(ks)), "name: keyspace 'between'"));
    for (Op op : ops) {
      createUsers(ks);
      String id = "m-" + op.name().replace(' ', '-').replace(",", "");
      AtomicInteger fired = new AtomicInteger();
      AtomicReference<Throwable> hookFailure = new AtomicReference<>();
      serverStore.beforeCommit(txn -> {
        // Only the admin change under test (the marker itself goes through another client).
        if (fired.getAndIncrement() == 0) {
          try {
            mark(ks, start(op.markedAt()), id);
          } catch (Exception | AssertionError e) {
            hookFailure.set(e);
          }
        }
      });
      KeyValue before;
      try {
        before = only(etcd.get(paths.range(ks, start(100))).get(5, TimeUnit.SECONDS));
        assertStatus(Status.Code.FAILED_PRECONDITION, op.call(), op.fragment(), "'" + id + "'");
      } finally {
        serverStore.beforeCommit(null);
      }
      assertEquals(null, hookFailure.get(), op.name());
      // One commit, made from a plan that saw no marker; the refusal came from planning again.
      assertEquals(1, fired.get(), op.name() + ": commits attempted");
      assertEquals(before, only(etcd.get(paths.range(ks, start(100))).get(5, TimeUnit.SECONDS)),
          op.name() + ": the range record is untouched");
      assertNotNull(only(etcd.get(paths.moving(ks, start(op.markedAt()))).get(5, TimeUnit.SECONDS)),
          op.name() + ": the marker is still there");
      unmark(ks, start(op.markedAt()));
      c.admin().dropKeyspace(drop(ks));
    }
  }

  /**
   * Admins hammer the range starting at 0 (reassigning it, splitting it, merging it with its right
   * neighbour) while a "migrator" keeps marking it, compare-and-set on the range's and the spec's mod
   * revisions, and unmarking it again. While a marker is there the range record must keep exactly the mod
   * revision the marker's transaction pinned; changes of other ranges go on.
   */
  @Test
  void racingAdminsNeverChangeARangeAfterItsMarkerWasWritten() throws Exception {
    String ks = "race";
    c.admin().createKeyspace(create(ks, KeyType.KEY_TYPE_INT64, Strategy.STRATEGY_RANGE)
        .addRanges(assignment(null, 0L, "s1")).addRanges(assignment(0L, null, "s1")).build());
    byte[] zero = start(0);
    String id = "m-race";
    AtomicBoolean stop = new AtomicBoolean();
    AtomicInteger successes = new AtomicInteger();
    AtomicInteger refusedAsMoving = new AtomicInteger();
    ConcurrentHashMap<String, Integer> otherOutcomes = new ConcurrentHashMap<>();
    int threads = 6;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<?>> workers = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int tt = t;
      workers.add(pool.submit(() -> {
        ThreadLocalRandom rnd = ThreadLocalRandom.current();
        while (!stop.get()) {
          try {
            LookupResponse at0 = c.lookup(ks, 0);
            KeyRange r = at0.getRoute().getRange();
            long end = r.hasEnd() ? r.getEnd().getIntKey() : Long.MAX_VALUE;
            switch (tt % 3) {
              case 0 -> c.admin().reassignRange(reassign(ks, r,
                  at0.getRoute().getShard().equals("s1") ? "s2" : "s1"));
              case 1 -> {
                if (end > 1) {
                  c.admin().splitRange(split(ks, 1 + rnd.nextLong(Math.min(end - 1, 1L << 40))));
                } else {
                  c.admin().mergeRanges(merge(ks, end));
                }
              }
              default -> {
                if (r.hasEnd()) {
                  c.admin().mergeRanges(merge(ks, end));
                } else {
                  c.admin().splitRange(split(ks, 1 + rnd.nextLong(1L << 40)));
                }
              }
            }
            successes.incrementAndGet();
          } catch (StatusRuntimeException e) {
            String msg = String.valueOf(e.getStatus().getDescription());
            if (e.getStatus().getCode() == Status.Code.FAILED_PRECONDITION && msg.contains("'" + id + "'")) {
              refusedAsMoving.incrementAndGet();
            } else {
              // Stale lookups (NOT_FOUND), different owners, already-owned (FAILED_PRECONDITION) are fine;
              // anything else is counted and judged below.
              otherOutcomes.merge(e.getStatus().getCode().name(), 1, Integer::sum);
            }
          }
        }
        return null;
      }));
    }
    int marked = 0;
    try {
      for (int round = 0; round < 12; round++) {
        Thread.sleep(ThreadLocalRandom.current().nextLong(20, 80));
        long pinned = mark(ks, zero, id);
        marked++;
        // Let the admins keep trying while the marker stands.
        Thread.sleep(150);
        KeyValue rangeNow = only(etcd.get(paths.range(ks, zero)).get(5, TimeUnit.SECONDS));
        assertNotNull(rangeNow, "round " + round + ": the marked range record still exists");
        assertEquals(pinned, rangeNow.modRevision(), "round " + round
            + ": the range record changed after the marker that pinned its mod revision was written");
        unmark(ks, zero);
      }
    } finally {
      stop.set(true);
      pool.shutdown();
    }
    for (Future<?> f : workers) {
      f.get(60, TimeUnit.SECONDS);
    }
    assertEquals(12, marked);
    assertTrue(successes.get() > 0, "the admins got changes through between markers");
    assertTrue(refusedAsMoving.get() > 0, "some changes were refused because of the marker");
    for (String code : otherOutcomes.keySet()) {
      assertTrue(code.equals("NOT_FOUND") || code.equals("FAILED_PRECONDITION") || code.equals("ABORTED"),
          "unexpected outcomes " + otherOutcomes);
    }
    c.admin().dropKeyspace(drop(ks));
  }

  /**
   * DescribeKeyspace waits until its map includes the markers it read, but not for etcd revisions made by
   * keys outside the server's prefix, which its watch never delivers (it would wait out the etcd timeout).
   */
  @Test
  void describeDoesNotWaitForRevisionsOutsideThePrefix() throws Exception {
    String ks = "outside";
    createUsers(ks);
    mark(ks, start(200), "m-outside");
    for (int i = 0; i < 3; i++) {
      etcd.commit(Txn.builder().put(TestSupport.uniquePrefix() + "/unrelated", new byte[1]).build())
          .get(5, TimeUnit.SECONDS);
      long t0 = System.nanoTime();
      DescribeKeyspaceResponse d = c.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(ks)
          .build());
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertEquals(List.of(MovingRange.newBuilder().setRange(range(200L, 300L)).setMigrationId("m-outside")
          .build()), d.getMovingList());
      assertTrue(ms < 1000, "describe took " + ms + " ms (the server's etcd timeout is 2 s)");
    }
    unmark(ks, start(200));
    c.admin().dropKeyspace(drop(ks));
  }

  /**
   * A change whose compare failed is planned again once this server holds every change up to the failed
   * transaction's revision. When another user of the same etcd made that revision, progress past it is
   * enough: the server's snapshot never reaches it, and waiting for that made the call fail with
   * UNAVAILABLE after the etcd timeout.
   */
  @Test
  void aRetryAfterAFailedCompareDoesNotWaitForRevisionsOutsideThePrefix() throws Exception {
    String ks = "retry_outside";
    createUsers(ks);
    AtomicInteger fired = new AtomicInteger();
    AtomicReference<Throwable> hookFailure = new AtomicReference<>();
    serverStore.beforeCommit(txn -> {
      if (fired.getAndIncrement() == 0) {
        try {
          // A concurrent writer rewrites the range record, so the split's compare fails...
          KeyValue r = only(etcd.get(paths.range(ks, start(100))).get(5, TimeUnit.SECONDS));
          etcd.commit(Txn.builder().put(r.key(), r.value()).build()).get(5, TimeUnit.SECONDS);
          // ...and someone else writes last, so the failed transaction reports their revision.
          etcd.commit(Txn.builder().put(TestSupport.uniquePrefix() + "/unrelated", new byte[1]).build())
              .get(5, TimeUnit.SECONDS);
        } catch (Exception | AssertionError e) {
          hookFailure.set(e);
        }
      }
    });
    SplitRangeResponse done;
    try {
      done = c.admin().splitRange(split(ks, 150));
    } finally {
      serverStore.beforeCommit(null);
    }
    assertEquals(null, hookFailure.get());
    assertEquals(2, fired.get(), "one failed commit, then one that landed");
    assertEquals(range(150L, 200L), done.getRight().getRange());
    c.admin().dropKeyspace(drop(ks));
  }

  /** Without etcd the moving ranges are unknown, and DescribeKeyspace says so instead of listing none. */
  @Test
  void describeSaysWhenTheMovingRangesAreUnknown() throws Exception {
    String ks = "unknown";
    createUsers(ks);
    serverStore.failPrefixReads(p -> p.equals(paths.movingPrefix(ks)));
    try {
      DescribeKeyspaceResponse d = c.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(ks)
          .build());
      assertTrue(d.getMovingUnknown());
      assertEquals(4, d.getLayoutEntries());
      // And changes that cannot check the markers are not made.
      assertRefusedUnavailable(() -> c.admin().splitRange(split(ks, 150)));
      assertRefusedUnavailable(() -> c.admin().dropKeyspace(drop(ks)));
    } finally {
      serverStore.failPrefixReads(null);
    }
    c.admin().dropKeyspace(drop(ks));
  }

  static void assertRefusedUnavailable(Executable call) throws Exception {
    List<String> before = prefixKeys();
    assertStatus(Status.Code.UNAVAILABLE, call, "moving markers");
    assertEquals(before, prefixKeys());
  }

  // ---------------------------------------------------------------- a store with hooks

  /** The server's etcd store, with a hook run before each commit and injectable prefix read failures. */
  static final class HookedStore extends ForwardingMetaStore {
    private volatile Consumer<Txn> beforeCommit;
    private volatile Predicate<String> failPrefixReads;

    HookedStore(MetaStore inner) {
      super(inner);
    }

    void beforeCommit(Consumer<Txn> hook) {
      beforeCommit = hook;
    }

    void failPrefixReads(Predicate<String> which) {
      failPrefixReads = which;
    }

    @Override
    public CompletableFuture<RangeResult> getPrefix(String prefix) {
      Predicate<String> fail = failPrefixReads;
      if (fail != null && fail.test(prefix)) {
        return CompletableFuture.failedFuture(new StoreException(StoreException.Kind.UNAVAILABLE,
            "injected: etcd unreachable", null));
      }
      return delegate.getPrefix(prefix);
    }

    @Override
    public CompletableFuture<TxnResult> commit(Txn txn) {
      Consumer<Txn> hook = beforeCommit;
      if (hook != null) {
        hook.accept(txn);
      }
      return delegate.commit(txn);
    }
  }

}
