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
   * The store the watch reconnected to does not continue the history it was following: etcd restored
   * from a backup (a restore makes a new cluster id unless the old cluster token is reused) or endpoints
   * that now reach another cluster. Revisions after the last delivered one would come from another
   * history, so the watch has ended without delivering any; the owner must re-read. By default this is
   * reported like a compaction ({@link #onCompacted} with etcd's current revision), which asks for the
   * same re-read.
   */
  default void onHistoryReset(long storeRevision, String reason) {
    onCompacted(storeRevision);
  }

  /**
   * A transient fault (connection lost, member down). The watch retries by itself and resumes after the
   * last delivered revision; this call is for logging and metrics only.
   */
  default void onTransientError(StoreException error) {}
}
