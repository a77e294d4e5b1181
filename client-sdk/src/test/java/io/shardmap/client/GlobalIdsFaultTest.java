package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdLayout;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.Txn;
import io.shardmap.testkit.fleet.ShardmapFleet;
import io.shardmap.testkit.fleet.ShardmapFleetExtension;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A generator cut off from every directory server's id service (its calls fail UNAVAILABLE in its own
 * channels; the servers and etcd stay up for everyone else) stops issuing by its lease's validity bound,
 * another process takes its worker id once etcd expires the lease, and when the cut ends the first
 * generator resumes under a new claim: its ids keep strictly increasing, and none equals any id the
 * other process issued meanwhile (checked against every id both issued).
 */
@Tag("fault")
class GlobalIdsFaultTest {
  static final Duration TTL = Duration.ofSeconds(1);

  @RegisterExtension
  final ShardmapFleetExtension fleet = ShardmapFleet.builder().shards(0).servers(2).extension();

  /** While set, every id-service call of the client that uses it fails UNAVAILABLE before reaching a server. */
  static ClientInterceptor cutter(AtomicBoolean cut) {
    return new ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> m, CallOptions o, Channel next) {
        if (!cut.get() || !m.getServiceName().equals(ShardMapIdServiceGrpc.SERVICE_NAME)) {
          return next.newCall(m, o);
        }
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(m, o)) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            listener.onClose(Status.UNAVAILABLE.withDescription("test: id service cut off"), new Metadata());
          }

          @Override
          public void sendMessage(Q message) { }

          @Override
          public void halfClose() { }

          @Override
          public void request(int n) { }
        };
      }
    };
  }

  @Test
  void cutOffGeneratorStopsByItsLeaseAndResumesWithoutDuplicates() throws Exception {
    ShardmapFleet f = fleet.get();
    AtomicBoolean cut = new AtomicBoolean();
    IdLayout layout = IdLayout.defaults();
    try (ShardmapClient ca = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
             .channelFactory(t -> f.channelBuilder(t).intercept(cutter(cut))).keyspaces("users").clientId("proc-a")
             .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
         ShardmapClient cb = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
             .channelFactory(f::channelBuilder).keyspaces("users").clientId("proc-b")
             .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build())) {
      Set<Long> issued = new HashSet<>();
      GlobalIds a = ca.ids("events", layout, TTL);
      int wa = a.workerId();
      long last = a.next();
      issued.add(last);
      cut.set(true);
      long cutAt = System.nanoTime();
      // a keeps issuing until its lease can no longer be proven, then refuses: bounded by TTL from the last
      // renewal sent before the cut (which the generator itself enforces).
      ShardmapException refused = null;
      long lastIssuedCallStart = cutAt;
      for (int i = 0; i < 2_000_000 && refused == null; i++) {
        try {
          long callStart = System.nanoTime();
          long id = a.next();
          lastIssuedCallStart = callStart;
          assertTrue(id > last, "increasing");
          last = id;
          assertTrue(issued.add(id), "duplicate " + id);
        } catch (ShardmapException e) {
          refused = e;
        }
        if (i % 1000 == 0) {
          Thread.sleep(1);
        }
      }
      assertTrue(refused != null, "a cut-off generator must stop issuing");
      assertEquals(ErrorCode.UNAVAILABLE, refused.code(), refused.getMessage());
      // The last id was issued after its call started and at most TTL after the last renewal's send, which
      // came before the cut: the bound the generator enforces, no slack.
      long lastIssuedAfterMs = (lastIssuedCallStart - cutAt) / 1_000_000;
      assertTrue(lastIssuedCallStart - cutAt <= TTL.toNanos(), "issued " + lastIssuedAfterMs + " ms after the cut");
      // Once etcd expires a's lease, b takes its worker id (the lowest free one) and issues.
      GlobalIds b = null;
      for (int i = 0; i < 100 && b == null; i++) {
        GlobalIds g = cb.ids("events", layout, TTL);
        if (g.workerId() == wa) {
          b = g;
        } else {
          g.close();
          Thread.sleep(100);
        }
      }
      assertTrue(b != null, "b never got a's worker id " + wa);
      long bIssued = 0;
      for (int i = 0; i < 100 && bIssued < 10_000; i++) {
        try {
          for (int k = 0; k < 1000; k++) {
            assertTrue(issued.add(b.next()), "b repeated an id a issued");
            bIssued++;
          }
        } catch (ShardmapException e) {
          assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
          Thread.sleep(100);
        }
      }
      assertTrue(bIssued >= 10_000, "b issued " + bIssued);
      // a is still refusing while cut off; then the cut ends and a resumes under a new claim (b holds wa).
      assertThrowsUnavailable(a);
      cut.set(false);
      long resumed = 0;
      for (int i = 0; i < 100 && resumed == 0; i++) {
        try {
          resumed = a.next();
        } catch (ShardmapException e) {
          assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
          Thread.sleep(100);
        }
      }
      assertTrue(resumed != 0, "a did not resume after the cut ended");
      assertNotEquals(wa, a.workerId());
      assertTrue(resumed > last, "a's ids keep increasing across the re-acquisition");
      assertTrue(issued.add(resumed));
      for (int k = 0; k < 10_000; k++) {
        long id = a.next();
        assertTrue(id > resumed);
        resumed = id;
        assertTrue(issued.add(id), "duplicate " + id);
        assertTrue(issued.add(b.next()), "duplicate from b");
      }
      b.close();
      a.close();
    }
  }

  /**
   * The claim is taken away while the generator runs (its etcd key deleted, then taken by another process):
   * the next renewal is refused NOT_FOUND, the generator gives the worker id up and acquires another, and
   * its ids keep increasing with no duplicate of the new holder's.
   */
  @Test
  void lostClaimIsGivenUpAndAnotherAcquired() throws Exception {
    ShardmapFleet f = fleet.get();
    IdLayout layout = IdLayout.defaults();
    Duration ttl = Duration.ofSeconds(2);
    try (ShardmapClient ca = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
             .channelFactory(f::channelBuilder).keyspaces("users").clientId("proc-a")
             .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
         ShardmapClient cb = ShardmapClient.start(ClientOptions.builder().targets(f.targets())
             .channelFactory(f::channelBuilder).keyspaces("users").clientId("proc-b")
             .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
         EtcdMetaStore store = EtcdMetaStore.builder().endpoints(f.etcd().clientEndpoints())
             .requestTimeout(Duration.ofSeconds(3)).connectTimeout(Duration.ofSeconds(3)).build()) {
      GlobalIds a = ca.ids("lost", layout, ttl);
      int wa = a.workerId();
      Set<Long> issued = new HashSet<>();
      long last = a.next();
      issued.add(last);
      store.commit(Txn.builder().delete(new CatalogPaths(f.prefix()).workerClaim("lost", wa)).build())
          .get(5, TimeUnit.SECONDS);
      GlobalIds b = cb.ids("lost", layout, ttl);
      assertEquals(wa, b.workerId(), "the deleted claim's worker id is free again");
      // a keeps issuing until its next renewal is refused, then moves to another worker id.
      for (int i = 0; i < 200 && a.workerId() == wa; i++) {
        for (int k = 0; k < 100; k++) {
          try {
            long id = a.next();
            assertTrue(id > last, "increasing");
            last = id;
            assertTrue(issued.add(id), "duplicate " + id);
          } catch (ShardmapException e) {
            assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
          }
        }
        Thread.sleep(20);
      }
      assertNotEquals(wa, a.workerId(), "a never gave up its lost claim");
      int issuedByB = 0;
      for (int i = 0; i < 100 && issuedByB < 10_000; i++) {
        try {
          for (int k = 0; k < 1000; k++) {
            assertTrue(issued.add(b.next()), "b repeated an id a issued");
            issuedByB++;
            long id = a.next();
            assertTrue(id > last, "increasing across the re-acquisition");
            last = id;
            assertTrue(issued.add(id), "duplicate " + id);
          }
        } catch (ShardmapException e) {
          assertEquals(ErrorCode.UNAVAILABLE, e.code(), e.getMessage());
          Thread.sleep(100);
        }
      }
      assertTrue(issuedByB >= 10_000, "b issued " + issuedByB);
      b.close();
      a.close();
    }
  }

  static void assertThrowsUnavailable(GlobalIds g) {
    try {
      g.next();
    } catch (ShardmapException e) {
      assertEquals(ErrorCode.UNAVAILABLE, e.code());
      return;
    }
    throw new AssertionError("expected UNAVAILABLE");
  }
}
