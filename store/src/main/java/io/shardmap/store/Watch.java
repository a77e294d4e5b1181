package io.shardmap.store;

/** A running watch. */
public interface Watch extends AutoCloseable {

  /** Asks the store to confirm progress; the answer arrives as {@link WatchListener#onProgress}. */
  void requestProgress();

  /** Stops the watch; no listener call starts after this returns. Idempotent. */
  @Override
  void close();
}
