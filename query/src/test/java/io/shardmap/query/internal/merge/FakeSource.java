package io.shardmap.query.internal.merge;

import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

/** A shard's rows from a list, counting what was read and whether it was closed; can fail on demand. */
final class FakeSource implements RowSource {
  private final List<Object[]> rows;
  private int position;
  int pulled;
  int closes;
  /** Throw this from next() after this many rows (-1: never). */
  int failAfter = -1;
  SQLException failure;
  RuntimeException closeFailure;

  FakeSource(List<Object[]> rows) {
    this.rows = new ArrayList<>(rows);
  }

  static FakeSource of(Object[]... rows) {
    return new FakeSource(List.of(rows));
  }

  static Object[] row(Object... values) {
    return values;
  }

  @Override
  public Object[] next() throws SQLException {
    if (closes > 0) {
      throw new IllegalStateException("read after close");
    }
    if (failAfter >= 0 && position >= failAfter) {
      throw failure;
    }
    if (position >= rows.size()) {
      return null;
    }
    pulled++;
    return rows.get(position++).clone();
  }

  @Override
  public void close() {
    closes++;
    if (closeFailure != null) {
      throw closeFailure;
    }
  }
}
