package io.shardmap.core.sql;

// xxHash64's primes come from the Java implementation this SQL must match bit for bit.
import static io.shardmap.core.XxHash64.PRIME64_1;
import static io.shardmap.core.XxHash64.PRIME64_2;
import static io.shardmap.core.XxHash64.PRIME64_3;
import static io.shardmap.core.XxHash64.PRIME64_4;
import static io.shardmap.core.XxHash64.PRIME64_5;

import java.util.List;

/**
 * Shardmap's routing functions in SQL, as text: the DDL (installed by the migrator in schema {@code shardmap}
 * of every shard a move touches, see its {@code RoutingFunctions}) and the calls of them. Pure: no database
 * here, so the migrator's move conditions and the client's ownership predicates build the same SQL, so that change capture, copy, verification and the fence can decide inside PostgreSQL
 * whether a row's key belongs to a hash bucket or a ring arc (docs/migrator-design.md, "Routing in SQL").
 * They reproduce {@link io.shardmap.core.Keys} (canonical bytes) and {@link io.shardmap.core.XxHash64}
 * bit for bit; SqlRoutingTest checks that on real PostgreSQL.
 *
 * <p>Unsigned 64-bit arithmetic without int8 overflow errors: a 64-bit word is held in a {@code bigint}
 * with its two's-complement bits. XOR, AND, OR and shifts never raise; a logical right shift masks the
 * sign extension away. Addition and multiplication modulo 2^64 are composed from 32-bit halves and 16-bit
 * limbs so that no intermediate sum or product leaves the signed 63-bit range (every multiplier is one of
 * xxHash's constants, so its limbs fold to constants when the planner inlines the SQL helpers).
 *
 * <p>The names carry a version ({@code _v1}) and a version's body never changes: fence and capture
 * triggers compiled against {@code hash_v1} keep meaning the same thing; a different function would be
 * {@code _v2}, installed next to it.
 */
public final class SqlRouting {
  /** The suffix of every function of this version. */
  public static final String VERSION = "v1";

  private SqlRouting() {}

  /** SQL: xxHash64 (seed 0) of a {@code bytea}, as the bigint with the hash's bits. */
  public static String hashBytes(String byteaExpr) {
    return "shardmap.hash_" + VERSION + "(" + byteaExpr + ")";
  }

  /** SQL: xxHash64 of an integer key's canonical bytes (equal to {@code hashBytes(canonicalInt(k))}). */
  public static String hashInt(String intExpr) {
    return "shardmap.hash_int8_" + VERSION + "((" + intExpr + ")::bigint)";
  }

  /** SQL: the canonical bytes of an integer key (big-endian, sign bit flipped). */
  public static String canonicalInt(String intExpr) {
    return "shardmap.key_int8_" + VERSION + "((" + intExpr + ")::bigint)";
  }

  /** SQL: the bucket ({@code hash mod buckets}, unsigned) of a hash, as an integer. */
  public static String bucket(String hashExpr, int buckets) {
    return "shardmap.bucket_" + VERSION + "(" + hashExpr + ", " + buckets + ")";
  }

  private static String sqlFn(String name, String args, String returns, String body) {
    // LANGUAGE sql, IMMUTABLE, one SELECT of an expression, not STRICT: the planner inlines such a
    // function into the calling expression (PL/pgSQL's too), so a helper costs no call.
    return "CREATE OR REPLACE FUNCTION shardmap." + name + "_" + VERSION + "(" + args + ") RETURNS " + returns
        + " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT " + body + " $f$";
  }

  /** The DDL of this version, in dependency order. */
  public static List<String> ddl() {
    String m32 = "4294967295";
    // a * b mod 2^64. With a = ah:al and b = bh:bl (32-bit halves) and bl = b1:b0, bh = b3:b2 (16-bit limbs):
    // low word of al*bl from al*b0 + (al*b1 << 16), its high word, plus (ah*bl + al*bh) mod 2^32 shifted up.
    // Every product has a 32-bit and a 16-bit factor (< 2^48); every sum stays below 2^50.
    String al = "(a & " + m32 + ")";
    String ah = "((a >> 32) & " + m32 + ")";
    String b0 = "(b & 65535)";
    String b1 = "((b >> 16) & 65535)";
    String b2 = "((b >> 32) & 65535)";
    String b3 = "((b >> 48) & 65535)";
    String t = "(" + al + " * " + b0 + " + (((" + al + " * " + b1 + ") & 65535) << 16))";
    String hi = "(((" + t + " >> 32) + ((" + al + " * " + b1 + ") >> 16)"
        + " + ((" + ah + " * " + b0 + " + (((" + ah + " * " + b1 + ") & 65535) << 16)) & " + m32 + ")"
        + " + ((" + al + " * " + b2 + " + (((" + al + " * " + b3 + ") & 65535) << 16)) & " + m32 + ")) & " + m32 + ")";
    String mul = "(" + hi + " << 32) | (" + t + " & " + m32 + ")";
    // a + b mod 2^64, by 32-bit halves with the carry moved up.
    String lo = "((a & " + m32 + ") + (b & " + m32 + "))";
    String add = "((((((a >> 32) & " + m32 + ") + ((b >> 32) & " + m32 + ") + (" + lo + " >> 32)) & " + m32
        + ") << 32) | (" + lo + " & " + m32 + "))";
    // -1 << k is all ones above bit k; its complement masks k low bits without any arithmetic.
    String rotl = "(x << r) | ((x >> (64 - r)) & ~((-1)::bigint << r))";
    String shr = "(x >> n) & ~((-1)::bigint << (64 - n))";
    // 2^64 + h is h's unsigned value modulo 2^64; one reference to h, so an expensive argument is inlined
    // too (the planner refuses to inline a parameter used twice when its argument is costly).
    String bucket = "((((h::numeric + 18446744073709551616) % 18446744073709551616) % n))::integer";
    String le64 = "(get_byte(b, p)::bigint | (get_byte(b, p + 1)::bigint << 8) | (get_byte(b, p + 2)::bigint << 16)"
        + " | (get_byte(b, p + 3)::bigint << 24) | (get_byte(b, p + 4)::bigint << 32) | (get_byte(b, p + 5)::bigint << 40)"
        + " | (get_byte(b, p + 6)::bigint << 48) | (get_byte(b, p + 7)::bigint << 56))";
    String le32 = "(get_byte(b, p)::bigint | (get_byte(b, p + 1)::bigint << 8) | (get_byte(b, p + 2)::bigint << 16)"
        + " | (get_byte(b, p + 3)::bigint << 24))";
    String minValue = Long.toString(Long.MIN_VALUE);
    String v = "_" + VERSION;
    String round = // acc := rotl(acc + input * PRIME64_2, 31) * PRIME64_1, in three steps (each one inlines)
        "w := shardmap.u64_mul" + v + "(w, " + PRIME64_2 + "); acc := shardmap.u64_add" + v + "(acc, w);"
            + " acc := shardmap.u64_rotl" + v + "(acc, 31); acc := shardmap.u64_mul" + v + "(acc, " + PRIME64_1 + ");";
    String hash = "CREATE OR REPLACE FUNCTION shardmap.hash" + v + "(b bytea) RETURNS bigint LANGUAGE plpgsql"
        + " IMMUTABLE STRICT PARALLEL SAFE AS $f$ DECLARE len integer := length(b); p integer := 0;"
        + " h bigint; v1 bigint; v2 bigint; v3 bigint; v4 bigint; acc bigint; w bigint; BEGIN"
        + " IF len >= 32 THEN v1 := " + (PRIME64_1 + PRIME64_2) + "; v2 := " + PRIME64_2 + "; v3 := 0; v4 := " + (-PRIME64_1) + ";"
        + "  WHILE p <= len - 32 LOOP"
        + "   acc := v1; w := " + le64 + "; " + round + " v1 := acc; p := p + 8;"
        + "   acc := v2; w := " + le64 + "; " + round + " v2 := acc; p := p + 8;"
        + "   acc := v3; w := " + le64 + "; " + round + " v3 := acc; p := p + 8;"
        + "   acc := v4; w := " + le64 + "; " + round + " v4 := acc; p := p + 8;"
        + "  END LOOP;"
        + "  h := shardmap.u64_add" + v + "(shardmap.u64_rotl" + v + "(v1, 1), shardmap.u64_rotl" + v + "(v2, 7));"
        + "  h := shardmap.u64_add" + v + "(h, shardmap.u64_rotl" + v + "(v3, 12));"
        + "  h := shardmap.u64_add" + v + "(h, shardmap.u64_rotl" + v + "(v4, 18));"
        + mergeRound("v1") + mergeRound("v2") + mergeRound("v3") + mergeRound("v4")
        + " ELSE h := " + PRIME64_5 + "; END IF;"
        + " h := shardmap.u64_add" + v + "(h, len);"
        + " WHILE p + 8 <= len LOOP acc := 0; w := " + le64 + "; " + round
        + "  h := h # acc; h := shardmap.u64_rotl" + v + "(h, 27); h := shardmap.u64_mul" + v + "(h, " + PRIME64_1 + ");"
        + "  h := shardmap.u64_add" + v + "(h, " + PRIME64_4 + "); p := p + 8; END LOOP;"
        + " IF p + 4 <= len THEN w := shardmap.u64_mul" + v + "(" + le32 + ", " + PRIME64_1 + "); h := h # w;"
        + "  h := shardmap.u64_rotl" + v + "(h, 23); h := shardmap.u64_mul" + v + "(h, " + PRIME64_2 + ");"
        + "  h := shardmap.u64_add" + v + "(h, " + PRIME64_3 + "); p := p + 4; END IF;"
        + " WHILE p < len LOOP w := shardmap.u64_mul" + v + "(get_byte(b, p)::bigint, " + PRIME64_5 + "); h := h # w;"
        + "  h := shardmap.u64_rotl" + v + "(h, 11); h := shardmap.u64_mul" + v + "(h, " + PRIME64_1 + "); p := p + 1; END LOOP;"
        + avalanche() + " RETURN h; END $f$";
    // An integer key: its canonical bytes are big-endian (k # MIN); xxHash reads the word little-endian,
    // so the word is the byte-reversed canonical value. The 8-byte case of the loop above, unrolled.
    StringBuilder swap = new StringBuilder();
    for (int i = 0; i < 8; i++) {
      swap.append(i == 0 ? "" : " | ").append("(((u >> ").append(8 * i).append(") & 255) << ").append(56 - 8 * i)
          .append(")");
    }
    String hashInt = "CREATE OR REPLACE FUNCTION shardmap.hash_int8" + v + "(k bigint) RETURNS bigint LANGUAGE plpgsql"
        + " IMMUTABLE STRICT PARALLEL SAFE AS $f$ DECLARE u bigint := k # (" + minValue + ")::bigint; h bigint;"
        + " acc bigint := 0; w bigint; BEGIN w := " + swap + "; " + round
        + " h := " + (PRIME64_5 + 8) + " # acc; h := shardmap.u64_rotl" + v + "(h, 27); h := shardmap.u64_mul" + v + "(h, "
        + PRIME64_1 + "); h := shardmap.u64_add" + v + "(h, " + PRIME64_4 + ");" + avalanche() + " RETURN h; END $f$";
    return List.of(
        sqlFn("u64_mul", "a bigint, b bigint", "bigint", mul),
        sqlFn("u64_add", "a bigint, b bigint", "bigint", add),
        sqlFn("u64_rotl", "x bigint, r integer", "bigint", rotl),
        sqlFn("u64_shr", "x bigint, n integer", "bigint", shr),
        sqlFn("key_int8", "k bigint", "bytea", "int8send(k # (" + minValue + ")::bigint)"),
        sqlFn("bucket", "h bigint, n integer", "integer", bucket),
        hash,
        hashInt);
  }

  private static String mergeRound(String lane) {
    String v = "_" + VERSION;
    // h := (h ^ round(0, lane)) * PRIME64_1 + PRIME64_4
    return " acc := 0; w := " + lane + "; w := shardmap.u64_mul" + v + "(w, " + PRIME64_2 + "); acc := w;"
        + " acc := shardmap.u64_rotl" + v + "(acc, 31); acc := shardmap.u64_mul" + v + "(acc, " + PRIME64_1 + ");"
        + " h := h # acc; h := shardmap.u64_mul" + v + "(h, " + PRIME64_1 + "); h := shardmap.u64_add" + v + "(h, " + PRIME64_4 + ");";
  }

  private static String avalanche() {
    String v = "_" + VERSION;
    return " h := h # shardmap.u64_shr" + v + "(h, 33); h := shardmap.u64_mul" + v + "(h, " + PRIME64_2 + ");"
        + " h := h # shardmap.u64_shr" + v + "(h, 29); h := shardmap.u64_mul" + v + "(h, " + PRIME64_3 + ");"
        + " h := h # shardmap.u64_shr" + v + "(h, 32);";
  }
}
