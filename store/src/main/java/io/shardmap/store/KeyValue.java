package io.shardmap.store;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One key as stored, with etcd's three counters: the revision that created it, the revision that last
 * modified it, and how many times it was written since creation ({@code version}, 1 on creation).
 */
public record KeyValue(String key, byte[] value, long createRevision, long modRevision, long version,
                       long lease) {

  public String valueUtf8() {
    return new String(value, StandardCharsets.UTF_8);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof KeyValue kv && key.equals(kv.key) && Arrays.equals(value, kv.value)
        && createRevision == kv.createRevision && modRevision == kv.modRevision
        && version == kv.version && lease == kv.lease;
  }

  @Override
  public int hashCode() {
    return key.hashCode() * 31 + Long.hashCode(modRevision);
  }

  @Override
  public String toString() {
    return "KeyValue[" + key + " mod=" + modRevision + " ver=" + version + " " + value.length + "B]";
  }
}
