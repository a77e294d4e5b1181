package io.shardmap.client.internal.query;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Which shards a query asks at a pinned map and what each contributes (pure: tested without a database).
 * A shard's part is restricted to the rows it owns at that map ({@code StrategyKind.ownedBy}: during a move
 * the unit's rows exist on two shards, and only the owner's count) ANDed with the target's own restriction,
 * so every row is counted by exactly one shard.
 */
public final class Targets {
  private Targets() {}

  /**
   * One shard's part: its name and, for a key-set target, the keys it owns (canonical bytes); null
   * otherwise.
   */
  public record ShardTarget(String shard, List<byte[]> keys) {}

  /**
   * FAILED_PRECONDITION unless {@code k} says who owns every key that can hold rows and each owner is
   * registered in {@code map}: a scatter over a map with a hole would silently miss rows.
   */
  public static void checkCovers(KeyspaceMap k, DirectorySnapshot map) {
    String ks = k.name();
    if (k.broken() != null) {
      throw ShardmapException.precondition("keyspace '" + ks + "' has an inconsistent map at revision "
          + map.revision() + " (" + k.broken() + "): a cross-shard query cannot tell which shard owns which rows");
    }
    if (!k.hasLayout()) {
      throw ShardmapException.precondition("keyspace '" + ks + "' has no layout at revision " + map.revision()
          + ": no shard owns its keys yet");
    }
    if (k.strategy() == Strategy.STRATEGY_DIRECTORY && !k.directory().entriesHeld()) {
      throw ShardmapException.precondition("keyspace '" + ks + "' is a directory held lazily by this client "
          + "(more entries than ClientOptions.directoryCacheSize): a cross-shard query needs every entry to say "
          + "which rows each shard owns; raise directoryCacheSize above its entry count");
    }
    Set<String> owners = new TreeSet<>(k.owners());
    if (owners.isEmpty()) {
      throw ShardmapException.precondition("keyspace '" + ks + "' has no owner for any key at revision "
          + map.revision());
    }
    for (String s : owners) {
      if (map.shards().get(s) == null) {
        throw ShardmapException.precondition("keyspace '" + ks + "' routes keys to shard '" + s + "', which is "
            + "not registered at revision " + map.revision() + ": its rows cannot be read");
      }
    }
  }

  /** The shards {@code target} asks at map {@code k}, in name order (none when no shard owns a key asked). */
  public static List<ShardTarget> select(KeyspaceMap k, QueryTarget target) {
    if (target instanceof QueryTarget.All) {
      return new TreeSet<>(k.owners()).stream().map(s -> new ShardTarget(s, null)).toList();
    }
    if (target instanceof QueryTarget.Range r) {
      KeyRange asked = KeyRange.of(r.start(), r.end(), "keyRange");
      Set<String> shards = new TreeSet<>();
      for (Route route : k.ranges().routes()) {
        if (overlaps(route.range(), asked)) {
          shards.add(route.shard());
        }
      }
      return shards.stream().map(s -> new ShardTarget(s, null)).toList();
    }
    QueryTarget.Keys keys = (QueryTarget.Keys) target;
    Map<String, List<byte[]>> byShard = new LinkedHashMap<>();
    for (byte[] key : keys.keys()) {
      Route route = k.routeOrNull(key);
      if (route != null) { // a directory key without entry or fallback: no shard can hold its rows
        byShard.computeIfAbsent(route.shard(), s -> new ArrayList<>()).add(key);
      }
    }
    return new TreeSet<>(byShard.keySet()).stream().map(s -> new ShardTarget(s, byShard.get(s))).toList();
  }

  private static boolean overlaps(KeyRange a, KeyRange b) {
    boolean aEndsBeforeB = !a.unboundedAbove() && !b.unboundedBelow() && Keys.compare(a.end(), b.start()) <= 0;
    boolean bEndsBeforeA = !b.unboundedAbove() && !a.unboundedBelow() && Keys.compare(b.end(), a.start()) <= 0;
    return !aEndsBeforeB && !bEndsBeforeA;
  }

  /**
   * SQL over {@code keyRef} (a column of {@code kind}): the rows of the part on {@code t.shard()} — those the
   * shard owns at map {@code k}, within the target. Literal SQL, no placeholders; hash and ring keyspaces'
   * conditions call the shard's {@code shardmap.*} routing functions ({@code SqlRouting}).
   */
  public static String predicate(KeyspaceMap k, QueryTarget target, ShardTarget t, KeyKind kind, String keyRef) {
    String owned = k.kind().ownedBy(k, t.shard(), kind, keyRef);
    String restriction;
    if (target instanceof QueryTarget.Range r) {
      restriction = KeySql.range(kind, keyRef, KeyRange.of(r.start(), r.end(), "keyRange"));
    } else if (target instanceof QueryTarget.Keys) {
      restriction = anyOf(kind, keyRef, t.keys());
    } else {
      restriction = KeySql.TRUE;
    }
    return and(owned, restriction);
  }

  /**
   * {@code ref = ANY('{...}'::type[])}: one array constant however many keys, so the statement stays small
   * and its plan an index lookup. Keys a column of this kind cannot hold (not UTF-8, for text) are left out:
   * no row has them.
   */
  static String anyOf(KeyKind kind, String ref, List<byte[]> keys) {
    StringBuilder array = new StringBuilder("{");
    int n = 0;
    for (byte[] key : keys) {
      if (kind.unstorable(key) != null) {
        continue;
      }
      if (n++ > 0) {
        array.append(',');
      }
      switch (kind) {
        case INT64 -> array.append(Keys.decodeInt64(key));
        case TEXT -> quoteElement(array, new String(key, java.nio.charset.StandardCharsets.UTF_8));
        case BYTEA -> quoteElement(array, "\\x" + Keys.hex(key));
      }
    }
    if (n == 0) {
      return KeySql.FALSE;
    }
    array.append('}');
    return ref + " = ANY(" + KeyKind.text(array.toString()) + "::" + kind.sqlType() + "[])";
  }

  /** An array element in double quotes, with {@code "} and {@code \} escaped (PostgreSQL's array syntax). */
  private static void quoteElement(StringBuilder b, String s) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') {
        b.append('\\');
      }
      b.append(c);
    }
    b.append('"');
  }

  private static String and(String a, String b) {
    if (a.equals(KeySql.FALSE) || b.equals(KeySql.FALSE)) {
      return KeySql.FALSE;
    }
    if (a.equals(KeySql.TRUE)) {
      return b;
    }
    if (b.equals(KeySql.TRUE)) {
      return a;
    }
    return "(" + a + " AND " + b + ")";
  }
}
