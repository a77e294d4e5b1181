package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.*;
import io.shardmap.testkit.fleet.ShardmapFleet;
import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Micrometer is an optional dependency: a client without it on the class path (and without a registry)
 * must start, route (a lazy directory included) and close. Proven in a class loader that has the test's
 * class path minus every Micrometer jar, so any use of a Micrometer class would fail with
 * NoClassDefFoundError.
 */
@Tag("integration")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class WithoutMicrometerTest {

  /** Runs inside the isolated class loader: plain calls, as an application would write them. */
  public static final class App {
    public static String run(String target) throws Exception {
      try (ShardmapClient c = ShardmapClient.start(ClientOptions.builder().targets(target)
          .keyspaces("users", "devices").directoryCacheSize(2).build())) {
        return c.route("users", 7).shard() + " " + c.route("devices", 1).shard() + " "
            + c.route("devices", 99).shard();
      }
    }
  }

  @Test
  void theClientRunsWithoutMicrometer() throws Exception {
    // Sockets: the isolated application uses the default (Netty) channel factory, as a real one would.
    try (ShardmapFleet fleet = ShardmapFleet.builder().sockets().build()) {
      ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin = fleet.admin();
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s1")
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase("s1"))).build());
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName("s2")
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase("s2"))).build());
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
          .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addRangeShards("s1").build());
      admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder()
          .setName("devices").setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_DIRECTORY))
          .setFallbackShard("s1").build());
      PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices");
      for (long k = 0; k < 5; k++) {
        put.addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setIntKey(k)).setShard("s2"));
      }
      admin.putDirectoryEntries(put.build());

      List<URL> urls = new ArrayList<>();
      int removed = 0;
      for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
        if (entry.contains("micrometer")) {
          removed++;
        } else {
          urls.add(new File(entry).toURI().toURL());
        }
      }
      assertTrue(removed > 0, "the test class path should have Micrometer to remove: "
          + System.getProperty("java.class.path"));
      try (URLClassLoader isolated = new URLClassLoader(urls.toArray(URL[]::new),
          ClassLoader.getPlatformClassLoader())) {
        assertThrows(ClassNotFoundException.class,
            () -> Class.forName("io.micrometer.core.instrument.MeterRegistry", false, isolated));
        Class<?> app = Class.forName(App.class.getName(), true, isolated);
        String routes = (String) app.getMethod("run", String.class).invoke(null, fleet.targets().get(0));
        assertEquals("s1 s2 s1", routes);
      }
    }
  }
}
