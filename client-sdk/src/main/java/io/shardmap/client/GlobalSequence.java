package io.shardmap.client;

import io.shardmap.client.internal.ids.RemoteSequence;

/**
 * A dense sequence of this process: compact increasing numbers from a named sequence in etcd, handed out from
 * blocks reserved through the directory servers (docs/ids.md, "Dense sequences"). Made by
 * {@link ShardmapClient#sequence}; the sequence itself is created by an admin
 * ({@code shardmapctl sequence create NAME}). Thread-safe.
 *
 * <p>{@link #next()} takes a number from the current block with no lock and no RPC. When half of the block is
 * used, the next block is reserved in the background, so {@code next()} normally never waits.
 *
 * <p>Guarantees:
 * <ul>
 *   <li>no number is ever handed out twice, by this or any other process;
 *   <li>numbers returned on one thread strictly increase (across threads of one process and across processes
 *       they are not ordered: each process hands out its own block);
 *   <li>gaps: numbers reserved and never handed out are, per {@code GlobalSequence}, at most the rest of its
 *       current block plus one more block (prefetched or in flight) when it is closed or its process dies,
 *       i.e. fewer than two blocks; plus one block for each reservation whose outcome this process could not
 *       learn (a server or etcd failing mid-call, and another reservation came before the retry).
 * </ul>
 */
public final class GlobalSequence implements AutoCloseable {
  private final RemoteSequence seq;

  GlobalSequence(RemoteSequence seq) {
    this.seq = seq;
  }

  /**
   * The next number.
   *
   * @throws io.shardmap.core.ShardmapException UNAVAILABLE after close, or when the block is used up and the
   *     next one could not be reserved within twice the client's RPC timeout (the message says why; the next
   *     call tries again)
   */
  public long next() {
    return seq.blocks().next();
  }

  public String name() {
    return seq.blocks().name();
  }

  /** Stops handing out numbers at once; the rest of the block and a prefetched block are never used. */
  @Override
  public void close() {
    seq.close();
  }

  @Override
  public String toString() {
    return seq.blocks().toString();
  }
}
