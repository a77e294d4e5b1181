package io.shardmap.core;

import static io.shardmap.core.TestData.BYTES;
import static io.shardmap.core.TestData.INT64;
import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.protobuf.ByteString;
import io.shardmap.proto.v1.Key;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class KeysTest {

  @Test
  void int64EncodingIsBigEndianWithSignBitFlipped() {
    assertEquals("0000000000000000", Keys.hex(Keys.encodeInt64(Long.MIN_VALUE)), "MIN_VALUE");
    assertEquals("7fffffffffffffff", Keys.hex(Keys.encodeInt64(-1)), "-1");
    assertEquals("8000000000000000", Keys.hex(Keys.encodeInt64(0)), "0");
    assertEquals("8000000000000001", Keys.hex(Keys.encodeInt64(1)), "1");
    assertEquals("8000000000000100", Keys.hex(Keys.encodeInt64(256)), "256 (big-endian)");
    assertEquals("ffffffffffffffff", Keys.hex(Keys.encodeInt64(Long.MAX_VALUE)), "MAX_VALUE");
  }

  @Test
  void unsignedByteOrderEqualsNumericOrderAndDecodeInverts() {
    Random rnd = new Random(1);
    long[] edges = {Long.MIN_VALUE, Long.MIN_VALUE + 1, -256, -255, -1, 0, 1, 255, 256, Long.MAX_VALUE - 1,
        Long.MAX_VALUE};
    for (int i = 0; i < 50_000; i++) {
      long a = i < edges.length ? edges[i] : rnd.nextLong();
      long b = i < edges.length ? edges[(i + 1) % edges.length] : (i % 3 == 0 ? a + rnd.nextInt(3) - 1 : rnd.nextLong());
      byte[] ea = Keys.encodeInt64(a);
      byte[] eb = Keys.encodeInt64(b);
      assertEquals(Integer.signum(Long.compare(a, b)), Integer.signum(Keys.compare(ea, eb)),
          "byte order of " + a + " vs " + b);
      assertEquals(a, Keys.decodeInt64(ea), "decode(encode(" + a + "))");
    }
  }

  @Test
  void decodeRejectsWrongLength() {
    assertThrows(IllegalArgumentException.class, () -> Keys.decodeInt64(new byte[7]));
    assertThrows(IllegalArgumentException.class, () -> Keys.decodeInt64(new byte[9]));
  }

  @Test
  void compareIsUnsignedBytewiseAndPrefixIsSmaller() {
    assertEquals(-1, Integer.signum(Keys.compare(new byte[] {0x7f}, new byte[] {(byte) 0x80})), "0x7f < 0x80");
    assertEquals(-1, Integer.signum(Keys.compare(new byte[] {1}, new byte[] {1, 0})), "prefix first");
    assertEquals(0, Keys.compare(new byte[] {1, 2}, new byte[] {1, 2}));
    assertEquals(-1, Integer.signum(Keys.compare(new byte[0], new byte[] {0})), "empty sorts first");
  }

  @Test
  void canonicalAcceptsMatchingKindsAndNamesTheFieldOtherwise() {
    assertArrayEquals(Keys.encodeInt64(-5),
        Keys.canonical(INT64, Key.newBuilder().setIntKey(-5).build(), "key"));
    assertArrayEquals("héllo".getBytes(StandardCharsets.UTF_8),
        Keys.canonical(BYTES, Key.newBuilder().setStringKey("héllo").build(), "key"));
    assertArrayEquals(new byte[] {0, (byte) 0xff},
        Keys.canonical(BYTES, Key.newBuilder().setBytesKey(ByteString.copyFrom(new byte[] {0, (byte) 0xff})).build(),
            "key"));

    assertError(ErrorCode.INVALID_ARGUMENT, () -> Keys.canonical(INT64, Key.getDefaultInstance(), "keys[3]"),
        "keys[3]", "required");
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(BYTES, Key.newBuilder().setIntKey(1).build(), "keys[0]"), "keys[0]", "int_key");
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(INT64, Key.newBuilder().setStringKey("x").build(), "key"), "key", "int_key");
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(INT64, Key.newBuilder().setBytesKey(ByteString.copyFromUtf8("x")).build(), "key"),
        "key", "int_key");
  }

  @Test
  void bytesKeysAre1To1024Bytes() {
    Keys.checkBytesKey(new byte[1], "key");
    Keys.checkBytesKey(new byte[Keys.MAX_KEY_BYTES], "key");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> Keys.checkBytesKey(new byte[0], "k"), "k:", "empty");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> Keys.checkBytesKey(new byte[1025], "k"), "k:", "1024", "1025");
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(BYTES, Key.newBuilder().setStringKey("").build(), "key"), "key", "empty");
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(BYTES, Key.newBuilder().setStringKey("x".repeat(1025)).build(), "key"), "key", "1024");
    // The limit is on UTF-8 bytes, not characters: 513 two-byte characters are 1026 bytes.
    assertError(ErrorCode.INVALID_ARGUMENT,
        () -> Keys.canonical(BYTES, Key.newBuilder().setStringKey("é".repeat(513)).build(), "key"), "1026");
  }

  @Test
  void toProtoRoundTripsThroughCanonical() {
    Random rnd = new Random(5);
    for (int i = 0; i < 5_000; i++) {
      byte[] b = TestData.randomBytes(rnd, 1 + rnd.nextInt(12));
      if (i % 2 == 0) {
        for (int j = 0; j < b.length; j++) {
          b[j] = (byte) (0x20 + rnd.nextInt(0x5f)); // printable ASCII
        }
      }
      Key k = Keys.toProto(BYTES, b);
      assertArrayEquals(b, Keys.canonical(BYTES, k, "key"), "round trip of " + Keys.hex(b) + " via " + k);
      long v = rnd.nextLong();
      assertEquals(v, Keys.toProto(INT64, Keys.encodeInt64(v)).getIntKey());
    }
    assertEquals(Key.ValueCase.STRING_KEY, Keys.toProto(BYTES, "abc".getBytes(StandardCharsets.UTF_8)).getValueCase());
    assertEquals(Key.ValueCase.BYTES_KEY, Keys.toProto(BYTES, new byte[] {(byte) 0xff}).getValueCase(),
        "invalid UTF-8 must travel as bytes_key");
    assertEquals(Key.ValueCase.BYTES_KEY, Keys.toProto(BYTES, new byte[] {'a', 0x01}).getValueCase(),
        "control characters must travel as bytes_key");
  }

  @Test
  void describeIsReadable() {
    assertEquals("-42", Keys.describe(INT64, Keys.encodeInt64(-42)));
    assertEquals("'abc'", Keys.describe(BYTES, "abc".getBytes(StandardCharsets.UTF_8)));
    assertEquals("0x00ff", Keys.describe(BYTES, new byte[] {0, (byte) 0xff}));
    assertEquals("(unbounded)", Keys.describe(BYTES, new byte[0]));
  }
}
