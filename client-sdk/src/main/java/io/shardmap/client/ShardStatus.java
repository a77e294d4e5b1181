package io.shardmap.client;

import java.time.Duration;

/**
 * What one shard did for a cross-shard query ({@link QueryResult#shards()}).
 *
 * @param shard the shard's name
 * @param rows rows read from it so far (final once the result is read to its end); its statement's rows,
 *     before the merge (a GROUP BY shard row is a partial group)
 * @param error null when it answered; else why it failed (the query failed unless it ran in partial mode)
 * @param elapsed from the query's start until its part was read to its end, failed, or the result closed
 */
public record ShardStatus(String shard, long rows, String error, Duration elapsed) {
  /** True when the shard answered. */
  public boolean ok() {
    return error == null;
  }
}
