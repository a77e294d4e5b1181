package io.shardmap.client;

import io.shardmap.query.MergeOptions;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.RowSource;
import io.shardmap.query.ShardStatement;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;

/**
 * A hand-written {@link QueryPlan} for the executor's tests: every shard runs {@code template} with
 * {@code {owned}} replaced by the predicate, and the merge is a streaming k-way merge on the first column
 * (Comparable values, ascending, no NULLs), the rows passed through unchanged. It records the column types
 * the executor handed to the merge.
 */
final class OrderedTestPlan implements QueryPlan {
  private final String template;
  private final String table;
  private final String keyRef;
  private final int parameterCount;
  private final List<String> labels;
  volatile MergeOptions lastOptions;
  final List<String> shardSql = java.util.Collections.synchronizedList(new ArrayList<>());

  OrderedTestPlan(String template, String table, String keyRef, int parameterCount, List<String> labels) {
    this.template = template;
    this.table = table;
    this.keyRef = keyRef;
    this.parameterCount = parameterCount;
    this.labels = List.copyOf(labels);
  }

  @Override
  public String sql() {
    return template;
  }

  @Override
  public String table() {
    return table;
  }

  @Override
  public String keyRef() {
    return keyRef;
  }

  @Override
  public int parameterCount() {
    return parameterCount;
  }

  @Override
  public List<String> columnLabels() {
    return labels;
  }

  @Override
  public ShardStatement shardStatement(String predicate, List<Object> params) {
    if (params.size() != parameterCount) {
      throw io.shardmap.core.ShardmapException.invalid("params", "the statement has " + parameterCount
          + " placeholders, got " + params.size() + " values");
    }
    String sql = template.replace("{owned}", predicate);
    shardSql.add(sql);
    return new ShardStatement(sql, params);
  }

  @Override
  public RowSource merge(List<RowSource> shards, List<Object> params, MergeOptions options) {
    lastOptions = options;
    return new RowSource() {
      private PriorityQueue<Head> heads;

      record Head(Object[] row, RowSource from) {}

      @SuppressWarnings({"unchecked", "rawtypes"})
      @Override
      public Object[] next() throws SQLException {
        if (heads == null) {
          heads = new PriorityQueue<>((a, b) -> ((Comparable) a.row[0]).compareTo(b.row[0]));
          for (RowSource s : shards) {
            Object[] r = s.next();
            if (r != null) {
              heads.add(new Head(r, s));
            }
          }
        }
        Head h = heads.poll();
        if (h == null) {
          return null;
        }
        Object[] r = h.from.next();
        if (r != null) {
          heads.add(new Head(r, h.from));
        }
        return h.row;
      }

      @Override
      public void close() {
        for (RowSource s : shards) {
          s.close();
        }
      }
    };
  }

  @Override
  public String explain() {
    return template + " merged by column 1";
  }
}
