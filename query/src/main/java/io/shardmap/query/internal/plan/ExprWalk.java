package io.shardmap.query.internal.plan;

import java.util.List;
import java.util.function.BiConsumer;
import net.sf.jsqlparser.expression.AllValue;
import net.sf.jsqlparser.expression.AnalyticExpression;
import net.sf.jsqlparser.expression.AnalyticType;
import net.sf.jsqlparser.expression.AnyComparisonExpression;
import net.sf.jsqlparser.expression.ArrayConstructor;
import net.sf.jsqlparser.expression.ArrayExpression;
import net.sf.jsqlparser.expression.BinaryExpression;
import net.sf.jsqlparser.expression.BooleanValue;
import net.sf.jsqlparser.expression.CaseExpression;
import net.sf.jsqlparser.expression.CastExpression;
import net.sf.jsqlparser.expression.CollateExpression;
import net.sf.jsqlparser.expression.DateTimeLiteralExpression;
import net.sf.jsqlparser.expression.DateValue;
import net.sf.jsqlparser.expression.DoubleValue;
import net.sf.jsqlparser.expression.Expression;
import net.sf.jsqlparser.expression.ExtractExpression;
import net.sf.jsqlparser.expression.Function;
import net.sf.jsqlparser.expression.HexValue;
import net.sf.jsqlparser.expression.IntervalExpression;
import net.sf.jsqlparser.expression.JdbcNamedParameter;
import net.sf.jsqlparser.expression.JdbcParameter;
import net.sf.jsqlparser.expression.JsonAggregateFunction;
import net.sf.jsqlparser.expression.JsonExpression;
import net.sf.jsqlparser.expression.LongValue;
import net.sf.jsqlparser.expression.MySQLGroupConcat;
import net.sf.jsqlparser.expression.NotExpression;
import net.sf.jsqlparser.expression.NullValue;
import net.sf.jsqlparser.expression.NumericBind;
import net.sf.jsqlparser.expression.OverlapsCondition;
import net.sf.jsqlparser.expression.RowConstructor;
import net.sf.jsqlparser.expression.SignedExpression;
import net.sf.jsqlparser.expression.StringValue;
import net.sf.jsqlparser.expression.TimeKeyExpression;
import net.sf.jsqlparser.expression.TimeValue;
import net.sf.jsqlparser.expression.TimestampValue;
import net.sf.jsqlparser.expression.TimezoneExpression;
import net.sf.jsqlparser.expression.TrimFunction;
import net.sf.jsqlparser.expression.UserVariable;
import net.sf.jsqlparser.expression.WhenClause;
import net.sf.jsqlparser.expression.operators.relational.Between;
import net.sf.jsqlparser.expression.operators.relational.ExistsExpression;
import net.sf.jsqlparser.expression.operators.relational.ExpressionList;
import net.sf.jsqlparser.expression.operators.relational.InExpression;
import net.sf.jsqlparser.expression.operators.relational.IsBooleanExpression;
import net.sf.jsqlparser.expression.operators.relational.IsNullExpression;
import net.sf.jsqlparser.expression.operators.relational.IsUnknownExpression;
import net.sf.jsqlparser.expression.operators.relational.LikeExpression;
import net.sf.jsqlparser.expression.operators.relational.NamedExpressionList;
import net.sf.jsqlparser.schema.Column;
import net.sf.jsqlparser.statement.select.AllColumns;
import net.sf.jsqlparser.statement.select.OrderByElement;
import net.sf.jsqlparser.statement.select.Select;

/**
 * Visits every node of an expression, and refuses, naming the clause, what no cross-shard merge can make
 * exact wherever it appears: subqueries, window functions, ordered-set aggregates, named placeholders
 * (numbered ones, {@code $1}, the planner refuses on its first walk). The walk is a whitelist: an expression kind it does not know is refused too,
 * because an unknown node could hide a subquery, an aggregate or a placeholder that the plan would then
 * miss (a refusal is an error the caller sees; a missed aggregate would be a silently different answer).
 */
final class ExprWalk {
  private ExprWalk() {}

  /** Calls {@code visit(node, clause)} on every node, parents before children. */
  static void walk(Expression e, String clause, BiConsumer<Expression, String> visit) {
    walk(e, clause, visit, false);
  }

  /**
   * The same for a statement every shard runs as written, under an explicit merge ({@code perShard}): window
   * functions, ordered-set aggregates and the other aggregates are then allowed (each shard computes them over
   * its own rows, and the caller's merge says how those combine); subqueries and named placeholders are still
   * refused. Placeholders inside nodes this walk does not enter are caught by the planner's count.
   */
  static void walk(Expression e, String clause, BiConsumer<Expression, String> visit, boolean perShard) {
    if (e == null) {
      return;
    }
    if (e instanceof Select s) {
      throw Sql.refuse("subqueries cannot be planned across shards (in " + clause + "): " + s);
    }
    if (e instanceof ExistsExpression x) {
      throw Sql.refuse("subqueries cannot be planned across shards (in " + clause + "): " + x);
    }
    if (e instanceof AnyComparisonExpression x) {
      throw Sql.refuse("subqueries cannot be planned across shards (in " + clause + "): " + x);
    }
    if (e instanceof JdbcNamedParameter || e instanceof NumericBind || e instanceof UserVariable) {
      throw Sql.refuse("named placeholders or variables such as " + e + " are not supported (in " + clause
          + "): use ? placeholders");
    }
    if (perShard && e instanceof AnalyticExpression a && a.getType() != AnalyticType.FILTER_ONLY) {
      visit.accept(e, clause);
      walk(a.getExpression(), clause, visit, perShard);
      walk(a.getOffset(), clause, visit, perShard);
      walk(a.getDefaultValue(), clause, visit, perShard);
      walk(a.getFilterExpression(), clause, visit, perShard);
      if (a.getPartitionExpressionList() != null) {
        walkList(a.getPartitionExpressionList(), clause, visit, perShard);
      }
      if (a.getOrderByElements() != null) {
        for (OrderByElement o : a.getOrderByElements()) {
          walk(o.getExpression(), clause, visit, perShard);
        }
      }
      if (a.getFuncOrderBy() != null) {
        for (OrderByElement o : a.getFuncOrderBy()) {
          walk(o.getExpression(), clause, visit, perShard);
        }
      }
      return;
    }
    if (perShard && (e instanceof JsonAggregateFunction || e instanceof MySQLGroupConcat)) {
      visit.accept(e, clause);
      return;
    }
    if (e instanceof AnalyticExpression a && a.getType() != AnalyticType.FILTER_ONLY) {
      if (a.getType() == AnalyticType.OVER) {
        throw Sql.refuse("window functions cannot be merged across shards (in " + clause + "): " + a);
      }
      throw Sql.refuse("ordered-set aggregates (WITHIN GROUP) cannot be merged across shards (in " + clause
          + "): " + a);
    }
    if (e instanceof JsonAggregateFunction || e instanceof MySQLGroupConcat) {
      throw Sql.refuse("aggregate " + e + " cannot be merged across shards (in " + clause
          + "): only COUNT, SUM, MIN, MAX and AVG can");
    }
    visit.accept(e, clause);
    if (e instanceof Column || e instanceof JdbcParameter || e instanceof LongValue
        || e instanceof DoubleValue || e instanceof StringValue || e instanceof NullValue
        || e instanceof BooleanValue || e instanceof HexValue || e instanceof DateValue
        || e instanceof TimeValue || e instanceof TimestampValue || e instanceof DateTimeLiteralExpression
        || e instanceof TimeKeyExpression || e instanceof AllValue || e instanceof AllColumns) {
      if (e instanceof Column c && c.getArrayConstructor() != null) {
        walk(c.getArrayConstructor(), clause, visit, perShard);
      }
      return;
    }
    if (e instanceof AnalyticExpression a) {
      walk(a.getExpression(), clause, visit, perShard);
      walk(a.getOffset(), clause, visit, perShard);
      walk(a.getDefaultValue(), clause, visit, perShard);
      walk(a.getFilterExpression(), clause, visit, perShard);
      return;
    }
    if (e instanceof Function f) {
      if (f.getKeep() != null || f.getHavingClause() != null || f.getLimit() != null
          || f.getNullHandling() != null || f.getAttribute() != null) {
        throw Sql.refuse("unsupported function syntax (in " + clause + "): " + f);
      }
      walkList(f.getParameters(), clause, visit, perShard);
      NamedExpressionList<?> named = f.getNamedParameters();
      if (named != null) {
        for (Expression x : named) {
          walk(x, clause, visit, perShard);
        }
      }
      if (f.getOrderByElements() != null) {
        for (OrderByElement o : f.getOrderByElements()) {
          walk(o.getExpression(), clause, visit, perShard);
        }
      }
      return;
    }
    if (e instanceof LikeExpression l) {
      walk(l.getLeftExpression(), clause, visit, perShard);
      walk(l.getRightExpression(), clause, visit, perShard);
      if (l.getEscape() != null) {
        walk(l.getEscape(), clause, visit, perShard);
      }
      return;
    }
    if (e instanceof InExpression in) {
      walk(in.getLeftExpression(), clause, visit, perShard);
      walk(in.getRightExpression(), clause, visit, perShard);
      return;
    }
    if (e instanceof BinaryExpression b) {
      walk(b.getLeftExpression(), clause, visit, perShard);
      walk(b.getRightExpression(), clause, visit, perShard);
      return;
    }
    if (e instanceof ExpressionList<?> list) {
      walkList(list, clause, visit, perShard);
      return;
    }
    if (e instanceof NotExpression n) {
      walk(n.getExpression(), clause, visit, perShard);
    } else if (e instanceof SignedExpression s) {
      walk(s.getExpression(), clause, visit, perShard);
    } else if (e instanceof CastExpression c) {
      walk(c.getLeftExpression(), clause, visit, perShard);
    } else if (e instanceof CollateExpression c) {
      walk(c.getLeftExpression(), clause, visit, perShard);
    } else if (e instanceof IsNullExpression n) {
      walk(n.getLeftExpression(), clause, visit, perShard);
    } else if (e instanceof IsBooleanExpression n) {
      walk(n.getLeftExpression(), clause, visit, perShard);
    } else if (e instanceof IsUnknownExpression n) {
      walk(n.getLeftExpression(), clause, visit, perShard);
    } else if (e instanceof Between b) {
      walk(b.getLeftExpression(), clause, visit, perShard);
      walk(b.getBetweenExpressionStart(), clause, visit, perShard);
      walk(b.getBetweenExpressionEnd(), clause, visit, perShard);
    } else if (e instanceof CaseExpression c) {
      walk(c.getSwitchExpression(), clause, visit, perShard);
      for (WhenClause w : c.getWhenClauses()) {
        walk(w, clause, visit, perShard);
      }
      walk(c.getElseExpression(), clause, visit, perShard);
    } else if (e instanceof WhenClause w) {
      walk(w.getWhenExpression(), clause, visit, perShard);
      walk(w.getThenExpression(), clause, visit, perShard);
    } else if (e instanceof RowConstructor<?> r) {
      walkList(r, clause, visit, perShard);
    } else if (e instanceof ArrayConstructor a) {
      walkList(a.getExpressions(), clause, visit, perShard);
    } else if (e instanceof ArrayExpression a) {
      walk(a.getObjExpression(), clause, visit, perShard);
      walk(a.getIndexExpression(), clause, visit, perShard);
      walk(a.getStartIndexExpression(), clause, visit, perShard);
      walk(a.getStopIndexExpression(), clause, visit, perShard);
    } else if (e instanceof ExtractExpression x) {
      walk(x.getExpression(), clause, visit, perShard);
    } else if (e instanceof IntervalExpression i) {
      walk(i.getExpression(), clause, visit, perShard);
    } else if (e instanceof TimezoneExpression t) {
      walk(t.getLeftExpression(), clause, visit, perShard);
      for (Expression z : t.getTimezoneExpressions()) {
        walk(z, clause, visit, perShard);
      }
    } else if (e instanceof TrimFunction t) {
      walk(t.getExpression(), clause, visit, perShard);
      walk(t.getFromExpression(), clause, visit, perShard);
    } else if (e instanceof JsonExpression j) {
      walk(j.getExpression(), clause, visit, perShard);
    } else if (e instanceof OverlapsCondition o) {
      walk(o.getLeft(), clause, visit, perShard);
      walk(o.getRight(), clause, visit, perShard);
    } else {
      throw Sql.refuse("unsupported expression in " + clause + ": " + e + " ("
          + e.getClass().getSimpleName() + "); the planner only accepts expressions it can check");
    }
  }

  private static void walkList(List<? extends Expression> list, String clause,
                               BiConsumer<Expression, String> visit, boolean perShard) {
    if (list != null) {
      for (Expression x : list) {
        walk(x, clause, visit, perShard);
      }
    }
  }
}
