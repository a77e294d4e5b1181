package io.shardmap.cli;

import io.shardmap.core.KeyRange;
import io.shardmap.core.strategy.Strategies;
import io.shardmap.core.strategy.StrategyKind;
import io.shardmap.proto.v1.CreateKeyspaceRequest;
import io.shardmap.proto.v1.CreateKeyspaceResponse;
import io.shardmap.proto.v1.DescribeKeyspaceRequest;
import io.shardmap.proto.v1.DescribeKeyspaceResponse;
import io.shardmap.proto.v1.DropKeyspaceRequest;
import io.shardmap.proto.v1.DropKeyspaceResponse;
import io.shardmap.proto.v1.GetMapRequest;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ListKeyspacesRequest;
import io.shardmap.proto.v1.ListKeyspacesResponse;
import io.shardmap.proto.v1.MovingRange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.ShardShare;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "keyspace", description = "Create, inspect and drop keyspaces.",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      KeyspaceCommands.Create.class,
      KeyspaceCommands.ListKeyspaces.class,
      KeyspaceCommands.Get.class,
      KeyspaceCommands.Describe.class,
      KeyspaceCommands.Drop.class
    })
final class KeyspaceCommands {

  @Command(name = "create", description = {"Create a keyspace and its initial layout.",
    "Layout options by strategy: range: --range-shards (equal split) or --range (explicit ranges); "
        + "hash: --buckets; consistent-hash: --ring-shards and --vnodes; directory: --fallback; "
        + "geographic: --region and --default-region."})
  static final class Create extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME", description = "Keyspace name ([a-z][a-z0-9_]*).")
    String name;

    @Option(names = "--key-type", required = true, paramLabel = "int64|bytes",
        converter = Converters.KeyTypeConverter.class,
        description = "int64: signed 64-bit integers; bytes: byte strings (text as UTF-8), 1-1024 bytes.")
    KeyType keyType;

    @Option(names = "--strategy", required = true, paramLabel = "range|hash|consistent-hash|directory|geographic",
        converter = Converters.StrategyConverter.class, description = "How keys map to shards.")
    Strategy strategy;

    @Option(names = "--table", paramLabel = "NAME:KEY_COLUMN", converter = Converters.TableConverter.class,
        description = "A table sharded by this keyspace and its key column (repeatable).")
    List<ShardedTable> tables = new ArrayList<>();

    @Option(names = "--range-shards", split = ",", paramLabel = "SHARD",
        description = "range: split the key space into equal parts, one per shard, in order.")
    List<String> rangeShards = new ArrayList<>();

    @Option(names = "--range", paramLabel = "SPEC=SHARD",
        description = "range: one explicit range, e.g. '..0=s1' '0..=s2' (repeatable; together they must cover "
            + "the key space exactly).")
    List<String> ranges = new ArrayList<>();

    @Option(names = "--buckets", split = ",", paramLabel = "SHARD",
        description = "hash: the owner of each bucket, in bucket order.")
    List<String> buckets = new ArrayList<>();

    @Option(names = "--ring-shards", split = ",", paramLabel = "SHARD",
        description = "consistent-hash: shards put on the ring.")
    List<String> ringShards = new ArrayList<>();

    @Option(names = "--vnodes", paramLabel = "N",
        description = "consistent-hash: virtual nodes per shard (the keyspace's default).")
    Integer vnodes;

    @Option(names = "--fallback", paramLabel = "SHARD",
        description = "directory: the shard for keys without an entry.")
    String fallback;

    @Option(names = "--region", paramLabel = "REGION=SHARD", converter = Converters.RegionConverter.class,
        description = "geographic: route a region to a shard (repeatable).")
    List<RegionAssignment> regions = new ArrayList<>();

    @Option(names = "--default-region", paramLabel = "REGION",
        description = "geographic: the region that takes unknown regions.")
    String defaultRegion;

    @Override
    void execute(ShardmapCtl ctl) {
      checkOnlyFor(Strategy.STRATEGY_RANGE, "--range-shards", !rangeShards.isEmpty());
      checkOnlyFor(Strategy.STRATEGY_RANGE, "--range", !ranges.isEmpty());
      checkOnlyFor(Strategy.STRATEGY_HASH, "--buckets", !buckets.isEmpty());
      checkOnlyFor(Strategy.STRATEGY_CONSISTENT_HASH, "--ring-shards", !ringShards.isEmpty());
      checkOnlyFor(Strategy.STRATEGY_CONSISTENT_HASH, "--vnodes", vnodes != null);
      checkOnlyFor(Strategy.STRATEGY_DIRECTORY, "--fallback", fallback != null);
      checkOnlyFor(Strategy.STRATEGY_GEOGRAPHIC, "--region", !regions.isEmpty());
      checkOnlyFor(Strategy.STRATEGY_GEOGRAPHIC, "--default-region", defaultRegion != null);
      if (!rangeShards.isEmpty() && !ranges.isEmpty()) {
        throw usage("give either --range-shards (equal split) or --range (explicit ranges), not both");
      }
      KeyspaceSpec.Builder spec = KeyspaceSpec.newBuilder().setName(name).setKeyType(keyType)
          .setStrategy(strategy).addAllTables(tables);
      if (vnodes != null) {
        spec.setDefaultVnodes(vnodes);
      }
      CreateKeyspaceRequest.Builder req = CreateKeyspaceRequest.newBuilder().setSpec(spec)
          .addAllRangeShards(rangeShards).addAllHashBuckets(buckets).addAllRingShards(ringShards)
          .addAllRegions(regions);
      for (String r : ranges) {
        int eq = r.lastIndexOf('=');
        if (eq < 0 || eq == r.length() - 1) {
          throw usage("--range '" + r + "' is not SPEC=SHARD (e.g. '..100=shard1')");
        }
        req.addRanges(RangeAssignment.newBuilder()
            .setRange(KeyRange.parse(keyType, r.substring(0, eq), "--range").toProto(keyType))
            .setShard(r.substring(eq + 1)));
      }
      if (fallback != null) {
        req.setFallbackShard(fallback);
      }
      if (defaultRegion != null) {
        req.setDefaultRegion(defaultRegion);
      }
      CreateKeyspaceResponse r = ctl.admin().createKeyspace(req.build());
      if (printedJson(r)) {
        return;
      }
      line("created keyspace " + Text.summary(r.getSpec()) + " (revision " + r.getRevision() + ")");
    }

    private void checkOnlyFor(Strategy s, String option, boolean given) {
      if (given && strategy != s) {
        throw usage(option + " is only for --strategy " + Text.strategy(s) + ", not " + Text.strategy(strategy));
      }
    }
  }

  @Command(name = "list", description = "List the keyspaces.")
  static final class ListKeyspaces extends Cmd {
    @Override
    void execute(ShardmapCtl ctl) {
      ListKeyspacesResponse r = ctl.read().listKeyspaces(ListKeyspacesRequest.getDefaultInstance());
      if (printedJson(r)) {
        return;
      }
      List<List<String>> rows = new ArrayList<>();
      for (KeyspaceSpec s : r.getKeyspacesList()) {
        rows.add(List.of(s.getName(), Text.keyType(s.getKeyType()), Text.strategy(s.getStrategy()),
            Text.tables(s.getTablesList())));
      }
      table(List.of("NAME", "KEY-TYPE", "STRATEGY", "TABLES"), rows);
    }
  }

  @Command(name = "get", description = {"Print a keyspace's full map, every page read at one revision.",
    "JSON output is one GetMapResponse holding the ranges or entries of all pages."})
  static final class Get extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String name;

    @Option(names = "--page-size", paramLabel = "N", description = "Ranges or entries per RPC (server default 10000).")
    int pageSize;

    @Override
    void execute(ShardmapCtl ctl) {
      GetMapResponse map = readMap(ctl, name, pageSize);
      if (printedJson(map)) {
        return;
      }
      KeyspaceSpec s = map.getSpec();
      Map<String, String> head = new LinkedHashMap<>();
      head.put("keyspace", s.getName());
      head.put("key type", Text.keyType(s.getKeyType()));
      head.put("strategy", Text.strategy(s.getStrategy()));
      head.put("tables", Text.tables(s.getTablesList()));
      Layouts.View view = Layouts.of(s.getStrategy());
      if (view != null) {
        view.header(map, head);
      }
      head.put("revision", Long.toString(map.getRevision()));
      keyValues(head);
      line("");
      if (view != null) {
        view.print(ctl.out, map);
      } else {
        line("(unknown strategy " + s.getStrategy() + ": use --output json)");
      }
    }
  }

  /**
   * Reads every page of a keyspace's map into one response. Pages share the first page's revision (the
   * server pins it), so the result is one consistent map.
   */
  static GetMapResponse readMap(ShardmapCtl ctl, String keyspace, int pageSize) {
    GetMapRequest.Builder req = GetMapRequest.newBuilder().setKeyspace(keyspace).setPageSize(pageSize);
    GetMapResponse first = ctl.read().getMap(req.build());
    GetMapResponse.Builder all = first.toBuilder().clearNextPageToken();
    Set<String> seen = new HashSet<>();
    String token = first.getNextPageToken();
    while (!token.isEmpty()) {
      // A server repeating a token would otherwise keep this loop going forever.
      if (!seen.add(token)) {
        throw new IllegalStateException("the server returned page token '" + token + "' twice");
      }
      GetMapResponse page = ctl.read().getMap(req.setPageToken(token).build());
      all.addAllRanges(page.getRangesList()).addAllEntries(page.getEntriesList());
      token = page.getNextPageToken();
    }
    return all.build();
  }

  @Command(name = "describe", description = "Summarize a keyspace: layout size and each shard's share.")
  static final class Describe extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String name;

    @Override
    void execute(ShardmapCtl ctl) {
      DescribeKeyspaceResponse r = ctl.admin().describeKeyspace(DescribeKeyspaceRequest.newBuilder().setName(name)
          .build());
      if (printedJson(r)) {
        return;
      }
      KeyspaceSpec s = r.getSpec();
      Map<String, String> head = new LinkedHashMap<>();
      head.put("keyspace", s.getName());
      head.put("key type", Text.keyType(s.getKeyType()));
      head.put("strategy", Text.strategy(s.getStrategy()));
      head.put("tables", Text.tables(s.getTablesList()));
      head.put("layout", r.getLayoutEntries() + " " + layoutNoun(s.getStrategy()));
      head.put("revision", Long.toString(r.getRevision()));
      if (r.getMovingUnknown()) {
        head.put("moving", "unknown (the server could not read etcd)");
      }
      keyValues(head);
      line("");
      List<List<String>> rows = new ArrayList<>();
      for (ShardShare share : r.getSharesList()) {
        rows.add(List.of(share.getShard(), Text.percent(share.getFraction()), Long.toString(share.getEntries())));
      }
      table(List.of("SHARD", "SHARE", "ENTRIES"), rows);
      if (r.getMovingCount() > 0) {
        // Units the migrator is moving (ranges, buckets, ring nodes, entries): the admin API refuses to
        // change them.
        line("");
        List<List<String>> moving = new ArrayList<>();
        for (MovingRange m : r.getMovingList()) {
          moving.add(List.of(m.getUnit().isEmpty() ? Text.range(m.getRange()) : m.getUnit(), m.getMigrationId()));
        }
        table(List.of("MOVING", "MIGRATION"), moving);
      }
    }

    private static String layoutNoun(Strategy s) {
      StrategyKind kind = Strategies.find(s);
      return kind == null ? "entries" : kind.unitNoun();
    }
  }

  @Command(name = "drop", description = "Drop a keyspace and its whole map (the data in PostgreSQL is untouched).")
  static final class Drop extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String name;

    @Override
    void execute(ShardmapCtl ctl) {
      DropKeyspaceResponse r = ctl.admin().dropKeyspace(DropKeyspaceRequest.newBuilder().setName(name).build());
      if (printedJson(r)) {
        return;
      }
      line("dropped keyspace " + name + " (revision " + r.getRevision() + ")");
    }
  }
}
