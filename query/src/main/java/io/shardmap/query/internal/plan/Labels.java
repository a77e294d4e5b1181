package io.shardmap.query.internal.plan;

import java.util.List;
import java.util.Map;
import net.sf.jsqlparser.expression.AnalyticExpression;
import net.sf.jsqlparser.expression.ArrayConstructor;
import net.sf.jsqlparser.expression.BooleanValue;
import net.sf.jsqlparser.expression.CaseExpression;
import net.sf.jsqlparser.expression.CastExpression;
import net.sf.jsqlparser.expression.CollateExpression;
import net.sf.jsqlparser.expression.Expression;
import net.sf.jsqlparser.expression.ExtractExpression;
import net.sf.jsqlparser.expression.Function;
import net.sf.jsqlparser.expression.RowConstructor;
import net.sf.jsqlparser.expression.TimeKeyExpression;
import net.sf.jsqlparser.expression.TrimFunction;
import net.sf.jsqlparser.schema.Column;
import net.sf.jsqlparser.statement.select.SelectItem;

/**
 * Output column labels as PostgreSQL's {@code FigureColname} gives them (parser/parse_target.c): the alias;
 * else a column reference's column name, a function call's name, a cast's inner name or else its type's
 * name, a CASE's ELSE result's name or else {@code case}; {@code ?column?} when nothing names the column.
 * Each rule has a strength as in PostgreSQL: 2 for a real name, 1 for a fallback (cast type, {@code case}),
 * 0 for none, so a cast of a column keeps the column's name and a cast of a constant takes its type's name.
 */
final class Labels {
  private Labels() {}

  /** The names PostgreSQL's grammar gives SQL-standard type spellings (what {@code typeName} ends with). */
  private static final Map<String, String> TYPE_NAMES = Map.ofEntries(
      Map.entry("int", "int4"), Map.entry("integer", "int4"), Map.entry("smallint", "int2"),
      Map.entry("bigint", "int8"), Map.entry("real", "float4"), Map.entry("float", "float8"),
      Map.entry("double precision", "float8"), Map.entry("decimal", "numeric"), Map.entry("dec", "numeric"),
      Map.entry("boolean", "bool"), Map.entry("char", "bpchar"), Map.entry("character", "bpchar"),
      Map.entry("varchar", "varchar"), Map.entry("character varying", "varchar"),
      Map.entry("char varying", "varchar"), Map.entry("timestamp", "timestamp"),
      Map.entry("timestamp without time zone", "timestamp"),
      Map.entry("timestamp with time zone", "timestamptz"), Map.entry("time", "time"),
      Map.entry("time without time zone", "time"), Map.entry("time with time zone", "timetz"),
      Map.entry("bit varying", "varbit"), Map.entry("national character", "bpchar"),
      Map.entry("nchar", "bpchar"));

  static String label(SelectItem<?> item) {
    if (item.getAlias() != null) {
      return Sql.fold(item.getAlias().getName());
    }
    String[] name = {"?column?"};
    figure(item.getExpression(), name);
    return name[0];
  }

  /** PostgreSQL's FigureColnameInternal: sets name[0] when it finds one and returns its strength. */
  private static int figure(Expression e, String[] name) {
    if (e instanceof Column c) {
      String col = c.getColumnName();
      if (c.getTable() == null && ("true".equalsIgnoreCase(col) || "false".equalsIgnoreCase(col))) {
        name[0] = "bool";
        return 1;
      }
      name[0] = Sql.fold(col);
      return 2;
    }
    if (e instanceof BooleanValue) {
      // PostgreSQL's grammar makes TRUE/FALSE a cast of a string to bool.
      name[0] = "bool";
      return 1;
    }
    if (e instanceof Function f) {
      List<String> parts = f.getMultipartName();
      name[0] = Sql.fold(parts.get(parts.size() - 1));
      return 2;
    }
    if (e instanceof AnalyticExpression a) {
      name[0] = Sql.fold(a.getName());
      return 2;
    }
    if (e instanceof CastExpression c) {
      int strength = figure(c.getLeftExpression(), name);
      if (strength <= 1 && c.getColDataType() != null) {
        String type = c.getColDataType().getDataType().trim();
        String folded = Sql.fold(type);
        int dot = folded.lastIndexOf('.');
        folded = dot >= 0 ? folded.substring(dot + 1) : folded;
        name[0] = TYPE_NAMES.getOrDefault(folded.replaceAll("\\s+", " "), folded);
        return 1;
      }
      return strength;
    }
    if (e instanceof CollateExpression c) {
      return figure(c.getLeftExpression(), name);
    }
    if (e instanceof CaseExpression c) {
      int strength = c.getElseExpression() == null ? 0 : figure(c.getElseExpression(), name);
      if (strength <= 1) {
        name[0] = "case";
        return 1;
      }
      return strength;
    }
    if (e instanceof ArrayConstructor) {
      name[0] = "array";
      return 2;
    }
    if (e instanceof RowConstructor<?>) {
      name[0] = "row";
      return 2;
    }
    if (e instanceof ExtractExpression) {
      name[0] = "extract";
      return 2;
    }
    if (e instanceof TimeKeyExpression t) {
      name[0] = Sql.fold(t.getStringValue().trim());
      return 2;
    }
    if (e instanceof TrimFunction t) {
      TrimFunction.TrimSpecification spec = t.getTrimSpecification();
      name[0] = spec == TrimFunction.TrimSpecification.LEADING ? "ltrim"
          : spec == TrimFunction.TrimSpecification.TRAILING ? "rtrim" : "btrim";
      return 2;
    }
    return 0;
  }
}
