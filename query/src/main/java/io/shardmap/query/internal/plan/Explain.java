package io.shardmap.query.internal.plan;

import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** The text of {@link SelectPlan#explain}: the shard statement, then one line per merge step. */
final class Explain {
  private Explain() {}

  static String of(SelectPlan plan) {
    List<String> lines = new ArrayList<>();
    lines.add("shard: " + plan.template().render("<owned>", shardLimit(plan.offset(), plan.limit())));
    int width = plan.shardColumns();
    // With SELECT * the width is known only from the shards' metadata; describe it with the hidden
    // columns alone (the projection then runs to the last column).
    MergeSpec spec = plan.mergeSpec(width >= 0 ? width : plan.hidden());
    String cols = width >= 0 ? String.valueOf(width) : plan.hidden() + " + the columns of *";
    lines.add("merge: shard rows of " + cols + " columns");
    switch (plan.kind()) {
      case PLAIN -> lines.add(spec.shardOrder().isEmpty() ? "merge: concatenate the shards' rows (no order)"
          : "merge: k-way merge on " + order(spec.shardOrder()));
      case DISTINCT -> lines.add("merge: distinct rows (group by every column)");
      case AGGREGATED -> {
        MergeSpec.Aggregation a = spec.aggregation();
        StringBuilder b = new StringBuilder("merge: group by columns " + a.groupColumns());
        if (a.distinctColumn() != null) {
          b.append(", distinct values of column ").append(a.distinctColumn());
        }
        b.append("; aggregates");
        for (MergeSpec.Aggregate g : a.aggregates()) {
          b.append(' ').append(g.kind()).append('(').append(g.kind() == MergeSpec.Aggregate.Kind.AVG
              ? "sum column " + g.column() + " / count column " + g.countColumn() : "column " + g.column())
              .append(')');
        }
        lines.add(b.toString());
        if (a.having() != null) {
          lines.add("merge: HAVING " + expr(a.having()));
        }
      }
      default -> throw new IllegalStateException();
    }
    if (!spec.finalOrder().isEmpty()) {
      lines.add("merge: sort " + (plan.kind() == SelectPlan.Kind.DISTINCT ? "rows" : "groups") + " by "
          + order(spec.finalOrder()));
    }
    if (!spec.offset().isNone() || !spec.limit().isNone()) {
      lines.add("merge: skip " + bound(spec.offset(), "0") + ", keep " + bound(spec.limit(), "all"));
    }
    lines.add("merge: project " + (width >= 0 || plan.kind() == SelectPlan.Kind.AGGREGATED
        ? "columns " + spec.projection() : "columns from " + plan.hidden() + " on"));
    return String.join("\n", lines);
  }

  private static String shardLimit(Bound offset, Bound limit) {
    if (limit.isNone()) {
      return "ALL";
    }
    if (limit.value() != null && (offset.isNone() || offset.value() != null)) {
      long off = offset.isNone() ? 0 : offset.value();
      return limit.value() <= Long.MAX_VALUE - off ? Long.toString(limit.value() + off) : "ALL";
    }
    return "<" + bound(limit, "ALL") + " + " + bound(offset, "0") + ">";
  }

  private static String bound(Bound b, String none) {
    return b.isNone() ? none : b.value() != null ? b.value().toString() : "parameter " + (b.param() + 1);
  }

  private static String order(List<MergeSpec.SortKey> keys) {
    List<String> parts = new ArrayList<>();
    for (MergeSpec.SortKey k : keys) {
      parts.add("column " + k.column() + (k.descending() ? " DESC" : " ASC")
          + (k.nullsFirst() ? " NULLS FIRST" : " NULLS LAST"));
    }
    return String.join(", ", parts);
  }

  static String expr(Expr e) {
    if (e instanceof Expr.Column c) {
      return "column " + c.index();
    }
    if (e instanceof Expr.Literal l) {
      return l.value() instanceof String s ? "'" + s.replace("'", "''") + "'" : String.valueOf(l.value())
          .toUpperCase(Locale.ROOT);
    }
    if (e instanceof Expr.Param p) {
      return "parameter " + (p.index() + 1);
    }
    if (e instanceof Expr.Compare c) {
      String op = switch (c.op()) {
        case EQ -> "=";
        case NE -> "<>";
        case LT -> "<";
        case LE -> "<=";
        case GT -> ">";
        case GE -> ">=";
      };
      return "(" + expr(c.left()) + " " + op + " " + expr(c.right()) + ")";
    }
    if (e instanceof Expr.Arithmetic a) {
      String op = switch (a.op()) {
        case ADD -> "+";
        case SUBTRACT -> "-";
        case MULTIPLY -> "*";
        case DIVIDE -> "/";
      };
      return "(" + expr(a.left()) + " " + op + " " + expr(a.right()) + ")";
    }
    if (e instanceof Expr.And a) {
      return "(" + expr(a.left()) + " AND " + expr(a.right()) + ")";
    }
    if (e instanceof Expr.Or o) {
      return "(" + expr(o.left()) + " OR " + expr(o.right()) + ")";
    }
    if (e instanceof Expr.Not n) {
      return "NOT " + expr(n.operand());
    }
    Expr.IsNull n = (Expr.IsNull) e;
    return expr(n.operand()) + (n.negated() ? " IS NOT NULL" : " IS NULL");
  }
}
