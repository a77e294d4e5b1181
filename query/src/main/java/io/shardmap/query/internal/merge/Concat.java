package io.shardmap.query.internal.merge;

import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.List;

/** The rows of every input, one input after the other: the merge of an unordered plain query. */
final class Concat implements RowSource {
  private final List<RowSource> inputs;
  private final int width;
  private int current;

  Concat(List<RowSource> inputs, int width) {
    this.inputs = List.copyOf(inputs);
    this.width = width;
  }

  @Override
  public Object[] next() throws SQLException {
    while (current < inputs.size()) {
      Object[] row = inputs.get(current).next();
      if (row != null) {
        return Merger.checkWidth(row, width, current);
      }
      current++;
    }
    return null;
  }

  @Override
  public void close() {
    Closer.closeAll(inputs, null);
  }
}
