package io.shardmap.store;

/**
 * One change seen by a watch. For a delete, {@code kv} carries the key, an empty value and the
 * deleting revision as its mod revision.
 */
public record WatchEvent(Type type, KeyValue kv) {
  public enum Type { PUT, DELETE }
}
