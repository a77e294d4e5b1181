package io.shardmap.bench;

import io.shardmap.testkit.EtcdCluster;
import java.net.URI;
import java.util.List;

/**
 * The etcd a benchmark runs on: given endpoints (which must be on loopback), or a cluster of local etcd
 * processes started by the {@link EtcdCluster} fixture (fresh ports and data directory, closed at the end).
 */
public final class LocalEtcd implements AutoCloseable {
  private final EtcdCluster cluster;
  private final List<String> endpoints;
  private final String description;

  private LocalEtcd(EtcdCluster cluster, List<String> endpoints, String description) {
    this.cluster = cluster;
    this.endpoints = endpoints;
    this.description = description;
  }

  /** Uses {@code endpoints} when non-empty, otherwise starts {@code members} local members. */
  public static LocalEtcd start(List<String> endpoints, int members) {
    if (endpoints != null && !endpoints.isEmpty()) {
      for (String e : endpoints) {
        requireLoopback(e);
      }
      return new LocalEtcd(null, List.copyOf(endpoints), "etcd at " + String.join(",", endpoints));
    }
    if (members < 1 || members > 5) {
      throw new IllegalArgumentException("etcd members 1-5, got " + members);
    }
    EtcdCluster c = EtcdCluster.start(members);
    for (String e : c.clientEndpoints()) {
      requireLoopback(e);
    }
    return new LocalEtcd(c, c.clientEndpoints(), members + "-member etcd started by the EtcdCluster fixture ("
        + String.join(",", c.clientEndpoints()) + ")");
  }

  /** Benchmarks only ever talk to this machine. */
  static void requireLoopback(String endpoint) {
    String host;
    try {
      host = URI.create(endpoint.contains("://") ? endpoint : "http://" + endpoint).getHost();
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("not an endpoint: " + endpoint);
    }
    if (!"127.0.0.1".equals(host) && !"localhost".equals(host)) {
      throw new IllegalArgumentException("benchmarks run against 127.0.0.1 only, got " + endpoint);
    }
  }

  public List<String> endpoints() {
    return endpoints;
  }

  /**
   * Puts per transaction this etcd accepts: the fixture starts its own members with --max-txn-ops=1024;
   * anything else gets etcd's default, 128.
   */
  public int maxTxnOps() {
    return cluster != null && cluster.canControlMembers() ? 1024 : 128;
  }

  public String description() {
    return description;
  }

  @Override
  public void close() {
    if (cluster != null) {
      cluster.close();
    }
  }
}
