package io.shardmap.query.internal.merge;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Streaming k-way merge of inputs each sorted by the same order: a heap of each input's head row, so it
 * holds one row per input whatever the total. Ties go to the lower input index, so the answer is
 * deterministic for given inputs. An input whose rows come out of order (a shard sorting in another
 * collation than the merge was told) fails the merge instead of giving a silently different order.
 */
final class MergeSort implements RowSource {
  private record Head(Object[] row, int input) {}

  private final List<RowSource> inputs;
  private final Comparator<Object[]> order;
  private final int width;
  private final PriorityQueue<Head> heap;
  private final Object[][] last;
  private boolean started;
  /** The input whose head was returned last; refilled on the next call, so no input is read ahead. */
  private int refill = -1;

  MergeSort(List<RowSource> inputs, Comparator<Object[]> order, int width) {
    this.inputs = List.copyOf(inputs);
    this.order = order;
    this.width = width;
    this.last = new Object[inputs.size()][];
    Comparator<Head> byRow = (a, b) -> order.compare(a.row, b.row);
    this.heap = new PriorityQueue<>(Math.max(1, inputs.size()), byRow.thenComparingInt(Head::input));
  }

  @Override
  public Object[] next() throws SQLException {
    if (!started) {
      started = true;
      for (int i = 0; i < inputs.size(); i++) {
        pull(i);
      }
    } else if (refill >= 0) {
      pull(refill);
    }
    Head h = heap.poll();
    if (h == null) {
      refill = -1;
      return null;
    }
    refill = h.input;
    return h.row;
  }

  private void pull(int i) throws SQLException {
    Object[] row = inputs.get(i).next();
    if (row == null) {
      last[i] = null;
      return;
    }
    Merger.checkWidth(row, width, i);
    if (last[i] != null && order.compare(last[i], row) > 0) {
      throw new ShardmapException(ErrorCode.INTERNAL, "shard source " + i + " returned rows out of the "
          + "merge's ORDER BY (a shard sorting in another collation or type than the merge options say); "
          + "the merge stops rather than give a different order than one database would");
    }
    last[i] = row;
    heap.add(new Head(row, i));
  }

  @Override
  public void close() {
    Closer.closeAll(inputs, null);
  }
}
