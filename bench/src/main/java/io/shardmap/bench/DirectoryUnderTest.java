package io.shardmap.bench;

import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.CreateKeyspaceResponse;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.server.DirectoryServer;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.testkit.EtcdCluster;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A directory server on loopback holding one INT64 range keyspace ({@link RangeMaps#KEYSPACE}), created
 * through the admin API like an operator would.
 *
 * <p>By default the server runs on {@link InMemoryMetaStore}: the read path (Lookup, BatchLookup) answers
 * from the in-memory snapshot and never touches the store, so a real etcd would only add its own CPU use
 * (raft ticks, the server's once-a-second freshness probe) to the two cores the measurement shares. The
 * {@code etcd} store kind runs the same server on a real single-member etcd from the local binary, to
 * check exactly that claim.
 */
public final class DirectoryUnderTest implements AutoCloseable {
  public enum StoreKind { memory, etcd }

  private final ShardmapFleet fleet;
  private final DirectoryServer server;
  private final MetaStore memoryStore;
  private final EtcdCluster etcd;
  private final String description;

  private DirectoryUnderTest(ShardmapFleet fleet, MetaStore memoryStore, EtcdCluster etcd, String description) {
    this.fleet = fleet;
    this.server = fleet.server(0);
    this.memoryStore = memoryStore;
    this.etcd = etcd;
    this.description = description;
  }

  public static DirectoryUnderTest start(StoreKind kind, int ranges, int shards) throws Exception {
    ShardmapFleet fleet = null;
    MetaStore memory = null;
    EtcdCluster etcd = null;
    try {
      ShardmapFleet.Builder b = ShardmapFleet.builder().sockets().productionIntervals().prefix("/bench")
          .unregistered();
      if (kind == StoreKind.memory) {
        memory = new InMemoryMetaStore();
        fleet = b.store(memory).build();
      } else {
        etcd = EtcdCluster.start(1);
        fleet = b.etcd(etcd).build();
      }
      long revision = createKeyspace(fleet, ranges, shards);
      if (!fleet.server(0).awaitRevision(revision, Duration.ofSeconds(30))) {
        throw new IllegalStateException("the directory server did not apply revision " + revision + " in 30 s");
      }
      String what = "DirectoryServer on " + (kind == StoreKind.memory ? "InMemoryMetaStore"
          : "a single-member etcd (" + etcd.clientEndpoints().get(0) + ")")
          + ", keyspace '" + RangeMaps.KEYSPACE + "': " + ranges + " INT64 ranges over " + shards + " shards";
      return new DirectoryUnderTest(fleet, memory, etcd, what);
    } catch (Exception e) {
      if (fleet != null) {
        fleet.close();
      }
      if (memory != null) {
        memory.close();
      }
      if (etcd != null) {
        etcd.close();
      }
      throw e;
    }
  }

  /** Registers the shards and creates the keyspace with {@code ranges} equal ranges; returns the revision. */
  private static long createKeyspace(ShardmapFleet fleet, int ranges, int shards) {
    var admin = fleet.admin();
    List<String> names = RangeMaps.shardNames(shards);
    for (int i = 0; i < shards; i++) {
      admin.withDeadlineAfter(20, TimeUnit.SECONDS).registerShard(RegisterShardRequest.newBuilder()
          .setShard(RangeMaps.shard(names.get(i), 5432 + i)).build());
    }
    List<String> owners = new ArrayList<>(ranges);
    for (int i = 0; i < ranges; i++) {
      owners.add(names.get(i % shards));
    }
    CreateKeyspaceResponse r = admin.withDeadlineAfter(20, TimeUnit.SECONDS).createKeyspace(
        CreateKeyspaceRequest.newBuilder().setSpec(RangeMaps.spec(RangeMaps.KEYSPACE))
            .addAllRangeShards(owners).build());
    return r.getRevision();
  }

  public int port() {
    return server.port();
  }

  /** The keyspace as the server holds it right now (for in-process baselines and answer checks). */
  public KeyspaceMap keyspace() {
    return server.snapshot().keyspace(RangeMaps.KEYSPACE);
  }

  public String description() {
    return description;
  }

  @Override
  public void close() throws java.sql.SQLException {
    fleet.close();
    if (memoryStore != null) {
      memoryStore.close();
    }
    if (etcd != null) {
      etcd.close();
    }
  }
}
