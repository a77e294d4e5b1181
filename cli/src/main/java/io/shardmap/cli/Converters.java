package io.shardmap.cli;

import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * Option value syntaxes. These only split the text into message fields; names, hosts and ports are
 * validated by the server, so the CLI cannot drift from its rules.
 */
final class Converters {
  private Converters() {}

  /** {@code host:port/database}; an IPv6 host goes in brackets: {@code [::1]:5432/db}. */
  static final class EndpointConverter implements ITypeConverter<Endpoint> {
    @Override
    public Endpoint convert(String value) {
      int slash = value.lastIndexOf('/');
      int colon = slash < 0 ? -1 : value.lastIndexOf(':', slash);
      if (slash < 0 || colon < 0 || slash == value.length() - 1) {
        throw new TypeConversionException("'" + value + "' is not host:port/database");
      }
      String host = value.substring(0, colon);
      if (host.startsWith("[") && host.endsWith("]")) {
        host = host.substring(1, host.length() - 1);
      }
      return Endpoint.newBuilder().setHost(host).setPort(port(value.substring(colon + 1, slash)))
          .setDatabase(value.substring(slash + 1)).build();
    }
  }

  static int port(String s) {
    try {
      int p = Integer.parseInt(s);
      if (p >= 1 && p <= 65535) {
        return p;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new TypeConversionException("'" + s + "' is not a TCP port (1-65535)");
  }

  static final class PortConverter implements ITypeConverter<Integer> {
    @Override
    public Integer convert(String value) {
      return port(value);
    }
  }

  /** {@code table:key_column}. */
  static final class TableConverter implements ITypeConverter<ShardedTable> {
    @Override
    public ShardedTable convert(String value) {
      int colon = value.indexOf(':');
      if (colon <= 0 || colon == value.length() - 1) {
        throw new TypeConversionException("'" + value + "' is not table:key_column");
      }
      return ShardedTable.newBuilder().setName(value.substring(0, colon))
          .setKeyColumn(value.substring(colon + 1)).build();
    }
  }

  /** {@code region=shard}. */
  static final class RegionConverter implements ITypeConverter<RegionAssignment> {
    @Override
    public RegionAssignment convert(String value) {
      int eq = value.lastIndexOf('=');
      if (eq <= 0 || eq == value.length() - 1) {
        throw new TypeConversionException("'" + value + "' is not region=shard");
      }
      return RegionAssignment.newBuilder().setRegion(value.substring(0, eq)).setShard(value.substring(eq + 1))
          .build();
    }
  }

  static final class KeyTypeConverter implements ITypeConverter<KeyType> {
    @Override
    public KeyType convert(String value) {
      return switch (value.toLowerCase(java.util.Locale.ROOT)) {
        case "int64" -> KeyType.KEY_TYPE_INT64;
        case "bytes" -> KeyType.KEY_TYPE_BYTES;
        default -> throw new TypeConversionException("'" + value + "' is not a key type (int64 or bytes)");
      };
    }
  }

  static final class StrategyConverter implements ITypeConverter<Strategy> {
    @Override
    public Strategy convert(String value) {
      return switch (value.toLowerCase(java.util.Locale.ROOT)) {
        case "range" -> Strategy.STRATEGY_RANGE;
        case "hash" -> Strategy.STRATEGY_HASH;
        case "consistent-hash" -> Strategy.STRATEGY_CONSISTENT_HASH;
        case "directory" -> Strategy.STRATEGY_DIRECTORY;
        case "geographic" -> Strategy.STRATEGY_GEOGRAPHIC;
        default -> throw new TypeConversionException("'" + value
            + "' is not a strategy (range, hash, consistent-hash, directory or geographic)");
      };
    }
  }

  static final class StateConverter implements ITypeConverter<ShardState> {
    @Override
    public ShardState convert(String value) {
      return switch (value.toLowerCase(java.util.Locale.ROOT)) {
        case "active" -> ShardState.SHARD_STATE_ACTIVE;
        case "draining" -> ShardState.SHARD_STATE_DRAINING;
        case "down" -> ShardState.SHARD_STATE_DOWN;
        default -> throw new TypeConversionException("'" + value + "' is not a shard state (active, draining or down)");
      };
    }
  }
}
