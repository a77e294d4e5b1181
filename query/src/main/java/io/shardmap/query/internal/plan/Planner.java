package io.shardmap.query.internal.plan;

import io.shardmap.query.QueryPlan;
import io.shardmap.query.QueryPlanner;
import io.shardmap.query.internal.merge.MergeSpec;
import io.shardmap.query.internal.merge.MergeSpec.Aggregate.Kind;
import io.shardmap.query.internal.merge.MergeSpec.Bound;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
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
import net.sf.jsqlparser.expression.Expression;
import net.sf.jsqlparser.expression.Function;
import net.sf.jsqlparser.expression.JdbcParameter;
import net.sf.jsqlparser.expression.LongValue;
import net.sf.jsqlparser.expression.NullValue;
import net.sf.jsqlparser.expression.Parenthesis;
import net.sf.jsqlparser.expression.operators.conditional.AndExpression;
import net.sf.jsqlparser.expression.operators.relational.EqualsTo;
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

  final String sql;
  final PlainSelect ps;
  private final QueryPlanner.ShardedTables tables;
  final String salt;
  final List<TableRef> refs = new ArrayList<>();
  final List<JdbcParameter> params = new ArrayList<>();
  private boolean hasAggregate;
  /** Planning a statement every shard runs as written, under the caller's {@link io.shardmap.query.Merge}. */
  private boolean perShard;

  /** A table of the statement; {@code key} is null for a reference table. */
  record TableRef(String name, String schema, String alias, String key, String lookedUp) {
    boolean reference() {
      return key == null;
    }
  }

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

  /**
   * Plans {@code sql} to run on every shard as written, with only the ownership predicate added, and its rows
   * combined by {@code merge} (see {@link io.shardmap.query.Merge} for what stays checked).
   */
  public static QueryPlan plan(String sql, QueryPlanner.ShardedTables tables, io.shardmap.query.Merge merge) {
    Objects.requireNonNull(tables, "tables");
    Objects.requireNonNull(merge, "merge");
    if (sql == null || sql.isBlank()) {
      throw Sql.refuse("must be one SELECT statement, got an empty one");
    }
    Planner p = new Planner(sql, parse(sql), tables);
    p.perShard = true;
    return p.buildExplicit(merge);
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
      throw Sql.refuse("WITH (common table expressions) cannot be planned across shards: the ownership"
          + " predicate would not reach the rows of its queries, so rows being moved could count twice");
    }
    if (ps.getForMode() != null || ps.getForUpdateTable() != null || ps.getForClause() != null
        || ps.getWait() != null || ps.isSkipLocked() || ps.isNoWait()) {
      throw Sql.refuse("FOR UPDATE/SHARE cannot run across shards: row locks belong in a transaction on"
          + " the shard that owns the key");
    }
    if (ps.getIntoTables() != null || ps.getIntoTempTable() != null) {
      throw Sql.refuse("SELECT INTO creates a table; only a query can run across shards");
    }
    if (perShard) {
      checkPostgresClauses();
      return;
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
    checkPostgresClauses();
  }

  /** Clauses JSqlParser reads that are not PostgreSQL (or not a read): refused even in a statement run as written. */
  private void checkPostgresClauses() {
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
    if (first.reference()) {
      throw Sql.refuse("reference table " + first.lookedUp + " cannot be the FROM of a cross-shard query: every"
          + " shard holds all of its rows, so they would come once per shard. Read it on any one shard, or"
          + " join it to a sharded table (FROM <sharded> JOIN " + first.lookedUp + " ON ...)");
    }
    refs.add(first);
    if (ps.getJoins() == null) {
      return;
    }
    for (Join j : ps.getJoins()) {
      TableRef right = tableRef(j.getFromItem(), "JOIN");
      if (right.reference()) {
        // Exact when the reference table is never the preserved side: each row is made on the shard of
        // its sharded row. A NATURAL join's condition depends on column names: refused, write ON/USING.
        if (j.isRight() || j.isFull() || j.isNatural() || j.isSemi() || j.isApply() || j.isStraight()
            || j.isGlobal() || j.isWindowJoin()) {
          throw Sql.refuse("a reference table can be joined by INNER, LEFT, CROSS or comma join only (a RIGHT"
              + " or FULL join would return its unmatched rows once per shard; NATURAL: write ON or USING): " + j);
        }
        refs.add(right);
        continue;
      }
      if (j.isSimple()) {
        throw Sql.refuse("comma joins are not planned: write INNER JOIN " + j.getFromItem()
            + " ON <a>.<key> = <b>.<key> so that the shard keys are equated");
      }
      if (j.isOuter() || j.isLeft() || j.isRight() || j.isFull() || j.isNatural() || j.isCross()
          || j.isSemi() || j.isApply() || j.isStraight() || j.isGlobal() || j.isWindowJoin()) {
        throw Sql.refuse("only INNER JOIN on the shard keys can run across shards (an outer, cross or"
            + " natural join is not): " + j);
      }
      if (!equatesKeys(j, right)) {
        throw Sql.refuse("a join of sharded tables must equate their shard keys (" + right.key + " of "
            + right.name + " with the key of a table before it) in its ON: " + j);
      }
      refs.add(right);
    }
  }

  private TableRef tableRef(FromItem item, String clause) {
    if (item == null) {
      throw Sql.refuse("a SELECT without FROM reads no sharded table; run it on any one database");
    }
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
    boolean reference = false;
    if (key.isEmpty()) {
      lookedUp = schema == null ? name : schema + "." + name;
      reference = tables.isReference(lookedUp);
      if (!reference) {
        throw Sql.refuse("table " + lookedUp + " (in " + clause + ") is not sharded in this keyspace"
            + " (nor one of its reference tables)");
      }
    }
    Alias alias = t.getAlias();
    if (alias != null && alias.getAliasColumns() != null && !alias.getAliasColumns().isEmpty()) {
      throw Sql.refuse("column aliases on a table (" + t + ") are not supported");
    }
    return new TableRef(name, schema, alias == null ? null : Sql.fold(alias.getName()), key.orElse(null), lookedUp);
  }

  private boolean equatesKeys(Join j, TableRef right) {
    if (j.getUsingColumns() != null && !j.getUsingColumns().isEmpty()) {
      for (Column c : j.getUsingColumns()) {
        String name = Sql.fold(c.getColumnName());
        if (name.equals(right.key) && refs.stream().anyMatch(r -> name.equals(r.key))) {
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

  String keyRef() {
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
    Distinct d = ps.getDistinct();
    if (perShard && d != null && d.getOnSelectItems() != null) {
      for (SelectItem<?> item : d.getOnSelectItems()) {
        walk(item.getExpression(), "DISTINCT ON");
      }
    }
  }

  private void walk(Expression e, String clause) {
    ExprWalk.walk(e, clause, (node, where) -> {
      if (perShard && !(node instanceof JdbcParameter)
          && !(node instanceof net.sf.jsqlparser.expression.operators.relational.JsonOperator)) {
        return; // the shards compute every aggregate and window of the statement; the caller's merge combines
      }
      if (node instanceof JdbcParameter p) {
        if (p.isUseFixedIndex()) {
          throw Sql.refuse("numbered placeholders such as " + p + " are not supported (in " + where
              + "): use ? placeholders");
        }
        params.add(p);
      }
      if (node instanceof net.sf.jsqlparser.expression.operators.relational.JsonOperator j
          && j.getStringExpression().contains("?")) {
        // JDBC reads ? as a placeholder and ?? as the operator; the parser reads them the other way round,
        // so the statement's placeholders could not be counted right.
        throw Sql.refuse("the jsonb operators ?, ?| and ?& (in " + where + ") cannot be planned: write"
            + " jsonb_exists, jsonb_exists_any or jsonb_exists_all instead");
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
    }, perShard);
  }

  /** The lower-case name of an aggregate call (a mergeable one or another known aggregate), else null. */
  static String aggregateName(Expression e) {
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
    List<String> labels = labels();
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
      return new AggregatePlan(this, labels, offset, limit).plan();
    }
    return planPlain(labels, offset, limit);
  }

  /** The statement as written plus the ownership predicate, and the caller's merge resolved to columns. */
  private QueryPlan buildExplicit(io.shardmap.query.Merge merge) {
    checkClauses();
    resolveTables();
    walkAll();
    markParams();
    List<String> labels = labels();
    int width = labels.contains("*") ? -1 : labels.size();
    Expression where = ps.getWhere();
    Expression owned = new Column(salt + ShardTemplate.OWNED);
    ps.setWhere(where == null ? paren(owned) : new AndExpression(paren(where), paren(owned)));
    ShardTemplate template = ShardTemplate.cut(ps.toString(), salt);
    Bound offset = merge.offset() == 0 ? Bound.NONE : Bound.of(merge.offset());
    Bound limit = merge.limit() < 0 ? Bound.NONE : Bound.of(merge.limit());
    String table = refs.get(0).lookedUp;
    switch (merge.kind()) {
      case CONCAT, ORDERED -> {
        List<MergeSpec.SortKey> order = new ArrayList<>();
        for (io.shardmap.query.Merge.Key k : merge.order()) {
          order.add(new MergeSpec.SortKey(column(k.column(), labels), k.descending(), k.nullsGoFirst()));
        }
        return new SelectPlan(sql, table, keyRef(), params.size(), labels, template, offset, limit, 0, width,
            order, SelectPlan.Kind.PLAIN, null, List.of(), null, merge);
      }
      default -> {
        if (width < 0) {
          throw ExplicitMerge.refuse("a grouped merge needs every column of the statement named: write its "
              + "select list without *");
        }
        // The group row is [group columns..., combined columns...]; the answer keeps the statement's shape.
        Integer[] at = new Integer[width];
        List<Integer> groupColumns = new ArrayList<>();
        for (io.shardmap.query.Merge.Column c : merge.groups()) {
          int i = column(c, labels);
          if (at[i] != null) {
            throw ExplicitMerge.refuse("column " + c + " is grouped twice");
          }
          at[i] = groupColumns.size();
          groupColumns.add(i);
        }
        List<MergeSpec.Aggregate> aggregates = new ArrayList<>();
        for (io.shardmap.query.Merge.Aggregate a : merge.aggregates()) {
          int i = column(a.column(), labels);
          if (at[i] != null) {
            throw ExplicitMerge.refuse("column " + a.column() + " is " + (groupColumns.contains(i) ? "grouped" : "combined")
                + " already; each column is grouped or combined once");
          }
          at[i] = groupColumns.size() + aggregates.size();
          Kind kind = switch (a.function()) {
            case SUM -> Kind.SUM;
            case COUNT -> Kind.COUNT;
            case MIN -> Kind.MIN;
            case MAX -> Kind.MAX;
          };
          aggregates.add(new MergeSpec.Aggregate(kind, i, -1));
        }
        List<Integer> projection = new ArrayList<>();
        for (int i = 0; i < width; i++) {
          if (at[i] == null) {
            throw ExplicitMerge.refuse("column " + (i + 1) + " (" + labels.get(i) + ") is neither grouped nor "
                + "combined: name it in groupedBy(...) or with sum, count, min or max");
          }
          projection.add(at[i]);
        }
        List<MergeSpec.SortKey> finalOrder = new ArrayList<>();
        for (io.shardmap.query.Merge.Key k : merge.order()) {
          finalOrder.add(new MergeSpec.SortKey(projection.get(column(k.column(), labels)), k.descending(),
              k.nullsGoFirst()));
        }
        return new SelectPlan(sql, table, keyRef(), params.size(), labels, template, offset, limit, 0, width,
            List.of(), SelectPlan.Kind.AGGREGATED, new MergeSpec.Aggregation(groupColumns, aggregates, null, null),
            finalOrder, projection, merge);
      }
    }
  }

  /** The 0-based shard column {@code c} names (a label of the select list, or a position within it). */
  private static int column(io.shardmap.query.Merge.Column c, List<String> labels) {
    if (c.label() == null) {
      if (!labels.contains("*") && c.position() > labels.size()) {
        throw ExplicitMerge.refuse("column position " + c.position() + " is past the statement's " + labels.size()
            + " columns");
      }
      return c.position() - 1;
    }
    if (labels.contains("*")) {
      throw ExplicitMerge.refuse("column '" + c.label() + "': the statement selects *, so name its columns by "
          + "position (Merge.column(n), Merge.asc(n))");
    }
    int found = -1;
    for (int i = 0; i < labels.size(); i++) {
      if (labels.get(i).equals(c.label())) {
        if (found >= 0) {
          throw ExplicitMerge.refuse("column label '" + c.label() + "' is ambiguous (columns " + (found + 1)
              + " and " + (i + 1) + "): name it by position or give the columns distinct aliases");
        }
        found = i;
      }
    }
    if (found < 0) {
      throw ExplicitMerge.refuse("the statement has no column labelled '" + c.label() + "' (its labels: " + labels
          + ")");
    }
    return found;
  }

  /** The select list's labels, as PostgreSQL labels them; {@code *} for a {@code *} or {@code t.*} item. */
  private List<String> labels() {
    List<String> labels = new ArrayList<>();
    for (SelectItem<?> item : ps.getSelectItems()) {
      Expression e = item.getExpression();
      labels.add(e instanceof AllColumns || e instanceof AllTableColumns ? "*" : Labels.label(item));
    }
    return labels;
  }

  static Expression paren(Expression e) {
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
        int alias = outputNameItem(e, items);
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
    int alias = outputNameItem(e, items);
    if (alias >= 0) {
      return knownPosition(items, alias);
    }
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

  /**
   * The select item an ORDER BY bare name refers to, or -1. As PostgreSQL's findTargetlistEntrySQL92 for
   * ORDER BY: an output column's name (its alias, or the name FigureColname gives it, so ORDER BY v after
   * SELECT v::text sorts the text) wins over an input column. With a {@code *} in the select list the
   * names of its columns are unknown here, so a name that could collide with one of them differently is
   * refused.
   */
  int outputNameItem(Expression e, List<SelectItem<?>> items) {
    if (!(e instanceof Column c) || c.getTable() != null && c.getTable().getName() != null) {
      return -1;
    }
    String name = Sql.fold(c.getColumnName());
    int found = -1;
    boolean star = false;
    for (int i = 0; i < items.size(); i++) {
      Expression x = items.get(i).getExpression();
      if (x instanceof AllColumns || x instanceof AllTableColumns) {
        star = true;
        continue;
      }
      if (Labels.label(items.get(i)).equals(name)) {
        if (found >= 0 && !sameExpression(items.get(found).getExpression(), x)) {
          throw Sql.refuse("ORDER BY " + c + " is ambiguous: several output columns are named " + name);
        }
        if (found < 0) {
          found = i;
        }
      }
    }
    if (found >= 0 && star && !(items.get(found).getExpression() instanceof Column col
        && Sql.fold(col.getColumnName()).equals(name) && items.get(found).getAlias() == null)) {
      throw Sql.refuse("ORDER BY " + c + " may be ambiguous with a column of * in the select list: order by"
          + " the position or the expression");
    }
    return found;
  }

  /** The select item whose explicit alias a bare name is, or -1. */
  static int aliasItem(Expression e, List<SelectItem<?>> items) {
    if (!(e instanceof Column c) || c.getTable() != null && c.getTable().getName() != null) {
      return -1;
    }
    String name = Sql.fold(c.getColumnName());
    int found = -1;
    for (int i = 0; i < items.size(); i++) {
      Alias a = items.get(i).getAlias();
      if (a != null && Sql.fold(a.getName()).equals(name)) {
        if (found >= 0) {
          throw Sql.refuse("GROUP BY " + c + " is ambiguous: several output columns have that name");
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
}
