/**
 * Global 64-bit ids: {@link io.shardmap.core.ids.IdLayout} (the validated bit layout: time, worker,
 * sequence, the optional spread of new ids over the key space, and the date it runs out), {@link
 * io.shardmap.core.ids.IdGenerator} (Snowflake ids for one leased worker id, strictly increasing,
 * lock-free), {@link io.shardmap.core.ids.WorkerLease} (what the generator needs from the lease service)
 * and {@link io.shardmap.core.ids.IdClock} (the injected wall and monotonic time; the only package of core
 * that reads a clock and waits). See docs/ids.md.
 *
 * <p>Errors are {@link io.shardmap.core.ShardmapException}: INVALID_ARGUMENT for a bad layout or argument,
 * UNAVAILABLE when the lease cannot be proven, FAILED_PRECONDITION when the clock will not let an id be
 * issued without risking a repeat.
 */
package io.shardmap.core.ids;
