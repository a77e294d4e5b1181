package io.shardmap.migrator.cli;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.server.internal.StoreLayout;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.RangeResult;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.OptionalLong;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The number of rows a move will copy, as PostgreSQL's planner estimates it on the source
 * ({@code EXPLAIN SELECT 1 FROM t WHERE key >= lo AND key < hi}, summed over the tables): no row is read,
 * so it costs nothing on a big table, and it is only as good as the table's statistics. It drives the
 * progress bar and ETA of a foreground copy; any failure just means no bar.
 */
final class RowEstimate {
  private static final Pattern PLAN_ROWS = Pattern.compile("\"Plan Rows\"\\s*:\\s*(\\d+)");

  private RowEstimate() {}

  /** The estimate, or empty if the source cannot be asked (or the key type has no numeric bounds). */
  static OptionalLong of(MigratorOptions o, Migration m) {
    if (m.getKeyType() != KeyType.KEY_TYPE_INT64 || m.getTablesCount() == 0) {
      return OptionalLong.empty();
    }
    try {
      Endpoint e = sourceEndpoint(o, m.getSource());
      if (e == null) {
        return OptionalLong.empty();
      }
      String host = e.getHost().indexOf(':') >= 0 && !e.getHost().startsWith("[") ? "[" + e.getHost() + "]"
          : e.getHost();
      Properties p = new Properties();
      p.setProperty("user", o.pgUser());
      if (o.pgPassword() != null) {
        p.setProperty("password", o.pgPassword());
      }
      p.setProperty("connectTimeout", Long.toString(Math.max(1, o.pgConnectTimeout().toSeconds())));
      p.setProperty("socketTimeout", "10");
      p.setProperty("ApplicationName", "shardmap-migrator-estimate");
      KeyRange r = KeyRange.fromProto(m.getKeyType(), m.getRange(), "range");
      long total = 0;
      try (Connection c = DriverManager.getConnection("jdbc:postgresql://" + host + ":" + e.getPort() + "/"
          + e.getDatabase(), p)) {
        for (ShardedTable t : m.getTablesList()) {
          String k = ident(t.getKeyColumn());
          String where = (r.unboundedBelow() ? "true" : k + " >= " + Keys.decodeInt64(r.start())) + " AND "
              + (r.unboundedAbove() ? "true" : k + " < " + Keys.decodeInt64(r.end()));
          try (PreparedStatement ps = c.prepareStatement("EXPLAIN (FORMAT JSON) SELECT 1 FROM " + ident(t.getName())
              + " WHERE " + where); ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) {
              return OptionalLong.empty();
            }
            Matcher mr = PLAN_ROWS.matcher(rs.getString(1));
            if (!mr.find()) {
              return OptionalLong.empty();
            }
            total += Long.parseLong(mr.group(1));
          }
        }
      }
      return OptionalLong.of(total);
    } catch (Exception | LinkageError e) {
      return OptionalLong.empty();
    }
  }

  private static Endpoint sourceEndpoint(MigratorOptions o, String shard) throws Exception {
    try (EtcdMetaStore store = EtcdMetaStore.builder().endpoints(o.etcdEndpoints()).requestTimeout(o.etcdTimeout())
        .build()) {
      RangeResult r = store.get(new StoreLayout(o.etcdPrefix()).shard(shard))
          .get(o.etcdTimeout().toMillis(), TimeUnit.MILLISECONDS);
      return r.kvs().isEmpty() ? null : Shard.parseFrom(r.kvs().get(0).value()).getPrimary();
    }
  }

  /** A quoted SQL identifier; a schema-qualified table name has each part quoted. */
  static String ident(String name) {
    StringBuilder b = new StringBuilder();
    for (String part : name.split("\\.", -1)) {
      if (b.length() > 0) {
        b.append('.');
      }
      b.append('"').append(part.replace("\"", "\"\"")).append('"');
    }
    return b.toString();
  }
}
