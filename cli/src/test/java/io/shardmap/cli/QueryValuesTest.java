package io.shardmap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.shardmap.client.ShardKey;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.proto.v1.KeyType;
import java.math.BigDecimal;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** How {@code query} reads --param values and keys, quotes a table, and prints values as text and JSON. */
@Tag("unit")
class QueryValuesTest {
  @Test
  void paramsAreIntegersThenDecimalsThenText() {
    assertEquals(42L, QueryCommands.param("42"));
    assertEquals(-7L, QueryCommands.param("-7"));
    assertEquals(Long.MIN_VALUE, QueryCommands.param("-9223372036854775808"));
    assertEquals(new BigDecimal("9223372036854775808"), QueryCommands.param("9223372036854775808"));
    assertEquals(new BigDecimal("1.50"), QueryCommands.param("1.50"));
    assertEquals(new BigDecimal("2e3"), QueryCommands.param("2e3"));
    assertEquals(new BigDecimal(".5"), QueryCommands.param(".5"));
    for (String text : new String[] {"abc", "1.2.3", "0x10", "", " 1", "1e", "2024-01-01", "NaN"}) {
      assertEquals(text, QueryCommands.param(text), text);
    }
  }

  @Test
  void keysAreTheKeyspacesKind() {
    byte[] int64 = KeyRange.parseKey(KeyType.KEY_TYPE_INT64, "-5", "k");
    assertEquals(ShardKey.of(-5), QueryCommands.key(KeyType.KEY_TYPE_INT64, int64));
    byte[] bytes = KeyRange.parseKey(KeyType.KEY_TYPE_BYTES, "acme", "k");
    assertEquals(ShardKey.of("acme"), QueryCommands.key(KeyType.KEY_TYPE_BYTES, bytes));
  }

  @Test
  void sqlStatesAreClassifiedAsTheSdkDoes() {
    assertEquals(ErrorCode.DEADLINE_EXCEEDED, QueryCommands.codeOf("57014"));
    assertEquals(ErrorCode.UNAVAILABLE, QueryCommands.codeOf("08006"));
    assertEquals(ErrorCode.UNAVAILABLE, QueryCommands.codeOf("57P01"));
    assertEquals(ErrorCode.INVALID_ARGUMENT, QueryCommands.codeOf("42501"));
    assertEquals(ErrorCode.INVALID_ARGUMENT, QueryCommands.codeOf("22012"));
    assertEquals(ErrorCode.FAILED_PRECONDITION, QueryCommands.codeOf("XX000"));
    assertEquals(ErrorCode.FAILED_PRECONDITION, QueryCommands.codeOf(null));
  }

  @Test
  void tablesAreQuotedIdentifiers() {
    assertEquals("\"users\"", QueryCommands.identifier("users"));
    assertEquals("\"a\"\"b\"", QueryCommands.identifier("a\"b"));
  }

  @Test
  void textCellsAreOneLine() {
    assertEquals("NULL", QueryCommands.cell(null));
    assertEquals("\\x00ff", QueryCommands.cell(new byte[] {0, (byte) 0xff}));
    assertEquals("1000", QueryCommands.cell(new BigDecimal("1E+3")));
    assertEquals("a\\nb\\tc\\\\", QueryCommands.cell("a\nb\tc\\"));
  }

  @Test
  void jsonValues() {
    assertEquals("null", QueryCommands.Json.value(null));
    assertEquals("true", QueryCommands.Json.value(true));
    assertEquals("9223372036854775807", QueryCommands.Json.value(Long.MAX_VALUE));
    assertEquals("12345678901234567890.5", QueryCommands.Json.value(new BigDecimal("12345678901234567890.5")));
    assertEquals("1.5", QueryCommands.Json.value(1.5d));
    assertEquals("\"NaN\"", QueryCommands.Json.value(Double.NaN));
    assertEquals("\"-Infinity\"", QueryCommands.Json.value(Double.NEGATIVE_INFINITY));
    assertEquals("\"\\\\x01\"", QueryCommands.Json.value(new byte[] {1}));
    assertEquals("\"q\\\"\\\\\\n\\u0001é\"", QueryCommands.Json.string("q\"\\\n\u0001é"));
  }
}
