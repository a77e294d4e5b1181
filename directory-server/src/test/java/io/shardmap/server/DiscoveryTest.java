package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import io.shardmap.testkit.EtcdCluster;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** What a newcomer's tools see: health, reflection (no .proto needed), metrics, and the CLI options. */
@Tag("integration")
class DiscoveryTest {
  static DirectoryServer server;
  static TestSupport.Client c;

  @BeforeAll
  static void start() throws Exception {
    server = DirectoryServer.start(TestSupport.options(EtcdCluster.shared().clientEndpoints(),
        TestSupport.uniquePrefix()).build());
    c = new TestSupport.Client(server.port());
  }

  @AfterAll
  static void stop() {
    c.close();
    server.close();
  }

  @Test
  void healthReportsServingForEachService() {
    HealthGrpc.HealthBlockingStub h = HealthGrpc.newBlockingStub(c.channel);
    for (String svc : new String[] {"", "shardmap.v1.ShardMapService", "shardmap.v1.ShardMapAdminService"}) {
      assertEquals(HealthCheckResponse.ServingStatus.SERVING,
          h.check(HealthCheckRequest.newBuilder().setService(svc).build()).getStatus(), svc);
    }
  }

  @Test
  void reflectionListsTheServices() throws Exception {
    CompletableFuture<Set<String>> names = new CompletableFuture<>();
    StreamObserver<ServerReflectionRequest> req = ServerReflectionGrpc.newStub(c.channel)
        .serverReflectionInfo(new StreamObserver<>() {
          @Override
          public void onNext(ServerReflectionResponse r) {
            Set<String> s = new HashSet<>();
            r.getListServicesResponse().getServiceList().forEach(x -> s.add(x.getName()));
            names.complete(s);
          }

          @Override
          public void onError(Throwable t) {
            names.completeExceptionally(t);
          }

          @Override
          public void onCompleted() {
          }
        });
    req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    Set<String> s = names.get(10, TimeUnit.SECONDS);
    req.onCompleted();
    assertTrue(s.contains("shardmap.v1.ShardMapService"), s.toString());
    assertTrue(s.contains("shardmap.v1.ShardMapAdminService"), s.toString());
    assertTrue(s.contains("grpc.health.v1.Health"), s.toString());
  }

  @Test
  void metricsAndHealthzAreServedOverHttp() throws Exception {
    c.registerShards("m1");
    HttpClient http = HttpClient.newHttpClient();
    HttpResponse<String> m = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
        + server.metricsPort() + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, m.statusCode());
    for (String name : new String[] {"shardmap_snapshot_revision", "shardmap_snapshot_age_millis",
        "shardmap_etcd_reachable", "shardmap_watch_lag_revisions", "shardmap_etcd_requests_seconds_count", "shardmap_rpc_results_total",
        "shardmap_lookups_total"}) {
      assertTrue(m.body().contains(name), "metrics mention " + name);
    }
    assertTrue(m.body().contains("method=\"RegisterShard\""), "rpc results by method");
    HttpResponse<String> h = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
        + server.metricsPort() + "/healthz")).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, h.statusCode());
    assertTrue(h.body().startsWith("serving revision="), h.body());
  }

  @Test
  void optionsComeFromFlagsFileAndRejectBadValues(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws Exception {
    java.nio.file.Path file = dir.resolve("server.properties");
    java.nio.file.Files.writeString(file, "etcd-prefix=/fromfile\nlisten=127.0.0.1:9900\n");
    ServerOptions o = Main.parse("--config", file.toString(), "--listen", "127.0.0.1:9901",
        "--etcd-timeout", "750ms");
    assertEquals("/fromfile", o.etcdPrefix());
    assertEquals(9901, o.port(), "a flag beats the file");
    assertEquals(750, o.etcdTimeout().toMillis());
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> Main.parse("--etcd-prefix", "no-slash"));
    assertTrue(e.getMessage().startsWith("etcd-prefix:"), e.getMessage());
    e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> Main.parse("--probe-interval", "soon"));
    assertTrue(e.getMessage().contains("--probe-interval"), e.getMessage());
    // Client presence options.
    assertEquals(null, o.serverId(), "default: made at start from host, port and a random part");
    assertEquals(10, o.clientReportTimeout().toSeconds());
    o = Main.parse("--server-id", "dir-eu-1", "--client-report-timeout", "4s");
    assertEquals("dir-eu-1", o.serverId());
    assertEquals(4, o.clientReportTimeout().toSeconds());
    e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> Main.parse("--server-id", "a/b"));
    assertTrue(e.getMessage().startsWith("server-id:"), e.getMessage());
    e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> Main.parse("--client-report-timeout", "0s"));
    // Zero is refused by the one duration grammar of the CLIs (io.shardmap.support.cli.Durations), which names
    // the option, before ServerOptions would refuse it as "client-report-timeout: must be a positive duration".
    assertTrue(e.getMessage().contains("'--client-report-timeout'") && e.getMessage().contains("positive"),
        e.getMessage());
  }
}
