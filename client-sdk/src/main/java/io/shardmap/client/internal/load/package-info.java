/**
 * Load accounting of the SDK (docs/client-sdk.md, "Load accounting"). Not API.
 *
 * <ul>
 *   <li>{@link io.shardmap.client.internal.load.LoadMeter} counts, per keyspace, the reads, writes, time and
 *       errors of calls per unit of the map they were counted against, in striped counters (a few
 *       nanoseconds per call, no lock, no allocation), samples one call's key in N, and turns what was
 *       counted into the {@code KeyspaceLoad} windows the presence reports carry, keeping what a server has
 *       not accepted yet (bounded) for the next report;
 *   <li>{@link io.shardmap.client.internal.load.UnitCounters} are the counters bound to one version of a
 *       keyspace's routing table: at most {@code loadSlots} slots, adjacent units sharing a slot when the
 *       map has more units, so memory does not grow with the map.
 * </ul>
 */
package io.shardmap.client.internal.load;
