package io.shardmap.query.internal.plan;

import io.shardmap.core.ShardmapException;

/** Identifier rules of PostgreSQL that the planner needs, and the one way it refuses a statement. */
final class Sql {
  private Sql() {}

  /**
   * An identifier as PostgreSQL resolves it: a quoted one as written (its {@code ""} unescaped), an unquoted
   * one folded to lower case. Only ASCII letters fold, as PostgreSQL's {@code downcase_identifier} does in
   * a multi-byte encoding such as UTF-8.
   */
  static String fold(String ident) {
    if (ident.length() >= 2 && ident.charAt(0) == '"' && ident.charAt(ident.length() - 1) == '"') {
      return ident.substring(1, ident.length() - 1).replace("\"\"", "\"");
    }
    StringBuilder b = new StringBuilder(ident.length());
    for (int i = 0; i < ident.length(); i++) {
      char c = ident.charAt(i);
      b.append(c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c);
    }
    return b.toString();
  }

  /** A quoted identifier: always quoted, so reserved words and mixed case need no list. */
  static String quote(String name) {
    return '"' + name.replace("\"", "\"\"") + '"';
  }

  /** The planner's refusal: INVALID_ARGUMENT on field {@code sql}, naming the clause and why. */
  static ShardmapException refuse(String rule) {
    return ShardmapException.invalid("sql", rule);
  }
}
