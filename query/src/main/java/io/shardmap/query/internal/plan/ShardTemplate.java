package io.shardmap.query.internal.plan;

import java.util.ArrayList;
import java.util.List;

/**
 * The shard statement as JSqlParser deparsed it, cut at its three slots: each {@code ?} (which caller
 * parameter it is), the ownership predicate, and the per-shard LIMIT (offset + limit, known only once the
 * parameters are). The planner deparses the rewritten AST once with a marker in each slot; a marker
 * begins with a salt that does not occur in the caller's SQL, so every occurrence of the salt in the
 * deparsed text is a slot (the deparser only adds keywords, punctuation and the caller's own text).
 */
final class ShardTemplate {
  sealed interface Part {}

  record Text(String sql) implements Part {}

  /** The caller's parameter at this 0-based index. */
  record Param(int index) implements Part {}

  record Owned() implements Part {}

  record ShardLimit() implements Part {}

  static final String PARAM = "p";
  static final String OWNED = "owned";
  static final String LIMIT = "limit";

  private final List<Part> parts;

  private ShardTemplate(List<Part> parts) {
    this.parts = List.copyOf(parts);
  }

  List<Part> parts() {
    return parts;
  }

  /** Cuts {@code deparsed} at every {@code salt}-marker ({@code salt p<index>}, {@code owned}, {@code limit}). */
  static ShardTemplate cut(String deparsed, String salt) {
    List<Part> parts = new ArrayList<>();
    int from = 0;
    while (true) {
      int at = deparsed.indexOf(salt, from);
      if (at < 0) {
        break;
      }
      if (at > from) {
        parts.add(new Text(deparsed.substring(from, at)));
      }
      int rest = at + salt.length();
      if (deparsed.startsWith(OWNED, rest)) {
        parts.add(new Owned());
        from = rest + OWNED.length();
      } else if (deparsed.startsWith(LIMIT, rest)) {
        parts.add(new ShardLimit());
        from = rest + LIMIT.length();
      } else if (deparsed.startsWith(PARAM, rest)) {
        int end = rest + PARAM.length();
        while (end < deparsed.length() && Character.isDigit(deparsed.charAt(end))) {
          end++;
        }
        parts.add(new Param(Integer.parseInt(deparsed.substring(rest + PARAM.length(), end))));
        from = end;
      } else {
        throw new IllegalStateException("unknown slot marker in " + deparsed);
      }
    }
    if (from < deparsed.length()) {
      parts.add(new Text(deparsed.substring(from)));
    }
    return new ShardTemplate(parts);
  }

  /** The caller parameters the shard statement uses, in their order in it (0-based caller indexes). */
  List<Integer> paramOrder() {
    List<Integer> order = new ArrayList<>();
    for (Part p : parts) {
      if (p instanceof Param q) {
        order.add(q.index());
      }
    }
    return order;
  }

  boolean hasLimit() {
    return parts.stream().anyMatch(p -> p instanceof ShardLimit);
  }

  /** The SQL with {@code owned} as the predicate, {@code ?} for parameters and {@code limit} as the LIMIT. */
  String render(String owned, String limit) {
    StringBuilder b = new StringBuilder();
    for (Part p : parts) {
      if (p instanceof Text t) {
        b.append(t.sql());
      } else if (p instanceof Param) {
        b.append('?');
      } else if (p instanceof Owned) {
        b.append(owned);
      } else {
        b.append(limit);
      }
    }
    return b.toString();
  }
}
