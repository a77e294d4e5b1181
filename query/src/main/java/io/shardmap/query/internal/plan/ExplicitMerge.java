package io.shardmap.query.internal.plan;

import io.shardmap.core.ShardmapException;

/** Refusals of an explicit {@link io.shardmap.query.Merge} that does not fit its statement (field {@code merge}). */
final class ExplicitMerge {
  private ExplicitMerge() {}

  static ShardmapException refuse(String rule) {
    return ShardmapException.invalid("merge", rule);
  }
}
