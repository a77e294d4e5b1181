package io.shardmap.client.internal.ids;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Numbers of a dense sequence handed out from blocks reserved ahead: the local half of
 * {@code GlobalSequence} (docs/ids.md, "Dense sequences"). Where blocks come from ({@link Source}) and where
 * reservations run ({@link Executor}) are injected, so tests drive prefetching step by step.
 *
 * <p>Common path: one {@code getAndIncrement} on the current block's cursor; no lock, no allocation, no RPC.
 * When the number at half of the block is taken, the next block is reserved in the background (one
 * reservation in flight at most). When the current block is used up, the slow path (under a lock, bounded by
 * {@code maxWaitNanos} in total) installs the prefetched block, waiting for it if it is still in flight, or
 * reserves one more if the prefetch failed; if that does not succeed in time, {@link #next()} refuses with
 * UNAVAILABLE and the next call tries again.
 *
 * <p>Guarantees, given a source whose blocks are disjoint and each above the one before (the sequence's
 * next value only grows and this object has one reservation in flight at a time):
 * <ul>
 *   <li>no number is returned twice, and numbers returned on one thread strictly increase: a block is
 *       replaced only once its cursor has passed its end, and the next block lies above it;
 *   <li>numbers reserved but never returned: at most the rest of the current block plus one more block
 *       (prefetched, or in flight) when the object is closed or its process dies, plus one block per
 *       reservation that failed after the server had applied it (its outcome unknown to this process).
 * </ul>
 */
public final class SequenceBlocks implements AutoCloseable {
  private static final Logger log = Logger.getLogger(SequenceBlocks.class.getName());

  /** Reserves {@code count} consecutive numbers; returns {@code {first, last}} or throws. */
  @FunctionalInterface
  public interface Source {
    long[] reserve(long count);
  }

  /** One reserved block and how far it has been handed out. */
  private static final class Block {
    final long first;
    final long last;
    /** Taking this number starts the prefetch of the next block. */
    final long prefetchAt;
    final AtomicLong cursor;

    Block(long first, long last) {
      this.first = first;
      this.last = last;
      this.prefetchAt = first + (last - first + 1) / 2;
      this.cursor = new AtomicLong(first);
    }
  }

  private final String name;
  private final long blockSize;
  private final Source source;
  private final Executor executor;
  private final long maxWaitNanos;
  private final LongSupplier nanoTime;
  private final ReentrantLock lock = new ReentrantLock();
  private volatile Block current;
  /** The reservation in flight or done but not installed; null when none. Guarded by {@link #lock}. */
  private CompletableFuture<long[]> pending;
  private volatile boolean closed;

  /**
   * Reserves the first block on the caller's thread, so a sequence that does not exist (NOT_FOUND) or an
   * unreachable directory (UNAVAILABLE) fails here.
   *
   * @param blockSize numbers per reservation; 0 asks for the sequence's default block size
   */
  public SequenceBlocks(String name, long blockSize, Source source, Executor executor, long maxWaitNanos,
                        LongSupplier nanoTime) {
    this.name = Objects.requireNonNull(name, "name");
    this.blockSize = blockSize;
    this.source = Objects.requireNonNull(source, "source");
    this.executor = Objects.requireNonNull(executor, "executor");
    this.maxWaitNanos = maxWaitNanos;
    this.nanoTime = Objects.requireNonNull(nanoTime, "nanoTime");
    this.current = block(source.reserve(blockSize));
  }

  public String name() {
    return name;
  }

  /**
   * The next number: above every number this thread got from this object before, and never returned by any
   * other caller of the sequence.
   *
   * @throws ShardmapException UNAVAILABLE when closed, or when the block is used up and no next block could
   *     be reserved within the wait bound (the message says why); nothing is consumed then
   */
  public long next() {
    Block b = current;
    if (b != null) {
      long v = b.cursor.getAndIncrement();
      // v >= first: a cursor pushed past Long.MAX_VALUE by calls on a used-up block must not wrap into range.
      if (v <= b.last && v >= b.first) {
        if (v == b.prefetchAt) {
          prefetch();
        }
        return v;
      }
    }
    return slow();
  }

  /** The block being handed out now as {@code {first, last, next}} (for tests and toString). */
  public long[] currentBlock() {
    Block b = current;
    return b == null ? null : new long[] {b.first, b.last, Math.min(b.cursor.get(), b.last + 1)};
  }

  private static Block block(long[] fl) {
    if (fl == null || fl.length != 2 || fl[1] < fl[0] || fl[0] < 1) {
      throw new ShardmapException(ErrorCode.INTERNAL, "a sequence block must be {first, last} with 1 <= first <= "
          + "last; got " + (fl == null ? "null" : java.util.Arrays.toString(fl)));
    }
    return new Block(fl[0], fl[1]);
  }

  /** Starts reserving the next block unless one is in flight or waiting. */
  private void prefetch() {
    lock.lock();
    try {
      if (pending == null && !closed) {
        pending = submit();
      }
    } finally {
      lock.unlock();
    }
  }

  private CompletableFuture<long[]> submit() {
    try {
      return CompletableFuture.supplyAsync(() -> source.reserve(blockSize), executor).whenComplete((r, e) -> {
        if (e != null) {
          log.warning("shardmap sequence '" + name + "': reserving the next block failed (" + message(e) + "); "
              + "it is tried again when the current block is used up");
        }
      });
    } catch (RejectedExecutionException e) {
      return CompletableFuture.failedFuture(new ShardmapException(ErrorCode.UNAVAILABLE, "sequence '" + name
          + "' is closed"));
    }
  }

  private long slow() {
    long deadline = nanoTime.getAsLong() + maxWaitNanos;
    try {
      if (!lock.tryLock(Math.max(0, deadline - nanoTime.getAsLong()), TimeUnit.NANOSECONDS)) {
        throw unavailable("another thread has been installing the next block for longer than the wait bound", null);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw unavailable("interrupted while waiting for the next block", e);
    }
    try {
      boolean retried = false;
      while (true) {
        if (closed) {
          throw new ShardmapException(ErrorCode.UNAVAILABLE, "sequence '" + name + "' is closed");
        }
        Block b = current;
        long v = b.cursor.getAndIncrement();
        if (v <= b.last && v >= b.first) {
          // Another thread installed a new block while this one waited for the lock.
          if (v == b.prefetchAt && pending == null) {
            pending = submit();
          }
          return v;
        }
        if (pending == null) {
          pending = submit();
        }
        long[] got;
        try {
          got = pending.get(Math.max(0, deadline - nanoTime.getAsLong()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
          // Still in flight: keep it, a later call takes it.
          throw unavailable("no next block within " + TimeUnit.NANOSECONDS.toMillis(maxWaitNanos) + " ms (the "
              + "reservation is still in flight)", e);
        } catch (ExecutionException e) {
          pending = null;
          if (!retried && nanoTime.getAsLong() - deadline < 0) {
            // The background prefetch failed earlier: try once more now that the block is needed.
            retried = true;
            continue;
          }
          throw unavailable("reserving the next block failed: " + message(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw unavailable("interrupted while waiting for the next block", e);
        }
        pending = null;
        Block next = block(got);
        if (next.first <= b.last) {
          // The source broke its contract (blocks above each other): handing these out could repeat numbers.
          throw new ShardmapException(ErrorCode.INTERNAL, "sequence '" + name + "': the block reserved ["
              + next.first + ", " + next.last + "] does not lie above the previous one [" + b.first + ", " + b.last
              + "]; refusing to hand out numbers that may repeat");
        }
        current = next;
      }
    } finally {
      lock.unlock();
    }
  }

  private ShardmapException unavailable(String why, Throwable cause) {
    return new ShardmapException(ErrorCode.UNAVAILABLE, "sequence '" + name + "': its block is used up and " + why
        + "; no number was issued", cause);
  }

  private static String message(Throwable e) {
    Throwable t = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
    return t.getMessage() != null ? t.getMessage() : t.toString();
  }

  /**
   * Stops handing out numbers at once. The rest of the current block and a prefetched (or in-flight) block are
   * never handed out by anyone: the sequence's gap bound.
   */
  @Override
  public void close() {
    closed = true;
    Block b = current;
    if (b != null) {
      // Push the cursor past the end so a next() already past its closed check takes the slow path.
      b.cursor.set(b.last + 1);
    }
  }

  @Override
  public String toString() {
    long[] b = currentBlock();
    return "SequenceBlocks{" + name + (closed ? ", closed" : "") + (b == null ? "" : ", block [" + b[0] + ", " + b[1]
        + "], next " + b[2]) + "}";
  }
}
