package io.shardmap.client;

import java.time.Duration;
import java.util.Map;

/**
 * One reading of a {@link ShardmapData}'s failover buffer and of the failovers of Patroni shards it saw
 * ({@link ShardmapData#failoverStats()}); see {@link DataOptions#failoverBufferWindow()}.
 *
 * @param waiting calls waiting now for a Patroni shard's next primary
 * @param buffered calls that waited at least once
 * @param overflows calls refused at once because {@link DataOptions#failoverBufferSize()} calls were waiting
 * @param timeouts calls that waited their whole {@link DataOptions#failoverBufferWindow()} and failed
 * @param primaryChanges per Patroni shard, the new primaries the map brought (primary term rises) since open
 * @param firstCallAfterFailover per Patroni shard, from the map naming its latest new primary to the first
 *     call that succeeded on it (absent before any, or while none has succeeded yet)
 */
public record FailoverStats(int waiting, long buffered, long overflows, long timeouts,
    Map<String, Long> primaryChanges, Map<String, Duration> firstCallAfterFailover) {
  public FailoverStats {
    primaryChanges = Map.copyOf(primaryChanges);
    firstCallAfterFailover = Map.copyOf(firstCallAfterFailover);
  }
}
