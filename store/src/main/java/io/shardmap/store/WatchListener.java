package io.shardmap.store;

import java.util.List;

/**
 * Receives a watch's output. Calls for one watch never overlap and arrive in order; a listener must not
 * block for long (it holds up the watch).
 */
public interface WatchListener {

  /** Every event of one revision under the watched prefix. */
  void onBatch(long revision, List<WatchEvent> events);

  /**
   * The store has sent every event up to {@code revision} (answer to {@link Watch#requestProgress()},
   * or sent unprompted). Not a proof of quorum: an isolated member answers from its own state.
   *
   * <p>On etcd before 3.4.25 / 3.5.8 an answer can overtake events of its own revision by a moment
   * (etcd issue 15220); such events still arrive, later, through {@link #onBatch}. Use progress for
   * freshness, never to conclude that a revision had no events.
   */
  default void onProgress(long revision) {}

  /** The watch cannot resume because {@code compactRevision} was compacted away; the watch has ended. */
  void onCompacted(long compactRevision);

  /**
   * A transient fault (connection lost, member down). The watch retries by itself and resumes after the
   * last delivered revision; this call is for logging and metrics only.
   */
  default void onTransientError(StoreException error) {}
}
