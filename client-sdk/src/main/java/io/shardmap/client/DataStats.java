package io.shardmap.client;

import java.time.Duration;
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * One immutable reading of a {@link ShardmapData}'s pools and of the shard calls made through its client,
 * from {@link ShardmapData#stats()}. The call and retry counters belong to the {@link ShardmapClient} (every
 * {@code ShardmapData} opened on one client adds to them); the pool figures to this {@code ShardmapData}.
 * Read without a lock: fields may be a few events apart.
 *
 * @param poolsOpened pools opened so far (one per shard primary and per replica)
 * @param poolsClosed pools closed so far (endpoints changed, shard deregistered, or closed with this object)
 * @param openShards shards whose pools are open, as of the last map change
 * @param calls finished calls ({@code inTransaction}, {@code read}, {@code withConnection}), retries included
 * @param callFailures calls that ended with an exception
 * @param callTime total time spent in calls
 * @param staleRouteRetries reruns after a shard refused a call because its key moved (a fence)
 * @param oldFenceRetries reruns on the same shard with the route declared, after a fence older than the route
 * @param replicaUnavailableRetries reads sent on to another replica or the primary
 * @param connectionRetries reruns after the connection broke before the call could have run
 * @param replicaFallbacks reads of a shard with replicas that went to its primary because no replica was usable
 *     (lagging beyond {@link DataOptions#maxReplicaLag()}, unreachable, not in recovery) or none gave a
 *     connection
 * @param replicaLags the replay lag used for routing reads, by {@code "shard/replicaN"} (N from 0, in
 *     registration order), as of the replica's last check: zero when it had replayed all its primary had
 *     written; {@link #UNKNOWN_LAG} (-1 s) when the replica is not usable for reads or its lag is unknown
 * @param breakerStates the circuit breaker of each endpoint of the open pools, by breaker name
 *     ({@code shard-<shard>-primary}, {@code shard-<shard>-replica<i>}): CLOSED, OPEN (calls fail at once) or
 *     HALF_OPEN (probing); DISABLED when {@link DataOptions#breakerEnabled()} is false
 */
public record DataStats(
    long poolsOpened,
    long poolsClosed,
    Set<String> openShards,
    long calls,
    long callFailures,
    Duration callTime,
    long staleRouteRetries,
    long oldFenceRetries,
    long replicaUnavailableRetries,
    long connectionRetries,
    long replicaFallbacks,
    Map<String, Duration> replicaLags,
    Map<String, String> breakerStates) {
  /** The {@link #replicaLags()} value of a replica that is not usable, or whose lag is unknown. */
  public static final Duration UNKNOWN_LAG = Duration.ofSeconds(-1);

  public DataStats {
    openShards = Set.copyOf(openShards);
    replicaLags = Collections.unmodifiableMap(new TreeMap<>(replicaLags));
    breakerStates = Collections.unmodifiableMap(new TreeMap<>(breakerStates));
  }
}
