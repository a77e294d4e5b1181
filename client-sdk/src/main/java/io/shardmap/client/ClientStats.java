package io.shardmap.client;

import java.time.Duration;

/**
 * One immutable reading of a {@link ShardmapClient}'s counters and map state, from
 * {@link ShardmapClient#stats()}. Counters only grow over a client's life; each reading is taken field by
 * field without a lock, so two fields of one reading may be a few events apart (never more than the events
 * that happened while it was taken).
 *
 * @param revision the etcd revision of the last change the client's map applied ({@link ShardmapClient#revision()})
 * @param appliedRevision the revision the client is current to and reports to the directory: {@code revision}
 *     plus the watch heartbeats that changed nothing it follows
 * @param staleness time since a directory server last confirmed the map current
 * @param watchLagRevisions how far the map trails the newest revision a directory server reported (0 when live)
 * @param reconnects watch streams that failed and were re-opened
 * @param resyncs full re-reads of the maps (asked for by a directory, or after etcd went back in time)
 * @param failovers moves to another directory server
 * @param lookups routes asked of the client (its own and those of {@link ShardmapData} calls)
 * @param directoryCacheHits lookups of lazily held directory keyspaces answered from the cache
 * @param directoryCacheMisses such lookups that had to ask a directory server
 * @param directoryCacheSize answers cached now over all lazily held directory keyspaces
 * @param reports applied-revision reports the directory accepted
 * @param reportFailures applied-revision reports that failed (counted and logged only)
 */
public record ClientStats(
    long revision,
    long appliedRevision,
    Duration staleness,
    long watchLagRevisions,
    long reconnects,
    long resyncs,
    long failovers,
    long lookups,
    long directoryCacheHits,
    long directoryCacheMisses,
    long directoryCacheSize,
    long reports,
    long reportFailures) {}
