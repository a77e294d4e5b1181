package io.shardmap.cli;

import io.shardmap.core.Keys;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Text output for people. Keys and ranges are printed in the syntax {@link io.shardmap.core.KeyRange#parse}
 * reads, so anything shown can be pasted back into a command: INT64 keys as decimals, BYTES keys as
 * {@code 'text'} when printable, otherwise (or when the text contains {@code ..}) as {@code 0x}-hex.
 */
final class Text {
  private Text() {}

  static String key(Key k) {
    return switch (k.getValueCase()) {
      case INT_KEY -> Long.toString(k.getIntKey());
      case STRING_KEY -> bytes(k.getStringKey().getBytes(StandardCharsets.UTF_8));
      case BYTES_KEY -> bytes(k.getBytesKey().toByteArray());
      default -> "";
    };
  }

  /** One canonical key of a keyspace with this key type. */
  static String key(KeyType type, byte[] canonical) {
    return type == KeyType.KEY_TYPE_INT64 ? Long.toString(Keys.decodeInt64(canonical)) : bytes(canonical);
  }

  private static String bytes(byte[] b) {
    if (b.length == 0) {
      return "";
    }
    String d = Keys.describe(KeyType.KEY_TYPE_BYTES, b);
    // A quoted text holding ".." would be split there by the range parser.
    return d.contains("..") ? "0x" + Keys.hex(b) : d;
  }

  /** {@code start..end}, an empty side being unbounded. */
  static String range(KeyRange r) {
    return (r.hasStart() ? key(r.getStart()) : "") + ".." + (r.hasEnd() ? key(r.getEnd()) : "");
  }

  static String endpoint(Endpoint e) {
    String host = e.getHost().contains(":") ? "[" + e.getHost() + "]" : e.getHost();
    return host + ":" + e.getPort() + "/" + e.getDatabase();
  }

  /**
   * Where Patroni keeps the cluster: {@code <namespace>/<scope>}, the namespace defaulting to Patroni's
   * {@code /service} and written with one leading and no trailing slash, as Patroni collapses them.
   */
  static String patroni(PatroniSource p) {
    String ns = p.getNamespace().replaceAll("/+", "/").replaceAll("^/|/$", "");
    return "/" + (ns.isEmpty() ? "service" : ns) + "/" + p.getScope();
  }

  static String state(ShardState s) {
    return s == ShardState.SHARD_STATE_UNSPECIFIED ? "-" : enumTail(s.name(), "SHARD_STATE_");
  }

  static String keyType(KeyType t) {
    return enumTail(t.name(), "KEY_TYPE_");
  }

  static String strategy(Strategy s) {
    return enumTail(s.name(), "STRATEGY_").replace('_', '-');
  }

  private static String enumTail(String name, String prefix) {
    return (name.startsWith(prefix) ? name.substring(prefix.length()) : name).toLowerCase(Locale.ROOT);
  }

  static String tables(List<ShardedTable> tables) {
    if (tables.isEmpty()) {
      return "-";
    }
    return tables.stream().map(t -> t.getName() + "(" + t.getKeyColumn() + ")").collect(Collectors.joining(", "));
  }

  static String orDash(String s) {
    return s == null || s.isEmpty() ? "-" : s;
  }

  static String percent(double fraction) {
    return String.format(Locale.ROOT, "%.2f%%", fraction * 100);
  }

  /** A one-line summary of a keyspace definition. */
  static String summary(KeyspaceSpec s) {
    return s.getName() + " (" + keyType(s.getKeyType()) + " keys, " + strategy(s.getStrategy()) + ")";
  }
}
