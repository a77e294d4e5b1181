package io.shardmap.cli;

import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.DeregisterShardRequest;
import io.shardmap.proto.v1.DeregisterShardResponse;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.ListShardsResponse;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.proto.v1.RegisterShardRequest;
import io.shardmap.proto.v1.RegisterShardResponse;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardState;
import io.shardmap.proto.v1.UpdateShardRequest;
import io.shardmap.proto.v1.UpdateShardResponse;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "shard", description = "Register, update, deregister, list and show shards (PostgreSQL servers).",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      ShardCommands.Register.class,
      ShardCommands.Update.class,
      ShardCommands.Deregister.class,
      ShardCommands.ListShards.class,
      ShardCommands.Show.class
    })
final class ShardCommands {

  /** The options that give a shard fixed endpoints, named in the errors that exclude them from Patroni ones. */
  private static final String FIXED_OPTIONS = "--host, --port, --database, --replica";

  /**
   * The table's columns; PATRONI (where Patroni keeps the shard's cluster) and TERM (its primary_term) only
   * when one of the shards is Patroni-managed, so listings of fixed shards read as before.
   */
  static List<String> header(List<Shard> shards) {
    List<String> h = new ArrayList<>(List.of("NAME", "PRIMARY", "REPLICAS", "REGION", "STATE", "REVISION"));
    if (anyPatroni(shards)) {
      h.addAll(List.of("PATRONI", "TERM"));
    }
    return h;
  }

  static List<List<String>> rows(List<Shard> shards) {
    boolean patroni = anyPatroni(shards);
    return shards.stream().map(s -> row(s, patroni)).toList();
  }

  private static boolean anyPatroni(List<Shard> shards) {
    return shards.stream().anyMatch(Shard::hasPatroni);
  }

  private static List<String> row(Shard s, boolean patroniColumns) {
    String replicas = s.getReplicasCount() == 0 ? "-"
        : s.getReplicasList().stream().map(Text::endpoint).collect(Collectors.joining(","));
    List<String> row = new ArrayList<>(List.of(s.getName(), primary(s), replicas, Text.orDash(s.getRegion()),
        Text.state(s.getState()), Long.toString(s.getRevision())));
    if (patroniColumns) {
      row.add(s.hasPatroni() ? Text.patroni(s.getPatroni()) : "-");
      row.add(s.hasPatroni() ? Long.toString(s.getPrimaryTerm()) : "-");
    }
    return row;
  }

  /** A Patroni shard has no primary until the directory has read one from Patroni's keys. */
  private static String primary(Shard s) {
    return s.hasPrimary() ? Text.endpoint(s.getPrimary()) : "-";
  }

  private static void print(Cmd cmd, Shard s) {
    cmd.table(header(List.of(s)), rows(List.of(s)));
  }

  /** The shard named {@code name} as the directory lists it now. */
  private static Shard current(ShardmapCtl ctl, String name) {
    ListShardsResponse all = ctl.read().listShards(ListShardsRequest.getDefaultInstance());
    return all.getShardsList().stream().filter(s -> s.getName().equals(name)).findFirst()
        .orElseThrow(() -> ShardmapException.notFound("shard '" + name + "' is not registered"));
  }

  @Command(name = "register",
      description = {"Register a new shard: either with a fixed primary (--host, --port, --database, and "
          + "--replica), or as a Patroni cluster (--patroni-scope), whose primary and replicas the directory "
          + "reads from Patroni's keys in its etcd and follows through failovers.",
        "A Patroni cluster must have a leader and failsafe_mode: true (otherwise FAILED_PRECONDITION); an "
            + "unknown scope is NOT_FOUND."})
  static final class Register extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME", description = "Shard name ([a-z][a-z0-9_-]*).")
    String name;

    @Option(names = "--host", description = "Primary's host (with --port and --database).")
    String host;

    @Option(names = "--port", converter = Converters.PortConverter.class, description = "Primary's port.")
    Integer port;

    @Option(names = "--database", description = "Database name on the primary.")
    String database;

    @Option(names = "--patroni-scope", paramLabel = "SCOPE",
        description = "Patroni's scope (cluster name) of the shard's cluster, instead of a fixed primary.")
    String patroniScope;

    @Option(names = "--patroni-namespace", paramLabel = "NS",
        description = "Patroni's namespace (default Patroni's: /service).")
    String patroniNamespace;

    @Option(names = "--patroni-database", paramLabel = "DB",
        description = "The shard's database on every member (default: the one in the members' conn_url).")
    String patroniDatabase;

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
      Shard.Builder s = Shard.newBuilder().setName(name);
      if (patroniScope != null && patroniScope.isBlank()) {
        throw usage("--patroni-scope must not be empty");
      }
      if (patroniScope != null) {
        if (host != null || port != null || database != null || !replicas.isEmpty()) {
          throw usage("--patroni-scope and " + FIXED_OPTIONS + " exclude each other: a Patroni shard's "
              + "primary and replicas come from Patroni's keys");
        }
        s.setPatroni(patroni(PatroniSource.newBuilder(), patroniScope, patroniNamespace, patroniDatabase));
      } else {
        if (patroniNamespace != null || patroniDatabase != null) {
          throw usage("--patroni-namespace and --patroni-database need --patroni-scope");
        }
        List<String> missing = new ArrayList<>();
        if (host == null) {
          missing.add("'--host'");
        }
        if (port == null) {
          missing.add("'--port'");
        }
        if (database == null) {
          missing.add("'--database'");
        }
        if (!missing.isEmpty()) {
          throw usage("Missing required option" + (missing.size() == 1 ? "" : "s") + ": "
              + String.join(", ", missing) + " (a shard needs --host, --port and --database, or --patroni-scope)");
        }
        s.setPrimary(Endpoint.newBuilder().setHost(host).setPort(port).setDatabase(database))
            .addAllReplicas(replicas);
      }
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
      print(this, r.getShard());
    }
  }

  @Command(name = "update",
      description = {"Change a shard's endpoints, region or state; options not given keep their value.",
        "A Patroni shard's endpoints are Patroni's: --patroni-scope turns a fixed shard into a Patroni one "
            + "(or moves it to another cluster), --no-patroni turns it back into a fixed one with the "
            + "endpoints last seen (changed by " + FIXED_OPTIONS + " if given).",
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

    @Option(names = "--patroni-scope", paramLabel = "SCOPE",
        description = "Follow this Patroni cluster (scope) for the primary and replicas from now on.")
    String patroniScope;

    @Option(names = "--patroni-namespace", paramLabel = "NS",
        description = "New Patroni namespace ('' for Patroni's default, /service).")
    String patroniNamespace;

    @Option(names = "--patroni-database", paramLabel = "DB",
        description = "New database on the Patroni members ('' for the one in their conn_url).")
    String patroniDatabase;

    @Option(names = "--no-patroni",
        description = "Stop following Patroni: the primary and replicas last seen become fixed.")
    boolean noPatroni;

    @Option(names = "--expected-revision", paramLabel = "REV",
        description = "Fail unless the shard's record is still at this revision (default: the revision just read).")
    Long expectedRevision;

    @Override
    void execute(ShardmapCtl ctl) {
      boolean fixedChange = host != null || port != null || database != null || replicas != null || noReplicas;
      boolean patroniChange = patroniScope != null || patroniNamespace != null || patroniDatabase != null;
      if (!fixedChange && !patroniChange && !noPatroni && region == null && state == null) {
        throw usage("nothing to change: give at least one of --host, --port, --database, --replica, "
            + "--no-replicas, --patroni-scope, --patroni-namespace, --patroni-database, --no-patroni, --region, "
            + "--state");
      }
      if (replicas != null && noReplicas) {
        throw usage("--replica and --no-replicas exclude each other");
      }
      if (patroniScope != null && patroniScope.isBlank()) {
        throw usage("--patroni-scope must not be empty");
      }
      if (patroniChange && noPatroni) {
        throw usage("--no-patroni and --patroni-scope, --patroni-namespace, --patroni-database exclude each other");
      }
      if (patroniScope != null && fixedChange) {
        throw usage("--patroni-scope and " + FIXED_OPTIONS + ", --no-replicas exclude each other: a Patroni "
            + "shard's primary and replicas come from Patroni's keys");
      }
      Shard current = current(ctl, name);
      if (noPatroni && !current.hasPatroni()) {
        throw usage("--no-patroni: shard '" + name + "' does not follow Patroni");
      }
      boolean patroni = !noPatroni && (current.hasPatroni() || patroniScope != null);
      if (patroni && fixedChange) {
        throw usage("shard '" + name + "' follows Patroni (" + Text.patroni(current.getPatroni()) + "), which "
            + "sets its primary and replicas: " + FIXED_OPTIONS + ", --no-replicas need --no-patroni");
      }
      if (!patroni && patroniChange) {
        throw usage("--patroni-namespace and --patroni-database: shard '" + name + "' does not follow Patroni; "
            + "give --patroni-scope too");
      }
      // primary_term and observed_revision are output only, like the revision.
      Shard.Builder s = current.toBuilder().clearRevision().clearPrimaryTerm();
      if (patroni) {
        // The directory fills in primary and replicas from Patroni's keys; sending them would be refused.
        s.clearPrimary().clearReplicas();
        PatroniSource.Builder ps = current.getPatroni().toBuilder().clearObservedRevision();
        s.setPatroni(patroni(ps, patroniScope != null ? patroniScope : ps.getScope(), patroniNamespace,
            patroniDatabase));
        update(ctl, s, current);
        return;
      }
      s.clearPatroni();
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
      update(ctl, s, current);
    }

    private void update(ShardmapCtl ctl, Shard.Builder s, Shard current) {
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
      print(this, r.getShard());
    }
  }

  /** Sets the Patroni source's fields that are given (null: keep the builder's). */
  private static PatroniSource patroni(PatroniSource.Builder b, String scope, String namespace, String database) {
    b.setScope(scope);
    if (namespace != null) {
      b.setNamespace(namespace);
    }
    if (database != null) {
      b.setDatabase(database);
    }
    return b.build();
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
      table(header(r.getShardsList()), rows(r.getShardsList()));
    }
  }

  @Command(name = "show", description = "Show one shard: its endpoints and, for a Patroni shard, where Patroni "
      + "keeps its cluster and the primary's term.")
  static final class Show extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Override
    void execute(ShardmapCtl ctl) {
      Shard s = current(ctl, name);
      if (printedJson(s)) {
        return;
      }
      Map<String, String> v = new LinkedHashMap<>();
      v.put("name", s.getName());
      v.put("primary", primary(s));
      v.put("replicas", s.getReplicasCount() == 0 ? "-"
          : s.getReplicasList().stream().map(Text::endpoint).collect(Collectors.joining(", ")));
      v.put("region", Text.orDash(s.getRegion()));
      v.put("state", Text.state(s.getState()));
      v.put("revision", Long.toString(s.getRevision()));
      if (s.hasPatroni()) {
        PatroniSource p = s.getPatroni();
        v.put("patroni", Text.patroni(p));
        v.put("patroni database", p.getDatabase().isEmpty() ? "- (the members' conn_url)" : p.getDatabase());
        v.put("observed revision", Long.toString(p.getObservedRevision()));
        v.put("primary term", Long.toString(s.getPrimaryTerm()));
      } else {
        v.put("patroni", "- (fixed endpoints)");
      }
      keyValues(v);
    }
  }
}
