package io.shardmap.query.internal.plan;

import io.shardmap.core.ShardmapException;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.QueryPlan;
import io.shardmap.query.RowSource;
import io.shardmap.query.ShardStatement;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.Merger;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A planned SELECT: immutable, so one plan serves any number of executions with different parameters.
 * The shard statement is a {@link ShardTemplate}; the merge is a {@link MergeSpec} built when the shard
 * row width is known (at plan time, or for {@code SELECT *} only from the shards' result metadata).
 */
final class SelectPlan implements QueryPlan {
  private final String sql;
  private final String table;
  private final String keyRef;
  private final int parameterCount;
  private final List<String> labels;
  private final ShardTemplate template;
  private final Bound offset;
  private final Bound limit;
  /** Hidden columns, always first in the shard row (so output positions only shift by this count). */
  private final int hidden;
  /** Shard row width, or -1 when a {@code *} makes it known only at merge time. */
  private final int width;
  private final List<MergeSpec.SortKey> shardOrder;
  private final Kind kind;
  private final MergeSpec.Aggregation aggregation;
  private final List<MergeSpec.SortKey> finalOrder;
  /** Aggregated queries: group-row indexes of the answer's columns. */
  private final List<Integer> groupProjection;
  private final String explain;
  private final io.shardmap.query.Merge explicit;

  /** PLAIN: k-way merge; DISTINCT: a grouping of every column; AGGREGATED: partial aggregates combined. */
  enum Kind { PLAIN, DISTINCT, AGGREGATED }

  SelectPlan(String sql, String table, String keyRef, int parameterCount, List<String> labels,
             ShardTemplate template, Bound offset, Bound limit, int hidden, int width,
             List<MergeSpec.SortKey> shardOrder, Kind kind, MergeSpec.Aggregation aggregation,
             List<MergeSpec.SortKey> finalOrder, List<Integer> groupProjection) {
    this(sql, table, keyRef, parameterCount, labels, template, offset, limit, hidden, width, shardOrder, kind,
        aggregation, finalOrder, groupProjection, null);
  }

  /**
   * @param explicit the caller's merge when the shards run the statement as written (then the plan vouches
   *     for no per-shard row bound, and explains itself as that merge); null for a derived plan
   */
  SelectPlan(String sql, String table, String keyRef, int parameterCount, List<String> labels,
             ShardTemplate template, Bound offset, Bound limit, int hidden, int width,
             List<MergeSpec.SortKey> shardOrder, Kind kind, MergeSpec.Aggregation aggregation,
             List<MergeSpec.SortKey> finalOrder, List<Integer> groupProjection, io.shardmap.query.Merge explicit) {
    this.explicit = explicit;
    this.sql = sql;
    this.table = table;
    this.keyRef = keyRef;
    this.parameterCount = parameterCount;
    this.labels = List.copyOf(labels);
    this.template = template;
    this.offset = offset;
    this.limit = limit;
    this.hidden = hidden;
    this.width = width;
    this.shardOrder = List.copyOf(shardOrder);
    this.kind = kind;
    this.aggregation = aggregation;
    this.finalOrder = List.copyOf(finalOrder);
    this.groupProjection = groupProjection == null ? null : List.copyOf(groupProjection);
    this.explain = explicit == null ? Explain.of(this) : "shard: " + template.render("<owned>", "ALL")
        + "\nmerge (explicit): " + explicit;
  }

  @Override
  public String sql() {
    return sql;
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

  /** For {@code *} and {@code t.*} items the list holds {@code *}: their columns are known only to the shards. */
  @Override
  public List<String> columnLabels() {
    return labels;
  }

  /** The shard row's width, or -1 when the statement selects {@code *} (then the shards' metadata tells). */
  int shardColumns() {
    return width;
  }

  ShardTemplate template() {
    return template;
  }

  Kind kind() {
    return kind;
  }

  int hidden() {
    return hidden;
  }

  Bound offset() {
    return offset;
  }

  Bound limit() {
    return limit;
  }

  @Override
  public ShardStatement shardStatement(String predicate, List<Object> params) {
    if (predicate == null || predicate.isBlank()) {
      throw ShardmapException.invalid("predicate", "must be SQL over " + keyRef + " selecting the rows the"
          + " shard owns");
    }
    checkCount(params);
    long off = resolve(offset, params, "OFFSET", 0);
    long lim = resolve(limit, params, "LIMIT", -1);
    String shardLimit = "ALL";
    long maxRows = -1;
    if (lim >= 0 && lim <= Long.MAX_VALUE - off) {
      shardLimit = Long.toString(lim + off);
      if (template.hasLimit()) {
        maxRows = lim + off;
      }
    }
    if (explicit == null && kind == Kind.AGGREGATED && aggregation.groupColumns().isEmpty()
        && aggregation.distinctColumn() == null) {
      maxRows = 1; // one group of every row: one partial row per shard
    }
    List<Object> values = new ArrayList<>();
    for (int i : template.paramOrder()) {
      values.add(params.get(i));
    }
    return new ShardStatement(template.render(predicate, shardLimit), values, maxRows);
  }

  @Override
  public RowSource merge(List<RowSource> shards, List<Object> params, MergeOptions options) {
    MergeSpec spec;
    try {
      checkCount(params);
      resolve(offset, params, "OFFSET", 0);
      resolve(limit, params, "LIMIT", -1);
      spec = mergeSpec(options.columns().size());
    } catch (RuntimeException e) {
      // The caller handed the shard sources over: a refused merge must not leave their statements running.
      for (RowSource s : shards) {
        try {
          s.close();
        } catch (RuntimeException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
    return Merger.open(spec, shards, params, options);
  }

  /**
   * The merge of this plan for shard rows of {@code shardColumns} columns (for a statement without
   * {@code *}, the width the plan knows; with one, what the shards' metadata reports).
   */
  MergeSpec mergeSpec(int shardColumns) {
    if (width >= 0 && shardColumns != width) {
      throw ShardmapException.invalid("columns", "the shard statement returns " + width + " columns, the"
          + " merge options describe " + shardColumns);
    }
    if (shardColumns < hidden) {
      throw ShardmapException.invalid("columns", "the shard statement returns at least " + hidden
          + " columns, the merge options describe " + shardColumns);
    }
    if (kind == Kind.PLAIN) {
      List<Integer> projection = new ArrayList<>();
      for (int i = hidden; i < shardColumns; i++) {
        projection.add(i);
      }
      return new MergeSpec(shardColumns, shardOrder, null, List.of(), offset, limit, projection);
    }
    if (kind == Kind.DISTINCT) {
      List<Integer> all = new ArrayList<>();
      for (int i = 0; i < shardColumns; i++) {
        all.add(i);
      }
      return new MergeSpec(shardColumns, List.of(), new MergeSpec.Aggregation(all, List.of(), null, null),
          finalOrder, offset, limit, all);
    }
    return new MergeSpec(shardColumns, List.of(), aggregation, finalOrder, offset, limit, groupProjection);
  }

  /** The plan's merge when the shard width is known at plan time (no {@code *}). */
  MergeSpec mergeSpec() {
    if (width < 0) {
      throw new IllegalStateException("SELECT *: the width comes from the shards' metadata");
    }
    return mergeSpec(width);
  }

  private void checkCount(List<Object> params) {
    Objects.requireNonNull(params, "params");
    if (params.size() != parameterCount) {
      throw ShardmapException.invalid("params", "the statement has " + parameterCount
          + " ? placeholders; expected " + parameterCount + " parameters, given " + params.size());
    }
  }

  /** A LIMIT or OFFSET value: a non-negative integer; {@code none} when there is none. */
  static long resolve(Bound b, List<Object> params, String clause, long none) {
    if (b.isNone()) {
      return none;
    }
    if (b.value() != null) {
      return b.value();
    }
    Object v = params.get(b.param());
    Long n = integral(v);
    if (n == null || n < 0) {
      throw ShardmapException.invalid("params", "parameter " + (b.param() + 1) + " is the " + clause
          + " and must be a non-negative integer, given " + (v == null ? "null" : v + " ("
          + v.getClass().getSimpleName() + ")"));
    }
    return n;
  }

  private static Long integral(Object v) {
    if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
      return ((Number) v).longValue();
    }
    try {
      if (v instanceof BigInteger b) {
        return b.longValueExact();
      }
      if (v instanceof BigDecimal d) {
        return d.longValueExact();
      }
    } catch (ArithmeticException e) {
      return null;
    }
    return null;
  }

  @Override
  public String explain() {
    return explain;
  }

  @Override
  public String toString() {
    return explain;
  }
}
