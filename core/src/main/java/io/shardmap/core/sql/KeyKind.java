package io.shardmap.core.sql;

import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * How a key column's SQL values map to Shardmap's canonical key bytes ({@link Keys}): integer columns of
 * INT64 keyspaces, and {@code text}/{@code varchar} (a key is the string's UTF-8) or {@code bytea} columns
 * of BYTES keyspaces. Literals are constants no key can break out of (bytea as hex through {@code decode},
 * text as an escape string with '$' escaped), so they are safe in generated SQL and in dollar-quoted
 * trigger bodies whatever the key holds.
 */
public enum KeyKind {
  INT64("bigint"),
  TEXT("text"),
  BYTEA("bytea");

  private final String sqlType;

  KeyKind(String sqlType) {
    this.sqlType = sqlType;
  }

  /** The SQL type the change log stores keys in. */
  public String sqlType() {
    return sqlType;
  }

  /**
   * The kind of a column of SQL type {@code formatType} (as {@code format_type} prints it) in a keyspace
   * with {@code keyType} keys, or null when such a column cannot hold that keyspace's keys.
   */
  public static KeyKind of(KeyType keyType, String formatType) {
    if (keyType == KeyType.KEY_TYPE_INT64) {
      return switch (formatType) {
        case "bigint", "integer", "smallint" -> INT64;
        default -> null;
      };
    }
    if (keyType == KeyType.KEY_TYPE_BYTES) {
      if (formatType.equals("bytea")) {
        return BYTEA;
      }
      // char(n) pads with blanks, so its value is not the string the client routed by.
      if (formatType.equals("text") || formatType.startsWith("character varying")) {
        return TEXT;
      }
    }
    return null;
  }

  /** SQL: the canonical bytes of the key in {@code ref}. */
  public String canonicalSql(String ref) {
    return switch (this) {
      case INT64 -> SqlRouting.canonicalInt(ref);
      case TEXT -> "convert_to(" + ref + ", 'UTF8')";
      case BYTEA -> ref;
    };
  }

  /** SQL: xxHash64 of the key in {@code ref} (what hash buckets and the ring route by). */
  public String hashSql(String ref) {
    return this == INT64 ? SqlRouting.hashInt(ref) : SqlRouting.hashBytes(canonicalSql(ref));
  }

  /** SQL: a literal of the column's type holding the key with these canonical bytes. */
  public String literal(byte[] canonical) {
    return switch (this) {
      case INT64 -> Long.toString(Keys.decodeInt64(canonical));
      case TEXT -> text(new String(canonical, StandardCharsets.UTF_8));
      case BYTEA -> bytea(canonical);
    };
  }

  /**
   * SQL: a text constant. An escape string ({@code E'...'}) means the same whatever
   * {@code standard_conforming_strings} says; '$' is escaped too, so the literal can sit inside a
   * dollar-quoted function body (a fence) whatever the key holds. A constant, not an expression such as
   * {@code convert_from(...)} (STABLE): the planner folds it, so an IN list of keys stays an index lookup
   * and no row re-evaluates it.
   */
  public static String text(String s) {
    StringBuilder b = new StringBuilder("E'");
    for (int i = 0; i < s.length(); i++) {
      char ch = s.charAt(i);
      switch (ch) {
        case '\\' -> b.append("\\\\");
        case '\'' -> b.append("''");
        case '$' -> b.append("\\x24");
        default -> b.append(ch);
      }
    }
    return b.append('\'').toString();
  }

  /** SQL: a {@code bytea} literal. */
  public static String bytea(byte[] b) {
    return "decode('" + Keys.hex(b) + "', 'hex')";
  }

  /** The canonical bytes of a key as JDBC returns it from a column of this kind. */
  public byte[] canonical(Object jdbcValue) {
    return switch (this) {
      case INT64 -> Keys.encodeInt64(((Number) jdbcValue).longValue());
      case TEXT -> ((String) jdbcValue).getBytes(StandardCharsets.UTF_8);
      case BYTEA -> (byte[]) jdbcValue;
    };
  }

  /**
   * Null when a key with these canonical bytes can be stored in a column of this kind, else why not (a
   * text column holds only valid UTF-8 without NUL).
   */
  public String unstorable(byte[] canonical) {
    if (this != TEXT) {
      return null;
    }
    try {
      String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(canonical)).toString();
      return s.indexOf('\0') >= 0 ? "it contains a NUL byte, which a text column cannot hold" : null;
    } catch (CharacterCodingException e) {
      return "it is not valid UTF-8, so no text column holds it";
    }
  }
}
