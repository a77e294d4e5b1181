package io.shardmap.client.internal.query;

import java.util.List;

/**
 * Which rows of the keyspace a query asks for, checked against the keyspace's key type: every row, the
 * rows with keys in [start, end) (canonical bytes, empty for an unbounded side; range keyspaces only), or
 * the rows with one of the listed keys (canonical bytes).
 */
public sealed interface QueryTarget {
  record All() implements QueryTarget {}

  record Range(byte[] start, byte[] end) implements QueryTarget {}

  record Keys(List<byte[]> keys) implements QueryTarget {
    public Keys {
      keys = List.copyOf(keys);
    }
  }
}
