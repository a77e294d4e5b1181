package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.catalog.LeasedSingleton;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.testkit.Await;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The resolver role's lease on real etcd: a holder that dies without giving the role up (it stops renewing,
 * as a killed server does) loses it when etcd expires its lease, and the other server takes it then.
 */
@Tag("integration")
@Timeout(60)
class LeasedSingletonEtcdTest {
  static final Duration TTL = Duration.ofSeconds(2);

  @Test
  void aHolderThatDiesLosesTheRoleWhenItsLeaseExpires() throws Exception {
    EtcdCluster etcd = EtcdCluster.shared();
    String key = "/t" + UUID.randomUUID().toString().replace("-", "").substring(0, 12) + "/txn-resolver";
    ServerMetrics metrics = new ServerMetrics();
    try (MetaStore dead = client(etcd); MetaStore alive = client(etcd)) {
      LeasedSingleton a = new LeasedSingleton(new MeteredMetaStore(dead, metrics::etcdRequest, System::nanoTime), key,
          "a", TTL, Duration.ofSeconds(3), System::nanoTime, "txn_resolver");
      LeasedSingleton b = new LeasedSingleton(new MeteredMetaStore(alive, metrics::etcdRequest, System::nanoTime), key,
          "b", TTL, Duration.ofSeconds(3), System::nanoTime, "txn_resolver");
      assertTrue(a.check());
      assertFalse(b.check(), "held by a");
      assertEquals("a", holder(alive, key));
      // a dies here: it never renews again. b keeps checking, as its scans do.
      Await.until(Duration.ofSeconds(30), "b takes the role once a's lease expired", () -> {
        try {
          return b.check();
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
      });
      assertEquals("b", holder(alive, key));
      b.release();
      assertEquals(null, holder(alive, key), "released: the key is gone at once");
    }
  }

  static MetaStore client(EtcdCluster etcd) {
    return EtcdMetaStore.builder().endpoints(etcd.clientEndpoints()).requestTimeout(Duration.ofSeconds(3))
        .connectTimeout(Duration.ofSeconds(3)).build();
  }

  static String holder(MetaStore s, String key) throws Exception {
    RangeResult r = s.get(key).get();
    return r.kvs().isEmpty() ? null : r.kvs().get(0).valueUtf8();
  }
}
