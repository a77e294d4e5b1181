package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class XxHash64Test {

  private static long h(String s) {
    return XxHash64.hash(s.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void publishedReferenceVectorsSeed0() {
    assertEquals(0xEF46DB3751D8E999L, h(""), "xxh64('') (empty input, no stripe, no tail)");
    assertEquals(0xD24EC4F1A98C6E5BL, h("a"), "xxh64('a') (1-byte tail)");
    assertEquals(0x44BC2CF5AD770999L, h("abc"), "xxh64('abc') (3-byte tail)");
    // 39 bytes: one 32-byte stripe, then a 4-byte and a 3-byte tail.
    assertEquals(0xFBCEA83C8A378BF1L, h("Nobody inspects the spammish repetition"),
        "xxh64('Nobody inspects the spammish repetition') (stripe loop + merge rounds)");
    // 43 bytes: one stripe, an 8-byte word and a 3-byte tail.
    assertEquals(0x0B242D361FDA71BCL, h("The quick brown fox jumps over the lazy dog"),
        "xxh64('The quick brown fox jumps over the lazy dog')");
  }

  @Test
  void matchesIndependentSpecImplementationForLengths0To300() {
    Random rnd = new Random(7);
    for (int len = 0; len <= 300; len++) {
      for (int rep = 0; rep < 3; rep++) {
        byte[] b = TestData.randomBytes(rnd, len);
        assertEquals(referenceXxh64(b), XxHash64.hash(b), "hash of " + len + " random bytes: " + Keys.hex(b));
      }
    }
  }

  @Test
  void offsetLengthFormEqualsHashOfTheSubArrayForLengths0To100() {
    Random rnd = new Random(11);
    for (int len = 0; len <= 100; len++) {
      for (int off : new int[] {0, 1, 3, 7, 8, 13}) {
        byte[] buf = TestData.randomBytes(rnd, off + len + 5);
        byte[] sub = Arrays.copyOfRange(buf, off, off + len);
        assertEquals(XxHash64.hash(sub), XxHash64.hash(buf, off, len),
            "hash(buf, " + off + ", " + len + ") must equal hash of the sub-array");
        // Bytes around the window must not influence the result.
        buf[buf.length - 1] ^= 0x5A;
        if (off > 0) {
          buf[off - 1] ^= 0x5A;
        }
        assertEquals(XxHash64.hash(sub), XxHash64.hash(buf, off, len),
            "hash(buf, " + off + ", " + len + ") read bytes outside its window");
      }
    }
  }

  @Test
  void hashInt64EqualsHashOfCanonicalBytes() {
    Random rnd = new Random(3);
    long[] edges = {0, 1, -1, Long.MIN_VALUE, Long.MAX_VALUE, Long.MIN_VALUE + 1, Long.MAX_VALUE - 1, 255, 256};
    for (long k : edges) {
      assertEquals(XxHash64.hash(Keys.encodeInt64(k)), XxHash64.hashInt64(k), "hashInt64(" + k + ")");
    }
    for (int i = 0; i < 100_000; i++) {
      long k = rnd.nextLong();
      long expected = XxHash64.hash(Keys.encodeInt64(k));
      if (expected != XxHash64.hashInt64(k)) {
        assertEquals(expected, XxHash64.hashInt64(k), "hashInt64(" + k + ") != hash(encodeInt64(" + k + "))");
      }
    }
  }

  @Test
  void everyInputBitAffectsTheHash() {
    byte[] base = new byte[40];
    long h0 = XxHash64.hash(base);
    for (int bit = 0; bit < base.length * 8; bit++) {
      byte[] b = base.clone();
      b[bit / 8] ^= (byte) (1 << (bit % 8));
      long h1 = XxHash64.hash(b);
      int changed = Long.bitCount(h0 ^ h1);
      // Avalanche: a one-bit flip changes about 32 of 64 output bits; 12..52 is a very loose bound.
      org.junit.jupiter.api.Assertions.assertTrue(changed >= 12 && changed <= 52,
          "flipping input bit " + bit + " changed " + changed + " output bits");
    }
  }

  // ---- a straight transcription of the xxHash64 spec (seed 0), independent of the production code ----

  private static final long P1 = 0x9E3779B185EBCA87L;
  private static final long P2 = 0xC2B2AE3D27D4EB4FL;
  private static final long P3 = 0x165667B19E3779F9L;
  private static final long P4 = 0x85EBCA77C2B2AE63L;
  private static final long P5 = 0x27D4EB2F165667C5L;

  static long referenceXxh64(byte[] input) {
    ByteBuffer bb = ByteBuffer.wrap(input).order(ByteOrder.LITTLE_ENDIAN);
    int len = input.length;
    int p = 0;
    long acc;
    if (len >= 32) {
      long[] v = {P1 + P2, P2, 0, -P1};
      while (len - p >= 32) {
        for (int lane = 0; lane < 4; lane++) {
          v[lane] = specRound(v[lane], bb.getLong(p + lane * 8));
        }
        p += 32;
      }
      acc = Long.rotateLeft(v[0], 1) + Long.rotateLeft(v[1], 7) + Long.rotateLeft(v[2], 12)
          + Long.rotateLeft(v[3], 18);
      for (long lane : v) {
        acc = (acc ^ specRound(0, lane)) * P1 + P4;
      }
    } else {
      acc = P5;
    }
    acc += len;
    while (len - p >= 8) {
      acc ^= specRound(0, bb.getLong(p));
      acc = Long.rotateLeft(acc, 27) * P1 + P4;
      p += 8;
    }
    if (len - p >= 4) {
      acc ^= Integer.toUnsignedLong(bb.getInt(p)) * P1;
      acc = Long.rotateLeft(acc, 23) * P2 + P3;
      p += 4;
    }
    while (p < len) {
      acc ^= Byte.toUnsignedLong(input[p]) * P5;
      acc = Long.rotateLeft(acc, 11) * P1;
      p++;
    }
    acc ^= acc >>> 33;
    acc *= P2;
    acc ^= acc >>> 29;
    acc *= P3;
    acc ^= acc >>> 32;
    return acc;
  }

  private static long specRound(long acc, long lane) {
    return Long.rotateLeft(acc + lane * P2, 31) * P1;
  }
}
