package io.shardmap.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Talks to etcd through its JSON gateway ({@code /v3/kv/...}) with the JDK HTTP client, so the
 * test depends neither on the store module nor on etcdctl being installed next to a container.
 */
@Tag("fault")
class EtcdClusterTest {

  private static final HttpClient HTTP = HttpClient.newBuilder()
      .version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(Duration.ofSeconds(2))
      .build();
  private static final Pattern VALUE = Pattern.compile("\"value\":\"([^\"]*)\"");

  @Test
  @Timeout(120)
  void sharedClusterIsOneHealthyClusterPerJvm() throws Exception {
    EtcdCluster cluster = EtcdCluster.shared();
    assertSame(cluster, EtcdCluster.shared());
    cluster.awaitHealthy(Duration.ofSeconds(10));

    List<String> endpoints = cluster.clientEndpoints();
    assertEquals(cluster.memberCount(), endpoints.size());
    assertEquals(endpoints.size(), new HashSet<>(endpoints).size(), "endpoints must be distinct: " + endpoints);
    if (cluster.canControlMembers()) {
      assertEquals(EtcdCluster.SHARED_MEMBERS, endpoints.size());
    }

    // A write through one member is visible through every member: they form one cluster.
    String key = "/testkit/shared/" + UUID.randomUUID();
    assertTrue(put(endpoints.get(0), key, "v1", Duration.ofSeconds(5)), "put through " + endpoints.get(0));
    for (String endpoint : endpoints) {
      assertEquals("v1", get(endpoint, key), "read through " + endpoint);
    }

    assertThrows(IllegalStateException.class, cluster::close, "tests must not close the shared cluster");
    assertThrows(IndexOutOfBoundsException.class, () -> cluster.clientEndpoint(endpoints.size()));
  }

  @Test
  @Timeout(120)
  void aPausedLeaderIsReplacedAndResumesAsAFollower() throws Exception {
    try (EtcdCluster cluster = EtcdCluster.start(3)) {
      assumeTrue(cluster.canControlMembers(), "members of an external cluster cannot be paused");
      int leader = cluster.leader(Duration.ofSeconds(10));
      cluster.pauseMember(leader);
      assertTrue(cluster.isPaused(leader));
      assertTrue(cluster.isRunning(leader), "paused is not stopped");
      int next = cluster.leader(Duration.ofSeconds(10));
      assertNotEquals(leader, next, "the other two elect a new leader");
      String key = "/testkit/paused/" + UUID.randomUUID();
      int writer = (leader + 1) % 3;
      assertTrue(put(cluster.clientEndpoint(writer), key, "v1", Duration.ofSeconds(5)), "the two keep a quorum");
      cluster.resumeMember(leader);
      assertFalse(cluster.isPaused(leader));
      cluster.awaitHealthy(Duration.ofSeconds(30));
      assertEquals("v1", get(cluster.clientEndpoint(leader), key), "the resumed member caught up");
      assertEquals(next, cluster.leader(Duration.ofSeconds(10)), "and rejoined as a follower");
      cluster.pauseMember(next); // close() must also end a paused member
    }
  }

  @Test
  @Timeout(180)
  void survivesLossOfOneMemberLosesQuorumWithTwoAndRecoversWithData() throws Exception {
    Instant begin = Instant.now();
    List<String> endpoints;
    try (EtcdCluster cluster = EtcdCluster.start(3)) {
      System.out.println("3-member etcd cluster healthy " + Duration.between(begin, Instant.now()).toMillis()
          + " ms after start(3): " + cluster.describeLogs());
      assumeTrue(cluster.canControlMembers(), "members of an external cluster cannot be stopped");
      endpoints = cluster.clientEndpoints();
      assertEquals(3, endpoints.size());
      assertNotEquals(endpoints, EtcdCluster.shared().clientEndpoints(), "start() must not hand out the shared cluster");
      for (int i = 0; i < 3; i++) {
        assertTrue(cluster.isRunning(i));
        assertTrue(healthy(endpoints.get(i)), "member " + i + " healthy");
      }

      // One member down: the remaining majority keeps accepting writes.
      cluster.stopMember(0);
      assertFalse(cluster.isRunning(0));
      assertFalse(answers(endpoints.get(0)), "a killed member must not answer");
      String key = "/testkit/fault/" + UUID.randomUUID();
      // The killed member may have been the leader; allow one election.
      assertTrue(putWithin(endpoints.get(1), key, "survived", Duration.ofSeconds(10)), "put with one member down");
      assertEquals("survived", get(endpoints.get(2), key));
      cluster.awaitHealthy(Duration.ofSeconds(10));

      // Two down: no quorum, so a write must fail, and it must fail in bounded time.
      cluster.stopMember(1);
      Instant attempt = Instant.now();
      assertFalse(put(endpoints.get(2), key + "/lost", "x", Duration.ofSeconds(3)), "put without quorum must fail");
      assertTrue(Duration.between(attempt, Instant.now()).compareTo(Duration.ofSeconds(8)) < 0, "failure was not bounded");
      assertThrows(IllegalStateException.class, () -> cluster.awaitHealthy(Duration.ofSeconds(2)),
          "a lone member must not be reported healthy");

      // Both back: healthy again, and the member that was down during the write caught up.
      cluster.startMember(0);
      cluster.startMember(1);
      cluster.awaitHealthy(Duration.ofSeconds(15));
      for (int i = 0; i < 3; i++) {
        assertTrue(cluster.isRunning(i));
        assertEquals("survived", get(endpoints.get(i), key), "data on member " + i + " after restart");
      }
      assertTrue(putWithin(endpoints.get(0), key + "/after", "ok", Duration.ofSeconds(10)), "put after recovery");

      // Whole cluster down and back one by one: the first member alone has no quorum, so
      // startMember cannot wait for health there; health follows with the second.
      for (int i = 0; i < 3; i++) {
        cluster.stopMember(i);
        assertFalse(cluster.isRunning(i));
      }
      cluster.startMember(2);
      assertTrue(cluster.isRunning(2));
      assertFalse(healthy(endpoints.get(2)), "a lone member has no quorum");
      cluster.startMember(0);
      cluster.startMember(1);
      cluster.awaitHealthy(Duration.ofSeconds(15));
      for (int i = 0; i < 3; i++) {
        assertEquals("survived", get(endpoints.get(i), key), "data on member " + i + " after full restart");
        assertEquals("ok", get(endpoints.get(i), key + "/after"));
      }
    }
    // close() kills every member.
    for (String endpoint : endpoints) {
      assertFalse(answers(endpoint), endpoint + " still answers after close()");
    }
  }

  @Test
  @Timeout(60)
  void controlOfExternalClusterIsRefused() {
    // The external path (what SHARDMAP_TEST_ETCD_ENDPOINTS selects), over the shared cluster's endpoints: it
    // runs wherever the suite does, instead of only when the variable is set.
    EtcdCluster shared = EtcdCluster.shared();
    try (EtcdCluster cluster = EtcdCluster.external(String.join(",", shared.clientEndpoints()), false)) {
      assertFalse(cluster.canControlMembers());
      assertThrows(UnsupportedOperationException.class, () -> cluster.stopMember(0));
      assertThrows(UnsupportedOperationException.class, () -> cluster.startMember(0));
    }
    // Closing the view left the members running.
    shared.awaitHealthy(Duration.ofSeconds(10));
  }

  // ---------------------------------------------------------------- etcd JSON gateway

  private static String b64(String s) {
    return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
  }

  /** True if etcd confirmed the put within {@code timeout}; false on error answer or timeout. */
  private static boolean put(String endpoint, String key, String value, Duration timeout) throws InterruptedException {
    String body = "{\"key\":\"" + b64(key) + "\",\"value\":\"" + b64(value) + "\"}";
    try {
      HttpResponse<String> response = post(endpoint + "/v3/kv/put", body, timeout);
      return response.statusCode() == 200 && response.body().contains("\"header\"") && !response.body().contains("\"error\"");
    } catch (IOException e) {
      return false; // includes HttpTimeoutException
    }
  }

  private static boolean putWithin(String endpoint, String key, String value, Duration total) throws InterruptedException {
    Instant deadline = Instant.now().plus(total);
    while (Instant.now().isBefore(deadline)) {
      if (put(endpoint, key, value, Duration.ofSeconds(3))) {
        return true;
      }
      Thread.sleep(100);
    }
    return false;
  }

  /** Linearizable read; the value, or null if the key is absent. */
  private static String get(String endpoint, String key) throws IOException, InterruptedException {
    HttpResponse<String> response = post(endpoint + "/v3/kv/range", "{\"key\":\"" + b64(key) + "\"}", Duration.ofSeconds(5));
    if (response.statusCode() != 200) {
      fail("range on " + endpoint + " answered " + response.statusCode() + ": " + response.body());
    }
    Matcher matcher = VALUE.matcher(response.body());
    return matcher.find() ? new String(Base64.getDecoder().decode(matcher.group(1)), StandardCharsets.UTF_8) : null;
  }

  private static HttpResponse<String> post(String url, String json, Duration timeout) throws IOException, InterruptedException {
    HttpRequest request = HttpRequest.newBuilder(URI.create(url))
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(json))
        .build();
    return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
  }

  private static boolean healthy(String endpoint) throws InterruptedException {
    try {
      HttpResponse<String> response = HTTP.send(
          HttpRequest.newBuilder(URI.create(endpoint + "/health")).timeout(Duration.ofSeconds(3)).GET().build(),
          HttpResponse.BodyHandlers.ofString());
      return response.statusCode() == 200 && response.body().replace(" ", "").contains("\"health\":\"true\"");
    } catch (IOException e) {
      return false;
    }
  }

  /** Whether anything answers HTTP at the endpoint. */
  private static boolean answers(String endpoint) throws InterruptedException {
    try {
      HTTP.send(HttpRequest.newBuilder(URI.create(endpoint + "/version")).timeout(Duration.ofSeconds(3)).GET().build(),
          HttpResponse.BodyHandlers.discarding());
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
