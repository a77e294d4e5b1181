package io.shardmap.core;

import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.Key;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class KeyRangeTest {

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void ofRequiresStartBelowEnd() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.of(utf8("b"), utf8("a"), "ranges[2]"),
        "ranges[2]", "start must be below");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.of(utf8("a"), utf8("a"), "r"), "r:");
    KeyRange.of(new byte[0], utf8("a"), "r");
    KeyRange.of(utf8("a"), new byte[0], "r");
    assertEquals(KeyRange.FULL, KeyRange.of(new byte[0], new byte[0], "r"));
  }

  @Test
  void isHalfOpen() {
    KeyRange r = KeyRange.parse(INT64, "-10..20", "r");
    assertTrue(r.contains(Keys.encodeInt64(-10)), "start is inside");
    assertTrue(r.contains(Keys.encodeInt64(19)), "end-1 is inside");
    assertFalse(r.contains(Keys.encodeInt64(20)), "end is outside");
    assertFalse(r.contains(Keys.encodeInt64(-11)), "start-1 is outside");
    assertTrue(KeyRange.FULL.contains(Keys.encodeInt64(Long.MIN_VALUE)));
    assertTrue(KeyRange.FULL.contains(Keys.encodeInt64(Long.MAX_VALUE)));
    assertTrue(KeyRange.FULL.unboundedBelow() && KeyRange.FULL.unboundedAbove());
    KeyRange below = KeyRange.parse(INT64, "..0", "r");
    assertTrue(below.contains(Keys.encodeInt64(Long.MIN_VALUE)) && !below.contains(Keys.encodeInt64(0)));
    KeyRange above = KeyRange.parse(INT64, "0..", "r");
    assertTrue(above.contains(Keys.encodeInt64(Long.MAX_VALUE)) && !above.contains(Keys.encodeInt64(-1)));
  }

  @Test
  void parseInt64Specs() {
    KeyRange r = KeyRange.parse(INT64, " -100 .. 250 ", "r");
    assertArrayEquals(Keys.encodeInt64(-100), r.start());
    assertArrayEquals(Keys.encodeInt64(250), r.end());
    assertEquals(KeyRange.FULL, KeyRange.parse(INT64, "..", "r"));
    assertEquals(KeyRange.FULL, KeyRange.parse(BYTES, "..", "r"));
    KeyRange extremes = KeyRange.parse(INT64, Long.MIN_VALUE + ".." + Long.MAX_VALUE, "r");
    assertArrayEquals(Keys.encodeInt64(Long.MIN_VALUE), extremes.start());
    assertArrayEquals(Keys.encodeInt64(Long.MAX_VALUE), extremes.end());
  }

  @Test
  void parseBytesSpecs() {
    KeyRange r = KeyRange.parse(BYTES, "0x40..'m'", "r");
    assertArrayEquals(new byte[] {0x40}, r.start());
    assertArrayEquals(utf8("m"), r.end());
    KeyRange text = KeyRange.parse(BYTES, "apple..banana", "r");
    assertArrayEquals(utf8("apple"), text.start());
    assertArrayEquals(utf8("banana"), text.end());
    assertArrayEquals(new byte[] {(byte) 0xAB, 0x01}, KeyRange.parse(BYTES, "0XAb01..", "r").start());
    assertArrayEquals(utf8("0x41"), KeyRange.parse(BYTES, "'0x41'..", "r").start(), "quotes make hex-looking text text");
  }

  @Test
  void parseErrorsNameTheField() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(INT64, "1-5", "spec"), "spec:", "start..end");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(INT64, "1..2..3", "spec"), "spec:", "start..end");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(INT64, "a..5", "spec"), "spec:", "64-bit integer");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(INT64, "1..99999999999999999999", "spec"),
        "spec:", "64-bit integer");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(INT64, "5..1", "spec"), "spec:", "below");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(BYTES, "0xZZ..", "spec"), "spec:", "hex");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(BYTES, "0x123..", "spec"), "spec:", "hex");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(BYTES, "0x..", "spec"), "spec:", "empty");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(BYTES, "''..", "spec"), "spec:", "empty");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parse(BYTES, "'" + "x".repeat(1025) + "'..", "spec"),
        "spec:", "1024");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.parseKey(INT64, " ", "split_key"), "split_key", "empty");
    assertArrayEquals(Keys.encodeInt64(7), KeyRange.parseKey(INT64, " 7 ", "split_key"));
  }

  @Test
  void formatRoundTripsThroughParse() {
    Random rnd = new Random(9);
    for (int i = 0; i < 2_000; i++) {
      long a = rnd.nextLong();
      long b = rnd.nextLong();
      if (a == b) {
        continue;
      }
      byte[] s = Keys.encodeInt64(Math.min(a, b));
      byte[] e = Keys.encodeInt64(Math.max(a, b));
      for (KeyRange r : new KeyRange[] {KeyRange.of(s, e, "r"), KeyRange.of(new byte[0], e, "r"),
          KeyRange.of(s, new byte[0], "r")}) {
        assertEquals(r, KeyRange.parse(INT64, r.format(INT64), "r"), "INT64 round trip of " + r.format(INT64));
        assertEquals(r, KeyRange.fromProto(INT64, r.toProto(INT64), "r"), "INT64 proto round trip of " + r);
      }
      byte[] x = TestData.randomBytes(rnd, 1 + rnd.nextInt(6));
      byte[] y = TestData.randomBytes(rnd, 1 + rnd.nextInt(6));
      int c = Keys.compare(x, y);
      if (c == 0) {
        continue;
      }
      KeyRange br = c < 0 ? KeyRange.of(x, y, "r") : KeyRange.of(y, x, "r");
      assertEquals(br, KeyRange.parse(BYTES, br.format(BYTES), "r"), "BYTES round trip of " + br.format(BYTES));
      assertEquals(br, KeyRange.fromProto(BYTES, br.toProto(BYTES), "r"), "BYTES proto round trip of " + br);
    }
  }

  @Test
  void fromProtoNamesTheBoundField() {
    io.shardmap.proto.v1.KeyRange p = io.shardmap.proto.v1.KeyRange.newBuilder()
        .setStart(Key.newBuilder().setStringKey("x")).build();
    assertError(ErrorCode.INVALID_ARGUMENT, () -> KeyRange.fromProto(INT64, p, "ranges[1]"), "ranges[1].start");
    io.shardmap.proto.v1.KeyRange empty = io.shardmap.proto.v1.KeyRange.getDefaultInstance();
    assertEquals(KeyRange.FULL, KeyRange.fromProto(BYTES, empty, "range"), "an empty KeyRange is the whole space");
  }

  @Test
  void accessorsReturnCopiesAndEqualityIsByContent() {
    KeyRange r = KeyRange.of(utf8("a"), utf8("c"), "r");
    r.start()[0] = 'z';
    r.end()[0] = 'z';
    assertArrayEquals(utf8("a"), r.start(), "mutating start() must not change the range");
    assertArrayEquals(utf8("c"), r.end(), "mutating end() must not change the range");
    byte[] s = utf8("a");
    KeyRange r2 = KeyRange.of(s, utf8("c"), "r");
    s[0] = 'b';
    assertEquals(r, r2, "of() must copy its arguments");
    assertEquals(r.hashCode(), r2.hashCode());
    assertNotEquals(r, KeyRange.of(utf8("a"), utf8("d"), "r"));
  }
}
