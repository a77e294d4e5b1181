package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * etcd restored from a backup while directory servers and SDK clients run: etcd's revision goes back to
 * the snapshot's, below what every server and client holds. Before, a server's etcd watch resumed after
 * its own revision, which the restored etcd had not reached, and waited there; the servers kept serving
 * the lost maps, and a client told to re-read refused every server as "behind" its own map. Now the servers
 * notice (etcd's revision below their snapshot, or a new cluster id), re-read and make their watch clients
 * re-read; a client whose revision etcd has not reached is refused with OUT_OF_RANGE when it watches, and
 * re-reads accepting the older revision. Everyone must converge on the restored maps, then follow new
 * changes, whose revisions reuse numbers the lost history had used.
 */
@Tag("fault")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class EtcdRestoreTest {
  private static final String PREFIX = "/restore";

  private static List<String> view(DirectorySnapshot s) {
    return s.keyspace("users").ranges().routes().stream()
        .map(r -> r.range() + " " + r.shard() + "@" + r.epoch()).toList();
  }

  private static DirectoryServer server(EtcdCluster etcd) throws Exception {
    return DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), PREFIX).build());
  }

  private static long split(ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin, long key) {
    return admin.withDeadlineAfter(20, TimeUnit.SECONDS).splitRange(SplitRangeRequest.newBuilder()
        .setKeyspace("users").setSplitKey(Key.newBuilder().setIntKey(key)).build()).getRevision();
  }

  /**
   * With a new cluster token the servers' etcd watches see a new cluster id when they reconnect; with the
   * old one the id stays, and only the revision going down (the freshness probe's quorum read) tells.
   */
  @ParameterizedTest(name = "keepClusterToken={0}")
  @ValueSource(booleans = {false, true})
  void serversAndClientsConvergeOnTheRestoredMapsThenFollowNewChanges(boolean keepClusterToken) throws Exception {
    Path dir = Files.createTempDirectory("shardmap-restore-test");
    Path backup = dir.resolve("etcd.db");
    List<ShardmapClient> clients = new ArrayList<>();
    try (EtcdCluster etcd = EtcdCluster.start(3)) {
      assumeTrue(etcd.canControlMembers(), "needs a local etcd cluster it can restore");
      DirectoryServer a = server(etcd);
      DirectoryServer b = server(etcd);
      ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
      try {
        var admin = ShardMapAdminServiceGrpc.newBlockingStub(channel);
        for (String s : List.of("s1", "s2", "s3")) {
          admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
              .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
        }
        admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
            .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE))
            .addAllRangeShards(List.of("s1", "s2", "s3")).build());
        long backedUp = split(admin, 1000);
        for (int i = 0; i < 3; i++) {
          clients.add(ShardmapClient.start(ClientOptions.builder()
              .targets("127.0.0.1:" + a.port(), "127.0.0.1:" + b.port()).keyspaces("users")
              .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build()));
        }
        assertTrue(a.awaitRevision(backedUp, Duration.ofSeconds(10)));
        List<String> restored = view(a.snapshot());
        long snapshotRevision = etcd.saveSnapshot(backup);
        assertTrue(snapshotRevision >= backedUp, "the backup holds the split at " + backedUp);

        // Changes the backup does not have: ten splits the clients apply.
        long lost = 0;
        for (int i = 1; i <= 10; i++) {
          lost = split(admin, 1000 + 100L * i);
        }
        long lostRevision = lost;
        for (ShardmapClient c : clients) {
          Await.until(Duration.ofSeconds(20), "a client applies the changes made after the backup", () -> c.revision() >= lostRevision);
          assertEquals(restored.size() + 10, c.snapshot().core().keyspace("users").ranges().size());
        }

        etcd.restoreSnapshot(backup, keepClusterToken);

        for (DirectoryServer s : List.of(a, b)) {
          Await.until(Duration.ofSeconds(20), "a directory server re-reads the restored maps", () -> s.snapshot().revision() < lostRevision
              && view(s.snapshot()).equals(restored));
        }
        for (ShardmapClient c : clients) {
          Await.until(Duration.ofSeconds(20), "a client re-reads the restored maps", () -> c.revision() < lostRevision
              && view(c.snapshot().core()).equals(restored));
        }

        // New changes after the restore reuse revision numbers of the lost history; they must arrive.
        long fresh = split(admin, 5000);
        assertTrue(fresh < lostRevision, "revision " + fresh + " is one the lost history also had");
        for (ShardmapClient c : clients) {
          Await.until(Duration.ofSeconds(20), "a client follows a change made after the restore", () -> c.revision() >= fresh
              && c.snapshot().core().keyspace("users").ranges().size() == restored.size() + 1);
          assertEquals(view(a.snapshot()), view(c.snapshot().core()));
        }
      } finally {
        for (ShardmapClient c : clients) {
          c.close();
        }
        channel.shutdownNow();
        a.close();
        b.close();
      }
    } finally {
      Files.deleteIfExists(backup);
      Files.deleteIfExists(dir);
    }
  }
}
