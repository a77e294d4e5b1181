package io.shardmap.client;

/**
 * A followed keyspace as of the client's map. Immutable.
 *
 * @param name the keyspace's name
 * @param strategy {@code RANGE}, {@code HASH}, {@code CONSISTENT_HASH}, {@code DIRECTORY} or {@code GEOGRAPHIC}
 * @param integerKeys true for INT64 keys ({@link ShardKey#of(long)}), false for byte-string keys
 * @param heldWhole false for a directory keyspace held lazily (see {@link ShardmapClient}); true otherwise
 */
public record KeyspaceInfo(String name, String strategy, boolean integerKeys, boolean heldWhole) {}
