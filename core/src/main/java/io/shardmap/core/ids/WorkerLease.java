package io.shardmap.core.ids;

/**
 * What an {@link IdGenerator} needs to know of its worker id's lease (the lease service keeps it). The
 * generator reads these on every id, so implementations return fields (volatile reads), never call out.
 *
 * <p>Contract, relied on by the generator: {@link #workerId()} and {@link #startAfterMillis()} never change
 * for one {@code WorkerLease} object (a new worker id, or a re-acquired one, is a new object and a new
 * generator), so the generator can read the four values one at a time without seeing a torn mix of two
 * leases. {@link #validUntilNanos()} and {@link #issueUntilMillis()} move as the lease is renewed (or drop
 * when it is lost); the generator checks each id against their current values.
 */
public interface WorkerLease {
  /**
   * The most worker bits a layout may have when its worker ids are leased through the directory servers'
   * id service, which leases ids in [0, 2^22): 4,194,304 live processes of one generator, far more than
   * ever run at once (ids are recycled). The service refuses more (worker_bits), and so does the SDK,
   * before any RPC (layout.workerBits). A layout may still have more worker bits (up to 27) when its
   * worker ids come from elsewhere.
   */
  int MAX_LEASED_WORKER_BITS = 22;

  int workerId();

  /** System.nanoTime() up to which this process provably still holds workerId (its last renewal's send time + TTL). */
  long validUntilNanos();

  /**
   * Wall-clock ms up to which the lease service has recorded that this worker may issue ids (a high-water
   * mark recorded AHEAD of use). The generator never issues an id whose time is above it.
   */
  long issueUntilMillis();

  /** Wall-clock ms that the previous holder of this worker id may have issued up to: every id issued now must have a time above it. */
  long startAfterMillis();
}
