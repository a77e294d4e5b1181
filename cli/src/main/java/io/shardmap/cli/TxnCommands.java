package io.shardmap.cli;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.InDoubt;
import io.shardmap.core.sql.ShardJdbc;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.GetClusterInfoRequest;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.Shard;
import io.shardmap.support.cli.Durations;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code txn}: the cluster's cross-shard transactions as the shards hold them. {@code txn list} runs the
 * resolver's own scan ({@link InDoubt#scan}) read-only, so what it prints is what the directory servers'
 * resolver sees and does next.
 */
@Command(name = "txn", description = "Cross-shard transactions: list the ones in doubt on the shards.",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {TxnCommands.ListInDoubt.class})
final class TxnCommands {
  private TxnCommands() {}

  @Command(name = "list", description = {
    "List this cluster's prepared (in-doubt) cross-shard transactions on every registered shard (the cluster's "
        + "transaction namespace comes from the directory server): the gid, the "
        + "shard holding it, its age (by that shard's clock), the role that prepared it, the decision on its "
        + "decider shard, and what the resolver does with it next.",
    "Reads pg_prepared_xacts and shardmap.txn_decisions on each shard's primary as --pg-user (password from "
        + "$SHARDMAP_PG_PASSWORD, else $PGPASSWORD); changes nothing. Exits UNAVAILABLE, after printing what it "
        + "could read, when a shard could not be read."})
  static final class ListInDoubt extends Cmd {
    @Option(names = "--txn-abort-after", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "The servers' --txn-abort-after, to say when the resolver aborts an undecided one "
            + "(default 2s, the servers' default).")
    Duration abortAfter;

    @Option(names = "--pg-user", paramLabel = "USER",
        description = "PostgreSQL role for the shards (default $PGUSER, else the OS user).")
    String pgUser;

    @Override
    void execute(ShardmapCtl ctl) {
      // The server's own namespace (made from its etcd prefix), the one its resolver and the SDK use.
      String namespace = ctl.read().getClusterInfo(GetClusterInfoRequest.getDefaultInstance()).getTxnNamespace();
      Duration after = abortAfter != null ? abortAfter : Duration.ofSeconds(2);
      Map<String, Endpoint> shards = new LinkedHashMap<>();
      for (Shard s : ctl.read().listShards(ListShardsRequest.getDefaultInstance()).getShardsList()) {
        shards.put(s.getName(), s.getPrimary());
      }
      Properties props = new Properties();
      props.setProperty("user", QueryCommands.pgUser(ctl, pgUser));
      String password = QueryCommands.pgPassword(ctl);
      if (password != null) {
        props.setProperty("password", password);
      }
      props.setProperty("ApplicationName", "shardmapctl");
      long seconds = Math.max(1, ctl.rpcTimeout().toSeconds());
      props.setProperty("connectTimeout", Long.toString(seconds));
      props.setProperty("socketTimeout", Long.toString(seconds));
      Map<String, Connection> open = new LinkedHashMap<>();
      InDoubt.Scan scan;
      try {
        scan = InDoubt.scan(shards.keySet(), shard -> {
          Connection c = open.get(shard);
          if (c == null) {
            c = DriverManager.getConnection(ShardJdbc.url(shards.get(shard)), props);
            open.put(shard, c);
          }
          return c;
        }, namespace);
      } finally {
        for (Connection c : open.values()) {
          try {
            c.close();
          } catch (SQLException e) {
            // Read-only: nothing to lose.
          }
        }
      }
      print(ctl, scan, namespace, shards.size(), after);
      List<InDoubt.Failure> unlisted = scan.failures().stream().filter(f -> f.step().equals("list")).toList();
      for (InDoubt.Failure f : scan.failures()) {
        ctl.err.println("warning: shard " + f.shard() + ": " + (f.step().equals("list") ? "its prepared transactions"
            : "its decisions") + " could not be read: " + f.error().getMessage());
      }
      if (!unlisted.isEmpty()) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "the prepared transactions of "
            + unlisted.stream().map(InDoubt.Failure::shard).collect(Collectors.joining(", "))
            + " could not be listed; the list above lacks them");
      }
    }

    private void print(ShardmapCtl ctl, InDoubt.Scan scan, String namespace, int shardCount, Duration after) {
      if (ctl.json()) {
        for (InDoubt.Entry e : scan.entries()) {
          line("{\"gid\":" + QueryCommands.Json.string(e.id().toString()) + ",\"shard\":"
              + QueryCommands.Json.string(e.shard()) + ",\"age_ms\":" + e.prepared().age().toMillis()
              + ",\"owner\":" + QueryCommands.Json.string(e.prepared().owner()) + ",\"decider\":"
              + QueryCommands.Json.string(e.id().decider()) + ",\"coordinator\":"
              + QueryCommands.Json.string(e.id().coordinator()) + ",\"decision\":\"" + e.state() + "\""
              + (e.deciderProblem() == null ? "" : ",\"decider_problem\":" + QueryCommands.Json.string(e.deciderProblem()))
              + ",\"resolver\":\"" + InDoubt.action(e.state(), e.prepared().age(), after) + "\"}");
        }
        line("{\"summary\":{\"namespace\":" + QueryCommands.Json.string(namespace) + ",\"in_doubt\":"
            + scan.entries().size() + ",\"shards\":" + shardCount + ",\"shards_listed\":" + scan.listed().size()
            + ",\"oldest_ms\":" + scan.oldest().map(Duration::toMillis).map(String::valueOf).orElse("null") + "}}");
        return;
      }
      List<List<String>> rows = new ArrayList<>();
      for (InDoubt.Entry e : scan.entries()) {
        rows.add(List.of(e.id().toString(), e.shard(), Durations.human(e.prepared().age().toMillis()), e.prepared().owner(),
            e.id().decider(), decision(e), next(e, after)));
      }
      table(List.of("GID", "SHARD", "AGE", "OWNER", "DECIDER", "DECISION", "RESOLVER"), rows);
      line(scan.entries().size() + " in doubt on " + scan.listed().size() + " of " + shardCount + " shards "
          + "(namespace " + namespace + ")" + scan.oldest().map(d -> "; oldest " + Durations.human(d.toMillis())).orElse(""));
    }

    private static String decision(InDoubt.Entry e) {
      return switch (e.state()) {
        case COMMIT -> "COMMIT";
        case ABORT -> "ABORT";
        case UNDECIDED -> "none yet";
        case DECIDER_UNAVAILABLE -> "unknown (" + e.deciderProblem() + ")";
      };
    }

    /** What the resolver does next, in words. */
    static String next(InDoubt.Entry e, Duration abortAfter) {
      Duration age = e.prepared().age();
      return switch (InDoubt.action(e.state(), age, abortAfter)) {
        case COMMIT_PREPARED -> "commits it";
        case ROLLBACK_PREPARED -> "rolls it back";
        case DECIDE_ABORT -> "aborts it (undecided for " + Durations.format(abortAfter) + ")";
        case WAIT -> "aborts it in " + Durations.human(abortAfter.minus(age).toMillis()) + " unless decided";
        case LEAVE -> "waits for its decider";
      };
    }
  }
}
