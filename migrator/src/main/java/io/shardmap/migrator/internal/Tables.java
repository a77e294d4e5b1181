package io.shardmap.migrator.internal;

import io.shardmap.core.sql.KeyKind;

import static io.shardmap.migrator.internal.RangeTableMove.ident;

import io.shardmap.core.ShardmapException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

/**
 * Table definitions on a shard: the columns binary COPY depends on (names, types, order), checks that
 * source and target agree, and creation of a missing target table from the source's definition.
 */
public final class Tables {
  private Tables() {}

  /**
   * One column as binary COPY sees it: name and exact type (with modifiers). {@code defaultExpr} is the
   * generation expression of a generated column: such a column is computed by each shard and never
   * copied (COPY FROM refuses values for it), so source and target must agree on it too.
   */
  public record Column(String name, String type, boolean notNull, String defaultExpr, boolean generated) {
    String signature() {
      return name + " " + type + (generated ? " GENERATED ALWAYS AS (" + defaultExpr + ") STORED" : "");
    }
  }

  /** The table's columns in order, or null when the table does not exist. */
  public static List<Column> columns(Connection c, String table) throws SQLException {
    return columnsOf(c, ident(table));
  }

  /** {@link #columns} of a table named in SQL as it is ({@code sqlName} quoted where needed, e.g. canonical). */
  static List<Column> columnsOf(Connection c, String sqlName) throws SQLException {
    Long oid;
    try (PreparedStatement ps = c.prepareStatement("SELECT to_regclass(?)::oid")) {
      ps.setString(1, sqlName);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        oid = (Long) rs.getObject(1);
      }
    }
    if (oid == null) {
      return null;
    }
    List<Column> out = new ArrayList<>();
    try (PreparedStatement ps = c.prepareStatement("SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        + "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '' FROM pg_attribute a LEFT JOIN pg_attrdef d "
        + "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = ? AND a.attnum > 0 "
        + "AND NOT a.attisdropped ORDER BY a.attnum")) {
      ps.setLong(1, oid);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(new Column(rs.getString(1), rs.getString(2), rs.getBoolean(3), rs.getString(4), rs.getBoolean(5)));
        }
      }
    }
    return out;
  }

  /**
   * Refuses (FAILED_PRECONDITION naming the table, both shards and the first difference) when the target's
   * columns differ from the source's in name, type or order: binary COPY would fail or, worse, misread.
   */
  public static void requireSameColumns(String table, String source, List<Column> src, String target,
                                        List<Column> dst) {
    for (int i = 0; i < Math.max(src.size(), dst.size()); i++) {
      String a = i < src.size() ? src.get(i).signature() : "(none)";
      String b = i < dst.size() ? dst.get(i).signature() : "(none)";
      if (!a.equals(b)) {
        throw ShardmapException.precondition("target: table " + table + " on shard '" + target
            + "' has a different schema than on source shard '" + source + "': column " + (i + 1) + " is '" + b
            + "' there and '" + a + "' on the source; make them equal first");
      }
    }
  }

  /**
   * The kind of the table's key column: it must exist and be able to hold the keyspace's keys (integers for
   * INT64; text, varchar or bytea for BYTES), else FAILED_PRECONDITION naming the table, shard and column.
   */
  public static KeyKind requireKeyColumn(String table, String shard, List<Column> cols, String keyColumn,
                                         io.shardmap.proto.v1.KeyType keyType) {
    for (Column c : cols) {
      if (c.name().equals(keyColumn)) {
        KeyKind kind = KeyKind.of(keyType, c.type());
        if (kind == null) {
          throw ShardmapException.precondition("tables: key column " + keyColumn + " of table " + table + " on shard '"
              + shard + "' is " + c.type() + "; " + (keyType == io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64
              ? "an INT64 keyspace needs bigint, integer or smallint"
              : "a BYTES keyspace needs text, varchar or bytea"));
        }
        return kind;
      }
    }
    throw ShardmapException.precondition("tables: table " + table + " on shard '" + shard + "' has no key column '"
        + keyColumn + "'");
  }

  /** {@link #requireKeyColumn} of a table as it is on {@code c}; FAILED_PRECONDITION if it is missing. */
  public static KeyKind keyKind(Connection c, io.shardmap.proto.v1.KeyType keyType, String table, String keyColumn,
                                String shard) throws SQLException {
    List<Column> cols = columns(c, table);
    if (cols == null) {
      throw ShardmapException.precondition("tables: table " + table + " does not exist on shard '" + shard + "'");
    }
    return requireKeyColumn(table, shard, cols, keyColumn, keyType);
  }

  /**
   * The DDL that recreates the source's table elsewhere: columns with types, NOT NULL, generation
   * expressions and defaults (except those drawing from a sequence, which would not exist there), primary
   * key, unique and check
   * constraints, and the other indexes. Foreign keys are left out: they cannot span shards.
   */
  public static List<String> createStatements(Connection source, String table) throws SQLException {
    List<Column> cols = columns(source, table);
    if (cols == null) {
      throw ShardmapException.precondition("tables: table " + table + " does not exist on the source");
    }
    List<String> out = new ArrayList<>();
    int dot = table.indexOf('.');
    if (dot > 0) {
      out.add("CREATE SCHEMA IF NOT EXISTS " + ident(table.substring(0, dot)));
    }
    StringBuilder ddl = new StringBuilder("CREATE TABLE " + ident(table) + " (");
    for (int i = 0; i < cols.size(); i++) {
      Column c = cols.get(i);
      ddl.append(i == 0 ? "" : ", ").append(ident(c.name())).append(' ').append(c.type());
      if (c.notNull()) {
        ddl.append(" NOT NULL");
      }
      if (c.generated()) {
        ddl.append(" GENERATED ALWAYS AS (").append(c.defaultExpr()).append(") STORED");
      } else if (c.defaultExpr() != null && !c.defaultExpr().contains("nextval(")) {
        ddl.append(" DEFAULT ").append(c.defaultExpr());
      }
    }
    try (PreparedStatement ps = source.prepareStatement("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        + "WHERE conrelid = ?::regclass AND contype IN ('p', 'u', 'c') ORDER BY contype, conname")) {
      ps.setString(1, ident(table));
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          ddl.append(", CONSTRAINT ").append(ident(rs.getString(1))).append(' ').append(rs.getString(2));
        }
      }
    }
    out.add(ddl.append(')').toString());
    try (PreparedStatement ps = source.prepareStatement("SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        + "WHERE i.indrelid = ?::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)")) {
      ps.setString(1, ident(table));
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          out.add(rs.getString(1));
        }
      }
    }
    return out;
  }

  /**
   * Creates the table on the target in one transaction; false if it already exists. Migrations preparing
   * at once on one target (two units moving to a new shard) create it once: the second waits, then finds it.
   * Anyone else creating it at the same moment (an operator, an older migrator) makes this transaction
   * fail with "already exists", or a unique violation in the catalog; that is a false too.
   */
  public static boolean createIfMissing(Connection source, Connection target, String table) throws SQLException {
    if (columns(target, table) != null) {
      return false;
    }
    List<String> ddl = createStatements(source, table);
    return RangeTableMove.serialized(target, "table." + table, () -> {
      if (columns(target, table) != null) {
        return false;
      }
      try {
        RangeTableMove.inTransaction(target, s -> {
          for (String sql : ddl) {
            s.execute(sql);
          }
        });
      } catch (SQLException e) {
        if (("42P07".equals(e.getSQLState()) || "23505".equals(e.getSQLState())) && columns(target, table) != null) {
          return false;
        }
        throw e;
      }
      return true;
    });
  }

  /**
   * Drops a table this migration created, if it holds no rows (a cancelled move) and no other migration
   * still moves rows into it ({@code neededElsewhere}, asked under the same lock that serializes table
   * creation: a migration that found the table in its prepare step is recorded before that step, so it is
   * seen here, and one that comes later creates the table again).
   */
  public static void dropIfEmpty(Connection target, String table, RangeTableMove.SqlCall<Boolean> neededElsewhere)
      throws SQLException {
    RangeTableMove.serialized(target, "table." + table, () -> {
      if (columns(target, table) == null || neededElsewhere.call()) {
        return null;
      }
      try (Statement s = target.createStatement(); ResultSet rs = s.executeQuery("SELECT EXISTS (SELECT 1 FROM "
          + ident(table) + ")")) {
        rs.next();
        if (rs.getBoolean(1)) {
          return null;
        }
      }
      try (Statement s = target.createStatement()) {
        s.execute("DROP TABLE IF EXISTS " + ident(table));
      }
      return null;
    });
  }
}
