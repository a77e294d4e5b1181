package io.shardmap.store;

import java.util.List;

/** The result of a read: the matching keys (sorted by key) and the store revision they were read at. */
public record RangeResult(long revision, List<KeyValue> kvs) {
  public RangeResult {
    kvs = List.copyOf(kvs);
  }
}
