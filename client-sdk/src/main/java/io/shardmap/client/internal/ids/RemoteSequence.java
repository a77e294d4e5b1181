package io.shardmap.client.internal.ids;

import io.shardmap.client.internal.DirectoryRpc;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ReserveSequenceBlockRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockResponse;
import io.shardmap.proto.v1.ShardMapIdServiceGrpc;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One SDK dense sequence: {@link SequenceBlocks} fed by ReserveSequenceBlock through any directory server
 * (failover by {@link DirectoryRpc#callAny}), with its prefetches on one daemon thread of its own.
 *
 * <p>Every reservation carries a request id unique to it ({@code {random UUID of this object}:{n}}), the
 * same across the failover attempts of one reservation: a server that applied the reservation but whose
 * answer was lost gives the block back to the retry (unless another reservation of the sequence came in
 * between; then the block is lost, never handed out twice).
 */
public final class RemoteSequence implements AutoCloseable {
  /** The server's rule for sequence names, checked here so bad input costs no RPC. */
  /** The server's cap on a block. */
  public static final int MAX_BLOCK_SIZE = 1_000_000;

  private final ExecutorService executor;
  private final SequenceBlocks blocks;

  /**
   * @param blockSize 0 for the sequence's default block size, else 1..{@value #MAX_BLOCK_SIZE}
   * @throws ShardmapException INVALID_ARGUMENT naming the field; NOT_FOUND when the sequence does not exist;
   *     UNAVAILABLE when no directory server answered within the RPC timeout
   */
  public RemoteSequence(DirectoryRpc rpc, String name, int blockSize, Duration rpcTimeout) {
    io.shardmap.core.Names.sequence("name", name);
    if (blockSize < 0 || blockSize > MAX_BLOCK_SIZE) {
      throw ShardmapException.invalid("blockSize", "must be 0 (the sequence's default) or within 1.." + MAX_BLOCK_SIZE
          + ", got " + blockSize);
    }
    String instance = UUID.randomUUID().toString();
    AtomicLong reservations = new AtomicLong();
    long timeoutNanos = rpcTimeout.toNanos();
    SequenceBlocks.Source source = count -> {
      ReserveSequenceBlockRequest req = ReserveSequenceBlockRequest.newBuilder().setName(name).setCount(count)
          .setRequestId(instance + ":" + reservations.incrementAndGet()).build();
      ReserveSequenceBlockResponse r = rpc.callAny("cannot reserve a block of sequence '" + name + "'", timeoutNanos,
          (channel, left, target) -> ShardMapIdServiceGrpc.newBlockingStub(channel)
              .withDeadlineAfter(left, TimeUnit.NANOSECONDS).reserveSequenceBlock(req));
      return new long[] {r.getFirst(), r.getLast()};
    };
    this.executor = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "shardmap-sequence-" + name);
      t.setDaemon(true);
      return t;
    });
    try {
      // A caller waits up to two reservations: the prefetch that failed, then the one tried again.
      this.blocks = new SequenceBlocks(name, blockSize, source, executor, 2 * timeoutNanos, System::nanoTime);
    } catch (RuntimeException e) {
      executor.shutdownNow();
      throw e;
    }
  }

  public SequenceBlocks blocks() {
    return blocks;
  }

  @Override
  public void close() {
    blocks.close();
    executor.shutdownNow();
  }
}
