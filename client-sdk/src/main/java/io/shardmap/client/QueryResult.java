package io.shardmap.client;

import io.shardmap.client.internal.query.Execution;
import io.shardmap.core.ShardmapException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The streaming answer of {@link ShardmapData#query}: the rows the same SELECT gives on one database holding
 * every row, merged from the shards as they are read. It holds one connection per shard asked until it is
 * read to its end or closed: always close it (try-with-resources); closing early cancels what still runs.
 * For one thread at a time.
 *
 * <pre>{@code
 * try (QueryResult r = data.query(q)) {
 *   while (r.next()) {
 *     long id = r.getLong("id");
 *     String name = r.getString(2);
 *   }
 *   r.shards();   // which shards answered, how many rows each, and how long it took
 * }
 * }</pre>
 *
 * <p>Values are what PostgreSQL's JDBC driver gives for each column ({@code getObject}): Integer, Long,
 * BigDecimal, Double, String, Boolean, byte[], java.sql.Timestamp, ...; SQL NULL is null, and the typed
 * getters return null for it too.
 */
public final class QueryResult implements AutoCloseable {
  private final Execution execution;
  private final List<String> labels;
  private final Map<String, Integer> byLabel = new HashMap<>();
  private Object[] row;

  QueryResult(Execution execution, List<String> labels) {
    this.execution = execution;
    this.labels = List.copyOf(labels);
    for (int i = labels.size() - 1; i >= 0; i--) {
      byLabel.put(labels.get(i), i); // the first of equal labels wins, as in JDBC
    }
  }

  /**
   * Moves to the next row; false at the end (every shard's connection is then given back).
   *
   * @throws ShardmapException naming every failed shard (default mode), DEADLINE_EXCEEDED past the
   *     deadline, INVALID_ARGUMENT when the merge would hold more than {@code maxInMemoryRows}; the result is
   *     closed then
   */
  public boolean next() throws SQLException {
    row = execution.next();
    return row != null;
  }

  /** The answer's column labels, in order, as PostgreSQL labels them. */
  public List<String> columnLabels() {
    return labels;
  }

  /** The value of column {@code column} (1-based) of the current row. */
  public Object getObject(int column) {
    if (row == null) {
      throw new IllegalStateException("no current row: call next() first (and only while it returns true)");
    }
    if (column < 1 || column > row.length) {
      throw ShardmapException.invalid("column", "must be 1.." + row.length + ", got " + column);
    }
    return row[column - 1];
  }

  /** The value of the column labelled {@code label} (the first such column). */
  public Object getObject(String label) {
    Integer i = byLabel.get(label);
    if (i == null) {
      throw ShardmapException.invalid("label", "no column labelled '" + label + "' (labels: " + labels + ")");
    }
    return getObject(i + 1);
  }

  public Long getLong(int column) {
    return toLong(getObject(column), column);
  }

  public Long getLong(String label) {
    return toLong(getObject(label), label);
  }

  public Double getDouble(int column) {
    Object v = getObject(column);
    return v == null ? null : ((Number) numeric(v, column)).doubleValue();
  }

  public Double getDouble(String label) {
    Object v = getObject(label);
    return v == null ? null : ((Number) numeric(v, label)).doubleValue();
  }

  public BigDecimal getBigDecimal(int column) {
    return toBigDecimal(getObject(column), column);
  }

  public BigDecimal getBigDecimal(String label) {
    return toBigDecimal(getObject(label), label);
  }

  /** The value as text ({@code toString}; a BigDecimal without exponent). */
  public String getString(int column) {
    return toText(getObject(column));
  }

  public String getString(String label) {
    return toText(getObject(label));
  }

  public Boolean getBoolean(int column) {
    return cast(getObject(column), Boolean.class, column);
  }

  public Boolean getBoolean(String label) {
    return cast(getObject(label), Boolean.class, label);
  }

  public Timestamp getTimestamp(int column) {
    return cast(getObject(column), Timestamp.class, column);
  }

  public Timestamp getTimestamp(String label) {
    return cast(getObject(label), Timestamp.class, label);
  }

  /** The map revision the query ran at (its parts saw the rows each shard owns in that map). */
  public long revision() {
    return execution.revision();
  }

  /**
   * One status per shard asked, in name order: rows read from it so far (final at the end), its error (null
   * when it answered) and its time.
   */
  public List<ShardStatus> shards() {
    List<ShardStatus> out = new ArrayList<>();
    for (Execution.Status s : execution.statuses()) {
      out.add(new ShardStatus(s.shard(), s.rows(), s.error(), Duration.ofNanos(s.elapsedNanos())));
    }
    return out;
  }

  /**
   * True when some shard failed and its rows are missing (partial mode only): the answer then covers the
   * healthy shards' rows; {@link #shards()} names the failed ones.
   */
  public boolean partial() {
    return execution.partial();
  }

  /** Cancels what still runs and gives every shard's connection back. Idempotent. */
  @Override
  public void close() {
    execution.close();
  }

  private static Object numeric(Object v, Object column) {
    if (v instanceof Number) {
      return v;
    }
    throw ShardmapException.invalid("column", "column " + column + " holds a " + v.getClass().getSimpleName()
        + ", not a number");
  }

  private static Long toLong(Object v, Object column) {
    if (v == null) {
      return null;
    }
    if (v instanceof Long l) {
      return l;
    }
    if (v instanceof Integer || v instanceof Short || v instanceof Byte) {
      return ((Number) v).longValue();
    }
    try {
      if (v instanceof BigDecimal d) {
        return d.longValueExact();
      }
      if (v instanceof BigInteger b) {
        return b.longValueExact();
      }
    } catch (ArithmeticException e) {
      throw ShardmapException.invalid("column", "column " + column + " holds " + v + ", not a 64-bit integer");
    }
    throw ShardmapException.invalid("column", "column " + column + " holds a " + v.getClass().getSimpleName()
        + ", not an integer");
  }

  private static BigDecimal toBigDecimal(Object v, Object column) {
    if (v == null) {
      return null;
    }
    if (v instanceof BigDecimal d) {
      return d;
    }
    if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
      return BigDecimal.valueOf(((Number) v).longValue());
    }
    if (v instanceof Double || v instanceof Float) {
      return new BigDecimal(v.toString()); // NaN and infinities have no BigDecimal: NumberFormatException
    }
    throw ShardmapException.invalid("column", "column " + column + " holds a " + v.getClass().getSimpleName()
        + ", not a number");
  }

  private static String toText(Object v) {
    if (v == null) {
      return null;
    }
    return v instanceof BigDecimal d ? d.toPlainString() : v.toString();
  }

  private static <T> T cast(Object v, Class<T> type, Object column) {
    if (v == null) {
      return null;
    }
    if (!type.isInstance(v)) {
      throw ShardmapException.invalid("column", "column " + column + " holds a " + v.getClass().getSimpleName()
          + ", not a " + type.getSimpleName());
    }
    return type.cast(v);
  }
}
