package io.shardmap.query;

import io.shardmap.core.ShardmapException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * An explicit merge: how the rows of a statement that every shard runs as written combine into the answer,
 * for what the planner cannot derive from SQL. The planner refuses a window function, {@code DISTINCT ON},
 * {@code string_agg} or a per-shard {@code LIMIT} because in general they do not merge; but when they only
 * ever see rows of one key (a window {@code PARTITION BY} the shard key, {@code DISTINCT ON} the shard key,
 * an aggregate grouped by it), each shard's answer is already exact for its keys, and the caller knows how
 * the pieces fit. With a {@code Merge} the caller says so ({@link QueryPlanner#plan(String,
 * QueryPlanner.ShardedTables, Merge)}):
 *
 * <ul>
 *   <li>{@link #concat()}: every shard's rows, in no particular order;
 *   <li>{@link #orderedBy}: every shard returns its rows sorted by these keys (its statement's ORDER BY
 *       says so), merged into one sorted stream;
 *   <li>{@link #groupedBy}: shard rows with equal group columns combine into one row, every other column by
 *       the function named for it ({@link #sum}, {@link #count}, {@link #min}, {@link #max}), then
 *       optionally sorted ({@link #orderBy}).
 * </ul>
 *
 * Each may skip and keep rows of the merged answer ({@link #offset}, {@link #limit}). The answer has the
 * shard statement's columns. Columns are named by their label in the statement's select list (as
 * PostgreSQL labels them: {@code created}, {@code count}, an alias) or by 1-based position.
 *
 * <p>What stays guaranteed: the statement still gets the ownership predicate (each row counted once, also
 * while data moves), and still only reads (no FOR UPDATE, no SELECT INTO; WITH and subqueries in FROM are
 * refused because the predicate could not reach their rows). What the caller vouches for: that the shards'
 * rows, combined this way, are the answer. Immutable; every method returns a new {@code Merge}.
 */
public final class Merge {
  /** How the shards' rows combine. */
  public enum Kind { CONCAT, ORDERED, GROUPED }

  /** What combines a column's values across the shards' rows of one group. */
  public enum Function {
    /** The sum of the shards' values (NULL when all are NULL), in the values' own type. */
    SUM,
    /**
     * The sum of the shards' counts, as a bigint (never NULL: 0 for the one row of a merge without group
     * columns when no shard returned a row).
     */
    COUNT,
    /** The smallest value, in the column's order (collation for text); NULLs ignored. */
    MIN,
    /** The largest value, in the column's order; NULLs ignored. */
    MAX
  }

  /** A column of the statement's select list: by label, or by 1-based position (label null). */
  public record Column(String label, int position) {
    public Column {
      if (label == null && position < 1) {
        throw ShardmapException.invalid("merge", "a column position is 1-based, got " + position);
      }
      if (label != null && label.isBlank()) {
        throw ShardmapException.invalid("merge", "a column label must not be blank");
      }
    }

    @Override
    public String toString() {
      return label != null ? label : "#" + position;
    }
  }

  /**
   * A sort key: a column, its direction, and whether NULLs go before every value ({@link #asc}/{@link #desc}
   * start with PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC).
   */
  public record Key(Column column, boolean descending, boolean nullsGoFirst) {
    public Key {
      Objects.requireNonNull(column, "column");
    }

    /** The same key with NULLs before every value. */
    public Key nullsFirst() {
      return new Key(column, descending, true);
    }

    /** The same key with NULLs after every value. */
    public Key nullsLast() {
      return new Key(column, descending, false);
    }
  }

  /** A column of a grouped merge that is not grouped, and what combines it. */
  public record Aggregate(Column column, Function function) {}

  private final Kind kind;
  private final List<Key> order;
  private final List<Column> groups;
  private final List<Aggregate> aggregates;
  private final long offset;
  private final long limit;

  private Merge(Kind kind, List<Key> order, List<Column> groups, List<Aggregate> aggregates, long offset,
                long limit) {
    this.kind = kind;
    this.order = List.copyOf(order);
    this.groups = List.copyOf(groups);
    this.aggregates = List.copyOf(aggregates);
    this.offset = offset;
    this.limit = limit;
  }

  /** Every shard's rows, in no particular order. */
  public static Merge concat() {
    return new Merge(Kind.CONCAT, List.of(), List.of(), List.of(), 0, -1);
  }

  /**
   * Every shard's rows merged in the order of {@code keys}, which each shard's statement must already return
   * its rows in (its ORDER BY); a shard whose rows come out of that order makes the answer's order wrong,
   * never its rows.
   */
  public static Merge orderedBy(Key... keys) {
    List<Key> k = List.of(Objects.requireNonNull(keys, "keys"));
    if (k.isEmpty()) {
      throw ShardmapException.invalid("merge", "orderedBy needs at least one key; use concat() for no order");
    }
    return new Merge(Kind.ORDERED, k, List.of(), List.of(), 0, -1);
  }

  /**
   * Shard rows with equal values in {@code columns} combine into one row (equality as PostgreSQL's); every
   * other column of the statement must be named once with {@link #sum}, {@link #count}, {@link #min} or
   * {@link #max}. No columns: every shard's rows combine into one row (a statement that aggregates without
   * GROUP BY).
   */
  public static Merge groupedBy(Column... columns) {
    return new Merge(Kind.GROUPED, List.of(), List.of(Objects.requireNonNull(columns, "columns")), List.of(), 0, -1);
  }

  /** {@link #groupedBy(Column...)} by labels. */
  public static Merge groupedBy(String... labels) {
    Column[] c = new Column[Objects.requireNonNull(labels, "labels").length];
    for (int i = 0; i < c.length; i++) {
      c[i] = column(labels[i]);
    }
    return groupedBy(c);
  }

  /** The column labelled {@code label} in the statement's select list. */
  public static Column column(String label) {
    if (label == null) {
      throw ShardmapException.invalid("merge", "a column label is required");
    }
    return new Column(label, 0);
  }

  /** The column at {@code position} (1-based) of the statement's select list. */
  public static Column column(int position) {
    return new Column(null, position);
  }

  public static Key asc(String label) {
    return new Key(column(label), false, false);
  }

  public static Key desc(String label) {
    return new Key(column(label), true, true);
  }

  public static Key asc(int position) {
    return new Key(column(position), false, false);
  }

  public static Key desc(int position) {
    return new Key(column(position), true, true);
  }

  /** A grouped merge's column combined by adding the shards' values. */
  public Merge sum(String label) {
    return aggregate(column(label), Function.SUM);
  }

  /** A grouped merge's column holding per-shard counts, combined by adding them. */
  public Merge count(String label) {
    return aggregate(column(label), Function.COUNT);
  }

  public Merge min(String label) {
    return aggregate(column(label), Function.MIN);
  }

  public Merge max(String label) {
    return aggregate(column(label), Function.MAX);
  }

  /** A grouped merge's column combined by {@code function}. */
  public Merge aggregate(Column column, Function function) {
    if (kind != Kind.GROUPED) {
      throw ShardmapException.invalid("merge", function + " combines the columns of a grouped merge; this one is "
          + kind);
    }
    Objects.requireNonNull(column, "column");
    Objects.requireNonNull(function, "function");
    List<Aggregate> a = new ArrayList<>(aggregates);
    a.add(new Aggregate(column, function));
    return new Merge(kind, order, groups, a, offset, limit);
  }

  /** A grouped merge's order of its combined rows (sorted in memory, under the query's in-memory cap). */
  public Merge orderBy(Key... keys) {
    if (kind != Kind.GROUPED) {
      throw ShardmapException.invalid("merge", "orderBy sorts the rows of a grouped merge; for " + kind
          + " use orderedBy(...) with the order the shards return");
    }
    return new Merge(kind, List.of(Objects.requireNonNull(keys, "keys")), groups, aggregates, offset, limit);
  }

  /** Skips the first {@code n} rows of the merged answer (streamed past, never held). */
  public Merge offset(long n) {
    if (n < 0) {
      throw ShardmapException.invalid("merge", "offset must be >= 0, got " + n);
    }
    return new Merge(kind, order, groups, aggregates, n, limit);
  }

  /** Keeps at most {@code n} rows of the merged answer. */
  public Merge limit(long n) {
    if (n < 0) {
      throw ShardmapException.invalid("merge", "limit must be >= 0, got " + n);
    }
    return new Merge(kind, order, groups, aggregates, offset, n);
  }

  public Kind kind() {
    return kind;
  }

  /** ORDERED: the shards' order; GROUPED: the order of the combined rows (empty: none). */
  public List<Key> order() {
    return order;
  }

  public List<Column> groups() {
    return groups;
  }

  public List<Aggregate> aggregates() {
    return aggregates;
  }

  public long offset() {
    return offset;
  }

  /** -1: all rows. */
  public long limit() {
    return limit;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Merge m && kind == m.kind && order.equals(m.order) && groups.equals(m.groups)
        && aggregates.equals(m.aggregates) && offset == m.offset && limit == m.limit;
  }

  @Override
  public int hashCode() {
    return Objects.hash(kind, order, groups, aggregates, offset, limit);
  }

  @Override
  public String toString() {
    StringBuilder b = new StringBuilder(kind.name().toLowerCase(java.util.Locale.ROOT));
    if (!groups.isEmpty()) {
      b.append(" by ").append(groups);
    }
    for (Aggregate a : aggregates) {
      b.append(", ").append(a.function().name().toLowerCase(java.util.Locale.ROOT)).append('(').append(a.column())
          .append(')');
    }
    if (!order.isEmpty()) {
      b.append(", order ").append(order.stream().map(k -> k.column() + (k.descending() ? " desc" : " asc")
          + (k.nullsGoFirst() ? " nulls first" : " nulls last")).toList());
    }
    if (offset > 0) {
      b.append(", offset ").append(offset);
    }
    if (limit >= 0) {
      b.append(", limit ").append(limit);
    }
    return b.toString();
  }
}
