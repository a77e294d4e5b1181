package io.shardmap.query.internal.merge;

import java.util.List;

/**
 * The contract between the planner ({@code internal.plan}, which derives it from the statement) and the
 * merge operators (this package, which run it): how the rows of every shard's statement become the answer.
 * Column numbers are 0-based.
 *
 * <p><b>Plain queries</b> ({@link #aggregation} null): every shard returns its rows already sorted by
 * {@link #shardOrder} (the planner put that ORDER BY in the shard statement, hidden sort columns included);
 * the merge is a streaming k-way merge on it (any interleaving when it is empty), then {@link #offset} rows
 * are skipped and {@link #limit} kept, then {@link #projection} picks the answer's columns from the shard
 * row.
 *
 * <p><b>Aggregated queries</b> (GROUP BY, aggregates, or DISTINCT, which is a GROUP BY of every projected
 * column without aggregates): each shard returns partial aggregates per group (in any order). The merge
 * combines rows with equal {@link Aggregation#groupColumns} (equality as PostgreSQL's: numerically for
 * numbers, byte-wise for text of a deterministic collation) into one <i>group row</i>
 * {@code [group column values..., final value of each aggregate...]}; keeps those for which
 * {@link Aggregation#having} is true (SQL three-valued logic: null is not true); sorts them by
 * {@link #finalOrder} (indexes into the group row; in memory, capped); skips, limits and projects (indexes
 * into the group row). A statement with aggregates and no GROUP BY has exactly one group, also when the
 * shards return no rows (COUNT 0, the others NULL), as PostgreSQL answers.
 *
 * @param shardColumns how many columns each shard row has
 * @param shardOrder plain queries: the order of each shard's rows; empty when the answer has no order
 * @param aggregation null for a plain query
 * @param finalOrder aggregated queries: the order of the group rows; empty when unordered
 * @param offset rows to skip ({@link Bound#NONE}: 0)
 * @param limit rows to keep ({@link Bound#NONE}: all)
 * @param projection the answer's columns
 */
public record MergeSpec(int shardColumns, List<SortKey> shardOrder, Aggregation aggregation,
                        List<SortKey> finalOrder, Bound offset, Bound limit, List<Integer> projection) {
  public MergeSpec {
    shardOrder = List.copyOf(shardOrder);
    finalOrder = List.copyOf(finalOrder);
    projection = List.copyOf(projection);
  }

  /**
   * One ORDER BY item, resolved: a column, its direction and where NULLs go (the planner fills PostgreSQL's
   * default: NULLS LAST for ASC, NULLS FIRST for DESC). Text compares in the column's collation
   * ({@link io.shardmap.query.ColumnType.Collation}), numbers numerically (NaN above every other value, as
   * PostgreSQL sorts it), booleans false before true, byte arrays as unsigned bytes, dates and times in time
   * order.
   */
  public record SortKey(int column, boolean descending, boolean nullsFirst) {}

  /**
   * @param groupColumns shard columns holding the GROUP BY values (empty: one group of every row)
   * @param aggregates the aggregates, in group-row order after the group columns
   * @param distinctColumn the shard column holding the argument of the one {@code COUNT(DISTINCT ...)}, which
   *     the shard statement also groups by; null when there is none
   * @param having null when there is no HAVING
   */
  public record Aggregation(List<Integer> groupColumns, List<Aggregate> aggregates, Integer distinctColumn,
                            Expr having) {
    public Aggregation {
      groupColumns = List.copyOf(groupColumns);
      aggregates = List.copyOf(aggregates);
    }
  }

  /**
   * One aggregate of the answer and the shard columns of its partial values.
   *
   * <ul>
   *   <li>{@code COUNT}: {@code column} holds a per-shard count (bigint); the final value is their sum.
   *   <li>{@code SUM}: per-shard sums; the final value is their sum, NULL when all are NULL. Integers
   *       stay integers (overflow of bigint fails as PostgreSQL does: "bigint out of range"), numeric
   *       stays BigDecimal, double precision stays Double.
   *   <li>{@code MIN}, {@code MAX}: per-shard minimum or maximum, compared as {@link SortKey} compares.
   *   <li>{@code AVG}: {@code column} holds per-shard sums, {@code countColumn} per-shard counts of non-null
   *       values; the final value is sum / count, NULL for a count of 0. From integer or numeric sums it is
   *       a numeric with the scale PostgreSQL's numeric division gives (its {@code select_div_scale}); from
   *       double sums a Double.
   *   <li>{@code COUNT_DISTINCT}: the number of distinct non-null values of the group's
   *       {@link Aggregation#distinctColumn}; {@code column} is that column.
   * </ul>
   *
   * @param countColumn AVG only; -1 otherwise
   */
  public record Aggregate(Kind kind, int column, int countColumn) {
    public enum Kind { COUNT, SUM, MIN, MAX, AVG, COUNT_DISTINCT }
  }

  /** A LIMIT or OFFSET: a literal, a statement parameter (0-based), or none. */
  public record Bound(Long value, Integer param) {
    public static final Bound NONE = new Bound(null, null);

    public static Bound of(long value) {
      return new Bound(value, null);
    }

    public static Bound param(int index) {
      return new Bound(null, index);
    }

    public boolean isNone() {
      return value == null && param == null;
    }
  }

  /**
   * A HAVING condition over the group row, evaluated with SQL semantics: three-valued logic, comparisons
   * of numbers across integer/numeric/double by value, of text in the column's collation.
   */
  public sealed interface Expr {
    /** A value of the group row. */
    record Column(int index) implements Expr {}

    /** A constant from the statement (Long, BigDecimal, Double, String, Boolean, or null). */
    record Literal(Object value) implements Expr {}

    /** A statement parameter (0-based), bound when the merge starts. */
    record Param(int index) implements Expr {}

    record Compare(CompareOp op, Expr left, Expr right) implements Expr {}

    record Arithmetic(ArithmeticOp op, Expr left, Expr right) implements Expr {}

    record And(Expr left, Expr right) implements Expr {}

    record Or(Expr left, Expr right) implements Expr {}

    record Not(Expr operand) implements Expr {}

    record IsNull(Expr operand, boolean negated) implements Expr {}

    enum CompareOp { EQ, NE, LT, LE, GT, GE }

    enum ArithmeticOp { ADD, SUBTRACT, MULTIPLY, DIVIDE }
  }
}
