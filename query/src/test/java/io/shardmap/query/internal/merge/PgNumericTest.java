package io.shardmap.query.internal.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.sql.SQLException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Expected values are what PostgreSQL 15 answers for the same division (psql, numeric). */
@Tag("unit")
class PgNumericTest {
  private static BigDecimal div(String a, String b) throws SQLException {
    return PgNumeric.divide(new BigDecimal(a), new BigDecimal(b));
  }

  @Test
  void quotientsHavePostgresScale() throws SQLException {
    assertEquals(new BigDecimal("1.5000000000000000"), div("3", "2")); // avg of 1 and 2
    assertEquals(new BigDecimal("0.33333333333333333333"), div("1", "3"));
    assertEquals(new BigDecimal("3.3333333333333333"), div("10", "3"));
    assertEquals(new BigDecimal("-0.66666666666666666667"), div("-2", "3")); // half away from zero
    assertEquals(new BigDecimal("33333.333333333333"), div("100000", "3"));
    assertEquals(new BigDecimal("1.23456789012345678900"), div("1.23456789012345678900", "1"));
    assertEquals(new BigDecimal("5.0000000000000000"), div("10.00", "2"));
    assertEquals(new BigDecimal("0.00000000000000000000"), div("0", "7")); // zero: weight 0, first digit 0
    assertEquals(new BigDecimal("0.00000000000000000000"), div("0.00000000000000000000", "7"));
  }

  @Test
  void weightAndFirstDigitAreBase10000() {
    assertArrayEquals(new int[] {1, 1}, PgNumeric.weightAndFirstDigit(new BigDecimal("12345.678")));
    assertArrayEquals(new int[] {0, 9999}, PgNumeric.weightAndFirstDigit(new BigDecimal("9999")));
    assertArrayEquals(new int[] {1, 1}, PgNumeric.weightAndFirstDigit(new BigDecimal("10000")));
    assertArrayEquals(new int[] {-1, 5000}, PgNumeric.weightAndFirstDigit(new BigDecimal("-0.5")));
    assertArrayEquals(new int[] {-1, 1}, PgNumeric.weightAndFirstDigit(new BigDecimal("0.00012")));
    assertArrayEquals(new int[] {-2, 1200}, PgNumeric.weightAndFirstDigit(new BigDecimal("0.000012")));
    assertArrayEquals(new int[] {0, 0}, PgNumeric.weightAndFirstDigit(new BigDecimal("0.000")));
    assertArrayEquals(new int[] {2, 1}, PgNumeric.weightAndFirstDigit(new BigDecimal("1E+8")));
  }

  @Test
  void overflowAndDivisionByZeroAreSqlErrorsWithPostgresStates() throws SQLException {
    SQLException e = assertThrows(SQLException.class, () -> PgNumeric.addBigint(Long.MAX_VALUE, 1));
    assertEquals("22003", e.getSQLState());
    assertEquals("bigint out of range", e.getMessage());
    assertEquals("22012", assertThrows(SQLException.class, () -> div("1", "0")).getSQLState());
    assertEquals("22003", assertThrows(SQLException.class,
        () -> PgNumeric.addFloat8(Double.MAX_VALUE, Double.MAX_VALUE)).getSQLState());
    assertEquals(Double.POSITIVE_INFINITY, PgNumeric.addFloat8(Double.POSITIVE_INFINITY, 1), 0);
    assertEquals(Double.NaN, PgNumeric.addNumeric(Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY));
    assertEquals(Double.NaN, PgNumeric.addNumeric(new BigDecimal("1.5"), Double.NaN));
    assertEquals(new BigDecimal("2.75"), PgNumeric.addNumeric(new BigDecimal("1.5"), new BigDecimal("1.25")));
  }
}
