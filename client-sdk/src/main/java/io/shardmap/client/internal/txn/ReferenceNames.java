package io.shardmap.client.internal.txn;

import io.shardmap.core.ShardmapException;
import java.util.ArrayList;
import java.util.List;

/**
 * How a table name the application gives matches a reference table record's canonical name (PostgreSQL's
 * {@code format('%I.%I', schema, table)}, e.g. {@code public.countries} or {@code ops."Flags"}). Both are
 * read the way PostgreSQL reads a qualified name: parts separated by dots, an unquoted part folded to lower
 * case, a quoted part kept as written ({@code ""} standing for one quote). They match when:
 * <ul>
 *   <li>both have the same schema and table ({@code Public.Countries}, {@code "public"."countries"}), or
 *   <li>the name has no schema and its table equals the table of exactly one record of the keyspace
 *       ({@code countries}); two records of that table in different schemas make it ambiguous
 *       (INVALID_ARGUMENT naming both). The SDK does not know the shards' {@code search_path}.
 * </ul>
 */
public final class ReferenceNames {
  private ReferenceNames() {}

  /** A name read as PostgreSQL reads it: schema (null when unqualified) and table, case already applied. */
  public record Parsed(String schema, String table) {}

  /**
   * Reads {@code name}.
   *
   * @throws ShardmapException INVALID_ARGUMENT naming {@code field} when it is not one or two identifiers
   */
  public static Parsed parse(String field, String name) {
    if (name == null || name.isBlank()) {
      throw ShardmapException.invalid(field, "a table name is required");
    }
    List<String> parts = new ArrayList<>();
    String s = name.strip();
    int i = 0;
    while (true) {
      StringBuilder part = new StringBuilder();
      if (i < s.length() && s.charAt(i) == '"') {
        i++;
        while (true) {
          if (i >= s.length()) {
            throw ShardmapException.invalid(field, "'" + name + "' has an unterminated quoted identifier");
          }
          char c = s.charAt(i++);
          if (c == '"') {
            if (i < s.length() && s.charAt(i) == '"') {
              part.append('"');
              i++;
            } else {
              break;
            }
          } else {
            part.append(c);
          }
        }
        if (part.length() == 0) {
          throw ShardmapException.invalid(field, "'" + name + "' has an empty quoted identifier");
        }
      } else {
        while (i < s.length() && s.charAt(i) != '.' && s.charAt(i) != '"') {
          char c = s.charAt(i++);
          if (Character.isWhitespace(c)) {
            throw ShardmapException.invalid(field, "'" + name + "' is not a table name (quote identifiers "
                + "that hold spaces)");
          }
          part.append(c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c); // PostgreSQL folds ASCII only
        }
        if (part.length() == 0) {
          throw ShardmapException.invalid(field, "'" + name + "' is not a table name (an empty part)");
        }
      }
      parts.add(part.toString());
      if (i == s.length()) {
        break;
      }
      if (s.charAt(i) != '.') {
        throw ShardmapException.invalid(field, "'" + name + "' is not a table name (text after a quoted "
            + "identifier)");
      }
      i++;
    }
    if (parts.size() > 2) {
      throw ShardmapException.invalid(field, "'" + name + "' has " + parts.size() + " parts; a table is "
          + "named as table or schema.table");
    }
    return parts.size() == 1 ? new Parsed(null, parts.get(0)) : new Parsed(parts.get(0), parts.get(1));
  }

  /** Whether {@code given} names the table of canonical name {@code canonical} (same schema and table). */
  public static boolean sameTable(Parsed given, Parsed canonical) {
    return given.table().equals(canonical.table())
        && (given.schema() == null || given.schema().equals(canonical.schema()));
  }
}
