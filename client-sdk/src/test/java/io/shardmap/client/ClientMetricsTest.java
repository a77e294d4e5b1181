package io.shardmap.client;

import io.shardmap.testkit.Await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.shardmap.client.internal.Counters;
import io.shardmap.proto.v1.*;
import io.shardmap.server.DirectoryServer;
import io.shardmap.server.ServerOptions;
import io.shardmap.testkit.EtcdCluster;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Micrometer binding against real directory servers: every meter reads the client's own counters, the
 * cache meters follow the lazy directory (and its drop on a re-read), failovers and re-reads are counted
 * and logged with targets and revisions, and closing the client removes its meters.
 */
@Tag("integration")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClientMetricsTest {
  EtcdCluster etcd;
  String prefix;
  DirectoryServer a;
  ManagedChannel channel;
  ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;

  @BeforeEach
  void start() throws Exception {
    etcd = EtcdCluster.shared();
    prefix = "/m" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    a = server(0);
    channel = NettyChannelBuilder.forAddress("127.0.0.1", a.port()).usePlaintext().build();
    admin = ShardMapAdminServiceGrpc.newBlockingStub(channel);
    for (String s : List.of("s1", "s2", "s3")) {
      admin.registerShard(RegisterShardRequest.newBuilder().setShard(Shard.newBuilder().setName(s)
          .setPrimary(Endpoint.newBuilder().setHost("127.0.0.1").setPort(5432).setDatabase(s))).build());
    }
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("users")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_RANGE)).addAllRangeShards(
        List.of("s1", "s2")).build());
    admin.createKeyspace(CreateKeyspaceRequest.newBuilder().setSpec(KeyspaceSpec.newBuilder().setName("devices")
        .setKeyType(KeyType.KEY_TYPE_INT64).setStrategy(Strategy.STRATEGY_DIRECTORY)).setFallbackShard("s1")
        .build());
    PutDirectoryEntriesRequest.Builder put = PutDirectoryEntriesRequest.newBuilder().setKeyspace("devices");
    for (long k = 0; k < 20; k++) {
      put.addEntries(DirectoryEntry.newBuilder().setKey(Key.newBuilder().setIntKey(k)).setShard("s2"));
    }
    admin.putDirectoryEntries(put.build());
  }

  @AfterEach
  void stop() {
    channel.shutdownNow();
    if (a != null) {
      a.close();
    }
  }

  private DirectoryServer server(int port) throws Exception {
    return DirectoryServer.start(ServerOptions.loopbackForTests(etcd.clientEndpoints(), prefix)
        .listen("127.0.0.1", port).build());
  }

  static double counter(MeterRegistry r, String name) {
    return r.get(name).functionCounter().count();
  }

  static double gauge(MeterRegistry r, String name) {
    return r.get(name).gauge().value();
  }

  /** Collects the follower's log lines. */
  static final class Lines extends Handler {
    final java.util.Queue<String> lines = new java.util.concurrent.ConcurrentLinkedQueue<>();

    @Override
    public void publish(LogRecord r) {
      lines.add(r.getMessage());
    }

    @Override
    public void flush() {}

    @Override
    public void close() {}

    boolean any(String... fragments) {
      for (String l : lines) {
        boolean all = true;
        for (String f : fragments) {
          all &= l.contains(f);
        }
        if (all) {
          return true;
        }
      }
      return false;
    }
  }

  @Test
  void metersFollowTheClientAndLeaveWithIt() throws Exception {
    int portB;
    try (ServerSocket s = new ServerSocket(0)) {
      portB = s.getLocalPort();
    }
    String targetA = "127.0.0.1:" + a.port();
    String targetB = "127.0.0.1:" + portB;
    Logger followerLog = Logger.getLogger("io.shardmap.client.internal.MapFollower");
    Lines lines = new Lines();
    followerLog.addHandler(lines);
    SimpleMeterRegistry reg = new SimpleMeterRegistry();
    ShardmapClient c = ShardmapClient.start(ClientOptions.builder().targets(targetA, targetB)
        .keyspaces("users", "devices").directoryCacheSize(8).meterRegistry(reg)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    DirectoryServer fresh = null;
    try {
      for (long k = 0; k < 10; k++) {
        c.route("users", k);
      }
      for (long k = 0; k < 12; k++) {
        c.route("devices", k);
      }
      c.route("devices", 11);
      c.route("devices", 11);
      assertEquals(24, counter(reg, "shardmap.client.lookups"));
      assertEquals(c.stats().lookups(), (long) counter(reg, "shardmap.client.lookups"));
      assertEquals(12, counter(reg, "shardmap.client.directory.cache.misses"));
      assertEquals(2, counter(reg, "shardmap.client.directory.cache.hits"));
      assertEquals(8, gauge(reg, "shardmap.client.directory.cache.size"), "bounded by directoryCacheSize");
      assertEquals(c.revision(), (long) gauge(reg, "shardmap.client.map.revision"));
      double age = reg.get("shardmap.client.map.age").timeGauge().value(TimeUnit.SECONDS);
      assertTrue(age >= 0 && age < 5, "map age " + age + " s");
      Await.until(Duration.ofSeconds(20), "no watch lag while live", () -> gauge(reg, "shardmap.client.watch.lag") == 0);
      Await.until(Duration.ofSeconds(20), "the applied revision reported", () -> counter(reg, "shardmap.client.reports") >= 1);
      assertEquals(c.stats().reports(), (long) counter(reg, "shardmap.client.reports"), 1.0);
      assertEquals(0, counter(reg, "shardmap.client.report.failures"));

      // Shard calls and retries are recorded by the data layer into the same counters.
      c.counters().call(TimeUnit.MILLISECONDS.toNanos(2), false);
      c.counters().call(TimeUnit.MILLISECONDS.toNanos(3), true);
      c.counters().retry(Counters.RetryCause.STALE_ROUTE);
      FunctionTimer calls = reg.get("shardmap.client.calls").functionTimer();
      assertEquals(2, calls.count());
      assertEquals(5, calls.totalTime(TimeUnit.MILLISECONDS), 1e-9);
      assertEquals(1, counter(reg, "shardmap.client.call.failures"));
      assertEquals(3, reg.get("shardmap.client.call.max").timeGauge().value(TimeUnit.MILLISECONDS), 1e-9);
      assertEquals(1, reg.get("shardmap.client.retries").tag("cause", "stale_route").functionCounter().count());
      assertEquals(0, reg.get("shardmap.client.retries").tag("cause", "connection").functionCounter().count());

      // The followed replica dies and a fresh one, whose history starts after our revision, takes over:
      // a failover (logged with both targets) and a re-read (logged with both revisions) that drops the
      // lazy cache.
      long before = c.revision();
      a.close();
      a = null;
      DirectoryServer writer = server(0);
      ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", writer.port()).usePlaintext().build();
      long split = ShardMapAdminServiceGrpc.newBlockingStub(ch).splitRange(SplitRangeRequest.newBuilder()
          .setKeyspace("users").setSplitKey(Key.newBuilder().setIntKey(88)).build()).getRevision();
      ch.shutdownNow();
      writer.close();
      fresh = server(portB);
      // The split, not the fresh replica's revision: that one moves on with revisions that change no map
      // (the servers' client presence records), which the client's map revision never takes.
      Await.until(Duration.ofSeconds(20), "the client re-reads from the fresh replica", () -> c.revision() >= split);
      assertTrue(counter(reg, "shardmap.client.failovers") >= 1);
      assertTrue(counter(reg, "shardmap.client.reconnects") >= 1);
      assertEquals(1, counter(reg, "shardmap.client.resyncs"));
      assertEquals(c.stats().failovers(), (long) counter(reg, "shardmap.client.failovers"));
      assertEquals(0, gauge(reg, "shardmap.client.directory.cache.size"), "a re-read drops the cache");
      assertEquals(c.revision(), (long) gauge(reg, "shardmap.client.map.revision"));
      assertTrue(lines.any("failing over from directory " + targetA, "to " + targetB), "failover logged: "
          + lines.lines);
      long after = c.revision();
      // Logged right after the new map is published, so it may trail the revision by a moment.
      Await.until(Duration.ofSeconds(20), "re-read logged with both revisions: " + lines.lines,
          () -> lines.any("re-read", "from " + targetB, "revision " + before + " -> " + after));
      assertTrue(lines.any("asked for a full re-read", targetB), lines.lines.toString());
      assertTrue(lines.any("following directory " + targetB + " again"), lines.lines.toString());
      assertEquals("s2", c.route("devices", 3).shard(), "a miss served by the fresh replica");
      assertEquals(1, gauge(reg, "shardmap.client.directory.cache.size"));
    } finally {
      followerLog.removeHandler(lines);
      c.close();
      if (fresh != null) {
        fresh.close();
      }
    }
    for (Meter m : reg.getMeters()) {
      assertTrue(!m.getId().getName().startsWith("shardmap.client."), "left behind: " + m.getId());
    }
    assertNull(reg.find("shardmap.client.lookups").meter());
  }

  @Test
  void meterRegistryMustNotBeNull() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().meterRegistry(null));
    assertTrue(e.getMessage().startsWith("meterRegistry:"), e.getMessage());
    assertNotNull(ClientOptions.builder().targets("h:1").keyspaces("k").meterRegistry(new SimpleMeterRegistry())
        .build().meterRegistry());
  }
}
