package io.shardmap.client.internal.query;

import io.shardmap.query.ColumnType;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.ShardStatement;
import io.shardmap.core.sql.KeySql;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The merge's view of the shard statement's columns ({@link ColumnType}): the type name from one shard's
 * result metadata, and for collatable columns the collation PostgreSQL resolved for the expression
 * ({@code pg_collation_for} over the statement), with {@code "default"} replaced by the database's own
 * (provider and locale from {@code pg_database}). Every shard runs the same statement on the same schema, so
 * one shard answers for all; cached per plan and set of shards (a plan is cached by the SDK per statement).
 */
final class ColumnTypes {
  private static final int MAX_CACHED = 1024;

  private record Key(QueryPlan plan, Set<String> shards) {}

  private final Map<Key, List<ColumnType>> cache = new ConcurrentHashMap<>();

  /**
   * The columns of {@code plan}'s shard statement, read through {@code c} (a connection of one of
   * {@code shards}, in the part's transaction) unless cached; {@code meta} is that part's result metadata.
   */
  List<ColumnType> of(QueryPlan plan, Set<String> shards, Connection c, ResultSetMetaData meta, List<Object> params)
      throws SQLException {
    Key key = new Key(plan, Set.copyOf(shards));
    List<ColumnType> known = cache.get(key);
    if (known != null) {
      return known;
    }
    if (c == null || meta == null) {
      throw new IllegalStateException("the column types of a plan must be learnt on a connection before its parts "
          + "give theirs back");
    }
    List<ColumnType> columns = probe(plan, c, meta, params);
    if (cache.size() >= MAX_CACHED) {
      cache.clear(); // plans come and go with the application's statements; a full reset keeps this bounded
    }
    cache.put(key, columns);
    return columns;
  }

  private static List<ColumnType> probe(QueryPlan plan, Connection c, ResultSetMetaData meta, List<Object> params)
      throws SQLException {
    int n = meta.getColumnCount();
    // LIMIT 0 inside, one row outside: the collation of each column's expression, whatever the data.
    ShardStatement st = plan.shardStatement(KeySql.FALSE, params);
    StringBuilder sql = new StringBuilder("SELECT ");
    StringBuilder aliases = new StringBuilder();
    for (int i = 1; i <= n; i++) {
      // pg_collation_for raises for a type without collations: ask it only for collatable ones.
      sql.append(i > 1 ? ", " : "").append("CASE WHEN (SELECT typcollation <> 0 FROM pg_type WHERE oid = pg_typeof(q.c")
          .append(i).append(")) THEN pg_collation_for(q.c").append(i).append(") END");
      aliases.append(i > 1 ? ", " : "").append('c').append(i);
    }
    sql.append(" FROM (VALUES (1)) one(x) LEFT JOIN LATERAL (SELECT * FROM (").append(st.sql())
        .append(") s LIMIT 0) q(").append(aliases).append(") ON true");
    String[] collations = new String[n];
    try (PreparedStatement ps = c.prepareStatement(sql.toString())) {
      for (int i = 0; i < st.params().size(); i++) {
        ps.setObject(i + 1, st.params().get(i));
      }
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        for (int i = 1; i <= n; i++) {
          collations[i - 1] = rs.getString(i);
        }
      }
    }
    Map<String, ColumnType.Collation> resolved = new HashMap<>();
    List<ColumnType> out = new ArrayList<>(n);
    for (int i = 1; i <= n; i++) {
      String name = collations[i - 1];
      ColumnType.Collation coll = null;
      if (name != null) {
        coll = resolved.get(name);
        if (coll == null) {
          coll = resolve(c, name);
          resolved.put(name, coll);
        }
      }
      out.add(new ColumnType(typeName(meta.getColumnTypeName(i)), coll));
    }
    return List.copyOf(out);
  }

  /** PgJDBC names integer columns with a sequence default "serial"; the merge wants the type itself. */
  static String typeName(String jdbcName) {
    return switch (jdbcName) {
      case "serial" -> "int4";
      case "bigserial" -> "int8";
      case "smallserial" -> "int2";
      default -> jdbcName;
    };
  }

  /** A collation as {@code pg_collation_for} names it (quoted), with the database default resolved. */
  private static ColumnType.Collation resolve(Connection c, String quotedName) throws SQLException {
    // to_jsonb(...): the locale columns differ between PostgreSQL versions (colliculocale in 15 and 16,
    // colllocale from 17; likewise daticulocale/datlocale).
    try (PreparedStatement ps = c.prepareStatement("SELECT k.collname, k.collprovider::text, k.collisdeterministic, "
        + "j->>'collcollate', coalesce(j->>'colliculocale', j->>'colllocale') "
        + "FROM pg_collation k, to_jsonb(k) j WHERE k.oid = ?::regcollation")) {
      ps.setString(1, quotedName);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          throw new SQLException("collation " + quotedName + " not found in pg_collation");
        }
        String name = rs.getString(1);
        char provider = rs.getString(2).charAt(0);
        boolean deterministic = rs.getBoolean(3);
        String collcollate = rs.getString(4);
        String icu = rs.getString(5);
        if (provider == 'd') {
          return databaseDefault(c);
        }
        if (provider == 'b') { // PostgreSQL 17's builtin provider: code point order, as libc's C
          return new ColumnType.Collation(name, 'c', "C", deterministic);
        }
        return new ColumnType.Collation(name, provider, provider == 'i' && icu != null ? icu : collcollate,
            deterministic);
      }
    }
  }

  private static ColumnType.Collation databaseDefault(Connection c) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT d.datcollate, coalesce(j->>'datlocprovider', 'c'), "
        + "coalesce(j->>'daticulocale', j->>'datlocale') FROM pg_database d, to_jsonb(d) j "
        + "WHERE d.datname = current_database()");
         ResultSet rs = ps.executeQuery()) {
      rs.next();
      String collate = rs.getString(1);
      char provider = rs.getString(2).charAt(0);
      String icu = rs.getString(3);
      if (provider == 'i') {
        return new ColumnType.Collation(icu, 'i', icu, true);
      }
      if (provider == 'b') {
        return new ColumnType.Collation("C", 'c', "C", true);
      }
      return new ColumnType.Collation(collate, 'c', collate, true);
    }
  }
}
