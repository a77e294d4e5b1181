package io.shardmap.cli;

import io.shardmap.proto.v1.AddRingNodesRequest;
import io.shardmap.proto.v1.AddRingNodesResponse;
import io.shardmap.proto.v1.RemoveRingNodesRequest;
import io.shardmap.proto.v1.RemoveRingNodesResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "ring", description = "Add or remove virtual nodes of a consistent-hash keyspace.",
    synopsisSubcommandLabel = "COMMAND", subcommands = {RingCommands.Add.class, RingCommands.Remove.class})
final class RingCommands {

  @Command(name = "add", description = "Add virtual nodes for SHARD (a new shard joins the ring this way).")
  static final class Add extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "SHARD")
    String shard;

    @Option(names = "--vnodes", paramLabel = "N", description = "How many (default: the keyspace's default).")
    int vnodes;

    @Override
    void execute(ShardmapCtl ctl) {
      if (vnodes < 0) {
        throw usage("--vnodes must not be negative (0: the default), got " + vnodes);
      }
      AddRingNodesResponse r = ctl.admin().addRingNodes(AddRingNodesRequest.newBuilder().setKeyspace(keyspace)
          .setShard(shard).setVnodes(vnodes).build());
      if (printedJson(r)) {
        return;
      }
      line("added virtual nodes of " + shard + " to " + keyspace + " (revision " + r.getRevision() + ")");
      moved(r.getMovedFraction());
      Layouts.ring(ctl.out, r.getRing());
    }
  }

  @Command(name = "remove", description = "Remove SHARD's highest-numbered virtual nodes (all by default).")
  static final class Remove extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "SHARD")
    String shard;

    @Option(names = "--vnodes", paramLabel = "N", description = "How many (default: all of them).")
    int vnodes;

    @Override
    void execute(ShardmapCtl ctl) {
      if (vnodes < 0) {
        throw usage("--vnodes must not be negative (0: the default), got " + vnodes);
      }
      RemoveRingNodesResponse r = ctl.admin().removeRingNodes(RemoveRingNodesRequest.newBuilder()
          .setKeyspace(keyspace).setShard(shard).setVnodes(vnodes).build());
      if (printedJson(r)) {
        return;
      }
      line("removed virtual nodes of " + shard + " from " + keyspace + " (revision " + r.getRevision() + ")");
      moved(r.getMovedFraction());
      Layouts.ring(ctl.out, r.getRing());
    }
  }
}
