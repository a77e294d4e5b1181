package io.shardmap.query.internal.merge;

import io.shardmap.query.ColumnType;
import io.shardmap.query.RowSource;
import java.math.BigDecimal;
import java.sql.SQLException;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Combines the shards' partial aggregates per group: reads every input row, keys it by its GROUP BY values
 * as PostgreSQL's equality sees them, and folds its partials into the group's state; then yields one group
 * row {@code [group values..., final aggregates...]} per group, in first-seen order. The group values
 * output are those of the group's first row. Groups and COUNT(DISTINCT) values count against the merge's
 * memory cap.
 */
final class HashAggregate implements RowSource {
  private final RowSource input;
  private final int width;
  private final int[] groupColumns;
  private final List<MergeSpec.Aggregate> aggregates;
  private final List<ColumnType> types;
  private final Comparator<Object>[] minMaxOrder;
  private final MemoryBudget budget;
  private final String groupClause;
  private Iterator<Group> output;

  private final class Group {
    final Object[] values;
    final Object[] acc = new Object[aggregates.size()];
    final long[] counts = new long[aggregates.size()];
    final Set<Object>[] distinct;

    @SuppressWarnings("unchecked")
    Group(Object[] values) {
      this.values = values;
      this.distinct = new Set[aggregates.size()];
    }
  }

  @SuppressWarnings("unchecked")
  HashAggregate(RowSource input, int width, MergeSpec.Aggregation aggregation, List<ColumnType> types,
                MemoryBudget budget) {
    this.input = input;
    this.width = width;
    this.groupColumns = aggregation.groupColumns().stream().mapToInt(Integer::intValue).toArray();
    this.aggregates = aggregation.aggregates();
    this.types = types;
    this.budget = budget;
    this.groupClause = aggregates.isEmpty() ? "DISTINCT or GROUP BY" : "GROUP BY";
    this.minMaxOrder = new Comparator[aggregates.size()];
    for (int i = 0; i < aggregates.size(); i++) {
      MergeSpec.Aggregate a = aggregates.get(i);
      if (a.kind() == MergeSpec.Aggregate.Kind.MIN || a.kind() == MergeSpec.Aggregate.Kind.MAX) {
        minMaxOrder[i] = PgValues.order(types.get(a.column()), "column " + (a.column() + 1),
            a.kind() + "()");
      }
    }
  }

  @Override
  public Object[] next() throws SQLException {
    if (output == null) {
      output = consume().values().iterator();
    }
    if (!output.hasNext()) {
      return null;
    }
    Group g = output.next();
    // The group leaves memory as it is passed on (a later ORDER BY takes its own share of the budget).
    output.remove();
    budget.release(1);
    for (Set<Object> d : g.distinct) {
      if (d != null) {
        budget.release(d.size());
      }
    }
    return finish(g);
  }

  private Map<List<Object>, Group> consume() throws SQLException {
    Map<List<Object>, Group> groups = new LinkedHashMap<>();
    Object[] row;
    while ((row = input.next()) != null) {
      Merger.checkWidth(row, width, -1);
      Object[] keyValues = new Object[groupColumns.length];
      for (int i = 0; i < groupColumns.length; i++) {
        int c = groupColumns[i];
        keyValues[i] = PgValues.groupKey(row[c], types.get(c), "column " + (c + 1), groupClause);
      }
      List<Object> key = Arrays.asList(keyValues);
      Group g = groups.get(key);
      if (g == null) {
        budget.acquire(groupClause, "groups");
        Object[] values = new Object[groupColumns.length];
        for (int i = 0; i < groupColumns.length; i++) {
          values[i] = row[groupColumns[i]];
        }
        g = new Group(values);
        groups.put(key, g);
      }
      fold(g, row);
    }
    if (groupColumns.length == 0 && groups.isEmpty()) {
      // Aggregates without GROUP BY: one group even over no rows (COUNT 0, the others NULL).
      budget.acquire("GROUP BY", "groups");
      groups.put(List.of(), new Group(new Object[0]));
    }
    return groups;
  }

  private void fold(Group g, Object[] row) throws SQLException {
    for (int i = 0; i < aggregates.size(); i++) {
      MergeSpec.Aggregate a = aggregates.get(i);
      Object v = row[a.column()];
      switch (a.kind()) {
        case COUNT:
          if (v != null) {
            g.counts[i] = PgNumeric.addBigint(g.counts[i], ((Number) v).longValue());
          }
          break;
        case SUM:
          g.acc[i] = addSum((Number) g.acc[i], (Number) v, a.column());
          break;
        case AVG:
          Object n = row[a.countColumn()];
          if (v != null) {
            g.acc[i] = addSum((Number) g.acc[i], (Number) v, a.column());
          }
          if (n != null) {
            g.counts[i] = PgNumeric.addBigint(g.counts[i], ((Number) n).longValue());
          }
          break;
        case MIN:
        case MAX:
          if (v != null) {
            if (g.acc[i] == null) {
              g.acc[i] = v;
            } else {
              int c = minMaxOrder[i].compare(v, g.acc[i]);
              if (a.kind() == MergeSpec.Aggregate.Kind.MIN ? c < 0 : c > 0) {
                g.acc[i] = v;
              }
            }
          }
          break;
        case COUNT_DISTINCT:
          if (v != null) {
            if (g.distinct[i] == null) {
              g.distinct[i] = new HashSet<>();
            }
            Object key = PgValues.groupKey(v, types.get(a.column()), "column " + (a.column() + 1),
                "COUNT(DISTINCT)");
            if (!g.distinct[i].contains(key)) {
              budget.acquire("COUNT(DISTINCT)", "distinct values");
              g.distinct[i].add(key);
            }
          }
          break;
        default:
          throw new IllegalStateException("unknown aggregate " + a.kind());
      }
    }
  }

  /** SUM's combination, keeping the partials' type: bigint with overflow check, numeric exact, floats. */
  private Number addSum(Number acc, Number v, int column) throws SQLException {
    if (v == null) {
      return acc;
    }
    if (acc == null) {
      return v;
    }
    if (PgValues.isIntegral(acc) && PgValues.isIntegral(v)) {
      return PgNumeric.addBigint(acc.longValue(), v.longValue());
    }
    if (acc instanceof BigDecimal || v instanceof BigDecimal) {
      return PgNumeric.addNumeric(acc, v);
    }
    String t = PgValues.pgType(types.get(column));
    if (t.equals("numeric") || t.equals("decimal")) {
      return PgNumeric.addNumeric(acc, v);
    }
    if (acc instanceof Float && v instanceof Float) {
      return PgNumeric.addFloat4(acc.floatValue(), v.floatValue());
    }
    return PgNumeric.addFloat8(acc.doubleValue(), v.doubleValue());
  }

  private Object[] finish(Group g) throws SQLException {
    Object[] out = new Object[groupColumns.length + aggregates.size()];
    System.arraycopy(g.values, 0, out, 0, groupColumns.length);
    for (int i = 0; i < aggregates.size(); i++) {
      MergeSpec.Aggregate a = aggregates.get(i);
      Object v;
      switch (a.kind()) {
        case COUNT:
          v = g.counts[i];
          break;
        case COUNT_DISTINCT:
          v = g.distinct[i] == null ? 0L : (long) g.distinct[i].size();
          break;
        case AVG:
          v = average((Number) g.acc[i], g.counts[i], a.column());
          break;
        default:
          v = g.acc[i];
      }
      out[groupColumns.length + i] = v;
    }
    return out;
  }

  /**
   * AVG from the sum of sums and of counts: numeric division with PostgreSQL's result scale for integer
   * and numeric sums (avg(int) and avg(numeric) are numeric_div of the sum by the count), double division
   * for floating sums and for numeric's NaN and infinities.
   */
  private Object average(Number sum, long count, int column) throws SQLException {
    if (count == 0 || sum == null) {
      return null;
    }
    if (sum instanceof Double || sum instanceof Float) {
      return sum.doubleValue() / count;
    }
    return PgNumeric.divide(PgValues.toBigDecimal(sum), BigDecimal.valueOf(count));
  }

  @Override
  public void close() {
    input.close();
  }
}
