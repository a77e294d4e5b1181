package io.shardmap.bench;

import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.util.concurrent.CountDownLatch;

/**
 * A directory server on an {@link InMemoryMetaStore} holding range keyspaces written as records, for
 * {@link ServerProcess} to run in a child JVM (client-heap). Used instead of a server on etcd because
 * {@code EtcdMetaStore} reads the whole prefix in one etcd response, which jetcd refuses above 4 MiB (about
 * 37,000 ranges; see docs/benchmarks.md). Runs until killed.
 *
 * <p>Arguments: {@code PORT SHARDS KEYSPACE=RANGES...}
 */
public final class MemoryDirectoryMain {
  private MemoryDirectoryMain() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: MemoryDirectoryMain PORT SHARDS KEYSPACE=RANGES...");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    int shards = Integer.parseInt(args[1]);
    InMemoryMetaStore store = new InMemoryMetaStore();
    for (int i = 2; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      RangeMaps.write(store, RangeMaps.PATHS, kv[0], Integer.parseInt(kv[1]), shards,
          InMemoryMetaStore.DEFAULT_MAX_TXN_OPS);
    }
    ShardmapFleet fleet = ShardmapFleet.builder().store(store).sockets().productionIntervals()
        .prefix(RangeMaps.PREFIX).unregistered().serverOptions(o -> o.listen("127.0.0.1", port)).build();
    System.err.println("serving on " + fleet.targets().get(0));
    new CountDownLatch(1).await();
  }
}
