package io.shardmap.query.internal.merge;

import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;

/**
 * ORDER BY over rows that arrive unordered (group rows): reads its input, then yields it sorted. With a
 * known {@code keep} (offset + limit) it holds only the best {@code keep} rows (a bounded heap); otherwise
 * all rows. Every held row counts against the merge's memory cap. Rows equal in the order keep their
 * arrival order, so the answer is deterministic.
 */
final class MemorySort implements RowSource {
  private record Entry(Object[] row, long seq) {}

  private final RowSource input;
  private final Comparator<Entry> order;
  private final long keep;
  private final MemoryBudget budget;
  private List<Entry> sorted;
  private int position;

  /** @param keep the most rows the answer can need, or -1 when unknown */
  MemorySort(RowSource input, Comparator<Object[]> rowOrder, long keep, MemoryBudget budget) {
    this.input = input;
    Comparator<Entry> byRow = (a, b) -> rowOrder.compare(a.row, b.row);
    this.order = byRow.thenComparingLong(Entry::seq);
    this.keep = keep;
    this.budget = budget;
  }

  @Override
  public Object[] next() throws SQLException {
    if (sorted == null) {
      sorted = keep >= 0 ? topN() : all();
    }
    if (position >= sorted.size()) {
      return null;
    }
    Entry e = sorted.get(position);
    sorted.set(position++, null);
    budget.release(1);
    return e.row;
  }

  private List<Entry> all() throws SQLException {
    List<Entry> rows = new ArrayList<>();
    Object[] row;
    long seq = 0;
    while ((row = input.next()) != null) {
      budget.acquire("ORDER BY", "rows to sort");
      rows.add(new Entry(row, seq++));
    }
    rows.sort(order);
    return rows;
  }

  private List<Entry> topN() throws SQLException {
    // A max-heap of the best rows so far: a new row replaces the worst once the heap is full.
    PriorityQueue<Entry> heap = new PriorityQueue<>(order.reversed());
    Object[] row;
    long seq = 0;
    while ((row = input.next()) != null) {
      Entry e = new Entry(row, seq++);
      if (heap.size() < keep) {
        budget.acquire("ORDER BY", "rows to sort");
        heap.add(e);
      } else if (keep > 0 && order.compare(e, heap.peek()) < 0) {
        heap.poll();
        heap.add(e);
      }
    }
    List<Entry> rows = new ArrayList<>(heap);
    rows.sort(order);
    return rows;
  }

  @Override
  public void close() {
    input.close();
  }
}
