package io.shardmap.client;

import io.shardmap.client.internal.ids.LeasedIds;
import io.shardmap.core.ids.IdLayout;

/**
 * A global id generator of this process: Snowflake ids (time, worker, sequence; see docs/ids.md) whose
 * worker id is leased through the directory servers and kept renewed on a background thread, made by
 * {@link ShardmapClient#ids}. Thread-safe; {@link #next()} takes no lock and makes no RPC.
 *
 * <p>Guarantees: no two live generators of the same name share a worker id, so their ids never collide;
 * ids returned on one thread strictly increase (time-ordered form), also across a lost and re-acquired
 * worker id. While the lease cannot be proven (directory servers unreachable past its TTL, or the claim
 * lost) {@link #next()} refuses with UNAVAILABLE, and a new worker id is acquired in the background.
 * Close it before the client: {@link #close()} stops issuing, then frees the worker id at once, and the
 * next process that takes it issues at once too (the release records the time of the last id issued).
 */
public final class GlobalIds implements AutoCloseable {
  private final LeasedIds ids;

  GlobalIds(LeasedIds ids) {
    this.ids = ids;
  }

  /**
   * The next id.
   *
   * @throws io.shardmap.core.ShardmapException UNAVAILABLE while no worker id lease can be proven (or after
   *     close); FAILED_PRECONDITION when the clock stays behind the last id for longer than a second, or the
   *     layout has run out
   */
  public long next() {
    return ids.next();
  }

  public String generator() {
    return ids.generator();
  }

  public IdLayout layout() {
    return ids.layout();
  }

  /** The worker id held now; -1 while none is (being re-acquired, or closed). */
  public int workerId() {
    return ids.workerId();
  }

  /**
   * Stops issuing, then releases the worker id (ReleaseWorker, with the time of the last id issued) so
   * another process may take it and issue with it at once.
   */
  @Override
  public void close() {
    ids.close();
  }

  @Override
  public String toString() {
    return ids.toString();
  }
}
