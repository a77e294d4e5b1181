package io.shardmap.client;

import io.shardmap.proto.v1.Shard;
import java.util.List;

/**
 * A registered shard as of the client's map: its PostgreSQL endpoints and state. Immutable.
 *
 * @param name the shard's name, as routes name it
 * @param primary the endpoint writes go to
 * @param replicas read replicas in registration order; empty when it has none
 * @param region the shard's region, empty when unset
 * @param state {@code ACTIVE}, {@code DRAINING} or {@code DOWN} (the registration's state, without the
 *     {@code SHARD_STATE_} prefix); routing does not depend on it
 * @param revision the etcd revision that last wrote the registration
 */
public record ShardInfo(String name, Endpoint primary, List<Endpoint> replicas, String region, String state,
                        long revision) {
  public ShardInfo {
    replicas = List.copyOf(replicas);
  }

  /** A PostgreSQL server and database. */
  public record Endpoint(String host, int port, String database) {
    /** {@code host:port/database}. */
    @Override
    public String toString() {
      return host + ":" + port + "/" + database;
    }
  }

  static ShardInfo of(Shard s) {
    return new ShardInfo(s.getName(), endpoint(s.getPrimary()),
        s.getReplicasList().stream().map(ShardInfo::endpoint).toList(), s.getRegion(),
        s.getState().name().replaceFirst("^SHARD_STATE_", ""), s.getRevision());
  }

  private static Endpoint endpoint(io.shardmap.proto.v1.Endpoint e) {
    return new Endpoint(e.getHost(), e.getPort(), e.getDatabase());
  }
}
