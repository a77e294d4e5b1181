package io.shardmap.query.internal.merge;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;
import java.sql.SQLException;

/**
 * PostgreSQL's arithmetic where the merge must reproduce it exactly: numeric division's result scale
 * ({@code select_div_scale} of numeric.c), bigint overflow and float overflow errors.
 */
final class PgNumeric {
  private PgNumeric() {}

  /** numeric.c: at least this many significant digits in a quotient (no worse than float8). */
  static final int NUMERIC_MIN_SIG_DIGITS = 16;
  /** numeric.c: decimal digits per base-10000 digit of a NumericVar. */
  static final int DEC_DIGITS = 4;
  static final int NUMERIC_MIN_DISPLAY_SCALE = 0;
  static final int NUMERIC_MAX_DISPLAY_SCALE = 1000;

  /**
   * PostgreSQL's {@code numeric_div}: the quotient rounded half away from zero at the scale
   * {@code select_div_scale} chooses, which keeps that scale (trailing zeros included).
   *
   * @throws SQLException SQLSTATE 22012 "division by zero"
   */
  static BigDecimal divide(BigDecimal dividend, BigDecimal divisor) throws SQLException {
    if (divisor.signum() == 0) {
      throw new SQLException("division by zero", "22012");
    }
    return dividend.divide(divisor, selectDivScale(dividend, divisor), RoundingMode.HALF_UP);
  }

  /**
   * {@code select_div_scale}: estimate the quotient's weight (in base-10000 digits) from each operand's
   * weight and first base-10000 digit, assuming the dividend's first digit is the smaller when they are
   * equal; ask for {@link #NUMERIC_MIN_SIG_DIGITS} significant digits, but never fewer decimals than
   * either operand's display scale, and within the display scale limits.
   */
  static int selectDivScale(BigDecimal var1, BigDecimal var2) {
    int[] wd1 = weightAndFirstDigit(var1);
    int[] wd2 = weightAndFirstDigit(var2);
    int qweight = wd1[0] - wd2[0];
    if (wd1[1] <= wd2[1]) {
      qweight--;
    }
    int rscale = NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS;
    rscale = Math.max(rscale, dscale(var1));
    rscale = Math.max(rscale, dscale(var2));
    rscale = Math.max(rscale, NUMERIC_MIN_DISPLAY_SCALE);
    return Math.min(rscale, NUMERIC_MAX_DISPLAY_SCALE);
  }

  /** A numeric's display scale: its decimals, never negative (PostgreSQL has no negative dscale). */
  static int dscale(BigDecimal v) {
    return Math.max(0, v.scale());
  }

  /**
   * The weight of the first nonzero base-10000 digit of |v| (|v| = d * 10000^weight + lower digits, with
   * 1 <= d <= 9999) and that digit; {0, 0} for zero, as numeric.c's normalized NumericVar.
   */
  static int[] weightAndFirstDigit(BigDecimal v) {
    if (v.signum() == 0) {
      return new int[] {0, 0};
    }
    BigDecimal abs = v.abs();
    // floor(log10 |v|): the position of the leading decimal digit.
    int exponent10 = abs.precision() - abs.scale() - 1;
    int weight = Math.floorDiv(exponent10, DEC_DIGITS);
    BigInteger first = abs.movePointLeft(weight * DEC_DIGITS).setScale(0, RoundingMode.DOWN).toBigInteger();
    return new int[] {weight, first.intValueExact()};
  }

  static long addBigint(long a, long b) throws SQLException {
    try {
      return Math.addExact(a, b);
    } catch (ArithmeticException e) {
      throw new SQLException("bigint out of range", "22003");
    }
  }

  static long subtractBigint(long a, long b) throws SQLException {
    try {
      return Math.subtractExact(a, b);
    } catch (ArithmeticException e) {
      throw new SQLException("bigint out of range", "22003");
    }
  }

  static long multiplyBigint(long a, long b) throws SQLException {
    try {
      return Math.multiplyExact(a, b);
    } catch (ArithmeticException e) {
      throw new SQLException("bigint out of range", "22003");
    }
  }

  /** float8pl: an infinite sum of finite operands is an overflow error, as PostgreSQL's float8 addition. */
  static double addFloat8(double a, double b) throws SQLException {
    double r = a + b;
    if (Double.isInfinite(r) && !Double.isInfinite(a) && !Double.isInfinite(b)) {
      throw new SQLException("value out of range: overflow", "22003");
    }
    return r;
  }

  /** float4pl, likewise in single precision. */
  static float addFloat4(float a, float b) throws SQLException {
    float r = a + b;
    if (Float.isInfinite(r) && !Float.isInfinite(a) && !Float.isInfinite(b)) {
      throw new SQLException("value out of range: overflow", "22003");
    }
    return r;
  }

  /**
   * Adds numeric values, where PgJDBC gives the special values NaN and +-Infinity as Doubles: NaN absorbs
   * everything, Infinity + -Infinity is NaN, as numeric_add.
   */
  static Number addNumeric(Number a, Number b) {
    boolean specialA = a instanceof Double || a instanceof Float;
    boolean specialB = b instanceof Double || b instanceof Float;
    if (specialA || specialB) {
      double da = specialA ? a.doubleValue() : 0;
      double db = specialB ? b.doubleValue() : 0;
      return da + db;
    }
    return PgValues.toBigDecimal(a).add(PgValues.toBigDecimal(b));
  }
}
