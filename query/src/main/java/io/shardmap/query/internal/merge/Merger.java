package io.shardmap.query.internal.merge;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.RowSource;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs a {@link MergeSpec}: composes the merge operators over the shards' row sources.
 *
 * <ul>
 *   <li>plain: {@link MergeSort} on the shard order (or {@link Concat} without one), {@link SkipLimit},
 *       {@link Project}; holds one row per shard whatever the OFFSET;
 *   <li>aggregated: {@link HashAggregate}, {@link Having}, {@link MemorySort} on the final order (a
 *       bounded heap when offset + limit is known), {@link SkipLimit}, {@link Project}; holds the groups,
 *       COUNT(DISTINCT) values and rows to sort, at most {@link MergeOptions#maxInMemoryRows} together.
 * </ul>
 *
 * <p>The merged source owns the shard sources: closing it closes each of them (all of them, even when one
 * close throws), and a failure while merging (a shard's error, an overflow, the memory cap) closes them all
 * before it propagates. If {@link #open} itself refuses the spec, the shard sources are closed too.
 */
public final class Merger {
  private Merger() {}

  public static RowSource open(MergeSpec spec, List<RowSource> shards, List<Object> params,
                               MergeOptions options) {
    List<RowSource> sources = List.copyOf(shards);
    try {
      return new Merged(build(spec, sources, params == null ? List.of() : params, options), sources);
    } catch (RuntimeException | Error e) {
      Closer.closeAll(sources, e);
      throw e;
    }
  }

  private static RowSource build(MergeSpec spec, List<RowSource> shards, List<Object> params,
                                 MergeOptions options) {
    int width = spec.shardColumns();
    List<ColumnType> types = options.columns();
    if (types.size() != width) {
      throw ShardmapException.invalid("columns", "the merge options give " + types.size()
          + " column types for shard rows of " + width + " columns");
    }
    long offset = resolve(spec.offset(), params, "OFFSET");
    long limit = resolve(spec.limit(), params, "LIMIT");
    if (offset < 0) {
      offset = 0;
    }
    MemoryBudget budget = new MemoryBudget(options.maxInMemoryRows());
    RowSource root;
    int outWidth;
    MergeSpec.Aggregation agg = spec.aggregation();
    if (agg == null) {
      if (!spec.finalOrder().isEmpty()) {
        throw ShardmapException.invalid("mergeSpec", "finalOrder is for aggregated queries; a plain query "
            + "orders by shardOrder");
      }
      for (MergeSpec.SortKey k : spec.shardOrder()) {
        checkColumn(k.column(), width, "shardOrder");
      }
      root = spec.shardOrder().isEmpty() ? new Concat(shards, width)
          : new MergeSort(shards, new RowOrder(spec.shardOrder(), types, "ORDER BY"), width);
      outWidth = width;
    } else {
      List<ColumnType> groupTypes = groupRowTypes(agg, types, width);
      root = new HashAggregate(new Concat(shards, width), width, agg, types, budget);
      if (agg.having() != null) {
        root = new Having(root, agg.having(), groupTypes, params);
      }
      outWidth = groupTypes.size();
      for (MergeSpec.SortKey k : spec.finalOrder()) {
        checkColumn(k.column(), outWidth, "finalOrder");
      }
      if (!spec.finalOrder().isEmpty()) {
        long keep = limit < 0 ? -1 : saturatedAdd(offset, limit);
        root = new MemorySort(root, new RowOrder(spec.finalOrder(), groupTypes, "ORDER BY"), keep, budget);
      }
    }
    if (offset > 0 || limit >= 0) {
      root = new SkipLimit(root, offset, limit);
    }
    for (int c : spec.projection()) {
      checkColumn(c, outWidth, "projection");
    }
    return new Project(root, spec.projection());
  }

  /** The types of a group row's columns: the group columns', then each aggregate's result type. */
  static List<ColumnType> groupRowTypes(MergeSpec.Aggregation agg, List<ColumnType> types, int width) {
    List<ColumnType> out = new ArrayList<>();
    for (int c : agg.groupColumns()) {
      checkColumn(c, width, "groupColumns");
      out.add(types.get(c));
    }
    if (agg.distinctColumn() != null) {
      checkColumn(agg.distinctColumn(), width, "distinctColumn");
    }
    ColumnType bigint = new ColumnType("int8", null);
    for (MergeSpec.Aggregate a : agg.aggregates()) {
      checkColumn(a.column(), width, "aggregates");
      switch (a.kind()) {
        case COUNT:
          out.add(bigint);
          break;
        case COUNT_DISTINCT:
          if (agg.distinctColumn() == null || a.column() != agg.distinctColumn()) {
            throw ShardmapException.invalid("mergeSpec", "COUNT_DISTINCT must read the distinctColumn");
          }
          out.add(bigint);
          break;
        case AVG:
          checkColumn(a.countColumn(), width, "aggregates (AVG count)");
          String t = PgValues.pgType(types.get(a.column()));
          boolean floating = t.startsWith("float") || t.equals("real") || t.equals("double precision");
          out.add(new ColumnType(floating ? "float8" : "numeric", null));
          break;
        default:
          out.add(types.get(a.column()));
      }
    }
    return out;
  }

  private static void checkColumn(int c, int width, String field) {
    if (c < 0 || c >= width) {
      throw ShardmapException.invalid("mergeSpec", field + " names column " + c + " of rows with " + width
          + " columns");
    }
  }

  /**
   * A LIMIT or OFFSET value: -1 for none. A parameter must be a non-negative integer; NULL means none, as
   * PostgreSQL reads LIMIT NULL (all rows) and OFFSET NULL (no rows skipped).
   */
  static long resolve(MergeSpec.Bound b, List<Object> params, String clause) {
    if (b == null || b.isNone()) {
      return -1;
    }
    String what;
    Object v;
    if (b.value() != null) {
      v = b.value();
      what = clause;
    } else {
      int i = b.param();
      if (i < 0 || i >= params.size()) {
        throw ShardmapException.invalid("params", clause + " is parameter " + (i + 1) + " but "
            + params.size() + " parameters were given");
      }
      v = params.get(i);
      what = "parameter " + (i + 1) + " (" + clause + ")";
      if (v == null) {
        return -1;
      }
    }
    long n;
    if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
      n = ((Number) v).longValue();
    } else if (v instanceof BigInteger || v instanceof BigDecimal) {
      try {
        n = PgValues.toBigDecimal((Number) v).longValueExact();
      } catch (ArithmeticException e) {
        throw ShardmapException.invalid("params", what + " must be a non-negative integer, got " + v);
      }
    } else {
      throw ShardmapException.invalid("params", what + " must be a non-negative integer, got "
          + v.getClass().getSimpleName() + " " + v);
    }
    if (n < 0) {
      throw ShardmapException.invalid("params", what + " must be a non-negative integer, got " + n);
    }
    return n;
  }

  private static long saturatedAdd(long a, long b) {
    long r = a + b;
    return r < 0 ? Long.MAX_VALUE : r;
  }

  /** Every shard row must have the width the spec says; anything else is a planner/SDK mismatch. */
  static Object[] checkWidth(Object[] row, int width, int shard) {
    if (row.length != width) {
      throw new ShardmapException(ErrorCode.INTERNAL, (shard >= 0 ? "shard source " + shard : "a shard source")
          + " returned a row of " + row.length + " columns where the merge expects " + width);
    }
    return row;
  }

  /** The merged answer; owns the shard sources. */
  private static final class Merged implements RowSource {
    private final RowSource root;
    private final List<RowSource> shards;
    private boolean closed;

    Merged(RowSource root, List<RowSource> shards) {
      this.root = root;
      this.shards = shards;
    }

    @Override
    public Object[] next() throws SQLException {
      if (closed) {
        throw new SQLException("the merged rows are closed");
      }
      try {
        return root.next();
      } catch (SQLException | RuntimeException | Error e) {
        closed = true;
        Closer.closeAll(shards, e);
        throw e;
      }
    }

    @Override
    public void close() {
      if (!closed) {
        closed = true;
        Closer.closeAll(shards, null);
      }
    }
  }
}
