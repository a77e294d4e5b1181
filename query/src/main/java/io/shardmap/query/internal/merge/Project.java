package io.shardmap.query.internal.merge;

import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.List;

/** The answer's columns picked from each row (dropping hidden sort columns and partial aggregates). */
final class Project implements RowSource {
  private final RowSource input;
  private final int[] columns;

  Project(RowSource input, List<Integer> columns) {
    this.input = input;
    this.columns = columns.stream().mapToInt(Integer::intValue).toArray();
  }

  @Override
  public Object[] next() throws SQLException {
    Object[] row = input.next();
    if (row == null) {
      return null;
    }
    Object[] out = new Object[columns.length];
    for (int i = 0; i < columns.length; i++) {
      out[i] = row[columns[i]];
    }
    return out;
  }

  @Override
  public void close() {
    input.close();
  }
}
