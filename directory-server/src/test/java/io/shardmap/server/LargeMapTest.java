package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.shardmap.core.Keys;
import io.shardmap.proto.v1.*;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.EtcdCluster;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A server on real etcd loads a map far bigger than gRPC's default 4 MiB message: 100,000 ranges are
 * ≈ 11 MB in one prefix read. (The bench found the server retrying that read forever before the store
 * raised its inbound message limit.)
 */
@Tag("integration")
class LargeMapTest {
  static final int RANGES = 100_000;

  @Test
  @Timeout(value = 3, unit = TimeUnit.MINUTES, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  void aHundredThousandRangesLoadFromEtcd() throws Exception {
    EtcdCluster etcd = EtcdCluster.shared();
    String prefix = TestSupport.uniquePrefix();
    CatalogPaths paths = new CatalogPaths(prefix);
    try (MetaStore store = TestSupport.etcdClient(etcd.clientEndpoints())) {
      Txn.Builder head = Txn.builder()
          .put(paths.shard("s1"), Shard.newBuilder().setName("s1").setState(ShardState.SHARD_STATE_ACTIVE)
              .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase("s1")).build()
              .toByteArray())
          .put(paths.spec("big"), KeyspaceSpec.newBuilder().setName("big").setKeyType(KeyType.KEY_TYPE_INT64)
              .setStrategy(Strategy.STRATEGY_RANGE).build().toByteArray());
      store.commit(head.build()).get(30, TimeUnit.SECONDS);
      // Equal ranges over the whole INT64 space: range i starts at MIN + i * step (range 0 at "unbounded").
      long step = Long.divideUnsigned(-1L, RANGES);
      for (int from = 0; from < RANGES; from += 1000) {
        Txn.Builder txn = Txn.builder();
        for (int i = from; i < from + 1000; i++) {
          KeyRange.Builder r = KeyRange.newBuilder();
          byte[] start = i == 0 ? new byte[0] : Keys.encodeInt64(Long.MIN_VALUE + i * step);
          if (i > 0) {
            r.setStart(Key.newBuilder().setIntKey(Long.MIN_VALUE + i * step));
          }
          if (i < RANGES - 1) {
            r.setEnd(Key.newBuilder().setIntKey(Long.MIN_VALUE + (i + 1) * step));
          }
          txn.put(paths.range("big", start), RangeAssignment.newBuilder().setRange(r).setShard("s1").setEpoch(1)
              .build().toByteArray());
        }
        store.commit(txn.build()).get(30, TimeUnit.SECONDS);
      }
      try (DirectoryServer server = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build());
           TestSupport.Client client = new TestSupport.Client(server.port())) {
        assertEquals(RANGES, server.snapshot().keyspace("big").ranges().size());
        LookupResponse r = client.lookup("big", Long.MIN_VALUE + 77_777 * step + 5);
        assertEquals(Long.MIN_VALUE + 77_777 * step, r.getRoute().getRange().getStart().getIntKey());
      } finally {
        store.commit(Txn.builder().deletePrefix(prefix + "/").build()).get(30, TimeUnit.SECONDS);
      }
    }
  }
}
