package io.shardmap.cli;

import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.DeregisterShardRequest;
import io.shardmap.proto.v1.DeregisterShardResponse;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.ListShardsResponse;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.RegisterShardResponse;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.UpdateShardRequest;
import io.shardmap.proto.v1.UpdateShardResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "shard", description = "Register, update, deregister and list shards (PostgreSQL servers).",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      ShardCommands.Register.class,
      ShardCommands.Update.class,
      ShardCommands.Deregister.class,
      ShardCommands.ListShards.class
    })
final class ShardCommands {

  static List<String> header() {
    return List.of("NAME", "PRIMARY", "REPLICAS", "REGION", "STATE", "REVISION");
  }

  static List<String> row(Shard s) {
    String replicas = s.getReplicasCount() == 0 ? "-"
        : s.getReplicasList().stream().map(Text::endpoint).collect(Collectors.joining(","));
    return List.of(s.getName(), Text.endpoint(s.getPrimary()), replicas, Text.orDash(s.getRegion()),
        Text.state(s.getState()), Long.toString(s.getRevision()));
  }

  @Command(name = "register", description = "Register a new shard.")
  static final class Register extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME", description = "Shard name ([a-z][a-z0-9_-]*).")
    String name;

    @Option(names = "--host", required = true, description = "Primary's host.")
    String host;

    @Option(names = "--port", required = true, converter = Converters.PortConverter.class,
        description = "Primary's port.")
    int port;

    @Option(names = "--database", required = true, description = "Database name on the primary.")
    String database;

    @Option(names = "--replica", paramLabel = "HOST:PORT/DB", converter = Converters.EndpointConverter.class,
        description = "A read replica (repeatable).")
    List<Endpoint> replicas = new ArrayList<>();

    @Option(names = "--region", description = "Region the shard lives in.")
    String region;

    @Option(names = "--state", paramLabel = "active|draining|down", converter = Converters.StateConverter.class,
        description = "Initial state (default active).")
    ShardState state;

    @Override
    void execute(ShardmapCtl ctl) {
      Shard.Builder s = Shard.newBuilder().setName(name)
          .setPrimary(Endpoint.newBuilder().setHost(host).setPort(port).setDatabase(database))
          .addAllReplicas(replicas);
      if (region != null) {
        s.setRegion(region);
      }
      if (state != null) {
        s.setState(state);
      }
      RegisterShardResponse r = ctl.admin().registerShard(RegisterShardRequest.newBuilder().setShard(s).build());
      if (printedJson(r)) {
        return;
      }
      line("registered shard " + r.getShard().getName() + " (revision " + r.getRevision() + ")");
      table(header(), List.of(row(r.getShard())));
    }
  }

  @Command(name = "update",
      description = {"Change a shard's endpoints, region or state; options not given keep their value.",
        "The record is read and written back guarded by its revision, so a concurrent change fails with "
            + "FAILED_PRECONDITION instead of being overwritten."})
  static final class Update extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Option(names = "--host", description = "New primary host.")
    String host;

    @Option(names = "--port", converter = Converters.PortConverter.class, description = "New primary port.")
    Integer port;

    @Option(names = "--database", description = "New database name on the primary.")
    String database;

    @Option(names = "--replica", paramLabel = "HOST:PORT/DB", converter = Converters.EndpointConverter.class,
        description = "Replaces the replica list (repeatable).")
    List<Endpoint> replicas;

    @Option(names = "--no-replicas", description = "Removes all replicas.")
    boolean noReplicas;

    @Option(names = "--region", description = "New region ('' removes it).")
    String region;

    @Option(names = "--state", paramLabel = "active|draining|down", converter = Converters.StateConverter.class,
        description = "New state (draining: being emptied; down: marked down by an operator).")
    ShardState state;

    @Option(names = "--expected-revision", paramLabel = "REV",
        description = "Fail unless the shard's record is still at this revision (default: the revision just read).")
    Long expectedRevision;

    @Override
    void execute(ShardmapCtl ctl) {
      if (host == null && port == null && database == null && replicas == null && !noReplicas && region == null
          && state == null) {
        throw usage("nothing to change: give at least one of --host, --port, --database, --replica, "
            + "--no-replicas, --region, --state");
      }
      if (replicas != null && noReplicas) {
        throw usage("--replica and --no-replicas exclude each other");
      }
      ListShardsResponse all = ctl.read().listShards(ListShardsRequest.getDefaultInstance());
      Shard current = all.getShardsList().stream().filter(s -> s.getName().equals(name)).findFirst()
          .orElseThrow(() -> ShardmapException.notFound("shard '" + name + "' is not registered"));
      Shard.Builder s = current.toBuilder().clearRevision();
      Endpoint.Builder p = s.getPrimaryBuilder();
      if (host != null) {
        p.setHost(host);
      }
      if (port != null) {
        p.setPort(port);
      }
      if (database != null) {
        p.setDatabase(database);
      }
      if (replicas != null) {
        s.clearReplicas().addAllReplicas(replicas);
      }
      if (noReplicas) {
        s.clearReplicas();
      }
      if (region != null) {
        s.setRegion(region);
      }
      if (state != null) {
        s.setState(state);
      }
      long expected = expectedRevision != null ? expectedRevision : current.getRevision();
      UpdateShardResponse r = ctl.admin().updateShard(UpdateShardRequest.newBuilder().setShard(s)
          .setExpectedRevision(expected).build());
      if (printedJson(r)) {
        return;
      }
      line("updated shard " + r.getShard().getName() + " (revision " + r.getRevision() + ")");
      table(header(), List.of(row(r.getShard())));
    }
  }

  @Command(name = "deregister",
      description = "Remove a shard. Refused (FAILED_PRECONDITION) while any keyspace routes a key to it.")
  static final class Deregister extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Override
    void execute(ShardmapCtl ctl) {
      DeregisterShardResponse r = ctl.admin().deregisterShard(DeregisterShardRequest.newBuilder().setName(name)
          .build());
      if (printedJson(r)) {
        return;
      }
      line("deregistered shard " + name + " (revision " + r.getRevision() + ")");
    }
  }

  @Command(name = "list", description = "List the registered shards.")
  static final class ListShards extends Cmd {
    @Override
    void execute(ShardmapCtl ctl) {
      ListShardsResponse r = ctl.read().listShards(ListShardsRequest.getDefaultInstance());
      if (printedJson(r)) {
        return;
      }
      table(header(), r.getShardsList().stream().map(ShardCommands::row).toList());
    }
  }
}
