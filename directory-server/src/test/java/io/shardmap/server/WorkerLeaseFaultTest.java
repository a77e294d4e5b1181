package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.proto.v1.AcquireWorkerRequest;
import io.shardmap.proto.v1.AcquireWorkerResponse;
import io.shardmap.proto.v1.RenewWorkerRequest;
import io.shardmap.proto.v1.RenewWorkerResponse;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc.ShardMapIdServiceBlockingStub;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A worker lease across an etcd leader change (docs/worker-leases.md): the new leader extends leases, so an
 * owner that keeps renewing (retrying the renewals the election fails) keeps its claim, and its high-water
 * mark is never lowered.
 */
@Tag("fault")
class WorkerLeaseFaultTest {

  @Test
  void aWorkerLeaseSurvivesAnEtcdLeaderChange() throws Exception {
    try (EtcdCluster etcd = EtcdCluster.start(3)) {
      assumeTrue(etcd.canControlMembers(), "fault tests need an etcd cluster whose members they can stop");
      String prefix = TestSupport.uniquePrefix();
      CatalogPaths paths = new CatalogPaths(prefix);
      try (DirectoryServer s = DirectoryServer.start(TestSupport.options(etcd.clientEndpoints(), prefix).build());
           MetaStore store = TestSupport.etcdClient(etcd.clientEndpoints())) {
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", s.port()).usePlaintext().build();
        try {
          long now = System.currentTimeMillis();
          AcquireWorkerResponse w = ids(channel).acquireWorker(AcquireWorkerRequest.newBuilder().setGenerator("g")
              .setOwnerId("p").setWorkerBits(4).setTtlMs(3000).setIssueUntilMs(now + 1000).build());
          int leader = etcd.leader(Duration.ofSeconds(10));
          etcd.stopMember(leader);
          // Renew every 300 ms (a tenth of the ttl) until three renewals succeeded after the stop, bounded.
          int ok = 0;
          long last = w.getIssueUntilMs();
          long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
          for (int i = 1; ok < 3 && System.nanoTime() < deadline; i++) {
            try {
              RenewWorkerResponse r = ids(channel).renewWorker(RenewWorkerRequest.newBuilder().setGenerator("g")
                  .setOwnerId("p").setWorkerId(w.getWorkerId()).setLeaseId(w.getLeaseId())
                  .setClaimRevision(w.getClaimRevision()).setIssueUntilMs(now + 1000 + i * 100L).build());
              assertTrue(r.getIssueUntilMs() >= last, "mark lowered from " + last + " to " + r.getIssueUntilMs());
              last = r.getIssueUntilMs();
              ok++;
            } catch (StatusRuntimeException e) {
              // The election may fail a renewal; what it must never say is that the claim is gone.
              assertNotEquals(Status.Code.NOT_FOUND, e.getStatus().getCode(), () -> "claim lost: " + e.getStatus());
            }
            Thread.sleep(300);
          }
          assertEquals(3, ok, "renewals succeeded after the leader change");
          List<KeyValue> claim = store.get(paths.workerClaim("g", w.getWorkerId())).get(10, TimeUnit.SECONDS).kvs();
          assertEquals(1, claim.size());
          assertEquals(w.getClaimRevision(), claim.get(0).createRevision(), "the same claim, never re-made");
          assertNotEquals(w.getWorkerId(), ids(channel).acquireWorker(AcquireWorkerRequest.newBuilder()
              .setGenerator("g").setOwnerId("q").setWorkerBits(4).build()).getWorkerId());
        } finally {
          channel.shutdownNow();
        }
      }
    }
  }

  private static ShardMapIdServiceBlockingStub ids(ManagedChannel c) {
    return ShardMapIdServiceGrpc.newBlockingStub(c).withDeadlineAfter(5, TimeUnit.SECONDS);
  }
}
