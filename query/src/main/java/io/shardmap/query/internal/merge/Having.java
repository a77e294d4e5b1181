package io.shardmap.query.internal.merge;

import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.RowSource;
import io.shardmap.query.internal.merge.MergeSpec.Expr;
import java.math.BigDecimal;
import java.sql.SQLException;
import java.util.Comparator;
import java.util.List;

/**
 * HAVING over group rows, with SQL's semantics: three-valued logic (a row passes only when the condition
 * is true, not null), NULL propagating through comparisons and arithmetic, numbers compared and computed
 * across integer, numeric and double by PostgreSQL's promotion (integer with integer stays bigint with
 * overflow and truncating division; with numeric, exact numeric with numeric division's scale; with a
 * double, double), text in the column's collation.
 */
final class Having implements RowSource {
  private final RowSource input;
  private final Expr condition;
  private final List<ColumnType> types;
  private final List<Object> params;

  /** @param types the type of each group-row column */
  Having(RowSource input, Expr condition, List<ColumnType> types, List<Object> params) {
    this.input = input;
    this.condition = condition;
    this.types = types;
    this.params = params;
  }

  @Override
  public Object[] next() throws SQLException {
    Object[] row;
    while ((row = input.next()) != null) {
      Object v = eval(condition, row);
      if (v != null && !(v instanceof Boolean)) {
        throw ShardmapException.invalid("HAVING", "the condition gives a " + v.getClass().getSimpleName()
            + ", not a boolean");
      }
      if (Boolean.TRUE.equals(v)) {
        return row;
      }
    }
    return null;
  }

  Object eval(Expr e, Object[] row) throws SQLException {
    if (e instanceof Expr.Column c) {
      return row[c.index()];
    }
    if (e instanceof Expr.Literal l) {
      return l.value();
    }
    if (e instanceof Expr.Param p) {
      if (p.index() < 0 || p.index() >= params.size()) {
        throw ShardmapException.invalid("params", "HAVING uses parameter " + (p.index() + 1) + " but "
            + params.size() + " were given");
      }
      return params.get(p.index());
    }
    if (e instanceof Expr.IsNull n) {
      return (eval(n.operand(), row) == null) != n.negated();
    }
    if (e instanceof Expr.Not n) {
      Object v = eval(n.operand(), row);
      return v == null ? null : !bool(v);
    }
    if (e instanceof Expr.And a) {
      Object l = eval(a.left(), row);
      if (l != null && !bool(l)) {
        return false;
      }
      Object r = eval(a.right(), row);
      if (r != null && !bool(r)) {
        return false;
      }
      return l == null || r == null ? null : true;
    }
    if (e instanceof Expr.Or o) {
      Object l = eval(o.left(), row);
      if (l != null && bool(l)) {
        return true;
      }
      Object r = eval(o.right(), row);
      if (r != null && bool(r)) {
        return true;
      }
      return l == null || r == null ? null : false;
    }
    if (e instanceof Expr.Compare c) {
      Object l = eval(c.left(), row);
      Object r = eval(c.right(), row);
      if (l == null || r == null) {
        return null;
      }
      return compare(c, l, r);
    }
    if (e instanceof Expr.Arithmetic a) {
      Object l = eval(a.left(), row);
      Object r = eval(a.right(), row);
      if (l == null || r == null) {
        return null;
      }
      if (!(l instanceof Number) || !(r instanceof Number)) {
        throw ShardmapException.invalid("HAVING", "arithmetic " + a.op() + " on a "
            + (l instanceof Number ? r : l).getClass().getSimpleName() + ", not a number");
      }
      return arithmetic(a.op(), (Number) l, (Number) r);
    }
    throw new IllegalStateException("unknown HAVING expression " + e);
  }

  private static boolean bool(Object v) {
    if (v instanceof Boolean b) {
      return b;
    }
    throw ShardmapException.invalid("HAVING", "AND/OR/NOT of a " + v.getClass().getSimpleName()
        + ", not a boolean");
  }

  private boolean compare(Expr.Compare c, Object l, Object r) {
    int cmp;
    boolean equalityOnly = c.op() == Expr.CompareOp.EQ || c.op() == Expr.CompareOp.NE;
    if (l instanceof Number a && r instanceof Number b) {
      boolean floating = a instanceof Double || a instanceof Float || b instanceof Double
          || b instanceof Float;
      // PostgreSQL compares a numeric with a float8 as float8 (the implicit cast goes that way).
      cmp = floating ? PgValues.compareNumbers(a.doubleValue(), b.doubleValue())
          : PgValues.compareNumbers(a, b);
    } else if (l instanceof String a && r instanceof String b) {
      ColumnType type = typeOf(c.left()) != null ? typeOf(c.left()) : typeOf(c.right());
      ColumnType.Collation coll = type == null ? null : type.collation();
      if (coll == null) {
        cmp = PgValues.compareCodePoints(a, b);
      } else if (equalityOnly && coll.deterministic()) {
        // Equality in a deterministic collation is byte equality, whatever its provider.
        String t = PgValues.pgType(type);
        boolean padded = t.equals("bpchar") || t.equals("character");
        cmp = padded ? PgValues.stripTrailingSpaces(a).equals(PgValues.stripTrailingSpaces(b)) ? 0 : 1
            : a.equals(b) ? 0 : 1;
      } else {
        cmp = PgValues.order(type, "a text operand", "HAVING").compare(a, b);
      }
    } else if (l instanceof Boolean a && r instanceof Boolean b) {
      cmp = Boolean.compare(a, b);
    } else if (l.getClass() == r.getClass()) {
      ColumnType type = typeOf(c.left()) != null ? typeOf(c.left()) : typeOf(c.right());
      if (type == null) {
        throw ShardmapException.invalid("HAVING", "comparison of two " + l.getClass().getSimpleName()
            + " values that come from no column, whose type is unknown");
      }
      Comparator<Object> order = PgValues.order(type, "a " + PgValues.pgType(type) + " operand", "HAVING");
      cmp = order.compare(l, r);
    } else {
      throw ShardmapException.invalid("HAVING", "cannot compare a " + l.getClass().getSimpleName()
          + " with a " + r.getClass().getSimpleName());
    }
    switch (c.op()) {
      case EQ:
        return cmp == 0;
      case NE:
        return cmp != 0;
      case LT:
        return cmp < 0;
      case LE:
        return cmp <= 0;
      case GT:
        return cmp > 0;
      case GE:
        return cmp >= 0;
      default:
        throw new IllegalStateException("unknown comparison " + c.op());
    }
  }

  private ColumnType typeOf(Expr e) {
    return e instanceof Expr.Column c && c.index() < types.size() ? types.get(c.index()) : null;
  }

  static Number arithmetic(Expr.ArithmeticOp op, Number l, Number r) throws SQLException {
    boolean floating = l instanceof Double || l instanceof Float || r instanceof Double
        || r instanceof Float;
    if (floating) {
      double a = l.doubleValue();
      double b = r.doubleValue();
      double v;
      switch (op) {
        case ADD:
          v = a + b;
          break;
        case SUBTRACT:
          v = a - b;
          break;
        case MULTIPLY:
          v = a * b;
          break;
        default:
          if (b == 0) {
            throw new SQLException("division by zero", "22012");
          }
          v = a / b;
      }
      if (Double.isInfinite(v) && !Double.isInfinite(a) && !Double.isInfinite(b)) {
        throw new SQLException("value out of range: overflow", "22003");
      }
      return v;
    }
    boolean integral = PgValues.isIntegral(l) && PgValues.isIntegral(r)
        && !(l instanceof java.math.BigInteger) && !(r instanceof java.math.BigInteger);
    if (integral) {
      long a = l.longValue();
      long b = r.longValue();
      switch (op) {
        case ADD:
          return PgNumeric.addBigint(a, b);
        case SUBTRACT:
          return PgNumeric.subtractBigint(a, b);
        case MULTIPLY:
          return PgNumeric.multiplyBigint(a, b);
        default:
          if (b == 0) {
            throw new SQLException("division by zero", "22012");
          }
          if (a == Long.MIN_VALUE && b == -1) {
            throw new SQLException("bigint out of range", "22003");
          }
          return a / b;
      }
    }
    BigDecimal a = PgValues.toBigDecimal(l);
    BigDecimal b = PgValues.toBigDecimal(r);
    switch (op) {
      case ADD:
        return a.add(b);
      case SUBTRACT:
        return a.subtract(b);
      case MULTIPLY:
        return a.multiply(b);
      default:
        return PgNumeric.divide(a, b);
    }
  }

  @Override
  public void close() {
    input.close();
  }
}
