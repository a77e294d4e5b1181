package io.shardmap.query.internal.merge;

import io.shardmap.query.ColumnType;
import java.util.Comparator;
import java.util.List;

/**
 * An ORDER BY over rows: each key's column in PostgreSQL's order of its type, reversed for DESC, with NULLs
 * first or last as the key says (independently of the direction, as PostgreSQL's NULLS FIRST/LAST).
 */
final class RowOrder implements Comparator<Object[]> {
  private final int[] columns;
  private final boolean[] descending;
  private final boolean[] nullsFirst;
  private final Comparator<Object>[] orders;

  /**
   * @param types the type of each column the keys index
   * @param clause names the clause in refusals ("ORDER BY")
   */
  @SuppressWarnings("unchecked")
  RowOrder(List<MergeSpec.SortKey> keys, List<ColumnType> types, String clause) {
    int n = keys.size();
    columns = new int[n];
    descending = new boolean[n];
    nullsFirst = new boolean[n];
    orders = new Comparator[n];
    for (int i = 0; i < n; i++) {
      MergeSpec.SortKey k = keys.get(i);
      columns[i] = k.column();
      descending[i] = k.descending();
      nullsFirst[i] = k.nullsFirst();
      orders[i] = PgValues.order(types.get(k.column()), "column " + (k.column() + 1), clause);
    }
  }

  @Override
  public int compare(Object[] a, Object[] b) {
    for (int i = 0; i < columns.length; i++) {
      Object x = a[columns[i]];
      Object y = b[columns[i]];
      int c;
      if (x == null || y == null) {
        if (x == null && y == null) {
          continue;
        }
        c = (x == null) == nullsFirst[i] ? -1 : 1;
      } else {
        c = orders[i].compare(x, y);
        if (descending[i]) {
          c = -c;
        }
      }
      if (c != 0) {
        return c;
      }
    }
    return 0;
  }
}
