package io.shardmap.query;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * Random SELECTs over {@code diff_items} (id bigint key, grp int, cat text, amount numeric(12,2), score
 * double, qty int, big bigint, created timestamptz, flag boolean) in the shapes a cross-shard query must
 * merge exactly. A statement is marked ordered only when its ORDER BY fixes the order of every row (it ends
 * with a unique key: id, or every GROUP BY / DISTINCT column); LIMIT and OFFSET only appear then, since
 * otherwise which rows they keep is not defined, on one database either.
 */
final class QueryGenerator {
  record Query(String shape, String sql, List<Object> params, boolean ordered) {}

  private static final String[] COLUMNS = {"id", "grp", "cat", "amount", "score", "qty", "big", "created", "flag"};
  /** Expressions a plain query may select or order by (computed by each shard). */
  private static final String[] EXPRESSIONS = {"qty * 2", "lower(cat)", "amount + 1", "coalesce(cat, '-')",
      "abs(qty)", "length(cat)", "grp % 3", "created::date"};
  /** Columns whose values order totally together with id (everything is orderable here). */
  private static final String[] GROUP_KEYS = {"grp", "cat", "flag", "grp % 3", "created::date", "qty / 100"};
  private static final String[] NUMERIC_ARGS = {"qty", "amount", "big", "grp"};
  private static final String[] MINMAX_ARGS = {"qty", "amount", "cat", "created", "big", "id", "flag::int"};

  private final Random r;

  QueryGenerator(Random r) {
    this.r = r;
  }

  Query next() {
    int k = r.nextInt(10);
    if (k < 4) {
      return plain();
    }
    if (k < 5) {
      return distinct();
    }
    if (k < 6) {
      return ungrouped();
    }
    return grouped();
  }

  private Query plain() {
    List<Object> params = new ArrayList<>();
    List<String> items = new ArrayList<>();
    int n = 1 + r.nextInt(4);
    for (int i = 0; i < n; i++) {
      items.add(r.nextInt(3) == 0 ? pick(EXPRESSIONS) + " AS e" + i : pick(COLUMNS));
    }
    if (r.nextInt(8) == 0) {
      items = List.of("*");
    }
    String where = where(params);
    List<String> order = new ArrayList<>();
    int keys = r.nextInt(4);
    for (int i = 0; i < keys; i++) {
      String key = switch (r.nextInt(3)) {
        case 0 -> pick(COLUMNS);
        case 1 -> pick(EXPRESSIONS);
        default -> items.get(0).equals("*") ? pick(COLUMNS) : Integer.toString(1 + r.nextInt(items.size()));
      };
      order.add(key + direction());
    }
    boolean limited = r.nextInt(2) == 0;
    boolean ordered = limited || (keys > 0 && r.nextBoolean());
    if (ordered) {
      order.add("id" + (r.nextBoolean() ? "" : " DESC"));
    }
    StringBuilder sql = new StringBuilder("SELECT " + String.join(", ", items) + " FROM diff_items"
        + (r.nextBoolean() ? " t" : "") + where);
    if (!order.isEmpty()) {
      sql.append(" ORDER BY ").append(String.join(", ", order));
    }
    if (ordered && limited) {
      limitOffset(sql, params);
    }
    return new Query(ordered ? (limited ? "plain-limit" : "plain-ordered") : "plain", sql.toString(), params, ordered);
  }

  private Query distinct() {
    List<Object> params = new ArrayList<>();
    List<String> cols = pickDistinct(GROUP_KEYS, 1 + r.nextInt(2));
    StringBuilder sql = new StringBuilder("SELECT DISTINCT " + String.join(", ", cols) + " FROM diff_items"
        + where(params));
    boolean ordered = r.nextBoolean();
    if (ordered) {
      List<String> order = new ArrayList<>();
      for (int i = 0; i < cols.size(); i++) {
        order.add((i + 1) + direction());
      }
      Collections.shuffle(order, r);
      sql.append(" ORDER BY ").append(String.join(", ", order));
      if (r.nextBoolean()) {
        limitOffset(sql, params);
      }
    }
    return new Query(ordered ? "distinct-ordered" : "distinct", sql.toString(), params, ordered);
  }

  private Query ungrouped() {
    List<Object> params = new ArrayList<>();
    List<String> aggs = new ArrayList<>();
    int n = 1 + r.nextInt(4);
    for (int i = 0; i < n; i++) {
      aggs.add(aggregate(i == 0 && r.nextInt(3) == 0));
    }
    String sql = "SELECT " + String.join(", ", aggs) + " FROM diff_items" + where(params);
    return new Query("aggregate", sql, params, true);
  }

  private Query grouped() {
    List<Object> params = new ArrayList<>();
    List<String> keys = pickDistinct(GROUP_KEYS, 1 + r.nextInt(2));
    List<String> aggs = new ArrayList<>();
    int n = 1 + r.nextInt(3);
    boolean distinctUsed = false;
    for (int i = 0; i < n; i++) {
      boolean distinct = !distinctUsed && r.nextInt(4) == 0;
      distinctUsed |= distinct;
      aggs.add(aggregate(distinct) + " AS a" + i);
    }
    List<String> items = new ArrayList<>(keys);
    items.addAll(aggs);
    StringBuilder sql = new StringBuilder("SELECT " + String.join(", ", items) + " FROM diff_items" + where(params)
        + " GROUP BY " + groupBy(keys));
    if (r.nextInt(3) == 0) {
      sql.append(" HAVING ").append(having(params));
    }
    boolean ordered = r.nextBoolean();
    if (ordered) {
      List<String> order = new ArrayList<>();
      if (r.nextInt(3) == 0) {
        // An aggregate first (integers only: a float sum's last bits may differ by addition order), then
        // every group key, which makes the order total.
        order.add("count(*)" + direction());
      }
      for (int i = 0; i < keys.size(); i++) {
        order.add((r.nextBoolean() ? Integer.toString(i + 1) : keys.get(i)) + direction());
      }
      sql.append(" ORDER BY ").append(String.join(", ", order));
      if (r.nextBoolean()) {
        limitOffset(sql, params);
      }
    }
    return new Query(ordered ? "group-ordered" : "group", sql.toString(), params, ordered);
  }

  private String groupBy(List<String> keys) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < keys.size(); i++) {
      out.add(r.nextBoolean() ? Integer.toString(i + 1) : keys.get(i));
    }
    return String.join(", ", out);
  }

  private String aggregate(boolean distinct) {
    if (distinct) {
      return "count(DISTINCT " + pick(new String[] {"cat", "grp", "flag", "qty / 100"}) + ")";
    }
    return switch (r.nextInt(7)) {
      case 0 -> "count(*)";
      case 1 -> "count(" + pick(COLUMNS) + ")";
      case 2 -> "sum(" + pick(NUMERIC_ARGS) + ")";
      case 3 -> "min(" + pick(MINMAX_ARGS) + ")";
      case 4 -> "max(" + pick(MINMAX_ARGS) + ")";
      case 5 -> "avg(" + pick(NUMERIC_ARGS) + ")";
      default -> r.nextBoolean() ? "sum(score)" : "avg(score)";
    };
  }

  private String having(List<Object> params) {
    String c = switch (r.nextInt(5)) {
      case 0 -> "count(*) > ?";
      case 1 -> "sum(qty) < ?";
      case 2 -> "avg(amount) > ?";
      case 3 -> "max(qty) - min(qty) >= ?";
      default -> "count(cat) <> ?";
    };
    params.add(c.startsWith("avg") ? (Object) BigDecimal.valueOf(r.nextInt(20001) - 10000, 2)
        : (Object) (c.startsWith("sum") ? r.nextInt(20001) - 10000 : r.nextInt(40)));
    if (r.nextInt(4) == 0) {
      c = "(" + c + " OR count(*) = 1)";
    }
    if (r.nextInt(5) == 0) {
      c = c + " AND max(amount) IS NOT NULL";
    }
    return c;
  }

  private String where(List<Object> params) {
    List<String> conds = new ArrayList<>();
    int n = r.nextInt(3);
    for (int i = 0; i < n; i++) {
      switch (r.nextInt(8)) {
        case 0 -> {
          conds.add("grp = ?");
          params.add(r.nextInt(10));
        }
        case 1 -> {
          conds.add("qty > ?");
          params.add(r.nextInt(2001) - 1000);
        }
        case 2 -> conds.add(r.nextBoolean() ? "cat IS NULL" : "cat IS NOT NULL");
        case 3 -> {
          conds.add("amount BETWEEN ? AND ?");
          int a = r.nextInt(2_000_001) - 1_000_000;
          params.add(BigDecimal.valueOf(a, 2));
          params.add(BigDecimal.valueOf(a + r.nextInt(1_000_000), 2));
        }
        case 4 -> conds.add(r.nextBoolean() ? "flag" : "NOT flag");
        case 5 -> {
          conds.add("created < ?");
          params.add(java.time.OffsetDateTime.parse("2026-01-01T00:00:00Z").plusDays(r.nextInt(365)));
        }
        case 6 -> {
          conds.add("lower(cat) LIKE ?");
          params.add(pick(new String[] {"a%", "%e%", "z%", "日%", "%"}));
        }
        default -> {
          conds.add("id <= ?");
          params.add((long) r.nextInt(3000));
        }
      }
    }
    return conds.isEmpty() ? "" : " WHERE " + String.join(r.nextInt(4) == 0 ? " OR " : " AND ", conds);
  }

  private void limitOffset(StringBuilder sql, List<Object> params) {
    int limit = r.nextInt(5) == 0 ? 0 : 1 + r.nextInt(r.nextBoolean() ? 10 : 300);
    boolean paramLimit = r.nextBoolean();
    sql.append(" LIMIT ").append(paramLimit ? "?" : Integer.toString(limit));
    if (paramLimit) {
      params.add(limit);
    }
    if (r.nextBoolean()) {
      int offset = r.nextInt(r.nextBoolean() ? 5 : 3000);
      boolean paramOffset = r.nextBoolean();
      sql.append(" OFFSET ").append(paramOffset ? "?" : Integer.toString(offset));
      if (paramOffset) {
        params.add(offset);
      }
    }
  }

  private String direction() {
    return switch (r.nextInt(6)) {
      case 0 -> " DESC";
      case 1 -> " ASC";
      case 2 -> " DESC NULLS LAST";
      case 3 -> " NULLS FIRST";
      default -> "";
    };
  }

  private String pick(String[] from) {
    return from[r.nextInt(from.length)];
  }

  private List<String> pickDistinct(String[] from, int n) {
    List<String> all = new ArrayList<>(List.of(from));
    Collections.shuffle(all, r);
    return new ArrayList<>(all.subList(0, Math.min(n, all.size())));
  }
}
