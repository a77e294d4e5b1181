package io.shardmap.query.internal.plan;

import io.shardmap.query.QueryPlan;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import net.sf.jsqlparser.expression.AnalyticExpression;
import net.sf.jsqlparser.expression.AnalyticType;
import net.sf.jsqlparser.expression.BooleanValue;
import net.sf.jsqlparser.expression.CaseExpression;
import net.sf.jsqlparser.expression.DoubleValue;
import net.sf.jsqlparser.expression.Expression;
import net.sf.jsqlparser.expression.Function;
import net.sf.jsqlparser.expression.JdbcParameter;
import net.sf.jsqlparser.expression.LongValue;
import net.sf.jsqlparser.expression.NotExpression;
import net.sf.jsqlparser.expression.NullValue;
import net.sf.jsqlparser.expression.Parenthesis;
import net.sf.jsqlparser.expression.SignedExpression;
import net.sf.jsqlparser.expression.StringValue;
import net.sf.jsqlparser.expression.WhenClause;
import net.sf.jsqlparser.expression.operators.arithmetic.Addition;
import net.sf.jsqlparser.expression.operators.arithmetic.Division;
import net.sf.jsqlparser.expression.operators.arithmetic.Multiplication;
import net.sf.jsqlparser.expression.operators.arithmetic.Subtraction;
import net.sf.jsqlparser.expression.operators.conditional.AndExpression;
import net.sf.jsqlparser.expression.operators.conditional.OrExpression;
import net.sf.jsqlparser.expression.operators.relational.EqualsTo;
import net.sf.jsqlparser.expression.operators.relational.ExpressionList;
import net.sf.jsqlparser.expression.operators.relational.GreaterThan;
import net.sf.jsqlparser.expression.operators.relational.GreaterThanEquals;
import net.sf.jsqlparser.expression.operators.relational.IsNullExpression;
import net.sf.jsqlparser.expression.operators.relational.MinorThan;
import net.sf.jsqlparser.expression.operators.relational.MinorThanEquals;
import net.sf.jsqlparser.expression.operators.relational.NotEqualsTo;
import net.sf.jsqlparser.expression.operators.relational.ParenthesedExpressionList;
import net.sf.jsqlparser.schema.Column;
import net.sf.jsqlparser.statement.select.AllColumns;
import net.sf.jsqlparser.statement.select.AllTableColumns;
import net.sf.jsqlparser.statement.select.GroupByElement;
import net.sf.jsqlparser.statement.select.OrderByElement;
import net.sf.jsqlparser.statement.select.PlainSelect;
import net.sf.jsqlparser.statement.select.SelectItem;

/**
 * The plan of a statement with GROUP BY, aggregates or HAVING: each shard returns its groups' keys and
 * partial aggregates; the merge combines them, then applies HAVING, ORDER BY, OFFSET and LIMIT.
 */
final class AggregatePlan {
  private final Planner p;
  private final List<String> labels;
  private final Bound offset;
  private final Bound limit;
  private final List<SelectItem<?>> items;
  /** Group keys: the expression, and the select item it came from (-1 if none). */
  private final List<Expression> keys = new ArrayList<>();
  private final List<Integer> keyItems = new ArrayList<>();
  private final Map<String, Agg> aggs = new LinkedHashMap<>();
  private Expression distinctArg;
  private Expression distinctFilter;

  private record Agg(Kind kind, Expression arg, Expression filter, int index) {}

  AggregatePlan(Planner p, List<String> labels, Bound offset, Bound limit) {
    this.p = p;
    this.labels = labels;
    this.offset = offset;
    this.limit = limit;
    this.items = p.ps.getSelectItems();
  }

  QueryPlan plan() {
    groupKeys();
    List<Integer> projection = new ArrayList<>();
    List<Integer> itemAggs = new ArrayList<>();
    for (int i = 0; i < items.size(); i++) {
      SelectItem<?> item = items.get(i);
      Expression e = item.getExpression();
      if (e instanceof AllColumns || e instanceof AllTableColumns) {
        throw Sql.refuse("SELECT " + e + " cannot be combined with GROUP BY or aggregates");
      }
      if (Planner.aggregateName(e) != null) {
        projection.add(-1);
        itemAggs.add(aggregate(e, "select list").index);
        continue;
      }
      int k = keyOf(e, i);
      if (k < 0) {
        throw Sql.refuse("select list item " + item + " is neither a GROUP BY expression nor an aggregate"
            + " call (COUNT, SUM, MIN, MAX, AVG); write it as one of those");
      }
      projection.add(k);
      itemAggs.add(-1);
    }
    Expr having = p.ps.getHaving() == null ? null : having(p.ps.getHaving());
    List<MergeSpec.SortKey> finalOrder = new ArrayList<>();
    if (p.ps.getOrderByElements() != null) {
      for (OrderByElement o : p.ps.getOrderByElements()) {
        finalOrder.add(new MergeSpec.SortKey(groupRowColumn(o.getExpression(), itemAggs, projection),
            !o.isAsc(), Planner.nullsFirst(o)));
      }
    }
    int g = keys.size();
    for (int i = 0; i < projection.size(); i++) {
      if (projection.get(i) < 0) {
        projection.set(i, g + itemAggs.get(i));
      }
    }
    return rewrite(having, finalOrder, projection);
  }

  private void groupKeys() {
    GroupByElement gb = p.ps.getGroupBy();
    if (gb == null) {
      return;
    }
    for (Object o : gb.getGroupByExpressionList()) {
      Expression e = (Expression) o;
      if (e instanceof ParenthesedExpressionList<?> l) {
        if (l.size() != 1) {
          throw Sql.refuse("GROUP BY " + e + " (an empty grouping set or a row) cannot be merged across"
              + " shards: list the grouping expressions");
        }
        e = l.get(0);
      }
      if (e instanceof Function f && Set.of("rollup", "cube", "grouping sets").contains(
          Sql.fold(f.getName()))) {
        throw Sql.refuse("GROUPING SETS, ROLLUP and CUBE cannot be merged across shards: " + e);
      }
      int item = -1;
      if (e instanceof LongValue v) {
        long pos = v.getValue();
        if (pos < 1 || pos > items.size()) {
          throw Sql.refuse("GROUP BY position " + v + " is not in the select list");
        }
        item = (int) pos - 1;
      } else {
        int alias = Planner.aliasItem(e, items);
        Expression target = alias < 0 ? null : items.get(alias).getExpression();
        if (alias >= 0 && !(target instanceof Column tc
            && Sql.fold(tc.getColumnName()).equals(Sql.fold(((Column) e).getColumnName())))) {
          // PostgreSQL groups by an input column of that name if the table has one, else by the output
          // column; the planner cannot see the table's columns, and the two can group differently.
          throw Sql.refuse("GROUP BY " + e + " names an output column, and PostgreSQL would group by an"
              + " input column of that name if the table has one: write GROUP BY " + (alias + 1)
              + " (the position) or the expression");
        }
      }
      if (item >= 0) {
        Expression target = items.get(item).getExpression();
        if (target instanceof AllColumns || target instanceof AllTableColumns) {
          throw Sql.refuse("GROUP BY " + e + " names " + target + ", which is not one column");
        }
        if (Planner.aggregateName(target) != null || containsAggregate(target)) {
          throw Sql.refuse("aggregate functions are not allowed in GROUP BY: " + e + " is " + target);
        }
        e = target;
      }
      boolean duplicate = false;
      for (Expression k : keys) {
        duplicate |= p.sameExpression(k, e);
      }
      if (!duplicate) {
        keys.add(e);
        keyItems.add(item);
      }
    }
  }

  private static boolean containsAggregate(Expression e) {
    boolean[] found = {false};
    ExprWalk.walk(e, "GROUP BY", (node, c) -> found[0] |= Planner.aggregateName(node) != null);
    return found[0];
  }

  /** The group key a select item is (by the item it came from or by equal expression), or -1. */
  private int keyOf(Expression e, int item) {
    for (int k = 0; k < keys.size(); k++) {
      if (keyItems.get(k) == item || p.sameExpression(keys.get(k), e)) {
        return k;
      }
    }
    return -1;
  }

  /** Registers an aggregate call (once per distinct text) and returns it. */
  private Agg aggregate(Expression call, String clause) {
    String key = call.toString();
    Agg known = aggs.get(key);
    if (known != null) {
      return known;
    }
    String name = Planner.aggregateName(call);
    boolean distinct;
    Expression filter = null;
    List<Expression> args = new ArrayList<>();
    if (call instanceof AnalyticExpression a) {
      distinct = a.isDistinct();
      if (a.getFuncOrderBy() != null && !a.getFuncOrderBy().isEmpty() || a.getOrderByElements() != null
          && !a.getOrderByElements().isEmpty()) {
        throw Sql.refuse("ORDER BY inside an aggregate cannot be merged across shards: " + call);
      }
      if (a.getOffset() != null || a.getDefaultValue() != null || a.isUnique()) {
        throw Sql.refuse("unsupported aggregate call " + call);
      }
      if (a.getExpression() != null) {
        args.add(a.getExpression());
      }
      filter = a.getFilterExpression();
    } else {
      Function f = (Function) call;
      distinct = f.isDistinct();
      if (f.getOrderByElements() != null && !f.getOrderByElements().isEmpty()) {
        throw Sql.refuse("ORDER BY inside an aggregate cannot be merged across shards: " + call);
      }
      if (f.isUnique() || f.getNamedParameters() != null) {
        throw Sql.refuse("unsupported aggregate call " + call);
      }
      if (f.getParameters() != null) {
        for (Object o : f.getParameters()) {
          args.add((Expression) o);
        }
      }
    }
    if (args.size() != 1) {
      throw Sql.refuse("aggregate " + call + " (in " + clause + ") must have exactly one argument");
    }
    Expression arg = args.get(0);
    boolean star = arg instanceof AllColumns;
    if (star && !name.equals("count") || star && distinct) {
      throw Sql.refuse("aggregate " + call + " (in " + clause + "): only COUNT(*) takes *");
    }
    ExprWalk.walk(arg, clause, (node, c) -> {
      if (Planner.aggregateName(node) != null) {
        throw Sql.refuse("aggregate calls cannot be nested: " + call);
      }
    });
    if (filter != null) {
      ExprWalk.walk(filter, clause, (node, c) -> {
        if (Planner.aggregateName(node) != null) {
          throw Sql.refuse("aggregate calls cannot be nested: " + call);
        }
      });
    }
    Kind kind;
    if (distinct) {
      if (!name.equals("count")) {
        throw Sql.refuse("DISTINCT inside " + name.toUpperCase(Locale.ROOT) + " cannot be merged across"
            + " shards (only COUNT(DISTINCT x) can): " + call);
      }
      String filterText = filter == null ? null : filter.toString();
      if (distinctArg == null) {
        distinctArg = arg;
        distinctFilter = filter;
      } else if (!distinctArg.toString().equals(arg.toString())
          || !Objects.equals(distinctFilter == null ? null : distinctFilter.toString(), filterText)) {
        throw Sql.refuse("at most one COUNT(DISTINCT ...) argument per query can be merged across shards: "
            + call);
      }
      kind = Kind.COUNT_DISTINCT;
    } else {
      kind = Kind.valueOf(name.toUpperCase(Locale.ROOT));
    }
    Agg agg = new Agg(kind, star ? null : arg, filter, aggs.size());
    aggs.put(key, agg);
    return agg;
  }

  /** A group-row column an ORDER BY item names: position, output alias, aggregate or group key. */
  private int groupRowColumn(Expression e, List<Integer> itemAggs, List<Integer> projection) {
    int g = keys.size();
    int item = -1;
    if (e instanceof LongValue v) {
      if (v.getValue() < 1 || v.getValue() > items.size()) {
        throw Sql.refuse("ORDER BY position " + v + " is not in the select list");
      }
      item = (int) v.getValue() - 1;
    } else {
      item = p.outputNameItem(e, items);
    }
    if (item >= 0) {
      return projection.get(item) >= 0 ? projection.get(item) : g + itemAggs.get(item);
    }
    if (Planner.aggregateName(e) != null) {
      return g + aggregate(e, "ORDER BY").index;
    }
    for (int k = 0; k < g; k++) {
      if (p.sameExpression(keys.get(k), e)) {
        return k;
      }
    }
    throw Sql.refuse("ORDER BY " + e + " cannot be evaluated after the merge: order by a GROUP BY"
        + " expression, an aggregate call, an output column name or a position");
  }

  /** HAVING as an expression over the group row. */
  private Expr having(Expression e) {
    if (e instanceof Parenthesis par) {
      return having(par.getExpression());
    }
    if (e instanceof ParenthesedExpressionList<?> l && l.size() == 1) {
      return having(l.get(0));
    }
    if (Planner.aggregateName(e) != null) {
      return new Expr.Column(keys.size() + aggregate(e, "HAVING").index);
    }
    for (int k = 0; k < keys.size(); k++) {
      if (p.sameExpression(keys.get(k), e)) {
        return new Expr.Column(k);
      }
    }
    if (e instanceof AndExpression a) {
      return new Expr.And(having(a.getLeftExpression()), having(a.getRightExpression()));
    }
    if (e instanceof OrExpression o) {
      return new Expr.Or(having(o.getLeftExpression()), having(o.getRightExpression()));
    }
    if (e instanceof NotExpression n) {
      return new Expr.Not(having(n.getExpression()));
    }
    if (e instanceof IsNullExpression n && !n.isUseIsNull() && !n.isUseNotNull()) {
      return new Expr.IsNull(having(n.getLeftExpression()), n.isNot());
    }
    Expr.CompareOp cmp = e instanceof EqualsTo ? Expr.CompareOp.EQ
        : e instanceof NotEqualsTo ? Expr.CompareOp.NE
        : e instanceof MinorThan ? Expr.CompareOp.LT
        : e instanceof MinorThanEquals ? Expr.CompareOp.LE
        : e instanceof GreaterThan ? Expr.CompareOp.GT
        : e instanceof GreaterThanEquals ? Expr.CompareOp.GE : null;
    if (cmp != null) {
      var b = (net.sf.jsqlparser.expression.BinaryExpression) e;
      if (b instanceof net.sf.jsqlparser.expression.operators.relational.OldOracleJoinBinaryExpression o
          && o.getOldOracleJoinSyntax() != 0) {
        throw Sql.refuse("HAVING cannot be evaluated after the merge: " + e);
      }
      return new Expr.Compare(cmp, having(b.getLeftExpression()), having(b.getRightExpression()));
    }
    Expr.ArithmeticOp op = e instanceof Addition ? Expr.ArithmeticOp.ADD
        : e instanceof Subtraction ? Expr.ArithmeticOp.SUBTRACT
        : e instanceof Multiplication ? Expr.ArithmeticOp.MULTIPLY
        : e instanceof Division ? Expr.ArithmeticOp.DIVIDE : null;
    if (op != null) {
      var b = (net.sf.jsqlparser.expression.BinaryExpression) e;
      return new Expr.Arithmetic(op, having(b.getLeftExpression()), having(b.getRightExpression()));
    }
    if (e instanceof JdbcParameter jp) {
      return new Expr.Param(jp.getIndex());
    }
    if (e instanceof LongValue v) {
      BigInteger b = v.getBigIntegerValue();
      return new Expr.Literal(b.bitLength() <= 63 ? (Object) b.longValue() : new BigDecimal(b));
    }
    if (e instanceof DoubleValue) {
      // PostgreSQL reads 1.5 and 1e3 as numeric constants, not double precision.
      return new Expr.Literal(new BigDecimal(e.toString()));
    }
    if (e instanceof StringValue s && (s.getPrefix() == null || s.getPrefix().isEmpty())) {
      return new Expr.Literal(s.getValue().replace("''", "'"));
    }
    if (e instanceof BooleanValue b) {
      return new Expr.Literal(b.getValue());
    }
    if (e instanceof Column c && c.getTable() == null && Set.of("true", "false").contains(
        c.getColumnName().toLowerCase(Locale.ROOT))) {
      return new Expr.Literal(Boolean.valueOf(c.getColumnName().toLowerCase(Locale.ROOT)));
    }
    if (e instanceof NullValue) {
      return new Expr.Literal(null);
    }
    if (e instanceof SignedExpression s && s.getSign() == '-') {
      Expr inner = having(s.getExpression());
      if (inner instanceof Expr.Literal lit && lit.value() instanceof Long l && l != Long.MIN_VALUE) {
        return new Expr.Literal(-l);
      }
      if (inner instanceof Expr.Literal lit && lit.value() instanceof BigDecimal d) {
        BigDecimal neg = d.negate();
        return new Expr.Literal(neg.scale() <= 0 && neg.toBigInteger().bitLength() <= 63
            && !(s.getExpression() instanceof DoubleValue) ? (Object) neg.longValueExact() : neg);
      }
      return new Expr.Arithmetic(Expr.ArithmeticOp.SUBTRACT, new Expr.Literal(0L), inner);
    }
    if (e instanceof SignedExpression s && s.getSign() == '+') {
      return having(s.getExpression());
    }
    throw Sql.refuse("HAVING cannot be evaluated after the merge: " + e + " (supported: comparisons,"
        + " + - * /, AND, OR, NOT, IS [NOT] NULL, literals, ? placeholders, aggregate calls and GROUP BY"
        + " expressions)");
  }

  private QueryPlan rewrite(Expr having, List<MergeSpec.SortKey> finalOrder, List<Integer> projection) {
    PlainSelect ps = p.ps;
    List<SelectItem<?>> shardItems = new ArrayList<>();
    List<Expression> groupBy = new ArrayList<>();
    for (int k = 0; k < keys.size(); k++) {
      shardItems.add(SelectItem.from(keys.get(k)));
      groupBy.add(new LongValue(k + 1));
    }
    Integer distinctColumn = null;
    if (distinctArg != null) {
      Expression d = distinctArg;
      if (distinctFilter != null) {
        // COUNT(DISTINCT x) FILTER (WHERE c) counts the distinct non-null values of CASE WHEN c THEN x END.
        d = new CaseExpression(new WhenClause(Planner.paren(distinctFilter), d));
      }
      distinctColumn = shardItems.size();
      shardItems.add(SelectItem.from(d));
      groupBy.add(new LongValue(distinctColumn + 1));
    }
    List<MergeSpec.Aggregate> aggregates = new ArrayList<>();
    for (Agg a : aggs.values()) {
      switch (a.kind) {
        case COUNT_DISTINCT -> aggregates.add(new MergeSpec.Aggregate(a.kind, distinctColumn, -1));
        case AVG -> {
          int sum = shardItems.size();
          shardItems.add(SelectItem.from(call("sum", a.arg, a.filter)));
          shardItems.add(SelectItem.from(call("count", a.arg, a.filter)));
          aggregates.add(new MergeSpec.Aggregate(a.kind, sum, sum + 1));
        }
        default -> {
          aggregates.add(new MergeSpec.Aggregate(a.kind, shardItems.size(), -1));
          shardItems.add(SelectItem.from(call(a.kind.name().toLowerCase(Locale.ROOT), a.arg, a.filter)));
        }
      }
    }
    ps.setSelectItems(shardItems);
    if (groupBy.isEmpty()) {
      ps.setGroupByElement(null);
    } else {
      GroupByElement g = new GroupByElement();
      g.setGroupByExpressions(new ExpressionList<>(groupBy));
      ps.setGroupByElement(g);
    }
    ps.setHaving(null);
    ps.setOrderByElements(null);
    List<Integer> groupColumns = new ArrayList<>();
    for (int k = 0; k < keys.size(); k++) {
      groupColumns.add(k);
    }
    MergeSpec.Aggregation aggregation = new MergeSpec.Aggregation(groupColumns, aggregates, distinctColumn,
        having);
    ShardTemplate template = ShardTemplate.cut(ps.toString(), p.salt);
    return new SelectPlan(p.sql, p.refs.get(0).lookedUp(), p.keyRef(), p.params.size(), labels, template,
        offset, limit, 0, shardItems.size(), List.of(), SelectPlan.Kind.AGGREGATED, aggregation,
        finalOrder, projection);
  }

  private static Expression call(String name, Expression arg, Expression filter) {
    Function f = new Function();
    f.setName(name);
    f.setParameters(new ExpressionList<>(arg == null ? new AllColumns() : arg));
    if (filter == null) {
      return f;
    }
    AnalyticExpression a = new AnalyticExpression(f);
    a.setType(AnalyticType.FILTER_ONLY);
    a.setFilterExpression(filter);
    return a;
  }
}
