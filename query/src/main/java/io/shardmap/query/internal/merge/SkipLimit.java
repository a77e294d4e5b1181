package io.shardmap.query.internal.merge;

import io.shardmap.query.RowSource;
import java.sql.SQLException;

/**
 * OFFSET and LIMIT: skips {@code offset} rows while reading (never buffering them), then passes at most
 * {@code limit} rows, and reads nothing once the limit is reached.
 */
final class SkipLimit implements RowSource {
  private final RowSource input;
  private final long offset;
  private final long limit;
  private long skipped;
  private long returned;

  /** @param limit -1 for none */
  SkipLimit(RowSource input, long offset, long limit) {
    this.input = input;
    this.offset = offset;
    this.limit = limit;
  }

  @Override
  public Object[] next() throws SQLException {
    if (limit >= 0 && returned >= limit) {
      return null;
    }
    while (skipped < offset) {
      if (input.next() == null) {
        return null;
      }
      skipped++;
    }
    Object[] row = input.next();
    if (row != null) {
      returned++;
    }
    return row;
  }

  @Override
  public void close() {
    input.close();
  }
}
