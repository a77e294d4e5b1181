package io.shardmap.migrator.internal;

import io.shardmap.catalog.Records;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Shard;
import io.shardmap.store.RangeResult;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Properties;

/** Opens JDBC connections to a shard's primary, as registered in etcd. */
public final class PgConnector {
  private final MigrationStore ms;
  private final String user;
  private final String password;
  private final Duration connectTimeout;

  public PgConnector(MigrationStore ms, String user, String password, Duration connectTimeout) {
    this.ms = ms;
    this.user = user;
    this.password = password;
    this.connectTimeout = connectTimeout;
  }

  /** The shard's registration; NOT_FOUND naming {@code field} when it is not registered. */
  public Shard shard(String field, String name) {
    RangeResult r = ms.read("reading shard " + name, () -> ms.store().get(ms.paths().shard(name)));
    if (r.kvs().isEmpty()) {
      throw ShardmapException.notFound(field + ": no shard '" + name + "' is registered");
    }
    return Records.decode(r.kvs().get(0), Shard.parser());
  }

  /** A connection to the shard's primary; UNAVAILABLE naming the shard and endpoint when it cannot. */
  public Connection open(String field, String name) {
    Endpoint e = shard(field, name).getPrimary();
    String host = e.getHost().indexOf(':') >= 0 && !e.getHost().startsWith("[") ? "[" + e.getHost() + "]" : e.getHost();
    String url = "jdbc:postgresql://" + host + ":" + e.getPort() + "/" + e.getDatabase();
    Properties p = new Properties();
    p.setProperty("user", user);
    if (password != null) {
      p.setProperty("password", password);
    }
    p.setProperty("connectTimeout", Long.toString(Math.max(1, connectTimeout.toSeconds())));
    p.setProperty("ApplicationName", "shardmap-migrator");
    p.setProperty("tcpKeepAlive", "true");
    try {
      return DriverManager.getConnection(url, p);
    } catch (SQLException ex) {
      throw new ShardmapException(ErrorCode.UNAVAILABLE, field + ": cannot connect to shard '" + name + "' at "
          + e.getHost() + ":" + e.getPort() + "/" + e.getDatabase() + ": " + ex.getMessage(), ex);
    }
  }
}
