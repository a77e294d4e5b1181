package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.ClientPresence;
import io.shardmap.proto.v1.Shard;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.KeyValue;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.time.Duration;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The presence publisher on the in-memory store and a hand-driven clock: what is published, when it is
 * rewritten (and when not), client timeouts, lease expiry and revocation.
 */
@Tag("unit")
class ClientRegistryTest {
  static final CatalogPaths PATHS = new CatalogPaths("/p");
  static final String KEY = PATHS.clients("server-1");

  final AtomicLong clock = new AtomicLong(1_000_000_000L);
  /** Revisions that changed the maps, as the server's history would hold them (loaded at 5). */
  final TreeSet<Long> changes = new TreeSet<>(List.of(5L, 10L, 20L));
  InMemoryMetaStore store;
  ClientRegistry registry;

  @BeforeEach
  void setUp() {
    store = new InMemoryMetaStore(clock::get);
    ClientRegistry.ChangeIndex index = rev -> {
      Long floor = changes.floor(rev);
      Long next = changes.higher(rev);
      return new long[] {floor == null ? rev : floor, next == null ? Long.MAX_VALUE : next};
    };
    registry = new ClientRegistry(store, PATHS, "server-1", Duration.ofSeconds(10), Duration.ofSeconds(2),
        index, clock::get, () -> 1234L, new ServerMetrics());
  }

  @AfterEach
  void tearDown() {
    registry.close();
    store.close();
  }

  private void advance(Duration d) {
    clock.addAndGet(d.toNanos());
  }

  private KeyValue record() throws Exception {
    RangeResult r = store.get(KEY).get(1, TimeUnit.SECONDS);
    return r.kvs().isEmpty() ? null : r.kvs().get(0);
  }

  private ClientPresence presence() throws Exception {
    KeyValue kv = record();
    return kv == null ? null : ClientPresence.parseFrom(kv.value());
  }

  @Test
  void publishesOnlyWhenTheAggregateChanges() throws Exception {
    registry.tick();
    ClientPresence p = presence();
    assertEquals("server-1", p.getServerId());
    assertEquals(0, p.getClientCount(), "a server without clients says so");
    assertEquals(1234L, p.getPublishedUnixMs());
    assertNotEquals(0, record().lease(), "under a lease");
    long firstWrite = record().modRevision();

    registry.tick();
    assertEquals(firstWrite, record().modRevision(), "nothing changed, nothing written");

    registry.report("b", 15, 30_000);
    registry.report("a", 12, 5_000);
    registry.tick();
    p = presence();
    assertEquals(2, p.getClientCount());
    assertEquals(10, p.getMinAppliedRevision(), "rounded down to the newest change at or before 12");
    assertEquals("a", p.getLaggardClientId());
    assertEquals(30_000, p.getMaxStalenessMs(), "the largest limit");
    long second = record().modRevision();
    assertTrue(second > firstWrite);

    // Revisions that changed no map (this server's own writes, say) move the clients but not the record:
    // otherwise every write would come back as the next heartbeat's revision and rewrite it forever.
    registry.report("a", 17, 5_000);
    registry.report("b", 16, 30_000);
    registry.tick();
    assertEquals(second, record().modRevision(), "no rewrite for revisions that changed nothing");
    assertEquals("a", presence().getLaggardClientId(), "the laggard does not flip between equals");

    // A change (20) applied by one client only: the other still holds the minimum.
    registry.report("b", 21, 30_000);
    registry.tick();
    assertEquals(second, record().modRevision());
    registry.report("a", 20, 5_000);
    registry.tick();
    p = presence();
    assertEquals(20, p.getMinAppliedRevision(), "every client applied the change at 20");
    assertEquals("a", p.getLaggardClientId());

    // A client without a staleness limit makes the aggregate unlimited (0).
    registry.report("c", 25, 0);
    registry.tick();
    p = presence();
    assertEquals(3, p.getClientCount());
    assertEquals(0, p.getMaxStalenessMs(), "one client without a limit: no bound");
  }

  @Test
  void theLaggardIsTheClientBelowTheNextChange() throws Exception {
    registry.report("z-behind", 11, 1000);
    registry.report("a-ahead", 25, 1000);
    registry.tick();
    ClientPresence p = presence();
    assertEquals(10, p.getMinAppliedRevision());
    assertEquals("z-behind", p.getLaggardClientId(), "not the smaller id that already applied 20");
  }

  @Test
  void forgetsClientsThatStopReporting() throws Exception {
    registry.report("gone", 10, 1000);
    registry.report("alive", 20, 1000);
    registry.tick();
    assertEquals(2, presence().getClientCount());
    assertEquals("gone", presence().getLaggardClientId());
    for (int i = 0; i < 6; i++) {
      advance(Duration.ofSeconds(2));
      registry.report("alive", 20, 1000);
      registry.tick();
    }
    ClientPresence p = presence();
    assertEquals(1, p.getClientCount(), "silent for 12 s > 10 s: forgotten");
    assertEquals(20, p.getMinAppliedRevision());
    assertEquals("alive", p.getLaggardClientId());
    for (int i = 0; i < 6; i++) {
      advance(Duration.ofSeconds(2));
      registry.tick();
    }
    p = presence();
    assertEquals(0, p.getClientCount());
    assertEquals(0, p.getMinAppliedRevision());
    assertEquals("", p.getLaggardClientId());
  }

  @Test
  void aLateReportWinsSoOnlyUnderstatementsArePossible() throws Exception {
    registry.report("a", 20, 1000);
    registry.report("a", 12, 1000); // reordered: the older report arrives last
    registry.tick();
    assertEquals(10, presence().getMinAppliedRevision(), "never more than the client last said");
  }

  @Test
  void keepsItsLeaseAliveAndRewritesTheRecordWhenTheLeaseIsLost() throws Exception {
    registry.report("a", 12, 1000);
    registry.tick();
    long lease = record().lease();
    // Renewed every third of the TTL: the record outlives the TTL many times over.
    for (int i = 0; i < 20; i++) {
      advance(Duration.ofSeconds(2));
      registry.report("a", 12, 1000);
      registry.tick();
    }
    assertEquals(lease, record().lease());

    // etcd unreachable for longer than the TTL: the lease expires and the record with it.
    store.setUnavailable(true);
    for (int i = 0; i < 7; i++) {
      advance(Duration.ofSeconds(2));
      registry.report("a", 12, 1000);
      registry.tick();
    }
    store.setUnavailable(false);
    store.expireLeases();
    assertNull(record(), "the record went with the lease");
    registry.report("a", 12, 1000);
    registry.tick();
    registry.tick();
    assertEquals(1, presence().getClientCount(), "rewritten under a new lease");
    assertNotEquals(lease, record().lease());
  }

  @Test
  void aDeadServersRecordExpiresAndACloseRevokesAtOnce() throws Exception {
    registry.tick();
    assertEquals(0, presence().getClientCount());
    // No more ticks (the server died): the lease runs out.
    advance(ClientRegistry.LEASE_TTL.plusSeconds(1));
    store.expireLeases();
    assertNull(record());

    ClientRegistry other = new ClientRegistry(store, PATHS, "server-2", Duration.ofSeconds(10),
        Duration.ofSeconds(2), rev -> new long[] {rev, rev + 1}, clock::get, () -> 1L, new ServerMetrics());
    other.tick();
    String key2 = PATHS.clients("server-2");
    assertEquals(1, store.get(key2).get(1, TimeUnit.SECONDS).kvs().size());
    other.close();
    assertTrue(store.get(key2).get(1, TimeUnit.SECONDS).kvs().isEmpty(), "revoked on close");
  }

  /** The server's real index: revisions without map changes round down to the last one with changes. */
  @Test
  void directoryStateBracketsRevisionsByMapChanges() throws Exception {
    InMemoryMetaStore s = new InMemoryMetaStore();
    ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor();
    DirectoryState state = new DirectoryState(s, PATHS, scheduler, System::nanoTime, Duration.ofSeconds(2),
        Duration.ofSeconds(1), 100, new ServerMetrics());
    try {
      long loaded = put(s, "/p/unrelated", new byte[] {1});
      state.start();
      long shard = put(s, PATHS.shard("s1"), Shard.newBuilder().setName("s1").build().toByteArray());
      long presence1 = put(s, PATHS.clients("x"), new byte[] {1});
      long presence2 = put(s, PATHS.clients("x"), new byte[] {2});
      long shard2 = put(s, PATHS.shard("s2"), Shard.newBuilder().setName("s2").build().toByteArray());
      long presence3 = put(s, PATHS.clients("x"), new byte[] {3});
      assertTrue(state.awaitRevision(presence3, Duration.ofSeconds(5)));
      assertArrayEquals(new long[] {loaded, shard}, state.changeBracket(loaded));
      assertArrayEquals(new long[] {shard, shard2}, state.changeBracket(shard));
      assertArrayEquals(new long[] {shard, shard2}, state.changeBracket(presence1));
      assertArrayEquals(new long[] {shard, shard2}, state.changeBracket(presence2));
      assertArrayEquals(new long[] {shard2, Long.MAX_VALUE}, state.changeBracket(presence3));
      assertArrayEquals(new long[] {shard2, Long.MAX_VALUE}, state.changeBracket(presence3 + 100),
          "past the snapshot: never above what the server knows");
      assertArrayEquals(new long[] {loaded - 1, loaded}, state.changeBracket(loaded - 1),
          "older than the history: not rounded");
    } finally {
      state.close();
      scheduler.shutdownNow();
      s.close();
    }
  }

  private static long put(InMemoryMetaStore s, String key, byte[] value) throws Exception {
    return s.commit(Txn.builder().put(key, value).build()).get(1, TimeUnit.SECONDS).revision();
  }
}
