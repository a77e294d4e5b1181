package io.shardmap.query.internal.plan;

import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import net.sf.jsqlparser.JSQLParserException;
import net.sf.jsqlparser.expression.Alias;
import net.sf.jsqlparser.expression.AllValue;
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
import net.sf.jsqlparser.parser.CCJSqlParserUtil;
import net.sf.jsqlparser.parser.ParseException;
import net.sf.jsqlparser.parser.Token;
import net.sf.jsqlparser.schema.Column;
import net.sf.jsqlparser.schema.Table;
import net.sf.jsqlparser.statement.Statement;
import net.sf.jsqlparser.statement.Statements;
import net.sf.jsqlparser.statement.select.AllColumns;
import net.sf.jsqlparser.statement.select.AllTableColumns;
import net.sf.jsqlparser.statement.select.Distinct;
import net.sf.jsqlparser.statement.select.Fetch;
import net.sf.jsqlparser.statement.select.FromItem;
import net.sf.jsqlparser.statement.select.GroupByElement;
import net.sf.jsqlparser.statement.select.Join;
import net.sf.jsqlparser.statement.select.Limit;
import net.sf.jsqlparser.statement.select.Offset;
import net.sf.jsqlparser.statement.select.OrderByElement;
import net.sf.jsqlparser.statement.select.ParenthesedSelect;
import net.sf.jsqlparser.statement.select.PlainSelect;
import net.sf.jsqlparser.statement.select.SelectItem;
import net.sf.jsqlparser.statement.select.SetOperationList;

/**
 * Plans one cross-shard SELECT: parses it, refuses what no merge can make exact (naming the clause), and
 * rewrites it into the statement every shard runs plus the {@link MergeSpec} of the merge.
 *
 * <p><b>Why JSqlParser.</b> It is well kept (regular releases, active maintainers), dual-licensed Apache 2.0
 * / LGPL 2.1, a single jar on Maven Central, and covers the PostgreSQL syntax services write ({@code ::}
 * casts, ILIKE, aggregate FILTER, {@code FETCH FIRST}, {@code LIMIT ALL}, and it recognises {@code $1} so
 * we can refuse it by name). It gives an AST to check and rewrite and a deparser to print the rewritten
 * AST, so the shard statement is never made by string surgery on the caller's SQL. Apache Calcite was the
 * alternative for parsing, but it is a whole query engine whose SQL dialect and validation semantics are
 * its own (we would plan against Calcite's idea of SQL, not PostgreSQL's); libpg_query (PostgreSQL's own
 * parser) is exact but native code, and its Java bindings are not on Maven Central. Where JSqlParser's
 * grammar is wider than PostgreSQL's, the whitelists here ({@link ExprWalk}, the clause checks) refuse
 * rather than guess; where it is narrower (a few rare syntaxes), the statement is refused as unparseable.
 *
 * <p>What the shard statement is: the caller's SELECT with {@code (<where>) AND (<owned>)} as its WHERE,
 * hidden columns first in its select list (ORDER BY expressions that are not output columns; so the
 * caller's output positions only shift by their count, also after a {@code *}), ORDER BY by position,
 * and {@code LIMIT offset+limit} without OFFSET. For GROUP BY, aggregates or HAVING: the group keys, the
 * COUNT(DISTINCT) argument (also grouped by) and the partial aggregates, grouped, with no ORDER BY,
 * HAVING, LIMIT or OFFSET (all of which the merge applies to the combined groups).
 */
public final class Planner {
  /** The aggregates whose partials merge exactly. */
  private static final Set<String> MERGEABLE = Set.of("count", "sum", "min", "max", "avg");

  /** PostgreSQL's other built-in aggregates: refused by name rather than sent as if they were functions. */
  private static final Set<String> OTHER_AGGREGATES = Set.of("array_agg", "string_agg", "bool_and",
      "bool_or", "every", "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg",
      "jsonb_object_agg", "json_objectagg", "json_arrayagg", "json_agg_strict", "jsonb_agg_strict",
      "json_object_agg_strict", "jsonb_object_agg_strict", "json_object_agg_unique",
      "jsonb_object_agg_unique", "xmlagg", "stddev", "stddev_pop", "stddev_samp", "variance",
      "var_pop", "var_samp", "covar_pop", "covar_samp", "corr", "regr_avgx", "regr_avgy", "regr_count",
      "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "percentile_cont",
      "percentile_disc", "mode", "range_agg", "range_intersect_agg", "any_value", "grouping");

  /**
   * JSqlParser parses in a worker thread so that its time limit can stop a pathological statement; daemon
   * threads, so planning never keeps a JVM alive.
   */
  private static final ExecutorService PARSER = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "shardmap-sql-parser");
    t.setDaemon(true);
    return t;
  });

  private final String sql;
  private final PlainSelect ps;
  private final QueryPlanner.ShardedTables tables;
  private final String salt;
  private final List<TableRef> refs = new ArrayList<>();
  private final List<JdbcParameter> params = new ArrayList<>();
  private boolean hasAggregate;

  private record TableRef(String name, String schema, String alias, String key, String lookedUp) {}

  private Planner(String sql, PlainSelect ps, QueryPlanner.ShardedTables tables) {
    this.sql = sql;
    this.ps = ps;
    this.tables = tables;
    String lower = sql.toLowerCase(Locale.ROOT);
    int n = 0;
    while (lower.contains("zzsmk" + n + "x")) {
      n++;
    }
    this.salt = "zzsmk" + n + "x";
  }

  public static QueryPlan plan(String sql, QueryPlanner.ShardedTables tables) {
    Objects.requireNonNull(tables, "tables");
    if (sql == null || sql.isBlank()) {
      throw Sql.refuse("must be one SELECT statement, got an empty one");
    }
    return new Planner(sql, parse(sql), tables).build();
  }

  // ---------------------------------------------------------------- parsing and clause checks

  private static PlainSelect parse(String sql) {
    Statements statements;
    try {
      statements = CCJSqlParserUtil.parseStatements(sql, PARSER, parser -> { });
    } catch (JSQLParserException e) {
      throw Sql.refuse("cannot parse the statement: " + parseError(e));
    }
    if (statements == null || statements.size() != 1) {
      throw Sql.refuse("must be exactly one statement, got " + (statements == null ? 0 : statements.size()));
    }
    Statement s = statements.get(0);
    if (s instanceof SetOperationList) {
      throw Sql.refuse("UNION, INTERSECT and EXCEPT cannot be planned across shards: " + s);
    }
    if (s instanceof ParenthesedSelect) {
      throw Sql.refuse("a parenthesized SELECT cannot be planned; write the SELECT without parentheses");
    }
    if (!(s instanceof PlainSelect p)) {
      throw Sql.refuse("only a SELECT can run across shards, got " + s.getClass().getSimpleName().toUpperCase(
          Locale.ROOT));
    }
    return p;
  }

  private static String parseError(JSQLParserException e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    String message = t.getMessage() == null ? e.toString() : t.getMessage();
    String first = message.strip().split("\n", 2)[0].strip();
    if (t instanceof ParseException pe && pe.currentToken != null && pe.currentToken.next != null) {
      Token at = pe.currentToken.next;
      return first + " at line " + at.beginLine + ", column " + at.beginColumn;
    }
    return first;
  }

  private void checkClauses() {
    if (ps.getWithItemsList() != null && !ps.getWithItemsList().isEmpty()) {
      throw Sql.refuse("WITH (common table expressions) cannot be planned across shards");
    }
    if (ps.getForMode() != null || ps.getForUpdateTable() != null || ps.getForClause() != null
        || ps.getWait() != null || ps.isSkipLocked() || ps.isNoWait()) {
      throw Sql.refuse("FOR UPDATE/SHARE cannot run across shards: row locks belong in a transaction on"
          + " the shard that owns the key");
    }
    if (ps.getIntoTables() != null || ps.getIntoTempTable() != null) {
      throw Sql.refuse("SELECT INTO creates a table; only a query can run across shards");
    }
    if (ps.getWindowDefinitions() != null && !ps.getWindowDefinitions().isEmpty()) {
      throw Sql.refuse("window functions cannot be merged across shards: WINDOW "
          + ps.getWindowDefinitions());
    }
    Distinct d = ps.getDistinct();
    if (d != null && d.getOnSelectItems() != null && !d.getOnSelectItems().isEmpty()) {
      throw Sql.refuse("DISTINCT ON cannot be merged across shards: " + d);
    }
    if (d != null && d.isUseUnique()) {
      throw Sql.refuse("SELECT UNIQUE is not PostgreSQL; write SELECT DISTINCT");
    }
    if (ps.getGroupBy() != null) {
      GroupByElement g = ps.getGroupBy();
      if ((g.getGroupingSets() != null && !g.getGroupingSets().isEmpty()) || g.isMysqlWithRollup()) {
        throw Sql.refuse("GROUPING SETS, ROLLUP and CUBE cannot be merged across shards: " + g);
      }
    }
    Object[] unsupported = {ps.getQualify(), ps.getTop(), ps.getFirst(), ps.getSkip(),
        ps.getOracleHierarchical(), ps.getLateralViews(), ps.getKsqlWindow(), ps.getPivot(),
        ps.getUnPivot(), ps.getLimitBy(), ps.getIsolation(), ps.getOptimizeFor(),
        ps.getPreferringClause(), ps.getForXmlPath(), ps.getOracleHint(), ps.getSampleClause()};
    for (Object o : unsupported) {
      if (o != null && !(o instanceof List<?> l && l.isEmpty())) {
        throw Sql.refuse("unsupported clause " + o.toString().strip() + ": not PostgreSQL or not mergeable");
      }
    }
  }

  // ---------------------------------------------------------------- tables and joins

  private void resolveTables() {
    TableRef first = tableRef(ps.getFromItem(), "FROM");
    refs.add(first);
    if (ps.getJoins() == null) {
      return;
    }
    for (Join j : ps.getJoins()) {
      if (j.isSimple()) {
        throw Sql.refuse("comma joins are not planned: write INNER JOIN " + j.getFromItem()
            + " ON <a>.<key> = <b>.<key> so that the shard keys are equated");
      }
      if (j.isOuter() || j.isLeft() || j.isRight() || j.isFull() || j.isNatural() || j.isCross()
          || j.isSemi() || j.isApply() || j.isStraight() || j.isGlobal() || j.isWindowJoin()) {
        throw Sql.refuse("only INNER JOIN on the shard keys can run across shards (an outer, cross or"
            + " natural join is not): " + j);
      }
      TableRef right = tableRef(j.getFromItem(), "JOIN");
      if (!equatesKeys(j, right)) {
        throw Sql.refuse("a join of sharded tables must equate their shard keys (" + right.key + " of "
            + right.name + " with the key of a table before it) in its ON: " + j);
      }
      refs.add(right);
    }
  }

  private TableRef tableRef(FromItem item, String clause) {
    if (item instanceof ParenthesedSelect || item instanceof net.sf.jsqlparser.statement.select.Select) {
      throw Sql.refuse("subqueries cannot be planned across shards (in " + clause + "): " + item);
    }
    if (!(item instanceof Table t)) {
      throw Sql.refuse("only tables can be read across shards (in " + clause + "): " + item);
    }
    if (t.getSampleClause() != null || t.getPivot() != null || t.getUnPivot() != null
        || t.getIndexHint() != null || t.getSqlServerHints() != null) {
      throw Sql.refuse("unsupported table clause in " + clause + ": " + t);
    }
    if (t.getDatabaseName() != null) {
      throw Sql.refuse("cross-database table references are not supported (in " + clause + "): " + t);
    }
    String name = Sql.fold(t.getName());
    String schema = t.getSchemaName() == null ? null : Sql.fold(t.getSchemaName());
    Optional<String> key = Optional.empty();
    String lookedUp = name;
    if (schema != null) {
      key = tables.keyColumn(schema + "." + name);
      lookedUp = schema + "." + name;
    }
    if (key.isEmpty()) {
      key = tables.keyColumn(name);
      lookedUp = name;
    }
    if (key.isEmpty()) {
      throw Sql.refuse("table " + (schema == null ? name : schema + "." + name) + " (in " + clause
          + ") is not sharded in this keyspace");
    }
    Alias alias = t.getAlias();
    if (alias != null && alias.getAliasColumns() != null && !alias.getAliasColumns().isEmpty()) {
      throw Sql.refuse("column aliases on a table (" + t + ") are not supported");
    }
    return new TableRef(name, schema, alias == null ? null : Sql.fold(alias.getName()), key.get(), lookedUp);
  }

  private boolean equatesKeys(Join j, TableRef right) {
    if (j.getUsingColumns() != null && !j.getUsingColumns().isEmpty()) {
      for (Column c : j.getUsingColumns()) {
        String name = Sql.fold(c.getColumnName());
        if (name.equals(right.key) && refs.stream().anyMatch(r -> r.key.equals(name))) {
          return true;
        }
      }
      return false;
    }
    List<Expression> conjuncts = new ArrayList<>();
    for (Expression on : j.getOnExpressions()) {
      conjuncts(on, conjuncts);
    }
    for (Expression c : conjuncts) {
      if (c instanceof EqualsTo eq && eq.getLeftExpression() instanceof Column a
          && eq.getRightExpression() instanceof Column b) {
        TableRef ra = owner(a, right);
        TableRef rb = owner(b, right);
        if (ra == null || rb == null) {
          continue;
        }
        boolean aKey = Sql.fold(a.getColumnName()).equals(ra.key);
        boolean bKey = Sql.fold(b.getColumnName()).equals(rb.key);
        if (aKey && bKey && ((ra == right) != (rb == right))) {
          return true;
        }
      }
    }
    return false;
  }

  private static void conjuncts(Expression e, List<Expression> out) {
    if (e instanceof AndExpression and) {
      conjuncts(and.getLeftExpression(), out);
      conjuncts(and.getRightExpression(), out);
    } else if (e instanceof Parenthesis p) {
      conjuncts(p.getExpression(), out);
    } else if (e instanceof ParenthesedExpressionList<?> l && l.size() == 1) {
      conjuncts(l.get(0), out);
    } else {
      out.add(e);
    }
  }

  /** The table a qualified column belongs to (among the tables so far and {@code right}), or null. */
  private TableRef owner(Column c, TableRef right) {
    Table q = c.getTable();
    if (q == null || q.getName() == null) {
      return null;
    }
    String name = Sql.fold(q.getName());
    String schema = q.getSchemaName() == null ? null : Sql.fold(q.getSchemaName());
    List<TableRef> all = new ArrayList<>(refs);
    all.add(right);
    for (TableRef r : all) {
      boolean matches = r.alias != null ? schema == null && r.alias.equals(name)
          : r.name.equals(name) && (schema == null || schema.equals(r.schema));
      if (matches) {
        return r;
      }
    }
    return null;
  }

  private String keyRef() {
    TableRef r = refs.get(0);
    String qualifier = r.alias != null ? Sql.quote(r.alias)
        : (r.schema == null ? "" : Sql.quote(r.schema) + ".") + Sql.quote(r.name);
    return qualifier + "." + Sql.quote(r.key);
  }

  // ---------------------------------------------------------------- walking every clause

  private void walkAll() {
    List<SelectItem<?>> items = ps.getSelectItems();
    for (SelectItem<?> item : items) {
      Expression e = item.getExpression();
      if (e instanceof AllColumns || e instanceof AllTableColumns) {
        if (e instanceof AllColumns a && (a.getExceptColumns() != null || a.getReplaceExpressions() != null)) {
          throw Sql.refuse("unsupported select list item " + e);
        }
        continue;
      }
      walk(e, "select list");
    }
    if (ps.getJoins() != null) {
      for (Join j : ps.getJoins()) {
        for (Expression on : j.getOnExpressions()) {
          walk(on, "JOIN ... ON");
        }
      }
    }
    walk(ps.getWhere(), "WHERE");
    if (ps.getGroupBy() != null) {
      for (Object e : ps.getGroupBy().getGroupByExpressionList()) {
        walk((Expression) e, "GROUP BY");
      }
    }
    walk(ps.getHaving(), "HAVING");
    if (ps.getOrderByElements() != null) {
      for (OrderByElement o : ps.getOrderByElements()) {
        walk(o.getExpression(), "ORDER BY");
      }
    }
    if (ps.getLimit() != null) {
      walk(ps.getLimit().getRowCount(), "LIMIT");
      walk(ps.getLimit().getOffset(), "LIMIT");
    }
    if (ps.getOffset() != null) {
      walk(ps.getOffset().getOffset(), "OFFSET");
    }
    if (ps.getFetch() != null) {
      walk(ps.getFetch().getExpression(), "FETCH");
    }
  }

  private void walk(Expression e, String clause) {
    ExprWalk.walk(e, clause, (node, where) -> {
      if (node instanceof JdbcParameter p) {
        if (p.isUseFixedIndex()) {
          throw Sql.refuse("numbered placeholders such as " + p + " are not supported (in " + where
              + "): use ? placeholders");
        }
        params.add(p);
      }
      String agg = aggregateName(node);
      if (agg != null) {
        if (!where.equals("select list") && !where.equals("HAVING") && !where.equals("ORDER BY")) {
          throw Sql.refuse("aggregate functions are not allowed in " + where + ": " + node);
        }
        if (!MERGEABLE.contains(agg)) {
          throw Sql.refuse("aggregate " + node + " (in " + where + ") cannot be merged across shards: only"
              + " COUNT, SUM, MIN, MAX and AVG (and one COUNT(DISTINCT x)) can");
        }
        hasAggregate = true;
      }
    });
  }

  /** The lower-case name of an aggregate call (a mergeable one or another known aggregate), else null. */
  private static String aggregateName(Expression e) {
    String name = null;
    if (e instanceof Function f) {
      List<String> parts = f.getMultipartName();
      if (parts.size() > 2 || (parts.size() == 2 && !Sql.fold(parts.get(0)).equals("pg_catalog"))) {
        return null;
      }
      name = Sql.fold(parts.get(parts.size() - 1));
    } else if (e instanceof AnalyticExpression a && a.getType() == AnalyticType.FILTER_ONLY) {
      name = Sql.fold(a.getName());
    }
    if (name != null && (MERGEABLE.contains(name) || OTHER_AGGREGATES.contains(name))) {
      return name;
    }
    if (e instanceof AnalyticExpression a) {
      throw Sql.refuse("FILTER applies only to aggregates: " + a);
    }
    return null;
  }

  /** Numbers the caller's ? in order and gives each a slot marker for the deparsed shard statement. */
  private void markParams() {
    params.sort(Comparator.comparing(JdbcParameter::getIndex));
    for (int i = 0; i < params.size(); i++) {
      JdbcParameter p = params.get(i);
      if (p.getIndex() == null || p.getIndex() != i + 1) {
        // The walk found the placeholders; the parser numbered them in order. A gap would mean a
        // placeholder the walk did not see, so its value could end up in the wrong position.
        throw Sql.refuse("a ? placeholder is in a place the planner does not support");
      }
      p.setParameterCharacter(salt + ShardTemplate.PARAM);
      p.setUseFixedIndex(true);
      p.setIndex(i);
    }
  }

  // ---------------------------------------------------------------- the plan

  private QueryPlan build() {
    checkClauses();
    resolveTables();
    walkAll();
    markParams();
    List<String> labels = new ArrayList<>();
    for (SelectItem<?> item : ps.getSelectItems()) {
      Expression e = item.getExpression();
      labels.add(e instanceof AllColumns || e instanceof AllTableColumns ? "*" : Labels.label(item));
    }
    Bound offset = offset();
    Bound limit = limit();
    boolean aggregated = hasAggregate || ps.getGroupBy() != null || ps.getHaving() != null;
    Expression where = ps.getWhere();
    Expression owned = new Column(salt + ShardTemplate.OWNED);
    ps.setWhere(where == null ? paren(owned) : new AndExpression(paren(where), paren(owned)));
    ps.setOffset(null);
    ps.setFetch(null);
    ps.setLimit(null);
    if (aggregated) {
      if (ps.getDistinct() != null) {
        throw Sql.refuse("DISTINCT together with GROUP BY or aggregates cannot be merged across shards");
      }
      return new Aggregated(this, labels, offset, limit).plan();
    }
    return planPlain(labels, offset, limit);
  }

  private static Expression paren(Expression e) {
    return new ParenthesedExpressionList<>(e);
  }

  private Bound limit() {
    Limit l = ps.getLimit();
    Fetch f = ps.getFetch();
    if (l != null && f != null) {
      throw Sql.refuse("LIMIT and FETCH FIRST together are not allowed");
    }
    if (l != null) {
      if (l.getOffset() != null) {
        throw Sql.refuse("LIMIT <offset>, <count> is not PostgreSQL syntax: write LIMIT <count> OFFSET"
            + " <offset>");
      }
      if (l.isLimitAll() || l.isLimitNull() || l.getRowCount() instanceof AllValue
          || l.getRowCount() instanceof NullValue) {
        return Bound.NONE;
      }
      return bound(l.getRowCount(), "LIMIT");
    }
    if (f != null) {
      if (f.getFetchParameters() != null
          && f.getFetchParameters().stream().anyMatch(s -> s.toUpperCase(Locale.ROOT).contains("TIES"))) {
        throw Sql.refuse("FETCH ... WITH TIES cannot be merged across shards: " + f.toString().strip());
      }
      return f.getExpression() == null ? Bound.of(1) : bound(f.getExpression(), "FETCH FIRST");
    }
    return Bound.NONE;
  }

  private Bound offset() {
    Offset o = ps.getOffset();
    if (o == null) {
      return Bound.NONE;
    }
    if (o.getOffset() instanceof NullValue) {
      return Bound.NONE;
    }
    return bound(o.getOffset(), "OFFSET");
  }

  private static Bound bound(Expression e, String clause) {
    if (e instanceof JdbcParameter p) {
      return Bound.param(p.getIndex());
    }
    if (e instanceof LongValue v) {
      BigInteger b = v.getBigIntegerValue();
      if (b.signum() < 0 || b.bitLength() > 63) {
        throw Sql.refuse(clause + " " + v + " is out of range: it must be a non-negative bigint");
      }
      return Bound.of(b.longValue());
    }
    throw Sql.refuse(clause + " must be an integer literal or a ? placeholder, got " + e);
  }

  // ---------------------------------------------------------------- plain queries

  /** An ORDER BY item resolved to an output column (0-based) or to a hidden column (0-based). */
  private record Resolved(int output, int hidden, boolean descending, boolean nullsFirst) {}

  private QueryPlan planPlain(List<String> labels, Bound offset, Bound limit) {
    List<SelectItem<?>> items = ps.getSelectItems();
    boolean star = items.stream().anyMatch(i -> i.getExpression() instanceof AllColumns
        || i.getExpression() instanceof AllTableColumns);
    List<Expression> hidden = new ArrayList<>();
    List<String> hiddenKeys = new ArrayList<>();
    List<Resolved> order = new ArrayList<>();
    boolean distinct = ps.getDistinct() != null;
    if (ps.getOrderByElements() != null) {
      for (OrderByElement o : ps.getOrderByElements()) {
        boolean desc = !o.isAsc();
        boolean nullsFirst = nullsFirst(o);
        int out = outputColumn(o.getExpression(), items);
        if (out >= 0) {
          order.add(new Resolved(out, -1, desc, nullsFirst));
          continue;
        }
        if (distinct) {
          throw Sql.refuse("for SELECT DISTINCT, ORDER BY expressions must appear in the select list: "
              + o.getExpression());
        }
        Expression e = o.getExpression();
        int alias = aliasItem(e, items);
        if (alias >= 0) {
          e = items.get(alias).getExpression();
        }
        String key = e.toString();
        int h = hiddenKeys.indexOf(key);
        if (h < 0) {
          hidden.add(e);
          hiddenKeys.add(key);
          h = hidden.size() - 1;
        }
        order.add(new Resolved(-1, h, desc, nullsFirst));
      }
    }
    int h = hidden.size();
    List<SelectItem<?>> shardItems = new ArrayList<>();
    for (Expression e : hidden) {
      shardItems.add(SelectItem.from(e));
    }
    shardItems.addAll(items);
    ps.setSelectItems(shardItems);
    List<MergeSpec.SortKey> keys = new ArrayList<>();
    List<OrderByElement> shardOrder = new ArrayList<>();
    for (Resolved r : order) {
      int column = r.output >= 0 ? h + r.output : r.hidden;
      keys.add(new MergeSpec.SortKey(column, r.descending, r.nullsFirst));
      shardOrder.add(orderBy(new LongValue(column + 1), r.descending, r.nullsFirst));
    }
    // DISTINCT: each shard's first offset+limit distinct rows in the ORDER BY contain the answer's (a row
    // among the answer's has fewer than offset+limit distinct rows before it on any shard), so the per-shard
    // LIMIT holds; without a LIMIT the merge needs no shard order, since it sorts the distinct rows itself.
    boolean shardLimit = !limit.isNone();
    ps.setOrderByElements(shardOrder.isEmpty() || (distinct && !shardLimit) ? null : shardOrder);
    if (shardLimit) {
      Limit l = new Limit();
      l.setRowCount(new Column(salt + ShardTemplate.LIMIT));
      ps.setLimit(l);
    }
    int width = star ? -1 : h + items.size();
    ShardTemplate template = ShardTemplate.cut(ps.toString(), salt);
    SelectPlan.Kind kind = distinct ? SelectPlan.Kind.DISTINCT : SelectPlan.Kind.PLAIN;
    return new SelectPlan(sql, refs.get(0).lookedUp, keyRef(), params.size(), labels, template, offset,
        limit, h, width, distinct ? List.of() : keys, kind, null, distinct ? keys : List.of(), null);
  }

  /** The 0-based output column an ORDER BY item names (position, output alias, or equal expression), or -1. */
  private int outputColumn(Expression e, List<SelectItem<?>> items) {
    if (e instanceof LongValue v) {
      long p = v.getValue();
      boolean star = items.stream().anyMatch(i -> i.getExpression() instanceof AllColumns
          || i.getExpression() instanceof AllTableColumns);
      if (p < 1 || (!star && p > items.size())) {
        throw Sql.refuse("ORDER BY position " + v + " is not in the select list");
      }
      return (int) p - 1;
    }
    int alias = aliasItem(e, items);
    if (alias >= 0) {
      return knownPosition(items, alias);
    }
    String key = e.toString();
    for (int i = 0; i < items.size(); i++) {
      if (sameExpression(items.get(i).getExpression(), e)) {
        int p = knownPosition(items, i);
        if (p >= 0) {
          return p;
        }
      }
    }
    return -1;
  }

  /** Item i's output position when no {@code *} before it makes it unknown, else -1. */
  private static int knownPosition(List<SelectItem<?>> items, int i) {
    for (int k = 0; k < i; k++) {
      Expression e = items.get(k).getExpression();
      if (e instanceof AllColumns || e instanceof AllTableColumns) {
        return -1;
      }
    }
    return i;
  }

  /** The select item whose explicit alias a bare name is (PostgreSQL's ORDER BY/GROUP BY output names), or -1. */
  private static int aliasItem(Expression e, List<SelectItem<?>> items) {
    if (!(e instanceof Column c) || c.getTable() != null && c.getTable().getName() != null) {
      return -1;
    }
    String name = Sql.fold(c.getColumnName());
    int found = -1;
    for (int i = 0; i < items.size(); i++) {
      Alias a = items.get(i).getAlias();
      if (a != null && Sql.fold(a.getName()).equals(name)) {
        if (found >= 0) {
          throw Sql.refuse("ORDER BY/GROUP BY name " + c + " is ambiguous: several output columns have it");
        }
        found = i;
      }
    }
    return found;
  }

  /** Expression equality as far as the planner can tell: a column by its folded name, else the same text. */
  boolean sameExpression(Expression a, Expression b) {
    if (a instanceof Column x && b instanceof Column y) {
      if (!Sql.fold(x.getColumnName()).equals(Sql.fold(y.getColumnName()))) {
        return false;
      }
      String qx = qualifier(x);
      String qy = qualifier(y);
      return qx == null || qy == null ? refs.size() == 1 : qx.equals(qy);
    }
    return a.toString().equals(b.toString());
  }

  private static String qualifier(Column c) {
    return c.getTable() == null || c.getTable().getName() == null ? null : Sql.fold(c.getTable().getName());
  }

  static boolean nullsFirst(OrderByElement o) {
    if (o.getNullOrdering() == OrderByElement.NullOrdering.NULLS_FIRST) {
      return true;
    }
    if (o.getNullOrdering() == OrderByElement.NullOrdering.NULLS_LAST) {
      return false;
    }
    return !o.isAsc();
  }

  static OrderByElement orderBy(Expression e, boolean descending, boolean nullsFirst) {
    OrderByElement o = new OrderByElement();
    o.setExpression(e);
    o.setAsc(!descending);
    o.setAscDescPresent(true);
    o.setNullOrdering(nullsFirst ? OrderByElement.NullOrdering.NULLS_FIRST
        : OrderByElement.NullOrdering.NULLS_LAST);
    return o;
  }

  // ---------------------------------------------------------------- aggregated queries

  /** GROUP BY, aggregates or HAVING: partial aggregates per shard group, combined by the merge. */
  private static final class Aggregated {
    private final Planner p;
    private final List<String> labels;
    private final Bound offset;
    private final Bound limit;
    private final List<SelectItem<?>> items;
    /** Group keys: the expression, and the select item it came from (-1 if none). */
    private final List<Expression> keys = new ArrayList<>();
    private final List<Integer> keyItems = new ArrayList<>();
    /** For a key named by an output alias: that name, kept in the shard GROUP BY so PostgreSQL resolves it. */
    private final List<Column> keyNames = new ArrayList<>();
    private final Map<String, Agg> aggs = new LinkedHashMap<>();
    private Expression distinctArg;
    private Expression distinctFilter;

    private record Agg(Kind kind, Expression arg, Expression filter, int index) {}

    Aggregated(Planner p, List<String> labels, Bound offset, Bound limit) {
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
        if (aggregateName(e) != null) {
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
              !o.isAsc(), nullsFirst(o)));
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
        Column byName = null;
        if (e instanceof LongValue v) {
          long pos = v.getValue();
          if (pos < 1 || pos > items.size()) {
            throw Sql.refuse("GROUP BY position " + v + " is not in the select list");
          }
          item = (int) pos - 1;
        } else {
          item = aliasItem(e, items);
          if (item >= 0) {
            byName = (Column) e;
          }
        }
        if (item >= 0) {
          Expression target = items.get(item).getExpression();
          if (target instanceof AllColumns || target instanceof AllTableColumns) {
            throw Sql.refuse("GROUP BY " + e + " names " + target + ", which is not one column");
          }
          if (aggregateName(target) != null || containsAggregate(target)) {
            throw Sql.refuse("aggregate functions are not allowed in GROUP BY: " + e + " is " + target);
          }
          if (byName != null && target instanceof Column tc
              && Sql.fold(tc.getColumnName()).equals(Sql.fold(byName.getColumnName()))) {
            byName = null;
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
          keyNames.add(byName);
        }
      }
    }

    private static boolean containsAggregate(Expression e) {
      boolean[] found = {false};
      ExprWalk.walk(e, "GROUP BY", (node, c) -> found[0] |= aggregateName(node) != null);
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
      String name = aggregateName(call);
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
        if (aggregateName(node) != null) {
          throw Sql.refuse("aggregate calls cannot be nested: " + call);
        }
      });
      if (filter != null) {
        ExprWalk.walk(filter, clause, (node, c) -> {
          if (aggregateName(node) != null) {
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
        item = aliasItem(e, items);
      }
      if (item >= 0) {
        return projection.get(item) >= 0 ? projection.get(item) : g + itemAggs.get(item);
      }
      if (aggregateName(e) != null) {
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
      if (aggregateName(e) != null) {
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
        int item = keyItems.get(k);
        Alias alias = item >= 0 && keyNames.get(k) != null ? items.get(item).getAlias() : null;
        shardItems.add(alias == null ? SelectItem.from(keys.get(k)) : SelectItem.from(keys.get(k), alias));
        groupBy.add(keyNames.get(k) != null ? keyNames.get(k) : new LongValue(k + 1));
      }
      Integer distinctColumn = null;
      if (distinctArg != null) {
        Expression d = distinctArg;
        if (distinctFilter != null) {
          // COUNT(DISTINCT x) FILTER (WHERE c) counts the distinct non-null values of CASE WHEN c THEN x END.
          d = new CaseExpression(new WhenClause(paren(distinctFilter), d));
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
      return new SelectPlan(p.sql, p.refs.get(0).lookedUp, p.keyRef(), p.params.size(), labels, template,
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
}
