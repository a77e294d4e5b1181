package io.shardmap.core.sql;

import io.shardmap.proto.v1.Endpoint;

/** How Shardmap's own tools (the resolver, {@code shardmapctl}) address a shard's database over JDBC. */
public final class ShardJdbc {
  private ShardJdbc() {}

  /** The PostgreSQL JDBC URL of {@code e}: {@code jdbc:postgresql://host:port/database}, an IPv6 host bracketed. */
  public static String url(Endpoint e) {
    String host = e.getHost().contains(":") && !e.getHost().startsWith("[") ? "[" + e.getHost() + "]" : e.getHost();
    return "jdbc:postgresql://" + host + ":" + e.getPort() + "/" + e.getDatabase();
  }
}
